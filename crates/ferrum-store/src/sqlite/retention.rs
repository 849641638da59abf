//! Retention on SQLite (see `crate::retention`). A page is deleted in one write transaction
//! on the one writer: short, like every other write.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use ferrum_model::Id;
use sqlx::Row;

use super::rows::micros;
use super::SqliteStore;
use crate::retention::{id_bound, Deleted, RetentionStore, FINAL};
use crate::StoreResult;

#[async_trait]
impl RetentionStore for SqliteStore {
    async fn retention_projects(&self, default_days: Option<i32>) -> StoreResult<Vec<(Id, i32)>> {
        let rows = sqlx::query(
            "SELECT id, coalesce(retention_days, ?1) AS days FROM projects \
             WHERE coalesce(retention_days, ?1) IS NOT NULL ORDER BY id",
        )
        .bind(default_days)
        .fetch_all(&self.reader)
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
             WHERE t.project_id = ?1 AND t.id < ?2 AND t.id > ?3 \
               AND t.status IN {FINAL} AND t.end_time < ?4 \
               AND NOT EXISTS (SELECT 1 FROM batches b WHERE b.id = t.batch_id \
                 AND b.status IN ('running', 'reducing')) \
             ORDER BY t.id LIMIT ?5"
        );
        let rows = sqlx::query(&sql)
            .bind(project.to_string())
            .bind(id_bound(cutoff))
            .bind(after.map(|a| a.to_string()).unwrap_or_default())
            .bind(micros(cutoff))
            .bind(limit)
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(|r| crate::rows::id(r, "id")).collect()
    }

    async fn delete_tasks(&self, project: Id, ids: &[Id]) -> StoreResult<Deleted> {
        let ids: Vec<String> = ids.iter().map(Id::to_string).collect();
        let ids = serde_json::to_string(&ids).unwrap_or_else(|_| "[]".into());
        let mut tx = self.write().await?;
        let sql = format!(
            "DELETE FROM tasks WHERE id IN (SELECT value FROM json_each(?1)) \
               AND project_id = ?2 AND status IN {FINAL} RETURNING id, batch_id"
        );
        let gone = sqlx::query(&sql)
            .bind(&ids)
            .bind(project.to_string())
            .fetch_all(&mut *tx)
            .await?;
        let gone_ids: Vec<String> = gone.iter().map(|r| r.get("id")).collect();
        let gone_json = serde_json::to_string(&gone_ids).unwrap_or_else(|_| "[]".into());
        for table in ["task_log_chunks", "task_events", "task_tokens"] {
            let sql =
                format!("DELETE FROM {table} WHERE task_id IN (SELECT value FROM json_each(?1))");
            sqlx::query(&sql).bind(&gone_json).execute(&mut *tx).await?;
        }
        let result_blobs: Vec<String> = sqlx::query_scalar(
            "DELETE FROM task_results WHERE task_id IN (SELECT value FROM json_each(?1)) \
             AND blob_key IS NOT NULL RETURNING blob_key",
        )
        .bind(&gone_json)
        .fetch_all(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM task_results WHERE task_id IN (SELECT value FROM json_each(?1))")
            .bind(&gone_json)
            .execute(&mut *tx)
            .await?;
        let mut batches: Vec<String> = gone
            .iter()
            .filter_map(|r| r.get::<Option<String>, _>("batch_id"))
            .collect();
        batches.sort();
        batches.dedup();
        let batches_gone = sqlx::query(
            "DELETE FROM batches WHERE id IN (SELECT value FROM json_each(?1)) \
               AND project_id = ?2 AND status NOT IN ('running', 'reducing') \
               AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.batch_id = batches.id)",
        )
        .bind(serde_json::to_string(&batches).unwrap_or_else(|_| "[]".into()))
        .bind(project.to_string())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(Deleted {
            tasks: gone_ids.len() as u64,
            result_blobs,
            batches: batches_gone,
        })
    }
}
