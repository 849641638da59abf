//! Retention on SQLite (see `crate::retention`; the flows are `crate::common::retention`). A
//! page is deleted in one write transaction on the one writer: short, like every other write.

use async_trait::async_trait;
use ferrum_model::Id;
use sqlx::{Row, Sqlite, Transaction};

use super::SqliteStore;
use crate::common::retention::RetentionSql;
use crate::retention::{Deleted, FINAL};
use crate::StoreResult;

#[async_trait]
impl RetentionSql for SqliteStore {
    async fn delete_finished(
        tx: &mut Transaction<'static, Sqlite>,
        project: Id,
        ids: Vec<String>,
    ) -> StoreResult<(Deleted, Vec<String>)> {
        let ids = serde_json::Value::from(ids).to_string();
        let sql = format!(
            "DELETE FROM tasks WHERE id IN (SELECT value FROM json_each(?1)) \
               AND project_id = ?2 AND status IN {FINAL} RETURNING id, batch_id"
        );
        let gone = sqlx::query(&sql)
            .bind(&ids)
            .bind(project.to_string())
            .fetch_all(&mut **tx)
            .await?;
        let gone_ids: Vec<String> = gone.iter().map(|r| r.get("id")).collect();
        let gone_json = serde_json::Value::from(gone_ids.clone()).to_string();
        for table in ["task_log_chunks", "task_events", "task_tokens"] {
            let sql =
                format!("DELETE FROM {table} WHERE task_id IN (SELECT value FROM json_each(?1))");
            sqlx::query(&sql)
                .bind(&gone_json)
                .execute(&mut **tx)
                .await?;
        }
        let result_blobs: Vec<String> = sqlx::query_scalar(
            "DELETE FROM task_results WHERE task_id IN (SELECT value FROM json_each(?1)) \
             AND blob_key IS NOT NULL RETURNING blob_key",
        )
        .bind(&gone_json)
        .fetch_all(&mut **tx)
        .await?;
        sqlx::query("DELETE FROM task_results WHERE task_id IN (SELECT value FROM json_each(?1))")
            .bind(&gone_json)
            .execute(&mut **tx)
            .await?;
        let mut batches: Vec<String> = gone
            .iter()
            .filter_map(|r| r.get::<Option<String>, _>("batch_id"))
            .collect();
        batches.sort();
        batches.dedup();
        let deleted = Deleted {
            tasks: gone_ids.len() as u64,
            result_blobs,
            batches: 0,
        };
        Ok((deleted, batches))
    }
}
