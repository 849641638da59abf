//! What operators and their tools call: `GET /healthz` (the process answers), `GET /readyz`
//! (it can do its work: database reachable, schema current, object store reachable) and
//! `GET /metrics` (Prometheus text format, admin token); a project's quotas ([`quotas`]); and
//! the runner fleet ([`fleet`]).
//!
//! Who may scrape: `/metrics` takes an admin token (`Authorization: Bearer …`, which
//! Prometheus sends with `authorization: {credentials: …}` in its scrape config), because the
//! counts say how busy tenants are. The probes are public: they say nothing about tenants, and
//! load balancers and Kubernetes probe without credentials.

pub mod events;
pub mod fleet;
pub mod http;
pub mod metrics;
pub mod quotas;

use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use serde_json::json;

use crate::routes::{Auth, Route};
use crate::tenant::auth::Caller;
use crate::{ApiError, AppState};
pub use metrics::metrics;

/// How long `/readyz` waits for each dependency before calling it unreachable.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// The object key `/readyz` reads: any answer, found or not, shows the store is reachable.
const PROBE_KEY: &str = "ferrum-readyz-probe";
/// What Prometheus reads (the OpenMetrics text format `prometheus-client` writes).
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Counts `n` tasks queued in `project` from `source`.
pub fn count_created(
    state: &AppState,
    source: metrics::Source,
    project: ferrum_model::Id,
    n: usize,
) {
    let project = state
        .config
        .metrics_per_project
        .then_some(&project as &dyn std::fmt::Display);
    metrics().created(source, project, n);
}

pub fn routes() -> Vec<Route> {
    vec![
        Route::get("/healthz", "Liveness: 200 while the process answers", healthz),
        Route::get(
            "/readyz",
            "Readiness: 200 when the database is reachable with a current schema and the object store is reachable; else 503 naming what failed",
            readyz,
        ),
        Route::get(
            "/metrics",
            "Prometheus metrics (admin token): tasks created/finished, queue depth and age, durations, duties, HTTP requests",
            scrape,
        )
        .auth(Auth::Admin),
    ]
    .into_iter()
    .chain(quotas::routes())
    .chain(fleet::routes())
    .collect()
}

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// Checks the database, its schema and the object store; 503 with what failed.
async fn readyz(State(state): State<AppState>) -> Response {
    let database = match tokio::time::timeout(PROBE_TIMEOUT, state.store.schema_state()).await {
        Err(_) => Err("database: no answer within 2 s".to_owned()),
        Ok(Err(e)) => Err(format!("database: {e}")),
        Ok(Ok(s)) if !s.missing.is_empty() => {
            Err(format!("database: migrations not applied: {:?}", s.missing))
        }
        Ok(Ok(_)) => Ok(()),
    };
    let blobs = match tokio::time::timeout(PROBE_TIMEOUT, state.blobs.get(PROBE_KEY)).await {
        Err(_) => Err("object store: no answer within 2 s".to_owned()),
        Ok(Err(e)) => Err(format!("object store: {e}")),
        Ok(Ok(_)) => Ok(()),
    };
    let failed: Vec<String> = [database, blobs]
        .into_iter()
        .filter_map(Result::err)
        .collect();
    if failed.is_empty() {
        return Json(json!({"status": "ready"})).into_response();
    }
    tracing::warn!(?failed, "not ready");
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, failed.join("; ")).into_response()
}

/// Reads the queue gauges from the database, then writes every metric.
async fn scrape(
    Caller(caller): Caller,
    State(state): State<AppState>,
) -> Result<Response, ApiError> {
    if !caller.is_admin {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "Only an admin may read metrics",
        ));
    }
    let m = metrics();
    let now = Utc::now();
    let depths = state.store.queue_depths(now, metrics::QUEUE_SERIES).await?;
    // One scrape at a time rewrites the gauges, so a series whose queue emptied disappears.
    static SCRAPE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _one = SCRAPE.lock().await;
    m.queue_depth.clear();
    m.queue_oldest_age.clear();
    for d in depths {
        let labels = metrics::QueueLabels {
            cluster: d.cluster,
            priority: d.priority.to_string(),
        };
        m.queue_depth.get_or_create(&labels).set(d.depth);
        let age = (now - d.oldest_run_at).num_milliseconds().max(0) as f64 / 1000.0;
        m.queue_oldest_age.get_or_create(&labels).set(age);
    }
    Ok(([(header::CONTENT_TYPE, OPENMETRICS)], m.encode()).into_response())
}
