//! Task results and task tokens, written once for both backends (see `crate::results`). A
//! backend supplies [`ResultSql`]: how a result is stored under its lease's fence, and how
//! many tokens are stored at once.

use async_trait::async_trait;
use ferrum_model::Id;

use super::sql::{args, first, one, Arg, Sql};
use crate::results::{grant, stored_result, TASK_DEPTH};
use crate::rows::Cols;
use crate::{
    hash_token, Fenced, NewTaskToken, ResultStore, StoreResult, StoredResult, TaskGrant,
    TaskTokenStore,
};

/// What a backend does its own way for results and task tokens.
#[async_trait]
pub(crate) trait ResultSql: Sql {
    /// [`ResultStore::put_result`].
    async fn put_fenced(
        &self,
        task: Id,
        runner: Id,
        attempt: i32,
        result: StoredResult,
    ) -> StoreResult<Fenced<()>>;
    /// [`TaskTokenStore::issue_task_tokens`], given at least one token.
    async fn issue(&self, tokens: &[NewTaskToken]) -> StoreResult<()>;
}

#[async_trait]
impl<S: ResultSql> ResultStore for S {
    async fn put_result(
        &self,
        task: Id,
        runner: Id,
        attempt: i32,
        result: StoredResult,
    ) -> StoreResult<Fenced<()>> {
        self.put_fenced(task, runner, attempt, result).await
    }

    async fn result(&self, project: Id, task: Id) -> StoreResult<Option<StoredResult>> {
        let rows = self
            .read(
                "SELECT r.* FROM task_results r JOIN tasks t ON t.id = r.task_id \
                 WHERE t.project_id = $1 AND r.task_id = $2",
                args![project, task],
            )
            .await?;
        first(rows).as_ref().map(stored_result).transpose()
    }
}

#[async_trait]
impl<S: ResultSql> TaskTokenStore for S {
    async fn issue_task_tokens(&self, tokens: &[NewTaskToken]) -> StoreResult<()> {
        if tokens.is_empty() {
            return Ok(());
        }
        self.issue(tokens).await
    }

    async fn authenticate_task_token(&self, token: &str) -> StoreResult<Option<TaskGrant>> {
        let sql = format!(
            "SELECT k.task_id, k.project_id, k.attempt, k.spawned \
             FROM task_tokens k JOIN {} t ON t.id = k.task_id \
             WHERE k.token_hash = $1 AND t.attempt = k.attempt \
               AND t.status IN ('preparing', 'running') \
               AND {} < {}",
            S::RECORDS,
            S::now(2),
            S::plus_secs("coalesce(t.start_time, k.created_at)", "t.timeout")
        );
        let rows = self.read(&sql, args![hash_token(token), Arg::Now]).await?;
        first(rows).as_ref().map(grant).transpose()
    }

    async fn reserve_spawns(&self, token: &str, n: i32, max: i32) -> StoreResult<bool> {
        let done = self
            .write_count(
                "UPDATE task_tokens SET spawned = spawned + $2 \
                 WHERE token_hash = $1 AND spawned + $2 <= $3",
                args![hash_token(token), n, max],
            )
            .await?;
        Ok(done == 1)
    }

    async fn task_depth(&self, task: Id) -> StoreResult<i32> {
        one(self.read(TASK_DEPTH, args![task]).await?)?.int("depth")
    }

    async fn revoke_task_tokens(&self, tasks: &[Id]) -> StoreResult<u64> {
        let ids: Vec<String> = tasks.iter().map(Id::to_string).collect();
        let sql = format!("DELETE FROM task_tokens WHERE {}", S::any("task_id", 1));
        self.write_count(&sql, args![ids]).await
    }
}
