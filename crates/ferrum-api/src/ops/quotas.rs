//! A project's quotas: `GET /2/projects/{project_id}/quotas` (the project's tenant or an
//! admin) and `PUT` (admin only) with `{"max_concurrency", "max_queued", "tasks_per_minute",
//! "retention_days"}`, each a positive integer or null for "no limit" (for `retention_days`,
//! the operator's default; the retention duty, `crate::retention`, deletes finished tasks
//! past it). A `PUT` replaces all four: a field
//! left out is null.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use ferrum_store::ProjectQuotas;
use serde::{Deserialize, Serialize};

use crate::openapi::bodies;
use crate::routes::{Auth, Route};
use crate::tenant::auth::{Caller, ProjectScope};
use crate::tenant::extract::LenientJson;
use crate::{ApiError, AppState};

const PATH: &str = "/2/projects/{project_id}/quotas";

pub fn routes() -> Vec<Route> {
    vec![
        Route::get(PATH, "A project's quotas (null: no limit)", get).auth(Auth::Tenant),
        Route::put(
            PATH,
            "Set a project's quotas (admin only): max_concurrency, max_queued, tasks_per_minute, retention_days; null or absent: no limit",
            put,
        )
        .body(bodies::quotas())
        .errors(&[404])
        .auth(Auth::Admin),
    ]
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuotasBody {
    #[serde(default)]
    max_concurrency: Option<i32>,
    #[serde(default)]
    max_queued: Option<i32>,
    #[serde(default)]
    tasks_per_minute: Option<i32>,
    #[serde(default)]
    retention_days: Option<i32>,
}

impl From<ProjectQuotas> for QuotasBody {
    fn from(q: ProjectQuotas) -> Self {
        QuotasBody {
            max_concurrency: q.max_concurrency,
            max_queued: q.max_queued,
            tasks_per_minute: q.tasks_per_minute,
            retention_days: q.retention_days,
        }
    }
}

async fn get(
    ProjectScope(project): ProjectScope,
    State(state): State<AppState>,
) -> Result<Json<QuotasBody>, ApiError> {
    let q = state
        .store
        .project_quotas(project.id)
        .await?
        .ok_or_else(|| ApiError::not_found("Project not found"))?;
    Ok(Json(q.into()))
}

async fn put(
    Caller(caller): Caller,
    Path(project): Path<String>,
    State(state): State<AppState>,
    LenientJson(body): LenientJson<QuotasBody>,
) -> Result<Json<QuotasBody>, ApiError> {
    if !caller.is_admin {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "Only an admin may set quotas",
        ));
    }
    let not_found = || ApiError::not_found("Project not found");
    let project: ferrum_model::Id = project.parse().map_err(|_| not_found())?;
    let quotas = ProjectQuotas {
        max_concurrency: body.max_concurrency,
        max_queued: body.max_queued,
        tasks_per_minute: body.tasks_per_minute,
        retention_days: body.retention_days,
    };
    ferrum_store::quotas::check_quotas(&quotas).map_err(ApiError::bad_request)?;
    if !state.store.set_project_quotas(project, &quotas).await? {
        return Err(not_found());
    }
    Ok(Json(quotas.into()))
}
