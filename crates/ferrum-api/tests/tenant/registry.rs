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
        .filter(|r| r.is_api())
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

/// Every `maxLength`/`maxProperties` in the document is the bound of a limit of that field in
/// `ferrum_model::limits`, and every limit a body can carry shows up: the document and the
/// validation come from the same constants.
#[tokio::test]
async fn the_documents_bounds_are_the_limits_constants() {
    use ferrum_model::limits::{self, ALL};
    let app = TestApp::start().await;
    let doc = app
        .call(Method::GET, "/openapi.json", None, Body::None)
        .await
        .expect(200)
        .json();
    let mut found = BTreeSet::new();
    walk(&doc, None, &mut found);
    assert!(!found.is_empty());
    let t3 = &doc["paths"]["/2/projects/{project_id}/tasks/webhook"]["post"]["parameters"];
    let code_name = t3
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "code_name");
    assert_eq!(code_name.unwrap()["required"], true);
    assert!(found.contains(&("cluster".to_owned(), 64)));
    for (field, max) in &found {
        let same = |l: &&limits::Limit| {
            l.max as u64 == *max
                && (l.field == field
                    || (field == "name" && l.field == "code_name")
                    || (field == "env_vars name" && l.field == "env_vars name")
                    || (field == "env_vars value" && l.field == "env_vars value"))
        };
        assert!(ALL.iter().any(|l| same(&l)), "{field}: {max} is no limit");
    }
    let documented: BTreeSet<_> = found.iter().map(|(_, max)| *max).collect();
    let not_in_bodies = [
        "Idempotency-Key",
        "hostname",
        "env_vars total",
        "misfire",
        "signature",
    ];
    for l in ALL.iter().filter(|l| !not_in_bodies.contains(&l.field)) {
        assert!(
            documented.contains(&(l.max as u64)),
            "{} is not documented",
            l.field
        );
    }
}

/// (property name, bound) of every bounded schema under `value`.
fn walk(value: &serde_json::Value, name: Option<&str>, out: &mut BTreeSet<(String, u64)>) {
    match value {
        serde_json::Value::Object(map) => {
            for key in ["maxLength", "maxProperties"] {
                if let (Some(name), Some(max)) = (name, map.get(key).and_then(|m| m.as_u64())) {
                    out.insert((name.to_owned(), max));
                }
            }
            if let Some(props) = map.get("properties").and_then(|p| p.as_object()) {
                for (k, v) in props {
                    walk(v, Some(k), out);
                }
            }
            // A query parameter's schema is bounded by the limit of its name.
            let param = map
                .get("in")
                .filter(|i| *i == "query")
                .and(map.get("name"))
                .and_then(|n| n.as_str());
            let name = param.or(name);
            for (k, v) in map {
                match k.as_str() {
                    "properties" => {}
                    "propertyNames" => walk(v, Some("env_vars name"), out),
                    "additionalProperties" => walk(v, Some("env_vars value"), out),
                    "items" | "x-json" | "schema" => walk(v, name, out),
                    _ => walk(v, None, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| walk(v, None, out)),
        _ => {}
    }
}
