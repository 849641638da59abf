//! Project routes (contract §3.5 P1–P3) and Ferrum's `POST /2/projects`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use ferrum_model::limits;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::auth::{Caller, ProjectScope};
use super::extract::LenientJson;
use super::render::ProjectJson;
use super::Route;
use crate::openapi::bodies;
use crate::{ApiError, AppState};

pub fn routes() -> Vec<Route> {
    vec![
        Route::get("/2/projects", "List the projects the caller may use", list),
        Route::post(
            "/2/projects",
            "Create a project owned by the caller: {\"name\"} (Ferrum addition)",
            create,
        )
        .body(bodies::project()),
        Route::get(
            "/2/projects/{project_id}",
            "Get a project (ironcli calls this on every command)",
            get_project,
        ),
        Route::post(
            "/2/projects/{project_id}/credentials",
            "Store Docker registry credentials: not supported yet, answers 501",
            credentials,
        )
        .body(bodies::any_object())
        .errors(&[501]),
    ]
}

#[derive(Serialize)]
struct ProjectList {
    projects: Vec<ProjectJson>,
}

async fn list(
    Caller(caller): Caller,
    State(state): State<AppState>,
) -> Result<Json<ProjectList>, ApiError> {
    let projects = state.store.projects(&caller).await?;
    Ok(Json(ProjectList {
        projects: projects.iter().map(ProjectJson::from).collect(),
    }))
}

/// Ferrum's own route, with no client to be lenient with: unknown fields are refused.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    name: Option<String>,
}

#[derive(Serialize)]
struct ProjectCreated {
    #[serde(flatten)]
    project: ProjectJson,
    msg: &'static str,
}

async fn create(
    Caller(caller): Caller,
    State(state): State<AppState>,
    LenientJson(body): LenientJson<CreateBody>,
) -> Result<Json<ProjectCreated>, ApiError> {
    let name = super::accounts::name(body.name, &limits::PROJECT_NAME)?;
    let project = state.store.create_project(caller.user_id, &name).await?;
    Ok(Json(ProjectCreated {
        project: ProjectJson::from(&project),
        msg: "Project created",
    }))
}

async fn get_project(ProjectScope(project): ProjectScope) -> Json<ProjectJson> {
    Json(ProjectJson::from(&project))
}

/// Ferrum cannot pull private images yet, and a password is not something to keep without a
/// use for it, so the route says so plainly instead of pretending to store the credentials.
/// 501 is not retried by the clients (they retry 503 and 504 only).
async fn credentials(
    ProjectScope(_): ProjectScope,
    LenientJson(_): LenientJson<Value>,
) -> ApiError {
    ApiError::new(
        StatusCode::NOT_IMPLEMENTED,
        "Registry credentials are not supported yet: use a public image, or one already \
         present on the runners",
    )
}
