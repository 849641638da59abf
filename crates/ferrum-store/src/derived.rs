//! What every backend derives from records the same way: what a due schedule does now, the
//! task it fires, the task a manual retry queues, how an outcome is recorded, and the order a
//! lease answers its tasks in.

use chrono::{DateTime, Utc};
use ferrum_model::recurrence::Firing;
use ferrum_model::{NewTask, Schedule, Task, TaskOrigin, TaskStatus};

use crate::{LeasedTask, Outcome, StoreError, StoreResult};

/// Failed firings in a row after which a schedule is stopped with status `error`.
pub const MAX_FIRE_FAILURES: i32 = 3;
/// Longest a stored error message of a failed firing is, in characters.
const MAX_FIRE_ERROR_CHARS: usize = 500;

/// What a pass records for a schedule it could not fire. The schedule is skipped, not the
/// pass: every other due schedule still fires. It waits before its next try (so a row that
/// always fails does not take a place in every pass's batch) and is stopped after
/// [`MAX_FIRE_FAILURES`] failures in a row, with a `msg` its tenant sees.
pub(crate) struct FireFailure {
    pub id: String,
    pub next: Option<DateTime<Utc>>,
    /// `Some("error")` when this failure stops the schedule.
    pub status: Option<&'static str>,
    pub msg: String,
}

impl FireFailure {
    /// `failures` counts the failures in a row before this one.
    pub fn new(id: String, failures: i32, error: &str, now: DateTime<Utc>) -> Self {
        let failures = failures.saturating_add(1);
        let error: String = error.chars().take(MAX_FIRE_ERROR_CHARS).collect();
        tracing::warn!(schedule = %id, failures, %error, "a schedule could not fire; skipped");
        if failures >= MAX_FIRE_FAILURES {
            return FireFailure {
                id,
                next: None,
                status: Some("error"),
                msg: format!(
                    "Stopped after {failures} failed attempts to fire: {error}. Cancel this \
                     schedule and create a new one."
                ),
            };
        }
        // 1 min, 2 min, 4 min…: a transient failure costs a slot or two, not the schedule.
        let wait = chrono::Duration::minutes(1 << (failures - 1).clamp(0, 6));
        FireFailure {
            id,
            next: Some(now + wait),
            status: None,
            msg: format!("Firing failed ({failures} of {MAX_FIRE_FAILURES}): {error}"),
        }
    }
}

/// Puts leased tasks in dispatch order: highest priority first, then oldest `run_at`, then id.
/// A lease's statements answer rows in no particular order, and Postgres may lease in two.
pub(crate) fn sort_in_dispatch_order(leased: &mut [LeasedTask]) {
    leased.sort_by(|a, b| (b.priority, a.run_at, a.id).cmp(&(a.priority, b.run_at, b.id)));
}

/// What a due schedule does now. A stored recurrence that no longer parses (validation
/// accepted it, so only a change of the cron library could do that) ends the schedule with
/// the reason rather than blocking every pass.
pub(crate) fn firing(s: &Schedule, now: DateTime<Utc>) -> (Firing, Option<String>) {
    let slot = s.next_start.unwrap_or(now);
    match s.recurrence() {
        Ok(r) => {
            let f = r.fire(slot, now, s.misfire, s.bounds());
            let msg = f.done_msg.map(str::to_owned);
            (f, msg)
        }
        Err(e) => {
            let f = Firing {
                slots: Vec::new(),
                next: None,
                done_msg: None,
            };
            (f, Some(format!("Cannot compute the next run: {e}")))
        }
    }
}

/// Where a schedule resumes: the first slot after `now` on its grid, skipping the slots missed
/// while it was paused.
pub(crate) fn resumed_next(s: &Schedule, now: DateTime<Utc>) -> StoreResult<Option<DateTime<Utc>>> {
    let r = s
        .recurrence()
        .map_err(|e| StoreError::Corrupt(format!("schedule {}: {e}", s.id)))?;
    Ok(s.next_start.map(|n| r.first_after(n, now).unwrap_or(n)))
}

/// The task a schedule queues when it fires (contract §5.6 step 2).
pub(crate) fn task_of(s: &Schedule) -> NewTask {
    NewTask {
        code_name: s.code_name.clone(),
        payload: s.payload.clone(),
        priority: Some(s.priority),
        timeout: s.timeout,
        delay: s.task_delay,
        cluster: s.cluster.clone(),
        label: s.label.clone(),
        origin: TaskOrigin {
            schedule_id: Some(s.id),
            ..TaskOrigin::default()
        },
    }
}

/// The copy of `task` that a manual retry (T9) queues, linked to it, after `delay` seconds.
pub(crate) fn retry_of(task: Task, delay: i32) -> NewTask {
    NewTask {
        code_name: task.code_name,
        payload: task.payload,
        priority: Some(task.priority),
        timeout: task.timeout,
        delay,
        cluster: task.cluster,
        label: task.label,
        origin: TaskOrigin {
            original_task_id: Some(task.id),
            retry_count: task.origin.retry_count + 1,
            ..task.origin
        },
    }
}

/// An outcome must be a final status; anything else is the caller's bug.
pub(crate) fn require_final(outcome: &Outcome) -> StoreResult<()> {
    if outcome.status.is_terminal() {
        Ok(())
    } else {
        Err(StoreError::Conflict(format!(
            "{} is not a final status",
            outcome.status
        )))
    }
}

/// `error_class` of a failed run, as DOC shows it: `Process Exit <code>` (contract §5.1).
pub(crate) fn error_class(outcome: &Outcome) -> Option<String> {
    outcome
        .exit_code
        .filter(|_| outcome.status == TaskStatus::Error)
        .map(|code| format!("Process Exit {code}"))
}

/// The msg of an outcome as Postgres can store it: text cannot hold NUL, and one such msg would
/// fail a whole batch of coalesced completions.
pub(crate) fn stored_msg(outcome: &Outcome) -> Option<String> {
    outcome.msg.as_ref().map(|m| m.replace('\0', ""))
}

/// Refuses adding `adding` schedules to a project that has `active` of at most `max_active`.
pub(crate) fn check_schedule_limit(
    max_active: Option<i64>,
    active: i64,
    adding: usize,
) -> StoreResult<()> {
    match max_active {
        Some(max) if active + adding as i64 > max => Err(StoreError::LimitReached(format!(
            "A project may have at most {max} active schedules; this one has {active}, and \
             {adding} more would pass the limit. Cancel some first."
        ))),
        _ => Ok(()),
    }
}

/// How many revisions below a code's latest one keep their zip: `keep` counts the latest
/// itself, and no setting means every revision stays (`i32::MAX` keeps any `latest_rev - it`
/// below 1).
pub(crate) fn keep_margin(keep: Option<u32>) -> i32 {
    keep.map_or(i32::MAX, |k| i32::try_from(k.max(1)).unwrap_or(i32::MAX))
}
