//! `ferrum runner --health-listen ADDR`: the runner's probes and metrics on their own port.
//!
//! `/healthz` answers while the process lives; `/readyz` answers 200 once the runner has
//! registered and its last lease call reached the API (503 with the reason otherwise);
//! `/metrics` is the runner's own Prometheus metrics. No credential: bind it to an address
//! only your monitoring reaches.

use std::sync::Arc;

use anyhow::Context;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use ferrum_runner::health::RunnerHealth;
use serde_json::json;

/// Binds `listen` and serves the probes in the background until the process ends.
pub async fn spawn(listen: &str, health: Arc<RunnerHealth>) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen} (--health-listen)"))?;
    tracing::info!(addr = %listener.local_addr()?, "runner health listening");
    let app = Router::new()
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(health);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "runner health listener failed");
        }
    });
    Ok(())
}

async fn readyz(State(health): State<Arc<RunnerHealth>>) -> Response {
    match health.not_ready_reason() {
        None => Json(json!({"status": "ready"})).into_response(),
        Some(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"msg": reason})),
        )
            .into_response(),
    }
}

async fn metrics(State(health): State<Arc<RunnerHealth>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        health.encode(),
    )
        .into_response()
}
