//! The JSON shapes of codes, revisions, tasks, schedules and projects (contract §4).
//!
//! Each shape is a struct, so the rules the clients depend on hold by construction:
//! - timestamps are RFC 3339 strings, with `0001-01-01T00:00:00Z` for unset, never integers
//!   or `null` (Python crashes on an integer `latest_change`, Ruby on a `null` time);
//! - a task never has a key that Python takes for a schedule marker (`start_at`, `end_at`,
//!   `next_start`, `last_run_time`, `run_count`, `run_every`), not even as `null`, and a
//!   schedule always has all of them;
//! - `code_rev` is a string, `duration` an integer of milliseconds, `timeout` always a number.

use std::collections::BTreeMap;

use ferrum_model::time::{format, format_opt};
use ferrum_model::{Code, CodeRevision, CodeSpec, Id, Project, Schedule, Task};
use serde::Serialize;

/// A message-only answer, e.g. `{"msg":"Cancelled"}`.
#[derive(Serialize)]
pub struct Msg {
    pub msg: String,
}

impl Msg {
    pub fn new(msg: impl Into<String>) -> Self {
        Msg { msg: msg.into() }
    }
}

/// One created object in a `tasks` / `schedules` list answer.
#[derive(Serialize)]
pub struct Created {
    pub id: Id,
}

/// The options shared by codes and revisions (§4.1, §4.2).
#[derive(Serialize)]
pub struct SpecJson {
    #[serde(skip_serializing_if = "Option::is_none")]
    runtime: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stack: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    file_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    image: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    command: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    config: Option<String>,
    env_vars: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_concurrency: Option<i32>,
    retries: i32,
    retries_delay: i32,
    /// The upload field's name; DOC calls the same value `priority` on the object, so both.
    default_priority: i32,
    priority: i32,
    /// Ferrum's resource settings, only when the code sets them.
    #[serde(skip_serializing_if = "Option::is_none")]
    memory_mb: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cpus: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pids: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    disk_mb: Option<i32>,
}

impl From<&CodeSpec> for SpecJson {
    fn from(s: &CodeSpec) -> Self {
        SpecJson {
            runtime: s.runtime.clone(),
            stack: s.stack.clone(),
            file_name: s.file_name.clone(),
            image: s.image.clone(),
            command: s.command.clone(),
            config: s.config.clone(),
            env_vars: s.env_vars.clone(),
            max_concurrency: s.max_concurrency,
            retries: s.retries,
            retries_delay: s.retries_delay,
            default_priority: s.default_priority,
            priority: s.default_priority,
            memory_mb: s.memory_mb,
            cpus: s.cpus,
            pids: s.pids,
            disk_mb: s.disk_mb,
        }
    }
}

/// A code (C1 elements, C3).
#[derive(Serialize)]
pub struct CodeJson {
    id: Id,
    project_id: Id,
    name: String,
    created_at: String,
    updated_at: String,
    rev: i32,
    latest_history_id: Id,
    latest_change: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    latest_checksum: Option<String>,
    /// Ferrum's addition: whether `pause_task_queue` holds the code's tasks.
    paused: bool,
    #[serde(flatten)]
    spec: SpecJson,
}

impl From<&Code> for CodeJson {
    fn from(c: &Code) -> Self {
        CodeJson {
            id: c.id,
            project_id: c.project_id,
            name: c.name.clone(),
            created_at: format(c.created_at),
            updated_at: format(c.updated_at),
            rev: c.latest.rev,
            latest_history_id: c.latest.id,
            latest_change: format(c.latest.created_at),
            latest_checksum: c.latest.zip.as_ref().map(|z| z.checksum.clone()),
            paused: c.paused,
            spec: SpecJson::from(&c.latest.spec),
        }
    }
}

/// A code revision (C5 elements). No `files` or `zip_path` keys: they would overwrite the
/// Python client's own attributes.
#[derive(Serialize)]
pub struct RevisionJson {
    id: Id,
    code_id: Id,
    project_id: Id,
    name: String,
    rev: i32,
    created_at: String,
    updated_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    checksum: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    code_size: Option<i64>,
    #[serde(flatten)]
    spec: SpecJson,
}

impl From<&CodeRevision> for RevisionJson {
    fn from(r: &CodeRevision) -> Self {
        RevisionJson {
            id: r.id,
            code_id: r.code_id,
            project_id: r.project_id,
            name: r.name.clone(),
            rev: r.rev,
            created_at: format(r.created_at),
            updated_at: format(r.created_at),
            checksum: r.zip.as_ref().map(|z| z.checksum.clone()),
            code_size: r.zip.as_ref().map(|z| z.size),
            spec: SpecJson::from(&r.spec),
        }
    }
}

/// A task (T1 elements, T4). See the module docs for the keys it must never have.
#[derive(Serialize)]
pub struct TaskJson {
    id: Id,
    project_id: Id,
    code_id: Id,
    code_name: String,
    code_history_id: Id,
    code_rev: String,
    status: &'static str,
    created_at: String,
    updated_at: String,
    start_time: String,
    end_time: String,
    duration: i64,
    timeout: i32,
    priority: i32,
    delay: i32,
    payload: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    msg: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    percent: Option<i32>,
    cluster: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    label: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    schedule_id: Option<Id>,
    #[serde(skip_serializing_if = "Option::is_none")]
    original_task_id: Option<Id>,
    #[serde(skip_serializing_if = "Option::is_none")]
    batch_id: Option<Id>,
    #[serde(skip_serializing_if = "Option::is_none")]
    batch_index: Option<i32>,
    retry_count: i32,
    log_size: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_class: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    exit_code: Option<i32>,
    /// The task that queued this one with its task token.
    #[serde(skip_serializing_if = "Option::is_none")]
    parent_id: Option<Id>,
    /// Bytes of the task's result; 0 when it returned none.
    result_size: i64,
}

impl From<&Task> for TaskJson {
    fn from(t: &Task) -> Self {
        TaskJson {
            id: t.id,
            project_id: t.project_id,
            code_id: t.code_id,
            code_name: t.code_name.clone(),
            code_history_id: t.code_revision_id,
            code_rev: t.code_rev.to_string(),
            status: t.status.as_str(),
            created_at: format(t.created_at),
            updated_at: format(t.updated_at),
            start_time: format_opt(t.start_time),
            end_time: format_opt(t.end_time),
            duration: t.duration_ms(),
            timeout: t.timeout,
            priority: t.priority,
            delay: t.delay,
            payload: String::from_utf8_lossy(&t.payload).into_owned(),
            msg: t.msg.clone(),
            percent: t.percent,
            cluster: t.cluster.clone(),
            label: t.label.clone(),
            schedule_id: t.origin.schedule_id,
            original_task_id: t.origin.original_task_id,
            batch_id: t.origin.batch_id,
            batch_index: t.origin.batch_index,
            retry_count: t.origin.retry_count,
            log_size: t.log_size,
            error_class: t.error_class.clone(),
            exit_code: t.exit_code,
            parent_id: t.origin.parent_id,
            result_size: t.result_size.unwrap_or(0),
        }
    }
}

/// A schedule (S1 elements, S3). Every schedule-marker key is always present.
#[derive(Serialize)]
pub struct ScheduleJson {
    id: Id,
    project_id: Id,
    code_name: String,
    created_at: String,
    updated_at: String,
    payload: String,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    msg: Option<String>,
    start_at: String,
    end_at: String,
    next_start: String,
    last_run_time: String,
    run_every: i32,
    run_times: i32,
    run_count: i32,
    priority: i32,
    timeout: i32,
    /// DOC's field list says `task_delay`, its sample `delay`: both, same value (§8.9).
    task_delay: i32,
    delay: i32,
    cluster: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    label: Option<String>,
    /// Ferrum's additions: the cron expression and its zone (absent for `run_every`
    /// schedules), the misfire policy, whether it is paused, and its next fire times.
    #[serde(skip_serializing_if = "Option::is_none")]
    cron: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    timezone: Option<String>,
    misfire: &'static str,
    paused: bool,
    next_fire_times: Vec<String>,
}

/// How many upcoming fire times a schedule object lists.
const NEXT_FIRE_TIMES: usize = 5;

impl From<&Schedule> for ScheduleJson {
    fn from(s: &Schedule) -> Self {
        ScheduleJson {
            id: s.id,
            project_id: s.project_id,
            code_name: s.code_name.clone(),
            created_at: format(s.created_at),
            updated_at: format(s.updated_at),
            payload: String::from_utf8_lossy(&s.payload).into_owned(),
            status: s.status.as_str(),
            msg: s.msg.clone(),
            start_at: format(s.start_at),
            end_at: format_opt(s.end_at),
            next_start: format_opt(s.next_start),
            last_run_time: format_opt(s.last_run_time),
            run_every: s.run_every.unwrap_or(0),
            run_times: s.run_times.unwrap_or(0),
            run_count: s.run_count,
            priority: s.priority,
            timeout: s.timeout,
            task_delay: s.task_delay,
            delay: s.task_delay,
            cluster: s.cluster.clone(),
            label: s.label.clone(),
            cron: s.cron.clone(),
            timezone: s
                .cron
                .as_ref()
                .map(|_| s.timezone.clone().unwrap_or_else(|| "UTC".to_owned())),
            misfire: s.misfire.as_str(),
            paused: s.paused,
            next_fire_times: s
                .next_fire_times(NEXT_FIRE_TIMES)
                .into_iter()
                .map(format)
                .collect(),
        }
    }
}

/// A project (P1, P2 elements).
#[derive(Serialize)]
pub struct ProjectJson {
    id: Id,
    name: String,
    owner_id: Id,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_concurrency: Option<i32>,
    created_at: String,
}

impl From<&Project> for ProjectJson {
    fn from(p: &Project) -> Self {
        ProjectJson {
            id: p.id,
            name: p.name.clone(),
            owner_id: p.owner_id,
            max_concurrency: p.max_concurrency,
            created_at: format(p.created_at),
        }
    }
}
