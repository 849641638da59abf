//! Counts every HTTP request by method, route template and status, and times it.
//!
//! The route is axum's `MatchedPath` (the template, e.g. `/2/projects/{project_id}/tasks`),
//! never the concrete path, so ids never become labels; unmatched paths share `unmatched`.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;

use super::metrics::{metrics, HttpLabels, RouteLabels};

/// The middleware (`axum::middleware::from_fn`).
pub async fn count(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().as_str().to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_owned();
    let response = next.run(request).await;
    let m = metrics();
    m.http_duration
        .get_or_create(&RouteLabels {
            method: method.clone(),
            route: route.clone(),
        })
        .observe(started.elapsed().as_secs_f64());
    m.http_requests
        .get_or_create(&HttpLabels {
            method,
            route,
            status: response.status().as_u16(),
        })
        .inc();
    response
}
