//! Lenient request parsing (contract §2).
//!
//! The official clients disagree on headers: Python's `cancel` sends no body and no
//! `Content-Type`, Ruby sends `{}` on DELETE, Go sends `{}` even on GET and seconds as floats,
//! and everyone sends `null` for unset options. So bodies are parsed as JSON whatever their
//! content type, an empty body counts as `{}`, unknown fields are ignored and every optional
//! field accepts `null`. Every rejection here is an [`ApiError`] with a `msg`.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Query, RawPathParams, Request};
use axum::http::request::Parts;
use chrono::{DateTime, Datelike, Utc};
use ferrum_model::{Id, Page};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::ApiError;

/// The raw body, whatever its content type, within the route's body limit (413 past it).
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        Bytes::from_request(req, state)
            .await
            .map(RawBody)
            .map_err(|r| ApiError::new(r.status(), r.body_text()))
    }
}

/// A JSON body, parsed leniently.
pub struct LenientJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for LenientJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let RawBody(body) = RawBody::from_request(req, state).await?;
        parse_json(&body).map(LenientJson)
    }
}

/// Parses JSON, treating an empty (or all-whitespace) body as `{}`. Strings holding NUL are
/// refused here, once for every route: Postgres text columns cannot store them, and a name or
/// label with one would otherwise fail deep in the store as a 500. A value of the wrong type
/// is named by its path (`cpus: invalid type: string "x", expected f64`): serde alone does not
/// say which field it was.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let body = if body.trim_ascii().is_empty() {
        b"{}"
    } else {
        body
    };
    fn malformed(e: impl std::fmt::Display) -> ApiError {
        ApiError::bad_request(format!("Malformed JSON: {e}"))
    }
    let mut value: Value = serde_json::from_slice(body).map_err(malformed)?;
    // Every body of this API is an object (`null` reads as an empty one, as no body does);
    // serde would read an array as a struct's fields in order and answer about the first one.
    if value.is_null() {
        value = Value::Object(serde_json::Map::new());
    }
    if !value.is_object() {
        return Err(ApiError::bad_request("the body must be a JSON object"));
    }
    if holds_nul(&value) {
        return Err(ApiError::bad_request(
            "JSON strings must not contain NUL characters (\\u0000)",
        ));
    }
    serde_path_to_error::deserialize(value).map_err(malformed)
}

fn holds_nul(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(holds_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || holds_nul(v)),
        _ => false,
    }
}

/// Query parameters, with a JSON `{"msg"}` answer when they do not parse. NUL is refused for
/// the reason [`parse_json`] gives.
pub struct QueryArgs<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for QueryArgs<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or_default();
        if query.to_ascii_lowercase().contains("%00") {
            return Err(ApiError::bad_request(
                "Query parameters must not contain NUL characters",
            ));
        }
        Query::try_from_uri(&parts.uri)
            .map(|q| QueryArgs(q.0))
            .map_err(|r| ApiError::bad_request(r.body_text()))
    }
}

/// `?page=&per_page=` of the list routes; clamped, not refused (contract §2).
#[derive(serde::Deserialize)]
pub struct PageArgs {
    page: Option<u32>,
    per_page: Option<u32>,
}

impl PageArgs {
    pub fn page(&self) -> Page {
        Page::new(self.page, self.per_page)
    }
}

/// The id in the path segment `param`, or `None` when it is missing or not an id.
pub async fn path_id(parts: &mut Parts, param: &str) -> Option<Id> {
    let params = RawPathParams::from_request_parts(parts, &()).await.ok()?;
    let raw = params.iter().find(|(k, _)| *k == param)?.1;
    raw.parse().ok()
}

/// Declares an extractor for one id path segment. An id that does not parse names nothing,
/// so it is answered like an unknown one: 404 (contract §2 "IDs").
macro_rules! path_id_extractor {
    ($name:ident, $param:literal, $what:literal) => {
        #[doc = concat!("The id in the `{", $param, "}` path segment.")]
        pub struct $name(pub Id);

        impl<S: Send + Sync> FromRequestParts<S> for $name {
            type Rejection = ApiError;

            async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
                path_id(parts, $param)
                    .await
                    .map($name)
                    .ok_or_else(|| ApiError::not_found(concat!($what, " not found")))
            }
        }
    };
}

path_id_extractor!(CodeId, "code_id", "Code");
path_id_extractor!(TaskId, "task_id", "Task");
path_id_extractor!(ScheduleId, "schedule_id", "Schedule");
path_id_extractor!(WebhookId, "webhook_id", "Webhook");
path_id_extractor!(BatchId, "batch_id", "Batch");

/// A payload field: normally a string, kept byte for byte. `null` or absent is empty; any other
/// JSON value is kept as its JSON text, for clients that send an object instead of a string.
pub fn payload_bytes(value: Option<Value>) -> Vec<u8> {
    match value {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => s.into_bytes(),
        Some(other) => other.to_string().into_bytes(),
    }
}

/// Whole seconds or counts from JSON numbers that may carry a fraction (Go sends floats):
/// truncated, and saturated at the `i32` range.
pub fn whole(value: Option<f64>) -> Option<i32> {
    value.map(|v| v.trunc() as i32)
}

/// A time given as Unix seconds, as the `from_time`/`to_time` (T1) and `start_date`/`end_date`
/// (C7) query parameters are.
pub fn unix_time(what: &str, secs: i64) -> Result<DateTime<Utc>, ApiError> {
    DateTime::from_timestamp(secs, 0)
        .ok_or_else(|| ApiError::bad_request(format!("{what} is out of range")))
}

/// An optional RFC 3339 time. `""` and the year-1 "unset" value (which clients echo back from
/// our own answers) mean absent; anything else that does not parse is a 400.
pub fn optional_time(what: &str, raw: Option<&str>) -> Result<Option<DateTime<Utc>>, ApiError> {
    match raw.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(text) => ferrum_model::time::parse(text)
            .map(|t| Some(t).filter(|t| t.year() > 1))
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "{what} must be an RFC 3339 time such as 2030-01-01T12:00:00Z, got {text:?}"
                ))
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_bodies_are_empty_objects_and_garbage_is_refused() {
        let v: Value = parse_json(b" \r\n").unwrap();
        assert_eq!(v, serde_json::json!({}));
        let err = parse_json::<Value>(b"{\"tasks\": [").unwrap_err();
        assert_eq!(err.status, axum::http::StatusCode::BAD_REQUEST);
        assert!(err.msg.starts_with("Malformed JSON"), "{}", err.msg);
        let err = parse_json::<Value>(b"[1, 2]").unwrap_err();
        assert_eq!(err.msg, "the body must be a JSON object");
        assert_eq!(parse_json::<Value>(b"null").unwrap(), serde_json::json!({}));
        let err = parse_json::<Value>(br#"{"label": ["a\u0000b"]}"#).unwrap_err();
        assert!(err.msg.contains("NUL"), "{}", err.msg);
    }

    #[test]
    fn payloads_keep_strings_and_serialize_other_values() {
        assert_eq!(
            payload_bytes(Some(Value::String("{\"a\": 1}".into()))),
            b"{\"a\": 1}"
        );
        assert_eq!(
            payload_bytes(Some(serde_json::json!({"a": 1}))),
            b"{\"a\":1}"
        );
        assert!(payload_bytes(Some(Value::Null)).is_empty());
    }

    #[test]
    fn unset_times_are_absent_and_bad_ones_refused() {
        assert_eq!(
            optional_time("t", Some("0001-01-01T00:00:00Z")).unwrap(),
            None
        );
        assert_eq!(optional_time("t", Some("")).unwrap(), None);
        assert!(optional_time("t", Some("2030-01-01T12:00:00+00:00"))
            .unwrap()
            .is_some());
        assert!(optional_time("t", Some("tomorrow")).is_err());
    }
}
