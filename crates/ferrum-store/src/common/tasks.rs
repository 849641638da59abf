//! Tasks as tenants see them, written once for both backends: queueing (through
//! [`Queue`]), listing, cancelling, progress, retry and logs.

use async_trait::async_trait;
use ferrum_model::{Id, NewTask, Task, TaskFilter, TaskStatus};

use super::queue::{Queue, Unfinished};
use super::sql::{args, first, one, Arg, SqlTx};
use crate::derived::retry_of;
use crate::rows::{self, Cols};
use crate::task_list::list_query;
use crate::{StoreResult, TaskStore};

#[async_trait]
impl<S: Queue> TaskStore for S {
    async fn enqueue(&self, project: Id, tasks: Vec<NewTask>) -> StoreResult<Vec<Id>> {
        let mut tx = self.begin().await?;
        super::quotas::enforce::<S>(&mut tx, project, tasks.len()).await?;
        let mut limited = Vec::new();
        let ids = S::insert_tasks(&mut tx, project, tasks, None, &mut limited).await?;
        tx.commit().await?;
        self.after_commit(limited).await;
        Ok(ids)
    }

    async fn task(&self, project: Id, id: Id) -> StoreResult<Option<Task>> {
        let sql = format!(
            "SELECT * FROM {} WHERE project_id = $1 AND id = $2",
            S::RECORDS
        );
        let rows = self.read(&sql, args![project, id]).await?;
        first(rows).as_ref().map(rows::task).transpose()
    }

    async fn tasks(&self, project: Id, f: &TaskFilter) -> StoreResult<Vec<Task>> {
        let q = list_query(S::DIALECT, project, f);
        let rows = self.read(&q.sql, q.binds).await?;
        rows.iter().map(rows::task).collect()
    }

    async fn cancel(&self, project: Id, id: Id) -> StoreResult<Option<TaskStatus>> {
        let mut tx = self.begin().await?;
        let exists = tx
            .fetch(
                "SELECT id FROM tasks WHERE project_id = $1 AND id = $2",
                args![project, id],
            )
            .await?;
        if exists.is_empty() {
            return Ok(None);
        }
        S::cancel_unfinished(&mut tx, project, Unfinished::Task(id)).await?;
        let sql = format!("SELECT status FROM {} WHERE id = $1", S::RECORDS);
        let row = one(tx.fetch(&sql, args![id]).await?)?;
        tx.commit().await?;
        rows::status(&row, "status").map(Some)
    }

    /// Locks the code row first (Postgres: `FOR NO KEY UPDATE`), as pausing, resuming and
    /// deleting the code do: each of them locks many of the code's queue rows in the order
    /// its plan reads them, and two such statements at once could each hold rows the other
    /// waits for (a deadlock). Taking turns on the code row rules that out. Enqueues, which
    /// hold the code row `FOR KEY SHARE`, go on meanwhile.
    async fn cancel_all(&self, project: Id, code: Id) -> StoreResult<u64> {
        let mut tx = self.begin().await?;
        let sql = format!(
            "SELECT id FROM codes WHERE project_id = $1 AND id = $2{}",
            S::FOR_NO_KEY_UPDATE
        );
        if tx.fetch(&sql, args![project, code]).await?.is_empty() {
            return Ok(0);
        }
        let cancelled = S::cancel_unfinished(&mut tx, project, Unfinished::Code(code)).await?;
        tx.commit().await?;
        Ok(cancelled)
    }

    async fn set_progress(
        &self,
        project: Id,
        id: Id,
        percent: Option<i32>,
        msg: Option<String>,
    ) -> StoreResult<bool> {
        let sql = format!(
            "UPDATE tasks SET percent = coalesce($3, percent), msg = coalesce($4, msg), \
             updated_at = {} WHERE project_id = $1 AND id = $2",
            S::now(5)
        );
        let done = self
            .write_count(&sql, args![project, id, percent, msg, Arg::Now])
            .await?;
        Ok(done == 1)
    }

    async fn retry(&self, project: Id, id: Id, delay: i32) -> StoreResult<Option<Id>> {
        let Some(task) = self.task(project, id).await? else {
            return Ok(None);
        };
        Ok(self
            .enqueue(project, vec![retry_of(task, delay)])
            .await?
            .pop())
    }

    async fn read_log(
        &self,
        project: Id,
        id: Id,
        stdout_only: bool,
    ) -> StoreResult<Option<Vec<u8>>> {
        let sql = format!(
            "SELECT attempt FROM {} WHERE project_id = $1 AND id = $2",
            S::RECORDS
        );
        let rows = self.read(&sql, args![project, id]).await?;
        let attempt = first(rows).map(|r| r.int("attempt")).transpose()?;
        let Some(attempt) = attempt.filter(|a| *a > 0) else {
            return Ok(None);
        };
        let chunks = self
            .read(
                "SELECT data FROM task_log_chunks WHERE task_id = $1 AND attempt = $2 \
                 AND (NOT $3 OR stream = 'stdout') ORDER BY seq",
                args![id, attempt, stdout_only],
            )
            .await?;
        let chunks = chunks
            .iter()
            .map(|r| r.bytes("data"))
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(Some(chunks.concat()))
    }
}
