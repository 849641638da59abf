//! `GET /openapi.json`: an OpenAPI 3 document of the whole API.
//!
//! Built from the route registry ([`crate::routes`]) like the router, so every served route is
//! listed with its path and query parameters, its auth kind (`x-ferrum-auth`), its request body (a JSON
//! schema carrying the limits of `ferrum_model::limits`, [`bodies`]) and every 4xx it can
//! answer, and nothing that is not served, so a schema fuzzer can exercise every route. The
//! response objects are described in prose by `docs/IRONWORKER.md` §4.

use std::sync::{Arc, OnceLock};

use axum::body::Bytes;
use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
use serde_json::{json, Map, Value};

use crate::routes::{Auth, Route};

pub mod bodies;

/// A request body as the document describes it.
pub struct Body {
    pub content_type: &'static str,
    pub schema: Value,
}

/// The document for `routes`.
pub fn document(routes: &[Route]) -> Value {
    let mut paths = Map::new();
    // The dashboard's pages are HTML for browsers, not API operations.
    for r in routes.iter().filter(|r| r.is_api()) {
        let auth = r.auth_kind();
        let mut operation = json!({
            "summary": r.summary(),
            "parameters": path_parameters(r.path())
                .into_iter()
                .chain(r.query_parameters().iter().cloned())
                .collect::<Vec<_>>(),
            "responses": responses(r),
            "x-ferrum-auth": auth.as_str(),
        });
        if let Some(body) = r.request_body() {
            // A JSON body is optional (IronWorker's clients send none for `{}`) unless its
            // schema requires a field.
            let requires_field = body.schema["required"]
                .as_array()
                .is_some_and(|r| !r.is_empty());
            operation["requestBody"] = json!({
                "required": body.content_type != "application/json" || requires_field,
                "content": {body.content_type: {"schema": body.schema}},
            });
        }
        match auth {
            // Webhook deliveries carry their secret in the path, not a token.
            Auth::Public | Auth::WebhookSecret => operation["security"] = json!([]),
            Auth::Runner => operation["security"] = json!([{"runner": []}]),
            Auth::Tenant | Auth::Admin | Auth::Session => {}
        }
        let entry = paths.entry(r.path()).or_insert_with(|| json!({}));
        entry[r.method().as_str().to_ascii_lowercase()] = operation;
    }
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "Ferrum",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "IronWorker v2 compatible task queue. Tokens go in \
                `Authorization: OAuth <token>` (or `Bearer <token>`), or in `?oauth=<token>`. \
                Bodies are JSON whatever their Content-Type; every answer but logs and \
                downloads is a JSON object, errors are {\"msg\": \"…\"}.",
        },
        "security": [{"header": []}, {"query": []}],
        "components": {
            "securitySchemes": {
                "header": {"type": "apiKey", "in": "header", "name": "Authorization"},
                "query": {"type": "apiKey", "in": "query", "name": "oauth"},
                "runner": {"type": "http", "scheme": "bearer"},
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "properties": {"msg": {"type": "string"}},
                    "required": ["msg"],
                },
            },
        },
        "paths": paths,
    })
}

/// `GET /openapi.json`, serving the document the router sets once every route is known.
pub fn route(document: Arc<OnceLock<Bytes>>) -> Route {
    Route::get("/openapi.json", "This document", move || {
        let body = document.get().cloned();
        async move {
            match body {
                Some(body) => Ok(([(CONTENT_TYPE, "application/json")], body)),
                None => Err(StatusCode::SERVICE_UNAVAILABLE),
            }
        }
    })
}

/// `{name}` segments of a path, as OpenAPI path parameters.
fn path_parameters(path: &str) -> Vec<Value> {
    path.split('/')
        .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
        .map(|name| {
            let schema = if name.ends_with("_id") {
                json!({"type": "string", "pattern": "^[0-9a-f]{24}$"})
            } else {
                json!({"type": "string"})
            };
            json!({"name": name, "in": "path", "required": true, "schema": schema})
        })
        .collect()
}

/// Every answer of `route`: 200, the 4xx of its auth kind and method, and its own.
fn responses(route: &Route) -> Value {
    let path = route.path();
    let ok_type = if path.ends_with("/log") || path.ends_with("/outlog") {
        "text/plain; charset=utf-8"
    } else if path.ends_with("/download") || path.ends_with("/zip") {
        "application/zip"
    } else if path == "/metrics" {
        "application/openmetrics-text"
    } else {
        "application/json"
    };
    let mut out = Map::new();
    out.insert(
        "200".into(),
        json!({"description": "Success", "content": {ok_type: {}}}),
    );
    for status in error_statuses(route) {
        out.insert(
            status.to_string(),
            json!({
                "description": describe(status),
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            }),
        );
    }
    Value::Object(out)
}

/// The 4xx (and 5xx by design) statuses `route` can answer, sorted.
pub fn error_statuses(route: &Route) -> Vec<u16> {
    let mut statuses: Vec<u16> = match route.auth_kind() {
        Auth::Public => vec![],
        Auth::Tenant => vec![400, 401, 404],
        // An admin route about one object answers 404 when there is none.
        Auth::Admin if route.path().contains('{') => vec![400, 401, 403, 404],
        Auth::Admin => vec![400, 401, 403],
        // axum's JSON extractor answers 415 and 422 for bodies it cannot take.
        Auth::Runner => vec![400, 401, 404, 409, 415, 422],
        Auth::WebhookSecret => vec![400, 401, 404],
        Auth::Session => vec![400, 403, 404],
    };
    let has_body =
        route.request_body().is_some() || matches!(route.method().as_str(), "POST" | "PUT");
    if has_body && route.auth_kind() != Auth::Public {
        statuses.push(413);
    }
    statuses.extend(route.extra_errors());
    statuses.sort_unstable();
    statuses.dedup();
    statuses
}

fn describe(status: u16) -> &'static str {
    match status {
        400 => "Invalid input: msg names the field and the limit",
        401 => "Missing or invalid token (or webhook signature)",
        403 => "Not allowed for this caller, or a limit reached",
        404 => "No such resource, or not the caller's",
        409 => "Conflicts with the resource's state (e.g. a stale lease attempt)",
        413 => "Payload or body too large",
        415 => "Body is not JSON",
        422 => "JSON body of the wrong shape",
        429 => "A project quota (queued tasks, tasks per minute) refused it; nothing was written; Retry-After says when to try again",
        501 => "Not supported yet",
        _ => "Error",
    }
}
