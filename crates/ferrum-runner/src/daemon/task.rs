//! One leased task from start to finish: fetch the zip, run it, heartbeat, ship logs, report.
//!
//! Why a task ends early decides what is reported:
//! - a user cancel (heartbeat/started says `cancel_requested`) → `cancelled` is reported;
//! - a lost lease (any 409, or 404: not this runner's) → the container is killed and nothing
//!   more is said: a newer attempt owns the task;
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
use crate::contract::IronIdentity;
use crate::executor::{Executor, Outcome, TaskRun};
use crate::health::RunnerHealth;
use crate::result::TaskResult;

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
    pub executor: Arc<dyn Executor>,
    pub health: Arc<RunnerHealth>,
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
    let max_result = lease.max_result_bytes;
    let (status, exit_code, msg, result) = execute(&ctx, lease, &stop).await;
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
    let (status, exit_code, msg) =
        match send_result(&ctx, task, attempt, result, max_result, &stop).await {
            Ok(()) => (status, exit_code, msg),
            // The result is part of the outcome: a task whose result cannot be kept failed.
            Err(why) if status == TaskStatus::Complete => (TaskStatus::Error, exit_code, Some(why)),
            Err(why) => {
                tracing::warn!(%task, attempt, why, "the task's result was not kept");
                (status, exit_code, msg)
            }
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

/// Sends the task's result to the API, before the completion; says why when it cannot be
/// kept (over the cap, not a regular file, or the API refused it).
async fn send_result(
    ctx: &TaskContext,
    task: ferrum_model::Id,
    attempt: i32,
    result: TaskResult,
    cap: u64,
    stop: &Stop,
) -> Result<(), String> {
    let data = match result {
        TaskResult::None => return Ok(()),
        TaskResult::Bytes(data) => bytes::Bytes::from(data),
        TaskResult::TooLarge { size } => return Err(over_cap_msg(size, cap)),
        TaskResult::NotAFile => {
            return Err("RESULT_FILE is not a regular file; no result was kept".to_owned())
        }
    };
    match retry(|| ctx.client.put_result(task, attempt, data.clone()), stop).await {
        Ok(_) => Ok(()),
        Err(ApiError::Status { status: 413, body }) => Err(format!("Result refused: {body}")),
        Err(e) => {
            tracing::warn!(%task, attempt, error = %e, "could not send the task's result");
            Err(format!("The runner could not send the task's result: {e}"))
        }
    }
}

/// The message of a task whose result is over the cap (the API says the same).
fn over_cap_msg(size: u64, cap: u64) -> String {
    format!("Result is {size} bytes, over the cap of {cap} bytes")
}

/// Runs the task and says how it ended: (status, exit code, msg, result).
async fn execute(
    ctx: &TaskContext,
    lease: Lease,
    stop: &Stop,
) -> (TaskStatus, Option<i32>, Option<String>, TaskResult) {
    let failed = |msg: String| (TaskStatus::Error, None, Some(msg), TaskResult::None);
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
    let iron = lease.task_token.map(|token| IronIdentity {
        project_id: lease.project_id.to_string(),
        token: token.0,
    });
    let run = TaskRun {
        task_id: lease.task_id.to_string(),
        attempt: lease.attempt,
        schedule_id: lease.schedule_id.map(|id| id.to_string()),
        iron,
        max_result_bytes: lease.max_result_bytes,
        limits: Some(ctx.executor.config().limits_for(&lease.code)),
        spec: lease.code,
        payload,
        zip,
        timeout: Duration::from_secs(timeout_secs.unsigned_abs().into()),
        batch: lease
            .batch
            .map(|b| (b.batch_id.to_string(), b.results_jsonl.into_bytes())),
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
    let report = match result {
        Ok(report) => report,
        Err(e) => return failed(format!("runner could not run the task: {e}")),
    };
    ctx.health.container_ran(report.pooled);
    let (status, exit_code, msg) = match report.outcome {
        Outcome::Complete => (TaskStatus::Complete, Some(0), None),
        Outcome::Error { exit_code, msg } => (TaskStatus::Error, Some(exit_code), Some(msg)),
        Outcome::Killed { exit_code, msg } => (TaskStatus::Killed, Some(exit_code), Some(msg)),
        Outcome::Timeout => (
            TaskStatus::Timeout,
            None,
            Some(format!("Task timed out after {timeout_secs} seconds")),
        ),
        Outcome::Cancelled => (TaskStatus::Cancelled, None, Some("Cancelled".to_owned())),
    };
    (status, exit_code, msg, report.result)
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
            Err(ApiError::LeaseLost(_)) => stop.request(StopReason::LeaseLost),
            Err(e) => tracing::warn!(task = %lease.task_id, error = %e, "heartbeat failed"),
        }
    }
}
