//! Tasks: `ferrum queue`, `ferrum status`, `ferrum log [--follow]`, `ferrum cancel`,
//! `ferrum retry`, `ferrum list tasks`. Queueing from a JSON-lines file is in [`super::bulk`].

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use ferrum_model::limits::{MAX_DELAY_SECS, MAX_TIMEOUT_SECS};
use serde_json::{json, Map, Value};

use super::client::Api;
use super::output::{self, Format};

/// How often `log --follow` looks for more output.
const FOLLOW_EVERY: Duration = Duration::from_millis(500);

/// A payload given inline or from a file (defaults to `{}`).
#[derive(Debug, clap::Args)]
pub struct PayloadArgs {
    /// The payload, as text (usually JSON).
    #[arg(long, conflicts_with = "payload_file")]
    pub payload: Option<String>,
    /// A file whose contents are the payload.
    #[arg(long)]
    pub payload_file: Option<PathBuf>,
}

impl PayloadArgs {
    /// The payload given, or `{}`.
    pub fn text(&self) -> anyhow::Result<String> {
        Ok(self.given()?.unwrap_or_else(|| "{}".into()))
    }

    /// The payload given, if either option was.
    pub fn given(&self) -> anyhow::Result<Option<String>> {
        match (&self.payload, &self.payload_file) {
            (Some(p), _) => Ok(Some(p.clone())),
            (None, Some(f)) => std::fs::read_to_string(f)
                .map(Some)
                .with_context(|| format!("cannot read payload file {}", f.display())),
            (None, None) => Ok(None),
        }
    }
}

/// The options every task (and every task a schedule makes) may carry.
#[derive(Debug, clap::Args)]
pub struct TaskOptions {
    /// 0 (default), 1 or 2: higher waits less.
    #[arg(long, allow_negative_numbers = true,
          value_parser = clap::value_parser!(i32).range(0..=2))]
    pub priority: Option<i32>,
    /// Seconds the task may run before it is killed (default 3600).
    #[arg(long, allow_negative_numbers = true,
          value_parser = clap::value_parser!(i32).range(1..=i64::from(MAX_TIMEOUT_SECS)))]
    pub timeout: Option<i32>,
    /// The cluster (runner pool) to run on.
    #[arg(long)]
    pub cluster: Option<String>,
    /// A free-text tag.
    #[arg(long)]
    pub label: Option<String>,
}

impl TaskOptions {
    pub fn insert_into(&self, obj: &mut Map<String, Value>) {
        let fields = [
            ("priority", self.priority.map(Value::from)),
            ("timeout", self.timeout.map(Value::from)),
            ("cluster", self.cluster.clone().map(Value::from)),
            ("label", self.label.clone().map(Value::from)),
        ];
        for (k, v) in fields {
            if let Some(v) = v {
                obj.insert(k.into(), v);
            }
        }
    }
}

/// `--delay`: seconds, never negative (a negative number is out of range, not a flag).
#[derive(Debug, clap::Args)]
pub struct DelayArg {
    /// Seconds to wait before the task may run.
    #[arg(long, allow_negative_numbers = true,
          value_parser = clap::value_parser!(i32).range(0..=i64::from(MAX_DELAY_SECS)))]
    pub delay: Option<i32>,
}

#[derive(Debug, clap::Args)]
pub struct QueueArgs {
    /// The code to run (with --jsonl: the code of lines that name none).
    #[arg(required_unless_present = "jsonl")]
    pub code: Option<String>,
    #[command(flatten)]
    pub payload: PayloadArgs,
    #[command(flatten)]
    pub options: TaskOptions,
    #[command(flatten)]
    pub delay: DelayArg,
    /// Queue one task per line of a JSON-lines file (`-` for stdin); each line is a task
    /// object (`code_name`, `payload`, `priority`, `delay`, …) or, without `code_name`, a
    /// payload for CODE. Prints one task id per line, in order.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["payload", "payload_file"])]
    pub jsonl: Option<PathBuf>,
}

pub async fn queue(api: &Api, args: QueueArgs, format: Format) -> anyhow::Result<()> {
    if let Some(file) = &args.jsonl {
        return super::bulk::queue_lines(api, &args, file, format).await;
    }
    let code = args.code.clone().context("name the code to queue")?;
    let mut task = Map::new();
    task.insert("code_name".into(), json!(code));
    task.insert("payload".into(), json!(args.payload.text()?));
    args.options.insert_into(&mut task);
    if let Some(d) = args.delay.delay {
        task.insert("delay".into(), json!(d));
    }
    let answer = api
        .post_json(&api.project_path("tasks")?, &json!({ "tasks": [task] }))
        .await?;
    let id = answer["tasks"][0]["id"]
        .as_str()
        .context("the API did not return a task id")?;
    if format.is_json() {
        output::json(&json!({ "id": id }));
    } else {
        println!("{id}");
    }
    Ok(())
}

/// Keys `ferrum status` shows, in order.
const STATUS_KEYS: &[&str] = &[
    "id",
    "code_name",
    "status",
    "priority",
    "cluster",
    "label",
    "created_at",
    "start_time",
    "end_time",
    "duration",
    "retry_count",
    "percent",
    "msg",
];

async fn task(api: &Api, id: &str) -> anyhow::Result<Value> {
    api.get_json(&api.project_path(&format!("tasks/{id}"))?)
        .await
}

pub async fn status(api: &Api, id: &str, format: Format) -> anyhow::Result<()> {
    let t = task(api, id).await?;
    if format.is_json() {
        output::json(&t);
    } else {
        output::record(&t, STATUS_KEYS);
    }
    Ok(())
}

fn finished(task: &Value) -> bool {
    !matches!(
        task["status"].as_str(),
        Some("queued" | "preparing" | "running")
    )
}

/// Prints the task's log; with `follow`, keeps printing new output until the task ends, then
/// says how it ended and fails unless it completed (so `ferrum log ID -f && next` is honest).
pub async fn log(api: &Api, id: &str, follow: bool, format: Format) -> anyhow::Result<()> {
    let path = api.project_path(&format!("tasks/{id}/log"))?;
    let mut shown = 0;
    let mut out = std::io::stdout();
    loop {
        // Status first: once it is final, the log fetched after it is complete.
        let t = task(api, id).await?;
        let log = api.get_bytes_if_any(&path).await?;
        let done = finished(&t);
        if !follow || done {
            let status = output::field(&t, "status");
            let log = log.unwrap_or_default();
            if format.is_json() {
                let text = String::from_utf8_lossy(&log);
                output::json(&json!({ "id": id, "status": status, "log": text }));
            } else {
                out.write_all(log.get(shown..).unwrap_or_default())?;
                out.flush()?;
                if !follow && log.is_empty() && !done {
                    bail!("task {id} is {status} and has no log yet (add --follow to wait)");
                }
            }
            return if follow { ended(id, &t) } else { Ok(()) };
        }
        if let (Some(log), false) = (log, format.is_json()) {
            if log.len() > shown {
                out.write_all(&log[shown..])?;
                out.flush()?;
                shown = log.len();
            }
        }
        tokio::time::sleep(FOLLOW_EVERY).await;
    }
}

/// How a task a command waited for ended: a line on stderr when it completed, an error (exit
/// status 1) naming its status and message otherwise.
pub fn ended(id: &str, task: &Value) -> anyhow::Result<()> {
    let status = output::field(task, "status");
    if status == "complete" {
        eprintln!("task {id} complete");
        return Ok(());
    }
    let msg = output::field(task, "msg");
    let why = if msg.is_empty() {
        String::new()
    } else {
        format!(": {msg}")
    };
    Err(anyhow!("task {id} ended {status}{why}"))
}

/// Cancels a task. A task that already ended is left as it is, and the command says so.
pub async fn cancel(api: &Api, id: &str, format: Format) -> anyhow::Result<()> {
    let before = task(api, id).await?;
    let path = api.project_path(&format!("tasks/{id}/cancel"))?;
    api.post_json(&path, &json!({})).await?;
    let after = task(api, id).await?;
    let status = output::field(&after, "status");
    if format.is_json() {
        output::json(&json!({ "id": id, "status": status }));
    } else if finished(&before) && status != "cancelled" {
        println!("Task {id} had already ended {status}; nothing to cancel");
    } else {
        println!("Task {id} {status}");
    }
    Ok(())
}

/// Queues a copy of a task (after `delay` seconds); prints the new task's id.
pub async fn retry(api: &Api, id: &str, delay: DelayArg, format: Format) -> anyhow::Result<()> {
    let path = api.project_path(&format!("tasks/{id}/retry"))?;
    let body = match delay.delay {
        Some(d) => json!({ "delay": d }),
        None => json!({}),
    };
    let answer = api.post_json(&path, &body).await?;
    let new = answer["tasks"][0]["id"]
        .as_str()
        .context("the API did not return a task id")?;
    if format.is_json() {
        output::json(&json!({ "id": new, "retry_of": id }));
    } else {
        println!("{new}");
    }
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct ListTasksArgs {
    /// Only tasks of this code.
    #[arg(long)]
    pub code: Option<String>,
    /// Only tasks with this status (repeatable).
    #[arg(long, value_parser = ["queued", "preparing", "running", "complete", "error", "cancelled", "killed", "timeout"])]
    pub status: Vec<String>,
    /// Page number, from 0.
    #[arg(long, default_value_t = 0)]
    pub page: u32,
    /// Tasks per page (at most 100).
    #[arg(long, default_value_t = 30)]
    pub per_page: u32,
}

pub async fn list(api: &Api, args: ListTasksArgs, format: Format) -> anyhow::Result<()> {
    let mut url = reqwest::Url::parse("http://query/")?;
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("page", &args.page.to_string());
        q.append_pair("per_page", &args.per_page.to_string());
        if let Some(code) = &args.code {
            q.append_pair("code_name", code);
        }
        for s in &args.status {
            q.append_pair(s, "1");
        }
    }
    let path = api.project_path(&format!("tasks?{}", url.query().unwrap_or_default()))?;
    let answer = api.get_json(&path).await?;
    output::list(
        format,
        &answer,
        "tasks",
        &[
            "id",
            "code_name",
            "status",
            "created_at",
            "duration",
            "label",
        ],
    );
    Ok(())
}
