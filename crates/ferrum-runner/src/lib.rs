//! The Ferrum runner: leases tasks from the API over the runner protocol
//! ([`ferrum_model::protocol`]) and runs each in a fresh, unprivileged Docker container.
//!
//! - [`stacks`]: the stack catalog and a registry-free local image build.
//! - [`contract`]: the worker runtime contract (argv, environment, working directory) as pure
//!   functions.
//! - [`unpack`]: safe extraction of code zips into a task directory.
//! - [`executor`]: one container per task, with hardening, log streaming, timeout and cancel;
//!   cold, or pre-started from a pool.
//! - [`result`]: reading the file a task returns its result in (`RESULT_FILE`).
//! - [`daemon`]: the lease/heartbeat/log/complete loop that ties it together.
//! - [`health`]: the runner's readiness and its own metrics.

pub mod contract;
pub mod daemon;
pub mod executor;
pub mod health;
pub mod result;
pub mod stacks;
pub mod unpack;

pub use daemon::{run, RunnerConfig, RunnerError};
pub use executor::{
    DockerExecutor, ExecError, Executor, ExecutorConfig, Limits, Outcome, PoolConfig,
    PooledExecutor, RunReport, TaskEvent, TaskRun,
};
