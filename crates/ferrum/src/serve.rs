//! `ferrum serve` and the operator commands that talk to the database directly.

use std::sync::Arc;

use anyhow::Context;
use ferrum_api::ApiConfig;
use ferrum_store::{AccountStore, PgStore};

use crate::server;

#[derive(clap::Args)]
pub struct ServeArgs {
    /// Postgres URL.
    #[arg(long, env = "DATABASE_URL")]
    database_url: String,
    /// Address to listen on.
    #[arg(long, env = "FERRUM_LISTEN", default_value = "127.0.0.1:8080")]
    listen: String,
    /// Object store: `file:///path` or `s3://bucket?endpoint=…&region=…`.
    #[arg(
        long,
        env = "FERRUM_BLOB_URL",
        default_value = "file://./ferrum-data/blobs"
    )]
    blob_url: String,
    /// Token of the bootstrap admin user; generated and printed when not set.
    #[arg(long, env = "FERRUM_ADMIN_TOKEN")]
    admin_token: Option<String>,
    /// A runner token for the `default` cluster to accept, for automation.
    #[arg(long, env = "FERRUM_RUNNER_TOKEN")]
    runner_token: Option<String>,
    /// Seconds a runner's lease lasts without a heartbeat; a dead runner's tasks are retried
    /// after this.
    #[arg(long, env = "FERRUM_LEASE_SECS", default_value_t = 30)]
    lease_secs: u64,
    /// Attempts a task gets when its runners keep dying, before it is marked `killed`.
    #[arg(long, env = "FERRUM_MAX_ATTEMPTS", default_value_t = 3)]
    max_attempts: i32,
    /// Label `/metrics` task counters with the project id: one series per project, so only
    /// for a bounded number of projects.
    #[arg(long, env = "FERRUM_METRICS_PER_PROJECT")]
    metrics_per_project: bool,
    /// Largest result (RESULT_FILE) a task may return, in bytes; a larger one ends the task
    /// as `error`.
    #[arg(long, env = "FERRUM_MAX_RESULT_BYTES", default_value_t = 16 * 1024 * 1024)]
    max_result_bytes: u64,
    /// Results up to this many bytes are kept in the database, larger ones in the blob store.
    #[arg(long, env = "FERRUM_RESULT_INLINE_BYTES", default_value_t = 256 * 1024)]
    result_inline_bytes: u64,
    /// Most tasks one attempt of a task may queue with its task token (IRON_TOKEN).
    #[arg(long, env = "FERRUM_MAX_CHILDREN_PER_TASK", default_value_t = 1000)]
    max_children_per_task: i32,
    /// How deep tasks may queue tasks that queue tasks.
    #[arg(long, env = "FERRUM_MAX_TASK_DEPTH", default_value_t = 5)]
    max_task_depth: i32,
    /// Database connections in the pool.
    #[arg(long, env = "FERRUM_DB_CONNECTIONS", default_value_t = 32)]
    db_connections: u32,
    /// Shortest time in seconds between two runs of a schedule, by `run_every` or by cron
    /// (a cron whose slots come closer is refused).
    #[arg(long, env = "FERRUM_MIN_SCHEDULE_INTERVAL", default_value_t = 60)]
    min_schedule_interval: u64,
    /// Keep the zips of only each code's last N revisions: older zips are deleted from the
    /// blob store once no unfinished task needs them (default: keep all). A deleted code's
    /// zips always go.
    #[arg(long, env = "FERRUM_KEEP_REVISIONS", value_parser = clap::value_parser!(u32).range(1..))]
    keep_revisions: Option<u32>,
    /// Delete finished tasks (with their logs and results) this many days after they ended,
    /// in projects that set no `retention_days` of their own (default: keep them).
    #[arg(long, env = "FERRUM_RETENTION_DAYS", value_parser = clap::value_parser!(u32).range(1..=36_500))]
    retention_days: Option<u32>,
    /// Before retention deletes a task, write its log to the blob store under
    /// `archive/logs/{project}/{task}`.
    #[arg(long, env = "FERRUM_ARCHIVE_LOGS")]
    archive_logs: bool,
}

#[derive(clap::Args)]
pub struct RunnerTokenArgs {
    #[arg(long, env = "DATABASE_URL")]
    database_url: String,
    /// The cluster whose tasks runners with this token may lease.
    #[arg(long, default_value = "default")]
    cluster: String,
}

pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let store = PgStore::connect(&args.database_url, args.db_connections)
        .await
        .context("connecting to Postgres")?;
    let admin_token = match args.admin_token {
        Some(t) => t,
        None => {
            let t = ferrum_model::token::generate();
            println!("Admin token (store it now, it is not shown again): {t}");
            t
        }
    };
    if let Some(t) = &args.runner_token {
        server::accept_runner_token(&store, t).await?;
    }
    let config = ApiConfig {
        lease_for: std::time::Duration::from_secs(args.lease_secs.max(1)),
        max_attempts: args.max_attempts.max(1),
        min_schedule_interval: std::time::Duration::from_secs(args.min_schedule_interval.max(1)),
        metrics_per_project: args.metrics_per_project,
        max_result_bytes: args.max_result_bytes,
        result_inline_bytes: args.result_inline_bytes,
        max_children_per_task: args.max_children_per_task.max(0),
        max_task_depth: args.max_task_depth.max(0),
        keep_revisions: args.keep_revisions,
        retention_days: args.retention_days,
        archive_logs: args.archive_logs,
        ..ApiConfig::default()
    };
    let started = server::start(
        Arc::new(store.clone()),
        &admin_token,
        &args.blob_url,
        config,
    )
    .await?;
    // Other replicas queue work too: their NOTIFYs wake this replica's held lease requests.
    let queue = started.0.queue.clone();
    store.watch_queue(move || queue.wake());
    let listener = server::bind(&args.listen).await?;
    server::serve(started, listener, server::shutdown_signal()).await
}

pub async fn runner_token(args: RunnerTokenArgs) -> anyhow::Result<()> {
    ferrum_model::validation::cluster_name(&args.cluster)?;
    let store = PgStore::connect(&args.database_url, 2).await?;
    let token = ferrum_model::token::generate();
    store.add_runner_token(&args.cluster, &token).await?;
    println!("{token}");
    Ok(())
}
