//! Task results and task tokens on SQLite (see `crate::results`).

use async_trait::async_trait;
use ferrum_model::Id;
use sqlx::Row;

use super::rows::{now, secs};
use super::SqliteStore;
use crate::results::{grant, stored_result, TASK_DEPTH};
use crate::{
    hash_token, Fenced, NewTaskToken, ResultStore, StoreResult, StoredResult, TaskGrant,
    TaskTokenStore,
};

fn ids_json(tasks: &[Id]) -> String {
    let ids: Vec<String> = tasks.iter().map(Id::to_string).collect();
    serde_json::to_string(&ids).unwrap_or_else(|_| "[]".into())
}

#[async_trait]
impl ResultStore for SqliteStore {
    async fn put_result(
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

    async fn result(&self, project: Id, task: Id) -> StoreResult<Option<StoredResult>> {
        let row = sqlx::query(
            "SELECT r.* FROM task_results r JOIN tasks t ON t.id = r.task_id \
             WHERE t.project_id = ?1 AND r.task_id = ?2",
        )
        .bind(project.to_string())
        .bind(task.to_string())
        .fetch_optional(&self.reader)
        .await?;
        row.as_ref().map(stored_result).transpose()
    }
}

#[async_trait]
impl TaskTokenStore for SqliteStore {
    async fn issue_task_tokens(&self, tokens: &[NewTaskToken]) -> StoreResult<()> {
        if tokens.is_empty() {
            return Ok(());
        }
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

    async fn authenticate_task_token(&self, token: &str) -> StoreResult<Option<TaskGrant>> {
        let row = sqlx::query(
            "SELECT k.task_id, k.project_id, k.attempt, k.spawned \
             FROM task_tokens k JOIN tasks t ON t.id = k.task_id \
             WHERE k.token_hash = ?1 AND t.attempt = k.attempt \
               AND t.status IN ('preparing', 'running') \
               AND ?2 < coalesce(t.start_time, k.created_at) + t.timeout * ?3",
        )
        .bind(hash_token(token))
        .bind(now())
        .bind(secs(1))
        .fetch_optional(&self.reader)
        .await?;
        row.as_ref().map(grant).transpose()
    }

    async fn reserve_spawns(&self, token: &str, n: i32, max: i32) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE task_tokens SET spawned = spawned + ?2 \
             WHERE token_hash = ?1 AND spawned + ?2 <= ?3",
        )
        .bind(hash_token(token))
        .bind(n)
        .bind(max)
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn task_depth(&self, task: Id) -> StoreResult<i32> {
        Ok(sqlx::query(TASK_DEPTH)
            .bind(task.to_string())
            .fetch_one(&self.reader)
            .await?
            .try_get("depth")?)
    }

    async fn revoke_task_tokens(&self, tasks: &[Id]) -> StoreResult<u64> {
        let done = sqlx::query(
            "DELETE FROM task_tokens WHERE task_id IN (SELECT value FROM json_each(?1))",
        )
        .bind(ids_json(tasks))
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected())
    }
}
