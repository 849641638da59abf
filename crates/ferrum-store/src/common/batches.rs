//! Batches, written once for both backends (see `crate::batches` for the rules). A backend
//! supplies [`BatchSql`]: how it parks and releases items, how it counts them, and the
//! statements that read each item's latest task.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use ferrum_model::{Batch, BatchItem, BatchStatus, Id, NewBatch, Page, TaskStatus};

use super::queue::{Queue, Unfinished};
use super::sql::{args, first, one, Arg, SqlTx};
use crate::batches::{
    batch, first_parked, item, item_tasks, next_step, reduce_failed, reduce_task, release_range,
    BatchStore, FanIn, Step, INSERT_CHUNK,
};
use crate::events::TaskEvent;
use crate::rows::{id, Cols};
use crate::{StoreError, StoreResult};

/// What a backend does its own way for batches.
#[async_trait]
pub(crate) trait BatchSql: Queue {
    /// `status, n`: how many items of batch `$1` in project `$2` have their latest task in
    /// each status.
    const COUNTS: &'static str;
    /// Items of batch `$1` in project `$2` with `batch_index > $3`, at most `$4`, in index
    /// order: each item's latest task, as [`item`] reads it.
    const ITEMS: &'static str;
    /// Fan-in runs one transaction per batch (Postgres: row locks held briefly) rather than
    /// one for the whole pass (SQLite: one writer, one commit).
    const TX_PER_BATCH: bool;
    /// Makes the items of batch `id` from index `from` on unleasable until released.
    async fn park(tx: &mut Self::Tx, id: Id, from: i32) -> StoreResult<()>;
    /// Makes the parked items `[from, to)` of batch `id` due now; how many it released.
    async fn release(
        tx: &mut Self::Tx,
        id: Id,
        range: (i32, i32),
        limited: &mut Vec<String>,
    ) -> StoreResult<u64>;
    /// Marks the item tasks `items` of batch `b` counted, each at most once, and adds them
    /// to the batch's `done` and `failed`; answers `(done, failed, freed)`, `freed` being
    /// how many of them sat below the first parked index `released`.
    async fn count_items(
        tx: &mut Self::Tx,
        b: &Batch,
        items: Vec<String>,
        released: Option<i32>,
    ) -> StoreResult<(i32, i32, i32)>;
}

#[async_trait]
impl<S: BatchSql> BatchStore for S {
    async fn create_batch(&self, project: Id, b: NewBatch) -> StoreResult<Batch> {
        let id = Id::generate();
        let mut tx = self.begin().await?;
        // A batch's items count against the project's queued cap and creation rate like
        // any enqueue: past either, nothing is written (429).
        super::quotas::enforce::<S>(&mut tx, project, b.payloads.len()).await?;
        if let Some(r) = &b.reduce {
            let known = tx
                .fetch(
                    "SELECT id FROM codes WHERE project_id = $1 AND name = $2 \
                     AND deleted_at IS NULL",
                    args![project, &r.code_name],
                )
                .await?;
            if known.is_empty() {
                return Err(StoreError::UnknownCode(r.code_name.clone()));
            }
        }
        let reduce = b.reduce.as_ref();
        let sql = format!(
            "INSERT INTO batches (id, project_id, code_name, status, total, max_concurrency, \
               tolerated_failure_count, tolerated_failure_percent, reduce_code_name, \
               reduce_payload, reduce_timeout, reduce_priority, cluster, label, parent_id, \
               created_at, updated_at) \
             VALUES ($1, $2, $3, 'running', $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, \
               {now}, {now}) \
             RETURNING *",
            now = S::now(15)
        );
        let row = one(tx
            .fetch(
                &sql,
                args![
                    id,
                    project,
                    &b.code_name,
                    b.payloads.len() as i32,
                    b.max_concurrency,
                    b.tolerated_failure_count,
                    b.tolerated_failure_percent,
                    reduce.map(|r| r.code_name.clone()),
                    reduce.map(|r| r.payload.clone()),
                    reduce.map(|r| r.timeout),
                    reduce.and_then(|r| r.priority),
                    &b.cluster,
                    &b.label,
                    b.parent_id,
                    Arg::Now,
                ],
            )
            .await?)?;
        let created = batch(&row)?;
        let retries = b.retries.map(|r| (r, b.retries_delay.unwrap_or(0)));
        let mut limited = Vec::new();
        let mut offset = 0;
        while offset < b.payloads.len() {
            let n = INSERT_CHUNK.min(b.payloads.len() - offset);
            let tasks = item_tasks(id, &b, offset, n);
            S::insert_tasks(&mut tx, project, tasks, retries, &mut limited).await?;
            offset += n;
        }
        if let Some(from) = first_parked(&b) {
            S::park(&mut tx, id, from).await?;
            set_released(&mut tx, id, from).await?;
        }
        tx.commit().await?;
        self.after_commit(limited).await;
        Ok(created)
    }

    async fn batch(&self, project: Id, id: Id) -> StoreResult<Option<Batch>> {
        let found = self
            .read(
                "SELECT * FROM batches WHERE project_id = $1 AND id = $2",
                args![project, id],
            )
            .await?;
        let Some(row) = first(found) else {
            return Ok(None);
        };
        let mut b = batch(&row)?;
        let counts = self.read(S::COUNTS, args![id, project]).await?;
        b.counts = counts
            .iter()
            .map(|r| {
                let st: TaskStatus = crate::rows::status(r, "status")?;
                Ok((st, r.big("n")?))
            })
            .collect::<StoreResult<BTreeMap<_, _>>>()?;
        Ok(Some(b))
    }

    async fn batches(&self, project: Id, page: Page) -> StoreResult<Vec<Batch>> {
        let rows = self
            .read(
                "SELECT * FROM batches WHERE project_id = $1 ORDER BY id DESC LIMIT $2 OFFSET $3",
                args![project, page.limit(), page.offset()],
            )
            .await?;
        rows.iter().map(batch).collect()
    }

    async fn batch_items(
        &self,
        project: Id,
        id: Id,
        after: Option<i32>,
        limit: i64,
    ) -> StoreResult<Option<Vec<BatchItem>>> {
        let exists = self
            .read(
                "SELECT id FROM batches WHERE project_id = $1 AND id = $2",
                args![project, id],
            )
            .await?;
        if exists.is_empty() {
            return Ok(None);
        }
        let rows = self
            .read(S::ITEMS, args![id, project, after.unwrap_or(-1), limit])
            .await?;
        rows.iter().map(item).collect::<StoreResult<_>>().map(Some)
    }

    async fn batch_result(
        &self,
        project: Id,
        id: Id,
    ) -> StoreResult<Option<(Option<Vec<u8>>, Option<String>)>> {
        let rows = self
            .read(
                "SELECT r.data, r.blob_key FROM batches b \
                 JOIN task_results r ON r.task_id = b.reduce_task_id \
                 WHERE b.project_id = $1 AND b.id = $2",
                args![project, id],
            )
            .await?;
        first(rows)
            .map(|r| Ok((r.opt_bytes("data")?, r.opt_text("blob_key")?)))
            .transpose()
    }

    async fn cancel_batch(&self, project: Id, id: Id) -> StoreResult<Option<BatchStatus>> {
        let mut tx = self.begin().await?;
        let sql = format!(
            "SELECT * FROM batches WHERE project_id = $1 AND id = $2{}",
            S::FOR_UPDATE
        );
        let Some(row) = first(tx.fetch(&sql, args![project, id]).await?) else {
            return Ok(None);
        };
        let b = batch(&row)?;
        if b.status.is_final() {
            return Ok(Some(b.status));
        }
        set_status::<S>(&mut tx, id, BatchStatus::Cancelled, None, None).await?;
        S::cancel_unfinished(&mut tx, project, Unfinished::Batch(id)).await?;
        tx.commit().await?;
        Ok(Some(BatchStatus::Cancelled))
    }

    async fn fan_in(&self, events: &[TaskEvent]) -> StoreResult<FanIn> {
        let mut by_batch: BTreeMap<Id, Vec<&TaskEvent>> = BTreeMap::new();
        for e in events {
            if let Some(b) = e.batch_id {
                by_batch.entry(b).or_default().push(e);
            }
        }
        let mut report = FanIn::default();
        let mut limited = Vec::new();
        let mut tx = None;
        for (b, evs) in by_batch {
            let open = match &mut tx {
                Some(open) => open,
                None => tx.insert(self.begin().await?),
            };
            if let Some(r) = fan_in_one::<S>(open, b, &evs, &mut limited, &mut report).await? {
                report.reduces.push(r);
            }
            if S::TX_PER_BATCH {
                if let Some(done) = tx.take() {
                    done.commit().await?;
                }
            }
        }
        if let Some(done) = tx {
            done.commit().await?;
        }
        self.after_commit(limited).await;
        Ok(report)
    }
}

/// Records `from` as the first parked index of batch `id`.
async fn set_released(tx: &mut impl SqlTx, id: Id, from: i32) -> StoreResult<()> {
    tx.execute(
        "UPDATE batches SET released = $2 WHERE id = $1",
        args![id, from],
    )
    .await?;
    Ok(())
}

/// Sets a batch's status (and `msg`, `reduce_task_id` when given).
async fn set_status<S: BatchSql>(
    tx: &mut S::Tx,
    id: Id,
    st: BatchStatus,
    msg: Option<String>,
    reduce: Option<Id>,
) -> StoreResult<()> {
    let sql = format!(
        "UPDATE batches SET status = $2, msg = coalesce($3, msg), \
           reduce_task_id = coalesce($4, reduce_task_id), updated_at = {} WHERE id = $1",
        S::now(5)
    );
    tx.execute(&sql, args![id, st.as_str(), msg, reduce, Arg::Now])
        .await?;
    Ok(())
}

/// Fan-in of one batch's events in the caller's transaction; the reduce task it queued.
async fn fan_in_one<S: BatchSql>(
    tx: &mut S::Tx,
    id: Id,
    events: &[&TaskEvent],
    limited: &mut Vec<String>,
    report: &mut FanIn,
) -> StoreResult<Option<Id>> {
    let sql = format!("SELECT * FROM batches WHERE id = $1{}", S::FOR_UPDATE);
    let Some(row) = first(tx.fetch(&sql, args![id]).await?) else {
        return Ok(None);
    };
    let mut b = batch(&row)?;
    let released = row.opt_int("released")?;
    let mut freed = 0;
    let ids: Vec<String> = events.iter().map(|e| e.task_id.to_string()).collect();
    let sql = format!(
        "SELECT id, batch_index FROM tasks WHERE {} AND batch_id = $2",
        S::any("id", 1)
    );
    let index: HashMap<String, Option<i32>> = tx
        .fetch(&sql, args![ids, id])
        .await?
        .iter()
        .map(|r| Ok((r.text("id")?, r.opt_int("batch_index")?)))
        .collect::<StoreResult<_>>()?;
    let mut items = Vec::new();
    for e in events {
        match index.get(&e.task_id.to_string()) {
            Some(Some(_)) if !e.retried => items.push(e.task_id.to_string()),
            Some(None) => reduce_event::<S>(tx, &mut b, e).await?,
            _ => {}
        }
    }
    if !items.is_empty() {
        (b.done, b.failed, freed) = S::count_items(tx, &b, items, released).await?;
    }
    if b.status != BatchStatus::Running {
        return Ok(None);
    }
    if let Some(range) = release_range(&b, released, freed) {
        report.released += S::release(tx, id, range, limited).await?;
        set_released(tx, id, range.1).await?;
    }
    match next_step(&b) {
        Step::Wait => Ok(None),
        Step::Complete => {
            set_status::<S>(tx, id, BatchStatus::Complete, None, None).await?;
            Ok(None)
        }
        Step::Fail(msg) => {
            set_status::<S>(tx, id, BatchStatus::Failed, Some(msg), None).await?;
            S::cancel_unfinished(tx, b.project_id, Unfinished::Batch(id)).await?;
            Ok(None)
        }
        Step::Reduce => {
            let reduce = vec![reduce_task(&row, &b)?];
            match S::insert_tasks(tx, b.project_id, reduce, None, limited).await {
                Ok(ids) => {
                    let task = ids[0];
                    set_status::<S>(tx, id, BatchStatus::Reducing, None, Some(task)).await?;
                    Ok(Some(task))
                }
                Err(StoreError::UnknownCode(name)) => {
                    let msg = format!("the reduce code {name:?} no longer exists");
                    set_status::<S>(tx, id, BatchStatus::Failed, Some(msg), None).await?;
                    Ok(None)
                }
                Err(e) => Err(e),
            }
        }
    }
}

/// The reduce task of batch `b` ended: the batch ends with it, unless it is being retried
/// (then the batch follows the retry).
async fn reduce_event<S: BatchSql>(
    tx: &mut S::Tx,
    b: &mut Batch,
    e: &TaskEvent,
) -> StoreResult<()> {
    if b.status != BatchStatus::Reducing {
        return Ok(());
    }
    if e.retried {
        let retry = tx
            .fetch(
                "SELECT id FROM tasks WHERE original_task_id = $1",
                args![e.task_id],
            )
            .await?;
        if let Some(r) = first(retry) {
            let sql = format!(
                "UPDATE batches SET reduce_task_id = $2, updated_at = {} WHERE id = $1",
                S::now(3)
            );
            tx.execute(&sql, args![b.id, id(&r, "id")?, Arg::Now])
                .await?;
        }
        return Ok(());
    }
    let (st, msg) = if e.status == TaskStatus::Complete {
        (BatchStatus::Complete, None)
    } else {
        (
            BatchStatus::Failed,
            Some(reduce_failed(e.task_id, e.status.as_str())),
        )
    };
    set_status::<S>(tx, b.id, st, msg, None).await?;
    b.status = st;
    Ok(())
}
