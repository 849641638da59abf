//! T5 `log` and T6 `outlog`: a task's output as text (contract §3.3).
//!
//! Both are `text/plain; charset=utf-8` whatever the request's `Accept` says: the Python client
//! sends `Accept: application/json` here, and without the charset `requests` would decode UTF-8
//! output as ISO-8859-1. Before the task has started there is no log: 404 with a JSON `msg`,
//! which the clients' "wait for output" helpers retry on.

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use ferrum_model::Id;

use super::auth::ProjectScope;
use super::extract::TaskId;
use super::tasks::find_task;
use super::Route;
use crate::{ApiError, AppState};

pub fn routes() -> Vec<Route> {
    vec![
        Route::get(
            "/2/projects/{project_id}/tasks/{task_id}/log",
            "A task's stdout and stderr as text; 404 until it has started",
            log,
        ),
        Route::get(
            "/2/projects/{project_id}/tasks/{task_id}/outlog",
            "A task's stdout as text; 404 until it has started",
            outlog,
        ),
    ]
}

async fn log(
    ProjectScope(project): ProjectScope,
    TaskId(id): TaskId,
    State(state): State<AppState>,
) -> Result<impl IntoResponse, ApiError> {
    text_log(&state, project.id, id, false).await
}

async fn outlog(
    ProjectScope(project): ProjectScope,
    TaskId(id): TaskId,
    State(state): State<AppState>,
) -> Result<impl IntoResponse, ApiError> {
    text_log(&state, project.id, id, true).await
}

/// Looks the task up first so that an unknown task and a task not yet started get different
/// messages (both 404).
async fn text_log(
    state: &AppState,
    project: Id,
    id: Id,
    stdout_only: bool,
) -> Result<impl IntoResponse, ApiError> {
    let task = find_task(state, project, id).await?;
    let log = state
        .store
        .read_log(project, id, stdout_only)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("No log yet: the task is {}", task.status)))?;
    Ok(([(CONTENT_TYPE, "text/plain; charset=utf-8")], log))
}
