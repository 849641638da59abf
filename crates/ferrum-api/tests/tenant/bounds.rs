//! Every stored string and map is bounded (issue 15 finding 3): past a bound a route answers
//! 400 naming the field and the limit, and writes nothing. A 10,000-character cluster on every
//! route that takes one is a 400, never a 500 (finding 2).

use reqwest::Method;
use serde_json::{json, Value};

use crate::bad_input::refused;
use crate::common::{zip_of, Body, Tenant, TestApp};

async fn setup() -> (TestApp, Tenant, String) {
    let app = TestApp::start().await;
    let t = app.tenant("alpha").await;
    let code = app.hello_code(&t, "hello").await;
    (app, t, code)
}

fn long(n: usize) -> String {
    "c".repeat(n)
}

#[tokio::test]
async fn a_huge_cluster_is_400_on_every_route_that_takes_one() {
    let (app, t, code) = setup().await;
    let p = t.project;
    let huge = long(10_000);
    let tasks = format!("/2/projects/{p}/tasks");
    let body = json!({"tasks": [{"code_name": "hello", "cluster": huge}]});
    refused(
        &app,
        400,
        "tasks[0]: cluster is 10000 characters; the limit is 64",
        || app.post(&t, &tasks, body),
    )
    .await;
    let schedules = format!("/2/projects/{p}/schedules");
    let body = json!({"schedules": [{"code_name": "hello", "run_every": 3600, "cluster": huge}]});
    refused(&app, 400, "schedules[0]: cluster is 10000", || {
        app.post(&t, &schedules, body)
    })
    .await;
    let t3 = format!("/2/projects/{p}/tasks/webhook?code_name=hello&cluster={huge}");
    refused(&app, 400, "cluster is 10000", || {
        app.call(Method::POST, &t3, Some(&t.token), Body::Raw(b"x".to_vec()))
    })
    .await;
    let hooks = format!("/2/projects/{p}/codes/{code}/webhooks");
    refused(&app, 400, "cluster is 10000", || {
        app.post(&t, &hooks, json!({"cluster": huge}))
    })
    .await;
    // A charset, too: a cluster name travels in NOTIFYs and runner settings.
    let body = json!({"tasks": [{"code_name": "hello", "cluster": "eu west"}]});
    refused(&app, 400, "cluster may hold only", || {
        app.post(&t, &tasks, body)
    })
    .await;
    // An update of an existing schedule is held to the same bound.
    let sched = app.schedule(&t, "hello").await;
    let path = format!("/2/projects/{p}/schedules/{sched}");
    let resp = app
        .call(
            Method::PUT,
            &path,
            Some(&t.token),
            Body::Json(json!({"cluster": huge})),
        )
        .await
        .expect(400);
    assert!(resp.msg().contains("cluster is 10000"), "{}", resp.msg());
    let stored = app.get(&t, &path).await.expect(200).json();
    assert_eq!(stored["cluster"], "default");
}

#[tokio::test]
async fn over_long_task_and_schedule_fields_are_400() {
    let (app, t, _) = setup().await;
    let p = t.project;
    let tasks = format!("/2/projects/{p}/tasks");
    let schedules = format!("/2/projects/{p}/schedules");
    let cases: [(&str, Value, &str); 3] = [
        (
            "code_name",
            json!(long(256)),
            "code_name is 256 characters; the limit is 255",
        ),
        (
            "label",
            json!(long(100_000)),
            "label is 100000 characters; the limit is 255",
        ),
        ("label", json!("a\u{1}b"), "label may hold only"),
    ];
    for (field, value, needle) in cases {
        let mut task = json!({"code_name": "hello"});
        task[field] = value.clone();
        refused(&app, 400, needle, || {
            app.post(&t, &tasks, json!({"tasks": [task]}))
        })
        .await;
        let mut sched = json!({"code_name": "hello", "run_every": 3600});
        sched[field] = value;
        refused(&app, 400, needle, || {
            app.post(&t, &schedules, json!({"schedules": [sched]}))
        })
        .await;
    }
    for (field, needle) in [("cron", "cron is 300"), ("timezone", "timezone is 300")] {
        let mut sched = json!({"code_name": "hello"});
        sched[field] = json!(long(300));
        refused(&app, 400, needle, || {
            app.post(&t, &schedules, json!({"schedules": [sched]}))
        })
        .await;
    }
    let id = app.queue(&t, "hello", "{}").await;
    let progress = format!("/2/projects/{p}/tasks/{id}/progress");
    refused(
        &app,
        400,
        "msg is 1025 characters; the limit is 1024",
        || app.post(&t, &progress, json!({"percent": 5, "msg": long(1025)})),
    )
    .await;
    let task = app
        .get(&t, &format!("/2/projects/{p}/tasks/{id}"))
        .await
        .json();
    assert!(task
        .get("msg")
        .is_none_or(|m| m.as_str().unwrap_or("").len() < 1025));
}

#[tokio::test]
async fn over_long_code_fields_and_env_vars_are_400() {
    let (app, t, _) = setup().await;
    let zip = zip_of(&[("hello.py", b"print('hello')\n")]);
    let base = || json!({"name": "hello", "runtime": "python", "file_name": "hello.py"});
    let many: serde_json::Map<String, Value> =
        (0..101).map(|i| (format!("V{i}"), json!("x"))).collect();
    let big: serde_json::Map<String, Value> = (0..5)
        .map(|i| (format!("V{i}"), json!(long(8000))))
        .collect();
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "name",
            json!(long(10_000)),
            "name is 10000 characters; the limit is 255",
        ),
        (
            "runtime",
            json!(long(65)),
            "runtime is 65 characters; the limit is 64",
        ),
        ("stack", json!(long(65)), "stack is 65 characters"),
        ("file_name", json!(long(256)), "file_name is 256 characters"),
        ("image", json!(long(513)), "image is 513 characters"),
        ("command", json!(long(4097)), "command is 4097 characters"),
        (
            "env_vars",
            Value::Object(many),
            "env_vars has 101 entries; the limit is 100",
        ),
        (
            "env_vars",
            json!({"A": long(8193)}),
            "env_vars[\"A\"] is 8193 bytes; the limit is 8192",
        ),
        (
            "env_vars",
            json!({"1A": "x"}),
            "env_vars name may hold only",
        ),
        (
            "env_vars",
            json!({"A=B": "x"}),
            "env_vars name may hold only",
        ),
        ("env_vars", json!({"A": "x\u{0}"}), "NUL"),
        (
            "env_vars",
            Value::Object(big),
            "env_vars total 40020 bytes; the limit is 32768",
        ),
    ];
    for (field, value, needle) in cases {
        let mut data = base();
        data[field] = value;
        refused(&app, 400, needle, || app.upload(&t, data, Some(&zip))).await;
    }
    // A million bytes of env_vars (finding 3) do not even reach validation: 413.
    let mut data = base();
    data["env_vars"] = json!({"BIG": long(1_000_000)});
    let before = app.counts().await;
    let resp = app.upload(&t, data, Some(&zip)).await;
    assert_eq!(resp.status / 100, 4, "{}", resp.status);
    assert_eq!(app.counts().await, before);
    // Right at the bounds is fine.
    let mut data = base();
    data["env_vars"] = json!({"A": long(8192)});
    data["command"] = json!(long(4096));
    app.upload(&t, data, Some(&zip)).await.expect(200);
}

#[tokio::test]
async fn over_long_account_project_and_webhook_fields_are_400() {
    let (app, t, code) = setup().await;
    refused(
        &app,
        400,
        "name is 201 characters; the limit is 200",
        || app.post(&t, "/2/projects", json!({"name": long(201)})),
    )
    .await;
    let hooks = format!("/2/projects/{}/codes/{code}/webhooks", t.project);
    refused(
        &app,
        400,
        "secret is 257 characters; the limit is 256",
        || {
            app.post(
                &t,
                &hooks,
                json!({"signature": "hmac", "secret": long(257)}),
            )
        },
    )
    .await;
    refused(&app, 400, "signature is 10000 characters", || {
        app.post(
            &t,
            &hooks,
            json!({"signature": long(10_000), "secret": "s"}),
        )
    })
    .await;
    refused(&app, 400, "label is 256 characters", || {
        app.post(&t, &hooks, json!({"label": long(256)}))
    })
    .await;
    let admin = "bounds-admin-token";
    ferrum_store::AccountStore::bootstrap_admin(&app.store, admin)
        .await
        .unwrap();
    let as_admin = |path: &'static str, body: Value| {
        app.call(Method::POST, path, Some(admin), Body::Json(body))
    };
    let r = as_admin("/2/users", json!({"email": long(255)}))
        .await
        .expect(400);
    assert!(
        r.msg()
            .contains("email is 255 characters; the limit is 254"),
        "{}",
        r.msg()
    );
    let r = as_admin("/2/runner_tokens", json!({"cluster": long(10_000)}))
        .await
        .expect(400);
    assert!(
        r.msg().contains("cluster is 10000 characters"),
        "{}",
        r.msg()
    );
    let r = as_admin("/2/runner_tokens", json!({"cluster": "a/b"}))
        .await
        .expect(400);
    assert!(r.msg().contains("cluster may hold only"), "{}", r.msg());
}

/// Issue 15, finding 6: one minimum interval for `run_every` and cron alike, the operator's
/// setting (60 s by default, as `ferrum serve`; `ferrum dev` allows seconds).
#[tokio::test]
async fn cron_and_run_every_share_the_operators_minimum_interval() {
    let (app, t, _) = setup().await;
    let path = format!("/2/projects/{}/schedules", t.project);
    let cron = |expr: &str| json!({"schedules": [{"code_name": "hello", "cron": expr}]});
    refused(&app, 400, "schedules[0]: cron fires as often as every 1 seconds; runs must be at least 60 seconds apart", || {
        app.post(&t, &path, cron("* * * * * *"))
    })
    .await;
    refused(&app, 400, "at least 60 seconds apart", || {
        app.post(&t, &path, cron("*/20 * * * * *"))
    })
    .await;
    app.post(&t, &path, cron("0 * * * * *")).await.expect(200);

    let config = ferrum_api::ApiConfig {
        min_schedule_interval: std::time::Duration::from_secs(1),
        ..ferrum_api::ApiConfig::default()
    };
    let dev = TestApp::start_with(config).await;
    let d = dev.tenant("dev").await;
    dev.hello_code(&d, "hello").await;
    let path = format!("/2/projects/{}/schedules", d.project);
    dev.post(&d, &path, cron("* * * * * *")).await.expect(200);
    let every = json!({"schedules": [{"code_name": "hello", "run_every": 5}]});
    dev.post(&d, &path, every).await.expect(200);

    let config = ferrum_api::ApiConfig {
        min_schedule_interval: std::time::Duration::from_secs(3600),
        ..ferrum_api::ApiConfig::default()
    };
    let strict = TestApp::start_with(config).await;
    let s = strict.tenant("strict").await;
    strict.hello_code(&s, "hello").await;
    let path = format!("/2/projects/{}/schedules", s.project);
    refused(
        &strict,
        400,
        "run_every must be at least 3600 seconds",
        || {
            strict.post(
                &s,
                &path,
                json!({"schedules": [{"code_name": "hello", "run_every": 600}]}),
            )
        },
    )
    .await;
    refused(&strict, 400, "at least 3600 seconds apart", || {
        strict.post(&s, &path, cron("*/30 * * * *"))
    })
    .await;
}
