//! Task results and task tokens on Postgres (see `crate::results`).

use async_trait::async_trait;
use ferrum_model::Id;
use sqlx::Row;

use super::PgStore;
use crate::results::{grant, stored_result, TASK_DEPTH};
use crate::{
    hash_token, Fenced, NewTaskToken, ResultStore, StoreResult, StoredResult, TaskGrant,
    TaskTokenStore,
};

fn ids(tasks: &[Id]) -> Vec<String> {
    tasks.iter().map(Id::to_string).collect()
}

#[async_trait]
impl ResultStore for PgStore {
    async fn put_result(
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

    async fn result(&self, project: Id, task: Id) -> StoreResult<Option<StoredResult>> {
        let row = sqlx::query(
            "SELECT r.* FROM task_results r JOIN tasks t ON t.id = r.task_id \
             WHERE t.project_id = $1 AND r.task_id = $2",
        )
        .bind(project.to_string())
        .bind(task.to_string())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(stored_result).transpose()
    }
}

#[async_trait]
impl TaskTokenStore for PgStore {
    async fn issue_task_tokens(&self, tokens: &[NewTaskToken]) -> StoreResult<()> {
        if tokens.is_empty() {
            return Ok(());
        }
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

    async fn authenticate_task_token(&self, token: &str) -> StoreResult<Option<TaskGrant>> {
        let row = sqlx::query(
            "SELECT k.task_id, k.project_id, k.attempt, k.spawned \
             FROM task_tokens k JOIN task_records t ON t.id = k.task_id \
             WHERE k.token_hash = $1 AND t.attempt = k.attempt \
               AND t.status IN ('preparing', 'running') \
               AND now() < coalesce(t.start_time, k.created_at) \
                 + make_interval(secs => t.timeout)",
        )
        .bind(hash_token(token))
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(grant).transpose()
    }

    async fn reserve_spawns(&self, token: &str, n: i32, max: i32) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE task_tokens SET spawned = spawned + $2 \
             WHERE token_hash = $1 AND spawned + $2 <= $3",
        )
        .bind(hash_token(token))
        .bind(n)
        .bind(max)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn task_depth(&self, task: Id) -> StoreResult<i32> {
        Ok(sqlx::query(TASK_DEPTH)
            .bind(task.to_string())
            .fetch_one(&self.pool)
            .await?
            .try_get("depth")?)
    }

    async fn revoke_task_tokens(&self, tasks: &[Id]) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM task_tokens WHERE task_id = ANY($1)")
            .bind(ids(tasks))
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }
}
