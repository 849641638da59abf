//! What operators look at: readiness, the queue's depth and age, and the timings of finished
//! tasks (for `/readyz` and `/metrics`).
//!
//! Every query here is bounded in what it returns (a row per cluster and priority, or per
//! task asked about), so a scrape costs the same however many projects there are.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use ferrum_model::{Id, TaskStatus};

use crate::rows::{id, status, Cols};
use crate::StoreResult;

/// The queued tasks of one cluster at one priority that are due now.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueDepth {
    pub cluster: String,
    pub priority: i32,
    /// Tasks queued, not leased, whose `run_at` has come.
    pub depth: i64,
    /// The earliest `run_at` among them: the age of the oldest waiting task is now minus it.
    pub oldest_run_at: DateTime<Utc>,
}

/// When a finished task became due, started and ended.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskTiming {
    pub id: Id,
    pub cluster: String,
    pub status: TaskStatus,
    /// When it became due (`run_at`: creation plus its delay).
    pub run_at: DateTime<Utc>,
    pub start_time: Option<DateTime<Utc>>,
    pub end_time: Option<DateTime<Utc>>,
}

/// Whether the database can be used by this build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaState {
    /// Migrations this build carries that the database has not applied successfully.
    pub missing: Vec<i64>,
}

#[async_trait]
pub trait OpsStore {
    /// Answers a trivial query: the database is reachable. Also reports migrations this build
    /// expects that are not applied (a replica started against a database another version
    /// rolled back, or a migration that failed halfway).
    async fn schema_state(&self) -> StoreResult<SchemaState>;
    /// Queued, due tasks by cluster and priority (one row per pair that has any), at most
    /// `limit` pairs, the deepest first: tenants name clusters, so their number is unbounded.
    async fn queue_depths(&self, now: DateTime<Utc>, limit: i64) -> StoreResult<Vec<QueueDepth>>;
    /// The timings of the given tasks (those that exist), in no particular order.
    async fn task_timings(&self, ids: &[Id]) -> StoreResult<Vec<TaskTiming>>;
}

/// The versions of `migrator` that `applied` lacks.
pub(crate) fn missing_migrations(migrator: &sqlx::migrate::Migrator, applied: &[i64]) -> Vec<i64> {
    migrator
        .iter()
        .map(|m| m.version)
        .filter(|v| !applied.contains(v))
        .collect()
}

pub(crate) fn queue_depth(row: &impl Cols) -> StoreResult<QueueDepth> {
    Ok(QueueDepth {
        cluster: row.text("cluster")?,
        priority: row.small("priority")?,
        depth: row.big("depth")?,
        oldest_run_at: row.time("oldest_run_at")?,
    })
}

pub(crate) fn task_timing(row: &impl Cols) -> StoreResult<TaskTiming> {
    Ok(TaskTiming {
        id: id(row, "id")?,
        cluster: row.text("cluster")?,
        status: status(row, "status")?,
        run_at: row.time("run_at")?,
        start_time: row.opt_time("start_time")?,
        end_time: row.opt_time("end_time")?,
    })
}
