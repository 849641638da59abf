//! Turning what clients send into valid model inputs.
//!
//! Clients are lenient in what they send (contract §2): seconds arrive as floats, "unset" as
//! `null`, `""`, `0` or `-3`. These functions accept all of that, apply the documented defaults,
//! and reject only what is really wrong, with a message that says why.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::limits::{
    self, DEFAULT_CLUSTER, DEFAULT_TIMEOUT_SECS, MAX_DELAY_SECS, MAX_PAYLOAD_BYTES, MAX_RETRIES,
    MAX_TIMEOUT_SECS, MIN_CPUS, MIN_DISK_MB, MIN_MEMORY_MB, MIN_RUN_EVERY_SECS,
};
use crate::recurrence::{MisfirePolicy, Recurrence};
use crate::{CodeSpec, NewSchedule, NewTask, TaskOrigin};

/// Why an input was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    /// A payload or config over [`MAX_PAYLOAD_BYTES`].
    #[error("{what} is {size} bytes; the limit is {MAX_PAYLOAD_BYTES} bytes")]
    TooLarge { what: &'static str, size: usize },
    #[error("{0} is required")]
    Missing(&'static str),
    #[error("{0}")]
    Invalid(String),
}

/// Task options as a client sent them, before defaults.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskOptions {
    pub priority: Option<f64>,
    pub timeout: Option<f64>,
    pub delay: Option<f64>,
    pub cluster: Option<String>,
    pub label: Option<String>,
}

/// Validates one task to queue. Priority outside 0..=2 means "use the code's default"
/// (ironcli sends -3); timeout 0 or absent means the default; a timeout past the maximum is
/// clamped to it (contract §5.3).
pub fn new_task(
    code_name: &str,
    payload: Vec<u8>,
    opts: TaskOptions,
) -> Result<NewTask, ValidationError> {
    if code_name.is_empty() {
        return Err(ValidationError::Missing("code_name"));
    }
    limits::CODE_NAME.check(code_name)?;
    check_size("payload", payload.len())?;
    let priority = opts
        .priority
        .map(|p| p.trunc() as i32)
        .filter(|p| (0..=2).contains(p));
    let delay = seconds("delay", opts.delay)?.unwrap_or(0);
    if delay > MAX_DELAY_SECS {
        return Err(ValidationError::Invalid(format!(
            "delay must be at most {MAX_DELAY_SECS} seconds"
        )));
    }
    Ok(NewTask {
        code_name: code_name.to_owned(),
        payload,
        priority,
        timeout: timeout(opts.timeout)?,
        delay,
        cluster: cluster(opts.cluster)?,
        label: optional(&limits::LABEL, opts.label)?,
        origin: TaskOrigin::default(),
    })
}

/// Schedule fields as a client sent them, before defaults.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScheduleOptions {
    pub task: TaskOptions,
    pub start_at: Option<DateTime<Utc>>,
    pub end_at: Option<DateTime<Utc>>,
    pub run_every: Option<f64>,
    pub run_times: Option<f64>,
    /// Per-task delay (`task_delay`).
    pub task_delay: Option<f64>,
    /// A cron expression instead of `run_every`, read in `timezone` (default UTC).
    pub cron: Option<String>,
    pub timezone: Option<String>,
    /// `run_once` (default), `skip` or `catch_up`.
    pub misfire: Option<String>,
    /// The shortest time allowed between two runs, for `run_every` and cron alike: the
    /// operator's setting (`ApiConfig::min_schedule_interval`); `None` for
    /// [`MIN_RUN_EVERY_SECS`].
    pub min_interval_secs: Option<u32>,
}

/// Validates one schedule. Runs closer together than the minimum interval (60 seconds unless
/// the operator sets another, contract §3.4 S2) are refused, by `run_every` or by cron;
/// `run_times` 0 means no limit; `delay` (an offset to the first run) applies when `start_at`
/// is absent (contract §8.9).
pub fn new_schedule(
    code_name: &str,
    payload: Vec<u8>,
    opts: ScheduleOptions,
    now: DateTime<Utc>,
) -> Result<NewSchedule, ValidationError> {
    let first_delay = seconds("delay", opts.task.delay)?.unwrap_or(0);
    let task = new_task(
        code_name,
        payload,
        TaskOptions {
            delay: opts.task_delay,
            ..opts.task
        },
    )?;
    let run_every = seconds("run_every", opts.run_every)?.filter(|s| *s != 0);
    let run_times = count("run_times", opts.run_times)?.filter(|n| *n > 0);
    let cron = optional(&limits::CRON, opts.cron.filter(|c| !c.trim().is_empty()))?;
    let timezone = optional(&limits::TIMEZONE, opts.timezone)?;
    let recurrence = Recurrence::new(run_every, cron.as_deref(), timezone.as_deref())?;
    let misfire = optional(&limits::MISFIRE, opts.misfire)?
        .map(|m| MisfirePolicy::parse(&m))
        .transpose()?
        .unwrap_or_default();
    let start_at = opts
        .start_at
        .unwrap_or_else(|| now + chrono::Duration::seconds(first_delay.into()));
    let first_slot = recurrence.first_slot(start_at)?;
    let min_interval = opts
        .min_interval_secs
        .map_or(MIN_RUN_EVERY_SECS.into(), i64::from);
    recurrence.check_min_interval(first_slot, chrono::Duration::seconds(min_interval))?;
    if let Some(end) = opts.end_at {
        if end < start_at {
            return Err(ValidationError::Invalid(
                "end_at must not be before start_at".into(),
            ));
        }
    }
    Ok(NewSchedule {
        code_name: task.code_name,
        payload: task.payload,
        start_at,
        end_at: opts.end_at,
        run_every,
        run_times,
        cron,
        timezone,
        misfire,
        first_slot,
        priority: task.priority.unwrap_or(0),
        timeout: task.timeout,
        task_delay: task.delay,
        cluster: task.cluster,
        label: task.label,
    })
}

/// Validates the numeric options of a code upload.
pub fn code_retries(retries: i32, retries_delay: i32) -> Result<(), ValidationError> {
    if !(0..=MAX_RETRIES).contains(&retries) {
        return Err(ValidationError::Invalid(format!(
            "retries must be between 0 and {MAX_RETRIES}"
        )));
    }
    if retries_delay < 0 {
        return Err(ValidationError::Invalid(
            "retries_delay must not be negative".into(),
        ));
    }
    Ok(())
}

/// Validates a code's resource settings. Only the floors Docker itself enforces are checked
/// here: how much a task may really get is each runner's ceiling, applied when it runs, so an
/// ask above it is clamped there rather than refused here.
pub fn code_limits(spec: &CodeSpec) -> Result<(), ValidationError> {
    spec.memory_mb.map(memory_mb).transpose()?;
    spec.cpus.map(cpus).transpose()?;
    spec.pids.map(pids).transpose()?;
    spec.disk_mb.map(disk_mb).transpose()?;
    Ok(())
}

/// A memory limit in MiB; runners hold their flags to the same floor.
pub fn memory_mb(mb: i32) -> Result<i32, ValidationError> {
    if mb < MIN_MEMORY_MB {
        return Err(ValidationError::Invalid(format!(
            "memory_mb must be a whole number of MiB, at least {MIN_MEMORY_MB}"
        )));
    }
    Ok(mb)
}

/// A CPU quota in CPUs, fractions allowed.
pub fn cpus(cpus: f64) -> Result<f64, ValidationError> {
    if !(cpus.is_finite() && cpus >= MIN_CPUS) {
        return Err(ValidationError::Invalid(format!(
            "cpus must be a number of CPUs, at least {MIN_CPUS}"
        )));
    }
    Ok(cpus)
}

/// A limit on processes/threads.
pub fn pids(pids: i32) -> Result<i32, ValidationError> {
    if pids < 1 {
        return Err(ValidationError::Invalid(
            "pids must be a positive whole number".into(),
        ));
    }
    Ok(pids)
}

/// A task disk size in MiB; runners hold their flags to the same floor.
pub fn disk_mb(mb: i32) -> Result<i32, ValidationError> {
    if mb < MIN_DISK_MB {
        return Err(ValidationError::Invalid(format!(
            "disk_mb must be a whole number of MiB, at least {MIN_DISK_MB}"
        )));
    }
    Ok(mb)
}

/// Refuses a payload or config over the size limit.
pub fn check_size(what: &'static str, size: usize) -> Result<(), ValidationError> {
    if size > MAX_PAYLOAD_BYTES {
        return Err(ValidationError::TooLarge { what, size });
    }
    Ok(())
}

fn timeout(raw: Option<f64>) -> Result<i32, ValidationError> {
    Ok(match seconds("timeout", raw)? {
        None | Some(0) => DEFAULT_TIMEOUT_SECS,
        Some(t) => t.min(MAX_TIMEOUT_SECS),
    })
}

/// A task's cluster: empty means the default one.
fn cluster(raw: Option<String>) -> Result<String, ValidationError> {
    Ok(optional(&limits::CLUSTER, raw)?.unwrap_or_else(|| DEFAULT_CLUSTER.to_owned()))
}

/// A runner token's cluster: the same rules as a task's, but it must be named.
pub fn cluster_name(raw: &str) -> Result<&str, ValidationError> {
    if raw.is_empty() {
        return Err(ValidationError::Missing("cluster"));
    }
    limits::CLUSTER.check(raw)?;
    Ok(raw)
}

/// An optional string: empty means unset; anything else must be within `limit`.
pub fn optional(
    limit: &limits::Limit,
    raw: Option<String>,
) -> Result<Option<String>, ValidationError> {
    match raw.filter(|v| !v.is_empty()) {
        Some(v) => limit.check(&v).map(|()| Some(v)),
        None => Ok(None),
    }
}

/// A code's environment: at most [`limits::ENV_VARS`] variables, each name and value bounded,
/// and all of them together within [`limits::ENV_TOTAL`], so the container's `execve` never
/// fails with `argument list too long`.
pub fn env_vars(vars: &BTreeMap<String, String>) -> Result<(), ValidationError> {
    limits::ENV_VARS.check_count(vars.len())?;
    let mut total = 0;
    for (name, value) in vars {
        limits::ENV_NAME.check(name)?;
        limits::ENV_VALUE.check_as(&format!("env_vars[{name:?}]"), value)?;
        // Each variable is `NAME=value\0` in the container's environment block.
        total += name.len() + value.len() + 2;
    }
    let max = limits::ENV_TOTAL.max;
    if total > max {
        return Err(ValidationError::Invalid(format!(
            "env_vars total {total} bytes; the limit is {max} bytes"
        )));
    }
    Ok(())
}

/// Whole seconds from a JSON number that may have a fraction (Go sends floats).
fn seconds(what: &str, raw: Option<f64>) -> Result<Option<i32>, ValidationError> {
    match raw {
        None => Ok(None),
        Some(v) if v.is_finite() && (0.0..=i32::MAX as f64).contains(&v) => Ok(Some(v as i32)),
        Some(v) => Err(ValidationError::Invalid(format!(
            "{what} must be a non-negative number of seconds, got {v}"
        ))),
    }
}

/// A count (`run_times`): like [`seconds`], and said as what it is.
fn count(what: &str, raw: Option<f64>) -> Result<Option<i32>, ValidationError> {
    seconds(what, raw).map_err(|_| {
        ValidationError::Invalid(format!(
            "{what} must be a non-negative number, got {}",
            raw.unwrap_or_default()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_defaults_follow_the_contract() {
        let t = new_task(
            "hello",
            b"{}".to_vec(),
            TaskOptions {
                priority: Some(-3.0),
                timeout: Some(0.0),
                delay: Some(1.7),
                cluster: Some(String::new()),
                label: None,
            },
        )
        .unwrap();
        assert_eq!(t.priority, None);
        assert_eq!(t.timeout, DEFAULT_TIMEOUT_SECS);
        assert_eq!(t.delay, 1);
        assert_eq!(t.cluster, "default");
    }

    #[test]
    fn oversized_payload_and_bad_numbers_are_refused() {
        let big = vec![b'x'; MAX_PAYLOAD_BYTES + 1];
        assert!(matches!(
            new_task("c", big, TaskOptions::default()),
            Err(ValidationError::TooLarge { .. })
        ));
        let neg = TaskOptions {
            delay: Some(-1.0),
            ..Default::default()
        };
        assert!(new_task("c", vec![], neg).is_err());
        let long = TaskOptions {
            timeout: Some(1e9),
            ..Default::default()
        };
        assert_eq!(
            new_task("c", vec![], long).unwrap().timeout,
            MAX_TIMEOUT_SECS
        );
    }

    #[test]
    fn code_limits_must_be_positive_and_above_dockers_floors() {
        let ok = CodeSpec {
            memory_mb: Some(MIN_MEMORY_MB),
            cpus: Some(0.5),
            pids: Some(1),
            disk_mb: Some(MIN_DISK_MB),
            ..Default::default()
        };
        assert_eq!(code_limits(&ok), Ok(()));
        assert_eq!(code_limits(&CodeSpec::default()), Ok(()));
        let bad = [
            (
                "memory_mb",
                CodeSpec {
                    memory_mb: Some(0),
                    ..ok.clone()
                },
            ),
            (
                "memory_mb",
                CodeSpec {
                    memory_mb: Some(-5),
                    ..ok.clone()
                },
            ),
            (
                "cpus",
                CodeSpec {
                    cpus: Some(0.0),
                    ..ok.clone()
                },
            ),
            (
                "cpus",
                CodeSpec {
                    cpus: Some(f64::INFINITY),
                    ..ok.clone()
                },
            ),
            (
                "pids",
                CodeSpec {
                    pids: Some(0),
                    ..ok.clone()
                },
            ),
            (
                "disk_mb",
                CodeSpec {
                    disk_mb: Some(MIN_DISK_MB - 1),
                    ..ok.clone()
                },
            ),
        ];
        for (field, spec) in bad {
            let err = code_limits(&spec).unwrap_err().to_string();
            assert!(err.starts_with(field), "{err}");
        }
    }

    #[test]
    fn run_every_under_a_minute_is_refused() {
        let now = Utc::now();
        let opts = ScheduleOptions {
            run_every: Some(59.0),
            ..Default::default()
        };
        assert!(new_schedule("c", b"{}".to_vec(), opts, now).is_err());
        let ok = ScheduleOptions {
            run_every: Some(60.0),
            run_times: Some(0.0),
            ..Default::default()
        };
        let s = new_schedule("c", b"{}".to_vec(), ok, now).unwrap();
        assert_eq!(
            (s.run_every, s.run_times, s.start_at),
            (Some(60), None, now)
        );
        let negative = ScheduleOptions {
            run_times: Some(-1.0),
            ..Default::default()
        };
        let err = new_schedule("c", b"{}".to_vec(), negative, now).unwrap_err();
        assert_eq!(
            err.to_string(),
            "run_times must be a non-negative number, got -1"
        );
    }

    /// Issue 15, finding 6: a cron with seconds cannot get around the minimum interval.
    #[test]
    fn cron_is_held_to_the_same_minimum_interval() {
        let now = Utc::now();
        let cron = |expr: &str, min: Option<u32>| {
            let opts = ScheduleOptions {
                cron: Some(expr.into()),
                min_interval_secs: min,
                ..Default::default()
            };
            new_schedule("c", b"{}".to_vec(), opts, now).map(|_| ())
        };
        let err = cron("* * * * * *", None).unwrap_err().to_string();
        assert_eq!(
            err,
            "cron fires as often as every 1 seconds; runs must be at least 60 seconds apart"
        );
        assert!(cron("*/30 * * * * *", None).is_err());
        // Dense only in part of the day: still refused.
        assert!(cron("0,10 0 * * * *", None).is_err());
        assert!(cron("* 3 * * *", None).is_ok(), "every minute of one hour");
        assert!(cron("*/5 * * * *", None).is_ok());
        assert!(cron("0 0 * * * *", None).is_ok());
        // An operator may allow seconds (`ferrum dev`), and raise the floor.
        assert!(cron("* * * * * *", Some(1)).is_ok());
        assert!(cron("*/5 * * * *", Some(600)).is_err());
        let every = |secs: f64, min: Option<u32>| {
            let opts = ScheduleOptions {
                run_every: Some(secs),
                min_interval_secs: min,
                ..Default::default()
            };
            new_schedule("c", b"{}".to_vec(), opts, now).map(|_| ())
        };
        assert!(every(5.0, Some(1)).is_ok());
        let err = every(300.0, Some(600)).unwrap_err().to_string();
        assert_eq!(err, "run_every must be at least 600 seconds");
    }
}
