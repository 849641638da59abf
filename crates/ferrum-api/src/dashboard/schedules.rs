//! Schedules: the list with their next fire times and a form to create one; a schedule's page
//! with its settings, pause, resume, cancel and an Edit form. Both forms preview the next fire
//! times as they are typed.
//!
//! The forms are checked by the API's own rules: a new schedule by
//! [`ScheduleInput::into_new`] (as `POST /2/projects/{pid}/schedules`), an edit by
//! [`update_schedule`] (as `PUT /2/projects/{pid}/schedules/{id}`), so a refusal shows the
//! API's message and writes nothing. The previews run the same checks and write nothing.

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Json, Redirect, Response};
use chrono::{DateTime, SecondsFormat, Utc};
use ferrum_model::{Page, Schedule, ScheduleStatus};
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::{json, Value};

use super::extract::{Button, Checked, Found, ProjectPage};
use super::layout::{page, when};
use super::session::internal;
use crate::routes::{Auth, Route};
use crate::tenant::schedules::{store_new, update_schedule, updated, ScheduleInput};
use crate::tenant::tasks::TaskFields;
use crate::{ApiError, AppState};

/// Fire times a schedule's row, its page and the previews show.
const SHOWN: usize = 5;

pub fn routes() -> Vec<Route> {
    let schedule = "/projects/{project_id}/schedules/{schedule_id}";
    vec![
        Route::get(
            "/projects/{project_id}/schedules",
            "Dashboard: schedules",
            list,
        ),
        Route::post(
            "/projects/{project_id}/schedules",
            "Dashboard: create a schedule",
            create,
        ),
        Route::get(
            "/projects/{project_id}/schedules/preview",
            "Dashboard: the next fire times of the schedule being typed",
            preview_new,
        ),
        Route::get(schedule, "Dashboard: a schedule", detail),
        Route::post(schedule, "Dashboard: edit a schedule", edit),
        Route::get(
            "/projects/{project_id}/schedules/{schedule_id}/preview",
            "Dashboard: the next fire times of a schedule as it is being edited",
            preview_edit,
        ),
        Route::post(
            "/projects/{project_id}/schedules/{schedule_id}/pause",
            "Dashboard: pause a schedule",
            pause,
        ),
        Route::post(
            "/projects/{project_id}/schedules/{schedule_id}/resume",
            "Dashboard: resume a schedule",
            resume,
        ),
        Route::post(
            "/projects/{project_id}/schedules/{schedule_id}/cancel",
            "Dashboard: cancel a schedule",
            cancel,
        ),
    ]
    .into_iter()
    .map(|r| r.auth(Auth::Session))
    .collect()
}

/// A schedule form's fields as typed. A field left out of the request is not given; one sent
/// empty is not given to a new schedule, and emptied in an edit.
#[derive(Deserialize, Default, Clone)]
#[serde(default)]
struct ScheduleForm {
    code_name: Option<String>,
    cron: Option<String>,
    timezone: Option<String>,
    misfire: Option<String>,
    run_every: Option<String>,
    run_times: Option<String>,
    start_at: Option<String>,
    end_at: Option<String>,
    payload: Option<String>,
    priority: Option<String>,
    timeout: Option<String>,
    cluster: Option<String>,
    label: Option<String>,
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The text of a form field; empty when it was not sent.
fn text(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or_default()
}

impl ScheduleForm {
    /// The fields of `s` as its Edit form shows them.
    fn of(s: &Schedule) -> ScheduleForm {
        let num = |v: Option<i32>| Some(v.map(|v| v.to_string()).unwrap_or_default());
        ScheduleForm {
            code_name: Some(s.code_name.clone()),
            cron: Some(s.cron.clone().unwrap_or_default()),
            timezone: Some(s.timezone.clone().unwrap_or_default()),
            misfire: Some(s.misfire.as_str().to_owned()),
            run_every: num(s.run_every),
            run_times: num(s.run_times),
            start_at: Some(rfc3339(s.start_at)),
            end_at: Some(s.end_at.map(rfc3339).unwrap_or_default()),
            payload: Some(String::from_utf8_lossy(&s.payload).into_owned()),
            priority: num(Some(s.priority)),
            timeout: num(Some(s.timeout)),
            cluster: Some(s.cluster.clone()),
            label: Some(s.label.clone().unwrap_or_default()),
        }
    }

    /// The API's input for this form: a new schedule's (`was` = `None`: every field typed is
    /// given), or an edit of the schedule whose form was `was` (only the fields changed are
    /// given, as in a `PUT` naming only them). The API keeps a field it is not given, so
    /// emptying one is refused rather than silently undone; the payload may be emptied.
    fn input(&self, was: Option<&ScheduleForm>) -> Result<ScheduleInput, ApiError> {
        let this = match was {
            Some(was) => self.switched_from(was),
            None => self.clone(),
        };
        this.given(was)
    }

    /// This edit with what a change of how the schedule repeats empties put back as it was:
    /// a cron typed over `run_every` replaces it (and the other way round), so emptying the
    /// replaced one is no removal; an emptied time zone is UTC.
    fn switched_from(&self, was: &ScheduleForm) -> ScheduleForm {
        let emptied = |v: &Option<String>| v.as_deref().is_some_and(|v| v.trim().is_empty());
        let typed = |v: &Option<String>| !text(v).trim().is_empty();
        let mut now = self.clone();
        if emptied(&now.run_every) && typed(&now.cron) {
            now.run_every.clone_from(&was.run_every);
        }
        if emptied(&now.cron) && typed(&now.run_every) {
            now.cron.clone_from(&was.cron);
            now.timezone.clone_from(&was.timezone);
        }
        if emptied(&now.timezone) && typed(&was.timezone) && typed(&now.cron) {
            now.timezone = Some("UTC".into());
        }
        now
    }

    fn given(&self, was: Option<&ScheduleForm>) -> Result<ScheduleInput, ApiError> {
        let field = |name: &str, now: &Option<String>, before: Option<&Option<String>>| {
            let Some(now) = now.as_deref().map(str::trim) else {
                return Ok(None);
            };
            match before.map(|b| text(b).trim()) {
                Some(b) if b == now => Ok(None),
                Some(_) if now.is_empty() => Err(ApiError::bad_request(format!(
                    "{name} cannot be removed, only changed"
                ))),
                _ => Ok(Some(now.to_owned()).filter(|v| !v.is_empty())),
            }
        };
        // The label and the limits may be removed: emptied, they are sent empty (run_times
        // as 0), which the API reads as "none".
        let removable = |now: &Option<String>, before: Option<&Option<String>>| {
            let emptied = now.as_deref().is_some_and(|n| n.trim().is_empty())
                && before.is_some_and(|b| !text(b).trim().is_empty());
            if emptied {
                Ok(Some(String::new()))
            } else {
                field("", now, before)
            }
        };
        let number = |name: &str, now: &Option<String>, before: Option<&Option<String>>| {
            field(name, now, before)?
                .map(|v| v.parse::<f64>())
                .transpose()
                .map_err(|_| ApiError::bad_request(format!("{name} must be a number")))
        };
        let w = |get: fn(&ScheduleForm) -> &Option<String>| was.map(get);
        // A textarea sends its line breaks as CRLF, whatever it was given: a payload that
        // differs only by them is unchanged (and keeps its own).
        let lf = |p: &String| p.replace("\r\n", "\n");
        let payload = self.payload.as_ref().map(lf);
        let payload = match (payload, was) {
            (Some(p), Some(f)) if Some(&p) != f.payload.as_ref().map(lf).as_ref() => {
                Some(Value::String(p))
            }
            (Some(p), None) if !p.is_empty() => Some(Value::String(p)),
            _ => None,
        };
        Ok(ScheduleInput {
            code_name: field("code_name", &self.code_name, w(|f| &f.code_name))?,
            payload,
            start_at: field("start_at", &self.start_at, w(|f| &f.start_at))?,
            end_at: removable(&self.end_at, w(|f| &f.end_at))?,
            run_every: number("run_every", &self.run_every, w(|f| &f.run_every))?,
            run_times: match removable(&self.run_times, w(|f| &f.run_times))? {
                Some(v) if v.is_empty() => Some(0.0),
                _ => number("run_times", &self.run_times, w(|f| &f.run_times))?,
            },
            task_delay: None,
            cron: field("cron", &self.cron, w(|f| &f.cron))?,
            timezone: field("timezone", &self.timezone, w(|f| &f.timezone))?,
            misfire: field("misfire", &self.misfire, w(|f| &f.misfire))?,
            fields: TaskFields {
                priority: number("priority", &self.priority, w(|f| &f.priority))?,
                timeout: number("timeout", &self.timeout, w(|f| &f.timeout))?,
                delay: None,
                cluster: field("cluster", &self.cluster, w(|f| &f.cluster))?,
                label: removable(&self.label, w(|f| &f.label))?,
            },
        })
    }
}

async fn list(ctx: ProjectPage, State(state): State<AppState>) -> Response {
    list_page(&ctx, &state, &ScheduleForm::default(), None).await
}

/// A refused form's page answers the refusal's status.
fn with_status(refused: Option<&ApiError>, page: Response) -> Response {
    match refused {
        Some(e) => (e.status, page).into_response(),
        None => page,
    }
}

/// How `s` repeats, in words.
fn repeats(s: &Schedule) -> String {
    match (&s.cron, s.run_every) {
        (Some(c), _) => format!(
            "{c} ({})",
            s.timezone.clone().unwrap_or_else(|| "UTC".into())
        ),
        (None, Some(e)) => format!("every {e} s"),
        (None, None) => "once".into(),
    }
}

/// The schedules, and the new-schedule form holding `typed` (with `refused`'s message).
async fn list_page(
    ctx: &ProjectPage,
    state: &AppState,
    typed: &ScheduleForm,
    refused: Option<&ApiError>,
) -> Response {
    let schedules = match state
        .store
        .schedules(ctx.project, Page::new(Some(0), Some(100)))
        .await
    {
        Ok(s) => s,
        Err(e) => return internal(e),
    };
    let body = html! {
        form id="schedule-form" method="post" action=(ctx.path("/schedules")) data-preview=(ctx.path("/schedules/preview")) {
            (ctx.csrf_field())
            fieldset {
                legend { "New schedule" }
                @if let Some(e) = refused { p role="alert" class="refused" { (e.msg) } }
                div class="grid" { (fields(typed, None)) }
                p id="cron-preview" class="preview" aria-live="polite" {}
                button type="submit" { "Create schedule" }
            }
        }
        table {
            thead { tr { th { "Schedule" } th { "Code" } th { "Repeats" } th { "Status" } th { "Next fire times" } th {} } }
            tbody {
                @for s in &schedules {
                    tr {
                        td { a href=(ctx.path(&format!("/schedules/{}", s.id))) { (s.id) } }
                        td { (s.code_name) }
                        td { (repeats(s)) }
                        td { (s.status.as_str()) @if s.paused { " (paused)" } @if let Some(m) = &s.msg { ": " (m) } }
                        td { @for t in s.next_fire_times(SHOWN) { (when(Some(t))) br; } }
                        td { (buttons(ctx, s)) " " a href=(ctx.path(&format!("/tasks?schedule={}", s.id))) { "Tasks" } }
                    }
                }
            }
        }
    };
    with_status(refused, page(ctx, "Schedules", body))
}

/// Pause or Resume, and Cancel, for an active schedule.
fn buttons(ctx: &ProjectPage, s: &Schedule) -> Markup {
    let button = |action: &str, label: &str| {
        html! {
            form.inline method="post" action=(ctx.path(&format!("/schedules/{}/{action}", s.id))) {
                (ctx.csrf_field())
                button type="submit" { (label) }
            }
        }
    };
    html! {
        @if s.status == ScheduleStatus::Scheduled {
            @if s.paused { (button("resume", "Resume")) } @else { (button("pause", "Pause")) }
            " " (button("cancel", "Cancel"))
        }
    }
}

/// The labelled inputs of a schedule form holding `f`: every field for a new schedule; for
/// the edit of `editing`, all but its code and start.
fn fields(f: &ScheduleForm, editing: Option<&Schedule>) -> Markup {
    let prefix = if editing.is_some() { "edit" } else { "new" };
    let id = |name: &str| format!("{prefix}-{name}");
    let input = |name: &'static str, label: &'static str, kind: &'static str, value: &str| {
        html! {
            label for=(id(name)) { (label) }
            input id=(id(name)) type=(kind) name=(name) value=(value) step=[(kind == "number").then_some("any")];
        }
    };
    let time = "text";
    // An edit keeps the policy it has unless another is chosen: no "default" to pick.
    let policies = [
        ("", "default (run once)"),
        ("run_once", "run once"),
        ("skip", "skip"),
        ("catch_up", "catch up"),
    ];
    let policies = &policies[usize::from(editing.is_some())..];
    html! {
        @if editing.is_none() {
            label for=(id("code_name")) { "Code" }
            input id=(id("code_name")) type="text" name="code_name" value=(text(&f.code_name)) required;
        }
        label for=(id("cron")) { "Cron" }
        input id=(id("cron")) type="text" name="cron" value=(text(&f.cron)) placeholder="*/5 * * * *";
        label for=(id("timezone")) { "Time zone" }
        input id=(id("timezone")) type="text" name="timezone" value=(text(&f.timezone)) placeholder="UTC";
        (input("run_every", "Or every (seconds)", "number", text(&f.run_every)))
        label for=(id("misfire")) { "Missed runs" }
        select id=(id("misfire")) name="misfire" {
            @for (value, shown) in policies {
                option value=(value) selected[text(&f.misfire) == *value] { (shown) }
            }
        }
        @if editing.is_none() {
            label for=(id("start_at")) { "Start at" }
            input id=(id("start_at")) type=(time) name="start_at" value=(text(&f.start_at)) placeholder="2030-01-01T09:00:00Z";
        }
        label for=(id("end_at")) { "End at" }
        input id=(id("end_at")) type=(time) name="end_at" value=(text(&f.end_at)) placeholder="2030-12-31T00:00:00Z";
        (input("run_times", "Most runs", "number", text(&f.run_times)))
        label for=(id("payload")) { "Payload" }
        textarea id=(id("payload")) name="payload" rows="3" { (text(&f.payload)) }
        (input("priority", "Priority (0-2)", "number", text(&f.priority)))
        (input("timeout", "Timeout (seconds)", "number", text(&f.timeout)))
        (input("cluster", "Cluster", "text", text(&f.cluster)))
        (input("label", "Label", "text", text(&f.label)))
    }
}

async fn create(
    ctx: ProjectPage,
    State(state): State<AppState>,
    Checked(form): Checked<ScheduleForm>,
) -> Response {
    let made = match form.input(None).and_then(|i| i.into_new(&state.config)) {
        Ok(s) => store_new(&state, ctx.project, vec![s]).await,
        Err(e) => Err(e),
    };
    match made {
        Ok(_) => Redirect::to(&ctx.path("/schedules")).into_response(),
        Err(e) => list_page(&ctx, &state, &form, Some(&e)).await,
    }
}

async fn detail(Found(ctx, s): Found<Schedule>) -> Response {
    schedule_page(&ctx, &s, &ScheduleForm::of(&s), None)
}

/// A schedule's page, its Edit form holding `typed` (with `refused`'s message).
fn schedule_page(
    ctx: &ProjectPage,
    s: &Schedule,
    typed: &ScheduleForm,
    refused: Option<&ApiError>,
) -> Response {
    let next = s.next_fire_times(SHOWN);
    let row = |name: &str, value: String| html! { tr { th { (name) } td { (value) } } };
    let body = html! {
        p { (buttons(ctx, s)) " " a href=(ctx.path(&format!("/tasks?schedule={}", s.id))) { "Its tasks" } }
        table {
            tbody {
                (row("Code", s.code_name.clone()))
                tr { th { "Status" } td id="schedule-status" { (s.status.as_str()) @if s.paused { " (paused)" } @if let Some(m) = &s.msg { ": " (m) } } }
                (row("Repeats", repeats(s)))
                (row("Missed runs", s.misfire.as_str().to_owned()))
                (row("Start at", when(Some(s.start_at))))
                (row("End at", when(s.end_at)))
                (row("Runs", match s.run_times { Some(max) => format!("{} of {max}", s.run_count), None => s.run_count.to_string() }))
                (row("Last run", when(s.last_run_time)))
                (row("Priority", s.priority.to_string()))
                (row("Timeout", format!("{} s", s.timeout)))
                (row("Cluster", s.cluster.clone()))
                (row("Label", s.label.clone().unwrap_or_default()))
            }
        }
        h2 { "Payload" }
        pre { (String::from_utf8_lossy(&s.payload)) }
        h2 { "Next fire times" }
        @if next.is_empty() { p { "None." } }
        ol id="next-fire-times" { @for t in &next { li { (when(Some(*t))) } } }
        @if s.status == ScheduleStatus::Scheduled {
            h2 { "Edit" }
            form id="schedule-edit" method="post" action=(ctx.path(&format!("/schedules/{}", s.id))) data-preview=(ctx.path(&format!("/schedules/{}/preview", s.id))) {
                (ctx.csrf_field())
                @if let Some(e) = refused { p role="alert" class="refused" { (e.msg) } }
                div class="grid" { (fields(typed, Some(s))) }
                p id="edit-preview" class="preview" aria-live="polite" {}
                button type="submit" { "Save" }
            }
        }
    };
    with_status(refused, page(ctx, &format!("Schedule {}", s.id), body))
}

async fn edit(
    Found(ctx, s): Found<Schedule>,
    State(state): State<AppState>,
    Checked(form): Checked<ScheduleForm>,
) -> Response {
    let saved = match form.input(Some(&ScheduleForm::of(&s))) {
        Ok(input) => update_schedule(&state, ctx.project, s.id, input).await,
        Err(e) => Err(e),
    };
    match saved {
        Ok(()) => Redirect::to(&ctx.path(&format!("/schedules/{}", s.id))).into_response(),
        Err(e) => schedule_page(&ctx, &s, &form, Some(&e)),
    }
}

/// `{"next": [time, …]}`, or the refusal's status and `{"msg"}`.
fn preview_answer(next: Result<Vec<DateTime<Utc>>, ApiError>) -> Response {
    match next {
        Ok(times) => {
            let next: Vec<String> = times.into_iter().map(|t| when(Some(t))).collect();
            Json(json!({ "next": next })).into_response()
        }
        Err(e) => (e.status, Json(json!({ "msg": e.msg }))).into_response(),
    }
}

/// The next fire times of the new schedule typed so far (a code name is not needed yet).
async fn preview_new(
    _: ProjectPage,
    State(state): State<AppState>,
    Query(mut form): Query<ScheduleForm>,
) -> Response {
    if text(&form.code_name).trim().is_empty() {
        form.code_name = Some("preview".into());
    }
    let next = form
        .input(None)
        .and_then(|i| i.into_new(&state.config))
        .map(|s| s.next_fire_times(SHOWN));
    preview_answer(next)
}

/// The next fire times schedule `s` would have once saved with the edit typed so far
/// (whether or not it is paused).
async fn preview_edit(
    Found(_, s): Found<Schedule>,
    State(state): State<AppState>,
    Query(form): Query<ScheduleForm>,
) -> Response {
    let next = form
        .input(Some(&ScheduleForm::of(&s)))
        .and_then(|i| i.into_update(&s, &state.config))
        .map(|u| {
            let mut after = updated(&s, u);
            after.paused = false;
            after.next_fire_times(SHOWN)
        });
    preview_answer(next)
}

/// Pauses or resumes, and shows the schedule.
async fn set_paused(state: &AppState, ctx: &ProjectPage, s: &Schedule, paused: bool) -> Response {
    match state
        .store
        .set_schedule_paused(ctx.project, s.id, paused)
        .await
    {
        Ok(_) => Redirect::to(&ctx.path(&format!("/schedules/{}", s.id))).into_response(),
        Err(e) => internal(e),
    }
}

async fn pause(
    Found(ctx, s): Found<Schedule>,
    State(state): State<AppState>,
    _: Button,
) -> Response {
    set_paused(&state, &ctx, &s, true).await
}

async fn resume(
    Found(ctx, s): Found<Schedule>,
    State(state): State<AppState>,
    _: Button,
) -> Response {
    set_paused(&state, &ctx, &s, false).await
}

async fn cancel(
    Found(ctx, s): Found<Schedule>,
    State(state): State<AppState>,
    _: Button,
) -> Response {
    match state.store.cancel_schedule(ctx.project, s.id).await {
        Ok(_) => Redirect::to(&ctx.path(&format!("/schedules/{}", s.id))).into_response(),
        Err(e) => internal(e),
    }
}

#[cfg(test)]
mod tests {
    use super::ScheduleForm;

    fn was() -> ScheduleForm {
        ScheduleForm {
            run_every: Some("3600".into()),
            label: Some("nightly".into()),
            payload: Some("{\"a\":1}\n".into()),
            ..ScheduleForm::default()
        }
    }

    #[test]
    fn an_edit_gives_only_the_fields_changed_removes_a_label_and_keeps_a_cluster() {
        let mut now = was();
        now.payload = Some("{\"a\":1}\r\n".into());
        let input = now.input(Some(&was())).unwrap();
        assert!(input.payload.is_none(), "a textarea's CRLF is no change");
        assert!(input.run_every.is_none() && input.fields.label.is_none());

        now.run_every = Some("7200".into());
        assert_eq!(now.input(Some(&was())).unwrap().run_every, Some(7200.0));

        now.label = Some(" ".into());
        let input = now.input(Some(&was())).unwrap();
        assert_eq!(
            input.fields.label.as_deref(),
            Some(""),
            "an emptied label is removed"
        );

        let mut no_cluster = was();
        no_cluster.cluster = Some("gpu".into());
        let mut emptied = was();
        emptied.cluster = Some(String::new());
        let refused = emptied.input(Some(&no_cluster)).err().unwrap();
        assert_eq!(refused.msg, "cluster cannot be removed, only changed");

        now.label = None;
        let input = now.input(Some(&was())).unwrap();
        assert!(input.fields.label.is_none(), "a field not sent is kept");

        now.run_every = Some("often".into());
        let refused = now.input(Some(&was())).err().unwrap();
        assert_eq!(refused.msg, "run_every must be a number");
    }
}
