//! Task results and task tokens on Postgres (see `crate::results`; the flows are
//! `crate::common::results`).

use async_trait::async_trait;
use ferrum_model::Id;
use sqlx::Row;

use super::PgStore;
use crate::common::results::ResultSql;
use crate::{hash_token, Fenced, NewTaskToken, StoreResult, StoredResult};

#[async_trait]
impl ResultSql for PgStore {
    async fn put_fenced(
        &self,
        task: Id,
        runner: Id,
        attempt: i32,
        result: StoredResult,
    ) -> StoreResult<Fenced<()>> {
        // Only the task row is locked (by the update), so this cannot deadlock with the
        // statements that lock a queue row and then its task.
        let current: bool = sqlx::query(
            "WITH cur AS ( \
               SELECT task_id FROM task_queue WHERE task_id = $1 AND attempt = $2 \
                 AND lease_expires_at IS NOT NULL AND runner_id = $7), \
             res AS ( \
               INSERT INTO task_results (task_id, content_type, data, blob_key, size) \
               SELECT task_id, $3, $4, $5, $6 FROM cur \
               ON CONFLICT (task_id) DO UPDATE SET content_type = excluded.content_type, \
                 data = excluded.data, blob_key = excluded.blob_key, size = excluded.size, \
                 created_at = now() \
               RETURNING task_id), \
             sized AS ( \
               UPDATE tasks SET result_size = $6 WHERE id IN (SELECT task_id FROM res)) \
             SELECT EXISTS (SELECT 1 FROM cur) AS current",
        )
        .bind(task.to_string())
        .bind(attempt)
        .bind(&result.content_type)
        .bind(&result.data)
        .bind(&result.blob_key)
        .bind(result.size)
        .bind(runner.to_string())
        .fetch_one(&self.pool)
        .await?
        .try_get("current")?;
        if current {
            Ok(Fenced::Current(()))
        } else {
            self.fence_miss(task, runner).await
        }
    }

    async fn issue(&self, tokens: &[NewTaskToken]) -> StoreResult<()> {
        let hashes: Vec<String> = tokens.iter().map(|t| hash_token(&t.token)).collect();
        let tasks: Vec<String> = tokens.iter().map(|t| t.task_id.to_string()).collect();
        let projects: Vec<String> = tokens.iter().map(|t| t.project_id.to_string()).collect();
        let attempts: Vec<i32> = tokens.iter().map(|t| t.attempt).collect();
        sqlx::query(
            "INSERT INTO task_tokens (token_hash, task_id, project_id, attempt) \
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int[])",
        )
        .bind(&hashes)
        .bind(&tasks)
        .bind(&projects)
        .bind(&attempts)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
