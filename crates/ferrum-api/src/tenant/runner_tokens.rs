//! Listing and revoking runner tokens (admin only; `POST /2/runner_tokens` creates them, in
//! `accounts.rs`):
//!
//! - `GET /2/runner_tokens`: every runner token with its id, cluster, `created_at`,
//!   `last_used_at` (a runner last registered with it) and `revoked_at`. Never the token: only
//!   its hash is stored.
//! - `DELETE /2/runner_tokens/{id}`: revokes the token. Later calls with it get 401, and so do
//!   the runners it registered: their leases run out and the reaper requeues their tasks.

use axum::extract::{Path, State};
use axum::Json;
use chrono::{DateTime, Utc};
use ferrum_model::Id;
use serde::Serialize;

use super::accounts::require_admin;
use super::auth::Caller;
use super::Route;
use crate::routes::Auth;
use crate::{ApiError, AppState};

pub fn routes() -> Vec<Route> {
    vec![
        Route::get(
            "/2/runner_tokens",
            "List runner tokens (admin only): id, cluster, created_at, last_used_at, revoked_at; \
             never the token",
            list,
        )
        .auth(Auth::Admin),
        Route::delete(
            "/2/runner_tokens/{id}",
            "Revoke a runner token (admin only): it and the runners it registered get 401 from \
             then on",
            revoke,
        )
        .auth(Auth::Admin),
    ]
}

#[derive(Serialize)]
struct RunnerTokenView {
    id: Id,
    cluster: String,
    created_at: DateTime<Utc>,
    last_used_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
}

#[derive(Serialize)]
struct RunnerTokenList {
    runner_tokens: Vec<RunnerTokenView>,
}

async fn list(
    Caller(caller): Caller,
    State(state): State<AppState>,
) -> Result<Json<RunnerTokenList>, ApiError> {
    require_admin(&caller, "list runner tokens")?;
    let runner_tokens = state
        .store
        .runner_tokens()
        .await?
        .into_iter()
        .map(|t| RunnerTokenView {
            id: t.id,
            cluster: t.cluster,
            created_at: t.created_at,
            last_used_at: t.last_used_at,
            revoked_at: t.revoked_at,
        })
        .collect();
    Ok(Json(RunnerTokenList { runner_tokens }))
}

#[derive(Serialize)]
struct Revoked {
    msg: &'static str,
}

async fn revoke(
    Caller(caller): Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Revoked>, ApiError> {
    require_admin(&caller, "revoke runner tokens")?;
    let not_found = || ApiError::not_found("Runner token not found");
    let id: Id = id.parse().map_err(|_| not_found())?;
    if !state.store.revoke_runner_token(id).await? {
        return Err(not_found());
    }
    Ok(Json(Revoked {
        msg: "Runner token revoked",
    }))
}
