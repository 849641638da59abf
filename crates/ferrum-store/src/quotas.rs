//! Per-project quotas an operator sets: concurrency (enforced by leasing), a cap on queued
//! tasks and a task-creation rate (enforced when the API queues tasks, in the enqueue's own
//! transaction, so a refused request writes nothing), and the retention of finished tasks
//! (enforced by the retention duty, `crate::retention`).
//!
//! Only tasks queued through the API (`enqueue`, `enqueue_once`) are refused. A schedule's
//! tasks count towards the queued cap but are never refused: schedules are bounded by their
//! own limits, and a firing duty has no caller to tell "try again".

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use ferrum_model::Id;

use crate::{StoreError, StoreResult};

/// A project's quotas; `None` is "no limit" (for `retention_days`: the operator's default
/// retention, which may keep tasks forever).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProjectQuotas {
    pub max_concurrency: Option<i32>,
    pub max_queued: Option<i32>,
    pub tasks_per_minute: Option<i32>,
    pub retention_days: Option<i32>,
}

/// How long a caller refused by the queued cap is told to wait: the queue drains at the pace
/// of the project's runners, which the API cannot predict.
pub const QUEUED_CAP_RETRY_SECS: u64 = 5;

#[async_trait]
pub trait QuotaStore {
    /// The project's quotas, or `None` if there is no such project.
    async fn project_quotas(&self, project: Id) -> StoreResult<Option<ProjectQuotas>>;
    /// Replaces the project's quotas; false if there is no such project.
    async fn set_project_quotas(&self, project: Id, quotas: &ProjectQuotas) -> StoreResult<bool>;
}

/// A project's creation-rate bucket as stored: `tokens` left at `at` (both unset until the
/// first task), refilled at `per_minute / 60` a second up to `per_minute`.
pub(crate) struct Bucket {
    pub per_minute: i32,
    pub tokens: Option<f64>,
    pub at: Option<DateTime<Utc>>,
}

impl Bucket {
    /// Takes `n` tokens at `now`: the tokens left, or the refusal with how long to wait.
    pub fn take(&self, now: DateTime<Utc>, n: usize) -> StoreResult<f64> {
        let rate = f64::from(self.per_minute.max(1));
        let elapsed = match self.at {
            Some(at) => (now - at).num_microseconds().unwrap_or(i64::MAX).max(0) as f64 / 1e6,
            None => f64::INFINITY,
        };
        let have = (self.tokens.unwrap_or(rate) + elapsed * rate / 60.0).min(rate);
        let want = n as f64;
        if want <= have {
            return Ok(have - want);
        }
        if want > rate {
            return Err(StoreError::QuotaExceeded {
                msg: format!(
                    "this request queues {n} tasks, more than the project's limit of {} \
                     tasks per minute (tasks_per_minute); queue fewer at a time",
                    self.per_minute
                ),
                retry_after_secs: 60,
            });
        }
        let wait = ((want - have) * 60.0 / rate).ceil().max(1.0) as u64;
        Err(StoreError::QuotaExceeded {
            msg: format!(
                "the project may queue {} tasks per minute (tasks_per_minute); retry in {wait} s",
                self.per_minute
            ),
            retry_after_secs: wait,
        })
    }
}

/// The refusal when `queued` waiting tasks plus `n` new ones pass `cap`.
pub(crate) fn check_queued(cap: i32, queued: i64, n: usize) -> StoreResult<()> {
    if queued + n as i64 <= i64::from(cap) {
        return Ok(());
    }
    Err(StoreError::QuotaExceeded {
        msg: format!(
            "the project has {queued} queued tasks and may have at most {cap} (max_queued); \
             this request adds {n}"
        ),
        retry_after_secs: QUEUED_CAP_RETRY_SECS,
    })
}

/// Checks a bound from the admin API: positive or unset.
pub fn check_quotas(q: &ProjectQuotas) -> Result<(), String> {
    for (field, v) in [
        ("max_concurrency", q.max_concurrency),
        ("max_queued", q.max_queued),
        ("tasks_per_minute", q.tasks_per_minute),
        ("retention_days", q.retention_days),
    ] {
        if v.is_some_and(|v| v < 1) {
            return Err(format!("{field} must be at least 1, or null for no limit"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + s, 0).unwrap()
    }

    #[test]
    fn a_fresh_bucket_holds_a_minute_and_refills_continuously() {
        let b = Bucket {
            per_minute: 60,
            tokens: None,
            at: None,
        };
        assert_eq!(b.take(at(0), 60).unwrap(), 0.0);
        let empty = Bucket {
            per_minute: 60,
            tokens: Some(0.0),
            at: Some(at(0)),
        };
        match empty.take(at(0), 3) {
            Err(StoreError::QuotaExceeded {
                retry_after_secs, ..
            }) => assert_eq!(retry_after_secs, 3),
            other => panic!("{other:?}"),
        }
        assert_eq!(empty.take(at(3), 3).unwrap(), 0.0);
        assert_eq!(
            empty.take(at(3600), 1).unwrap(),
            59.0,
            "never more than a minute's worth"
        );
    }

    #[test]
    fn more_than_a_minute_at_once_is_refused_with_a_message_saying_so() {
        let b = Bucket {
            per_minute: 10,
            tokens: None,
            at: None,
        };
        let e = b.take(at(0), 11).unwrap_err().to_string();
        assert!(e.contains("queue fewer at a time"), "{e}");
    }

    #[test]
    fn the_queued_cap_counts_the_new_tasks() {
        assert!(check_queued(5, 3, 2).is_ok());
        assert!(check_queued(5, 3, 3).is_err());
    }
}
