//! The web dashboard, served at `/` by `ferrum serve` and `ferrum dev`: server-rendered HTML
//! (maud), no build step and no CDN; the only script is the small `dashboard.js` it serves
//! itself (live logs over server-sent events, the cron preview).
//!
//! Sessions: `POST /login` with a user's API token mints a *session token* of the same user
//! (`AccountStore::start_session`: a `dashboard_sessions` row, stored hashed like every token,
//! ending after `SESSION_SECS`) and sets it as the `ferrum_session` cookie (`HttpOnly`,
//! `SameSite=Lax`, `Secure` behind TLS). A session token is no API token and an API token no
//! session, so a stolen cookie is not a credential for `/2/…`. `POST /logout` deletes the row,
//! so the session ends on the server too. Every state-changing form carries
//! a CSRF token derived from the session token (HMAC-SHA256), checked before anything is
//! written. Pages reach a project only through `AccountStore::project`, as the API does: another
//! tenant's project, task or batch is "Not found", whatever the URL says.

// Handlers answer a refusal as a whole page (`Result<_, Response>`): the error is the page the
// browser shows, so boxing it would only add an allocation.
#![allow(clippy::result_large_err)]

mod batches;
mod codes;
mod form;
mod layout;
mod live_log;
mod login;
mod projects;
mod runners;
mod schedules;
mod session;
mod tasks;

use crate::routes::Route;

pub(crate) use session::Session;

/// The dashboard's routes (auth kind [`crate::routes::Auth::Session`]).
pub(crate) fn routes() -> Vec<Route> {
    let mut routes = login::routes();
    routes.extend(projects::routes());
    routes.extend(tasks::routes());
    routes.extend(codes::routes());
    routes.extend(schedules::routes());
    routes.extend(batches::routes());
    routes.extend(runners::routes());
    routes
}
