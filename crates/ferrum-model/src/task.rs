//! Tasks: one run of a code with a payload (contract §3.3, §4.3).

use chrono::{DateTime, Utc};

use crate::{Id, Page, TaskStatus};

/// A task as the store keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    pub id: Id,
    pub project_id: Id,
    pub code_id: Id,
    pub code_name: String,
    /// The revision the task is bound to (`code_history_id`).
    pub code_revision_id: Id,
    pub code_rev: i32,
    pub status: TaskStatus,
    pub priority: i32,
    /// The payload exactly as queued; webhooks may queue bytes that are not UTF-8.
    pub payload: Vec<u8>,
    pub timeout: i32,
    pub delay: i32,
    pub cluster: String,
    pub label: Option<String>,
    pub origin: TaskOrigin,
    pub msg: Option<String>,
    pub percent: Option<i32>,
    pub exit_code: Option<i32>,
    pub error_class: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// When the task becomes runnable (`created_at + delay`, or a retry's delay).
    pub run_at: DateTime<Utc>,
    pub start_time: Option<DateTime<Utc>>,
    pub end_time: Option<DateTime<Utc>>,
    pub log_size: i64,
    /// How many times a runner has leased the task; the fencing token of the current lease.
    pub attempt: i32,
    /// Set when a user asked to cancel the task while a runner held it.
    pub cancel_requested: bool,
    /// Bytes of the result the task returned (`RESULT_FILE`); `None` when it returned none.
    pub result_size: Option<i64>,
}

impl Task {
    /// Milliseconds between start and end, 0 until both are known (contract §4.3).
    pub fn duration_ms(&self) -> i64 {
        match (self.start_time, self.end_time) {
            (Some(s), Some(e)) => (e - s).num_milliseconds().max(0),
            _ => 0,
        }
    }
}

/// Where a task came from, beyond the API call that queued it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskOrigin {
    pub schedule_id: Option<Id>,
    pub batch_id: Option<Id>,
    /// The item's place in its batch (0-based); `None` for a batch's reduce task. A retry
    /// keeps it, so a retried item's slot follows its latest retry.
    pub batch_index: Option<i32>,
    /// The task this one retries, manual (`retry`) or automatic.
    pub original_task_id: Option<Id>,
    /// 0 for a first run; the retry number otherwise.
    pub retry_count: i32,
    /// The task that queued this one with its task token (`IRON_TOKEN`); retries keep it.
    pub parent_id: Option<Id>,
}

/// A validated request to queue one task. Unset options take the code's defaults in the store.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NewTask {
    pub code_name: String,
    pub payload: Vec<u8>,
    /// 0..=2, or `None` for the code's `default_priority`.
    pub priority: Option<i32>,
    /// Seconds; already defaulted and clamped by validation.
    pub timeout: i32,
    /// Seconds before the task may run.
    pub delay: i32,
    pub cluster: String,
    pub label: Option<String>,
    pub origin: TaskOrigin,
}

/// Filters of the task list (contract §3.3 T1). Statuses are OR-ed; empty means all.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskFilter {
    pub code_name: Option<String>,
    pub statuses: Vec<TaskStatus>,
    pub from_time: Option<DateTime<Utc>>,
    pub to_time: Option<DateTime<Utc>>,
    pub cluster: Option<String>,
    pub label: Option<String>,
    pub schedule_id: Option<Id>,
    /// Only the children of this task (queued with its task token).
    pub parent_id: Option<Id>,
    /// Only the tasks of this batch (its items and its reduce).
    pub batch_id: Option<Id>,
    /// Keyset paging: only tasks older than this id (the last id of the previous page).
    /// Unlike `page`, a cursor costs the same however deep it is.
    pub before: Option<Id>,
    pub page: Page,
}
