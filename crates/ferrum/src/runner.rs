//! `ferrum runner` and `ferrum stacks build`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use ferrum_runner::{stacks, RunnerConfig};

#[derive(clap::Args)]
pub struct RunnerArgs {
    /// Base URL of the Ferrum API.
    #[arg(long, env = "FERRUM_API")]
    api: String,
    /// Runner token (from `ferrum runner-token`); it binds the runner to its cluster.
    #[arg(long, env = "FERRUM_RUNNER_TOKEN")]
    token: String,
    /// The cluster this runner is expected to serve (checked against the token's).
    #[arg(long, env = "FERRUM_CLUSTER")]
    cluster: Option<String>,
    /// Most tasks run at once.
    #[arg(long, env = "FERRUM_CONCURRENCY")]
    concurrency: Option<u32>,
    /// Where task directories and the zip cache live (bind-mounted into containers).
    #[arg(
        long,
        env = "FERRUM_WORK_DIR",
        default_value = "/var/lib/ferrum/runner"
    )]
    work_dir: PathBuf,
    /// Identifies this runner's containers; orphans with this id are removed at start.
    /// Defaults to the host name. Give each runner on one host its own.
    #[arg(long, env = "FERRUM_HOST_ID")]
    host_id: Option<String>,
    /// Docker network mode of task containers (e.g. `bridge`, `none`, `host`).
    #[arg(long, env = "FERRUM_NETWORK")]
    network: Option<String>,
    /// Seconds running tasks may take to finish after SIGTERM.
    #[arg(long, env = "FERRUM_DRAIN_TIMEOUT", default_value_t = 60)]
    drain_timeout: u64,
    /// Per-task log cap in bytes.
    #[arg(long, env = "FERRUM_LOG_CAP")]
    log_cap: Option<u64>,
}

#[derive(clap::Args)]
pub struct StacksArgs {
    #[command(subcommand)]
    command: StacksCommand,
}

#[derive(clap::Subcommand)]
enum StacksCommand {
    /// Builds stack images locally, without a registry.
    Build {
        /// Stacks to build (default: all).
        names: Vec<String>,
        /// Rebuild images that already exist.
        #[arg(long)]
        force: bool,
    },
    /// Lists the stack catalog.
    List,
}

pub async fn runner(args: RunnerArgs) -> anyhow::Result<()> {
    let mut config = RunnerConfig::new(args.api, args.token, args.work_dir);
    config.cluster = args.cluster;
    if let Some(n) = args.concurrency {
        config.concurrency = n;
    }
    if let Some(id) = args.host_id {
        config.executor.host_id = id;
    }
    if let Some(cap) = args.log_cap {
        config.executor.log_cap_bytes = cap;
    }
    config.executor.network_mode = args.network;
    config.drain_timeout = Duration::from_secs(args.drain_timeout);
    ferrum_runner::run(config, crate::server::shutdown_signal())
        .await
        .context("runner failed")
}

pub async fn stacks(args: StacksArgs) -> anyhow::Result<()> {
    match args.command {
        StacksCommand::Build { names, force } => {
            for built in stacks::build(&names, force).await? {
                println!("{}: {:?}", built.image, built.status);
            }
        }
        StacksCommand::List => {
            for image in stacks::images() {
                println!("{image}");
            }
        }
    }
    Ok(())
}
