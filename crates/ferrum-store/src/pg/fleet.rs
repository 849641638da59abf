//! The runner fleet on Postgres (see `crate::fleet`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use ferrum_model::{Id, Page};
use sqlx::Row;

use super::PgStore;
use crate::fleet::{
    cluster_info, cluster_sums, runner_info, ClusterInfo, FleetStore, RunnerInfo, RunnerState,
    RUNNER_COLUMNS,
};
use crate::StoreResult;

#[async_trait]
impl FleetStore for PgStore {
    async fn runner_heartbeat(&self, runner: Id, running: i32) -> StoreResult<Option<RunnerState>> {
        // The lease check runs only for a draining runner reporting nothing running (CASE
        // evaluates its subquery lazily); `task_queue_leased` holds exactly the leased rows.
        let row = sqlx::query(
            "UPDATE runners SET last_seen_at = now(), running = $2, \
               drained_at = CASE WHEN drained_at IS NULL AND drain_requested_at IS NOT NULL \
                 AND $2 = 0 AND NOT EXISTS (SELECT 1 FROM task_queue \
                   WHERE runner_id = $1 AND leased) \
                 THEN now() ELSE drained_at END \
             WHERE id = $1 \
             RETURNING drain_requested_at IS NOT NULL AS draining, drained_at IS NOT NULL AS drained",
        )
        .bind(runner.to_string())
        .bind(running)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| RunnerState {
            draining: r.get("draining"),
            drained: r.get("drained"),
        }))
    }

    async fn runner_draining(&self, runner: Id) -> StoreResult<bool> {
        let draining: Option<bool> =
            sqlx::query_scalar("SELECT drain_requested_at IS NOT NULL FROM runners WHERE id = $1")
                .bind(runner.to_string())
                .fetch_optional(&self.pool)
                .await?;
        Ok(draining.unwrap_or(false))
    }

    async fn drain_runner(&self, runner: Id) -> StoreResult<Option<RunnerInfo>> {
        let sql = format!(
            "UPDATE runners SET drain_requested_at = coalesce(drain_requested_at, now()) \
             WHERE id = $1 RETURNING {RUNNER_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(runner.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(runner_info).transpose()
    }

    async fn runners(&self, cluster: Option<&str>, page: Page) -> StoreResult<Vec<RunnerInfo>> {
        let sql = format!(
            "SELECT {RUNNER_COLUMNS} FROM runners WHERE $1::text IS NULL OR cluster = $1 \
             ORDER BY id DESC LIMIT $2 OFFSET $3"
        );
        let rows = sqlx::query(&sql)
            .bind(cluster)
            .bind(page.limit())
            .bind(page.offset())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(runner_info).collect()
    }

    async fn clusters(
        &self,
        name: Option<&str>,
        seen_since: DateTime<Utc>,
    ) -> StoreResult<Vec<ClusterInfo>> {
        let rows = sqlx::query(cluster_sums!("$1", "$2::text"))
            .bind(seen_since)
            .bind(name)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(cluster_info).collect()
    }
}
