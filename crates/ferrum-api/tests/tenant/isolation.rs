//! Tenant isolation beyond the registry-generated sweep (`sweep.rs`, which calls every route
//! with another tenant's token): the `?oauth=` token, and the routes outside any project.

use reqwest::Method;
use serde_json::json;

use crate::common::{Body, TestApp};

#[tokio::test]
async fn the_query_token_is_checked_like_the_header() {
    let app = TestApp::start().await;
    let a = app.tenant("alpha").await;
    let b = app.tenant("beta").await;
    app.hello_code(&a, "hello").await;
    let path = |token: &str| {
        format!(
            "/2/projects/{}/tasks/webhook?code_name=hello&oauth={token}",
            a.project
        )
    };
    let before = app.counts().await;
    let resp = app
        .call(
            Method::POST,
            &path(&b.token),
            None,
            Body::Raw(b"x".to_vec()),
        )
        .await;
    assert_eq!(resp.status, 404);
    let resp = app
        .call(Method::POST, &path("nope"), None, Body::Raw(b"x".to_vec()))
        .await;
    assert_eq!(resp.status, 401);
    assert_eq!(app.counts().await, before);
    let resp = app
        .call(
            Method::POST,
            &path(&a.token),
            None,
            Body::Raw(b"x".to_vec()),
        )
        .await;
    assert_eq!(resp.status, 200);
}

#[tokio::test]
async fn routes_outside_projects_need_a_token_and_show_only_the_callers_projects() {
    let app = TestApp::start().await;
    let a = app.tenant("alpha").await;
    let b = app.tenant("beta").await;
    for (method, path) in [
        (Method::GET, "/2/projects"),
        (Method::POST, "/2/projects"),
        (Method::GET, "/2/stacks"),
    ] {
        let resp = app
            .call(method.clone(), path, None, Body::Json(json!({"name": "x"})))
            .await;
        assert_eq!(resp.status, 401, "{method} {path}");
    }
    let listed = app.get(&b, "/2/projects").await.expect(200).json();
    let ids: Vec<&str> = listed["projects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [b.project.to_string()]);
    assert!(!ids.contains(&a.project.to_string().as_str()));
}
