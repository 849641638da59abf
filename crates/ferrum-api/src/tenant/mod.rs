//! The IronWorker v2 tenant API (contract §3), plus Ferrum's `POST /2/projects` and the
//! OpenAPI document at `GET /openapi.json`.
//!
//! Conventions every handler follows (contract §2, §7):
//! - the caller and the project come from the [`auth`] extractors, which answer 401 without a
//!   valid token and 404 for a project the caller may not use, so a token of project A never
//!   learns whether anything of project B exists;
//! - request bodies are parsed leniently by [`extract`], never with `axum::Json`, because the
//!   official clients send bodies without a JSON content type, or none at all;
//! - every answer is 200 with a JSON object (logs and downloads excepted), and every failure an
//!   [`crate::ApiError`].
//!
//! Each module declares its routes in a [`Route`] table; [`routes`] is the tenant API's table in
//! the crate's one registry ([`crate::routes`]), which builds the router and the OpenAPI document.

pub(crate) mod accounts;
pub(crate) mod auth;
pub(crate) mod batches;
mod codes;
pub(crate) mod extract;
mod logs;
mod projects;
mod pyrepr;
mod render;
mod runner_tokens;
pub(crate) mod schedules;
mod stacks;
mod task_auth;
pub(crate) mod tasks;
pub(crate) mod upload;
pub(crate) mod webhooks;
mod webhooks_sig;
mod zipcheck;

pub(crate) use auth::ProjectScope;
pub(crate) use extract::TaskId;
pub(crate) use tasks::find_task;

pub(crate) use crate::routes::Route;
use crate::ApiConfig;

/// Every tenant route, in the order the OpenAPI document lists them. The registry gives them
/// [`crate::routes::Auth::Tenant`] unless they name their own kind (admin-only routes, webhook
/// deliveries).
pub(crate) fn routes(config: &ApiConfig) -> Vec<Route> {
    let mut all = vec![upload::route().with_body_limit(config.max_upload_bytes)];
    all.extend(codes::routes());
    all.extend(tasks::routes());
    all.extend(batches::routes());
    all.extend(logs::routes());
    all.extend(crate::results::tenant_routes());
    all.extend(schedules::routes());
    all.extend(webhooks::routes());
    all.extend(projects::routes());
    all.extend(accounts::routes());
    all.extend(runner_tokens::routes());
    all.extend(stacks::routes());
    all
}
