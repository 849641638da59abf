//! `ferrum runners` and `ferrum clusters`: the runner fleet (an admin token; a tenant's token
//! is refused by the API). `ferrum runners drain ID` asks a runner to lease nothing more.

use serde_json::{json, Value};

use super::client::Api;
use super::output::{self, Format};

const RUNNER_COLUMNS: &[&str] = &[
    "id",
    "cluster",
    "hostname",
    "version",
    "status",
    "running",
    "concurrency",
    "last_seen_at",
];
const CLUSTER_COLUMNS: &[&str] = &["id", "runners", "runners_draining", "capacity", "running"];

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct RunnersArgs {
    #[command(subcommand)]
    command: Option<RunnersCommand>,
    /// Only the runners of this cluster.
    #[arg(long)]
    cluster: Option<String>,
    /// Page of the list, from 0 (newest runners first).
    #[arg(long, default_value_t = 0)]
    page: u32,
    /// Runners per page.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=100))]
    per_page: u32,
}

#[derive(Debug, clap::Subcommand)]
enum RunnersCommand {
    /// Drains a runner: it leases nothing more, finishes what it runs, then shows as drained.
    Drain {
        /// The runner's id (from `ferrum runners`).
        id: String,
    },
}

pub async fn runners(api: &Api, args: RunnersArgs, format: Format) -> anyhow::Result<()> {
    if let Some(RunnersCommand::Drain { id }) = args.command {
        let answer = api
            .post_json(&format!("/2/runners/{id}/drain"), &json!({}))
            .await?;
        if format.is_json() {
            output::json(&answer);
        } else {
            output::record(&answer["runner"], RUNNER_COLUMNS);
        }
        return Ok(());
    }
    let mut query = vec![
        ("page", args.page.to_string()),
        ("per_page", args.per_page.to_string()),
    ];
    if let Some(cluster) = args.cluster {
        query.push(("cluster", cluster));
    }
    let answer: Value = api
        .send(api.get("/2/runners").query(&query))
        .await?
        .json()
        .await?;
    output::list(format, &answer, "runners", RUNNER_COLUMNS);
    Ok(())
}

pub async fn clusters(api: &Api, format: Format) -> anyhow::Result<()> {
    let answer = api.get_json("/2/clusters").await?;
    output::list(format, &answer, "clusters", CLUSTER_COLUMNS);
    Ok(())
}
