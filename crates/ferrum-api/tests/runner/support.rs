//! Runners over HTTP: tokens, registrations, calls with a runner's credential, and a snapshot
//! of everything a runner call could change about a task.

use reqwest::Method;
use serde_json::{json, Value};

use crate::common::{Resp, TestApp};

pub const ADMIN: &str = "runner-admin-token";

/// A registered runner: its id and its own credential.
pub struct Runner {
    pub secret: String,
}

/// A leased task, as its runner sees it.
pub struct Held {
    pub task: String,
    pub attempt: i64,
    pub revision: String,
}

/// The bootstrap admin, so tokens are made the way operators make them: over the API.
pub async fn admin(app: &TestApp) {
    ferrum_store::AccountStore::bootstrap_admin(&app.store, ADMIN)
        .await
        .unwrap();
}

/// A new runner token of `cluster`: `(id, token)`.
pub async fn runner_token(app: &TestApp, cluster: &str) -> (String, String) {
    let body = crate::common::Body::Json(json!({ "cluster": cluster }));
    let created = app
        .call(Method::POST, "/2/runner_tokens", Some(ADMIN), body)
        .await
        .expect(200)
        .json();
    let id = created["id"].as_str().unwrap().to_owned();
    (id, created["token"].as_str().unwrap().to_owned())
}

/// A call of the runner protocol with `credential` as the bearer.
pub async fn call(
    app: &TestApp,
    method: Method,
    path: &str,
    credential: Option<&str>,
    body: Option<Value>,
) -> Resp {
    let mut req = reqwest::Client::new().request(method, format!("{}{path}", app.base));
    if let Some(credential) = credential {
        req = req.bearer_auth(credential);
    }
    if let Some(body) = body {
        req = req.json(&body);
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

/// Registers a runner with `token`.
pub async fn register(app: &TestApp, token: &str) -> Runner {
    let body = json!({"hostname": "h", "concurrency": 4, "version": "test"});
    let registered = call(
        app,
        Method::POST,
        "/runner/v1/register",
        Some(token),
        Some(body),
    )
    .await
    .expect(200)
    .json();
    Runner {
        secret: registered["runner_secret"].as_str().unwrap().to_owned(),
    }
}

/// Leases what the runner's cluster has runnable now.
pub async fn lease(app: &TestApp, runner: &Runner) -> Vec<Held> {
    let body = json!({"max_tasks": 10, "wait_ms": 0});
    let leased = call(
        app,
        Method::POST,
        "/runner/v1/lease",
        Some(&runner.secret),
        Some(body),
    )
    .await
    .expect(200)
    .json();
    leased["leases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| Held {
            task: l["task_id"].as_str().unwrap().to_owned(),
            attempt: l["attempt"].as_i64().unwrap(),
            revision: l["code"]["revision_id"].as_str().unwrap().to_owned(),
        })
        .collect()
}

/// Everything a runner call could change about a task: its record, its queue row (lease,
/// holder, expiry) and its log chunks.
pub async fn snapshot(app: &TestApp, task: &str) -> String {
    sqlx::query_scalar(
        "SELECT concat_ws('|', t.status, t.attempt, t.runner_id, t.log_size, t.start_time, \
           t.end_time, t.exit_code, t.msg, q.attempt, q.runner_id, q.lease_expires_at, \
           (SELECT count(*) FROM task_log_chunks c WHERE c.task_id = t.id), \
           (SELECT count(*) FROM tasks)) \
         FROM tasks t LEFT JOIN task_queue q ON q.task_id = t.id WHERE t.id = $1",
    )
    .bind(task)
    .fetch_one(app.store.pool())
    .await
    .unwrap()
}

/// A tenant with a code and one queued task of the `default` cluster: `(tenant, task id)`.
pub async fn queued_task(app: &TestApp) -> (crate::common::Tenant, String) {
    let tenant = app.tenant("victim").await;
    app.hello_code(&tenant, "hello").await;
    let task = app.queue(&tenant, "hello", "{}").await;
    (tenant, task)
}
