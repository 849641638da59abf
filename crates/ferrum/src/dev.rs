//! `ferrum dev`: everything in one process for a newcomer's machine — the API, its background
//! duties and one runner, on SQLite and a local blob directory under `--data-dir`. Only a
//! Docker engine is needed; the stack images are built on first start.
//!
//! The runner is the real daemon (`ferrum_runner::run`) talking HTTP to this process's own
//! API with a runner token registered at start, so `dev` exercises the same paths as a
//! production deployment. On Ctrl-C the runner stops leasing and drains first, then the API
//! stops, so running tasks can still report their outcome.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use ferrum_api::ApiConfig;
use ferrum_runner::executor::NetworkMode;
use ferrum_runner::stacks::{self, BuildStatus};
use ferrum_runner::RunnerConfig;
use ferrum_store::{AccountStore, SqliteStore};
use tokio::sync::watch;

use crate::server;

/// The project `ferrum dev` creates for its admin on first start.
const DEV_PROJECT: &str = "dev";
/// How long running tasks may finish after Ctrl-C before they are killed (and retried at the
/// next start).
const DRAIN: Duration = Duration::from_secs(10);

#[derive(clap::Args)]
pub struct DevArgs {
    /// Address to listen on.
    #[arg(long, env = "FERRUM_LISTEN", default_value = "127.0.0.1:8080")]
    listen: String,
    /// Where the database, code zips and task directories live.
    #[arg(long, env = "FERRUM_DATA_DIR", default_value = "./ferrum-data")]
    data_dir: PathBuf,
    /// Admin token; by default one is generated on first start and kept in the data dir.
    #[arg(long, env = "FERRUM_ADMIN_TOKEN")]
    admin_token: Option<String>,
    /// Keep the zips of only each code's last N revisions (see `ferrum serve --help`).
    #[arg(long, env = "FERRUM_KEEP_REVISIONS", value_parser = clap::value_parser!(u32).range(1..))]
    keep_revisions: Option<u32>,
    /// Most tasks the built-in runner runs at once (default: one per CPU).
    #[arg(long, env = "FERRUM_CONCURRENCY")]
    concurrency: Option<u32>,
    /// Network of task containers, as for `ferrum runner --network`: `isolated` (needs root
    /// for its host filter), `none`, or a Docker network name (e.g. `bridge`).
    #[arg(long, env = "FERRUM_NETWORK", default_value = "isolated")]
    network: NetworkMode,
    /// Shortest time in seconds between two runs of a schedule. Development allows seconds
    /// crons; `ferrum serve` defaults to 60.
    #[arg(long, env = "FERRUM_MIN_SCHEDULE_INTERVAL", default_value_t = 1)]
    min_schedule_interval: u64,
    #[command(flatten)]
    pool: crate::runner::PoolArgs,
}

pub async fn dev(args: DevArgs) -> anyhow::Result<()> {
    check_docker().await?;
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating data dir {}", args.data_dir.display()))?;
    let data_dir = std::fs::canonicalize(&args.data_dir)?;
    // debootstrap's hundreds of lines go to a file; the terminal gets one line per image.
    let build_log = data_dir.join("stack-build.log");
    for built in stacks::build_logged(&[], false, &build_log).await? {
        if built.status == BuildStatus::Built {
            println!("built stack image {}", built.image);
        }
    }
    let store = SqliteStore::open(&data_dir.join("ferrum.db"))
        .await
        .context("opening the SQLite database")?;
    let admin_token = match args.admin_token {
        Some(t) => t,
        None => kept_token(&data_dir.join("admin-token"))?,
    };
    let blob_url = format!("file://{}", data_dir.join("blobs").display());
    let started = server::start(
        Arc::new(store.clone()),
        &admin_token,
        &blob_url,
        ApiConfig {
            min_schedule_interval: std::time::Duration::from_secs(
                args.min_schedule_interval.max(1),
            ),
            keep_revisions: args.keep_revisions,
            ..ApiConfig::default()
        },
    )
    .await?;
    // `server::start` made the token the admin's; look the admin up rather than bootstrap twice.
    let admin = store
        .authenticate(&admin_token)
        .await?
        .context("the admin token does not authenticate after bootstrap")?;
    let project = match store
        .projects(&admin)
        .await?
        .into_iter()
        .find(|p| p.name == DEV_PROJECT)
    {
        Some(p) => p,
        None => store.create_project(admin.user_id, DEV_PROJECT).await?,
    };
    // One runner token for the life of the data dir, kept next to the admin token: a restart
    // reuses it instead of adding another valid token at every start.
    let runner_token = kept_token(&data_dir.join("runner-token"))?;
    server::accept_runner_token(&store, &runner_token).await?;

    let listener = server::bind(&args.listen).await?;
    let api = local_url(listener.local_addr()?);
    let mut runner = RunnerConfig::new(vec![api.clone()], runner_token, data_dir.join("runner"));
    if let Some(n) = args.concurrency {
        runner.concurrency = n;
    }
    runner.drain_timeout = DRAIN;
    runner.executor.network = args.network;
    args.pool.apply(&mut runner);

    println!("Ferrum dev is running (data in {}).", data_dir.display());
    println!("  API:               {api}");
    println!("  Admin token:       {admin_token}");
    println!("  Project:           {} ({DEV_PROJECT})", project.id);
    println!("Point the CLI at it (in another terminal):");
    println!(
        "  ferrum configure --host {api} --token {admin_token} --project-id {}",
        project.id
    );
    println!("Stop with Ctrl-C.");

    let (stop, stopping) = watch::channel(false);
    tokio::spawn(async move {
        server::shutdown_signal().await;
        let _ = stop.send(true);
    });
    let (drained, runner_gone) = watch::channel(false);
    let runner = tokio::spawn(async move {
        let result = ferrum_runner::run(runner, flips(stopping)).await;
        let _ = drained.send(true);
        result
    });
    server::serve(started, listener, flips(runner_gone)).await?;
    runner.await?.context("the built-in runner failed")?;
    store.close().await;
    println!("Ferrum dev stopped.");
    Ok(())
}

/// Resolves once the flag turns true (or its sender is gone).
async fn flips(mut flag: watch::Receiver<bool>) {
    let _ = flag.wait_for(|v| *v).await;
}

/// Fails with what to do when no Docker engine answers: every task runs in a container.
async fn check_docker() -> anyhow::Result<()> {
    let reachable = match bollard::Docker::connect_with_local_defaults() {
        Ok(docker) => docker.ping().await.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    if let Err(why) = reachable {
        bail!(
            "no Docker engine is reachable ({why}). Ferrum runs every task in a Docker \
             container. Install and start one, e.g. as root on Debian: \
             `apt-get install -y docker.io && dockerd &` (or run scripts/quickstart)"
        );
    }
    Ok(())
}

/// The token stored at `path`, or a new one written there (owner-only) on first start.
fn kept_token(path: &Path) -> anyhow::Result<String> {
    if let Ok(t) = std::fs::read_to_string(path) {
        let t = t.trim();
        if !t.is_empty() {
            return Ok(t.to_owned());
        }
    }
    let t = ferrum_model::token::generate();
    std::fs::write(path, format!("{t}\n"))
        .with_context(|| format!("writing {}", path.display()))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(t)
}

/// The URL clients on this machine use; a wildcard listen address is reached on loopback.
fn local_url(addr: SocketAddr) -> String {
    let ip = if addr.ip().is_unspecified() {
        std::net::Ipv4Addr::LOCALHOST.into()
    } else {
        addr.ip()
    };
    format!("http://{}", SocketAddr::new(ip, addr.port()))
}
