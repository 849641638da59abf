//! Project quotas (issue 19): an admin sets them, the tenant reads them, and past a cap the
//! API answers 429 with `Retry-After` and a `msg`, having written nothing.

use std::path::PathBuf;
use std::process::Command;

use ferrum_model::Id;
use ferrum_store::AccountStore;
use reqwest::Method;
use serde_json::json;

use crate::common::{Body, Tenant, TestApp};

async fn admin(app: &TestApp) -> String {
    let user = app
        .store
        .create_user(&format!("admin-{}@example.com", Id::generate()), true)
        .await
        .unwrap();
    let token = format!("tok-admin-{}", Id::generate());
    app.store.add_user_token(user, &token).await.unwrap();
    token
}

async fn put(
    app: &TestApp,
    token: &str,
    t: &Tenant,
    body: serde_json::Value,
) -> crate::common::Resp {
    let path = format!("/2/projects/{}/quotas", t.project);
    app.call(Method::PUT, &path, Some(token), Body::Json(body))
        .await
}

async fn queued(app: &TestApp, t: &Tenant) -> usize {
    let r = app
        .get(
            t,
            &format!("/2/projects/{}/tasks?queued=1&per_page=100", t.project),
        )
        .await
        .expect(200);
    r.json()["tasks"].as_array().unwrap().len()
}

#[tokio::test]
async fn an_admin_sets_quotas_and_the_tenant_reads_them() {
    let app = TestApp::start().await;
    let t = app.tenant("q").await;
    let admin = admin(&app).await;
    let path = format!("/2/projects/{}/quotas", t.project);
    let r = app.get(&t, &path).await.expect(200);
    assert_eq!(
        r.json(),
        json!({"max_concurrency": null, "max_queued": null, "tasks_per_minute": null, "retention_days": null})
    );
    let r = put(&app, &t.token, &t, json!({"max_queued": 5}))
        .await
        .expect(403);
    assert!(r.msg().contains("admin"), "{}", r.msg());
    let set =
        json!({"max_concurrency": 2, "max_queued": 5, "tasks_per_minute": 60, "retention_days": 7});
    put(&app, &admin, &t, set.clone()).await.expect(200);
    assert_eq!(app.get(&t, &path).await.expect(200).json(), set);
    // A field left out is lifted.
    put(&app, &admin, &t, json!({"max_queued": 5}))
        .await
        .expect(200);
    let r = app.get(&t, &path).await.expect(200).json();
    assert_eq!(
        (r["max_queued"].clone(), r["max_concurrency"].clone()),
        (json!(5), json!(null))
    );

    let r = put(&app, &admin, &t, json!({"max_queued": 0}))
        .await
        .expect(400);
    assert!(r.msg().contains("max_queued"), "{}", r.msg());
    let r = put(&app, &admin, &t, json!({"max_queue": 3}))
        .await
        .expect(400);
    assert!(r.msg().contains("max_queue"), "{}", r.msg());
    assert_eq!(
        app.get(&t, &path).await.expect(200).json()["max_queued"],
        5,
        "nothing written"
    );
    let other = Tenant {
        token: t.token.clone(),
        project: Id::generate(),
    };
    put(&app, &admin, &other, json!({})).await.expect(404);
}

#[tokio::test]
async fn past_the_queued_cap_the_answer_is_429_and_nothing_is_written() {
    let app = TestApp::start().await;
    let t = app.tenant("cap").await;
    let admin = admin(&app).await;
    app.hello_code(&t, "hello").await;
    put(&app, &admin, &t, json!({"max_queued": 3}))
        .await
        .expect(200);
    app.queue(&t, "hello", "1").await;
    app.queue(&t, "hello", "2").await;
    let two = json!({"tasks": [{"code_name": "hello", "payload": "3"}, {"code_name": "hello", "payload": "4"}]});
    let r = app
        .post(&t, &format!("/2/projects/{}/tasks", t.project), two)
        .await
        .expect(429);
    assert!(r.msg().contains("max_queued"), "{}", r.msg());
    let retry: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry >= 1);
    assert_eq!(queued(&app, &t).await, 2, "the refused batch wrote nothing");
    app.queue(&t, "hello", "3").await;
    assert_eq!(queued(&app, &t).await, 3);
    // The webhook route is held to the same cap.
    let r = app
        .call(
            Method::POST,
            &format!("/2/projects/{}/tasks/webhook?code_name=hello", t.project),
            Some(&t.token),
            Body::Raw(b"x".to_vec()),
        )
        .await
        .expect(429);
    assert!(r.headers.contains_key("retry-after"));
    assert_eq!(queued(&app, &t).await, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_client_gets_429_past_the_rate_and_duplicates_nothing() {
    let app = TestApp::start().await;
    let t = app.tenant("py").await;
    let admin = admin(&app).await;
    put(&app, &admin, &t, json!({"tasks_per_minute": 2}))
        .await
        .expect(200);
    let port = app.base.rsplit(':').next().unwrap().to_owned();
    let dir = std::env::temp_dir().join(format!("ferrum-python-quota-{}", Id::generate()));
    std::fs::create_dir_all(&dir).unwrap();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/quota_flow.py");
    let mut cmd = Command::new("python3");
    cmd.arg(script).current_dir(&dir).env("HOME", &dir);
    for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("IRON_")) {
        cmd.env_remove(key);
    }
    cmd.env("IRON_PROTOCOL", "http")
        .env("IRON_HOST", "127.0.0.1")
        .env("IRON_PORT", &port)
        .env("IRON_PROJECT_ID", t.project.to_string())
        .env("IRON_TOKEN", &t.token);
    let output = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .expect("python3 runs (scripts/test installs iron-worker 1.3.8)");
    let _ = std::fs::remove_dir_all(&dir);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("python quota flow: OK"),
        "--- stdout\n{stdout}\n--- stderr\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(queued(&app, &t).await, 2);
}
