//! Batches: one task per item (fan-out), and a reduce task queued once every item has ended
//! (fan-in).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{Id, TaskStatus};

/// Most items one batch may have: what one `POST …/batches` may carry.
pub const MAX_BATCH_ITEMS: usize = 100_000;
/// Largest request body of `POST …/batches`: 100,000 items of about 600 bytes each. Each item
/// is further held to the payload limit.
pub const MAX_BATCH_BODY_BYTES: usize = 64 * 1024 * 1024;
/// Largest page of `GET …/batches/{id}/results`.
pub const MAX_RESULTS_PER_PAGE: i64 = 1000;

/// Where a batch is. `running → reducing → complete | failed`, `running → complete` without a
/// reduce, `running → failed` when its failure tolerance is exceeded, and `running`/`reducing`
/// → `cancelled`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BatchStatus {
    Running,
    Reducing,
    Complete,
    Failed,
    Cancelled,
}

impl BatchStatus {
    pub const ALL: [BatchStatus; 5] = [
        BatchStatus::Running,
        BatchStatus::Reducing,
        BatchStatus::Complete,
        BatchStatus::Failed,
        BatchStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            BatchStatus::Running => "running",
            BatchStatus::Reducing => "reducing",
            BatchStatus::Complete => "complete",
            BatchStatus::Failed => "failed",
            BatchStatus::Cancelled => "cancelled",
        }
    }

    /// True once the batch will not change status again.
    pub fn is_final(self) -> bool {
        !matches!(self, BatchStatus::Running | BatchStatus::Reducing)
    }
}

impl fmt::Display for BatchStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text is not a batch status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown batch status {0:?}")]
pub struct UnknownBatchStatus(pub String);

impl FromStr for BatchStatus {
    type Err = UnknownBatchStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        BatchStatus::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| UnknownBatchStatus(s.to_string()))
    }
}

/// The reduce step of a new batch.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NewReduce {
    pub code_name: String,
    pub payload: Vec<u8>,
    /// Seconds; already defaulted and clamped by validation.
    pub timeout: i32,
    pub priority: Option<i32>,
}

/// A validated request to queue a batch.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NewBatch {
    pub code_name: String,
    /// One payload per item, in index order.
    pub payloads: Vec<Vec<u8>>,
    pub reduce: Option<NewReduce>,
    pub max_concurrency: Option<i32>,
    pub tolerated_failure_count: Option<i32>,
    pub tolerated_failure_percent: Option<i32>,
    pub priority: Option<i32>,
    pub timeout: i32,
    /// Overrides the code's `retries` for the items.
    pub retries: Option<i32>,
    pub retries_delay: Option<i32>,
    pub cluster: String,
    pub label: Option<String>,
    /// The task that queued the batch with its task token: every item and the reduce are
    /// its children.
    pub parent_id: Option<Id>,
}

/// A batch as tenants see it.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    pub id: Id,
    pub project_id: Id,
    pub code_name: String,
    pub status: BatchStatus,
    pub total: i32,
    /// Items that reached their final state (after their retries), and how many of those
    /// did not complete.
    pub done: i32,
    pub failed: i32,
    /// Each item counted once, by the status of its latest task; filled by
    /// `BatchStore::batch` only.
    pub counts: BTreeMap<TaskStatus, i64>,
    pub reduce_code_name: Option<String>,
    pub reduce_task_id: Option<Id>,
    pub max_concurrency: Option<i32>,
    pub tolerated_failure_count: Option<i32>,
    pub tolerated_failure_percent: Option<i32>,
    pub label: Option<String>,
    pub msg: Option<String>,
    /// The task that queued it, when a task did (with its task token).
    pub parent_id: Option<Id>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Batch {
    /// Whether `failed` failed items exceed the batch's tolerance (none set: never).
    pub fn tolerance_exceeded(&self) -> bool {
        exceeds(
            self.failed,
            self.total,
            self.tolerated_failure_count,
            self.tolerated_failure_percent,
        )
    }
}

/// Whether `failed` of `total` items exceed a tolerance of `count` items or `percent` percent.
pub fn exceeds(failed: i32, total: i32, count: Option<i32>, percent: Option<i32>) -> bool {
    let by_count = count.is_some_and(|c| failed > c);
    let by_percent =
        percent.is_some_and(|p| i64::from(failed) * 100 > i64::from(p) * i64::from(total));
    by_count || by_percent
}

/// One item of a batch: its latest task (a retried item's slot follows its retry).
#[derive(Debug, Clone, PartialEq)]
pub struct BatchItem {
    pub index: i32,
    pub task_id: Id,
    pub status: TaskStatus,
    pub msg: Option<String>,
    /// The task's result, when stored in the database.
    pub result: Option<Vec<u8>>,
    /// The blob key of a result too large for the database.
    pub result_blob_key: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tolerance() {
        assert!(!exceeds(5, 10, None, None));
        assert!(!exceeds(2, 10, Some(2), None));
        assert!(exceeds(3, 10, Some(2), None));
        assert!(!exceeds(1, 10, None, Some(10)));
        assert!(exceeds(2, 10, None, Some(10)));
        assert!(exceeds(1, 10, Some(0), Some(50)));
    }
}
