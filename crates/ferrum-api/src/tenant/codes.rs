//! Code routes other than the upload (contract §3.2 C1, C3–C10).

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use chrono::{Duration, Utc};
use ferrum_model::{Code, Id, TaskStatus};
use serde::{Deserialize, Serialize};

use super::auth::ProjectScope;
use super::extract::{unix_time, CodeId, PageArgs, QueryArgs};
use super::render::{CodeJson, Msg, RevisionJson};
use super::Route;
use crate::openapi::bodies;
use crate::{ApiError, AppState};

const CODE: &str = "/2/projects/{project_id}/codes/{code_id}";

pub fn routes() -> Vec<Route> {
    vec![
        Route::get("/2/projects/{project_id}/codes", "List codes, newest first", list)
            .query(bodies::paging()),
        Route::get(CODE, "Get a code", get_code),
        Route::delete(
            CODE,
            "Delete a code; its unfinished tasks and its schedules are cancelled",
            delete_code,
        ),
        Route::get(
            "/2/projects/{project_id}/codes/{code_id}/revisions",
            "List a code's revisions, newest first",
            revisions,
        )
        .query(bodies::paging()),
        Route::get(
            "/2/projects/{project_id}/codes/{code_id}/download",
            "Download a revision's zip (?revision=N; the latest by default)",
            download,
        )
        .query(bodies::download_query()),
        Route::get(
            "/2/projects/{project_id}/codes/{code_id}/stats",
            "Task counts per status (?start_date=&end_date= in Unix seconds; the last 24 h by default)",
            stats,
        )
        .query(bodies::stats_query()),
        Route::post(
            "/2/projects/{project_id}/codes/{code_id}/pause_task_queue",
            "Hold the code's queued tasks and schedules",
            pause,
        ),
        Route::post(
            "/2/projects/{project_id}/codes/{code_id}/resume_task_queue",
            "Release the code's queued tasks and schedules",
            resume,
        ),
        Route::post(
            "/2/projects/{project_id}/codes/{code_id}/cancel_all",
            "Cancel every unfinished task of the code",
            cancel_all,
        ),
    ]
}

/// The code, or 404.
async fn find_code(state: &AppState, project: Id, id: Id) -> Result<Code, ApiError> {
    state
        .store
        .code(project, id)
        .await?
        .ok_or_else(|| ApiError::not_found("Code not found"))
}

#[derive(Serialize)]
struct CodeList {
    codes: Vec<CodeJson>,
}

async fn list(
    ProjectScope(project): ProjectScope,
    State(state): State<AppState>,
    QueryArgs(args): QueryArgs<PageArgs>,
) -> Result<Json<CodeList>, ApiError> {
    let codes = state.store.codes(project.id, args.page()).await?;
    Ok(Json(CodeList {
        codes: codes.iter().map(CodeJson::from).collect(),
    }))
}

async fn get_code(
    ProjectScope(project): ProjectScope,
    CodeId(id): CodeId,
    State(state): State<AppState>,
) -> Result<Json<CodeJson>, ApiError> {
    let code = find_code(&state, project.id, id).await?;
    Ok(Json(CodeJson::from(&code)))
}

async fn delete_code(
    ProjectScope(project): ProjectScope,
    CodeId(id): CodeId,
    State(state): State<AppState>,
) -> Result<Json<Msg>, ApiError> {
    if !state.store.delete_code(project.id, id).await? {
        return Err(ApiError::not_found("Code not found"));
    }
    // Its zips go once no unfinished task needs them (its tasks were just cancelled).
    crate::zip_gc::kick(&state);
    Ok(Json(Msg::new("Deleted")))
}

#[derive(Serialize)]
struct RevisionList {
    revisions: Vec<RevisionJson>,
}

async fn revisions(
    ProjectScope(project): ProjectScope,
    CodeId(id): CodeId,
    State(state): State<AppState>,
    QueryArgs(args): QueryArgs<PageArgs>,
) -> Result<Json<RevisionList>, ApiError> {
    let code = find_code(&state, project.id, id).await?;
    let revisions = state
        .store
        .revisions(project.id, code.id, args.page())
        .await?;
    Ok(Json(RevisionList {
        revisions: revisions.iter().map(RevisionJson::from).collect(),
    }))
}

#[derive(Deserialize)]
struct DownloadArgs {
    revision: Option<i32>,
}

/// The zip as uploaded, named `<name>_<rev>.zip` in a bare `filename=` disposition: the Python
/// client strips exactly that prefix (contract §3.2 C6).
async fn download(
    ProjectScope(project): ProjectScope,
    CodeId(id): CodeId,
    State(state): State<AppState>,
    QueryArgs(args): QueryArgs<DownloadArgs>,
) -> Result<impl IntoResponse, ApiError> {
    let code = find_code(&state, project.id, id).await?;
    let revision = state
        .store
        .revision_of(project.id, code.id, args.revision)
        .await?
        .ok_or_else(|| ApiError::not_found("Revision not found"))?;
    let zip = revision.zip.ok_or_else(|| {
        ApiError::not_found(format!(
            "Revision {} has no zip: it runs an image",
            revision.rev
        ))
    })?;
    let bytes = state.blobs.get(&zip.key).await?.ok_or_else(|| {
        tracing::error!(key = %zip.key, "a revision's zip is missing from the blob store");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("The zip of revision {} is missing", revision.rev),
        )
    })?;
    let disposition = format!("filename={}_{}.zip", file_safe(&code.name), revision.rev);
    Ok((
        [
            (CONTENT_TYPE, "application/zip".to_owned()),
            (CONTENT_DISPOSITION, disposition),
        ],
        bytes,
    ))
}

/// Code names may hold `/`, `:` or anything else; a header and a file name may not.
fn file_safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[derive(Deserialize)]
struct StatsArgs {
    start_date: Option<i64>,
    end_date: Option<i64>,
}

async fn stats(
    ProjectScope(project): ProjectScope,
    CodeId(id): CodeId,
    State(state): State<AppState>,
    QueryArgs(args): QueryArgs<StatsArgs>,
) -> Result<Json<BTreeMap<&'static str, i64>>, ApiError> {
    let code = find_code(&state, project.id, id).await?;
    let to = match args.end_date {
        Some(secs) => unix_time("end_date", secs)?,
        None => Utc::now(),
    };
    let from = match args.start_date {
        Some(secs) => unix_time("start_date", secs)?,
        None => to - Duration::hours(24),
    };
    let counts = state
        .store
        .code_stats(project.id, code.id, from, to)
        .await?;
    Ok(Json(
        TaskStatus::ALL
            .into_iter()
            .map(|s| (s.as_str(), counts.get(&s).copied().unwrap_or(0)))
            .collect(),
    ))
}

async fn pause(
    ProjectScope(project): ProjectScope,
    CodeId(id): CodeId,
    State(state): State<AppState>,
) -> Result<Json<Msg>, ApiError> {
    match state.store.set_paused(project.id, id, true).await? {
        Some(true) => Ok(Json(Msg::new("Paused"))),
        Some(false) => Ok(Json(Msg::new("Already paused"))),
        None => Err(ApiError::not_found("Code not found")),
    }
}

/// Resuming may make held tasks runnable, so waiting runners are woken.
async fn resume(
    ProjectScope(project): ProjectScope,
    CodeId(id): CodeId,
    State(state): State<AppState>,
) -> Result<Json<Msg>, ApiError> {
    match state.store.set_paused(project.id, id, false).await? {
        Some(true) => {
            state.queue.wake();
            Ok(Json(Msg::new("Resumed")))
        }
        Some(false) => Ok(Json(Msg::new("Already resumed"))),
        None => Err(ApiError::not_found("Code not found")),
    }
}

async fn cancel_all(
    ProjectScope(project): ProjectScope,
    CodeId(id): CodeId,
    State(state): State<AppState>,
) -> Result<Json<Msg>, ApiError> {
    let code = find_code(&state, project.id, id).await?;
    let cancelled = state.store.cancel_all(project.id, code.id).await?;
    Ok(Json(Msg::new(format!("Cancelled {cancelled} tasks"))))
}
