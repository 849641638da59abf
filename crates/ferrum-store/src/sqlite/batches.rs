//! Batches on SQLite (see `crate::batches`; the flows are `crate::common::batches`): a parked
//! item is a queued task due at the end of time, and the fan-in counts in the application.
//! One writer: a whole fan-in pass is one write transaction.

use async_trait::async_trait;
use ferrum_model::{Batch, Id};
use sqlx::{Row, Sqlite, Transaction};

use super::rows::now;
use super::SqliteStore;
use crate::common::batches::BatchSql;
use crate::StoreResult;

/// Each item's latest task: the newest of its slot (`tasks_batch` answers the subquery).
macro_rules! latest {
    () => {
        "t.batch_id = $1 AND t.project_id = $2 AND t.batch_index IS NOT NULL \
         AND t.id = (SELECT max(u.id) FROM tasks u \
                     WHERE u.batch_id = t.batch_id AND u.batch_index = t.batch_index)"
    };
}

/// A parked item's `run_at` (9999-12-31 in microseconds since the epoch): no lease takes it
/// until the fan-in releases it (`migrations/sqlite/0012_batch_window.sql`).
const PARKED_AT: i64 = 253_402_214_400_000_000;

#[async_trait]
impl BatchSql for SqliteStore {
    const COUNTS: &'static str = concat!(
        "SELECT status, count(*) AS n FROM tasks t WHERE ",
        latest!(),
        " GROUP BY status"
    );
    const ITEMS: &'static str = concat!(
        "SELECT t.batch_index, t.id, t.status, t.msg, r.data AS result_data, \
           r.blob_key AS result_blob_key \
         FROM tasks t LEFT JOIN task_results r ON r.task_id = t.id WHERE ",
        latest!(),
        " AND t.batch_index > $3 ORDER BY t.batch_index LIMIT $4"
    );
    const TX_PER_BATCH: bool = false;

    async fn park(tx: &mut Transaction<'static, Sqlite>, id: Id, from: i32) -> StoreResult<()> {
        sqlx::query("UPDATE tasks SET run_at = $3 WHERE batch_id = $1 AND batch_index >= $2")
            .bind(id.to_string())
            .bind(from)
            .bind(PARKED_AT)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    async fn release(
        tx: &mut Transaction<'static, Sqlite>,
        id: Id,
        (from, to): (i32, i32),
        _limited: &mut Vec<String>,
    ) -> StoreResult<u64> {
        let done = sqlx::query(
            "UPDATE tasks SET run_at = $4 WHERE batch_id = $1 AND batch_index >= $2 \
               AND batch_index < $3 AND status = 'queued' AND run_at = $5",
        )
        .bind(id.to_string())
        .bind(from)
        .bind(to)
        .bind(now())
        .bind(PARKED_AT)
        .execute(&mut **tx)
        .await?;
        Ok(done.rows_affected())
    }

    async fn count_items(
        tx: &mut Transaction<'static, Sqlite>,
        b: &Batch,
        items: Vec<String>,
        released: Option<i32>,
    ) -> StoreResult<(i32, i32, i32)> {
        let counted = sqlx::query(
            "UPDATE tasks SET batch_counted = 1 \
             WHERE id IN (SELECT value FROM json_each($1)) AND batch_id = $2 \
               AND batch_index IS NOT NULL AND NOT batch_counted \
             RETURNING status, batch_index",
        )
        .bind(serde_json::Value::from(items).to_string())
        .bind(b.id.to_string())
        .fetch_all(&mut **tx)
        .await?;
        let freed = counted
            .iter()
            .filter(|r| {
                r.try_get::<i32, _>("batch_index")
                    .is_ok_and(|i| i < released.unwrap_or(i32::MAX))
            })
            .count() as i32;
        let failed = counted
            .iter()
            .filter(|r| r.try_get::<String, _>("status").ok().as_deref() != Some("complete"))
            .count() as i32;
        let done = (b.done + counted.len() as i32).min(b.total);
        let failed = (b.failed + failed).min(b.total);
        sqlx::query("UPDATE batches SET done = $2, failed = $3, updated_at = $4 WHERE id = $1")
            .bind(b.id.to_string())
            .bind(done)
            .bind(failed)
            .bind(now())
            .execute(&mut **tx)
            .await?;
        Ok((done, failed, freed))
    }
}
