//! Task results: what a worker writes to `RESULT_FILE`, sent by its runner after the task
//! ends (`PUT /runner/v1/tasks/{id}/result`, fenced like every runner call, before
//! `complete`) and read by tenants (`GET /2/projects/{pid}/tasks/{id}/result`).
//!
//! Results up to `ApiConfig::result_inline_bytes` are stored in the database; larger ones in
//! the blob store (S3 in production) under `results/{task}/{attempt}-{nonce}`, with the row
//! pointing at them. The cap (`ApiConfig::max_result_bytes`) is enforced by the runner, which never reads
//! more than the cap and one byte of the file and ends an over-cap task as `error`; the API
//! refuses a larger body all the same (413).

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use ferrum_model::protocol::ResultAck;
use ferrum_model::Id;
use ferrum_store::{Fenced, StoredResult};
use serde::Deserialize;

use crate::routes::Route;
use crate::runner_api::RunnerAuth;
use crate::tenant::{ProjectScope, TaskId};
use crate::{ApiConfig, ApiError, AppState};

/// The runner's call, with a body limit of the cap and one byte, so an over-cap body is
/// refused by the check below with a clear message rather than by the transport.
pub(crate) fn runner_routes(config: &ApiConfig) -> Vec<Route> {
    let limit = usize::try_from(config.max_result_bytes.saturating_add(1)).unwrap_or(usize::MAX);
    vec![Route::put(
        "/runner/v1/tasks/{id}/result",
        "Runner protocol: the task's result (?attempt=), raw body; before complete",
        put_result,
    )
    .with_body_limit(limit)]
}

pub(crate) fn tenant_routes() -> Vec<Route> {
    vec![Route::get(
        "/2/projects/{project_id}/tasks/{task_id}/result",
        "A task's result (what it wrote to RESULT_FILE): application/json when it parses as \
         JSON, else application/octet-stream; 404 when it returned none",
        get_result,
    )]
}

/// `application/json` when the bytes parse as JSON, else `application/octet-stream`.
pub fn content_type_of(bytes: &[u8]) -> &'static str {
    if serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok() {
        "application/json"
    } else {
        "application/octet-stream"
    }
}

/// The message of a task whose result is over the cap.
pub fn over_cap_msg(size: u64, cap: u64) -> String {
    format!("Result is {size} bytes, over the cap of {cap} bytes")
}

#[derive(Deserialize)]
struct AttemptQuery {
    attempt: i32,
}

async fn put_result(
    State(state): State<AppState>,
    RunnerAuth(runner): RunnerAuth,
    Path(id): Path<String>,
    Query(q): Query<AttemptQuery>,
    body: Bytes,
) -> Result<Json<ResultAck>, ApiError> {
    let task: Id = id
        .parse()
        .map_err(|_| ApiError::not_found("Task not found"))?;
    let size = body.len() as u64;
    let cap = state.config.max_result_bytes;
    if size > cap {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            over_cap_msg(size, cap),
        ));
    }
    let content_type = content_type_of(&body).to_owned();
    let size_i = i64::try_from(size).unwrap_or(i64::MAX);
    let (stored, blob_key) = if size > state.config.result_inline_bytes {
        // A key of its own per upload: a refused upload (stale, or not this runner's) deletes
        // only what it wrote, never the current attempt's result.
        let key = format!("results/{task}/{}-{}", q.attempt, Id::generate());
        state.blobs.put(&key, body).await?;
        let stored = StoredResult {
            size: size_i,
            content_type,
            data: None,
            blob_key: Some(key.clone()),
        };
        (stored, Some(key))
    } else {
        let stored = StoredResult {
            size: size_i,
            content_type,
            data: Some(body.to_vec()),
            blob_key: None,
        };
        (stored, None)
    };
    match state
        .store
        .put_result(task, runner.runner_id, q.attempt, stored)
        .await?
    {
        Fenced::Current(()) => Ok(Json(ResultAck { size })),
        refused => {
            if let Some(key) = blob_key {
                if let Err(e) = state.blobs.delete(&key).await {
                    tracing::warn!(error = %e, key, "could not delete a refused attempt's result");
                }
            }
            crate::runner_api::current(refused).map(|()| Json(ResultAck { size }))
        }
    }
}

/// The result's content type and bytes, if the task has one.
pub async fn load(
    state: &AppState,
    project: Id,
    task: Id,
) -> Result<Option<(String, Bytes)>, ApiError> {
    let Some(stored) = state.store.result(project, task).await? else {
        return Ok(None);
    };
    let bytes = match (stored.data, stored.blob_key) {
        (Some(data), _) => Bytes::from(data),
        (None, Some(key)) => state.blobs.get(&key).await?.ok_or_else(|| {
            tracing::error!(key, %task, "a task's result is missing from the blob store");
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal error")
        })?,
        (None, None) => Bytes::new(),
    };
    Ok(Some((stored.content_type, bytes)))
}

async fn get_result(
    ProjectScope(project): ProjectScope,
    TaskId(id): TaskId,
    State(state): State<AppState>,
) -> Result<Response, ApiError> {
    crate::tenant::find_task(&state, project.id, id).await?;
    let (content_type, bytes) = load(&state, project.id, id)
        .await?
        .ok_or_else(|| ApiError::not_found("The task has no result"))?;
    Ok(([(header::CONTENT_TYPE, content_type)], bytes).into_response())
}
