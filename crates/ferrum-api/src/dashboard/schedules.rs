//! Schedules: the list with their next fire times, a form to create one (with a preview of
//! the next fire times as the cron and time zone are typed), pause, resume, cancel.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Redirect, Response};
use axum::Form;
use chrono::Utc;
use ferrum_model::recurrence::{Bounds, Recurrence};
use ferrum_model::validation::{new_schedule, ScheduleOptions, TaskOptions};
use ferrum_model::{Id, Page, Schedule};
use maud::html;
use serde::Deserialize;
use serde_json::json;

use super::layout::{message_page, page, when};
use super::session::{internal, CsrfForm};
use super::Session;
use crate::routes::{Auth, Route};
use crate::AppState;

/// Fire times a schedule's row and the preview show.
const SHOWN: usize = 5;

pub fn routes() -> Vec<Route> {
    vec![
        Route::get(
            "/projects/{project_id}/schedules",
            "Dashboard: schedules",
            list,
        )
        .auth(Auth::Session),
        Route::post(
            "/projects/{project_id}/schedules",
            "Dashboard: create a schedule",
            create,
        )
        .auth(Auth::Session),
        Route::post(
            "/projects/{project_id}/schedules/{schedule_id}/{action}",
            "Dashboard: pause, resume or cancel a schedule",
            act,
        )
        .auth(Auth::Session),
        Route::get(
            "/cron-preview",
            "Dashboard: the next fire times of a cron expression in a time zone",
            preview,
        )
        .auth(Auth::Session),
    ]
}

async fn list(
    session: Session,
    State(state): State<AppState>,
    Path(pid): Path<String>,
) -> Response {
    let ctx = match session.ctx(&state, &pid).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let project = ctx.project.as_ref().expect("a project page").id;
    let schedules = match state
        .store
        .schedules(project, Page::new(Some(0), Some(100)))
        .await
    {
        Ok(s) => s,
        Err(e) => return internal(e),
    };
    let button = |s: &Schedule, action: &str, label: &str| {
        html! {
            form.inline method="post" action=(ctx.path(&format!("/schedules/{}/{action}", s.id))) {
                (ctx.csrf_field())
                button type="submit" { (label) }
            }
        }
    };
    let body = html! {
        form id="schedule-form" method="post" action=(ctx.path("/schedules")) {
            (ctx.csrf_field())
            fieldset {
                legend { "New schedule" }
                label { "Code " input type="text" name="code_name" required; }
                label { "Cron " input type="text" name="cron" placeholder="*/5 * * * *"; }
                label { "Time zone " input type="text" name="timezone" placeholder="UTC"; }
                label { "Or every (seconds) " input type="number" name="run_every" min="1"; }
                label { "Payload " input type="text" name="payload"; }
                button type="submit" { "Create schedule" }
                p id="cron-preview" aria-live="polite" {}
            }
        }
        table {
            thead { tr { th { "Schedule" } th { "Code" } th { "Repeats" } th { "Status" } th { "Next fire times" } th {} } }
            tbody {
                @for s in &schedules {
                    tr {
                        td { a href=(ctx.path(&format!("/tasks?schedule={}", s.id))) { (s.id) } }
                        td { (s.code_name) }
                        td {
                            @if let Some(c) = &s.cron { (c) " (" (s.timezone.clone().unwrap_or_else(|| "UTC".into())) ")" }
                            @else if let Some(e) = s.run_every { "every " (e) " s" }
                        }
                        td { (s.status.as_str()) @if s.paused { " (paused)" } @if let Some(m) = &s.msg { ": " (m) } }
                        td { @for t in s.next_fire_times(SHOWN) { (when(Some(t))) br; } }
                        td {
                            @if s.paused { (button(s, "resume", "Resume")) } @else { (button(s, "pause", "Pause")) }
                            " " (button(s, "cancel", "Cancel"))
                        }
                    }
                }
            }
        }
    };
    page(&ctx, "Schedules", body)
}

#[derive(Deserialize)]
struct NewForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    code_name: String,
    #[serde(default)]
    cron: String,
    #[serde(default)]
    timezone: String,
    #[serde(default)]
    run_every: String,
    #[serde(default)]
    payload: String,
}

async fn create(
    session: Session,
    State(state): State<AppState>,
    Path(pid): Path<String>,
    Form(form): Form<NewForm>,
) -> Response {
    if let Err(refused) = session.check_csrf(&form.csrf) {
        return refused;
    }
    let ctx = match session.ctx(&state, &pid).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let project = ctx.project.as_ref().expect("a project page").id;
    let text = |v: &str| Some(v.trim().to_owned()).filter(|v| !v.is_empty());
    let run_every = match text(&form.run_every).map(|v| v.parse::<f64>()).transpose() {
        Ok(v) => v,
        Err(_) => {
            return message_page(
                StatusCode::BAD_REQUEST,
                "Bad schedule",
                "run_every must be a number of seconds",
            )
        }
    };
    let opts = ScheduleOptions {
        task: TaskOptions::default(),
        run_every,
        cron: text(&form.cron),
        timezone: text(&form.timezone),
        min_interval_secs: Some(
            u32::try_from(state.config.min_schedule_interval.as_secs()).unwrap_or(u32::MAX),
        ),
        ..ScheduleOptions::default()
    };
    let schedule = match new_schedule(
        form.code_name.trim(),
        form.payload.into_bytes(),
        opts,
        Utc::now(),
    ) {
        Ok(s) => s,
        Err(e) => return message_page(StatusCode::BAD_REQUEST, "Bad schedule", &e.to_string()),
    };
    let limit = state.config.max_schedules_per_project;
    match state
        .store
        .create_schedules(project, vec![schedule], limit)
        .await
    {
        Ok(_) => Redirect::to(&ctx.path("/schedules")).into_response(),
        Err(e) => {
            let e = crate::ApiError::from(e);
            message_page(e.status, "Schedule not created", &e.msg)
        }
    }
}

async fn act(
    session: Session,
    State(state): State<AppState>,
    Path((pid, sid, action)): Path<(String, String, String)>,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Err(refused) = session.check_csrf(&form.csrf) {
        return refused;
    }
    let ctx = match session.ctx(&state, &pid).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let project = ctx.project.as_ref().expect("a project page").id;
    let not_found = || message_page(StatusCode::NOT_FOUND, "Not found", "No such schedule.");
    let Ok(id) = sid.parse::<Id>() else {
        return not_found();
    };
    let done = match action.as_str() {
        "pause" | "resume" => state
            .store
            .set_schedule_paused(project, id, action == "pause")
            .await
            .map(|r| r.is_some()),
        "cancel" => state.store.cancel_schedule(project, id).await,
        _ => return not_found(),
    };
    match done {
        Ok(true) => Redirect::to(&ctx.path("/schedules")).into_response(),
        Ok(false) => not_found(),
        Err(e) => {
            let e = crate::ApiError::from(e);
            message_page(e.status, "Not changed", &e.msg)
        }
    }
}

#[derive(Deserialize)]
struct PreviewQuery {
    #[serde(default)]
    cron: String,
    #[serde(default)]
    timezone: String,
}

/// `{"next": [time, …]}`, or 400 `{"msg"}` for an expression that does not parse.
async fn preview(_: Session, Query(q): Query<PreviewQuery>) -> Response {
    let tz = Some(q.timezone.trim()).filter(|t| !t.is_empty());
    let recurrence = match Recurrence::new(None, Some(q.cron.trim()), tz) {
        Ok(r) => r,
        Err(e) => {
            return (StatusCode::BAD_REQUEST, Json(json!({"msg": e.to_string()}))).into_response()
        }
    };
    let first = match recurrence.first_slot(Utc::now()) {
        Ok(t) => t,
        Err(e) => {
            return (StatusCode::BAD_REQUEST, Json(json!({"msg": e.to_string()}))).into_response()
        }
    };
    let bounds = Bounds {
        end_at: None,
        runs_left: None,
    };
    let next: Vec<String> = recurrence
        .upcoming(first, bounds, SHOWN)
        .into_iter()
        .map(|t| when(Some(t)))
        .collect();
    Json(json!({ "next": next })).into_response()
}
