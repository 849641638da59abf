//! Batches on Postgres (see `crate::batches`).

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use ferrum_model::{Batch, BatchItem, BatchStatus, Id, NewBatch, Page, TaskStatus};
use sqlx::{PgConnection, Row};

use super::tasks::{cancel_unfinished, insert_tasks, insert_tasks_with};
use super::PgStore;
use crate::batches::{
    batch, first_parked, item, item_tasks, next_step, reduce_failed, reduce_task, release_range,
    BatchStore, FanIn, Step, INSERT_CHUNK,
};
use crate::events::TaskEvent;
use crate::{StoreError, StoreResult};

/// An item's latest task (the newest of its slot), with its result when one is stored.
const ITEMS: &str = "SELECT DISTINCT ON (t.batch_index) t.batch_index, t.id, t.status, t.msg, \
       r.data AS result_data, r.blob_key AS result_blob_key \
     FROM task_records t LEFT JOIN task_results r ON r.task_id = t.id \
     WHERE t.batch_id = $1 AND t.project_id = $2 AND t.batch_index > $3 \
     ORDER BY t.batch_index, t.id DESC LIMIT $4";

#[async_trait]
impl BatchStore for PgStore {
    async fn create_batch(&self, project: Id, b: NewBatch) -> StoreResult<Batch> {
        let id = Id::generate();
        let project_s = project.to_string();
        let mut tx = self.pool.begin().await?;
        // A batch's items count against the project's queued cap and creation rate like
        // any enqueue: past either, nothing is written (429).
        super::quotas::enforce(&mut tx, project, b.payloads.len()).await?;
        if let Some(r) = &b.reduce {
            let known: Option<String> = sqlx::query_scalar(
                "SELECT id FROM codes WHERE project_id = $1 AND name = $2 AND deleted_at IS NULL",
            )
            .bind(&project_s)
            .bind(&r.code_name)
            .fetch_optional(&mut *tx)
            .await?;
            if known.is_none() {
                return Err(StoreError::UnknownCode(r.code_name.clone()));
            }
        }
        let row = sqlx::query(
            "INSERT INTO batches (id, project_id, code_name, status, total, max_concurrency, \
               tolerated_failure_count, tolerated_failure_percent, reduce_code_name, \
               reduce_payload, reduce_timeout, reduce_priority, cluster, label, parent_id) \
             VALUES ($1, $2, $3, 'running', $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
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
        .bind(b.parent_id.map(|p| p.to_string()))
        .fetch_one(&mut *tx)
        .await?;
        let created = batch(&row)?;
        let retries = b.retries.map(|r| (r, b.retries_delay.unwrap_or(0)));
        let mut limited = Vec::new();
        let mut offset = 0;
        while offset < b.payloads.len() {
            let n = INSERT_CHUNK.min(b.payloads.len() - offset);
            let tasks = item_tasks(id, &b, offset, n);
            let inserted = insert_tasks_with(&mut tx, project, tasks, retries).await?;
            limited.extend(inserted.limited_codes);
            offset += n;
        }
        if let Some(from) = first_parked(&b) {
            park(&mut tx, id, from).await?;
        }
        tx.commit().await?;
        self.admit(limited).await;
        Ok(created)
    }

    async fn batch(&self, project: Id, id: Id) -> StoreResult<Option<Batch>> {
        let row = sqlx::query("SELECT * FROM batches WHERE project_id = $1 AND id = $2")
            .bind(project.to_string())
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let mut b = batch(&row)?;
        let counts = sqlx::query(
            "SELECT status, count(*) AS n FROM ( \
               SELECT DISTINCT ON (batch_index) status FROM task_records \
               WHERE batch_id = $1 AND project_id = $2 AND batch_index IS NOT NULL \
               ORDER BY batch_index, id DESC) s GROUP BY status",
        )
        .bind(id.to_string())
        .bind(project.to_string())
        .fetch_all(&self.pool)
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
            "SELECT * FROM batches WHERE project_id = $1 ORDER BY id DESC LIMIT $2 OFFSET $3",
        )
        .bind(project.to_string())
        .bind(page.limit())
        .bind(page.offset())
        .fetch_all(&self.pool)
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
            sqlx::query_scalar("SELECT id FROM batches WHERE project_id = $1 AND id = $2")
                .bind(project.to_string())
                .bind(id.to_string())
                .fetch_optional(&self.pool)
                .await?;
        if exists.is_none() {
            return Ok(None);
        }
        let rows = sqlx::query(ITEMS)
            .bind(id.to_string())
            .bind(project.to_string())
            .bind(after.unwrap_or(-1))
            .bind(limit)
            .fetch_all(&self.pool)
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
             WHERE b.project_id = $1 AND b.id = $2",
        )
        .bind(project.to_string())
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| Ok((r.try_get("data")?, r.try_get("blob_key")?)))
            .transpose()
    }

    async fn cancel_batch(&self, project: Id, id: Id) -> StoreResult<Option<BatchStatus>> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query("SELECT * FROM batches WHERE project_id = $1 AND id = $2 FOR UPDATE")
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
        cancel_unfinished(
            &mut tx,
            &project.to_string(),
            "t.batch_id = $2",
            &id.to_string(),
        )
        .await?;
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
        for (b, evs) in by_batch {
            let mut tx = self.pool.begin().await?;
            if let Some(r) = fan_in_one(&mut tx, b, &evs, &mut limited, &mut report).await? {
                report.reduces.push(r);
            }
            tx.commit().await?;
        }
        self.admit(limited).await;
        Ok(report)
    }
}

/// The parked instant: a parked item's queue row waits `held` with this `run_at`
/// (`migrations/0016_batch_window.sql`).
pub(super) const PARKED_AT: &str = "'9999-12-31 00:00:00+00'::timestamptz";

/// Parks the items of batch `id` from index `from` on, and marks `from` as the first parked.
async fn park(tx: &mut PgConnection, id: Id, from: i32) -> StoreResult<()> {
    sqlx::query(&format!(
        "UPDATE task_queue q SET held = true, run_at = {PARKED_AT} FROM tasks t \
         WHERE t.batch_id = $1 AND t.batch_index >= $2 AND q.task_id = t.id"
    ))
    .bind(id.to_string())
    .bind(from)
    .execute(&mut *tx)
    .await?;
    sqlx::query("UPDATE batches SET released = $2 WHERE id = $1")
        .bind(id.to_string())
        .bind(from)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Releases the parked items `[from, to)` of batch `id`: due now, admitted unless their code
/// is limited (those are admitted after the commit, like new tasks), runners woken.
async fn release(
    tx: &mut PgConnection,
    id: Id,
    (from, to): (i32, i32),
    limited: &mut Vec<String>,
) -> StoreResult<u64> {
    let rows = sqlx::query(&format!(
        "WITH rel AS ( \
           UPDATE task_queue q SET held = q.limited, run_at = now() FROM tasks t \
           WHERE t.batch_id = $1 AND t.batch_index >= $2 AND t.batch_index < $3 \
             AND q.task_id = t.id AND NOT q.leased AND q.run_at = {PARKED_AT} \
           RETURNING q.code_id, q.limited, q.cluster) \
         SELECT code_id, bool_or(limited) AS limited, count(*) AS n, \
           pg_notify('ferrum_queue', left(min(cluster), 64)) \
         FROM rel GROUP BY code_id"
    ))
    .bind(id.to_string())
    .bind(from)
    .bind(to)
    .fetch_all(&mut *tx)
    .await?;
    sqlx::query("UPDATE batches SET released = $2 WHERE id = $1")
        .bind(id.to_string())
        .bind(to)
        .execute(&mut *tx)
        .await?;
    let mut n = 0;
    for r in &rows {
        n += u64::try_from(r.try_get::<i64, _>("n")?).unwrap_or(0);
        if r.try_get("limited")? {
            limited.push(r.try_get("code_id")?);
        }
    }
    Ok(n)
}

/// Sets a batch's status (and `msg`, `reduce_task_id` when given).
async fn set_status(
    conn: &mut PgConnection,
    id: Id,
    st: BatchStatus,
    msg: Option<String>,
    reduce: Option<Id>,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE batches SET status = $2, msg = coalesce($3, msg), \
           reduce_task_id = coalesce($4, reduce_task_id), updated_at = now() WHERE id = $1",
    )
    .bind(id.to_string())
    .bind(st.as_str())
    .bind(msg)
    .bind(reduce.map(|r| r.to_string()))
    .execute(conn)
    .await?;
    Ok(())
}

/// Fan-in of one batch's events in the caller's transaction; the reduce task it queued.
async fn fan_in_one(
    tx: &mut PgConnection,
    id: Id,
    events: &[&TaskEvent],
    limited: &mut Vec<String>,
    report: &mut FanIn,
) -> StoreResult<Option<Id>> {
    let row = sqlx::query("SELECT * FROM batches WHERE id = $1 FOR UPDATE")
        .bind(id.to_string())
        .fetch_optional(&mut *tx)
        .await?;
    let Some(row) = row else { return Ok(None) };
    let mut b = batch(&row)?;
    let released: Option<i32> = row.try_get("released")?;
    let mut freed = 0;
    let ids: Vec<String> = events.iter().map(|e| e.task_id.to_string()).collect();
    let tasks = sqlx::query(
        "SELECT id, batch_index, status FROM tasks WHERE id = ANY($1) AND batch_id = $2",
    )
    .bind(&ids)
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
        let counted = sqlx::query(
            "WITH c AS ( \
               UPDATE tasks SET batch_counted = true \
               WHERE id = ANY($1) AND batch_id = $2 AND batch_index IS NOT NULL \
                 AND NOT batch_counted \
               RETURNING status, batch_index) \
             UPDATE batches SET \
               done = least(total, done + (SELECT count(*) FROM c)), \
               failed = least(total, failed + \
                 (SELECT count(*) FROM c WHERE status <> 'complete')), \
               updated_at = now() \
             WHERE id = $2 RETURNING done, failed, \
               (SELECT count(*) FROM c WHERE batch_index < $3)::int AS freed",
        )
        .bind(&items)
        .bind(id.to_string())
        .bind(released.unwrap_or(i32::MAX))
        .fetch_one(&mut *tx)
        .await?;
        b.done = counted.try_get("done")?;
        b.failed = counted.try_get("failed")?;
        freed = counted.try_get("freed")?;
    }
    if b.status != BatchStatus::Running {
        return Ok(None);
    }
    if let Some(range) = release_range(&b, released, freed) {
        report.released += release(tx, id, range, limited).await?;
    }
    match next_step(&b) {
        Step::Wait => Ok(None),
        Step::Complete => {
            set_status(tx, id, BatchStatus::Complete, None, None).await?;
            Ok(None)
        }
        Step::Fail(msg) => {
            set_status(tx, id, BatchStatus::Failed, Some(msg), None).await?;
            cancel_unfinished(
                tx,
                &b.project_id.to_string(),
                "t.batch_id = $2",
                &id.to_string(),
            )
            .await?;
            Ok(None)
        }
        Step::Reduce => match insert_tasks(tx, b.project_id, vec![reduce_task(&row, &b)?]).await {
            Ok(inserted) => {
                limited.extend(inserted.limited_codes);
                let task = inserted.ids[0];
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
async fn reduce_event(tx: &mut PgConnection, b: &mut Batch, e: &TaskEvent) -> StoreResult<()> {
    if b.status != BatchStatus::Reducing {
        return Ok(());
    }
    if e.retried {
        let retry: Option<String> =
            sqlx::query_scalar("SELECT id FROM tasks WHERE original_task_id = $1")
                .bind(e.task_id.to_string())
                .fetch_optional(&mut *tx)
                .await?;
        if let Some(r) = retry {
            sqlx::query("UPDATE batches SET reduce_task_id = $2, updated_at = now() WHERE id = $1")
                .bind(b.id.to_string())
                .bind(r)
                .execute(&mut *tx)
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
    set_status(tx, b.id, st, msg, None).await?;
    b.status = st;
    Ok(())
}
