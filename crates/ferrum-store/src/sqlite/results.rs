//! Task results and task tokens on SQLite (see `crate::results`; the flows are
//! `crate::common::results`).

use async_trait::async_trait;
use ferrum_model::Id;

use super::rows::now;
use super::SqliteStore;
use crate::common::results::ResultSql;
use crate::{hash_token, Fenced, NewTaskToken, StoreResult, StoredResult};

#[async_trait]
impl ResultSql for SqliteStore {
    async fn put_fenced(
        &self,
        task: Id,
        runner: Id,
        attempt: i32,
        result: StoredResult,
    ) -> StoreResult<Fenced<()>> {
        let mut tx = self.write().await?;
        let current = sqlx::query(
            "SELECT 1 FROM tasks WHERE id = ?1 AND attempt = ?2 \
             AND status IN ('preparing', 'running') AND runner_id = ?3",
        )
        .bind(task.to_string())
        .bind(attempt)
        .bind(runner.to_string())
        .fetch_optional(&mut *tx)
        .await?;
        if current.is_none() {
            drop(tx);
            return self.fence_miss(task, runner).await;
        }
        sqlx::query(
            "INSERT INTO task_results (task_id, content_type, data, blob_key, size, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
             ON CONFLICT (task_id) DO UPDATE SET content_type = excluded.content_type, \
               data = excluded.data, blob_key = excluded.blob_key, size = excluded.size, \
               created_at = excluded.created_at",
        )
        .bind(task.to_string())
        .bind(&result.content_type)
        .bind(&result.data)
        .bind(&result.blob_key)
        .bind(result.size)
        .bind(now())
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE tasks SET result_size = ?2 WHERE id = ?1")
            .bind(task.to_string())
            .bind(result.size)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Fenced::Current(()))
    }

    async fn issue(&self, tokens: &[NewTaskToken]) -> StoreResult<()> {
        let mut tx = self.write().await?;
        let at = now();
        for t in tokens {
            sqlx::query(
                "INSERT INTO task_tokens (token_hash, task_id, project_id, attempt, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .bind(hash_token(&t.token))
            .bind(t.task_id.to_string())
            .bind(t.project_id.to_string())
            .bind(t.attempt)
            .bind(at)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
