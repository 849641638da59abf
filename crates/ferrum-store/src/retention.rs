//! Retention: finished tasks past their project's retention period (`projects.retention_days`,
//! else the operator's default) are deleted with everything hanging off them (log chunks,
//! result, events, tokens), and so are finished batches none of whose tasks is left.
//!
//! The duty (`ferrum_api::retention`) works in small batches so no statement holds locks for
//! long: [`RetentionStore::expired_tasks`] reads a page of candidates through the project's
//! task index, and [`RetentionStore::delete_tasks`] deletes one page in one short transaction.
//! Only finished tasks are touched (rows no lease, completion or cancel locks), and a task of
//! a batch that is still running or reducing stays: the batch's results and its reduce read it.
//!
//! Candidates are found by id: ids start with their creation second, and a task that finished
//! before the cutoff was created before it, so the scan reads only the project's tasks created
//! before the cutoff (no index on `end_time`, which would make every completion's update of
//! `tasks` write an index entry).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use ferrum_model::Id;

use crate::StoreResult;

/// What deleting a page of tasks removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Deleted {
    pub tasks: u64,
    /// Blob keys of the deleted tasks' large results: the caller deletes them from the blob
    /// store (after the commit, so a failure there leaks a blob instead of losing a result).
    pub result_blobs: Vec<String>,
    pub batches: u64,
}

#[async_trait]
pub trait RetentionStore {
    /// Projects whose finished tasks expire, with their retention in days: their own
    /// `retention_days`, else `default_days` (`None`: only projects with their own).
    async fn retention_projects(&self, default_days: Option<i32>) -> StoreResult<Vec<(Id, i32)>>;
    /// Up to `limit` ids of the project's finished tasks that ended before `cutoff` (and are
    /// not items or the reduce of a running batch), in id order after `after`.
    async fn expired_tasks(
        &self,
        project: Id,
        cutoff: DateTime<Utc>,
        after: Option<Id>,
        limit: i64,
    ) -> StoreResult<Vec<Id>>;
    /// Deletes those of `ids` that are finished tasks of `project`, with their log chunks,
    /// results, events and tokens, then their batches that ended and have no task left; one
    /// transaction.
    async fn delete_tasks(&self, project: Id, ids: &[Id]) -> StoreResult<Deleted>;
}

/// The statuses a task never leaves.
pub(crate) const FINAL: &str = "('complete', 'error', 'cancelled', 'killed', 'timeout')";

/// The smallest id of the second after `t`'s: every task created at or before `t` has a
/// smaller id (ids are 24 lowercase hex digits, the first 8 the creation's Unix seconds).
pub(crate) fn id_bound(t: DateTime<Utc>) -> String {
    let secs = u32::try_from(t.timestamp().max(0) + 1).unwrap_or(u32::MAX);
    format!("{secs:08x}{}", "0".repeat(16))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bound_is_above_every_id_of_its_second_and_below_the_next() {
        let before = Id::generate();
        let now = Utc::now();
        let bound = id_bound(now);
        assert!(before.to_string() < bound);
        let next = DateTime::from_timestamp(now.timestamp() + 1, 0).unwrap();
        assert!(bound <= id_bound(next));
        assert!(id_bound(now - chrono::Duration::seconds(5)) < before.to_string());
    }
}
