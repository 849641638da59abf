//! Batches on SQLite (see `crate::batches`). One writer: each call is one write transaction.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use ferrum_model::{Batch, BatchItem, BatchStatus, Id, NewBatch, Page, TaskStatus};
use sqlx::{Row, SqliteConnection};

use super::rows::now;
use super::tasks::{cancel_unfinished, insert_tasks, insert_tasks_with};
use super::SqliteStore;
use crate::batches::{
    batch, first_parked, item, item_tasks, next_step, reduce_failed, reduce_task, release_range,
    BatchStore, FanIn, Step, INSERT_CHUNK,
};
use crate::events::TaskEvent;
use crate::{StoreError, StoreResult};

/// Each item's latest task: the newest of its slot (`tasks_batch` answers the subquery).
const LATEST: &str = "t.batch_id = ?1 AND t.project_id = ?2 AND t.batch_index IS NOT NULL \
     AND t.id = (SELECT max(u.id) FROM tasks u \
                 WHERE u.batch_id = t.batch_id AND u.batch_index = t.batch_index)";

#[async_trait]
impl BatchStore for SqliteStore {
    async fn create_batch(&self, project: Id, b: NewBatch) -> StoreResult<Batch> {
        let id = Id::generate();
        let project_s = project.to_string();
        let mut tx = self.write().await?;
        // A batch's items count against the project's queued cap and creation rate like
        // any enqueue: past either, nothing is written (429).
        super::quotas::enforce(&mut tx, project, b.payloads.len()).await?;
        if let Some(r) = &b.reduce {
            let known: Option<String> = sqlx::query_scalar(
                "SELECT id FROM codes WHERE project_id = ?1 AND name = ?2 AND deleted_at IS NULL",
            )
            .bind(&project_s)
            .bind(&r.code_name)
            .fetch_optional(&mut *tx)
            .await?;
            if known.is_none() {
                return Err(StoreError::UnknownCode(r.code_name.clone()));
            }
        }
        let at = now();
        let row = sqlx::query(
            "INSERT INTO batches (id, project_id, code_name, status, total, max_concurrency, \
               tolerated_failure_count, tolerated_failure_percent, reduce_code_name, \
               reduce_payload, reduce_timeout, reduce_priority, cluster, label, created_at, \
               updated_at, parent_id) \
             VALUES (?1, ?2, ?3, 'running', ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?14, \
               ?15) \
             RETURNING *",
        )
        .bind(id.to_string())
        .bind(&project_s)
        .bind(&b.code_name)
        .bind(b.payloads.len() as i32)
        .bind(b.max_concurrency)
        .bind(b.tolerated_failure_count)
        .bind(b.tolerated_failure_percent)
        .bind(b.reduce.as_ref().map(|r| r.code_name.clone()))
        .bind(b.reduce.as_ref().map(|r| r.payload.clone()))
        .bind(b.reduce.as_ref().map(|r| r.timeout))
        .bind(b.reduce.as_ref().and_then(|r| r.priority))
        .bind(&b.cluster)
        .bind(&b.label)
        .bind(at)
        .bind(b.parent_id.map(|p| p.to_string()))
        .fetch_one(&mut *tx)
        .await?;
        let created = batch(&row)?;
        let retries = b.retries.map(|r| (r, b.retries_delay.unwrap_or(0)));
        let mut offset = 0;
        while offset < b.payloads.len() {
            let n = INSERT_CHUNK.min(b.payloads.len() - offset);
            insert_tasks_with(&mut tx, project, item_tasks(id, &b, offset, n), retries).await?;
            offset += n;
        }
        if let Some(from) = first_parked(&b) {
            sqlx::query("UPDATE tasks SET run_at = ?3 WHERE batch_id = ?1 AND batch_index >= ?2")
                .bind(id.to_string())
                .bind(from)
                .bind(PARKED_AT)
                .execute(&mut *tx)
                .await?;
            sqlx::query("UPDATE batches SET released = ?2 WHERE id = ?1")
                .bind(id.to_string())
                .bind(from)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(created)
    }

    async fn batch(&self, project: Id, id: Id) -> StoreResult<Option<Batch>> {
        let row = sqlx::query("SELECT * FROM batches WHERE project_id = ?1 AND id = ?2")
            .bind(project.to_string())
            .bind(id.to_string())
            .fetch_optional(&self.reader)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let mut b = batch(&row)?;
        let counts = sqlx::query(&format!(
            "SELECT status, count(*) AS n FROM tasks t WHERE {LATEST} GROUP BY status"
        ))
        .bind(id.to_string())
        .bind(project.to_string())
        .fetch_all(&self.reader)
        .await?;
        b.counts = counts
            .iter()
            .map(|r| {
                let st: String = r.try_get("status")?;
                let st: TaskStatus = st
                    .parse()
                    .map_err(|e| StoreError::Corrupt(format!("{e}")))?;
                Ok((st, r.try_get::<i64, _>("n")?))
            })
            .collect::<StoreResult<BTreeMap<_, _>>>()?;
        Ok(Some(b))
    }

    async fn batches(&self, project: Id, page: Page) -> StoreResult<Vec<Batch>> {
        let rows = sqlx::query(
            "SELECT * FROM batches WHERE project_id = ?1 ORDER BY id DESC LIMIT ?2 OFFSET ?3",
        )
        .bind(project.to_string())
        .bind(page.limit())
        .bind(page.offset())
        .fetch_all(&self.reader)
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
        let exists: Option<String> =
            sqlx::query_scalar("SELECT id FROM batches WHERE project_id = ?1 AND id = ?2")
                .bind(project.to_string())
                .bind(id.to_string())
                .fetch_optional(&self.reader)
                .await?;
        if exists.is_none() {
            return Ok(None);
        }
        let rows = sqlx::query(&format!(
            "SELECT t.batch_index, t.id, t.status, t.msg, r.data AS result_data, \
               r.blob_key AS result_blob_key \
             FROM tasks t LEFT JOIN task_results r ON r.task_id = t.id \
             WHERE {LATEST} AND t.batch_index > ?3 ORDER BY t.batch_index LIMIT ?4"
        ))
        .bind(id.to_string())
        .bind(project.to_string())
        .bind(after.unwrap_or(-1))
        .bind(limit)
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(item).collect::<StoreResult<_>>().map(Some)
    }

    async fn batch_result(
        &self,
        project: Id,
        id: Id,
    ) -> StoreResult<Option<(Option<Vec<u8>>, Option<String>)>> {
        let row = sqlx::query(
            "SELECT r.data, r.blob_key FROM batches b \
             JOIN task_results r ON r.task_id = b.reduce_task_id \
             WHERE b.project_id = ?1 AND b.id = ?2",
        )
        .bind(project.to_string())
        .bind(id.to_string())
        .fetch_optional(&self.reader)
        .await?;
        row.map(|r| Ok((r.try_get("data")?, r.try_get("blob_key")?)))
            .transpose()
    }

    async fn cancel_batch(&self, project: Id, id: Id) -> StoreResult<Option<BatchStatus>> {
        let mut tx = self.write().await?;
        let row = sqlx::query("SELECT * FROM batches WHERE project_id = ?1 AND id = ?2")
            .bind(project.to_string())
            .bind(id.to_string())
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let b = batch(&row)?;
        if b.status.is_final() {
            return Ok(Some(b.status));
        }
        set_status(&mut tx, id, BatchStatus::Cancelled, None, None).await?;
        cancel_unfinished(&mut tx, "batch_id = ?1", &id.to_string()).await?;
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
        if by_batch.is_empty() {
            return Ok(report);
        }
        let mut tx = self.write().await?;
        for (b, evs) in by_batch {
            if let Some(r) = fan_in_one(&mut tx, b, &evs, &mut report).await? {
                report.reduces.push(r);
            }
        }
        tx.commit().await?;
        Ok(report)
    }
}

/// A parked item's `run_at` (9999-12-31 in microseconds since the epoch): no lease takes it
/// until the fan-in releases it (`migrations/sqlite/0012_batch_window.sql`).
const PARKED_AT: i64 = 253_402_214_400_000_000;

/// Releases the parked items `[from, to)` of batch `id`: due now.
async fn release(tx: &mut SqliteConnection, id: Id, (from, to): (i32, i32)) -> StoreResult<u64> {
    let done = sqlx::query(
        "UPDATE tasks SET run_at = ?4 WHERE batch_id = ?1 AND batch_index >= ?2 \
           AND batch_index < ?3 AND status = 'queued' AND run_at = ?5",
    )
    .bind(id.to_string())
    .bind(from)
    .bind(to)
    .bind(now())
    .bind(PARKED_AT)
    .execute(&mut *tx)
    .await?;
    sqlx::query("UPDATE batches SET released = ?2 WHERE id = ?1")
        .bind(id.to_string())
        .bind(to)
        .execute(&mut *tx)
        .await?;
    Ok(done.rows_affected())
}

/// Sets a batch's status (and `msg`, `reduce_task_id` when given).
async fn set_status(
    conn: &mut SqliteConnection,
    id: Id,
    st: BatchStatus,
    msg: Option<String>,
    reduce: Option<Id>,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE batches SET status = ?2, msg = coalesce(?3, msg), \
           reduce_task_id = coalesce(?4, reduce_task_id), updated_at = ?5 WHERE id = ?1",
    )
    .bind(id.to_string())
    .bind(st.as_str())
    .bind(msg)
    .bind(reduce.map(|r| r.to_string()))
    .bind(now())
    .execute(conn)
    .await?;
    Ok(())
}

/// Fan-in of one batch's events in the caller's write transaction; the reduce task it queued.
async fn fan_in_one(
    tx: &mut SqliteConnection,
    id: Id,
    events: &[&TaskEvent],
    report: &mut FanIn,
) -> StoreResult<Option<Id>> {
    let row = sqlx::query("SELECT * FROM batches WHERE id = ?1")
        .bind(id.to_string())
        .fetch_optional(&mut *tx)
        .await?;
    let Some(row) = row else { return Ok(None) };
    let mut b = batch(&row)?;
    let released: Option<i32> = row.try_get("released")?;
    let mut freed = 0;
    let ids: Vec<String> = events.iter().map(|e| e.task_id.to_string()).collect();
    let ids_json = serde_json::to_string(&ids).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let tasks = sqlx::query(
        "SELECT id, batch_index FROM tasks \
         WHERE id IN (SELECT value FROM json_each(?1)) AND batch_id = ?2",
    )
    .bind(&ids_json)
    .bind(id.to_string())
    .fetch_all(&mut *tx)
    .await?;
    let index: HashMap<String, Option<i32>> = tasks
        .iter()
        .map(|r| Ok((r.try_get("id")?, r.try_get("batch_index")?)))
        .collect::<StoreResult<_>>()?;
    let mut items = Vec::new();
    for e in events {
        match index.get(&e.task_id.to_string()) {
            Some(Some(_)) if !e.retried => items.push(e.task_id.to_string()),
            Some(None) => reduce_event(tx, &mut b, e).await?,
            _ => {}
        }
    }
    if !items.is_empty() {
        let items =
            serde_json::to_string(&items).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let counted = sqlx::query(
            "UPDATE tasks SET batch_counted = 1 \
             WHERE id IN (SELECT value FROM json_each(?1)) AND batch_id = ?2 \
               AND batch_index IS NOT NULL AND NOT batch_counted \
             RETURNING status, batch_index",
        )
        .bind(&items)
        .bind(id.to_string())
        .fetch_all(&mut *tx)
        .await?;
        freed = counted
            .iter()
            .filter(|r| {
                r.try_get::<i32, _>("batch_index")
                    .is_ok_and(|i| i < released.unwrap_or(i32::MAX))
            })
            .count() as i32;
        let n = counted.len() as i32;
        let failed = counted
            .iter()
            .filter(|r| r.try_get::<String, _>("status").ok().as_deref() != Some("complete"))
            .count() as i32;
        b.done = (b.done + n).min(b.total);
        b.failed = (b.failed + failed).min(b.total);
        sqlx::query("UPDATE batches SET done = ?2, failed = ?3, updated_at = ?4 WHERE id = ?1")
            .bind(id.to_string())
            .bind(b.done)
            .bind(b.failed)
            .bind(now())
            .execute(&mut *tx)
            .await?;
    }
    if b.status != BatchStatus::Running {
        return Ok(None);
    }
    if let Some(range) = release_range(&b, released, freed) {
        report.released += release(tx, id, range).await?;
    }
    match next_step(&b) {
        Step::Wait => Ok(None),
        Step::Complete => {
            set_status(tx, id, BatchStatus::Complete, None, None).await?;
            Ok(None)
        }
        Step::Fail(msg) => {
            set_status(tx, id, BatchStatus::Failed, Some(msg), None).await?;
            cancel_unfinished(tx, "batch_id = ?1", &id.to_string()).await?;
            Ok(None)
        }
        Step::Reduce => match insert_tasks(tx, b.project_id, vec![reduce_task(&row, &b)?]).await {
            Ok(ids) => {
                let task = ids[0];
                set_status(tx, id, BatchStatus::Reducing, None, Some(task)).await?;
                Ok(Some(task))
            }
            Err(StoreError::UnknownCode(name)) => {
                let msg = format!("the reduce code {name:?} no longer exists");
                set_status(tx, id, BatchStatus::Failed, Some(msg), None).await?;
                Ok(None)
            }
            Err(e) => Err(e),
        },
    }
}

/// The reduce task of batch `b` ended: the batch ends with it, unless it is being retried
/// (then the batch follows the retry).
async fn reduce_event(tx: &mut SqliteConnection, b: &mut Batch, e: &TaskEvent) -> StoreResult<()> {
    if b.status != BatchStatus::Reducing {
        return Ok(());
    }
    if e.retried {
        sqlx::query(
            "UPDATE batches SET reduce_task_id = \
               coalesce((SELECT id FROM tasks WHERE original_task_id = ?2), reduce_task_id), \
               updated_at = ?3 WHERE id = ?1",
        )
        .bind(b.id.to_string())
        .bind(e.task_id.to_string())
        .bind(now())
        .execute(&mut *tx)
        .await?;
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
    set_status(tx, b.id, st, msg, None).await?;
    b.status = st;
    Ok(())
}
