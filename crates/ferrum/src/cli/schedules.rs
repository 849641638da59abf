//! Schedules: `ferrum schedule create|cancel`, `ferrum list schedules`.

use anyhow::Context;
use serde_json::{json, Map};

use super::client::Api;
use super::output::{self, Format};
use super::tasks::{PayloadArgs, TaskOptions};

#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// The code each run queues a task of.
    pub code: String,
    #[command(flatten)]
    pub payload: PayloadArgs,
    #[command(flatten)]
    pub options: TaskOptions,
    /// Seconds between runs (at least 60); without it (and --cron) the schedule runs once.
    #[arg(long, conflicts_with = "cron")]
    pub run_every: Option<i32>,
    /// A cron expression: 5 fields (minute hour day month weekday), or 6 with seconds first.
    #[arg(long)]
    pub cron: Option<String>,
    /// The IANA time zone --cron is read in (default UTC), e.g. Europe/Paris.
    #[arg(long, requires = "cron")]
    pub timezone: Option<String>,
    /// Most runs.
    #[arg(long)]
    pub run_times: Option<i32>,
    /// First run, RFC 3339 (default: now).
    #[arg(long)]
    pub start_at: Option<String>,
    /// No runs after this time, RFC 3339.
    #[arg(long)]
    pub end_at: Option<String>,
}

pub async fn create(api: &Api, args: CreateArgs, format: Format) -> anyhow::Result<()> {
    let mut s = Map::new();
    s.insert("code_name".into(), json!(args.code));
    s.insert("payload".into(), json!(args.payload.text()?));
    args.options.insert_into(&mut s);
    let fields = [
        ("run_every", args.run_every.map(|v| json!(v))),
        ("cron", args.cron.map(|v| json!(v))),
        ("timezone", args.timezone.map(|v| json!(v))),
        ("run_times", args.run_times.map(|v| json!(v))),
        ("start_at", args.start_at.map(|v| json!(v))),
        ("end_at", args.end_at.map(|v| json!(v))),
    ];
    for (k, v) in fields {
        if let Some(v) = v {
            s.insert(k.into(), v);
        }
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
