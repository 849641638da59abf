//! Turning rows into model records, for every backend. Column lists live next to the mapping
//! that reads them, so a query and its decoder cannot drift apart.
//!
//! Both schemas use the same table and column names; they differ only in how some values are
//! stored (Postgres `timestamptz`, `jsonb` and `smallint`; SQLite integer microseconds, JSON
//! text and plain integers). [`Cols`] hides exactly that difference, so the mapping itself is
//! written once.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use ferrum_model::code::ZipInfo;
use ferrum_model::recurrence::MisfirePolicy;
use ferrum_model::{
    Code, CodeRevision, CodeSpec, Id, NewTask, Project, Schedule, ScheduleStatus, SignatureScheme,
    Task, TaskOrigin, Webhook,
};

use crate::{LeasedTask, StoreError, StoreResult};

/// Typed column access on a backend's row type.
pub(crate) trait Cols {
    fn text(&self, col: &str) -> StoreResult<String>;
    fn opt_text(&self, col: &str) -> StoreResult<Option<String>>;
    fn int(&self, col: &str) -> StoreResult<i32>;
    fn opt_int(&self, col: &str) -> StoreResult<Option<i32>>;
    /// A `smallint` in Postgres (the task priority), a plain integer elsewhere.
    fn small(&self, col: &str) -> StoreResult<i32>;
    fn big(&self, col: &str) -> StoreResult<i64>;
    fn opt_big(&self, col: &str) -> StoreResult<Option<i64>>;
    fn opt_float(&self, col: &str) -> StoreResult<Option<f64>>;
    fn flag(&self, col: &str) -> StoreResult<bool>;
    fn bytes(&self, col: &str) -> StoreResult<Vec<u8>>;
    fn opt_bytes(&self, col: &str) -> StoreResult<Option<Vec<u8>>>;
    fn time(&self, col: &str) -> StoreResult<DateTime<Utc>>;
    fn opt_time(&self, col: &str) -> StoreResult<Option<DateTime<Utc>>>;
    /// A JSON document (`jsonb` in Postgres, text in SQLite).
    fn json(&self, col: &str) -> StoreResult<serde_json::Value>;
}

/// The [`Cols`] methods whose values both drivers decode alike (text, integers, floats,
/// flags, bytes), for a backend's `impl Cols`: the same body for two row types.
macro_rules! cols_decoded_alike {
    () => {
        $crate::rows::cols_decoded_alike! {
            text -> String,
            opt_text -> Option<String>,
            int -> i32,
            opt_int -> Option<i32>,
            big -> i64,
            opt_big -> Option<i64>,
            opt_float -> Option<f64>,
            flag -> bool,
            bytes -> Vec<u8>,
            opt_bytes -> Option<Vec<u8>>,
        }
    };
    ($($name:ident -> $t:ty),* $(,)?) => {
        $(fn $name(&self, col: &str) -> $crate::StoreResult<$t> {
            Ok(sqlx::Row::try_get(self, col)?)
        })*
    };
}
pub(crate) use cols_decoded_alike;

pub(crate) fn id(row: &impl Cols, col: &str) -> StoreResult<Id> {
    row.text(col)?
        .parse()
        .map_err(|e| StoreError::Corrupt(format!("{col}: {e}")))
}

pub(crate) fn opt_id(row: &impl Cols, col: &str) -> StoreResult<Option<Id>> {
    row.opt_text(col)?
        .map(|t| t.parse())
        .transpose()
        .map_err(|e| StoreError::Corrupt(format!("{col}: {e}")))
}

pub(crate) fn status<T: std::str::FromStr>(row: &impl Cols, col: &str) -> StoreResult<T>
where
    T::Err: std::fmt::Display,
{
    row.text(col)?
        .parse()
        .map_err(|e| StoreError::Corrupt(format!("{col}: {e}")))
}

pub(crate) fn project(row: &impl Cols) -> StoreResult<Project> {
    Ok(Project {
        id: id(row, "id")?,
        name: row.text("name")?,
        owner_id: id(row, "owner_id")?,
        max_concurrency: row.opt_int("max_concurrency")?,
        created_at: row.time("created_at")?,
    })
}

/// Columns of `code_revisions` aliased `r`, as [`revision`] reads them.
pub(crate) const REVISION_COLUMNS: &str = "r.id AS r_id, r.code_id AS r_code_id, \
    r.project_id AS r_project_id, r.rev AS r_rev, r.runtime, r.stack, r.file_name, r.image, \
    r.command, r.config, r.env_vars, r.max_concurrency AS r_max_concurrency, r.retries, \
    r.retries_delay, r.default_priority, r.memory_mb, r.cpus, r.pids, r.disk_mb, r.zip_key, \
    r.zip_checksum, r.zip_size, r.created_at AS r_created_at";

/// Reads a revision selected with [`REVISION_COLUMNS`] and the code's name as `name`.
pub(crate) fn revision(row: &impl Cols) -> StoreResult<CodeRevision> {
    let env_vars: BTreeMap<String, String> = serde_json::from_value(row.json("env_vars")?)
        .map_err(|e| StoreError::Corrupt(format!("env_vars: {e}")))?;
    let zip = match row.opt_text("zip_key")? {
        Some(key) => Some(ZipInfo {
            key,
            checksum: row.opt_text("zip_checksum")?.unwrap_or_default(),
            size: row.opt_big("zip_size")?.unwrap_or_default(),
        }),
        None => None,
    };
    Ok(CodeRevision {
        id: id(row, "r_id")?,
        code_id: id(row, "r_code_id")?,
        project_id: id(row, "r_project_id")?,
        name: row.text("name")?,
        rev: row.int("r_rev")?,
        spec: CodeSpec {
            runtime: row.opt_text("runtime")?,
            stack: row.opt_text("stack")?,
            file_name: row.opt_text("file_name")?,
            image: row.opt_text("image")?,
            command: row.opt_text("command")?,
            config: row.opt_text("config")?,
            env_vars,
            max_concurrency: row.opt_int("r_max_concurrency")?,
            retries: row.int("retries")?,
            retries_delay: row.int("retries_delay")?,
            default_priority: row.int("default_priority")?,
            memory_mb: row.opt_int("memory_mb")?,
            cpus: row.opt_float("cpus")?,
            pids: row.opt_int("pids")?,
            disk_mb: row.opt_int("disk_mb")?,
        },
        zip,
        created_at: row.time("r_created_at")?,
    })
}

/// `SELECT` of a code joined with its latest revision, as [`code`] reads it.
pub(crate) fn code_select() -> String {
    format!(
        "SELECT c.id, c.project_id, c.name, c.paused, c.created_at, c.updated_at, \
         {REVISION_COLUMNS} FROM codes c JOIN code_revisions r ON r.id = c.latest_revision_id"
    )
}

pub(crate) fn code(row: &impl Cols) -> StoreResult<Code> {
    Ok(Code {
        id: id(row, "id")?,
        project_id: id(row, "project_id")?,
        name: row.text("name")?,
        paused: row.flag("paused")?,
        created_at: row.time("created_at")?,
        updated_at: row.time("updated_at")?,
        latest: revision(row)?,
    })
}

/// Reads a whole `tasks` row.
pub(crate) fn task(row: &impl Cols) -> StoreResult<Task> {
    Ok(Task {
        id: id(row, "id")?,
        project_id: id(row, "project_id")?,
        code_id: id(row, "code_id")?,
        code_name: row.text("code_name")?,
        code_revision_id: id(row, "code_revision_id")?,
        code_rev: row.int("code_rev")?,
        status: status(row, "status")?,
        priority: row.small("priority")?,
        payload: row.bytes("payload")?,
        timeout: row.int("timeout")?,
        delay: row.int("delay")?,
        cluster: row.text("cluster")?,
        label: row.opt_text("label")?,
        origin: TaskOrigin {
            schedule_id: opt_id(row, "schedule_id")?,
            batch_id: opt_id(row, "batch_id")?,
            batch_index: row.opt_int("batch_index")?,
            original_task_id: opt_id(row, "original_task_id")?,
            retry_count: row.int("retry_count")?,
            parent_id: opt_id(row, "parent_id")?,
        },
        msg: row.opt_text("msg")?,
        percent: row.opt_int("percent")?,
        exit_code: row.opt_int("exit_code")?,
        error_class: row.opt_text("error_class")?,
        created_at: row.time("created_at")?,
        updated_at: row.time("updated_at")?,
        run_at: row.time("run_at")?,
        start_time: row.opt_time("start_time")?,
        end_time: row.opt_time("end_time")?,
        log_size: row.big("log_size")?,
        attempt: row.int("attempt")?,
        cancel_requested: row.flag("cancel_requested")?,
        result_size: row.opt_big("result_size")?,
    })
}

/// Reads a leased task from a lease's answer: the columns [`LEASED_TASK_COLUMNS`] of its
/// `tasks` row, and `attempt`: the lease's attempt.
pub(crate) fn leased_task(row: &impl Cols, revision: CodeRevision) -> StoreResult<LeasedTask> {
    Ok(LeasedTask {
        id: id(row, "id")?,
        project_id: id(row, "project_id")?,
        attempt: row.int("attempt")?,
        priority: row.small("priority")?,
        run_at: row.time("run_at")?,
        timeout: row.int("timeout")?,
        payload: row.bytes("payload")?,
        schedule_id: opt_id(row, "schedule_id")?,
        batch_id: opt_id(row, "batch_id")?,
        batch_index: row.opt_int("batch_index")?,
        revision,
    })
}

/// The `tasks` columns a lease answers besides the lease's attempt: [`LeasedTask`]'s fields,
/// and the revision to look up. Unqualified, as SQLite's `RETURNING` wants them: a Postgres
/// query that joins `tasks` must not have these names elsewhere in its `FROM`.
pub(crate) const LEASED_TASK_COLUMNS: &str =
    "id, project_id, priority, run_at, timeout, payload, schedule_id, code_revision_id, \
     batch_id, batch_index";

/// Reads a whole `schedules` row.
pub(crate) fn schedule(row: &impl Cols) -> StoreResult<Schedule> {
    let status = row.text("status")?;
    Ok(Schedule {
        id: id(row, "id")?,
        project_id: id(row, "project_id")?,
        code_name: row.text("code_name")?,
        payload: row.bytes("payload")?,
        status: ScheduleStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("schedule status {status:?}")))?,
        msg: row.opt_text("msg")?,
        start_at: row.time("start_at")?,
        end_at: row.opt_time("end_at")?,
        next_start: row.opt_time("next_start")?,
        last_run_time: row.opt_time("last_run_time")?,
        run_every: row.opt_int("run_every")?,
        run_times: row.opt_int("run_times")?,
        run_count: row.int("run_count")?,
        cron: row.opt_text("cron")?,
        timezone: row.opt_text("timezone")?,
        misfire: MisfirePolicy::parse(&row.text("misfire")?)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?,
        paused: row.flag("paused")?,
        priority: row.int("priority")?,
        timeout: row.int("timeout")?,
        task_delay: row.int("task_delay")?,
        cluster: row.text("cluster")?,
        label: row.opt_text("label")?,
        created_at: row.time("created_at")?,
        updated_at: row.time("updated_at")?,
    })
}

/// Reads a `webhooks` row joined with its code's name as `code_name`.
pub(crate) fn webhook(row: &impl Cols) -> StoreResult<Webhook> {
    let code_name = row.text("code_name")?;
    Ok(Webhook {
        id: id(row, "id")?,
        project_id: id(row, "project_id")?,
        code_id: id(row, "code_id")?,
        signature: row
            .opt_text("signature")?
            .map(|s| SignatureScheme::parse(&s))
            .transpose()
            .map_err(|e| StoreError::Corrupt(e.to_string()))?,
        secret: row.opt_text("secret")?,
        sync_timeout: row.int("sync_timeout")?,
        task: NewTask {
            code_name: code_name.clone(),
            payload: Vec::new(),
            priority: row.opt_int("priority")?,
            timeout: row.int("timeout")?,
            delay: row.int("delay")?,
            cluster: row.text("cluster")?,
            label: row.opt_text("label")?,
            origin: TaskOrigin::default(),
        },
        code_name,
        created_at: row.time("created_at")?,
    })
}

/// The runner token columns both backends select: `id, cluster, created_at, last_used_at,
/// revoked_at`.
pub(crate) const RUNNER_TOKEN_COLUMNS: &str = "id, cluster, created_at, last_used_at, revoked_at";

pub(crate) fn runner_token(row: &impl Cols) -> StoreResult<crate::RunnerToken> {
    Ok(crate::RunnerToken {
        id: id(row, "id")?,
        cluster: row.text("cluster")?,
        created_at: row.time("created_at")?,
        last_used_at: row.opt_time("last_used_at")?,
        revoked_at: row.opt_time("revoked_at")?,
    })
}

pub(crate) fn runner_identity(row: &impl Cols) -> StoreResult<crate::RunnerIdentity> {
    Ok(crate::RunnerIdentity {
        runner_id: id(row, "id")?,
        cluster: row.text("cluster")?,
        draining: row.flag("draining")?,
    })
}
