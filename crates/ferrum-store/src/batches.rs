//! Batches: one ordinary task per item, and a reduce task queued exactly once when every item
//! has reached its final state (after its retries).
//!
//! Fan-in hangs off the task-event outbox ([`crate::events`]): [`BatchStore::fan_in`] is given
//! the final-state events of batch tasks. Per batch it locks the batch row, counts each item
//! task at most once (`tasks.batch_counted`: events are delivered at least once), and, in the
//! same transaction, takes the batch out of `running` when it can: to `reducing` with the
//! reduce task queued, to `complete` (no reduce), or to `failed` when the failure tolerance is
//! exceeded (its unfinished items cancelled). Leaving `running` under the row lock is the
//! claim, so several API replicas and a crash between two statements still queue one reduce.
//! An event of a retried item is not counted: its retry carries the item's `batch_index`, and
//! the retry's own final state is counted instead.
//!
//! `max_concurrency` is a window over the items in index order: the first `max_concurrency`
//! are queued as usual, the rest are *parked* (queued, but not leasable: see
//! `migrations/0016_batch_window.sql`), and `batches.released` is the first parked index.
//! For each released item the fan-in counts, it releases the next parked one in the same
//! transaction ([`release_range`]), so the batch never has more unfinished released items
//! than `max_concurrency`.

use async_trait::async_trait;
use ferrum_model::{Batch, BatchItem, BatchStatus, Id, NewBatch, NewTask, Page, TaskOrigin};

use crate::events::TaskEvent;
use crate::rows::{id, opt_id, status, Cols};
use crate::StoreResult;

/// Items queued per multi-row statement when a batch is created: large enough that a
/// statement's overhead is small, small enough that each statement's arrays stay a few MiB.
pub(crate) const INSERT_CHUNK: usize = 5_000;

/// Batches as tenants see them, and their fan-in.
#[async_trait]
pub trait BatchStore {
    /// Queues the batch and one task per item in one transaction (all or nothing:
    /// [`crate::StoreError::UnknownCode`] when the item or reduce code does not exist).
    async fn create_batch(&self, project: Id, batch: NewBatch) -> StoreResult<Batch>;
    /// The batch with `counts` (each item once, by its latest task's status).
    async fn batch(&self, project: Id, id: Id) -> StoreResult<Option<Batch>>;
    /// Newest first, without `counts`.
    async fn batches(&self, project: Id, page: Page) -> StoreResult<Vec<Batch>>;
    /// Items with `index > after`, in index order, at most `limit`: each item's latest task.
    /// `None` if there is no such batch.
    async fn batch_items(
        &self,
        project: Id,
        id: Id,
        after: Option<i32>,
        limit: i64,
    ) -> StoreResult<Option<Vec<BatchItem>>>;
    /// The stored result of the batch's reduce task: inline bytes, or the blob key of a large
    /// one. `None` while there is none (or no such batch).
    async fn batch_result(
        &self,
        project: Id,
        id: Id,
    ) -> StoreResult<Option<(Option<Vec<u8>>, Option<String>)>>;
    /// Cancels a running or reducing batch: its unfinished tasks (items and reduce) are
    /// cancelled. The status afterwards, or `None` if there is no such batch.
    async fn cancel_batch(&self, project: Id, id: Id) -> StoreResult<Option<BatchStatus>>;
    /// Counts these final-state events into their batches and moves batches on (see the
    /// module doc). Idempotent.
    async fn fan_in(&self, events: &[TaskEvent]) -> StoreResult<FanIn>;
}

/// What a fan-in pass made runnable.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FanIn {
    /// The reduce tasks it queued.
    pub reduces: Vec<Id>,
    /// Parked items it released (`max_concurrency`).
    pub released: u64,
}

impl FanIn {
    /// Whether runners have new work because of it.
    pub fn queued_any(&self) -> bool {
        !self.reduces.is_empty() || self.released > 0
    }
}

/// The parked items to park at creation: indexes from the returned one on, when the batch
/// has more items than its `max_concurrency`.
pub(crate) fn first_parked(b: &NewBatch) -> Option<i32> {
    let total = i32::try_from(b.payloads.len()).unwrap_or(i32::MAX);
    b.max_concurrency.filter(|m| *m > 0 && *m < total)
}

/// The parked indexes `[from, to)` to release after the fan-in counted `freed` released
/// items of a running batch whose first parked index is `released`; `None` when none.
pub(crate) fn release_range(b: &Batch, released: Option<i32>, freed: i32) -> Option<(i32, i32)> {
    let from = released?;
    if b.status != BatchStatus::Running || freed <= 0 || from >= b.total {
        return None;
    }
    Some((from, from.saturating_add(freed).min(b.total)))
}

/// What the fan-in does with a running batch once its counts are up to date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    /// Items are still unfinished.
    Wait,
    /// Too many items failed: fail the batch with this message, cancel the rest.
    Fail(String),
    /// Every item ended: queue the reduce task.
    Reduce,
    /// Every item ended and there is no reduce.
    Complete,
}

/// The next step of a running batch.
pub(crate) fn next_step(b: &Batch) -> Step {
    if b.tolerance_exceeded() {
        let tolerance = match (b.tolerated_failure_count, b.tolerated_failure_percent) {
            (Some(c), Some(p)) => format!("{c} items or {p}%"),
            (Some(c), None) => format!("{c} items"),
            (None, Some(p)) => format!("{p}%"),
            (None, None) => "none".into(),
        };
        return Step::Fail(format!(
            "{} of {} items failed, more than the tolerated {tolerance}",
            b.failed, b.total
        ));
    }
    if b.done < b.total {
        Step::Wait
    } else if b.reduce_code_name.is_some() {
        Step::Reduce
    } else {
        Step::Complete
    }
}

/// The tasks of a new batch's items, in index order, from `offset`.
pub(crate) fn item_tasks(batch_id: Id, b: &NewBatch, offset: usize, n: usize) -> Vec<NewTask> {
    b.payloads[offset..offset + n]
        .iter()
        .enumerate()
        .map(|(i, payload)| NewTask {
            code_name: b.code_name.clone(),
            payload: payload.clone(),
            priority: b.priority,
            timeout: b.timeout,
            delay: 0,
            cluster: b.cluster.clone(),
            label: b.label.clone(),
            origin: TaskOrigin {
                batch_id: Some(batch_id),
                batch_index: Some((offset + i) as i32),
                parent_id: b.parent_id,
                ..TaskOrigin::default()
            },
        })
        .collect()
}

/// The reduce task of a batch whose reduce settings are in its row.
pub(crate) fn reduce_task(row: &impl Cols, b: &Batch) -> StoreResult<NewTask> {
    Ok(NewTask {
        code_name: b.reduce_code_name.clone().unwrap_or_default(),
        payload: row.opt_bytes("reduce_payload")?.unwrap_or_default(),
        priority: row.opt_int("reduce_priority")?,
        timeout: row.opt_int("reduce_timeout")?.unwrap_or(3600),
        delay: 0,
        cluster: row.text("cluster")?,
        label: b.label.clone(),
        origin: TaskOrigin {
            batch_id: Some(b.id),
            parent_id: b.parent_id,
            ..TaskOrigin::default()
        },
    })
}

/// The message of a batch whose reduce task did not complete.
pub(crate) fn reduce_failed(task: Id, st: &str) -> String {
    format!("the reduce task {task} ended {st}")
}

/// Reads a `batches` row (without counts).
pub(crate) fn batch(row: &impl Cols) -> StoreResult<Batch> {
    Ok(Batch {
        id: id(row, "id")?,
        project_id: id(row, "project_id")?,
        code_name: row.text("code_name")?,
        status: status(row, "status")?,
        total: row.int("total")?,
        done: row.int("done")?,
        failed: row.int("failed")?,
        counts: Default::default(),
        reduce_code_name: row.opt_text("reduce_code_name")?,
        reduce_task_id: opt_id(row, "reduce_task_id")?,
        max_concurrency: row.opt_int("max_concurrency")?,
        tolerated_failure_count: row.opt_int("tolerated_failure_count")?,
        tolerated_failure_percent: row.opt_int("tolerated_failure_percent")?,
        label: row.opt_text("label")?,
        msg: row.opt_text("msg")?,
        parent_id: opt_id(row, "parent_id")?,
        created_at: row.time("created_at")?,
        updated_at: row.time("updated_at")?,
    })
}

/// Reads an item row: `batch_index`, `id`, `status`, `msg`, `result_data`, `result_blob_key`.
pub(crate) fn item(row: &impl Cols) -> StoreResult<BatchItem> {
    Ok(BatchItem {
        index: row.int("batch_index")?,
        task_id: id(row, "id")?,
        status: status(row, "status")?,
        msg: row.opt_text("msg")?,
        result: row.opt_bytes("result_data")?,
        result_blob_key: row.opt_text("result_blob_key")?,
    })
}
