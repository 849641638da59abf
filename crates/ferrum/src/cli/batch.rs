//! Batches: `ferrum batch run|status|results|cancel`.
//!
//! `batch run --wait` shows a progress bar (done / total / failed, on a terminal only) and,
//! once the batch has ended, prints every item in index order as one JSON line, the way
//! IronResponse handed results back.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::{json, Map, Value};

use super::client::Api;
use super::output::{self, Format};

/// How often `--wait` looks at the batch.
const POLL_EVERY: Duration = Duration::from_millis(500);
/// Items per results page (the API's largest).
const RESULTS_PAGE: usize = 1000;

#[derive(clap::Subcommand)]
pub enum BatchCommand {
    /// Queues one task per line of a JSON-lines file, then an optional reduce task.
    Run(RunArgs),
    /// Shows a batch: status, counts per task status, the reduce task.
    Status { id: String },
    /// Prints a batch's items in index order, one JSON line each.
    Results { id: String },
    /// Prints the batch's result: its reduce task's result.
    Result { id: String },
    /// Cancels what has not finished of a batch.
    Cancel { id: String },
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The code each item runs.
    pub code: String,
    /// A JSON-lines file: each non-empty line is one item's payload (a JSON string is used as
    /// it is, any other JSON value as its text).
    #[arg(long)]
    pub payloads: PathBuf,
    /// The code of the reduce task, queued once every item has ended.
    #[arg(long)]
    pub reduce: Option<String>,
    /// Most items running at once.
    #[arg(long)]
    pub max_concurrency: Option<u32>,
    /// Fail the batch (no reduce) once more than this many items failed.
    #[arg(long)]
    pub tolerated_failure_count: Option<u32>,
    /// Fail the batch (no reduce) once more than this percentage of items failed.
    #[arg(long)]
    pub tolerated_failure_percent: Option<u32>,
    /// Automatic retries of a failed item.
    #[arg(long)]
    pub retries: Option<u32>,
    #[command(flatten)]
    pub options: super::tasks::TaskOptions,
    /// Wait for the batch to end, showing progress, then print its items as JSON lines.
    #[arg(long)]
    pub wait: bool,
}

pub async fn run(api: &Api, command: BatchCommand, format: Format) -> anyhow::Result<()> {
    match command {
        BatchCommand::Run(args) => run_batch(api, args, format).await,
        BatchCommand::Status { id } => status(api, &id, format).await,
        BatchCommand::Results { id } => print_results(api, &id).await,
        BatchCommand::Result { id } => print_result(api, &id, format).await,
        BatchCommand::Cancel { id } => {
            let path = api.project_path(&format!("batches/{id}/cancel"))?;
            let answer = api.post_json(&path, &json!({})).await?;
            if format.is_json() {
                output::json(&answer);
            } else {
                println!("{}", output::field(&answer, "msg"));
            }
            Ok(())
        }
    }
}

/// Reads the items of a JSON-lines file.
fn read_items(path: &PathBuf) -> anyhow::Result<Vec<Value>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the payloads file {}", path.display()))?;
    let mut items = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let item = serde_json::from_str(line)
            .with_context(|| format!("{}:{}: not a JSON value", path.display(), n + 1))?;
        items.push(item);
    }
    if items.is_empty() {
        bail!(
            "{} holds no items (one JSON value per line)",
            path.display()
        );
    }
    Ok(items)
}

async fn run_batch(api: &Api, args: RunArgs, format: Format) -> anyhow::Result<()> {
    let mut body = Map::new();
    body.insert("code_name".into(), json!(args.code));
    body.insert("payloads".into(), Value::Array(read_items(&args.payloads)?));
    if let Some(reduce) = &args.reduce {
        body.insert("reduce".into(), json!({"code_name": reduce}));
    }
    let numbers = [
        ("max_concurrency", args.max_concurrency),
        ("tolerated_failure_count", args.tolerated_failure_count),
        ("tolerated_failure_percent", args.tolerated_failure_percent),
        ("retries", args.retries),
    ];
    for (k, v) in numbers {
        if let Some(v) = v {
            body.insert(k.into(), json!(v));
        }
    }
    args.options.insert_into(&mut body);
    let created = api
        .post_json(&api.project_path("batches")?, &Value::Object(body))
        .await?;
    let id = output::field(&created, "id");
    if !args.wait {
        if format.is_json() {
            output::json(&created);
        } else {
            println!("{id}");
        }
        return Ok(());
    }
    let batch = wait(api, &id).await?;
    print_results(api, &id).await?;
    match batch["status"].as_str() {
        Some("complete") => {
            // Stdout holds only the items; where the reduce's result is goes to stderr.
            if batch.get("reduce_task_id").is_some() {
                eprintln!("batch {id} complete; its result: ferrum batch result {id}");
            } else {
                eprintln!("batch {id} complete");
            }
            Ok(())
        }
        Some(st) => bail!(
            "batch {id} ended {st}{}",
            batch["msg"]
                .as_str()
                .map(|m| format!(": {m}"))
                .unwrap_or_default()
        ),
        None => bail!("the API answered a batch without a status"),
    }
}

/// Polls the batch until it ends; a progress bar on stderr while a terminal shows it.
async fn wait(api: &Api, id: &str) -> anyhow::Result<Value> {
    let path = api.project_path(&format!("batches/{id}"))?;
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} done, {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    loop {
        let batch = api.get_json(&path).await?;
        if let Some(bar) = &bar {
            bar.set_length(batch["total"].as_u64().unwrap_or(0));
            bar.set_position(batch["done"].as_u64().unwrap_or(0));
            bar.set_message(format!(
                "{} failed, {}",
                batch["failed"].as_u64().unwrap_or(0),
                batch["status"].as_str().unwrap_or("?")
            ));
        }
        if !matches!(batch["status"].as_str(), Some("running" | "reducing")) {
            if let Some(bar) = bar {
                bar.finish();
            }
            return Ok(batch);
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}

async fn status(api: &Api, id: &str, format: Format) -> anyhow::Result<()> {
    let batch = api
        .get_json(&api.project_path(&format!("batches/{id}"))?)
        .await?;
    if format.is_json() {
        output::json(&batch);
    } else {
        output::record(
            &batch,
            &[
                "id",
                "code_name",
                "status",
                "total",
                "done",
                "failed",
                "counts",
                "reduce_task_id",
                "msg",
                "created_at",
                "updated_at",
            ],
        );
    }
    Ok(())
}

/// Prints every item in index order, one JSON line each.
async fn print_result(api: &Api, id: &str, format: Format) -> anyhow::Result<()> {
    let path = api.project_path(&format!("batches/{id}/result"))?;
    let Some(data) = api.get_bytes_if_any(&path).await? else {
        let batch = api
            .get_json(&api.project_path(&format!("batches/{id}"))?)
            .await?;
        let status = output::field(&batch, "status");
        bail!("batch {id} ({status}) has no result");
    };
    super::result::print(id, &data, format)
}

async fn print_results(api: &Api, id: &str) -> anyhow::Result<()> {
    let mut after: Option<i64> = None;
    let mut out = std::io::stdout().lock();
    loop {
        let mut path =
            api.project_path(&format!("batches/{id}/results?per_page={RESULTS_PAGE}"))?;
        if let Some(a) = after {
            path.push_str(&format!("&after={a}"));
        }
        let page = api.get_json(&path).await?;
        let items = page["results"].as_array().cloned().unwrap_or_default();
        for item in &items {
            writeln!(out, "{item}")?;
        }
        match items.last().and_then(|i| i["index"].as_i64()) {
            Some(last) if items.len() == RESULTS_PAGE => after = Some(last),
            _ => return Ok(()),
        }
    }
}
