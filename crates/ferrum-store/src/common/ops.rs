//! Readiness, queue depth and task timings, written once for both backends (see
//! `crate::ops`). A backend supplies only its migrations ([`OpsSql::migrator`]).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use ferrum_model::Id;
use sqlx::migrate::Migrator;

use super::queue::Queue;
use super::sql::args;
use crate::ops::{
    missing_migrations, queue_depth, task_timing, OpsStore, QueueDepth, SchemaState, TaskTiming,
};
use crate::rows::Cols;
use crate::StoreResult;

/// What a backend does its own way for operators.
pub(crate) trait OpsSql: Queue {
    /// The migrations its schema is made of.
    fn migrator() -> &'static Migrator;
}

#[async_trait]
impl<S: OpsSql> OpsStore for S {
    async fn schema_state(&self) -> StoreResult<SchemaState> {
        let rows = self
            .read(
                "SELECT version FROM _sqlx_migrations WHERE success",
                args![],
            )
            .await?;
        let applied = rows
            .iter()
            .map(|r| r.big("version"))
            .collect::<StoreResult<Vec<i64>>>()?;
        Ok(SchemaState {
            missing: missing_migrations(S::migrator(), &applied),
        })
    }

    /// Waiting tasks only, so this reads the backlog, never the history (Postgres: the
    /// queue table holds unfinished tasks alone; SQLite: `tasks_runnable` holds exactly the
    /// queued tasks, in this grouping's order).
    async fn queue_depths(&self, now: DateTime<Utc>, limit: i64) -> StoreResult<Vec<QueueDepth>> {
        let sql = format!(
            "SELECT cluster, priority, count(*) AS depth, min(run_at) AS oldest_run_at \
             FROM {} AND run_at <= $1 \
             GROUP BY cluster, priority ORDER BY depth DESC, cluster, priority LIMIT $2",
            S::WAITING
        );
        let rows = self.read(&sql, args![now, limit]).await?;
        rows.iter().map(queue_depth).collect()
    }

    async fn task_timings(&self, ids: &[Id]) -> StoreResult<Vec<TaskTiming>> {
        let ids: Vec<String> = ids.iter().map(Id::to_string).collect();
        let sql = format!(
            "SELECT id, cluster, status, run_at, start_time, end_time FROM tasks WHERE {}",
            S::any("id", 1)
        );
        let rows = self.read(&sql, args![ids]).await?;
        rows.iter().map(task_timing).collect()
    }
}
