//! Schedule routes (contract §3.4 S1–S5). Firing them is a background duty.

use axum::extract::State;
use axum::Json;
use chrono::Utc;
use ferrum_model::validation::{new_schedule, ScheduleOptions};
use ferrum_model::{Id, NewSchedule, Schedule, ScheduleStatus, TaskFilter};
use ferrum_store::{ScheduleTiming, ScheduleUpdate};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::auth::ProjectScope;
use super::extract::{optional_time, payload_bytes, LenientJson, PageArgs, QueryArgs, ScheduleId};
use super::render::{Created, Msg, ScheduleJson, TaskJson};
use super::tasks::{in_element, TaskFields};
use super::Route;
use crate::openapi::bodies;
use crate::{ApiConfig, ApiError, AppState};

const SCHEDULES: &str = "/2/projects/{project_id}/schedules";
const SCHEDULE: &str = "/2/projects/{project_id}/schedules/{schedule_id}";

pub fn routes() -> Vec<Route> {
    vec![
        Route::get(SCHEDULES, "List schedules, newest first", list).query(bodies::paging()),
        Route::post(
            SCHEDULES,
            "Create schedules: {\"schedules\":[{\"code_name\",\"payload\",\"run_every\",…}]}",
            create,
        )
        .body(bodies::schedules())
        .errors(&[403]),
        Route::get(SCHEDULE, "Get a schedule", get_schedule),
        Route::put(
            SCHEDULE,
            "Update some fields of a schedule, how it repeats included (409 once it has ended)",
            put_schedule,
        )
        .body(bodies::schedule_update())
        .errors(&[409]),
        Route::post(
            "/2/projects/{project_id}/schedules/{schedule_id}/cancel",
            "Cancel a schedule; tasks it already queued are not touched",
            cancel,
        ),
        Route::post(
            "/2/projects/{project_id}/schedules/{schedule_id}/pause",
            "Ferrum: pause a schedule (it stays scheduled but does not fire)",
            pause,
        )
        .errors(&[409]),
        Route::post(
            "/2/projects/{project_id}/schedules/{schedule_id}/resume",
            "Ferrum: resume a paused schedule at its next future slot",
            resume,
        )
        .errors(&[409]),
        Route::get(
            "/2/projects/{project_id}/schedules/{schedule_id}/tasks",
            "Ferrum: the tasks a schedule queued, newest first (page, per_page)",
            tasks_of,
        )
        .query(bodies::paging()),
    ]
}

/// One S2 element, or an S5 body. `delay` (in [`TaskFields`]) offsets the first run when
/// `start_at` is absent; `task_delay` delays every task (contract §8.9). `cron` (5 fields, or
/// 6 with seconds), `timezone` (IANA, default UTC) and `misfire` (`run_once`, `skip`,
/// `catch_up`) are Ferrum's additions.
///
/// The dashboard's schedule forms build one too and go through [`ScheduleInput::into_new`],
/// [`store_new`] and [`update_schedule`], so a schedule made or edited there passes exactly
/// the API's checks and answers its messages.
#[derive(Deserialize, Default)]
pub(crate) struct ScheduleInput {
    pub code_name: Option<String>,
    pub payload: Option<Value>,
    pub start_at: Option<String>,
    pub end_at: Option<String>,
    pub run_every: Option<f64>,
    pub run_times: Option<f64>,
    pub task_delay: Option<f64>,
    pub cron: Option<String>,
    pub timezone: Option<String>,
    pub misfire: Option<String>,
    #[serde(flatten)]
    pub fields: TaskFields,
}

impl ScheduleInput {
    fn options(
        self,
        config: &ApiConfig,
    ) -> Result<(Option<String>, Vec<u8>, ScheduleOptions), ApiError> {
        let min_interval = config.min_schedule_interval.as_secs();
        let opts = ScheduleOptions {
            start_at: optional_time("start_at", self.start_at.as_deref())?,
            end_at: optional_time("end_at", self.end_at.as_deref())?,
            run_every: self.run_every,
            run_times: self.run_times,
            task_delay: self.task_delay,
            cron: self.cron,
            timezone: self.timezone,
            misfire: self.misfire,
            min_interval_secs: Some(u32::try_from(min_interval).unwrap_or(u32::MAX)),
            task: self.fields.into(),
        };
        Ok((self.code_name, payload_bytes(self.payload), opts))
    }

    pub(crate) fn into_new(self, config: &ApiConfig) -> Result<NewSchedule, ApiError> {
        let (code_name, payload, opts) = self.options(config)?;
        Ok(new_schedule(
            &code_name.unwrap_or_default(),
            payload,
            opts,
            Utc::now(),
        )?)
    }

    /// The fields this body sets, checked by the same rules as a new schedule; `null` and
    /// absent fields stay as they are. An empty `label`, an empty or unset (`0001-01-01…`)
    /// `end_at` and `run_times` 0 remove the label and the limits, as they read when unset. `start_at` and `code_name` cannot change: that is a new
    /// schedule. How it repeats can (`cron`, `timezone`, `misfire`, `run_every`; a cron given
    /// replaces `run_every` and the other way round), on an active schedule: its next slot
    /// then follows the new recurrence, counted from now (from its last run for `run_every`),
    /// and `run_count` stays.
    pub(crate) fn into_update(
        self,
        existing: &Schedule,
        config: &ApiConfig,
    ) -> Result<ScheduleUpdate, ApiError> {
        let retimed = self.cron.is_some()
            || self.timezone.is_some()
            || self.misfire.is_some()
            || self.run_every.is_some();
        if retimed && existing.status != ScheduleStatus::Scheduled {
            return Err(ApiError::conflict(format!(
                "the schedule is {}: its cron, timezone, misfire and run_every cannot change; \
                 create a new one",
                existing.status.as_str()
            )));
        }
        let given_payload = self.payload.is_some();
        let given_priority = self.fields.priority.is_some();
        let given_timeout = self.fields.timeout.is_some();
        let given_cluster = self.fields.cluster.is_some();
        let given_label = self.fields.label.is_some();
        let given_task_delay = self.task_delay.is_some();
        let given_end_at = self.end_at.is_some();
        let given_run_times = self.run_times.is_some();
        let (_, payload, mut opts) = self.options(config)?;
        let now = Utc::now();
        if opts.cron.is_none() && opts.run_every.is_none() {
            opts.cron.clone_from(&existing.cron);
            opts.run_every = existing.run_every.map(f64::from);
        }
        // The stored zone goes with the stored cron; one given with run_every is refused.
        if opts.timezone.is_none() && opts.cron.is_some() {
            opts.timezone.clone_from(&existing.timezone);
        }
        if opts.misfire.is_none() {
            opts.misfire = Some(existing.misfire.as_str().to_owned());
        }
        opts.start_at = Some(if retimed {
            existing.start_at.max(now)
        } else {
            existing.start_at
        });
        let payload = if given_payload {
            payload
        } else {
            existing.payload.clone()
        };
        let valid = new_schedule(&existing.code_name, payload, opts, now)?;
        let timing = retimed.then(|| {
            // Every `run_every` from the last run, or now when that has passed.
            let next_start = match (valid.cron.as_ref(), valid.run_every, existing.last_run_time) {
                (None, Some(every), Some(last)) => valid
                    .first_slot
                    .max(last + chrono::Duration::seconds(every.into())),
                _ => valid.first_slot,
            };
            ScheduleTiming {
                run_every: valid.run_every,
                cron: valid.cron.clone(),
                timezone: valid.timezone.clone(),
                misfire: valid.misfire,
                next_start,
            }
        });
        Ok(ScheduleUpdate {
            payload: given_payload.then_some(valid.payload),
            priority: given_priority.then_some(valid.priority),
            timeout: given_timeout.then_some(valid.timeout),
            cluster: given_cluster.then_some(valid.cluster),
            label: given_label.then_some(valid.label),
            run_times: given_run_times.then_some(valid.run_times),
            end_at: given_end_at.then_some(valid.end_at),
            task_delay: given_task_delay.then_some(valid.task_delay),
            timing,
        })
    }
}

async fn find_schedule(state: &AppState, project: Id, id: Id) -> Result<Schedule, ApiError> {
    state
        .store
        .schedule(project, id)
        .await?
        .ok_or_else(|| ApiError::not_found("Schedule not found"))
}

/// Stores validated schedules, all or none, within the project's limit of active schedules
/// (S2, and the dashboard's form).
pub(crate) async fn store_new(
    state: &AppState,
    project: Id,
    schedules: Vec<NewSchedule>,
) -> Result<Vec<Id>, ApiError> {
    let limit = state.config.max_schedules_per_project;
    Ok(state
        .store
        .create_schedules(project, schedules, limit)
        .await?)
}

/// S5: checks `input` against schedule `id` ([`ScheduleInput::into_update`]) and writes it;
/// the API's `PUT` and the dashboard's Edit form.
pub(crate) async fn update_schedule(
    state: &AppState,
    project: Id,
    id: Id,
    input: ScheduleInput,
) -> Result<(), ApiError> {
    let existing = find_schedule(state, project, id).await?;
    let update = input.into_update(&existing, &state.config)?;
    if !state.store.update_schedule(project, id, update).await? {
        return Err(ApiError::not_found("Schedule not found"));
    }
    Ok(())
}

/// The schedule `existing` becomes once the store applies `u` (`ScheduleStore::update_schedule`):
/// what `u` sets replaces the stored value, the rest stays, and a schedule already past its
/// new `run_times` or `end_at` ends. For previews: nothing is written.
pub(crate) fn updated(existing: &Schedule, u: ScheduleUpdate) -> Schedule {
    let mut s = existing.clone();
    s.payload = u.payload.unwrap_or(s.payload);
    s.priority = u.priority.unwrap_or(s.priority);
    s.timeout = u.timeout.unwrap_or(s.timeout);
    s.cluster = u.cluster.unwrap_or(s.cluster);
    s.label = u.label.unwrap_or(s.label);
    if let Some(t) = u.timing.filter(|_| s.status == ScheduleStatus::Scheduled) {
        s.run_every = t.run_every;
        s.cron = t.cron;
        s.timezone = t.timezone;
        s.misfire = t.misfire;
        s.next_start = Some(t.next_start);
    }
    s.run_times = u.run_times.unwrap_or(s.run_times);
    s.end_at = u.end_at.unwrap_or(s.end_at);
    s.task_delay = u.task_delay.unwrap_or(s.task_delay);
    let past_end = matches!((s.next_start, s.end_at), (Some(next), Some(end)) if next > end);
    let ran_out = s.run_times.is_some_and(|max| s.run_count >= max);
    if s.status == ScheduleStatus::Scheduled && (past_end || ran_out) {
        s.status = ScheduleStatus::Complete;
        s.next_start = None;
    }
    s
}

#[derive(Serialize)]
struct ScheduleList {
    schedules: Vec<ScheduleJson>,
}

async fn list(
    ProjectScope(project): ProjectScope,
    State(state): State<AppState>,
    QueryArgs(args): QueryArgs<PageArgs>,
) -> Result<Json<ScheduleList>, ApiError> {
    let schedules = state.store.schedules(project.id, args.page()).await?;
    Ok(Json(ScheduleList {
        schedules: schedules.iter().map(ScheduleJson::from).collect(),
    }))
}

#[derive(Deserialize)]
struct CreateBody {
    schedules: Option<Vec<ScheduleInput>>,
}

#[derive(Serialize)]
struct Scheduled {
    msg: &'static str,
    schedules: Vec<Created>,
}

/// All-or-nothing; one `{"id"}` per input schedule, in input order.
async fn create(
    ProjectScope(project): ProjectScope,
    State(state): State<AppState>,
    LenientJson(body): LenientJson<CreateBody>,
) -> Result<Json<Scheduled>, ApiError> {
    let inputs = body.schedules.unwrap_or_default();
    if inputs.is_empty() {
        return Err(ApiError::bad_request(
            "schedules must hold at least one schedule",
        ));
    }
    let schedules = inputs
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            s.into_new(&state.config)
                .map_err(|e| in_element("schedules", i, e))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let ids = store_new(&state, project.id, schedules).await?;
    Ok(Json(Scheduled {
        msg: "Scheduled",
        schedules: ids.into_iter().map(|id| Created { id }).collect(),
    }))
}

async fn get_schedule(
    ProjectScope(project): ProjectScope,
    ScheduleId(id): ScheduleId,
    State(state): State<AppState>,
) -> Result<Json<ScheduleJson>, ApiError> {
    let schedule = find_schedule(&state, project.id, id).await?;
    Ok(Json(ScheduleJson::from(&schedule)))
}

async fn put_schedule(
    ProjectScope(project): ProjectScope,
    ScheduleId(id): ScheduleId,
    State(state): State<AppState>,
    LenientJson(body): LenientJson<ScheduleInput>,
) -> Result<Json<Msg>, ApiError> {
    update_schedule(&state, project.id, id, body).await?;
    Ok(Json(Msg::new("Updated")))
}

async fn cancel(
    ProjectScope(project): ProjectScope,
    ScheduleId(id): ScheduleId,
    State(state): State<AppState>,
) -> Result<Json<Msg>, ApiError> {
    if !state.store.cancel_schedule(project.id, id).await? {
        return Err(ApiError::not_found("Schedule not found"));
    }
    Ok(Json(Msg::new("Cancelled")))
}

/// Pauses or resumes; a schedule that is complete or cancelled cannot be either.
async fn set_paused(
    state: &AppState,
    project: Id,
    id: Id,
    paused: bool,
) -> Result<Json<Msg>, ApiError> {
    let schedule = find_schedule(state, project, id).await?;
    if schedule.status != ScheduleStatus::Scheduled {
        return Err(ApiError::conflict(format!(
            "Schedule is {}; only an active schedule can be paused or resumed",
            schedule.status.as_str()
        )));
    }
    let changed = state
        .store
        .set_schedule_paused(project, id, paused)
        .await?
        .ok_or_else(|| ApiError::not_found("Schedule not found"))?;
    Ok(Json(Msg::new(match (paused, changed) {
        (true, true) => "Paused",
        (true, false) => "Already paused",
        (false, true) => "Resumed",
        (false, false) => "Already resumed",
    })))
}

async fn pause(
    ProjectScope(project): ProjectScope,
    ScheduleId(id): ScheduleId,
    State(state): State<AppState>,
) -> Result<Json<Msg>, ApiError> {
    set_paused(&state, project.id, id, true).await
}

async fn resume(
    ProjectScope(project): ProjectScope,
    ScheduleId(id): ScheduleId,
    State(state): State<AppState>,
) -> Result<Json<Msg>, ApiError> {
    set_paused(&state, project.id, id, false).await
}

#[derive(Serialize)]
struct TaskList {
    tasks: Vec<TaskJson>,
}

/// The same list as `GET …/tasks?schedule_id=`, under the schedule.
async fn tasks_of(
    ProjectScope(project): ProjectScope,
    ScheduleId(id): ScheduleId,
    State(state): State<AppState>,
    QueryArgs(args): QueryArgs<PageArgs>,
) -> Result<Json<TaskList>, ApiError> {
    find_schedule(&state, project.id, id).await?;
    let filter = TaskFilter {
        schedule_id: Some(id),
        page: args.page(),
        ..TaskFilter::default()
    };
    let tasks = state.store.tasks(project.id, &filter).await?;
    Ok(Json(TaskList {
        tasks: tasks.iter().map(TaskJson::from).collect(),
    }))
}
