//! Tasks: the filtered list with bulk Cancel/Retry, a task's page with its live log, and the
//! Cancel/Retry buttons.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{NaiveDate, TimeZone, Utc};
use ferrum_model::{Id, Page, Task, TaskFilter, TaskStatus};
use maud::{html, Markup};
use serde::Deserialize;

use super::extract::{Button, Checked, Found, ProjectPage};
use super::layout::{message_page, page, status, when, Ctx};
use super::live_log::stream_log;
use super::session::internal;
use crate::routes::{Auth, Route};
use crate::AppState;

/// Tasks per list page.
const PER_PAGE: u32 = 50;
/// Most tasks one "everything matching" bulk action touches.
const BULK_MAX: u32 = 10_000;
/// Rows read per store call while scanning for a page (or a bulk action) by cursor.
const SCAN_BATCH: u32 = 100;
/// Most rows one list page reads looking for payload-field matches; past it the page ends
/// early and "Older" carries on from where the scan stopped, so a rare value costs more
/// clicks, never an unbounded read.
const SCAN_MAX: u32 = 5_000;

pub fn routes() -> Vec<Route> {
    vec![
        Route::get("/projects/{project_id}/tasks", "Dashboard: tasks", list).auth(Auth::Session),
        Route::post(
            "/projects/{project_id}/tasks/bulk",
            "Dashboard: cancel or retry the selected tasks, or every task the filter matches",
            bulk,
        )
        .auth(Auth::Session),
        Route::get(
            "/projects/{project_id}/tasks/{task_id}",
            "Dashboard: a task",
            detail,
        )
        .auth(Auth::Session),
        Route::get(
            "/projects/{project_id}/tasks/{task_id}/stream",
            "Dashboard: a task's log and status as server-sent events",
            stream_log,
        )
        .auth(Auth::Session),
        Route::post(
            "/projects/{project_id}/tasks/{task_id}/cancel",
            "Dashboard: cancel a task",
            cancel,
        )
        .auth(Auth::Session),
        Route::post(
            "/projects/{project_id}/tasks/{task_id}/retry",
            "Dashboard: retry a task",
            retry,
        )
        .auth(Auth::Session),
    ]
}

/// The list's filters, as the form sends them (empty fields mean "any").
#[derive(Debug, Default, Deserialize)]
pub struct Filters {
    #[serde(default)]
    status: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    label: String,
    #[serde(default)]
    schedule: String,
    #[serde(default)]
    batch: String,
    #[serde(default)]
    parent: String,
    /// `YYYY-MM-DD`, created on or after.
    #[serde(default)]
    from: String,
    /// `YYYY-MM-DD`, created on or before.
    #[serde(default)]
    to: String,
    /// A field of the payload (a JSON object) and the value it must hold.
    #[serde(default)]
    field: String,
    #[serde(default)]
    value: String,
    /// Keyset paging: list only tasks older than this id (the "Older" link's cursor).
    #[serde(default)]
    cursor: String,
    /// The cursors of the pages between the first and this one, nearest last, comma
    /// separated: where "Newer" goes back to. A cursor reads only older tasks, so the way
    /// back is carried in the links (25 characters a page) rather than read backwards.
    #[serde(default)]
    newer: String,
}

impl Filters {
    /// The store filter for one read of `per_page` rows older than `before`.
    fn to_filter(&self, before: Option<Id>, per_page: u32) -> Result<TaskFilter, String> {
        let id = |name: &str, v: &str| -> Result<Option<Id>, String> {
            let v = v.trim();
            (!v.is_empty())
                .then(|| v.parse::<Id>().map_err(|e| format!("{name}: {e}")))
                .transpose()
        };
        let day = |name: &str, v: &str, end: bool| -> Result<_, String> {
            let v = v.trim();
            if v.is_empty() {
                return Ok(None);
            }
            let d = NaiveDate::parse_from_str(v, "%Y-%m-%d")
                .map_err(|_| format!("{name}: a date such as 2026-12-31"))?;
            let t = if end {
                d.and_hms_opt(23, 59, 59)
            } else {
                d.and_hms_opt(0, 0, 0)
            };
            Ok(t.map(|t| Utc.from_utc_datetime(&t)))
        };
        let statuses = match self.status.trim() {
            "" => vec![],
            s => vec![s
                .parse::<TaskStatus>()
                .map_err(|e| format!("status: {e}"))?],
        };
        let text = |v: &str| Some(v.trim().to_owned()).filter(|v| !v.is_empty());
        Ok(TaskFilter {
            code_name: text(&self.code),
            statuses,
            from_time: day("from", &self.from, false)?,
            to_time: day("to", &self.to, true)?,
            cluster: None,
            label: text(&self.label),
            schedule_id: id("schedule", &self.schedule)?,
            parent_id: id("parent", &self.parent)?,
            batch_id: id("batch", &self.batch)?,
            before,
            page: Page::new(None, Some(per_page)),
        })
    }

    /// Whether `task`'s payload (a JSON object) holds `value` at `field`.
    fn payload_matches(&self, task: &Task) -> bool {
        let field = self.field.trim();
        if field.is_empty() {
            return true;
        }
        let Ok(payload) = serde_json::from_slice::<serde_json::Value>(&task.payload) else {
            return false;
        };
        match payload.get(field) {
            Some(serde_json::Value::String(s)) => s == self.value.trim(),
            // A number, boolean or null matches its JSON text (`42`, `true`).
            Some(v) => {
                let text = v.to_string();
                text == self.value.trim()
            }
            None => false,
        }
    }

    /// The cursor the list starts after (none: the newest tasks).
    fn cursor(&self) -> Result<Option<Id>, String> {
        let c = self.cursor.trim();
        (!c.is_empty())
            .then(|| c.parse::<Id>().map_err(|e| format!("cursor: {e}")))
            .transpose()
    }

    /// The filters as a query string, without the paging (the bulk form, "Newest").
    fn query(&self) -> String {
        self.query_at(None, &[])
    }

    /// The pages above this one, nearest last.
    fn trail(&self) -> Vec<&str> {
        self.newer.split(',').filter(|c| !c.is_empty()).collect()
    }

    /// The link of the next page, older than `next`.
    fn older(&self, next: Id) -> String {
        let mut trail = self.trail();
        if !self.cursor.is_empty() {
            trail.push(&self.cursor);
        }
        self.query_at(Some(&next.to_string()), &trail)
    }

    /// The link of the page before this one; `None` on the first page.
    fn newer(&self) -> Option<String> {
        if self.cursor.is_empty() {
            return None;
        }
        let mut trail = self.trail();
        let back = trail.pop();
        Some(self.query_at(back, &trail))
    }

    /// The filters as a query string, at `cursor` with the pages `trail` above it.
    fn query_at(&self, cursor: Option<&str>, trail: &[&str]) -> String {
        let trail = trail.join(",");
        let pairs = [
            ("status", &self.status),
            ("code", &self.code),
            ("label", &self.label),
            ("schedule", &self.schedule),
            ("batch", &self.batch),
            ("parent", &self.parent),
            ("from", &self.from),
            ("to", &self.to),
            ("field", &self.field),
            ("value", &self.value),
        ];
        let paging = [("cursor", cursor.unwrap_or_default()), ("newer", &trail)];
        let set: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(k, v)| (*k, v.as_str()))
            .chain(paging)
            .filter(|(_, v)| !v.is_empty())
            .collect();
        serde_urlencoded::to_string(set).expect("text pairs encode")
    }
}

/// A page of the tasks `f` matches, read by cursor newest first, and the cursor of the
/// next page (none when nothing older remains). The payload field is matched here, on the
/// rows read, so the scan goes on past non-matching rows up to `max_rows`.
async fn matching(
    state: &AppState,
    project: Id,
    f: &Filters,
    want: u32,
    max_rows: u32,
) -> Result<(Vec<Task>, Option<Id>), Response> {
    let bad = |msg: String| message_page(StatusCode::BAD_REQUEST, "Bad filter", &msg);
    let mut before = f.cursor().map_err(bad)?;
    let mut found = Vec::new();
    let mut read = 0;
    loop {
        let batch = if f.field.trim().is_empty() {
            (want - found.len() as u32).min(SCAN_BATCH)
        } else {
            SCAN_BATCH
        };
        let filter = f.to_filter(before, batch).map_err(bad)?;
        // The store clamps a page to its maximum; a short read means the end only below it.
        let batch = filter.page.limit() as u32;
        let tasks = state
            .store
            .tasks(project, &filter)
            .await
            .map_err(internal)?;
        read += tasks.len() as u32;
        let exhausted = (tasks.len() as u32) < batch;
        for t in tasks {
            before = Some(t.id);
            if f.payload_matches(&t) {
                found.push(t);
                if found.len() as u32 == want {
                    return Ok((found, before));
                }
            }
        }
        if exhausted {
            return Ok((found, None));
        }
        if read >= max_rows {
            return Ok((found, before));
        }
    }
}

async fn list(
    ctx: ProjectPage,
    State(state): State<AppState>,
    Query(f): Query<Filters>,
) -> Response {
    let (tasks, next) = match matching(&state, ctx.project, &f, PER_PAGE, SCAN_MAX).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    let body = html! {
        (filter_form(&ctx, &f))
        form method="post" action=(ctx.path("/tasks/bulk")) {
            (ctx.csrf_field())
            input type="hidden" name="query" value=(f.query());
            fieldset {
                legend { "With the selected tasks, or every task the filter matches" }
                label { input type="radio" name="scope" value="selected" checked; " Selected" }
                label { input type="radio" name="scope" value="matching"; " Everything matching the filter" }
                button type="submit" name="action" value="cancel" { "Cancel" }
                " "
                button type="submit" name="action" value="retry" { "Retry" }
            }
            (task_table(&ctx, &tasks, true))
        }
        nav aria-label="Pages" {
            @if let Some(newer) = f.newer() {
                a href=(format!("?{}", f.query())) { "Newest" } " "
                a rel="prev" href=(format!("?{newer}")) { "Newer" } " "
            }
            @if let Some(next) = next {
                a rel="next" href=(format!("?{}", f.older(next))) { "Older" }
            }
        }
    };
    page(&ctx, "Tasks", body)
}

fn filter_form(ctx: &Ctx, f: &Filters) -> Markup {
    let text = |name: &'static str, label: &'static str, value: &str| {
        html! { label { (label) " " input type="text" name=(name) value=(value) size="14"; } }
    };
    html! {
        form method="get" action=(ctx.path("/tasks")) {
            fieldset {
                legend { "Filter" }
                label {
                    "Status "
                    select name="status" {
                        option value="" { "any" }
                        @for st in TaskStatus::ALL {
                            option value=(st.as_str()) selected[f.status == st.as_str()] { (st.as_str()) }
                        }
                    }
                }
                (text("code", "Code", &f.code))
                (text("label", "Label", &f.label))
                (text("schedule", "Schedule", &f.schedule))
                (text("batch", "Batch", &f.batch))
                (text("parent", "Parent", &f.parent))
                label { "From " input type="date" name="from" value=(f.from); }
                label { "To " input type="date" name="to" value=(f.to); }
                (text("field", "Payload field", &f.field))
                (text("value", "Payload value", &f.value))
                button type="submit" { "Filter" }
            }
        }
    }
}

pub fn task_table(ctx: &Ctx, tasks: &[Task], selectable: bool) -> Markup {
    html! {
        table {
            thead {
                tr {
                    @if selectable {
                        th { input type="checkbox" id="select-all" aria-label="Select all"; }
                    }
                    th { "Task" } th { "Code" } th { "Status" } th { "Created" } th { "Ended" } th { "Payload" }
                }
            }
            tbody {
                @for t in tasks {
                    tr {
                        @if selectable {
                            td { input type="checkbox" name="ids" value=(t.id) aria-label=(format!("Select task {}", t.id)); }
                        }
                        td { a href=(ctx.path(&format!("/tasks/{}", t.id))) { (t.id) } }
                        td { (t.code_name) }
                        td { (status(t.status.as_str())) }
                        td { (when(Some(t.created_at))) }
                        td { (when(t.end_time)) }
                        td { code { (preview(&t.payload)) } }
                    }
                }
            }
        }
    }
}

fn preview(payload: &[u8]) -> String {
    let s = String::from_utf8_lossy(payload);
    let mut out: String = s.chars().take(80).collect();
    if s.chars().count() > 80 {
        out.push('…');
    }
    out
}

/// `POST …/tasks/bulk`: `ids` is repeated once per selected row, so the form is read as
/// pairs.
async fn bulk(
    ctx: ProjectPage,
    State(state): State<AppState>,
    Checked(pairs): Checked<Vec<(String, String)>>,
) -> Response {
    let get = |k: &str| {
        pairs
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let project = ctx.project;
    let action = get("action");
    let ids: Vec<Id> = if get("scope") == "matching" {
        let f = filters_of(&get("query"));
        match every_match(&state, project, &f).await {
            Ok(ids) => ids,
            Err(r) => return r,
        }
    } else {
        pairs
            .iter()
            .filter(|(n, _)| n == "ids")
            .filter_map(|(_, v)| v.parse().ok())
            .collect()
    };
    for id in ids {
        let done = match action.as_str() {
            "cancel" => state.store.cancel(project, id).await.map(|_| ()),
            "retry" => state.store.retry(project, id, 0).await.map(|_| ()),
            _ => return message_page(StatusCode::BAD_REQUEST, "Bad request", "Unknown action."),
        };
        if let Err(e) = done {
            return internal(e);
        }
    }
    state.queue.wake();
    Redirect::to(&format!("{}?{}", ctx.path("/tasks"), get("query"))).into_response()
}

/// Every task `f` matches, up to [`BULK_MAX`], newest first.
async fn every_match(state: &AppState, project: Id, f: &Filters) -> Result<Vec<Id>, Response> {
    // Reads at most BULK_MAX matches; past that many rows without the payload field, stop.
    let (tasks, _) = matching(state, project, f, BULK_MAX, BULK_MAX * 10).await?;
    Ok(tasks.into_iter().map(|t| t.id).collect())
}

/// The filters of a list's query string (as the bulk form carries it), from the first page.
fn filters_of(query: &str) -> Filters {
    let f: Filters = serde_urlencoded::from_str(query).unwrap_or_default();
    Filters {
        cursor: String::new(),
        newer: String::new(),
        ..f
    }
}

async fn detail(Found(ctx, task): Found<Task>, State(state): State<AppState>) -> Response {
    let project = task.project_id;
    let log = state.store.read_log(project, task.id, false).await;
    let log = match log {
        Ok(l) => String::from_utf8_lossy(&l.unwrap_or_default()).into_owned(),
        Err(e) => return internal(e),
    };
    let result = match crate::results::load(&state, project, task.id).await {
        Ok(r) => r.map(|(_, bytes)| String::from_utf8_lossy(&bytes).into_owned()),
        Err(_) => None,
    };
    let children = state
        .store
        .tasks(
            project,
            &TaskFilter {
                parent_id: Some(task.id),
                ..TaskFilter::default()
            },
        )
        .await
        .unwrap_or_default();
    let live = !task.status.is_terminal();
    let action = |name: &'static str, label: &'static str| {
        html! {
            form.inline method="post" action=(ctx.path(&format!("/tasks/{}/{name}", task.id))) {
                (ctx.csrf_field())
                button type="submit" { (label) }
            }
        }
    };
    let body = html! {
        p {
            @if live { (action("cancel", "Cancel")) " " }
            (action("retry", "Retry"))
        }
        table {
            tbody {
                tr { th { "Status" } td { span id="task-status" class=(format!("status-{}", task.status.as_str())) { (task.status.as_str()) } } }
                tr { th { "Code" } td { (task.code_name) " (revision " (task.code_rev) ")" } }
                tr { th { "Message" } td { (task.msg.clone().unwrap_or_default()) } }
                tr { th { "Progress" } td { (task.percent.map(|p| format!("{p}%")).unwrap_or_else(|| "–".into())) } }
                tr { th { "Attempts" } td { (task.attempt) } }
                tr { th { "Created" } td { (when(Some(task.created_at))) } }
                tr { th { "Started" } td { (when(task.start_time)) } }
                tr { th { "Ended" } td { (when(task.end_time)) } }
                tr { th { "Exit code" } td { (task.exit_code.map(|c| c.to_string()).unwrap_or_else(|| "–".into())) } }
                @if let Some(o) = task.origin.original_task_id {
                    tr { th { "Retry of" } td { a href=(ctx.path(&format!("/tasks/{o}"))) { (o) } " (retry " (task.origin.retry_count) ")" } }
                }
                @if let Some(p) = task.origin.parent_id {
                    tr { th { "Parent" } td { a href=(ctx.path(&format!("/tasks/{p}"))) { (p) } } }
                }
                @if let Some(b) = task.origin.batch_id {
                    tr { th { "Batch" } td { a href=(ctx.path(&format!("/batches/{b}"))) { (b) } } }
                }
                @if let Some(s) = task.origin.schedule_id {
                    tr { th { "Schedule" } td { a href=(ctx.path(&format!("/tasks?schedule={s}"))) { (s) } } }
                }
            }
        }
        h2 { "Payload" }
        pre { (String::from_utf8_lossy(&task.payload)) }
        h2 { "Result" }
        pre id="task-result" { (result.unwrap_or_else(|| "(none)".into())) }
        h2 { "Log" }
        @if live {
            pre id="task-log" data-stream=(ctx.path(&format!("/tasks/{}/stream", task.id))) aria-live="polite" { (log) }
        } @else {
            pre id="task-log" { (log) }
        }
        @if !children.is_empty() {
            h2 { "Children" }
            (task_table(&ctx, &children, false))
        }
    };
    page(&ctx, &format!("Task {}", task.id), body)
}

async fn cancel(
    Found(ctx, task): Found<Task>,
    State(state): State<AppState>,
    _: Button,
) -> Response {
    match state.store.cancel(task.project_id, task.id).await {
        Ok(_) => Redirect::to(&ctx.path(&format!("/tasks/{}", task.id))).into_response(),
        Err(e) => internal(e),
    }
}

/// Queues the retry and shows it.
async fn retry(
    Found(ctx, task): Found<Task>,
    State(state): State<AppState>,
    _: Button,
) -> Response {
    match state.store.retry(task.project_id, task.id, 0).await {
        Ok(retried) => {
            state.queue.wake();
            let id = retried.unwrap_or(task.id);
            Redirect::to(&ctx.path(&format!("/tasks/{id}"))).into_response()
        }
        Err(e) => internal(e),
    }
}
