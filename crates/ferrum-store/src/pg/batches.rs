//! Batches on Postgres (see `crate::batches`; the flows are `crate::common::batches`): parked
//! items wait `held` in `task_queue`, and the fan-in counts with one statement.

use async_trait::async_trait;
use ferrum_model::{Batch, Id};
use sqlx::{Postgres, Row, Transaction};

use super::PgStore;
use crate::common::batches::BatchSql;
use crate::StoreResult;

#[async_trait]
impl BatchSql for PgStore {
    const COUNTS: &'static str = "SELECT status, count(*) AS n FROM ( \
           SELECT DISTINCT ON (batch_index) status FROM task_records \
           WHERE batch_id = $1 AND project_id = $2 AND batch_index IS NOT NULL \
           ORDER BY batch_index, id DESC) s GROUP BY status";
    const ITEMS: &'static str = "SELECT DISTINCT ON (t.batch_index) t.batch_index, t.id, \
           t.status, t.msg, r.data AS result_data, r.blob_key AS result_blob_key \
         FROM task_records t LEFT JOIN task_results r ON r.task_id = t.id \
         WHERE t.batch_id = $1 AND t.project_id = $2 AND t.batch_index > $3 \
         ORDER BY t.batch_index, t.id DESC LIMIT $4";
    const TX_PER_BATCH: bool = true;

    async fn park(tx: &mut Transaction<'static, Postgres>, id: Id, from: i32) -> StoreResult<()> {
        sqlx::query(&format!(
            "UPDATE task_queue q SET held = true, run_at = {PARKED_AT} FROM tasks t \
             WHERE t.batch_id = $1 AND t.batch_index >= $2 AND q.task_id = t.id"
        ))
        .bind(id.to_string())
        .bind(from)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Released items are admitted unless their code is limited (those are admitted after
    /// the commit, like new tasks), and runners are woken.
    async fn release(
        tx: &mut Transaction<'static, Postgres>,
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
        .fetch_all(&mut **tx)
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

    async fn count_items(
        tx: &mut Transaction<'static, Postgres>,
        b: &Batch,
        items: Vec<String>,
        released: Option<i32>,
    ) -> StoreResult<(i32, i32, i32)> {
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
        .bind(b.id.to_string())
        .bind(released.unwrap_or(i32::MAX))
        .fetch_one(&mut **tx)
        .await?;
        Ok((
            counted.try_get("done")?,
            counted.try_get("failed")?,
            counted.try_get("freed")?,
        ))
    }
}

/// The parked instant: a parked item's queue row waits `held` with this `run_at`
/// (`migrations/0016_batch_window.sql`).
pub(super) const PARKED_AT: &str = "'9999-12-31 00:00:00+00'::timestamptz";
