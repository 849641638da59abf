//! Retention on Postgres (see `crate::retention`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use ferrum_model::Id;
use sqlx::Row;

use super::PgStore;
use crate::retention::{id_bound, Deleted, RetentionStore, FINAL};
use crate::StoreResult;

#[async_trait]
impl RetentionStore for PgStore {
    async fn retention_projects(&self, default_days: Option<i32>) -> StoreResult<Vec<(Id, i32)>> {
        let rows = sqlx::query(
            "SELECT id, coalesce(retention_days, $1) AS days FROM projects \
             WHERE coalesce(retention_days, $1) IS NOT NULL ORDER BY id",
        )
        .bind(default_days)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((crate::rows::id(r, "id")?, r.get("days"))))
            .collect()
    }

    async fn expired_tasks(
        &self,
        project: Id,
        cutoff: DateTime<Utc>,
        after: Option<Id>,
        limit: i64,
    ) -> StoreResult<Vec<Id>> {
        let sql = format!(
            "SELECT t.id FROM tasks t \
             WHERE t.project_id = $1 AND t.id < $2 AND t.id > $3 \
               AND t.status IN {FINAL} AND t.end_time < $4 \
               AND NOT EXISTS (SELECT 1 FROM batches b WHERE b.id = t.batch_id \
                 AND b.status IN ('running', 'reducing')) \
             ORDER BY t.id LIMIT $5"
        );
        let rows = sqlx::query(&sql)
            .bind(project.to_string())
            .bind(id_bound(cutoff))
            .bind(after.map(|a| a.to_string()).unwrap_or_default())
            .bind(cutoff)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| crate::rows::id(r, "id")).collect()
    }

    async fn delete_tasks(&self, project: Id, ids: &[Id]) -> StoreResult<Deleted> {
        let ids: Vec<String> = ids.iter().map(Id::to_string).collect();
        let mut tx = self.pool.begin().await?;
        // One statement: the tasks first (only finished ones of this project), then what
        // hangs off exactly those.
        let sql = format!(
            "WITH gone AS ( \
               DELETE FROM tasks WHERE id = ANY($1) AND project_id = $2 AND status IN {FINAL} \
               RETURNING id, batch_id), \
             chunks AS (DELETE FROM task_log_chunks WHERE task_id IN (SELECT id FROM gone)), \
             events AS (DELETE FROM task_events WHERE task_id IN (SELECT id FROM gone)), \
             tokens AS (DELETE FROM task_tokens WHERE task_id IN (SELECT id FROM gone)), \
             results AS (DELETE FROM task_results WHERE task_id IN (SELECT id FROM gone) \
               RETURNING blob_key) \
             SELECT (SELECT count(*) FROM gone) AS tasks, \
               (SELECT coalesce(array_agg(blob_key), '{{}}') FROM results \
                 WHERE blob_key IS NOT NULL) AS blobs, \
               (SELECT coalesce(array_agg(DISTINCT batch_id), '{{}}') FROM gone \
                 WHERE batch_id IS NOT NULL) AS batches"
        );
        let row = sqlx::query(&sql)
            .bind(&ids)
            .bind(project.to_string())
            .fetch_one(&mut *tx)
            .await?;
        let batches: Vec<String> = row.get("batches");
        // A separate statement: it must see the tasks deleted above.
        let batches_gone = sqlx::query(
            "DELETE FROM batches b WHERE b.id = ANY($1) AND b.project_id = $2 \
               AND b.status NOT IN ('running', 'reducing') \
               AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.batch_id = b.id)",
        )
        .bind(&batches)
        .bind(project.to_string())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(Deleted {
            tasks: row.get::<i64, _>("tasks") as u64,
            result_blobs: row.get("blobs"),
            batches: batches_gone,
        })
    }
}
