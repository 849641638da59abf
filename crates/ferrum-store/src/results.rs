//! Task results and task tokens: what a task returns, and the credential it queues tasks with.

use async_trait::async_trait;
use ferrum_model::Id;

use crate::rows::{id, Cols};
use crate::{Fenced, StoreResult};

/// A task's result as stored: inline (`data`) when small, else in the blob store under
/// `blob_key` (the API decides, by its `result_inline_bytes` setting).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResult {
    /// The result's length in bytes.
    pub size: i64,
    /// `application/json` when the bytes parse as JSON, else `application/octet-stream`.
    pub content_type: String,
    pub data: Option<Vec<u8>>,
    pub blob_key: Option<String>,
}

#[async_trait]
pub trait ResultStore {
    /// Records the result of `attempt` and sets the task's `result_size`, if `runner` holds
    /// the task's current lease with `attempt` (fenced like every runner call). A later
    /// attempt's result replaces an earlier one's.
    async fn put_result(
        &self,
        task: Id,
        runner: Id,
        attempt: i32,
        result: StoredResult,
    ) -> StoreResult<Fenced<()>>;
    /// The task's result, if it has one.
    async fn result(&self, project: Id, task: Id) -> StoreResult<Option<StoredResult>>;
}

/// A task token to store: given to the runner with the lease, for the task's container.
#[derive(Debug, Clone)]
pub struct NewTaskToken {
    /// The token in the clear; only its hash is stored.
    pub token: String,
    pub task_id: Id,
    pub project_id: Id,
    pub attempt: i32,
}

/// What a valid task token may act for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskGrant {
    pub task_id: Id,
    pub project_id: Id,
    pub attempt: i32,
    /// Tasks queued with the token so far.
    pub spawned: i32,
}

/// Task tokens (`IRON_TOKEN` inside a task's container).
#[async_trait]
pub trait TaskTokenStore {
    /// Stores new task tokens (hashed), in one statement.
    async fn issue_task_tokens(&self, tokens: &[NewTaskToken]) -> StoreResult<()>;
    /// The grant of a task token while it is valid: its attempt is the task's current lease,
    /// the task is `preparing` or `running`, and its timeout (counted from the start, or from
    /// the token's issue before the start) has not passed.
    async fn authenticate_task_token(&self, token: &str) -> StoreResult<Option<TaskGrant>>;
    /// Counts `n` more tasks queued with the token, unless that would pass `max`: false then,
    /// and nothing is counted. Atomic, so concurrent calls cannot pass `max` together.
    async fn reserve_spawns(&self, token: &str, n: i32, max: i32) -> StoreResult<bool>;
    /// How many ancestors (`parent_id` links) the task has; 0 for a task queued by a user.
    async fn task_depth(&self, task: Id) -> StoreResult<i32>;
    /// Deletes every token of these tasks (they reached a final state); answers how many.
    async fn revoke_task_tokens(&self, tasks: &[Id]) -> StoreResult<u64>;
}

/// Reads a `task_results` row.
pub(crate) fn stored_result(row: &impl Cols) -> StoreResult<StoredResult> {
    Ok(StoredResult {
        size: row.big("size")?,
        content_type: row.text("content_type")?,
        data: row.opt_bytes("data")?,
        blob_key: row.opt_text("blob_key")?,
    })
}

/// Reads a `task_tokens` row.
pub(crate) fn grant(row: &impl Cols) -> StoreResult<TaskGrant> {
    Ok(TaskGrant {
        task_id: id(row, "task_id")?,
        project_id: id(row, "project_id")?,
        attempt: row.int("attempt")?,
        spawned: row.int("spawned")?,
    })
}

/// How many ancestors a task has (both backends; bounded, so a cycle cannot loop).
pub(crate) const TASK_DEPTH: &str = "\
    WITH RECURSIVE chain(id, parent_id, depth) AS ( \
      SELECT id, parent_id, 0 FROM tasks WHERE id = $1 \
      UNION ALL \
      SELECT t.id, t.parent_id, c.depth + 1 FROM tasks t JOIN chain c ON t.id = c.parent_id \
      WHERE c.depth < 1000) \
    SELECT coalesce(max(depth), 0) AS depth FROM chain";
