//! Webhooks: IronWorker's T3 route and Ferrum's per-code URLs, signatures, retries; and the
//! Ferrum schedule additions (cron validation, pause, next fire times, tasks of a schedule).

use hmac::{Hmac, Mac};
use reqwest::Method;
use serde_json::{json, Value};
use sha2::Sha256;

use crate::common::{Body, Resp, Tenant, TestApp};

/// A Slack slash-command body, exactly as Slack sends it.
const SLACK_FORM: &[u8] = b"token=gIkuvaNzQIHg97ATvDxqgjtO&team_id=T0001&team_domain=example\
&channel_id=C2147483705&user_name=Steve&command=%2Fweather&text=94070+%26+more%21\
&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2F1234%2F5678&trigger_id=13345224609.738474920.8088930838d88f008e0";

fn sign(secret: &str, parts: &[&[u8]]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    for p in parts {
        mac.update(p);
    }
    hex::encode(mac.finalize().into_bytes())
}

async fn post_raw(app: &TestApp, path: &str, headers: &[(&str, String)], body: &[u8]) -> Resp {
    let mut req = reqwest::Client::new()
        .post(format!("{}{path}", app.base))
        .body(body.to_vec());
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let resp = req.send().await.unwrap();
    Resp {
        status: resp.status().as_u16(),
        content_type: resp
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned()),
        headers: resp.headers().clone(),
        body: resp.bytes().await.unwrap(),
    }
}

/// Creates a webhook of a fresh code `hook`; returns its path.
async fn webhook(app: &TestApp, t: &Tenant, body: Value) -> String {
    let code = app.hello_code(t, "hook").await;
    let path = format!("/2/projects/{}/codes/{code}/webhooks", t.project);
    let created = app.post(t, &path, body).await.expect(200).json();
    assert!(created["url"]
        .as_str()
        .unwrap()
        .ends_with(created["path"].as_str().unwrap()));
    assert!(created.get("secret").is_none());
    created["path"].as_str().unwrap().to_owned()
}

async fn task(app: &TestApp, t: &Tenant, id: &str) -> Value {
    let path = format!("/2/projects/{}/tasks/{id}", t.project);
    app.get(t, &path).await.expect(200).json()
}

#[tokio::test]
async fn slack_form_bodies_arrive_byte_for_byte_and_bad_signatures_create_nothing() {
    let app = TestApp::start().await;
    let t = app.tenant("slack").await;
    let hook = webhook(&app, &t, json!({"signature": "slack", "secret": "shh"})).await;
    let ts = chrono::Utc::now().timestamp().to_string();
    let sig = format!(
        "v0={}",
        sign("shh", &[b"v0:", ts.as_bytes(), b":", SLACK_FORM])
    );
    let form = (
        "content-type",
        "application/x-www-form-urlencoded".to_owned(),
    );
    let good = [
        form.clone(),
        ("x-slack-request-timestamp", ts.clone()),
        ("x-slack-signature", sig),
    ];
    let before = app.counts().await;
    let bad = [
        form.clone(),
        ("x-slack-request-timestamp", ts.clone()),
        (
            "x-slack-signature",
            format!("v0={}", sign("wrong", &[SLACK_FORM])),
        ),
    ];
    let refused = post_raw(&app, &hook, &bad, SLACK_FORM).await.expect(401);
    assert!(refused.msg().contains("signature"), "{}", refused.msg());
    post_raw(&app, &hook, &[form], SLACK_FORM).await.expect(401);
    assert_eq!(
        app.counts().await,
        before,
        "a refused delivery writes nothing"
    );

    let queued = post_raw(&app, &hook, &good, SLACK_FORM)
        .await
        .expect(200)
        .json();
    let id = queued["id"].as_str().unwrap();
    assert_eq!(
        task(&app, &t, id).await["payload"]
            .as_str()
            .unwrap()
            .as_bytes(),
        SLACK_FORM
    );
    // Slack retries with a fresh signature and X-Slack-Retry-Num: the same task.
    let mut retry = good.to_vec();
    retry.push(("x-slack-retry-num", "1".to_owned()));
    let again = post_raw(&app, &hook, &retry, SLACK_FORM)
        .await
        .expect(200)
        .json();
    assert_eq!(again["id"], queued["id"]);
    assert_eq!(app.counts().await.tasks, before.tasks + 1);

    let unknown = "/webhooks/0123456789abcdef";
    post_raw(&app, unknown, &[], b"x").await.expect(404);
}

#[tokio::test]
async fn retried_deliveries_with_one_idempotency_key_make_one_task() {
    let app = TestApp::start().await;
    let t = app.tenant("idem").await;
    let hook = webhook(&app, &t, json!({"signature": "github", "secret": "gh"})).await;
    let body = br#"{"action":"opened","number":1}"#;
    let gh = |delivery: &str| {
        vec![
            (
                "x-hub-signature-256",
                format!("sha256={}", sign("gh", &[body])),
            ),
            ("x-github-delivery", delivery.to_owned()),
        ]
    };
    let first = post_raw(&app, &hook, &gh("d-1"), body)
        .await
        .expect(200)
        .json();
    let redelivered = post_raw(&app, &hook, &gh("d-1"), body)
        .await
        .expect(200)
        .json();
    let other = post_raw(&app, &hook, &gh("d-2"), body)
        .await
        .expect(200)
        .json();
    assert_eq!(first["id"], redelivered["id"]);
    assert_eq!(redelivered["msg"], "Already queued.");
    assert_ne!(first["id"], other["id"]);

    // T3 with the project token in ?oauth= and an Idempotency-Key.
    let t3 = format!(
        "/2/projects/{}/tasks/webhook?code_name=hook&oauth={}&priority=2",
        t.project, t.token
    );
    let key = [("idempotency-key", "order-42".to_owned())];
    let a = post_raw(&app, &t3, &key, b"\x00\xffraw")
        .await
        .expect(200)
        .json();
    let b = post_raw(&app, &t3, &key, b"\x00\xffraw")
        .await
        .expect(200)
        .json();
    assert_eq!(a["id"], b["id"]);
    assert_eq!(a["msg"], "Queued up.");
    let queued = task(&app, &t, a["id"].as_str().unwrap()).await;
    assert_eq!(queued["priority"], 2);
    assert_eq!(app.counts().await.tasks, 3);
}

#[tokio::test]
async fn webhook_management_and_sync_mode_without_a_runner() {
    let app = TestApp::start().await;
    let t = app.tenant("mgmt").await;
    let hook = webhook(&app, &t, json!({"sync_timeout": 1, "label": "bot"})).await;
    let started = std::time::Instant::now();
    let answer = post_raw(&app, &hook, &[], b"ping").await.expect(200).json();
    assert!(started.elapsed() >= std::time::Duration::from_millis(900));
    let queued = task(&app, &t, answer["id"].as_str().unwrap()).await;
    assert_eq!(
        (queued["status"].as_str(), queued["label"].as_str()),
        (Some("queued"), Some("bot"))
    );

    let code = queued["code_id"].as_str().unwrap();
    let list_path = format!("/2/projects/{}/codes/{code}/webhooks", t.project);
    let list = app.get(&t, &list_path).await.expect(200).json();
    let hooks = list["webhooks"].as_array().unwrap();
    assert_eq!(hooks.len(), 1);
    assert_eq!(hooks[0]["sync_timeout"], 1);
    let bad = json!({"signature": "slack"});
    let refused = app.post(&t, &list_path, bad).await.expect(400);
    assert!(refused.msg().contains("secret"), "{}", refused.msg());
    let other = app.tenant("other").await;
    app.get(&other, &list_path).await.expect(404);

    let one = format!("{list_path}/{}", hooks[0]["id"].as_str().unwrap());
    app.call(Method::DELETE, &one, Some(&t.token), Body::None)
        .await
        .expect(200);
    post_raw(&app, &hook, &[], b"ping").await.expect(404);
}

#[tokio::test]
async fn cron_schedules_validate_pause_and_list_their_next_fire_times() {
    let app = TestApp::start().await;
    let t = app.tenant("cron").await;
    app.hello_code(&t, "c").await;
    let path = format!("/2/projects/{}/schedules", t.project);
    let before = app.counts().await;
    for (bad, says) in [
        (json!({"cron": "61 * * * *"}), "cron"),
        (json!({"cron": "* * *"}), "5 fields"),
        (
            json!({"cron": "* * * * *", "timezone": "Nowhere/Land"}),
            "IANA",
        ),
        (json!({"cron": "* * * * *", "run_every": 60}), "not both"),
        (
            json!({"cron": "* * * * *", "misfire": "sometimes"}),
            "misfire",
        ),
    ] {
        let mut s = json!({"code_name": "c", "payload": "{}"});
        s.as_object_mut()
            .unwrap()
            .extend(bad.as_object().unwrap().clone());
        let r = app
            .post(&t, &path, json!({"schedules": [s]}))
            .await
            .expect(400);
        assert!(r.msg().contains(says), "{}", r.msg());
    }
    assert_eq!(
        app.counts().await,
        before,
        "refused schedules write nothing"
    );

    let s = json!({"code_name": "c", "payload": "{}", "cron": "30 9 * * MON-FRI",
                   "timezone": "Europe/Paris", "misfire": "skip"});
    let created = app
        .post(&t, &path, json!({"schedules": [s]}))
        .await
        .expect(200)
        .json();
    let id = created["schedules"][0]["id"].as_str().unwrap();
    let one = format!("{path}/{id}");
    let got = app.get(&t, &one).await.expect(200).json();
    for key in [
        "start_at",
        "end_at",
        "next_start",
        "last_run_time",
        "run_count",
        "run_every",
    ] {
        assert!(got.get(key).is_some(), "schedule lacks {key}");
    }
    assert_eq!(
        (got["cron"].as_str(), got["timezone"].as_str()),
        (Some("30 9 * * MON-FRI"), Some("Europe/Paris"))
    );
    let times = got["next_fire_times"].as_array().unwrap();
    assert_eq!(times.len(), 5);
    assert_eq!(times[0], got["next_start"]);
    assert!(times.iter().all(|t| t.as_str().unwrap().contains(":30:00")));

    let msg = |r: Resp| r.expect(200).msg();
    assert_eq!(
        msg(app.post(&t, &format!("{one}/pause"), json!({})).await),
        "Paused"
    );
    assert_eq!(
        msg(app.post(&t, &format!("{one}/pause"), json!({})).await),
        "Already paused"
    );
    let paused = app.get(&t, &one).await.expect(200).json();
    assert_eq!(
        (
            paused["paused"].as_bool(),
            paused["next_fire_times"].as_array().unwrap().len()
        ),
        (Some(true), 0)
    );
    assert_eq!(
        msg(app.post(&t, &format!("{one}/resume"), json!({})).await),
        "Resumed"
    );
    // How it repeats can change: the next fire times follow at once.
    let put = |body: Value| app.call(Method::PUT, &one, Some(&t.token), Body::Json(body));
    put(json!({"cron": "15 * * * *", "timezone": "Asia/Kolkata"}))
        .await
        .expect(200);
    let moved = app.get(&t, &one).await.expect(200).json();
    assert_eq!(
        (&moved["cron"], &moved["timezone"]),
        (&json!("15 * * * *"), &json!("Asia/Kolkata"))
    );
    // A quarter past the hour in India (UTC+5:30) is a quarter to, in UTC.
    let times = moved["next_fire_times"].as_array().unwrap();
    assert!(times.iter().all(|t| t.as_str().unwrap().contains(":45:00")));
    assert_eq!(times[0], moved["next_start"]);
    let refused = put(json!({"run_every": 3600, "timezone": "UTC"})).await;
    assert!(refused.expect(400).msg().contains("timezone"));
    app.post(&t, &format!("{one}/cancel"), json!({}))
        .await
        .expect(200);
    let refused = put(json!({"cron": "0 * * * *"})).await.expect(409).msg();
    assert!(refused.contains("cancelled"), "{refused}");
    app.post(&t, &format!("{one}/resume"), json!({}))
        .await
        .expect(409);
    let tasks = app
        .get(&t, &format!("{one}/tasks"))
        .await
        .expect(200)
        .json();
    assert_eq!(tasks["tasks"].as_array().unwrap().len(), 0);
}
