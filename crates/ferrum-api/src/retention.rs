//! The retention duty: deletes finished tasks older than their project's retention
//! (`retention_days` in its quotas, else the operator's `ferrum serve --retention-days`), with
//! their logs, results (large ones from the blob store too), events and tokens, and batches
//! none of whose tasks is left (`ferrum_store::retention` says what qualifies and why the
//! candidates are read by id).
//!
//! With `ferrum serve --archive-logs` each task's log (its last attempt's, both streams, as
//! `GET …/log` served it) is first written to the blob store under
//! `archive/logs/{project}/{task}`; a task whose log cannot be archived is not deleted.
//!
//! Small pages ([`PAGE`] tasks, one short transaction each) keep locks brief, so a busy queue
//! does not notice. No tenant's rows can stop it: a project whose pass fails is logged and the
//! next project goes on; a page whose delete fails is retried one task at a time, and a task
//! that still fails is logged with its id and skipped (the next pass tries it again). It runs
//! every [`EVERY`] on every replica: two replicas deleting the same page delete it once.

use std::time::Duration;

use chrono::{DateTime, Utc};
use ferrum_model::Id;
use ferrum_store::{Deleted, StoreError};

use crate::ops::metrics::metrics;
use crate::AppState;

/// How often the duty looks for expired tasks.
const EVERY: Duration = Duration::from_secs(60);
/// Tasks deleted per transaction.
const PAGE: i64 = 100;

/// What one pass deleted, and how many tasks or projects it had to skip.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    pub tasks: u64,
    pub batches: u64,
    pub blobs: u64,
    pub skipped: u64,
}

impl Report {
    fn add(&mut self, d: Deleted) {
        self.tasks += d.tasks;
        self.batches += d.batches;
    }
}

/// One pass as of `now`: every project with a retention, page by page. Fails only when the
/// projects cannot be listed.
pub async fn pass(state: &AppState, now: DateTime<Utc>) -> Result<Report, StoreError> {
    let default = state
        .config
        .retention_days
        .map(|d| i32::try_from(d).unwrap_or(i32::MAX));
    let mut report = Report::default();
    for (project, days) in state.store.retention_projects(default).await? {
        // A retention longer than the calendar has nothing expire.
        let Some(cutoff) =
            chrono::TimeDelta::try_days(i64::from(days)).and_then(|d| now.checked_sub_signed(d))
        else {
            continue;
        };
        if let Err(e) = project_pass(state, project, cutoff, &mut report).await {
            tracing::error!(%project, error = %e, "retention failed for a project; skipped");
            report.skipped += 1;
        }
    }
    Ok(report)
}

async fn project_pass(
    state: &AppState,
    project: Id,
    cutoff: DateTime<Utc>,
    report: &mut Report,
) -> Result<(), StoreError> {
    let mut after = None;
    loop {
        let page = state
            .store
            .expired_tasks(project, cutoff, after, PAGE)
            .await?;
        let Some(last) = page.last() else {
            return Ok(());
        };
        after = Some(*last);
        let page = if state.config.archive_logs {
            archive_logs(state, project, page, report).await
        } else {
            page
        };
        let blobs = match state.store.delete_tasks(project, &page).await {
            Ok(d) => {
                let blobs = d.result_blobs.clone();
                report.add(d);
                blobs
            }
            Err(e) => {
                tracing::warn!(%project, error = %e, "deleting a page of expired tasks failed; one at a time");
                one_at_a_time(state, project, &page, report).await
            }
        };
        for key in blobs {
            match state.blobs.delete(&key).await {
                Ok(()) => report.blobs += 1,
                Err(e) => {
                    tracing::warn!(key, error = %e, "an expired result's blob was not deleted")
                }
            }
        }
    }
}

/// Writes each task's log to the blob store; answers the tasks whose log is archived (or
/// that have none), skipping (and logging) those whose log could not be.
async fn archive_logs(
    state: &AppState,
    project: Id,
    page: Vec<Id>,
    report: &mut Report,
) -> Vec<Id> {
    let mut archived = Vec::with_capacity(page.len());
    for task in page {
        let saved = match state.store.read_log(project, task, false).await {
            Ok(Some(log)) if !log.is_empty() => {
                let key = format!("archive/logs/{project}/{task}");
                state
                    .blobs
                    .put(&key, log.into())
                    .await
                    .map_err(|e| e.to_string())
            }
            Ok(_) => Ok(()),
            Err(e) => Err(e.to_string()),
        };
        match saved {
            Ok(()) => archived.push(task),
            Err(e) => {
                tracing::error!(%project, %task, error = %e, "an expired task's log could not be archived; the task is kept");
                report.skipped += 1;
            }
        }
    }
    archived
}

/// Deletes each task on its own; one that fails is logged and skipped. Answers the result
/// blobs to delete.
async fn one_at_a_time(
    state: &AppState,
    project: Id,
    page: &[Id],
    report: &mut Report,
) -> Vec<String> {
    let mut blobs = Vec::new();
    for task in page {
        match state.store.delete_tasks(project, &[*task]).await {
            Ok(d) => {
                blobs.extend(d.result_blobs.iter().cloned());
                report.add(d);
            }
            Err(e) => {
                tracing::error!(%project, %task, error = %e, "an expired task could not be deleted; skipped");
                report.skipped += 1;
            }
        }
    }
    blobs
}

/// The periodic duty; [`crate::duties::Duties`] stops it between two statements.
pub async fn run(state: AppState) {
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let result = pass(&state, Utc::now()).await;
        metrics().duty("retention", &result);
        match result {
            Ok(r) if r.tasks > 0 || r.skipped > 0 => tracing::info!(
                tasks = r.tasks,
                batches = r.batches,
                blobs = r.blobs,
                skipped = r.skipped,
                "expired tasks deleted"
            ),
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "retention pass failed"),
        }
    }
}
