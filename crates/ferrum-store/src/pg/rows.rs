//! Turning rows into model records. Column lists live next to the mapping that reads them, so
//! a query and its decoder cannot drift apart.

use std::collections::BTreeMap;

use ferrum_model::code::ZipInfo;
use ferrum_model::{
    Code, CodeRevision, CodeSpec, Id, Project, Schedule, ScheduleStatus, Task, TaskOrigin,
};
use sqlx::postgres::PgRow;
use sqlx::Row;

use crate::{StoreError, StoreResult};

pub(crate) fn id(row: &PgRow, col: &str) -> StoreResult<Id> {
    let text: String = row.try_get(col)?;
    text.parse()
        .map_err(|e| StoreError::Corrupt(format!("{col}: {e}")))
}

pub(crate) fn opt_id(row: &PgRow, col: &str) -> StoreResult<Option<Id>> {
    let text: Option<String> = row.try_get(col)?;
    text.map(|t| t.parse())
        .transpose()
        .map_err(|e| StoreError::Corrupt(format!("{col}: {e}")))
}

pub(crate) fn project(row: &PgRow) -> StoreResult<Project> {
    Ok(Project {
        id: id(row, "id")?,
        name: row.try_get("name")?,
        owner_id: id(row, "owner_id")?,
        max_concurrency: row.try_get("max_concurrency")?,
        created_at: row.try_get("created_at")?,
    })
}

/// Columns of `code_revisions` aliased `r`, as [`revision`] reads them.
pub(crate) const REVISION_COLUMNS: &str = "r.id AS r_id, r.code_id AS r_code_id, \
    r.project_id AS r_project_id, r.rev AS r_rev, r.runtime, r.stack, r.file_name, r.image, \
    r.command, r.config, r.env_vars, r.max_concurrency AS r_max_concurrency, r.retries, \
    r.retries_delay, r.default_priority, r.zip_key, r.zip_checksum, r.zip_size, \
    r.created_at AS r_created_at";

/// Reads a revision selected with [`REVISION_COLUMNS`] and the code's name as `name`.
pub(crate) fn revision(row: &PgRow) -> StoreResult<CodeRevision> {
    let env: serde_json::Value = row.try_get("env_vars")?;
    let env_vars: BTreeMap<String, String> =
        serde_json::from_value(env).map_err(|e| StoreError::Corrupt(format!("env_vars: {e}")))?;
    let zip_key: Option<String> = row.try_get("zip_key")?;
    let zip = match zip_key {
        Some(key) => Some(ZipInfo {
            key,
            checksum: row
                .try_get::<Option<String>, _>("zip_checksum")?
                .unwrap_or_default(),
            size: row
                .try_get::<Option<i64>, _>("zip_size")?
                .unwrap_or_default(),
        }),
        None => None,
    };
    Ok(CodeRevision {
        id: id(row, "r_id")?,
        code_id: id(row, "r_code_id")?,
        project_id: id(row, "r_project_id")?,
        name: row.try_get("name")?,
        rev: row.try_get("r_rev")?,
        spec: CodeSpec {
            runtime: row.try_get("runtime")?,
            stack: row.try_get("stack")?,
            file_name: row.try_get("file_name")?,
            image: row.try_get("image")?,
            command: row.try_get("command")?,
            config: row.try_get("config")?,
            env_vars,
            max_concurrency: row.try_get("r_max_concurrency")?,
            retries: row.try_get("retries")?,
            retries_delay: row.try_get("retries_delay")?,
            default_priority: row.try_get("default_priority")?,
        },
        zip,
        created_at: row.try_get("r_created_at")?,
    })
}

/// `SELECT` of a code joined with its latest revision, as [`code`] reads it.
pub(crate) fn code_select() -> String {
    format!(
        "SELECT c.id, c.project_id, c.name, c.paused, c.created_at, c.updated_at, \
         {REVISION_COLUMNS} FROM codes c JOIN code_revisions r ON r.id = c.latest_revision_id"
    )
}

pub(crate) fn code(row: &PgRow) -> StoreResult<Code> {
    Ok(Code {
        id: id(row, "id")?,
        project_id: id(row, "project_id")?,
        name: row.try_get("name")?,
        paused: row.try_get("paused")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        latest: revision(row)?,
    })
}

/// Reads a whole `tasks` row.
pub(crate) fn task(row: &PgRow) -> StoreResult<Task> {
    let status: String = row.try_get("status")?;
    Ok(Task {
        id: id(row, "id")?,
        project_id: id(row, "project_id")?,
        code_id: id(row, "code_id")?,
        code_name: row.try_get("code_name")?,
        code_revision_id: id(row, "code_revision_id")?,
        code_rev: row.try_get("code_rev")?,
        status: status
            .parse()
            .map_err(|e| StoreError::Corrupt(format!("{e}")))?,
        priority: i32::from(row.try_get::<i16, _>("priority")?),
        payload: row.try_get("payload")?,
        timeout: row.try_get("timeout")?,
        delay: row.try_get("delay")?,
        cluster: row.try_get("cluster")?,
        label: row.try_get("label")?,
        origin: TaskOrigin {
            schedule_id: opt_id(row, "schedule_id")?,
            batch_id: opt_id(row, "batch_id")?,
            original_task_id: opt_id(row, "original_task_id")?,
            retry_count: row.try_get("retry_count")?,
        },
        msg: row.try_get("msg")?,
        percent: row.try_get("percent")?,
        exit_code: row.try_get("exit_code")?,
        error_class: row.try_get("error_class")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        run_at: row.try_get("run_at")?,
        start_time: row.try_get("start_time")?,
        end_time: row.try_get("end_time")?,
        log_size: row.try_get("log_size")?,
        attempt: row.try_get("attempt")?,
        cancel_requested: row.try_get("cancel_requested")?,
    })
}

/// Reads a whole `schedules` row.
pub(crate) fn schedule(row: &PgRow) -> StoreResult<Schedule> {
    let status: String = row.try_get("status")?;
    Ok(Schedule {
        id: id(row, "id")?,
        project_id: id(row, "project_id")?,
        code_name: row.try_get("code_name")?,
        payload: row.try_get("payload")?,
        status: ScheduleStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("schedule status {status:?}")))?,
        msg: row.try_get("msg")?,
        start_at: row.try_get("start_at")?,
        end_at: row.try_get("end_at")?,
        next_start: row.try_get("next_start")?,
        last_run_time: row.try_get("last_run_time")?,
        run_every: row.try_get("run_every")?,
        run_times: row.try_get("run_times")?,
        run_count: row.try_get("run_count")?,
        priority: row.try_get("priority")?,
        timeout: row.try_get("timeout")?,
        task_delay: row.try_get("task_delay")?,
        cluster: row.try_get("cluster")?,
        label: row.try_get("label")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}
