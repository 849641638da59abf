//! The route registry is the one list: the served OpenAPI document names exactly its routes,
//! each with the registry's auth kind.

use std::collections::BTreeSet;

use ferrum_api::routes::{registry, Auth};
use ferrum_api::ApiConfig;
use reqwest::Method;

use crate::common::{Body, TestApp};

#[tokio::test]
async fn the_document_lists_exactly_the_registry_with_auth_kinds() {
    let app = TestApp::start().await;
    let doc = app
        .call(Method::GET, "/openapi.json", None, Body::None)
        .await
        .expect(200)
        .json();
    let routes = registry(&ApiConfig::default());
    let mut documented = BTreeSet::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            let auth = op["x-ferrum-auth"].as_str().unwrap_or("none").to_owned();
            documented.insert((method.to_uppercase(), path.clone(), auth));
        }
    }
    let registered: BTreeSet<_> = routes
        .iter()
        .map(|r| {
            let auth = r.auth_kind().as_str().to_owned();
            (r.method().to_string(), r.path().to_owned(), auth)
        })
        .collect();
    assert_eq!(documented, registered);
    let kind = |method: &str, path: &str| {
        routes
            .iter()
            .find(|r| r.method().as_str() == method && r.path() == path)
            .map(|r| r.auth_kind())
    };
    assert_eq!(kind("POST", "/2/users"), Some(Auth::Admin));
    assert_eq!(kind("POST", "/2/tokens"), Some(Auth::Tenant));
    assert_eq!(kind("POST", "/webhooks/{token}"), Some(Auth::WebhookSecret));
    assert_eq!(kind("POST", "/runner/v1/lease"), Some(Auth::Runner));
    assert_eq!(kind("GET", "/openapi.json"), Some(Auth::Public));
}
