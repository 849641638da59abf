//! Task routes (contract §3.3 T1, T2, T4, T7–T9). Logs (T5, T6) are in [`super::logs`], the
//! webhook (T3) in [`super::webhooks`].

use std::collections::HashMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use ferrum_model::limits::{self, MAX_DELAY_SECS};
use ferrum_model::validation::{new_task, TaskOptions};
use ferrum_model::{Id, NewTask, Page, Task, TaskFilter, TaskStatus};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::auth::ProjectScope;
use super::extract::{payload_bytes, unix_time, whole, LenientJson, QueryArgs, TaskId};
use super::render::{Created, Msg, TaskJson};
use super::task_auth::{MaybeTaskCaller, TaskCaller};
use super::Route;
use crate::openapi::bodies;
use crate::{ApiError, AppState};

pub fn routes() -> Vec<Route> {
    vec![
        Route::get(
            "/2/projects/{project_id}/tasks",
            "List tasks, newest first (filters: code_name, status flags such as queued=1, from_time, to_time, cluster, label, schedule_id, parent_id, batch_id)",
            list,
        )
        .query(bodies::task_filters()),
        Route::post(
            "/2/projects/{project_id}/tasks",
            "Queue tasks: {\"tasks\":[{\"code_name\",\"payload\",…}]}",
            queue,
        )
        .body(bodies::tasks())
        .errors(&[429]),
        Route::get("/2/projects/{project_id}/tasks/{task_id}", "Get a task", get_task),
        Route::post(
            "/2/projects/{project_id}/tasks/{task_id}/cancel",
            "Cancel a task",
            cancel,
        ),
        Route::post(
            "/2/projects/{project_id}/tasks/{task_id}/progress",
            "Set a task's percent and msg",
            progress,
        )
        .body(bodies::progress()),
        Route::post(
            "/2/projects/{project_id}/tasks/{task_id}/retry",
            "Queue a copy of a task after {\"delay\"} seconds",
            retry,
        )
        .body(bodies::retry()),
    ]
}

/// The task options of T2 elements and S2 elements.
#[derive(Deserialize, Default)]
pub struct TaskFields {
    pub priority: Option<f64>,
    pub timeout: Option<f64>,
    pub delay: Option<f64>,
    pub cluster: Option<String>,
    pub label: Option<String>,
}

impl From<TaskFields> for TaskOptions {
    fn from(f: TaskFields) -> Self {
        TaskOptions {
            priority: f.priority,
            timeout: f.timeout,
            delay: f.delay,
            cluster: f.cluster,
            label: f.label,
        }
    }
}

/// Names the element of a list body that failed, e.g. `tasks[2]: code_name is required`.
pub fn in_element(list: &str, index: usize, e: impl Into<ApiError>) -> ApiError {
    let mut err = e.into();
    err.msg = format!("{list}[{index}]: {}", err.msg);
    err
}

/// The task, or 404.
pub async fn find_task(state: &AppState, project: Id, id: Id) -> Result<Task, ApiError> {
    state
        .store
        .task(project, id)
        .await?
        .ok_or_else(|| ApiError::not_found("Task not found"))
}

#[derive(Deserialize)]
struct ListArgs {
    page: Option<u32>,
    per_page: Option<u32>,
    code_name: Option<String>,
    from_time: Option<i64>,
    to_time: Option<i64>,
    cluster: Option<String>,
    label: Option<String>,
    schedule_id: Option<String>,
    parent_id: Option<String>,
    batch_id: Option<String>,
    /// Keyset paging: the `next_cursor` of the previous page.
    cursor: Option<String>,
}

#[derive(Serialize)]
struct TaskList {
    tasks: Vec<TaskJson>,
    /// Pass as `cursor` for the next page; absent on the last page. Cheaper than `page`
    /// deep in a long list (the next page starts inside the index, nothing is skipped).
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
}

/// Status flags (`queued=1&running=1…`) are OR-ed; none means every status.
async fn list(
    ProjectScope(project): ProjectScope,
    MaybeTaskCaller(task_caller): MaybeTaskCaller,
    State(state): State<AppState>,
    QueryArgs(args): QueryArgs<ListArgs>,
    QueryArgs(flags): QueryArgs<HashMap<String, String>>,
) -> Result<Json<TaskList>, ApiError> {
    let enabled = |v: &String| v == "1" || v.eq_ignore_ascii_case("true");
    let filter = TaskFilter {
        code_name: args.code_name.filter(|n| !n.is_empty()),
        statuses: TaskStatus::ALL
            .into_iter()
            .filter(|s| flags.get(s.as_str()).is_some_and(enabled))
            .collect(),
        from_time: args
            .from_time
            .map(|t| unix_time("from_time", t))
            .transpose()?,
        to_time: args.to_time.map(|t| unix_time("to_time", t)).transpose()?,
        cluster: args.cluster.filter(|c| !c.is_empty()),
        label: args.label.filter(|l| !l.is_empty()),
        schedule_id: args
            .schedule_id
            .map(|s| s.parse::<Id>())
            .transpose()
            .map_err(|e| ApiError::bad_request(format!("schedule_id: {e}")))?,
        // A task token lists only its own task's children, whatever it asks for.
        parent_id: match task_caller {
            Some(caller) => Some(caller.grant.task_id),
            None => optional_id("parent_id", args.parent_id)?,
        },
        batch_id: optional_id("batch_id", args.batch_id)?,
        before: optional_id("cursor", args.cursor)?,
        page: Page::new(args.page, args.per_page),
    };
    let tasks = state.store.tasks(project.id, &filter).await?;
    let full = tasks.len() == filter.page.limit() as usize;
    Ok(Json(TaskList {
        next_cursor: tasks.last().filter(|_| full).map(|t| t.id.to_string()),
        tasks: tasks.iter().map(TaskJson::from).collect(),
    }))
}

/// An optional id query argument; empty means absent, anything else must be an id.
fn optional_id(field: &str, v: Option<String>) -> Result<Option<Id>, ApiError> {
    v.filter(|s| !s.is_empty())
        .map(|s| s.parse::<Id>())
        .transpose()
        .map_err(|e| ApiError::bad_request(format!("{field}: {e}")))
}

#[derive(Deserialize)]
struct QueueBody {
    tasks: Option<Vec<TaskInput>>,
}

/// One T2 element. `name` and `sync` are sent by Python and ignored, like any unknown key.
#[derive(Deserialize)]
struct TaskInput {
    code_name: Option<String>,
    payload: Option<Value>,
    #[serde(flatten)]
    fields: TaskFields,
}

#[derive(Serialize)]
struct Queued {
    msg: &'static str,
    tasks: Vec<Created>,
}

/// Enqueues validated tasks all-or-nothing and wakes waiting runners.
async fn enqueue(state: &AppState, project: Id, tasks: Vec<NewTask>) -> Result<Vec<Id>, ApiError> {
    let ids = state.store.enqueue(project, tasks).await?;
    crate::ops::count_created(state, crate::ops::metrics::Source::api, project, ids.len());
    state.queue.wake();
    Ok(ids)
}

/// Answers one `{"id"}` per input task, in input order (contract §3.3 T2).
async fn queue(
    ProjectScope(project): ProjectScope,
    MaybeTaskCaller(task_caller): MaybeTaskCaller,
    State(state): State<AppState>,
    LenientJson(body): LenientJson<QueueBody>,
) -> Result<Json<Queued>, ApiError> {
    let inputs = body.tasks.unwrap_or_default();
    if inputs.is_empty() {
        return Err(ApiError::bad_request("tasks must hold at least one task"));
    }
    let tasks = inputs
        .into_iter()
        .enumerate()
        .map(|(i, t)| {
            let code_name = t.code_name.unwrap_or_default();
            new_task(&code_name, payload_bytes(t.payload), t.fields.into())
                .map_err(|e| in_element("tasks", i, e))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let tasks = match task_caller {
        Some(caller) => children_of(&state, &caller, tasks).await?,
        None => tasks,
    };
    let ids = enqueue(&state, project.id, tasks).await?;
    Ok(Json(Queued {
        msg: "Queued up",
        tasks: ids.into_iter().map(|id| Created { id }).collect(),
    }))
}

/// Tasks queued with a task token become its task's children, within the runaway guard:
/// no deeper than `max_task_depth` (403), at most `max_children_per_task` per attempt (429).
pub async fn children_of(
    state: &AppState,
    caller: &TaskCaller,
    mut tasks: Vec<NewTask>,
) -> Result<Vec<NewTask>, ApiError> {
    let parent = spawn(state, caller, tasks.len()).await?;
    for t in &mut tasks {
        t.origin.parent_id = Some(parent);
    }
    Ok(tasks)
}

/// Lets the caller's task queue `n` more children, within the runaway guard; answers the
/// parent to give them.
pub async fn spawn(state: &AppState, caller: &TaskCaller, n: usize) -> Result<Id, ApiError> {
    let parent = caller.grant.task_id;
    let max_depth = state.config.max_task_depth;
    if state.store.task_depth(parent).await? + 1 > max_depth {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("Tasks may queue tasks at most {max_depth} levels deep"),
        ));
    }
    let n = i32::try_from(n).unwrap_or(i32::MAX);
    let max = state.config.max_children_per_task;
    if !state.store.reserve_spawns(&caller.token, n, max).await? {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "A task may queue at most {max} tasks; this one has queued {} and asked for {n} more",
                caller.grant.spawned
            ),
        ));
    }
    Ok(parent)
}

async fn get_task(
    ProjectScope(project): ProjectScope,
    TaskId(id): TaskId,
    State(state): State<AppState>,
) -> Result<Json<TaskJson>, ApiError> {
    let task = find_task(&state, project.id, id).await?;
    Ok(Json(TaskJson::from(&task)))
}

/// Cancelling a finished task is not an error (Python's `cancel()` would raise): it answers
/// 200 and changes nothing (contract §5.4).
async fn cancel(
    ProjectScope(project): ProjectScope,
    TaskId(id): TaskId,
    State(state): State<AppState>,
) -> Result<Json<Msg>, ApiError> {
    let status = state
        .store
        .cancel(project.id, id)
        .await?
        .ok_or_else(|| ApiError::not_found("Task not found"))?;
    Ok(Json(Msg::new(match status {
        TaskStatus::Cancelled => "Cancelled".to_owned(),
        s if s.is_leased() => "Cancel requested: the runner is stopping the task".to_owned(),
        s => format!("Task already finished: {s}"),
    })))
}

#[derive(Deserialize)]
struct ProgressBody {
    percent: Option<f64>,
    msg: Option<String>,
}

/// Accepted in any status, queued included (contract §3.3 T8).
async fn progress(
    ProjectScope(project): ProjectScope,
    TaskId(id): TaskId,
    State(state): State<AppState>,
    LenientJson(body): LenientJson<ProgressBody>,
) -> Result<Json<Msg>, ApiError> {
    let percent = whole(body.percent);
    if percent.is_some_and(|p| !(0..=100).contains(&p)) {
        return Err(ApiError::bad_request("percent must be between 0 and 100"));
    }
    if let Some(msg) = &body.msg {
        limits::PROGRESS_MSG.check(msg)?;
    }
    if !state
        .store
        .set_progress(project.id, id, percent, body.msg)
        .await?
    {
        return Err(ApiError::not_found("Task not found"));
    }
    Ok(Json(Msg::new("Progress set")))
}

#[derive(Deserialize)]
struct RetryBody {
    delay: Option<f64>,
}

/// Accepted in any status, queued included (contract §8.6); always a new task.
async fn retry(
    ProjectScope(project): ProjectScope,
    TaskId(id): TaskId,
    State(state): State<AppState>,
    LenientJson(body): LenientJson<RetryBody>,
) -> Result<Json<Queued>, ApiError> {
    let delay = whole(body.delay).unwrap_or(0);
    if !(0..=MAX_DELAY_SECS).contains(&delay) {
        return Err(ApiError::bad_request(format!(
            "delay must be between 0 and {MAX_DELAY_SECS} seconds"
        )));
    }
    let new_id = state
        .store
        .retry(project.id, id, delay)
        .await?
        .ok_or_else(|| ApiError::not_found("Task not found"))?;
    state.queue.wake();
    Ok(Json(Queued {
        msg: "Queued up",
        tasks: vec![Created { id: new_id }],
    }))
}
