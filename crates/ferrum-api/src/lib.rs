//! Ferrum's HTTP API.
//!
//! - [`tenant`]: the IronWorker v2 REST routes under `/2/…` (contract §3), for tenants and the
//!   official clients.
//! - [`runner_api`]: the runner protocol under `/runner/v1/…` (see `ferrum_model::protocol`).
//! - [`duties`]: background work every replica runs (reaping expired leases, firing schedules);
//!   each step is claimed in the database, so any number of replicas may run them.
//! - [`task_events`]: the duty that hands each task's final state to its handlers.
//! - [`retention`]: the duty that deletes finished tasks past their retention.
//! - [`ops`]: `/healthz`, `/readyz` and `/metrics`, for operators and their tools.
//!
//! [`routes`] is the one registry of every route (with its auth kind); [`router`] builds the
//! whole app from it and an [`AppState`], and `GET /openapi.json` documents every route in it.

mod dashboard;
pub mod duties;
pub mod error;
mod openapi;
pub mod ops;
pub mod queue_signal;
pub mod results;
pub mod retention;
pub mod routes;
pub mod runner_api;
pub mod state;
pub mod task_events;
pub mod task_tokens;
pub mod tenant;
pub mod zip_gc;

use axum::Router;

pub use error::ApiError;
pub use state::{ApiConfig, AppState};

/// The whole API. Unknown routes and methods answer with the usual `{"msg"}` JSON, so that
/// even those replies carry a `Content-Type` (contract §1.3).
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(routes::router(&state.config))
        .fallback(error::no_such_route)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(axum::middleware::from_fn(ops::http::count))
        .with_state(state)
}
