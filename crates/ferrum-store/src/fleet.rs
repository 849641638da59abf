//! The runner fleet as operators see it: each runner's own heartbeat (when it was last heard
//! from, its version, capacity and running tasks), draining a runner, and clusters summed up
//! from their runners.
//!
//! Draining is two-sided. An admin asks (`drain_requested_at`); from then on the API answers
//! the runner's lease calls with no tasks and tells it to drain. The runner finishes what it
//! runs and keeps heartbeating; the first heartbeat that reports nothing running while the
//! store holds no lease of it records `drained_at`. Checking the store's leases as well as the
//! runner's report means a lease answered in the instant of the drain request (the runner
//! may not have seen it yet) still holds the runner in `draining` until that task ends.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use ferrum_model::{Id, Page};

use crate::rows::{id, Cols};
use crate::StoreResult;

/// What a runner's heartbeat learns: whether it is to lease nothing more, and whether the
/// store now counts it drained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunnerState {
    pub draining: bool,
    pub drained: bool,
}

/// Where a runner stands, derived from its row and the time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunnerStatus {
    /// Heard from recently; leases tasks.
    Active,
    /// Asked to drain: leases nothing, still runs (or holds a lease on) a task.
    Draining,
    /// Drained: ran its last task and leases nothing. Kept as the runner's final state even
    /// after it stops heartbeating, so the operator sees it is safe to stop.
    Drained,
    /// Not drained, and not heard from for longer than the API's offline threshold.
    Offline,
}

/// One registered runner.
#[derive(Debug, Clone, PartialEq)]
pub struct RunnerInfo {
    pub id: Id,
    pub cluster: String,
    pub hostname: String,
    pub version: String,
    /// Most tasks it runs at once.
    pub concurrency: i32,
    /// Tasks it reported running at its last heartbeat.
    pub running: i32,
    pub started_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub drain_requested_at: Option<DateTime<Utc>>,
    pub drained_at: Option<DateTime<Utc>>,
}

impl RunnerStatus {
    /// The name the API shows.
    pub fn as_str(self) -> &'static str {
        match self {
            RunnerStatus::Active => "active",
            RunnerStatus::Draining => "draining",
            RunnerStatus::Drained => "drained",
            RunnerStatus::Offline => "offline",
        }
    }
}

impl RunnerInfo {
    /// The runner's status, counting it offline when last heard from before `seen_since`.
    pub fn status(&self, seen_since: DateTime<Utc>) -> RunnerStatus {
        if self.drained_at.is_some() {
            RunnerStatus::Drained
        } else if self.last_seen_at < seen_since {
            RunnerStatus::Offline
        } else if self.drain_requested_at.is_some() {
            RunnerStatus::Draining
        } else {
            RunnerStatus::Active
        }
    }
}

/// A cluster with what its runners heard from since a given time add up to.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterInfo {
    pub name: String,
    pub created_at: DateTime<Utc>,
    /// Runners leasing tasks (not asked to drain).
    pub active_runners: i64,
    /// Runners asked to drain that have not drained yet.
    pub draining_runners: i64,
    /// Slots of the active runners.
    pub capacity: i64,
    /// Tasks the active and draining runners reported running.
    pub running: i64,
}

#[async_trait]
pub trait FleetStore {
    /// Records a runner's own heartbeat (now, `running` tasks) and, when it was asked to
    /// drain, reports nothing running and holds no lease, that it drained. `None` if there is
    /// no such runner.
    async fn runner_heartbeat(&self, runner: Id, running: i32) -> StoreResult<Option<RunnerState>>;
    /// Whether the runner was asked to drain (a lease answers it nothing).
    async fn runner_draining(&self, runner: Id) -> StoreResult<bool>;
    /// Asks a runner to drain (again is a no-op); the runner as it now stands, or `None` if
    /// there is no such runner.
    async fn drain_runner(&self, runner: Id) -> StoreResult<Option<RunnerInfo>>;
    /// Registered runners, newest first, of one cluster or all.
    async fn runners(&self, cluster: Option<&str>, page: Page) -> StoreResult<Vec<RunnerInfo>>;
    /// Deletes the runners last heard from before `seen_before` that hold no lease, with
    /// their credentials; answers how many. A runner that comes back after that is refused
    /// (401) and registers anew when restarted.
    async fn forget_runners(&self, seen_before: DateTime<Utc>) -> StoreResult<u64>;
    /// Clusters by name (one, or all), each with the runners heard from since `seen_since`
    /// summed up; drained runners count in none of the sums.
    async fn clusters(
        &self,
        name: Option<&str>,
        seen_since: DateTime<Utc>,
    ) -> StoreResult<Vec<ClusterInfo>>;
}

/// The columns [`runner_info`] reads.
pub(crate) const RUNNER_COLUMNS: &str = "id, cluster, hostname, version, concurrency, running, \
    started_at, last_seen_at, drain_requested_at, drained_at";

pub(crate) fn runner_info(row: &impl Cols) -> StoreResult<RunnerInfo> {
    Ok(RunnerInfo {
        id: id(row, "id")?,
        cluster: row.text("cluster")?,
        hostname: row.text("hostname")?,
        version: row.text("version")?,
        concurrency: row.int("concurrency")?,
        running: row.int("running")?,
        started_at: row.time("started_at")?,
        last_seen_at: row.time("last_seen_at")?,
        drain_requested_at: row.opt_time("drain_requested_at")?,
        drained_at: row.opt_time("drained_at")?,
    })
}

/// The per-cluster sums, over runners seen since the first parameter and not drained
/// (the placeholder differs per backend: `$1` or `?1`). Both backends run this text.
macro_rules! cluster_sums {
    ($since:literal, $name:literal) => {
        concat!(
            "SELECT c.name, c.created_at, \
               count(r.id) FILTER (WHERE r.drain_requested_at IS NULL) AS active_runners, \
               count(r.id) FILTER (WHERE r.drain_requested_at IS NOT NULL) AS draining_runners, \
               coalesce(sum(r.concurrency) FILTER (WHERE r.drain_requested_at IS NULL), 0) \
                 AS capacity, \
               coalesce(sum(r.running), 0) AS running \
             FROM clusters c LEFT JOIN runners r ON r.cluster = c.name \
               AND r.last_seen_at >= ",
            $since,
            " AND r.drained_at IS NULL \
             WHERE ",
            $name,
            " IS NULL OR c.name = ",
            $name,
            " GROUP BY c.name, c.created_at ORDER BY c.name"
        )
    };
}
pub(crate) use cluster_sums;

pub(crate) fn cluster_info(row: &impl Cols) -> StoreResult<ClusterInfo> {
    Ok(ClusterInfo {
        name: row.text("name")?,
        created_at: row.time("created_at")?,
        active_runners: row.big("active_runners")?,
        draining_runners: row.big("draining_runners")?,
        capacity: row.big("capacity")?,
        running: row.big("running")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runner(drain: bool, drained: bool, seen: i64) -> RunnerInfo {
        let at = |s| DateTime::from_timestamp(1_700_000_000 + s, 0).unwrap();
        RunnerInfo {
            id: Id::generate(),
            cluster: "default".into(),
            hostname: "h".into(),
            version: "1".into(),
            concurrency: 2,
            running: 0,
            started_at: at(0),
            last_seen_at: at(seen),
            drain_requested_at: drain.then(|| at(1)),
            drained_at: drained.then(|| at(2)),
        }
    }

    #[test]
    fn drained_outlasts_silence_but_draining_does_not() {
        let since = DateTime::from_timestamp(1_700_000_050, 0).unwrap();
        assert_eq!(runner(false, false, 60).status(since), RunnerStatus::Active);
        assert_eq!(
            runner(false, false, 10).status(since),
            RunnerStatus::Offline
        );
        assert_eq!(
            runner(true, false, 60).status(since),
            RunnerStatus::Draining
        );
        assert_eq!(runner(true, false, 10).status(since), RunnerStatus::Offline);
        assert_eq!(runner(true, true, 10).status(since), RunnerStatus::Drained);
    }
}
