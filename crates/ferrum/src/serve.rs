//! `ferrum serve` and the operator commands that talk to the database directly.

use std::sync::Arc;

use anyhow::Context;
use ferrum_api::{ApiConfig, AppState};
use ferrum_store::{AccountStore, PgStore};

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
    /// Database connections in the pool.
    #[arg(long, env = "FERRUM_DB_CONNECTIONS", default_value_t = 32)]
    db_connections: u32,
}

#[derive(clap::Args)]
pub struct RunnerTokenArgs {
    #[arg(long, env = "DATABASE_URL")]
    database_url: String,
    /// The cluster whose tasks runners with this token may lease.
    #[arg(long, default_value = "default")]
    cluster: String,
}

/// A new random token: 32 random bytes, hex.
fn new_token() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let store = PgStore::connect(&args.database_url, args.db_connections)
        .await
        .context("connecting to Postgres")?;
    let admin_token = match args.admin_token {
        Some(t) => t,
        None => {
            let t = new_token();
            println!("Admin token (store it now, it is not shown again): {t}");
            t
        }
    };
    store.bootstrap_admin(&admin_token).await?;
    if let Some(t) = &args.runner_token {
        if store.authenticate_runner(t).await?.is_none() {
            store.add_runner_token("default", t).await?;
        }
    }
    let blobs = ferrum_blob::open(&args.blob_url)
        .await
        .with_context(|| format!("opening blob store {}", args.blob_url))?;
    let state = AppState {
        store: Arc::new(store.clone()),
        blobs,
        config: Arc::new(ApiConfig {
            lease_for: std::time::Duration::from_secs(args.lease_secs.max(1)),
            max_attempts: args.max_attempts.max(1),
            ..ApiConfig::default()
        }),
        queue: Default::default(),
    };
    let queue = state.queue.clone();
    store.watch_queue(move || queue.wake());
    ferrum_api::duties::spawn(state.clone());
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    tracing::info!(addr = %listener.local_addr()?, "ferrum API listening");
    axum::serve(listener, ferrum_api::router(state))
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    Ok(())
}

pub async fn runner_token(args: RunnerTokenArgs) -> anyhow::Result<()> {
    let store = PgStore::connect(&args.database_url, 2).await?;
    let token = new_token();
    store.add_runner_token(&args.cluster, &token).await?;
    println!("{token}");
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler installs");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
