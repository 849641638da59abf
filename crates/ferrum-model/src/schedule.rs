//! Schedules: things that queue tasks over time (contract §3.4, §4.4, §5.6).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::recurrence::{Bounds, MisfirePolicy, Recurrence};
use crate::{Id, ValidationError};

/// A schedule's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScheduleStatus {
    /// Active: will fire at `next_start`.
    Scheduled,
    /// Will not fire again (ran its times, or passed `end_at`).
    Complete,
    Cancelled,
    /// Stopped by the firing duty after repeated failures to fire it; `msg` says why. It
    /// fires no more; cancel it and create a new one.
    Error,
}

impl ScheduleStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ScheduleStatus::Scheduled => "scheduled",
            ScheduleStatus::Complete => "complete",
            ScheduleStatus::Cancelled => "cancelled",
            ScheduleStatus::Error => "error",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Scheduled,
            Self::Complete,
            Self::Cancelled,
            Self::Error,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
    }
}

/// A schedule as the store keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    pub id: Id,
    pub project_id: Id,
    pub code_name: String,
    pub payload: Vec<u8>,
    pub status: ScheduleStatus,
    pub msg: Option<String>,
    pub start_at: DateTime<Utc>,
    pub end_at: Option<DateTime<Utc>>,
    pub next_start: Option<DateTime<Utc>>,
    pub last_run_time: Option<DateTime<Utc>>,
    /// Seconds between runs; `None` for a one-shot schedule.
    pub run_every: Option<i32>,
    /// Most runs; `None` for no count limit.
    pub run_times: Option<i32>,
    pub run_count: i32,
    /// A cron expression (5 fields, or 6 with seconds), instead of `run_every`.
    pub cron: Option<String>,
    /// The IANA zone `cron` is read in; `None` for UTC.
    pub timezone: Option<String>,
    pub misfire: MisfirePolicy,
    /// Paused schedules stay `scheduled` but do not fire; resuming skips the slots missed.
    pub paused: bool,
    pub priority: i32,
    pub timeout: i32,
    pub task_delay: i32,
    pub cluster: String,
    pub label: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A validated request to create a schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct NewSchedule {
    pub code_name: String,
    pub payload: Vec<u8>,
    pub start_at: DateTime<Utc>,
    pub end_at: Option<DateTime<Utc>>,
    pub run_every: Option<i32>,
    pub run_times: Option<i32>,
    pub cron: Option<String>,
    pub timezone: Option<String>,
    pub misfire: MisfirePolicy,
    /// The first slot: `start_at`, or the first cron match at or after it.
    pub first_slot: DateTime<Utc>,
    pub priority: i32,
    pub timeout: i32,
    pub task_delay: i32,
    pub cluster: String,
    pub label: Option<String>,
}

impl NewSchedule {
    /// Up to `n` fire times it would have once created, from its first slot (the dashboard's
    /// preview of a schedule being typed).
    pub fn next_fire_times(&self, n: usize) -> Vec<DateTime<Utc>> {
        let bounds = Bounds {
            end_at: self.end_at,
            runs_left: self.run_times,
        };
        Recurrence::new(
            self.run_every,
            self.cron.as_deref(),
            self.timezone.as_deref(),
        )
        .map(|r| r.upcoming(self.first_slot, bounds, n))
        .unwrap_or_default()
    }
}

impl Schedule {
    /// How the schedule repeats. Its fields were validated on the way in, so an error here
    /// means a stored row no longer parses.
    pub fn recurrence(&self) -> Result<Recurrence, ValidationError> {
        Recurrence::new(
            self.run_every,
            self.cron.as_deref(),
            self.timezone.as_deref(),
        )
    }

    /// The limits left: `end_at`, and the runs left under `run_times`.
    pub fn bounds(&self) -> Bounds {
        Bounds {
            end_at: self.end_at,
            runs_left: self.run_times.map(|max| (max - self.run_count).max(0)),
        }
    }

    /// Up to `n` upcoming fire times; none unless the schedule is active and not paused.
    pub fn next_fire_times(&self, n: usize) -> Vec<DateTime<Utc>> {
        match (self.status, self.paused, self.next_start, self.recurrence()) {
            (ScheduleStatus::Scheduled, false, Some(next), Ok(r)) => {
                r.upcoming(next, self.bounds(), n)
            }
            _ => Vec::new(),
        }
    }
}
