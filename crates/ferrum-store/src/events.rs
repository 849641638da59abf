//! Task events: the one seam where a task reaches its final state.
//!
//! Every final state (`complete`, `error`, `cancelled`, `killed`, `timeout`) is written by
//! many statements: completions (one at a time or coalesced), cancels, cancel-all, a code's
//! deletion, the reaper. Rather than have each of them remember to tell the rest of the
//! system, the database does: a trigger on `tasks` (`migrations/0011_task_events.sql`,
//! `migrations/sqlite/0007_task_events.sql`) inserts one `task_events` row in the very
//! statement that writes the final state, so the event commits exactly when the state does,
//! and a new writer cannot forget it. Consumers (the API's task-event duty, which hands events
//! to batches' fan-in, token cleanup and more) claim events, handle them and delete them.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use ferrum_model::{Id, TaskStatus};

use crate::rows::{id, opt_id, status, Cols};
use crate::StoreResult;

/// A task reached a final state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskEvent {
    /// Orders events: a larger id was written later (within one backend).
    pub id: i64,
    pub task_id: Id,
    pub project_id: Id,
    /// The final status.
    pub status: TaskStatus,
    pub batch_id: Option<Id>,
    pub parent_id: Option<Id>,
    /// The task failed (`error`/`timeout`) with retries left, so the same statement queued a
    /// linked retry (`original_task_id` = this task); the retry's end is an event of its own.
    pub retried: bool,
    /// When the final state was written.
    pub created_at: DateTime<Utc>,
}

/// The outbox of final states. Delivery is at least once: an event is claimed for a while,
/// and comes back to another claimer if it is not deleted in time (its consumer crashed), so
/// handlers must be idempotent.
#[async_trait]
pub trait TaskEventStore {
    /// Claims up to `limit` events that nobody holds (never claimed, or whose claim ran out),
    /// oldest first, for `claim_for`. Concurrent claimers get disjoint events.
    async fn claim_task_events(
        &self,
        limit: i64,
        claim_for: Duration,
    ) -> StoreResult<Vec<TaskEvent>>;
    /// Deletes handled events.
    async fn delete_task_events(&self, ids: &[i64]) -> StoreResult<()>;
}

/// Reads a `task_events` row.
pub(crate) fn event(row: &impl Cols) -> StoreResult<TaskEvent> {
    Ok(TaskEvent {
        id: row.big("id")?,
        task_id: id(row, "task_id")?,
        project_id: id(row, "project_id")?,
        status: status(row, "status")?,
        batch_id: opt_id(row, "batch_id")?,
        parent_id: opt_id(row, "parent_id")?,
        retried: row.flag("retried")?,
        created_at: row.time("created_at")?,
    })
}
