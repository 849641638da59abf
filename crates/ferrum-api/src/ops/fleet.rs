//! The runner fleet, for admins (a tenant's token gets 403: runners and clusters are shared
//! by every tenant, and their load says how busy the others are):
//!
//! - `GET /2/runners?cluster=&page=&per_page=`: registered runners, newest first, with their
//!   version, capacity (`concurrency`), `running` tasks, `last_seen_at` and `status`
//!   (`active`, `draining`, `drained`, or `offline` when not heard from for longer than a
//!   lease lasts: its leases have run out).
//! - `POST /2/runners/{id}/drain`: the runner leases nothing more (held lease calls are woken
//!   to see it), finishes what it runs, then counts as `drained`. Draining again changes
//!   nothing.
//! - `GET /2/clusters`, `GET /2/clusters/{id}`: IronWorker's cluster routes, served from the
//!   same rows (`docs/IRONWORKER.md` §3.5). A cluster's id is its name.

use axum::extract::{Path, State};
use axum::Json;
use chrono::{DateTime, Utc};
use ferrum_model::{limits, Id, Page};
use ferrum_store::{ClusterInfo, RunnerInfo};
use serde::{Deserialize, Serialize};

use crate::openapi::bodies;
use crate::routes::{Auth, Route};
use crate::tenant::accounts::require_admin;
use crate::tenant::auth::Caller;
use crate::tenant::extract::QueryArgs;
use crate::{ApiError, AppState};

pub fn routes() -> Vec<Route> {
    let mut list_params = bodies::paging();
    list_params.push(bodies::query(
        "cluster",
        bodies::string(&limits::CLUSTER),
        false,
    ));
    vec![
        Route::get(
            "/2/runners",
            "List runners (admin only), newest first: version, concurrency, running, \
             last_seen_at, status (active, draining, drained, offline)",
            list_runners,
        )
        .query(list_params),
        Route::post(
            "/2/runners/{id}/drain",
            "Drain a runner (admin only): it leases nothing more, finishes what it runs, then \
             shows as drained",
            drain,
        ),
        Route::get(
            "/2/clusters",
            "IronWorker: list clusters (admin only), each with its live runners summed up",
            list_clusters,
        ),
        Route::get(
            "/2/clusters/{id}",
            "IronWorker: a cluster (admin only); its id is its name",
            cluster,
        ),
    ]
    .into_iter()
    .map(|r| r.auth(Auth::Admin))
    .collect()
}

#[derive(Serialize)]
struct RunnerView {
    id: Id,
    cluster: String,
    hostname: String,
    version: String,
    concurrency: i32,
    running: i32,
    status: &'static str,
    started_at: DateTime<Utc>,
    last_seen_at: DateTime<Utc>,
    drain_requested_at: Option<DateTime<Utc>>,
    drained_at: Option<DateTime<Utc>>,
}

/// Runners heard from before this count as offline: their leases have run out.
pub(crate) fn seen_since(state: &AppState) -> DateTime<Utc> {
    let lease = chrono::Duration::from_std(state.config.lease_for).unwrap_or_default();
    Utc::now() - lease
}

fn runner_view(r: RunnerInfo, seen_since: DateTime<Utc>) -> RunnerView {
    RunnerView {
        status: r.status(seen_since).as_str(),
        id: r.id,
        cluster: r.cluster,
        hostname: r.hostname,
        version: r.version,
        concurrency: r.concurrency,
        running: r.running,
        started_at: r.started_at,
        last_seen_at: r.last_seen_at,
        drain_requested_at: r.drain_requested_at,
        drained_at: r.drained_at,
    }
}

/// `?cluster=&page=&per_page=` (flattening `PageArgs` would read its numbers as strings).
#[derive(Deserialize)]
struct RunnerFilter {
    cluster: Option<String>,
    page: Option<u32>,
    per_page: Option<u32>,
}

async fn list_runners(
    Caller(caller): Caller,
    State(state): State<AppState>,
    QueryArgs(filter): QueryArgs<RunnerFilter>,
) -> Result<Json<serde_json::Value>, ApiError> {
    require_admin(&caller, "list runners")?;
    if let Some(cluster) = &filter.cluster {
        limits::CLUSTER.check(cluster)?;
    }
    let runners = state
        .store
        .runners(
            filter.cluster.as_deref(),
            Page::new(filter.page, filter.per_page),
        )
        .await?;
    let since = seen_since(&state);
    let runners: Vec<RunnerView> = runners.into_iter().map(|r| runner_view(r, since)).collect();
    Ok(Json(serde_json::json!({ "runners": runners })))
}

async fn drain(
    Caller(caller): Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    require_admin(&caller, "drain runners")?;
    let not_found = || ApiError::not_found("Runner not found");
    let id: Id = id.parse().map_err(|_| not_found())?;
    let runner = state.store.drain_runner(id).await?.ok_or_else(not_found)?;
    // Held lease calls look again now, see the drain and answer `draining`.
    state.queue.wake();
    tracing::info!(runner = %id, "runner drain requested");
    let view = runner_view(runner, seen_since(&state));
    Ok(Json(serde_json::json!({ "runner": view })))
}

/// IronWorker's cluster object, with Ferrum's runner sums (`docs/IRONWORKER.md` §3.5).
#[derive(Serialize)]
struct ClusterView {
    id: String,
    name: String,
    created_at: DateTime<Utc>,
    /// Runners leasing tasks, heard from within a lease's length.
    runners: i64,
    runners_draining: i64,
    /// Slots of those runners.
    capacity: i64,
    running: i64,
}

impl From<ClusterInfo> for ClusterView {
    fn from(c: ClusterInfo) -> Self {
        ClusterView {
            id: c.name.clone(),
            name: c.name,
            created_at: c.created_at,
            runners: c.active_runners,
            runners_draining: c.draining_runners,
            capacity: c.capacity,
            running: c.running,
        }
    }
}

async fn list_clusters(
    Caller(caller): Caller,
    State(state): State<AppState>,
) -> Result<Json<serde_json::Value>, ApiError> {
    require_admin(&caller, "list clusters")?;
    let clusters = state.store.clusters(None, seen_since(&state)).await?;
    let clusters: Vec<ClusterView> = clusters.into_iter().map(Into::into).collect();
    Ok(Json(serde_json::json!({ "clusters": clusters })))
}

async fn cluster(
    Caller(caller): Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    require_admin(&caller, "read clusters")?;
    let not_found = || ApiError::not_found("Cluster not found");
    // A name no cluster may have names none: the same answer as an unknown one.
    limits::CLUSTER.check(&id).map_err(|_| not_found())?;
    let found = state.store.clusters(Some(&id), seen_since(&state)).await?;
    let cluster = found.into_iter().next().ok_or_else(not_found)?;
    Ok(Json(
        serde_json::json!({ "cluster": ClusterView::from(cluster) }),
    ))
}
