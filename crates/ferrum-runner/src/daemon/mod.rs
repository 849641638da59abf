//! The runner daemon: register, then long-poll for leases with as many free slots as there
//! are, run each lease concurrently, heartbeat as a runner ([`fleet`]), and drain on shutdown.
//!
//! An admin's drain (`POST /2/runners/{id}/drain`) reaches the daemon in a lease answer or a
//! heartbeat answer (`draining`): it leases nothing more, lets its running tasks run to their
//! own end (no drain timeout: nothing is being stopped), heartbeats once more at once so the
//! API sees it drained, and then idles, heartbeating, until it is shut down. It does not exit
//! by itself: a supervisor restarting it would register a fresh runner that leases again.
//!
//! Shutdown (the `shutdown` future resolves, e.g. on SIGTERM): leasing stops at once (an
//! open long poll is abandoned), running tasks get `drain_timeout` to finish and report, then
//! their containers are killed and removed **without** reporting an outcome. Their leases
//! expire and the API retries them on another runner: at-least-once delivery, rather than a
//! final `killed` that would lose the work.
//!
//! A lease call answered 401 (the runner's credential revoked, or the runner forgotten after
//! a long silence) ends the runner with [`RunnerError::Refused`]: its tasks, which can no
//! longer report, are killed at once, and the error reaches its supervisor rather than a log
//! of retries nobody reads.

mod client;
mod fleet;
mod logship;
mod task;
mod zipcache;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferrum_model::protocol::{LeaseRequest, RegisterRequest, RegisterResponse};
use tokio::sync::{watch, Notify, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use client::{ApiClient, ApiError};

use crate::executor::{
    DockerExecutor, ExecError, Executor, ExecutorConfig, PoolConfig, PooledExecutor,
};
use crate::health::RunnerHealth;
use task::TaskContext;
use zipcache::ZipCache;

/// How long killed tasks get to clean up after the drain timeout.
const KILL_GRACE: Duration = Duration::from_secs(30);
/// Longest pause between failed API calls of the lease loop.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// An empty lease answer faster than this means the API did not long-poll; pause this long.
const EMPTY_POLL_PAUSE: Duration = Duration::from_millis(250);
/// Parked containers per stack image by default: two tasks arriving together both start
/// warm, and an idle runner holds a handful of sleeping shells.
pub const DEFAULT_POOL: usize = 2;

#[derive(Debug, Clone)]
pub struct RunnerConfig {
    /// Base URLs of the API replicas, e.g. `http://127.0.0.1:8080` (at least one). The
    /// runner calls one until it cannot reach it, then the next (`client.rs`); the API door
    /// forwards the same way (`executor/door.rs`).
    pub apis: Vec<String>,
    /// Runner token; it binds the runner to its cluster.
    pub token: String,
    /// Informational: the cluster the operator expects; a mismatch with the token's cluster
    /// is logged.
    pub cluster: Option<String>,
    /// Reported to the API at registration.
    pub hostname: String,
    /// Most tasks run at once.
    pub concurrency: u32,
    /// How long running tasks may finish after shutdown is requested.
    pub drain_timeout: Duration,
    /// How long one lease long-poll may be held open by the API.
    pub lease_wait: Duration,
    /// Most bytes of code zips kept in `<work_dir>/zips` (least recently used go first).
    pub zip_cache_bytes: u64,
    /// Container settings. Its `work_dir` also holds the zip cache (`<work_dir>/zips`).
    pub executor: ExecutorConfig,
    /// Containers to keep started before tasks arrive, per stack image
    /// ([`PooledExecutor`]); `None` creates every task's container when it is leased.
    pub pool: Option<PoolConfig>,
    /// Where the daemon reports its state for probes and metrics.
    pub health: Arc<RunnerHealth>,
}

impl RunnerConfig {
    /// Defaults: the API replicas `apis` (base URLs), this host's name, one slot per CPU, 60 s
    /// drain, 20 s long polls, a 1 GiB zip cache, task dirs under `work_dir`, [`DEFAULT_POOL`] parked containers per stack. The container label (`ferrum.runner`) is `<hostname>:<work_dir>`:
    /// stable across restarts, so a restarted runner finds its orphans, yet distinct for two
    /// runners on one host (e.g. `ferrum dev` next to `ferrum runner`), so neither removes the
    /// other's containers.
    pub fn new(apis: Vec<String>, token: impl Into<String>, work_dir: impl Into<PathBuf>) -> Self {
        let hostname = local_hostname();
        let work_dir = work_dir.into();
        let work_dir = std::path::absolute(&work_dir).unwrap_or(work_dir);
        let host_id = format!("{hostname}:{}", work_dir.display());
        let concurrency = std::thread::available_parallelism()
            .map(|n| n.get() as u32)
            .unwrap_or(2);
        RunnerConfig {
            apis,
            token: token.into(),
            cluster: None,
            executor: ExecutorConfig::new(work_dir, host_id),
            pool: Some(PoolConfig::per_stack(DEFAULT_POOL)),
            hostname,
            concurrency,
            drain_timeout: Duration::from_secs(60),
            lease_wait: Duration::from_secs(20),
            zip_cache_bytes: 1024 * 1024 * 1024,
            health: RunnerHealth::new(),
        }
    }
}

/// The host name from the kernel, falling back to a fixed name.
pub fn local_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "ferrum-runner".to_owned())
}

#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    #[error("executor: {0}")]
    Exec(#[from] ExecError),
    #[error("runner API: {0}")]
    Api(#[from] ApiError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("concurrency must be at least 1")]
    NoSlots,
    /// The API refused this runner's credential (401): its token was revoked, or the runner
    /// was silent so long that it was forgotten. Exiting lets a supervisor restart it, and a
    /// restarted runner registers anew if its token still holds.
    #[error("the API refused this runner's credential (revoked or forgotten); exiting")]
    Refused,
}

/// Why the lease loop ended.
enum LoopEnd {
    Shutdown,
    Drain,
    Refused,
}

/// Runs the runner until `shutdown` resolves and running tasks are drained.
pub async fn run(
    config: RunnerConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RunnerError> {
    if config.concurrency == 0 {
        return Err(RunnerError::NoSlots);
    }
    let mut executor = DockerExecutor::connect(config.executor.clone()).await?;
    if let Some(door) = executor.open_door(&config.apis).await? {
        tracing::info!(
            host = door.host,
            port = door.port,
            "tasks reach the API at IRON_HOST:IRON_PORT"
        );
    }
    let removed = executor.cleanup_orphans().await?;
    if removed > 0 {
        tracing::info!(removed, "removed containers left by a previous runner");
    }
    let client = ApiClient::new(&config.apis, &config.token)?;
    tokio::pin!(shutdown);
    let registration = tokio::select! {
        r = register(&client, &config) => r?,
        _ = &mut shutdown => return Ok(()),
    };
    if let Some(expected) = config
        .cluster
        .as_deref()
        .filter(|c| *c != registration.cluster)
    {
        tracing::warn!(
            expected,
            actual = registration.cluster,
            "token is bound to another cluster"
        );
    }
    tracing::info!(runner = %registration.runner_id, cluster = registration.cluster, "registered");
    let zips = ZipCache::new(
        executor.config().work_dir.join("zips"),
        config.zip_cache_bytes,
    )?;
    let executor: Arc<dyn Executor> = match &config.pool {
        Some(pool) => Arc::new(PooledExecutor::start(executor, pool)),
        None => Arc::new(executor),
    };
    let health = config.health.clone();
    health.registered(config.concurrency);
    // Every later call is this runner's: it authenticates with its own credential.
    let client = client.with_token(&registration.runner_secret);
    let ctx = Arc::new(TaskContext {
        client: client.clone(),
        zips,
        executor: executor.clone(),
        health: config.health.clone(),
        heartbeat: Duration::from_secs(registration.heartbeat_secs.max(1).into()),
    });
    let kill = CancellationToken::new();
    let (draining, mut drain_asked) = watch::channel(false);
    let nudge = Arc::new(Notify::new());
    let stop_heartbeat = CancellationToken::new();
    let heartbeat = tokio::spawn(fleet::heartbeat_loop(
        client.clone(),
        health.clone(),
        ctx.heartbeat,
        draining.clone(),
        nudge.clone(),
        stop_heartbeat.clone(),
    ));
    let mut tasks = JoinSet::new();
    let slots = Arc::new(Semaphore::new(config.concurrency as usize));
    let mut backoff = Duration::from_millis(500);
    // Leases until shutdown, until the API asks this runner to drain, or until it refuses
    // the runner's credential.
    let ended = loop {
        while tasks.try_join_next().is_some() {}
        if *drain_asked.borrow_and_update() {
            break LoopEnd::Drain;
        }
        let first = tokio::select! {
            permit = slots.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break LoopEnd::Shutdown,
            },
            _ = drain_asked.changed() => continue,
            _ = &mut shutdown => break LoopEnd::Shutdown,
        };
        let mut permits = vec![first];
        while let Ok(p) = slots.clone().try_acquire_owned() {
            permits.push(p);
        }
        let request = LeaseRequest {
            max_tasks: permits.len() as u32,
            wait_ms: config.lease_wait.as_millis() as u64,
        };
        let asked = Instant::now();
        let leased = tokio::select! {
            r = client.lease(&request) => r,
            _ = &mut shutdown => break LoopEnd::Shutdown,
        };
        match leased {
            Ok(response) => {
                health.lease_answered(response.leases.len());
                backoff = Duration::from_millis(500);
                if response.draining {
                    draining.send_if_modified(|d| !std::mem::replace(d, true));
                }
                if response.leases.is_empty()
                    && !response.draining
                    && asked.elapsed() < EMPTY_POLL_PAUSE
                {
                    // The API answered "nothing" without holding the poll: don't spin.
                    tokio::time::sleep(EMPTY_POLL_PAUSE).await;
                }
                for lease in response.leases {
                    let permit = permits.pop();
                    if permit.is_none() {
                        tracing::warn!(task = %lease.task_id, "API leased more tasks than asked for");
                    }
                    let (ctx, kill, health) = (ctx.clone(), kill.clone(), health.clone());
                    health.task_started();
                    tasks.spawn(async move {
                        task::run_lease(ctx, lease, kill).await;
                        health.task_ended();
                        drop(permit);
                    });
                }
            }
            Err(ApiError::Status { status: 401, .. }) => break LoopEnd::Refused,
            Err(e) => {
                health.lease_failed();
                tracing::warn!(error = %e, retry_in = ?backoff, "lease failed");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = &mut shutdown => break LoopEnd::Shutdown,
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    };
    let drain_timeout = match ended {
        LoopEnd::Drain => {
            finish_then_idle(&mut tasks, &nudge, &mut shutdown).await;
            config.drain_timeout
        }
        LoopEnd::Shutdown => config.drain_timeout,
        // No call of this runner's is heard any more: its tasks cannot report, and their
        // leases run out and are retried elsewhere.
        LoopEnd::Refused => Duration::ZERO,
    };
    drain(tasks, kill, drain_timeout).await;
    stop_heartbeat.cancel();
    let _ = heartbeat.await;
    executor.shutdown().await;
    match ended {
        LoopEnd::Refused => Err(RunnerError::Refused),
        LoopEnd::Shutdown | LoopEnd::Drain => Ok(()),
    }
}

/// Asked to drain: lets the running tasks end on their own, has the API told at once that
/// nothing runs, then waits for shutdown. Shutdown meanwhile goes on to the ordinary drain.
async fn finish_then_idle(
    tasks: &mut JoinSet<()>,
    nudge: &Notify,
    shutdown: &mut (impl Future<Output = ()> + Unpin),
) {
    tracing::info!(
        running = tasks.len(),
        "asked to drain: leasing nothing more"
    );
    loop {
        tokio::select! {
            ended = tasks.join_next() => if ended.is_none() { break },
            _ = &mut *shutdown => return,
        }
    }
    nudge.notify_one();
    tracing::info!("every task ended: idle until shut down");
    shutdown.await;
}

/// Registers, retrying transient failures; auth and other client errors are fatal.
async fn register(client: &ApiClient, config: &RunnerConfig) -> Result<RegisterResponse, ApiError> {
    let request = RegisterRequest {
        hostname: config.hostname.clone(),
        concurrency: config.concurrency,
        version: env!("CARGO_PKG_VERSION").to_owned(),
    };
    let mut backoff = Duration::from_millis(500);
    loop {
        match client.register(&request).await {
            Err(e) if e.is_transient() => {
                tracing::warn!(error = %e, retry_in = ?backoff, "register failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            other => return other,
        }
    }
}

/// Waits for running tasks up to `timeout`, then kills the rest and waits for their cleanup.
async fn drain(mut tasks: JoinSet<()>, kill: CancellationToken, timeout: Duration) {
    if tasks.is_empty() {
        return;
    }
    tracing::info!(running = tasks.len(), ?timeout, "draining");
    let finished = tokio::time::timeout(timeout, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if finished.is_ok() {
        return;
    }
    tracing::warn!(
        running = tasks.len(),
        "drain timeout: killing remaining tasks, leases will expire"
    );
    kill.cancel();
    let cleaned = tokio::time::timeout(KILL_GRACE, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if cleaned.is_err() {
        tasks.abort_all();
    }
}
