//! When a schedule fires: a fixed interval (`run_every`, IronWorker), a cron expression in an
//! IANA time zone (Ferrum's addition), or once; and what to do about slots missed while no API
//! replica was running (the misfire policy).
//!
//! Slots are computed here, without IO, so the store (firing), the API (validation, the next
//! fire times in a schedule's JSON) and every backend agree on them.

use std::str::FromStr;

use chrono::{DateTime, Duration, SubsecRound, Utc};
use chrono_tz::Tz;
use croner::Cron;

use crate::ValidationError;

/// Most slots a `catch_up` schedule fires in one pass; the rest wait for the next pass, so a
/// long outage cannot make one transaction arbitrarily large.
pub const MAX_CATCH_UP: usize = 100;
/// How late a slot may be and still fire under the `skip` policy.
pub const SKIP_GRACE_SECS: i64 = 60;

/// What a schedule does with slots that passed while nothing could fire them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum MisfirePolicy {
    /// Fire once for all the missed slots, then continue at the first future slot (contract
    /// §8.11: "fire once, then realign").
    #[default]
    RunOnce,
    /// Fire nothing for a slot more than [`SKIP_GRACE_SECS`] late; continue at the first
    /// future slot.
    Skip,
    /// Fire one task per missed slot (at most [`MAX_CATCH_UP`] per pass).
    CatchUp,
}

impl MisfirePolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            MisfirePolicy::RunOnce => "run_once",
            MisfirePolicy::Skip => "skip",
            MisfirePolicy::CatchUp => "catch_up",
        }
    }

    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        [Self::RunOnce, Self::Skip, Self::CatchUp]
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| {
                ValidationError::Invalid(format!(
                    "misfire must be one of run_once, skip, catch_up; got {s:?}"
                ))
            })
    }
}

/// How a schedule repeats.
#[derive(Debug, Clone)]
pub enum Recurrence {
    /// One run at the first slot.
    Once,
    /// Every this many seconds from the first slot, on a fixed grid (no drift).
    Every(Duration),
    /// Whenever the cron expression matches the wall clock of `tz` (DST handled by croner).
    Cron { cron: Box<Cron>, tz: Tz },
}

impl Recurrence {
    /// The recurrence of a schedule's stored fields. `cron` (5 fields, or 6 with seconds first)
    /// and `run_every` exclude each other; `timezone` defaults to UTC and needs `cron`.
    pub fn new(
        run_every: Option<i32>,
        cron: Option<&str>,
        timezone: Option<&str>,
    ) -> Result<Self, ValidationError> {
        let invalid = |msg: String| ValidationError::Invalid(msg);
        match (run_every, cron) {
            (Some(_), Some(_)) => Err(invalid("give run_every or cron, not both".into())),
            (every, None) => {
                if timezone.is_some() {
                    return Err(invalid("timezone applies only to cron schedules".into()));
                }
                Ok(every.map_or(Recurrence::Once, |s| {
                    Recurrence::Every(Duration::seconds(s.into()))
                }))
            }
            (None, Some(expr)) => {
                let fields = expr.split_whitespace().count();
                if !(5..=6).contains(&fields) {
                    return Err(invalid(format!(
                        "cron must have 5 fields (minute hour day month weekday) or 6 (seconds \
                         first); {expr:?} has {fields}"
                    )));
                }
                let cron = Cron::from_str(expr)
                    .map_err(|e| invalid(format!("cron {expr:?} is not valid: {e}")))?;
                let tz = match timezone {
                    None => Tz::UTC,
                    Some(name) => name.parse().map_err(|_| {
                        invalid(format!(
                            "timezone {name:?} is not an IANA time zone such as Europe/Paris"
                        ))
                    })?,
                };
                Ok(Recurrence::Cron {
                    cron: Box::new(cron),
                    tz,
                })
            }
        }
    }

    /// The first slot at or after `start_at`; an error for a cron that never matches.
    pub fn first_slot(&self, start_at: DateTime<Utc>) -> Result<DateTime<Utc>, ValidationError> {
        match self {
            Recurrence::Once | Recurrence::Every(_) => Ok(start_at),
            Recurrence::Cron { cron, tz } => {
                // Cron slots are whole seconds: a start inside a second begins after it.
                let whole = start_at.trunc_subsecs(0);
                cron.find_next_occurrence(&whole.with_timezone(tz), whole == start_at)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(|e| ValidationError::Invalid(format!("cron never fires: {e}")))
            }
        }
    }

    /// The slot after `slot`, if any (a one-shot has none).
    pub fn after(&self, slot: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Recurrence::Once => None,
            Recurrence::Every(every) => Some(slot + *every),
            Recurrence::Cron { cron, tz } => cron
                .find_next_occurrence(&slot.trunc_subsecs(0).with_timezone(tz), false)
                .ok()
                .map(|t| t.with_timezone(&Utc)),
        }
    }

    /// The first slot of the series through `slot` that is later than `now` (`slot` itself
    /// when it is). Interval grids jump there in one step, so a long outage costs nothing.
    pub fn first_after(&self, slot: DateTime<Utc>, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if slot > now {
            return Some(slot);
        }
        match self {
            Recurrence::Once => None,
            Recurrence::Every(every) => {
                let behind = (now - slot).num_seconds() / every.num_seconds().max(1) + 1;
                Some(slot + *every * i32::try_from(behind).unwrap_or(i32::MAX))
            }
            Recurrence::Cron { .. } => self.after(now),
        }
    }
}

/// How many consecutive slots of a cron are looked at for its shortest gap: enough to cover
/// many periods of any sparse pattern and the dense part of a mixed one (`* 0 * * *` fires
/// every minute, but only in one hour a day).
pub const GAP_WINDOW_SLOTS: usize = 1000;

impl Recurrence {
    /// The shortest time between consecutive slots, over [`GAP_WINDOW_SLOTS`] slots from
    /// `from`, stopping early at one shorter than `floor`; `None` for a one-shot.
    pub fn shortest_gap(&self, from: DateTime<Utc>, floor: Duration) -> Option<Duration> {
        match self {
            Recurrence::Once => None,
            Recurrence::Every(every) => Some(*every),
            Recurrence::Cron { .. } => {
                let mut shortest: Option<Duration> = None;
                let mut slot = self.first_slot(from).ok()?;
                for _ in 0..GAP_WINDOW_SLOTS {
                    let Some(next) = self.after(slot) else { break };
                    let gap = next - slot;
                    shortest = Some(shortest.map_or(gap, |s| s.min(gap)));
                    if gap < floor {
                        break;
                    }
                    slot = next;
                }
                shortest
            }
        }
    }

    /// Refuses a recurrence whose runs can come closer together than `min` (the operator's
    /// minimum schedule interval): the same rule for `run_every` and for cron, whose seconds
    /// field could otherwise fire every second.
    pub fn check_min_interval(
        &self,
        from: DateTime<Utc>,
        min: Duration,
    ) -> Result<(), ValidationError> {
        let Some(gap) = self.shortest_gap(from, min).filter(|gap| *gap < min) else {
            return Ok(());
        };
        let (gap, min) = (gap.num_seconds(), min.num_seconds());
        Err(ValidationError::Invalid(match self {
            Recurrence::Cron { .. } => format!(
                "cron fires as often as every {gap} seconds; runs must be at least {min} \
                 seconds apart"
            ),
            _ => format!("run_every must be at least {min} seconds"),
        }))
    }
}

/// What firing a due schedule at `now` does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Firing {
    /// One task per entry: the slot it is for.
    pub slots: Vec<DateTime<Utc>>,
    /// The next slot, or `None` when the schedule is done.
    pub next: Option<DateTime<Utc>>,
    /// Why the schedule is done, when it is.
    pub done_msg: Option<&'static str>,
}

/// The limits that end a schedule.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    pub end_at: Option<DateTime<Utc>>,
    /// Runs left before `run_times` is reached; `None` without a count limit.
    pub runs_left: Option<i32>,
}

impl Recurrence {
    /// Fires the due slot `slot` at `now` under `policy`, within `bounds`.
    pub fn fire(
        &self,
        slot: DateTime<Utc>,
        now: DateTime<Utc>,
        policy: MisfirePolicy,
        bounds: Bounds,
    ) -> Firing {
        let past_end = |t: DateTime<Utc>| bounds.end_at.is_some_and(|end| t > end);
        let mut slots = Vec::new();
        let mut next = Some(slot);
        let cap = bounds
            .runs_left
            .map_or(usize::MAX, |n| usize::try_from(n).unwrap_or(0));
        match policy {
            MisfirePolicy::CatchUp => {
                while let Some(s) = next.filter(|s| *s <= now && !past_end(*s)) {
                    if slots.len() >= cap.min(MAX_CATCH_UP) {
                        break;
                    }
                    slots.push(s);
                    next = self.after(s);
                }
            }
            MisfirePolicy::RunOnce | MisfirePolicy::Skip => {
                let late = (now - slot).num_seconds() > SKIP_GRACE_SECS;
                if !past_end(slot) && cap > 0 && !(policy == MisfirePolicy::Skip && late) {
                    slots.push(slot);
                }
                next = self.first_after(slot, now);
            }
        }
        let done_msg = if slots.len() >= cap || next.is_none() {
            Some("Ran max times.")
        } else if next.is_some_and(past_end) {
            Some("Reached end_at.")
        } else {
            None
        };
        Firing {
            slots,
            next: next.filter(|_| done_msg.is_none()),
            done_msg,
        }
    }

    /// Up to `n` slots from `next`, within `bounds`: the schedule's upcoming fire times.
    pub fn upcoming(&self, next: DateTime<Utc>, bounds: Bounds, n: usize) -> Vec<DateTime<Utc>> {
        let cap = bounds
            .runs_left
            .map_or(n, |left| n.min(usize::try_from(left).unwrap_or(0)));
        std::iter::successors(Some(next), |s| self.after(*s))
            .take_while(|s| bounds.end_at.is_none_or(|end| *s <= end))
            .take(cap)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2030, 1, 15, h, m, s).unwrap()
    }

    const OPEN: Bounds = Bounds {
        end_at: None,
        runs_left: None,
    };

    #[test]
    fn cron_with_seconds_and_time_zones() {
        let r = Recurrence::new(None, Some("*/10 * * * * *"), None).unwrap();
        assert_eq!(r.first_slot(at(12, 0, 1)).unwrap(), at(12, 0, 10));
        assert_eq!(r.after(at(12, 0, 10)), Some(at(12, 0, 20)));
        let every_second = Recurrence::new(None, Some("* * * * * *"), None).unwrap();
        let inside = at(12, 0, 1) + Duration::milliseconds(500);
        assert_eq!(every_second.first_slot(inside).unwrap(), at(12, 0, 2));
        assert_eq!(every_second.first_slot(at(12, 0, 1)).unwrap(), at(12, 0, 1));
        assert_eq!(every_second.after(inside), Some(at(12, 0, 2)));
        // 09:30 in New York in January is 14:30 UTC.
        let ny = Recurrence::new(None, Some("30 9 * * *"), Some("America/New_York")).unwrap();
        assert_eq!(ny.first_slot(at(0, 0, 0)).unwrap(), at(14, 30, 0));
    }

    #[test]
    fn bad_input_is_refused_with_a_reason() {
        let err = |e: Result<Recurrence, ValidationError>| e.unwrap_err().to_string();
        assert!(err(Recurrence::new(None, Some("* * *"), None)).contains("5 fields"));
        assert!(err(Recurrence::new(None, Some("61 * * * *"), None)).contains("not valid"));
        assert!(err(Recurrence::new(None, Some("* * * * *"), Some("Mars/Base"))).contains("IANA"));
        assert!(err(Recurrence::new(Some(60), Some("* * * * *"), None)).contains("not both"));
        let never = Recurrence::new(None, Some("0 0 30 2 *"), None).unwrap();
        assert!(never.first_slot(at(0, 0, 0)).is_err());
    }

    #[test]
    fn misfires_run_once_skip_or_catch_up() {
        let every = Recurrence::Every(Duration::seconds(60));
        let late = at(12, 10, 5);
        let once = every.fire(at(12, 0, 0), late, MisfirePolicy::RunOnce, OPEN);
        assert_eq!(
            (once.slots, once.next),
            (vec![at(12, 0, 0)], Some(at(12, 11, 0)))
        );
        let skip = every.fire(at(12, 0, 0), late, MisfirePolicy::Skip, OPEN);
        assert_eq!((skip.slots.len(), skip.next), (0, Some(at(12, 11, 0))));
        let on_time = every.fire(at(12, 0, 0), at(12, 0, 1), MisfirePolicy::Skip, OPEN);
        assert_eq!(on_time.slots.len(), 1);
        let all = every.fire(at(12, 0, 0), late, MisfirePolicy::CatchUp, OPEN);
        assert_eq!((all.slots.len(), all.next), (11, Some(at(12, 11, 0))));
    }

    #[test]
    fn run_times_and_end_at_end_the_schedule() {
        let every = Recurrence::Every(Duration::seconds(60));
        let last = Bounds {
            end_at: None,
            runs_left: Some(1),
        };
        let f = every.fire(at(12, 0, 0), at(12, 0, 0), MisfirePolicy::RunOnce, last);
        assert_eq!(
            (f.slots.len(), f.next, f.done_msg),
            (1, None, Some("Ran max times."))
        );
        let ends = Bounds {
            end_at: Some(at(12, 0, 30)),
            runs_left: None,
        };
        let f = every.fire(at(12, 0, 0), at(12, 0, 0), MisfirePolicy::RunOnce, ends);
        assert_eq!((f.slots.len(), f.done_msg), (1, Some("Reached end_at.")));
        let once = Recurrence::Once.fire(at(12, 0, 0), at(12, 0, 0), MisfirePolicy::Skip, OPEN);
        assert_eq!((once.slots.len(), once.next), (1, None));
        assert_eq!(every.upcoming(at(12, 0, 0), ends, 5), vec![at(12, 0, 0)]);
        assert_eq!(every.upcoming(at(12, 0, 0), OPEN, 3).len(), 3);
    }
}
