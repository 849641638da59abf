//! Users, tokens and runner tokens over HTTP: how a second tenant, and a runner, come to exist
//! without database access.

use reqwest::Method;
use serde_json::json;

use crate::common::{Body, TestApp};

const ADMIN: &str = "accounts-admin-token";

#[tokio::test]
async fn an_admin_creates_a_tenant_who_sees_only_their_own_projects() {
    let app = TestApp::start().await;
    ferrum_store::AccountStore::bootstrap_admin(&app.store, ADMIN)
        .await
        .unwrap();
    // POSTs `body` with `token` and answers the string field `field` of the 200 answer.
    let created = |path: &'static str, token: String, body: serde_json::Value, field| {
        let app = &app;
        async move {
            let answer = app
                .call(Method::POST, path, Some(&token), Body::Json(body))
                .await
                .expect(200)
                .json();
            answer[field].as_str().unwrap().to_owned()
        }
    };
    let alice = json!({"email": "alice@example.com"});
    let alice_token = created("/2/users", ADMIN.into(), alice, "token").await;
    assert_eq!(alice_token.len(), 64);
    let bob = json!({"email": "bob@example.com"});
    let bob_token = created("/2/users", ADMIN.into(), bob, "token").await;
    let mine = json!({"name": "alice's"});
    let project = created("/2/projects", alice_token.clone(), mine, "id").await;
    let path = format!("/2/projects/{project}");
    let seen_by = |token: String| {
        let (app, path) = (&app, path.clone());
        async move {
            app.call(Method::GET, &path, Some(&token), Body::None)
                .await
                .status
        }
    };
    assert_eq!(seen_by(alice_token.clone()).await, 200);
    assert_eq!(seen_by(ADMIN.into()).await, 200, "admins see every project");
    assert_eq!(
        seen_by(bob_token.clone()).await,
        404,
        "another tenant gets 404"
    );

    // A second token of alice's works like the first.
    let second = created("/2/tokens", alice_token, json!({}), "token").await;
    assert_eq!(seen_by(second).await, 200);
}

#[tokio::test]
async fn only_admins_create_users_and_runner_tokens() {
    let app = TestApp::start().await;
    let tenant = app.tenant("plain").await;
    let before = app.counts().await;
    for (path, body) in [
        ("/2/users", json!({"email": "eve@example.com"})),
        ("/2/runner_tokens", json!({"cluster": "default"})),
    ] {
        let r = app
            .call(
                Method::POST,
                path,
                Some(&tenant.token),
                Body::Json(body.clone()),
            )
            .await
            .expect(403);
        assert!(r.msg().contains("Only an admin"), "{}", r.msg());
        app.call(Method::POST, path, None, Body::Json(body))
            .await
            .expect(401);
    }
    assert_eq!(app.counts().await, before);
    ferrum_store::AccountStore::bootstrap_admin(&app.store, ADMIN)
        .await
        .unwrap();
    let r = app
        .call(Method::POST, "/2/users", Some(ADMIN), Body::Json(json!({})))
        .await
        .expect(400);
    assert!(r.msg().contains("email is required"), "{}", r.msg());
    app.call(
        Method::POST,
        "/2/users",
        Some(ADMIN),
        Body::Json(json!({"email": "x@y"})),
    )
    .await
    .expect(200);
    app.call(
        Method::POST,
        "/2/users",
        Some(ADMIN),
        Body::Json(json!({"email": "x@y"})),
    )
    .await
    .expect(409);
}

#[tokio::test]
async fn a_runner_token_from_the_api_registers_a_runner_of_its_cluster() {
    let app = TestApp::start().await;
    ferrum_store::AccountStore::bootstrap_admin(&app.store, ADMIN)
        .await
        .unwrap();
    let created = app
        .call(
            Method::POST,
            "/2/runner_tokens",
            Some(ADMIN),
            Body::Json(json!({"cluster": "gpu"})),
        )
        .await
        .expect(200)
        .json();
    assert_eq!(created["cluster"], "gpu");
    let token = created["token"].as_str().unwrap();
    let registered: serde_json::Value = reqwest::Client::new()
        .post(format!("{}/runner/v1/register", app.base))
        .bearer_auth(token)
        .json(&json!({"hostname": "h", "concurrency": 1, "version": "test"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(registered["cluster"], "gpu");
}
