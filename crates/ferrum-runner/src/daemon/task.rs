//! One leased task from start to finish: fetch the zip, run it, heartbeat, ship logs, report.
//!
//! Why a task ends early decides what is reported:
//! - a user cancel (heartbeat/started says `cancel_requested`) → `cancelled` is reported;
//! - a lost lease (any 409) → the container is killed and nothing more is said: a newer
//!   attempt owns the task;
//! - runner shutdown past the drain timeout → the container is killed and nothing is
//!   reported, so the lease expires and the API hands the task to another runner (reporting
//!   `killed` would make it final and it would never be retried).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use base64::Engine;
use ferrum_model::protocol::{CompleteRequest, Lease};
use ferrum_model::TaskStatus;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::client::{ApiClient, ApiError};
use super::logship::{retry, LogShipper};
use super::zipcache::ZipCache;
use crate::executor::{DockerExecutor, Outcome, TaskRun};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StopReason {
    Cancel,
    LeaseLost,
    Shutdown,
}

/// Asks a running task to stop; the first reason given wins.
#[derive(Clone, Default)]
pub(crate) struct Stop {
    token: CancellationToken,
    reason: Arc<OnceLock<StopReason>>,
}

impl Stop {
    pub fn request(&self, reason: StopReason) {
        let _ = self.reason.set(reason);
        self.token.cancel();
    }

    pub fn reason(&self) -> Option<StopReason> {
        self.reason.get().copied()
    }
}

/// What every task of a runner shares.
pub(crate) struct TaskContext {
    pub client: ApiClient,
    pub executor: DockerExecutor,
    pub zips: ZipCache,
    pub heartbeat: Duration,
}

/// Runs one lease to the end. `shutdown` fires when the drain timeout has passed.
pub(crate) async fn run_lease(ctx: Arc<TaskContext>, lease: Lease, shutdown: CancellationToken) {
    let (task, attempt) = (lease.task_id, lease.attempt);
    let stop = Stop::default();
    let watchers = [
        tokio::spawn(heartbeat(ctx.clone(), lease.clone(), stop.clone())),
        tokio::spawn({
            let stop = stop.clone();
            async move {
                shutdown.cancelled().await;
                stop.request(StopReason::Shutdown);
            }
        }),
    ];
    let (status, exit_code, msg) = execute(&ctx, lease, &stop).await;
    for watcher in watchers {
        watcher.abort();
    }
    let status = match stop.reason() {
        Some(StopReason::LeaseLost) | Some(StopReason::Shutdown) => {
            tracing::info!(%task, attempt, reason = ?stop.reason(), "task dropped without report");
            return;
        }
        Some(StopReason::Cancel) => TaskStatus::Cancelled,
        None => status,
    };
    let request = CompleteRequest {
        attempt,
        status,
        exit_code,
        msg,
    };
    match retry(|| ctx.client.complete(task, &request), &stop).await {
        Ok(_) => tracing::info!(%task, attempt, status = status.as_str(), "task finished"),
        Err(e) => tracing::warn!(%task, attempt, error = %e, "could not report completion"),
    }
}

/// Runs the task and says how it ended: (status, exit code, msg).
async fn execute(
    ctx: &TaskContext,
    lease: Lease,
    stop: &Stop,
) -> (TaskStatus, Option<i32>, Option<String>) {
    let failed = |msg: String| (TaskStatus::Error, None, Some(msg));
    let payload = match base64::engine::general_purpose::STANDARD.decode(&lease.payload_base64) {
        Ok(p) => p,
        Err(e) => return failed(format!("runner could not decode the payload: {e}")),
    };
    let zip = if lease.code.has_zip {
        let fetch = retry(|| ctx.zips.get(&ctx.client, lease.code.revision_id), stop).await;
        match fetch {
            Ok(path) => Some(path),
            Err(e) => return failed(format!("runner could not fetch the code zip: {e}")),
        }
    } else {
        None
    };
    let timeout_secs = if lease.timeout_secs > 0 {
        lease.timeout_secs
    } else {
        ferrum_model::limits::DEFAULT_TIMEOUT_SECS
    };
    let run = TaskRun {
        task_id: lease.task_id.to_string(),
        attempt: lease.attempt,
        schedule_id: lease.schedule_id.map(|id| id.to_string()),
        limits: Some(ctx.executor.config().limits_for(&lease.code)),
        spec: lease.code,
        payload,
        zip,
        timeout: Duration::from_secs(timeout_secs.unsigned_abs().into()),
    };
    let (tx, rx) = mpsc::channel(64);
    let shipper = LogShipper::new(
        ctx.client.clone(),
        lease.task_id,
        lease.attempt,
        stop.clone(),
    );
    let shipping = tokio::spawn(shipper.run(rx));
    let result = ctx.executor.run(run, tx, stop.token.clone()).await;
    if let Err(e) = shipping.await {
        tracing::warn!(task = %lease.task_id, error = %e, "log shipper failed");
    }
    match result {
        Ok(report) => match report.outcome {
            Outcome::Complete => (TaskStatus::Complete, Some(0), None),
            Outcome::Error { exit_code, msg } => (TaskStatus::Error, Some(exit_code), Some(msg)),
            Outcome::Killed { exit_code, msg } => (TaskStatus::Killed, Some(exit_code), Some(msg)),
            Outcome::Timeout => (
                TaskStatus::Timeout,
                None,
                Some(format!("Task timed out after {timeout_secs} seconds")),
            ),
            Outcome::Cancelled => (TaskStatus::Cancelled, None, Some("Cancelled".to_owned())),
        },
        Err(e) => failed(format!("runner could not run the task: {e}")),
    }
}

/// Renews the lease every `heartbeat` until aborted; relays cancel requests and lost leases.
async fn heartbeat(ctx: Arc<TaskContext>, lease: Lease, stop: Stop) {
    let mut ticks = tokio::time::interval(ctx.heartbeat);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        match ctx.client.heartbeat(lease.task_id, lease.attempt).await {
            Ok(r) if r.cancel_requested => stop.request(StopReason::Cancel),
            Ok(_) => {}
            Err(ApiError::LeaseLost) => stop.request(StopReason::LeaseLost),
            Err(e) => tracing::warn!(task = %lease.task_id, error = %e, "heartbeat failed"),
        }
    }
}
