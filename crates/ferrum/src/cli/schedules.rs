//! Schedules: `ferrum schedule create|update|pause|resume|cancel`, `ferrum list schedules`.

use anyhow::Context;
use serde_json::{json, Map, Value};

use super::client::Api;
use super::output::{self, Format};
use super::tasks::{PayloadArgs, TaskOptions};

/// How a schedule repeats and ends: the same options for `create` and `update`.
#[derive(Debug, clap::Args)]
pub struct TimingArgs {
    /// Seconds between runs (at least 60 by default); replaces a cron. Without it and
    /// --cron, a new schedule runs once.
    #[arg(long, conflicts_with = "cron")]
    pub run_every: Option<i32>,
    /// A cron expression: 5 fields (minute hour day month weekday), or 6 with seconds first;
    /// replaces run_every.
    #[arg(long)]
    pub cron: Option<String>,
    /// The IANA time zone the cron is read in (default UTC), e.g. Europe/Paris.
    #[arg(long, conflicts_with = "run_every")]
    pub timezone: Option<String>,
    /// What slots missed while no API ran do: `run_once` (default), `skip` or `catch_up`.
    #[arg(long, value_parser = ["run_once", "skip", "catch_up"])]
    pub misfire: Option<String>,
    /// Most runs.
    #[arg(long)]
    pub run_times: Option<i32>,
    /// No runs after this time, RFC 3339.
    #[arg(long)]
    pub end_at: Option<String>,
}

impl TimingArgs {
    /// Puts each option that was given into the request body `s`.
    fn insert_into(self, s: &mut Map<String, Value>) {
        let fields = [
            ("run_every", self.run_every.map(|v| json!(v))),
            ("cron", self.cron.map(|v| json!(v))),
            ("timezone", self.timezone.map(|v| json!(v))),
            ("misfire", self.misfire.map(|v| json!(v))),
            ("run_times", self.run_times.map(|v| json!(v))),
            ("end_at", self.end_at.map(|v| json!(v))),
        ];
        for (k, v) in fields {
            if let Some(v) = v {
                s.insert(k.into(), v);
            }
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// The code each run queues a task of.
    pub code: String,
    #[command(flatten)]
    pub payload: PayloadArgs,
    #[command(flatten)]
    pub options: TaskOptions,
    #[command(flatten)]
    pub timing: TimingArgs,
    /// First run, RFC 3339 (default: now).
    #[arg(long)]
    pub start_at: Option<String>,
}

pub async fn create(api: &Api, args: CreateArgs, format: Format) -> anyhow::Result<()> {
    let mut s = Map::new();
    s.insert("code_name".into(), json!(args.code));
    s.insert("payload".into(), json!(args.payload.text()?));
    args.options.insert_into(&mut s);
    args.timing.insert_into(&mut s);
    if let Some(start_at) = args.start_at {
        s.insert("start_at".into(), json!(start_at));
    }
    let answer = api
        .post_json(
            &api.project_path("schedules")?,
            &json!({ "schedules": [s] }),
        )
        .await?;
    let id = answer["schedules"][0]["id"]
        .as_str()
        .context("the API did not return a schedule id")?;
    if format.is_json() {
        output::json(&json!({ "id": id }));
    } else {
        println!("{id}");
    }
    Ok(())
}

/// What `ferrum schedule update` may change; what is not given stays as it is.
#[derive(Debug, clap::Args)]
pub struct UpdateArgs {
    /// The schedule to change.
    pub id: String,
    #[command(flatten)]
    pub payload: PayloadArgs,
    #[command(flatten)]
    pub options: TaskOptions,
    #[command(flatten)]
    pub timing: TimingArgs,
}

pub async fn update(api: &Api, args: UpdateArgs, format: Format) -> anyhow::Result<()> {
    let mut s = Map::new();
    args.options.insert_into(&mut s);
    if let Some(payload) = args.payload.given()? {
        s.insert("payload".into(), json!(payload));
    }
    args.timing.insert_into(&mut s);
    anyhow::ensure!(!s.is_empty(), "nothing to change: give at least one option");
    let id = &args.id;
    let path = api.project_path(&format!("schedules/{id}"))?;
    api.put_json(&path, &json!(s)).await?;
    // The update answers only a message; the schedule as it now is says when it runs next.
    let answer = api.get_json(&path).await?;
    if format.is_json() {
        output::json(&answer);
    } else {
        let next = answer["next_start"].as_str().unwrap_or("-");
        println!("Schedule {id} updated; next run {next}");
    }
    Ok(())
}

/// Pauses (`pause`) or resumes (`resume`) a schedule; prints the API's answer.
pub async fn set_paused(api: &Api, id: &str, action: &str, format: Format) -> anyhow::Result<()> {
    let path = api.project_path(&format!("schedules/{id}/{action}"))?;
    let answer = api.post_json(&path, &json!({})).await?;
    if format.is_json() {
        output::json(&answer);
    } else {
        println!(
            "Schedule {id}: {}",
            answer["msg"].as_str().unwrap_or(action)
        );
    }
    Ok(())
}

pub async fn cancel(api: &Api, id: &str, format: Format) -> anyhow::Result<()> {
    let path = api.project_path(&format!("schedules/{id}/cancel"))?;
    let answer = api.post_json(&path, &json!({})).await?;
    if format.is_json() {
        output::json(&answer);
    } else {
        println!("Schedule {id} cancelled");
    }
    Ok(())
}

pub async fn list(api: &Api, format: Format) -> anyhow::Result<()> {
    let mut answer = api
        .get_json(&api.project_path("schedules?per_page=100")?)
        .await?;
    // Cron and one-time schedules have no interval: a table shows `-`, not the API's 0.
    if !format.is_json() {
        for s in answer["schedules"].as_array_mut().into_iter().flatten() {
            if s["run_every"] == 0 {
                s["run_every"] = serde_json::Value::Null;
            }
        }
    }
    output::list(
        format,
        &answer,
        "schedules",
        &[
            "id",
            "code_name",
            "status",
            "next_start",
            "run_every",
            "cron",
            "timezone",
            "run_count",
            "label",
        ],
    );
    Ok(())
}
