//! Who is calling, and which project they act on (contract §1.4).
//!
//! A token arrives as `Authorization: OAuth <token>` (every official client), `Bearer <token>`,
//! or `?oauth=<token>` (webhook URLs handed to third parties, and ironcli's project lookup).
//! A missing or unknown token is 401. A project the caller may not use is 404, exactly like a
//! project that does not exist, so tenants cannot probe each other's ids.

use axum::extract::{FromRequestParts, Query};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use ferrum_model::{Principal, Project};
use serde::Deserialize;

use super::extract::path_id;
use super::task_auth;
use crate::{ApiError, AppState};

/// The authenticated caller, for routes outside any project (`/2/projects`, `/2/stacks`).
pub struct Caller(pub Principal);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = token(parts).ok_or_else(ApiError::unauthorized)?;
        match state.store.authenticate(&token).await? {
            Some(principal) => Ok(Caller(principal)),
            // A task token is valid, but not for routes outside a project.
            None if state.store.authenticate_task_token(&token).await?.is_some() => {
                Err(task_auth::forbidden())
            }
            None => Err(ApiError::unauthorized()),
        }
    }
}

/// The project named by the `{project_id}` path segment, resolved for the caller. Put it first
/// among a handler's arguments so that auth is checked before anything else.
pub struct ProjectScope(pub Project);

impl FromRequestParts<AppState> for ProjectScope {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = token(parts).ok_or_else(ApiError::unauthorized)?;
        let principal = match state.store.authenticate(&token).await? {
            Some(principal) => principal,
            None => {
                let grant = state
                    .store
                    .authenticate_task_token(&token)
                    .await?
                    .ok_or_else(ApiError::unauthorized)?;
                let project = task_auth::check(parts, state, grant, token).await?;
                // `check` matched the token's own project to the path: read it as an admin.
                let lookup = Principal {
                    user_id: project,
                    is_admin: true,
                };
                let project = state
                    .store
                    .project(&lookup, project)
                    .await?
                    .ok_or_else(|| ApiError::not_found("Project not found"))?;
                return Ok(ProjectScope(project));
            }
        };
        let not_found = || ApiError::not_found("Project not found");
        let id = path_id(parts, "project_id").await.ok_or_else(not_found)?;
        let project = state
            .store
            .project(&principal, id)
            .await?
            .ok_or_else(not_found)?;
        Ok(ProjectScope(project))
    }
}

#[derive(Deserialize)]
struct TokenQuery {
    oauth: Option<String>,
}

/// The token from the `Authorization` header, else from `?oauth=`.
fn token(parts: &Parts) -> Option<String> {
    let from_header = parts
        .headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| {
            scheme.eq_ignore_ascii_case("oauth") || scheme.eq_ignore_ascii_case("bearer")
        })
        .map(|(_, token)| token.trim().to_owned());
    from_header
        .or_else(|| {
            Query::<TokenQuery>::try_from_uri(&parts.uri)
                .ok()
                .and_then(|q| q.0.oauth)
        })
        .filter(|t| !t.is_empty())
}
