//! Ferrum's account routes: how tenants and runners get their tokens over HTTP.
//!
//! - `POST /2/users` (admin): creates a tenant user and answers its first token.
//! - `POST /2/tokens` (any user): a further token for the caller, e.g. to rotate one.
//! - `POST /2/runner_tokens` (admin): a runner token bound to a cluster (listed and revoked
//!   in `runner_tokens.rs`).
//!
//! A token is shown once, in the answer that creates it; only its hash is stored.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use ferrum_model::limits::{self, Limit, DEFAULT_CLUSTER};
use ferrum_model::{Id, Principal};
use serde::{Deserialize, Serialize};

use super::auth::Caller;
use super::extract::LenientJson;
use super::Route;
use crate::openapi::bodies;
use crate::routes::Auth;
use crate::{ApiError, AppState};

pub fn routes() -> Vec<Route> {
    vec![
        Route::post(
            "/2/users",
            "Create a tenant user (admin only): {\"email\"}; answers its first token, shown once",
            create_user,
        )
        .body(bodies::user())
        .errors(&[409])
        .auth(Auth::Admin),
        Route::post(
            "/2/tokens",
            "Create another token for the caller; shown once",
            create_token,
        ),
        Route::post(
            "/2/runner_tokens",
            "Create a runner token bound to a cluster (admin only): {\"cluster\"}; shown once",
            create_runner_token,
        )
        .body(bodies::runner_token())
        .auth(Auth::Admin),
    ]
}

pub(crate) fn require_admin(caller: &Principal, what: &str) -> Result<(), ApiError> {
    if caller.is_admin {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("Only an admin may {what}"),
        ))
    }
}

/// A required, trimmed name from a request body, within `limit`.
pub(super) fn name(value: Option<String>, limit: &Limit) -> Result<String, ApiError> {
    let value = value.as_deref().map(str::trim).unwrap_or_default();
    if value.is_empty() {
        return Err(ApiError::bad_request(format!(
            "{} is required, at most {} characters",
            limit.field, limit.max
        )));
    }
    limit.check(value)?;
    Ok(value.to_owned())
}

/// Admin routes are Ferrum's own: unknown fields are refused, not ignored.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUser {
    email: Option<String>,
}

#[derive(Serialize)]
struct UserCreated {
    id: Id,
    email: String,
    token: String,
    msg: &'static str,
}

async fn create_user(
    Caller(caller): Caller,
    State(state): State<AppState>,
    LenientJson(body): LenientJson<NewUser>,
) -> Result<Json<UserCreated>, ApiError> {
    require_admin(&caller, "create users")?;
    let email = name(body.email, &limits::EMAIL)?;
    let id = state.store.create_user(&email, false).await?;
    let token = ferrum_model::token::generate();
    state.store.add_user_token(id, &token).await?;
    Ok(Json(UserCreated {
        id,
        email,
        token,
        msg: "User created",
    }))
}

#[derive(Serialize)]
struct TokenCreated {
    token: String,
    msg: &'static str,
}

async fn create_token(
    Caller(caller): Caller,
    State(state): State<AppState>,
) -> Result<Json<TokenCreated>, ApiError> {
    let token = ferrum_model::token::generate();
    state.store.add_user_token(caller.user_id, &token).await?;
    Ok(Json(TokenCreated {
        token,
        msg: "Token created",
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewRunnerToken {
    cluster: Option<String>,
}

#[derive(Serialize)]
struct RunnerTokenCreated {
    /// The id to list and revoke it by.
    id: Id,
    token: String,
    cluster: String,
    msg: &'static str,
}

async fn create_runner_token(
    Caller(caller): Caller,
    State(state): State<AppState>,
    LenientJson(body): LenientJson<NewRunnerToken>,
) -> Result<Json<RunnerTokenCreated>, ApiError> {
    require_admin(&caller, "create runner tokens")?;
    let cluster = match body.cluster {
        Some(c) => name(Some(c), &limits::CLUSTER)?,
        None => DEFAULT_CLUSTER.to_owned(),
    };
    let token = ferrum_model::token::generate();
    let id = state.store.add_runner_token(&cluster, &token).await?;
    Ok(Json(RunnerTokenCreated {
        id,
        token,
        cluster,
        msg: "Runner token created",
    }))
}
