//! The attacks of issue 15 against a real API: forged calls on another runner's lease, code
//! downloads without a lease, and revoked tokens.

use reqwest::Method;
use serde_json::json;

use crate::common::{Body, TestApp};
use crate::support::*;

/// Every per-task call a runner can make about `held`, quoting its attempt, and the zip of its
/// revision: `(what, status)`.
async fn try_everything(app: &TestApp, credential: &str, held: &Held) -> Vec<(String, u16)> {
    let (task, attempt) = (&held.task, held.attempt);
    let calls = [
        (
            Method::POST,
            format!("/runner/v1/tasks/{task}/started"),
            Some(json!({"attempt": attempt})),
        ),
        (
            Method::POST,
            format!("/runner/v1/tasks/{task}/heartbeat"),
            Some(json!({"attempt": attempt})),
        ),
        (
            Method::POST,
            format!("/runner/v1/tasks/{task}/complete"),
            Some(json!({"attempt": attempt, "status": "complete", "exit_code": 0})),
        ),
        (
            Method::POST,
            format!("/runner/v1/tasks/{task}/complete"),
            Some(json!({"attempt": attempt, "status": "error", "msg": "forged"})),
        ),
        (
            Method::GET,
            format!("/runner/v1/revisions/{}/zip", held.revision),
            None,
        ),
    ];
    let mut answers = Vec::new();
    for (method, path, body) in calls {
        let resp = call(app, method.clone(), &path, Some(credential), body).await;
        answers.push((format!("{method} {path}"), resp.status));
    }
    let log = reqwest::Client::new()
        .put(format!(
            "{}/runner/v1/tasks/{task}/log?attempt={attempt}&seq=0&stream=stdout",
            app.base
        ))
        .bearer_auth(credential)
        .body("forged output\n")
        .send()
        .await
        .unwrap();
    answers.push(("PUT log".into(), log.status().as_u16()));
    answers
}

fn all_refused(answers: &[(String, u16)], status: u16) {
    for (what, got) in answers {
        assert_eq!(*got, status, "{what}");
    }
}

#[tokio::test]
async fn runners_act_only_on_the_leases_they_hold() {
    let app = TestApp::start().await;
    admin(&app).await;
    let (tenant, task) = queued_task(&app).await;
    let (_, default_token) = runner_token(&app, "default").await;
    let (_, intruder_token) = runner_token(&app, "intruder").await;
    let holder = register(&app, &default_token).await;
    let intruder = register(&app, &intruder_token).await;
    // Same cluster, same token, another registration: another runner all the same.
    let neighbour = register(&app, &default_token).await;

    assert!(
        lease(&app, &intruder).await.is_empty(),
        "another cluster's task"
    );
    let held = lease(&app, &holder).await;
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].task, task);
    let held = &held[0];
    assert!(lease(&app, &neighbour).await.is_empty());

    // Before the start, and again while it runs: every foreign call is 404 and changes nothing.
    for phase in ["preparing", "running"] {
        let before = snapshot(&app, &task).await;
        for runner in [&intruder, &neighbour] {
            all_refused(&try_everything(&app, &runner.secret, held).await, 404);
        }
        // The runner token itself is no runner's credential.
        all_refused(&try_everything(&app, &default_token, held).await, 401);
        assert_eq!(snapshot(&app, &task).await, before, "{phase}");
        if phase == "preparing" {
            let started = format!("/runner/v1/tasks/{task}/started");
            let body = json!({"attempt": held.attempt});
            call(
                &app,
                Method::POST,
                &started,
                Some(&holder.secret),
                Some(body),
            )
            .await
            .expect(200);
        }
    }

    // The holder's own calls work: its zip, its log, its completion.
    let zip = format!("/runner/v1/revisions/{}/zip", held.revision);
    call(&app, Method::GET, &zip, Some(&holder.secret), None)
        .await
        .expect(200);
    let log = reqwest::Client::new()
        .put(format!(
            "{}/runner/v1/tasks/{task}/log?attempt={}&seq=0&stream=stdout",
            app.base, held.attempt
        ))
        .bearer_auth(&holder.secret)
        .body("hello\n")
        .send()
        .await
        .unwrap();
    assert_eq!(log.status(), 200);
    let stale = json!({"attempt": held.attempt - 1});
    let heartbeat = format!("/runner/v1/tasks/{task}/heartbeat");
    call(
        &app,
        Method::POST,
        &heartbeat,
        Some(&holder.secret),
        Some(stale),
    )
    .await
    .expect(409);
    let complete = format!("/runner/v1/tasks/{task}/complete");
    // Even the holder's word is bounded: an oversized msg is refused, naming the field.
    let huge = json!({"attempt": held.attempt, "status": "error", "msg": "x".repeat(5000)});
    let refused = call(
        &app,
        Method::POST,
        &complete,
        Some(&holder.secret),
        Some(huge),
    )
    .await
    .expect(400);
    assert!(
        String::from_utf8_lossy(&refused.body).contains("msg is 5000 characters"),
        "{:?}",
        refused.body
    );
    let done = json!({"attempt": held.attempt, "status": "complete", "exit_code": 0});
    call(
        &app,
        Method::POST,
        &complete,
        Some(&holder.secret),
        Some(done.clone()),
    )
    .await
    .expect(200);
    // Finished: a repeat is the holder's stale attempt (409), the zip is no longer served,
    // and a foreign runner still learns nothing (404).
    call(
        &app,
        Method::POST,
        &complete,
        Some(&holder.secret),
        Some(done),
    )
    .await
    .expect(409);
    call(&app, Method::GET, &zip, Some(&holder.secret), None)
        .await
        .expect(404);
    all_refused(&try_everything(&app, &intruder.secret, held).await, 404);

    let record = app
        .get(
            &tenant,
            &format!("/2/projects/{}/tasks/{task}", tenant.project),
        )
        .await
        .expect(200)
        .json();
    assert_eq!(record["status"], "complete");
    let log = app
        .get(
            &tenant,
            &format!("/2/projects/{}/tasks/{task}/log", tenant.project),
        )
        .await
        .expect(200);
    assert_eq!(&log.body[..], b"hello\n");
}

#[tokio::test]
async fn admins_list_and_revoke_runner_tokens_and_revoked_runners_get_401() {
    let app = TestApp::start().await;
    admin(&app).await;
    let (_, task) = queued_task(&app).await;
    let (revoked_id, revoked) = runner_token(&app, "default").await;
    let (kept_id, kept) = runner_token(&app, "gpu").await;
    let runner = register(&app, &revoked).await;
    let held = lease(&app, &runner).await;
    assert_eq!(held.len(), 1);

    let listed = app
        .call(Method::GET, "/2/runner_tokens", Some(ADMIN), Body::None)
        .await
        .expect(200);
    let text = String::from_utf8_lossy(&listed.body).into_owned();
    assert!(
        !text.contains(&revoked) && !text.contains(&kept),
        "never the token: {text}"
    );
    let tokens = listed.json()["runner_tokens"].as_array().unwrap().clone();
    assert_eq!(tokens.len(), 2);
    assert_eq!(tokens[0]["id"], revoked_id.as_str());
    assert_eq!(tokens[0]["cluster"], "default");
    assert!(tokens[0]["created_at"].is_string());
    assert!(
        tokens[0]["last_used_at"].is_string(),
        "a runner registered with it"
    );
    assert!(tokens[1]["last_used_at"].is_null());

    // Tenants may neither list nor revoke.
    let tenant = app.tenant("mallory").await;
    let path = format!("/2/runner_tokens/{revoked_id}");
    app.call(
        Method::GET,
        "/2/runner_tokens",
        Some(&tenant.token),
        Body::None,
    )
    .await
    .expect(403);
    app.call(Method::DELETE, &path, Some(&tenant.token), Body::None)
        .await
        .expect(403);
    app.call(Method::GET, "/2/runner_tokens", None, Body::None)
        .await
        .expect(401);

    let before = snapshot(&app, &task).await;
    app.call(Method::DELETE, &path, Some(ADMIN), Body::None)
        .await
        .expect(200);
    app.call(Method::DELETE, &path, Some(ADMIN), Body::None)
        .await
        .expect(404);
    // The token registers nothing, and its runner has lost every right, its lease included.
    let body = json!({"hostname": "h", "concurrency": 1, "version": "test"});
    call(
        &app,
        Method::POST,
        "/runner/v1/register",
        Some(&revoked),
        Some(body),
    )
    .await
    .expect(401);
    let body = json!({"max_tasks": 1, "wait_ms": 0});
    call(
        &app,
        Method::POST,
        "/runner/v1/lease",
        Some(&runner.secret),
        Some(body),
    )
    .await
    .expect(401);
    all_refused(&try_everything(&app, &runner.secret, &held[0]).await, 401);
    assert_eq!(snapshot(&app, &task).await, before);
    // Other tokens keep working.
    register(&app, &kept).await;

    let tokens = app
        .call(Method::GET, "/2/runner_tokens", Some(ADMIN), Body::None)
        .await
        .expect(200)
        .json();
    let tokens = tokens["runner_tokens"].as_array().unwrap();
    assert!(tokens[0]["revoked_at"].is_string());
    assert_eq!(tokens[1]["id"], kept_id.as_str());
    assert!(tokens[1]["revoked_at"].is_null());
}
