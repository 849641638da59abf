//! What a task token (`IRON_TOKEN` inside a task, `crate::task_tokens`) may call, and on
//! which objects. Everything else answers 403 (a route it may not use) or 404 (another
//! project, or a task that is not its child), like any token outside its rights.

use axum::extract::MatchedPath;
use axum::http::request::Parts;
use axum::http::StatusCode;
use ferrum_model::Id;
use ferrum_store::TaskGrant;

use super::extract::path_id;
use crate::{ApiError, AppState};

/// Which objects of a route a task token reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reach {
    /// The project's collection: queueing (children) and listing (its children only).
    Project,
    /// A task the token's task queued.
    Child,
    /// The token's own task.
    Own,
    /// A batch the token's task queued.
    ChildBatch,
}

/// The routes a task token may call. Add a route here to open it to tasks.
const ALLOWED: &[(&str, &str, Reach)] = &[
    ("POST", "/2/projects/{project_id}/tasks", Reach::Project),
    ("GET", "/2/projects/{project_id}/tasks", Reach::Project),
    (
        "GET",
        "/2/projects/{project_id}/tasks/{task_id}",
        Reach::Child,
    ),
    (
        "GET",
        "/2/projects/{project_id}/tasks/{task_id}/log",
        Reach::Child,
    ),
    (
        "GET",
        "/2/projects/{project_id}/tasks/{task_id}/outlog",
        Reach::Child,
    ),
    (
        "GET",
        "/2/projects/{project_id}/tasks/{task_id}/result",
        Reach::Child,
    ),
    (
        "POST",
        "/2/projects/{project_id}/tasks/{task_id}/progress",
        Reach::Own,
    ),
    ("POST", "/2/projects/{project_id}/batches", Reach::Project),
    (
        "GET",
        "/2/projects/{project_id}/batches/{batch_id}",
        Reach::ChildBatch,
    ),
    (
        "GET",
        "/2/projects/{project_id}/batches/{batch_id}/results",
        Reach::ChildBatch,
    ),
    (
        "GET",
        "/2/projects/{project_id}/batches/{batch_id}/result",
        Reach::ChildBatch,
    ),
    (
        "POST",
        "/2/projects/{project_id}/batches/{batch_id}/cancel",
        Reach::ChildBatch,
    ),
];

/// The message of a task token on a route it may not use.
pub const NOT_FOR_TASKS: &str = "A task token may only queue tasks and batches in its project, \
     read and cancel its children and set its own progress";

/// A request made with a task token, as the handlers that treat it specially see it (the
/// queue and list routes). Put after [`super::ProjectScope`], which records it.
#[derive(Clone)]
pub struct TaskCaller {
    pub grant: TaskGrant,
    /// The token itself, to count the tasks it queues.
    pub token: String,
}

impl std::fmt::Debug for TaskCaller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskCaller")
            .field("grant", &self.grant)
            .finish_non_exhaustive()
    }
}

/// The task caller of this request, if it came with a task token.
pub struct MaybeTaskCaller(pub Option<TaskCaller>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for MaybeTaskCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        Ok(MaybeTaskCaller(
            parts.extensions.get::<TaskCaller>().cloned(),
        ))
    }
}

pub fn forbidden() -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, NOT_FOR_TASKS)
}

/// Checks a task token's request against [`ALLOWED`]; answers the project it acts on and
/// records the caller for the handler.
pub async fn check(
    parts: &mut Parts,
    state: &AppState,
    grant: TaskGrant,
    token: String,
) -> Result<Id, ApiError> {
    let path = parts
        .extensions
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let reach = ALLOWED
        .iter()
        .find(|(m, p, _)| parts.method.as_str() == *m && *p == path)
        .map(|(_, _, r)| *r)
        .ok_or_else(forbidden)?;
    let not_found = || ApiError::not_found("Project not found");
    let project = path_id(parts, "project_id").await.ok_or_else(not_found)?;
    if project != grant.project_id {
        return Err(not_found());
    }
    let task_not_found = || ApiError::not_found("Task not found");
    match reach {
        Reach::Project => {}
        Reach::Own => {
            let id = path_id(parts, "task_id").await.ok_or_else(task_not_found)?;
            if id != grant.task_id {
                return Err(task_not_found());
            }
        }
        Reach::Child => {
            let id = path_id(parts, "task_id").await.ok_or_else(task_not_found)?;
            let task = state
                .store
                .task(project, id)
                .await?
                .ok_or_else(task_not_found)?;
            if task.origin.parent_id != Some(grant.task_id) {
                return Err(task_not_found());
            }
        }
        Reach::ChildBatch => {
            let batch_not_found = || ApiError::not_found("Batch not found");
            let id = path_id(parts, "batch_id")
                .await
                .ok_or_else(batch_not_found)?;
            let batch = state
                .store
                .batch(project, id)
                .await?
                .ok_or_else(batch_not_found)?;
            if batch.parent_id != Some(grant.task_id) {
                return Err(batch_not_found());
            }
        }
    }
    parts.extensions.insert(TaskCaller { grant, token });
    Ok(project)
}
