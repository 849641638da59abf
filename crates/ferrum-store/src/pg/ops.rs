//! Readiness, queue depth and task timings on Postgres (see `crate::ops`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use ferrum_model::Id;

use super::PgStore;
use crate::ops::{
    missing_migrations, queue_depth, task_timing, OpsStore, QueueDepth, SchemaState, TaskTiming,
};
use crate::StoreResult;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");

#[async_trait]
impl OpsStore for PgStore {
    async fn schema_state(&self) -> StoreResult<SchemaState> {
        let applied: Vec<i64> =
            sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
                .fetch_all(&self.pool)
                .await?;
        Ok(SchemaState {
            missing: missing_migrations(&MIGRATOR, &applied),
        })
    }

    async fn queue_depths(&self, now: DateTime<Utc>, limit: i64) -> StoreResult<Vec<QueueDepth>> {
        // Unleased queue rows only: the queue table holds unfinished tasks alone, so this
        // reads the backlog, never the history.
        let rows = sqlx::query(
            "SELECT cluster, priority, count(*) AS depth, min(run_at) AS oldest_run_at \
             FROM task_queue WHERE NOT leased AND run_at <= $1 \
             GROUP BY cluster, priority ORDER BY depth DESC, cluster, priority LIMIT $2",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(queue_depth).collect()
    }

    async fn task_timings(&self, ids: &[Id]) -> StoreResult<Vec<TaskTiming>> {
        let ids: Vec<String> = ids.iter().map(Id::to_string).collect();
        let rows = sqlx::query(
            "SELECT id, cluster, status, run_at, start_time, end_time \
             FROM tasks WHERE id = ANY($1)",
        )
        .bind(ids)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(task_timing).collect()
    }
}
