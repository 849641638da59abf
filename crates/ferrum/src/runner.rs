//! `ferrum runner` and `ferrum stacks build`.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use ferrum_model::{validation, ValidationError};
use ferrum_runner::executor::NetworkMode;
use ferrum_runner::{stacks, ExecutorConfig, PoolConfig, RunnerConfig};

#[derive(clap::Args)]
pub struct RunnerArgs {
    /// Base URL of the Ferrum API; several API replicas comma-separated (the runner calls
    /// one and moves to the next when it cannot reach it; so does the API door).
    #[arg(long, env = "FERRUM_API", value_delimiter = ',', required = true)]
    api: Vec<String>,
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
    /// Network of task containers: `isolated` (a Ferrum bridge: outbound only, no host
    /// ports, no other tasks, plus the API door), `none` (no network, no door), or the name
    /// of a Docker network you manage (tasks get the API URL as is; route it yourself).
    #[arg(long, env = "FERRUM_NETWORK", default_value = "isolated")]
    network: NetworkMode,
    /// Port of the API door on the isolated bridge's gateway (0: any free port).
    #[arg(long, env = "FERRUM_DOOR_PORT", default_value_t = 0)]
    door_port: u16,
    /// The Docker engine's network namespace (e.g. `/proc/1/ns/net`) when the runner runs in
    /// another one (a container with the engine's socket mounted): the API door listens and
    /// the isolated network's filter is installed there. Default: the runner's own.
    #[arg(long, env = "FERRUM_ENGINE_NETNS", value_name = "PATH")]
    engine_netns: Option<PathBuf>,
    /// Seconds running tasks may take to finish after SIGTERM.
    #[arg(long, env = "FERRUM_DRAIN_TIMEOUT", default_value_t = 60)]
    drain_timeout: u64,
    /// Per-task log cap in bytes.
    #[arg(long, env = "FERRUM_LOG_CAP")]
    log_cap: Option<u64>,
    /// Megabytes of code zips to keep cached in `<work-dir>/zips`.
    #[arg(long, env = "FERRUM_ZIP_CACHE_MB", default_value_t = 1024)]
    zip_cache_mb: u64,
    /// Address for `/healthz`, `/readyz` and `/metrics` of this runner (e.g.
    /// `127.0.0.1:9101`); none when unset. Unauthenticated: bind it where only monitoring
    /// reaches.
    #[arg(long, env = "FERRUM_HEALTH_LISTEN")]
    health_listen: Option<String>,
    #[command(flatten)]
    limits: LimitArgs,
    #[command(flatten)]
    pool: PoolArgs,
}

/// Resource limits of task containers: defaults for codes that set none, and ceilings no code
/// may exceed (a code asking for more gets the ceiling; so does a default above it).
#[derive(clap::Args)]
struct LimitArgs {
    /// Memory of a task in MiB, unless its code sets `memory_mb` [default: 512].
    #[arg(long, env = "FERRUM_MEMORY_MB", value_parser = limit(validation::memory_mb))]
    memory_mb: Option<i32>,
    /// CPUs of a task (fractions allowed), unless its code sets `cpus` [default: 1].
    #[arg(long, env = "FERRUM_CPUS", value_parser = limit(validation::cpus))]
    cpus: Option<f64>,
    /// Most processes of a task, unless its code sets `pids` [default: 256].
    #[arg(long, env = "FERRUM_PIDS", value_parser = limit(validation::pids))]
    pids: Option<i32>,
    /// Most memory any task gets, in MiB [default: 4096].
    #[arg(long, env = "FERRUM_MAX_MEMORY_MB", value_parser = limit(validation::memory_mb))]
    max_memory_mb: Option<i32>,
    /// Most CPUs any task gets [default: every CPU of the host].
    #[arg(long, env = "FERRUM_MAX_CPUS", value_parser = limit(validation::cpus))]
    max_cpus: Option<f64>,
    /// Most processes any task gets [default: 4096].
    #[arg(long, env = "FERRUM_MAX_PIDS", value_parser = limit(validation::pids))]
    max_pids: Option<i32>,
    /// Disk of a task in MiB (`/mnt/task` and `/tmp` together; the rest of its filesystem is
    /// read-only), unless its code sets `disk_mb` [default: 1024].
    #[arg(long, env = "FERRUM_DISK_MB", value_parser = limit(validation::disk_mb))]
    disk_mb: Option<i32>,
    /// Most disk any task gets, in MiB [default: 10240].
    #[arg(long, env = "FERRUM_MAX_DISK_MB", value_parser = limit(validation::disk_mb))]
    max_disk_mb: Option<i32>,
}

impl LimitArgs {
    /// Lays the flags given over the executor's built-in defaults and ceilings.
    fn apply(self, executor: &mut ExecutorConfig) {
        executor.limits =
            executor
                .limits
                .with_settings(self.memory_mb, self.cpus, self.pids, self.disk_mb);
        executor.max_limits = executor.max_limits.with_settings(
            self.max_memory_mb,
            self.max_cpus,
            self.max_pids,
            self.max_disk_mb,
        );
    }
}

/// How task containers come to be; `ferrum runner` and `ferrum dev` share these flags.
#[derive(clap::Args)]
pub struct PoolArgs {
    /// `pooled`: keep containers started before tasks arrive, each parked in a waiting init
    /// and handed one task (tasks that fit no pool run cold); `cold`: create each task's
    /// container when its task is leased.
    #[arg(long, env = "FERRUM_EXECUTOR", value_enum, default_value = "pooled")]
    executor: ExecutorKind,
    /// Containers kept parked per stack image with `--executor pooled`: `N` for every stack,
    /// `STACK=N` for one (repeatable or comma-separated, e.g. `--pool 1,python=4`; 0 for
    /// none) [default: 2].
    #[arg(long, env = "FERRUM_POOL", value_delimiter = ',', value_name = "[STACK=]N",
          value_parser = pool_size)]
    pool: Vec<(Option<&'static str>, usize)>,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ExecutorKind {
    Pooled,
    Cold,
}

impl PoolArgs {
    pub fn apply(self, runner: &mut RunnerConfig) {
        if self.executor == ExecutorKind::Cold {
            runner.pool = None;
            return;
        }
        let pool = runner
            .pool
            .get_or_insert_with(|| PoolConfig::per_stack(ferrum_runner::daemon::DEFAULT_POOL));
        for (image, size) in self.pool {
            match image {
                Some(image) => {
                    pool.sizes.insert(image.to_owned(), size);
                }
                None => pool.sizes.values_mut().for_each(|s| *s = size),
            }
        }
    }
}

/// `N` or `STACK=N`, the stack named as in the catalog (`sh`, `python`, `node`, …).
fn pool_size(s: &str) -> Result<(Option<&'static str>, usize), String> {
    let (image, n) = match s.split_once('=') {
        Some((stack, n)) => {
            let image = stacks::image_for(stack.trim())
                .ok_or_else(|| format!("unknown stack {stack:?} (`ferrum stacks list`)"))?;
            (Some(image), n)
        }
        None => (None, s),
    };
    let size = n
        .trim()
        .parse::<usize>()
        .map_err(|e| format!("{n:?}: {e}"))?;
    Ok((image, size))
}

/// Parses a limit flag and holds it to the floor the API holds codes to (Docker refuses less).
fn limit<T: FromStr + 'static>(
    check: fn(T) -> Result<T, ValidationError>,
) -> impl Fn(&str) -> Result<T, String> + Clone + Send + Sync + 'static
where
    T::Err: std::fmt::Display,
{
    move |s| {
        let value = s.parse::<T>().map_err(|e| e.to_string())?;
        check(value).map_err(|e| e.to_string())
    }
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
        /// Where the build's output goes (default: $TMPDIR/ferrum-stack-build.log).
        #[arg(long, value_name = "FILE")]
        log: Option<std::path::PathBuf>,
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
    config.zip_cache_bytes = args.zip_cache_mb.saturating_mul(1024 * 1024);
    if let Some(cap) = args.log_cap {
        config.executor.log_cap_bytes = cap;
    }
    config.executor.network = args.network;
    config.executor.door_port = args.door_port;
    config.executor.engine_netns = args.engine_netns;
    args.limits.apply(&mut config.executor);
    args.pool.apply(&mut config);
    config.drain_timeout = Duration::from_secs(args.drain_timeout);
    if let Some(listen) = &args.health_listen {
        crate::runner_health::spawn(listen, config.health.clone()).await?;
    }
    ferrum_runner::run(config, crate::server::shutdown_signal())
        .await
        .context("runner failed")
}

pub async fn stacks(args: StacksArgs) -> anyhow::Result<()> {
    match args.command {
        StacksCommand::Build { names, force, log } => {
            let log = log.unwrap_or_else(|| std::env::temp_dir().join("ferrum-stack-build.log"));
            for built in stacks::build_logged(&names, force, &log).await? {
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
