//! `ferrum quota`: a project's quotas. `show` works with the project's own token; `set`
//! needs an admin token and changes only the quotas it names (`none` lifts one).

use anyhow::bail;
use serde_json::Value;

use super::client::Api;
use super::output::{self, Format};

const FIELDS: [&str; 4] = [
    "max_concurrency",
    "max_queued",
    "tasks_per_minute",
    "retention_days",
];

#[derive(Debug, clap::Subcommand)]
pub enum QuotaCommand {
    /// Shows the project's quotas (none: no limit).
    Show,
    /// Sets quotas of the project (admin token); each takes a positive number or `none`.
    Set(SetArgs),
}

#[derive(Debug, clap::Args)]
pub struct SetArgs {
    /// Most tasks of the project running at once.
    #[arg(long, value_parser = limit)]
    max_concurrency: Option<Value>,
    /// Most tasks of the project waiting in the queue; past it, queueing answers 429.
    #[arg(long, value_parser = limit)]
    max_queued: Option<Value>,
    /// Most tasks the project may queue per minute; past it, queueing answers 429.
    #[arg(long, value_parser = limit)]
    tasks_per_minute: Option<Value>,
    /// Days the project's finished tasks are kept (with their logs and results); then they
    /// are deleted. `none`: the operator's default (`ferrum serve --retention-days`).
    #[arg(long, value_parser = limit)]
    retention_days: Option<Value>,
}

/// A positive number, or `none` for no limit.
fn limit(s: &str) -> Result<Value, String> {
    if s == "none" {
        return Ok(Value::Null);
    }
    match s.parse::<i32>() {
        Ok(n) if n >= 1 => Ok(n.into()),
        _ => Err(format!(
            "expected a number of at least 1 or `none`, not {s:?}"
        )),
    }
}

pub async fn command(api: &Api, cmd: QuotaCommand, format: Format) -> anyhow::Result<()> {
    let path = api.project_path("quotas")?;
    let mut quotas = api.get_json(&path).await?;
    if let QuotaCommand::Set(args) = cmd {
        let given = [
            args.max_concurrency,
            args.max_queued,
            args.tasks_per_minute,
            args.retention_days,
        ];
        if given.iter().all(Option::is_none) {
            bail!("name at least one quota to set, e.g. --max-queued 1000 (see --help)");
        }
        for (field, value) in FIELDS.iter().zip(given) {
            if let Some(v) = value {
                quotas[*field] = v;
            }
        }
        quotas = api.put_json(&path, &quotas).await?;
    }
    if format.is_json() {
        output::json(&quotas);
    } else {
        let rows: Vec<Vec<String>> = FIELDS
            .iter()
            .map(|f| {
                let v = &quotas[*f];
                let shown = if v.is_null() {
                    "none".to_owned()
                } else {
                    v.to_string()
                };
                vec![(*f).to_owned(), shown]
            })
            .collect();
        output::table(&["QUOTA", "VALUE"], &rows);
    }
    Ok(())
}
