//! Readiness, queue depth and task timings on SQLite (see `crate::ops`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use ferrum_model::Id;

use super::rows::micros;
use super::SqliteStore;
use crate::ops::{
    missing_migrations, queue_depth, task_timing, OpsStore, QueueDepth, SchemaState, TaskTiming,
};
use crate::{StoreError, StoreResult};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/sqlite");

#[async_trait]
impl OpsStore for SqliteStore {
    async fn schema_state(&self) -> StoreResult<SchemaState> {
        let applied: Vec<i64> =
            sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
                .fetch_all(&self.reader)
                .await?;
        Ok(SchemaState {
            missing: missing_migrations(&MIGRATOR, &applied),
        })
    }

    async fn queue_depths(&self, now: DateTime<Utc>, limit: i64) -> StoreResult<Vec<QueueDepth>> {
        // `tasks_runnable` holds exactly the queued tasks, in this grouping's order.
        let rows = sqlx::query(
            "SELECT cluster, priority, count(*) AS depth, min(run_at) AS oldest_run_at \
             FROM tasks WHERE status = 'queued' AND run_at <= ?1 \
             GROUP BY cluster, priority ORDER BY depth DESC, cluster, priority LIMIT ?2",
        )
        .bind(micros(now))
        .bind(limit)
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(queue_depth).collect()
    }

    async fn task_timings(&self, ids: &[Id]) -> StoreResult<Vec<TaskTiming>> {
        let ids = serde_json::to_string(&ids.iter().map(Id::to_string).collect::<Vec<_>>())
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let rows = sqlx::query(
            "SELECT id, cluster, status, run_at, start_time, end_time \
             FROM tasks WHERE id IN (SELECT value FROM json_each(?1))",
        )
        .bind(ids)
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(task_timing).collect()
    }
}
