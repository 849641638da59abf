//! The fleet over HTTP: a runner's own heartbeat, an admin's drain reaching a runner's lease
//! calls (held ones included), the fleet lists, and bad input named in the `msg`.

use reqwest::Method;
use serde_json::{json, Value};

use crate::common::{Body, TestApp};
use crate::support::*;

async fn admin_call(app: &TestApp, method: Method, path: &str) -> crate::common::Resp {
    let body = match method {
        Method::POST => Body::Json(json!({})),
        _ => Body::None,
    };
    app.call(method, path, Some(ADMIN), body).await
}

async fn heartbeat(app: &TestApp, runner: &Runner, running: u32) -> crate::common::Resp {
    let body = json!({ "running": running });
    let path = "/runner/v1/heartbeat";
    call(app, Method::POST, path, Some(&runner.secret), Some(body)).await
}

#[tokio::test]
async fn a_drained_runner_is_told_so_by_its_lease_calls_and_heartbeats() {
    let app = TestApp::start().await;
    admin(&app).await;
    let (_, token) = runner_token(&app, "default").await;
    let runner = register(&app, &token).await;
    let beat = heartbeat(&app, &runner, 3).await.expect(200).json();
    assert_eq!(beat, json!({"draining": false, "drained": false}));

    let listed = admin_call(&app, Method::GET, "/2/runners")
        .await
        .expect(200);
    let r = listed.json()["runners"][0].clone();
    let id = r["id"].as_str().unwrap().to_owned();
    assert_eq!(
        (
            &r["status"],
            &r["running"],
            &r["concurrency"],
            &r["version"]
        ),
        (&json!("active"), &json!(3), &json!(4), &json!("test"))
    );
    let clusters = admin_call(&app, Method::GET, "/2/clusters")
        .await
        .expect(200);
    let default = clusters.json()["clusters"][0].clone();
    assert_eq!(
        default,
        json!({"id": "default", "name": "default", "created_at": default["created_at"],
               "runners": 1, "runners_draining": 0, "capacity": 4, "running": 3})
    );
    let one = admin_call(&app, Method::GET, "/2/clusters/default").await;
    assert_eq!(one.expect(200).json()["cluster"]["id"], "default");

    // A lease call held open (nothing is queued) when the drain comes answers with the drain.
    let held = {
        let (base, secret) = (app.base.clone(), runner.secret.clone());
        tokio::spawn(async move {
            let body = json!({"max_tasks": 1, "wait_ms": 20_000});
            let resp = reqwest::Client::new()
                .post(format!("{base}/runner/v1/lease"))
                .bearer_auth(secret)
                .json(&body);
            resp.send().await.unwrap().json::<Value>().await.unwrap()
        })
    };
    let drained = admin_call(&app, Method::POST, &format!("/2/runners/{id}/drain")).await;
    let drained = drained.expect(200).json();
    assert_eq!(drained["runner"]["status"], "draining");
    assert_eq!(held.await.unwrap(), json!({"leases": [], "draining": true}));
    queued_task(&app).await;
    let body = json!({"max_tasks": 10, "wait_ms": 0});
    let leased = call(
        &app,
        Method::POST,
        "/runner/v1/lease",
        Some(&runner.secret),
        Some(body),
    );
    let leased = leased.await.expect(200).json();
    assert_eq!(
        leased,
        json!({"leases": [], "draining": true}),
        "a queued task is not leased to a draining runner"
    );

    let beat = heartbeat(&app, &runner, 1).await.expect(200).json();
    assert_eq!(beat, json!({"draining": true, "drained": false}));
    let beat = heartbeat(&app, &runner, 0).await.expect(200).json();
    assert_eq!(beat, json!({"draining": true, "drained": true}));
    let listed = admin_call(&app, Method::GET, "/2/runners?cluster=default").await;
    assert_eq!(listed.expect(200).json()["runners"][0]["status"], "drained");

    let unknown = admin_call(
        &app,
        Method::POST,
        "/2/runners/000000000000000000000000/drain",
    );
    assert_eq!(unknown.await.expect(404).msg(), "Runner not found");
    let unknown = admin_call(&app, Method::GET, "/2/clusters/nope").await;
    assert_eq!(unknown.expect(404).msg(), "Cluster not found");
}

#[tokio::test]
async fn bad_fleet_input_is_refused_naming_the_field() {
    let app = TestApp::start().await;
    admin(&app).await;
    let (_, token) = runner_token(&app, "default").await;
    let runner = register(&app, &token).await;
    let too_many = heartbeat(&app, &runner, 5000).await.expect(400).msg();
    assert!(too_many.contains("running"), "{too_many}");

    for (body, field) in [
        (
            json!({"hostname": "h", "concurrency": 0, "version": "v"}),
            "concurrency",
        ),
        (
            json!({"hostname": "h", "concurrency": 5000, "version": "v"}),
            "concurrency",
        ),
        (
            json!({"hostname": "h", "concurrency": 1, "version": "v".repeat(65)}),
            "version",
        ),
    ] {
        let path = "/runner/v1/register";
        let resp = call(&app, Method::POST, path, Some(&token), Some(body)).await;
        let msg = resp.expect(400).msg();
        assert!(msg.contains(field), "{msg}");
    }
    let bad = admin_call(&app, Method::GET, "/2/runners?cluster=no%20spaces").await;
    let msg = bad.expect(400).msg();
    assert!(msg.contains("cluster"), "{msg}");
    let listed = admin_call(&app, Method::GET, "/2/runners")
        .await
        .expect(200);
    assert_eq!(
        listed.json()["runners"].as_array().unwrap().len(),
        1,
        "refused registrations registered nothing"
    );
}
