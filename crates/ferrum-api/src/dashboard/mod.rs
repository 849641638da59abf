//! The web dashboard, served at `/` by `ferrum serve` and `ferrum dev`: server-rendered HTML
//! (maud), no build step and no CDN; the only script is the small `dashboard.js` it serves
//! itself (live logs over server-sent events, the preview of a schedule's next fire times).
//!
//! Sessions: `POST /login` with a user's API token mints a *session token* of the same user
//! (`AccountStore::start_session`: a `dashboard_sessions` row, stored hashed like every token,
//! ending after `SESSION_SECS`) and sets it as the `ferrum_session` cookie (`HttpOnly`,
//! `SameSite=Lax`, `Secure` behind TLS). A session token is no API token and an API token no
//! session, so a stolen cookie is not a credential for `/2/…`. `POST /logout` deletes the row,
//! so the session ends on the server too. Every state-changing form carries
//! a CSRF token derived from the session token (HMAC-SHA256), checked before anything is
//! written.
//!
//! Handlers are given what they work on by the extractors of [`extract`]: `ProjectPage` (the
//! project of `{project_id}`, reached only through `AccountStore::project` as the API does),
//! `Found<T>` (that and the task, code, batch or schedule the path names, looked up inside
//! that project) and `Checked<F>`/`Button`/`CheckedMultipart` (a form with the session's CSRF
//! token). Another tenant's project or object is "Not found" (404) and a form without the
//! token "Forbidden" (403), both before the handler runs, whatever the URL says.
//!
//! Forms that make or change what the API makes go through the API's own code: a schedule's
//! create and Edit forms through `tenant::schedules` (`ScheduleInput`, `update_schedule`), the
//! code upload forms through `tenant::upload::put_revision` under the API's body limit, so they
//! check what the API checks and show its messages.

// Handlers answer a refusal as a whole page (`Result<_, Response>`): the error is the page the
// browser shows, so boxing it would only add an allocation.
#![allow(clippy::result_large_err)]

mod batches;
mod codes;
mod extract;
mod layout;
mod live_log;
mod login;
mod projects;
mod runners;
mod schedules;
mod session;
mod tasks;

use crate::routes::Route;
use crate::ApiConfig;

pub(crate) use session::Session;

/// The dashboard's routes (auth kind [`crate::routes::Auth::Session`]).
pub(crate) fn routes(config: &ApiConfig) -> Vec<Route> {
    let mut routes = login::routes();
    routes.extend(projects::routes());
    routes.extend(tasks::routes());
    routes.extend(codes::routes(config));
    routes.extend(schedules::routes());
    routes.extend(batches::routes());
    routes.extend(runners::routes());
    routes
}
