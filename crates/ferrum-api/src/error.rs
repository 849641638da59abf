//! The one mapping from failures to HTTP answers: a status and `{"msg": "…"}` with
//! `Content-Type: application/json` (contract §2).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ferrum_model::ValidationError;
use ferrum_store::StoreError;

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub msg: String,
    /// Seconds for a `Retry-After` header (429 answers).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, msg: impl Into<String>) -> Self {
        ApiError {
            status,
            msg: msg.into(),
            retry_after: None,
        }
    }

    pub fn bad_request(msg: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, msg)
    }

    pub fn not_found(msg: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, msg)
    }

    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "Invalid or missing token")
    }

    pub fn conflict(msg: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, msg)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "msg": self.msg }).to_string();
        let mut response = (
            self.status,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        response
    }
}

/// The answer for a path no route matches.
pub async fn no_such_route() -> ApiError {
    ApiError::not_found("No such route")
}

/// The answer for a known path called with a method it does not serve.
pub async fn method_not_allowed() -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed")
}

impl From<ValidationError> for ApiError {
    fn from(e: ValidationError) -> Self {
        let status = match e {
            ValidationError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError::new(status, e.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::UnknownCode(name) => {
                ApiError::not_found(format!("Code {name:?} not found"))
            }
            StoreError::Conflict(msg) => ApiError::new(StatusCode::CONFLICT, msg),
            StoreError::LimitReached(msg) => ApiError::new(StatusCode::FORBIDDEN, msg),
            // Refused before anything was written: a 429 the client may retry (never a 503,
            // which the official clients retry on their own).
            StoreError::QuotaExceeded {
                msg,
                retry_after_secs,
            } => ApiError {
                retry_after: Some(retry_after_secs),
                ..ApiError::new(StatusCode::TOO_MANY_REQUESTS, msg)
            },
            other => {
                tracing::error!(error = %other, "store error");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal error")
            }
        }
    }
}

impl From<ferrum_blob::BlobError> for ApiError {
    fn from(e: ferrum_blob::BlobError) -> Self {
        tracing::error!(error = %e, "blob store error");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal error")
    }
}
