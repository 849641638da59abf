//! `GET /openapi.json`: an OpenAPI 3 document of the whole API.
//!
//! Built from the route registry ([`crate::routes`]) like the router, so every served route is
//! listed with its path parameters and its auth kind (`x-ferrum-auth`), and nothing that is not
//! served. The object shapes are described in
//! prose by `docs/IRONWORKER.md` §4; the document stays deliberately small.

use std::sync::{Arc, OnceLock};

use axum::body::Bytes;
use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
use serde_json::{json, Map, Value};

use crate::routes::{Auth, Route};

/// The document for `routes`.
pub fn document(routes: &[Route]) -> Value {
    let mut paths = Map::new();
    for r in routes {
        let auth = r.auth_kind();
        let mut operation = json!({
            "summary": r.summary(),
            "parameters": path_parameters(r.path()),
            "responses": responses(r.path()),
            "x-ferrum-auth": auth.as_str(),
        });
        match auth {
            // Webhook deliveries carry their secret in the path, not a token.
            Auth::Public | Auth::WebhookSecret => operation["security"] = json!([]),
            Auth::Runner => operation["security"] = json!([{"runner": []}]),
            Auth::Tenant | Auth::Admin => {}
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

fn responses(path: &str) -> Value {
    let error = |what: &str| {
        json!({
            "description": what,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        })
    };
    let ok_type = if path.ends_with("/log") || path.ends_with("/outlog") {
        "text/plain; charset=utf-8"
    } else if path.ends_with("/download") {
        "application/zip"
    } else {
        "application/json"
    };
    json!({
        "200": {"description": "Success", "content": {ok_type: {}}},
        "400": error("Invalid input"),
        "401": error("Missing or invalid token"),
        "404": error("No such resource, or not the caller's"),
        "413": error("Payload or body too large"),
    })
}
