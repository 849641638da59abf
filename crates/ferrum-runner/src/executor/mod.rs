//! Runs one task in one container no other task has touched, and always cleans up after it.
//!
//! [`Executor`] is what the daemon runs tasks with. Two implement it, both on the local Docker
//! engine and both under the same sandbox (`container.rs`, `network.rs`, `disk.rs`):
//! - [`DockerExecutor`] (`docker.rs`), *cold*: prepare the task's disk, create, attach,
//!   start. No image inspection, no pulls (unless an image is missing and pulling is
//!   allowed), no sleeps or polling: exit is observed with the wait endpoint, output with the
//!   attach stream.
//! - [`PooledExecutor`] (`pool.rs`): containers created and started before tasks arrive, parked
//!   in a waiting init (`init.rs`), each handed one task and then removed; whatever does not
//!   fit a pool runs cold.

mod config;
mod container;
mod disk;
mod docker;
mod door;
mod init;
mod netns;
mod network;
mod output;
mod pool;
mod taskdir;

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use ferrum_model::protocol::{LogStream, RunSpec};
use futures_util::future::BoxFuture;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use config::{ExecutorConfig, Limits};
pub use container::{LABEL_ATTEMPT, LABEL_POOL, LABEL_RUNNER, LABEL_TASK};
pub use docker::{disk_full_msg, DockerExecutor};
pub use network::{ApiDoor, NetworkMode, INPUT_CHAIN, ISOLATED_BRIDGE, ISOLATED_NETWORK};
pub use output::truncation_note;
pub use pool::{PoolConfig, PooledExecutor};

use crate::contract::ContractError;
use crate::unpack::UnpackError;

/// What runs tasks: one per runner, shared by all its task slots. The daemon holds it as
/// `Arc<dyn Executor>`, so how a container comes to be (created cold, taken from a pool,
/// later a Kubernetes pod) is the executor's business alone.
pub trait Executor: Send + Sync {
    /// The settings every task runs under (limits, work dir, network, door).
    fn config(&self) -> &ExecutorConfig;

    /// Runs a task to its end. `Started` and output go to `events` (a slow receiver slows the
    /// container's writes rather than buffering without bound); `cancel` kills the container
    /// and yields [`Outcome::Cancelled`]. The container and the task's disk are removed on
    /// every path, including when the future is dropped.
    fn run(
        &self,
        task: TaskRun,
        events: mpsc::Sender<TaskEvent>,
        cancel: CancellationToken,
    ) -> BoxFuture<'_, Result<RunReport, ExecError>>;

    /// Gives back what the executor holds between tasks (parked containers and their disks).
    /// Called once, when the runner stops, after the last task.
    fn shutdown(&self) -> BoxFuture<'_, ()>;
}

/// One task to run.
#[derive(Debug, Clone)]
pub struct TaskRun {
    pub task_id: String,
    pub attempt: i32,
    pub schedule_id: Option<String>,
    pub spec: RunSpec,
    pub payload: Vec<u8>,
    /// The revision's zip, a file on the runner's host (the daemon's cache), when it has
    /// one. An executor copies the code out of it onto the task's own disk; the file itself
    /// is never mounted, so an executor whose containers live elsewhere can ship it.
    pub zip: Option<PathBuf>,
    pub timeout: Duration,
    /// Overrides the executor's default limits.
    pub limits: Option<Limits>,
    /// The task's project and token for the official clients (`IRON_PROJECT_ID`,
    /// `IRON_TOKEN`); `None` outside a Ferrum API (`ferrum run-local`).
    pub iron: Option<crate::contract::IronIdentity>,
    /// The largest result (`RESULT_FILE`) read back; a larger one is reported as too large.
    pub max_result_bytes: u64,
    /// A batch reduce task's input: its batch id and the JSON lines of its items.
    pub batch: Option<(String, Vec<u8>)>,
}

/// What the executor reports while a task runs, in order.
#[derive(Debug, Clone)]
pub enum TaskEvent {
    /// User code is running (the container started, or its init was released).
    Started,
    /// Output, in the order the container wrote it; the truncation note arrives as stderr.
    Output { stream: LogStream, data: Bytes },
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Complete,
    /// Non-zero exit.
    Error {
        exit_code: i32,
        msg: String,
    },
    /// Killed by the system, e.g. out of memory.
    Killed {
        exit_code: i32,
        msg: String,
    },
    Timeout,
    /// The cancel token fired.
    Cancelled,
}

#[derive(Debug, Clone)]
pub struct RunReport {
    pub outcome: Outcome,
    /// Output bytes forwarded to the sink.
    pub log_bytes: u64,
    pub truncated: bool,
    /// From user code starting to exit.
    pub duration: Duration,
    /// The task ran in a pre-started container from a pool (else one created for it).
    pub pooled: bool,
    /// What the task left at `RESULT_FILE`.
    pub result: crate::result::TaskResult,
}

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("{0}")]
    Contract(#[from] ContractError),
    #[error("{0}")]
    Unpack(#[from] UnpackError),
    #[error("image {0} is not present on this runner (run `ferrum stacks build`)")]
    ImageMissing(String),
    #[error("pulling image {image}: {source}")]
    Pull {
        image: String,
        source: bollard::errors::Error,
    },
    #[error("docker: {0}")]
    Docker(#[from] bollard::errors::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// Setting up the task sandbox (network, filter, door, disk) failed.
    #[error("task sandbox: {0}")]
    Sandbox(String),
    /// The code, payload and config alone fill the task's disk.
    #[error("the code does not fit in the task's disk limit of {mib} MiB")]
    CodeExceedsDisk { mib: i64 },
    /// A parked container did not come up as expected.
    #[error("pooled container: {0}")]
    Pool(String),
}
