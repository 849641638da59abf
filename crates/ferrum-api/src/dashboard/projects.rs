//! The projects list and a project's overview: counts by status, queue depth per code,
//! running tasks, and the last 24 hours' throughput drawn as SVG on the server.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::response::Response;
use chrono::{Duration, DurationRound, Utc};
use ferrum_model::{Page, TaskFilter, TaskStatus};
use maud::{html, Markup};

use super::extract::ProjectPage;
use super::layout::{page, status, when, Ctx};
use super::session::internal;
use super::Session;
use crate::routes::{Auth, Route};
use crate::AppState;

/// Codes whose counts the overview sums (each is one query per hour of the chart).
const OVERVIEW_CODES: u32 = 20;

pub fn routes() -> Vec<Route> {
    vec![
        Route::get("/projects", "Dashboard: the projects", list).auth(Auth::Session),
        Route::get(
            "/projects/{project_id}",
            "Dashboard: a project's overview",
            overview,
        )
        .auth(Auth::Session),
    ]
}

async fn list(session: Session, State(state): State<AppState>) -> Response {
    let projects = match state.store.projects(&session.who).await {
        Ok(p) => p,
        Err(e) => return internal(e),
    };
    let ctx = Ctx::new(&session, projects.first().cloned());
    let body = html! {
        @if projects.is_empty() { p { "No projects yet." } }
        table {
            thead { tr { th { "Name" } th { "Id" } th { "Created" } } }
            tbody {
                @for p in &projects {
                    tr {
                        td { a href=(format!("/projects/{}", p.id)) { (p.name) } }
                        td { code { (p.id) } }
                        td { (when(Some(p.created_at))) }
                    }
                }
            }
        }
    };
    page(&ctx, "Projects", body)
}

async fn overview(ctx: ProjectPage, State(state): State<AppState>) -> Response {
    match overview_body(&state, &ctx).await {
        Ok(body) => page(&ctx, "Overview", body),
        Err(e) => internal(e),
    }
}

async fn overview_body(
    state: &AppState,
    ctx: &ProjectPage,
) -> Result<Markup, ferrum_store::StoreError> {
    let project = ctx.project;
    let codes = state
        .store
        .codes(project, Page::new(Some(0), Some(OVERVIEW_CODES)))
        .await?;
    let now = Utc::now();
    let epoch = chrono::DateTime::<Utc>::UNIX_EPOCH;
    let mut totals: BTreeMap<TaskStatus, i64> = BTreeMap::new();
    let mut depth = Vec::new();
    let hour0 = now.duration_trunc(Duration::hours(1)).unwrap_or(now) - Duration::hours(23);
    let mut hourly = [0i64; 24];
    for code in &codes {
        let counts = state.store.code_stats(project, code.id, epoch, now).await?;
        for (st, n) in &counts {
            *totals.entry(*st).or_default() += n;
        }
        depth.push((
            code.name.clone(),
            counts.get(&TaskStatus::Queued).copied().unwrap_or(0),
        ));
        for (h, slot) in hourly.iter_mut().enumerate() {
            let from = hour0 + Duration::hours(h as i64);
            let c = state
                .store
                .code_stats(project, code.id, from, from + Duration::hours(1))
                .await?;
            *slot += c.get(&TaskStatus::Complete).copied().unwrap_or(0);
        }
    }
    let running = state
        .store
        .tasks(
            project,
            &TaskFilter {
                statuses: vec![TaskStatus::Running],
                ..TaskFilter::default()
            },
        )
        .await?;
    Ok(html! {
        h2 { "Tasks by status" }
        table {
            thead { tr { @for st in TaskStatus::ALL { th { (st.as_str()) } } } }
            tbody { tr { @for st in TaskStatus::ALL { td { (totals.get(&st).copied().unwrap_or(0)) } } } }
        }
        h2 { "Completed per hour, last 24 hours" }
        (chart(&hourly))
        h2 { "Queue depth per code" }
        table {
            thead { tr { th { "Code" } th { "Queued" } } }
            tbody { @for (name, n) in &depth { tr { td { (name) } td { (n) } } } }
        }
        h2 { "Running now" }
        table {
            thead { tr { th { "Task" } th { "Code" } th { "Status" } th { "Started" } } }
            tbody {
                @for t in &running {
                    tr {
                        td { a href=(ctx.path(&format!("/tasks/{}", t.id))) { (t.id) } }
                        td { (t.code_name) }
                        td { (status(t.status.as_str())) }
                        td { (when(t.start_time)) }
                    }
                }
            }
        }
    })
}

/// A bar chart of 24 hourly counts, as inline SVG with a text alternative.
fn chart(hourly: &[i64; 24]) -> Markup {
    let max = hourly.iter().copied().max().unwrap_or(0).max(1);
    let total: i64 = hourly.iter().sum();
    html! {
        svg role="img" aria-label=(format!("{total} tasks completed in the last 24 hours")) width="480" height="120" viewBox="0 0 480 120" {
            @for (i, n) in hourly.iter().enumerate() {
                @let h = (*n as f64 / max as f64 * 100.0).round();
                rect x=(i * 20 + 2) y=(110.0 - h) width="16" height=(h) fill="#1f5fbf" { title { (n) } }
            }
            line x1="0" y1="110" x2="480" y2="110" stroke="#1d2330" {}
        }
    }
}
