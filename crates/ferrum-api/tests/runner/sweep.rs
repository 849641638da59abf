//! The runner half of the isolation sweep, generated from the route registry: every route of
//! the runner protocol, called about a lease held by another runner, by a runner of another
//! cluster and by a second runner of the same cluster, answers 404 or 409 (or, for the routes
//! that are not about one task, answers nothing of it) and changes nothing; without a runner's
//! own credential every route but `register` answers 401. A new runner route joins the sweep
//! by being registered, and one whose path names something the sweep cannot fill in fails it.

use ferrum_api::routes::{registry, Auth};
use ferrum_api::ApiConfig;
use reqwest::Method;
use serde_json::{json, Value};

use crate::common::TestApp;
use crate::support::*;

/// The concrete path and body of a call to `path` about `held`: `None` for a route that is
/// about no task (register, lease).
fn about(path: &str, held: &Held) -> Option<String> {
    if !path.contains('{') {
        return None;
    }
    let concrete = if path.starts_with("/runner/v1/tasks/{id}/") {
        path.replace("{id}", &held.task)
    } else if path.starts_with("/runner/v1/revisions/{id}/") {
        path.replace("{id}", &held.revision)
    } else {
        panic!("the runner sweep does not know what {path} is about: teach `about`");
    };
    // A log chunk's fields go in the query; the other routes ignore it.
    Some(format!(
        "{concrete}?attempt={}&seq=0&stream=stdout",
        held.attempt
    ))
}

/// One body every runner route accepts: what each message needs, for this lease.
fn body(held: &Held) -> Value {
    json!({
        "attempt": held.attempt, "status": "complete", "exit_code": 0, "msg": "forged",
        "hostname": "sweep", "concurrency": 1, "version": "sweep",
        "max_tasks": 10, "wait_ms": 0, "running": 0,
    })
}

#[tokio::test]
async fn every_runner_route_refuses_runners_without_the_lease() {
    let app = TestApp::start().await;
    admin(&app).await;
    let (_, task) = queued_task(&app).await;
    let (_, default_token) = runner_token(&app, "default").await;
    let (_, intruder_token) = runner_token(&app, "intruder").await;
    let holder = register(&app, &default_token).await;
    let held = lease(&app, &holder)
        .await
        .pop()
        .expect("the task is leased");
    let intruder = register(&app, &intruder_token).await;
    let neighbour = register(&app, &default_token).await;

    let routes: Vec<_> = registry(&ApiConfig::default())
        .into_iter()
        .filter(|r| r.auth_kind() == Auth::Runner)
        .collect();
    assert!(
        routes.len() >= 7,
        "the runner protocol's routes are registered"
    );
    let before = snapshot(&app, &task).await;
    for route in &routes {
        let method = Method::from_bytes(route.method().as_str().as_bytes()).unwrap();
        let what = format!("{} {}", route.method(), route.path());
        let target = about(route.path(), &held);
        let path = target.clone().unwrap_or_else(|| route.path().to_owned());
        let send = |credential: Option<String>| {
            let (app, method, path, body) = (&app, method.clone(), path.clone(), body(&held));
            async move { call(app, method, &path, credential.as_deref(), Some(body)).await }
        };
        for (who, credential) in [
            ("intruder", &intruder.secret),
            ("neighbour", &neighbour.secret),
        ] {
            let resp = send(Some(credential.clone())).await;
            match target {
                Some(_) => assert!(
                    [404, 409].contains(&resp.status),
                    "{what} by the {who}: {} {}",
                    resp.status,
                    String::from_utf8_lossy(&resp.body)
                ),
                None => {
                    let text = String::from_utf8_lossy(&resp.body).into_owned();
                    assert!(
                        !text.contains(&held.task),
                        "{what} by the {who} names the task"
                    );
                }
            }
            assert_eq!(snapshot(&app, &task).await, before, "{what} by the {who}");
        }
        for credential in [None, Some("not-a-credential".to_owned())] {
            let resp = send(credential).await;
            assert_eq!(resp.status, 401, "{what} without a credential");
        }
        if route.path() != "/runner/v1/register" {
            let resp = send(Some(default_token.clone())).await;
            assert_eq!(
                resp.status, 401,
                "{what} with a runner token, not a runner's credential"
            );
        }
        assert_eq!(snapshot(&app, &task).await, before, "{what}");
    }
}
