//! The runner fleet, written once for both backends (see `crate::fleet`). A backend supplies
//! only [`FleetSql::runner_busy`]: where a runner's leased tasks are.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use ferrum_model::{Id, Page};

use super::sql::{args, first, Arg, Sql};
use crate::fleet::{
    cluster_info, cluster_sums, runner_info, ClusterInfo, FleetStore, RunnerInfo, RunnerState,
    RUNNER_COLUMNS,
};
use crate::rows::Cols;
use crate::StoreResult;

/// What a backend does its own way for the fleet.
pub(crate) trait FleetSql: Sql {
    /// A `SELECT 1` of the tasks the runner `runner` (a placeholder, or a column to
    /// correlate with) holds a lease on.
    fn runner_busy(runner: &str) -> String;
}

#[async_trait]
impl<S: FleetSql> FleetStore for S {
    async fn runner_heartbeat(&self, runner: Id, running: i32) -> StoreResult<Option<RunnerState>> {
        // The lease check runs only for a draining runner reporting nothing running (CASE
        // evaluates its subquery lazily). One statement: Postgres's `task_queue_leased` index
        // holds exactly the leased rows; SQLite's one writer takes no lease between the
        // check and the mark.
        let sql = format!(
            "UPDATE runners SET last_seen_at = {now}, running = $2, \
               drained_at = CASE WHEN drained_at IS NULL AND drain_requested_at IS NOT NULL \
                 AND $2 = 0 AND NOT EXISTS ({busy}) \
                 THEN {now} ELSE drained_at END \
             WHERE id = $1 \
             RETURNING drain_requested_at IS NOT NULL AS draining, drained_at IS NOT NULL AS drained",
            now = S::now(3),
            busy = S::runner_busy("$1")
        );
        let rows = self.write(&sql, args![runner, running, Arg::Now]).await?;
        first(rows)
            .map(|r| {
                Ok(RunnerState {
                    draining: r.flag("draining")?,
                    drained: r.flag("drained")?,
                })
            })
            .transpose()
    }

    async fn runner_draining(&self, runner: Id) -> StoreResult<bool> {
        let rows = self
            .read(
                "SELECT drain_requested_at IS NOT NULL AS draining FROM runners WHERE id = $1",
                args![runner],
            )
            .await?;
        Ok(first(rows).map(|r| r.flag("draining")).transpose()? == Some(true))
    }

    async fn drain_runner(&self, runner: Id) -> StoreResult<Option<RunnerInfo>> {
        let sql = format!(
            "UPDATE runners SET drain_requested_at = coalesce(drain_requested_at, {}) \
             WHERE id = $1 RETURNING {RUNNER_COLUMNS}",
            S::now(2)
        );
        let rows = self.write(&sql, args![runner, Arg::Now]).await?;
        first(rows).as_ref().map(runner_info).transpose()
    }

    async fn runners(&self, cluster: Option<&str>, page: Page) -> StoreResult<Vec<RunnerInfo>> {
        let sql = format!(
            "SELECT {RUNNER_COLUMNS} FROM runners WHERE $1 IS NULL OR cluster = $1 \
             ORDER BY id DESC LIMIT $2 OFFSET $3"
        );
        let rows = self
            .read(&sql, args![cluster, page.limit(), page.offset()])
            .await?;
        rows.iter().map(runner_info).collect()
    }

    async fn forget_runners(&self, seen_before: DateTime<Utc>) -> StoreResult<u64> {
        let busy = S::runner_busy("runners.id");
        let sql = format!("DELETE FROM runners WHERE last_seen_at < $1 AND NOT EXISTS ({busy})");
        self.write_count(&sql, args![seen_before]).await
    }

    async fn clusters(
        &self,
        name: Option<&str>,
        seen_since: DateTime<Utc>,
    ) -> StoreResult<Vec<ClusterInfo>> {
        let rows = self
            .read(cluster_sums!("$1", "$2"), args![seen_since, name])
            .await?;
        rows.iter().map(cluster_info).collect()
    }
}
