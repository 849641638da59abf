//! Runs one task in one fresh Docker container and always cleans up after it.
//!
//! The hot path between leasing and user code running is: prepare the task dir, create,
//! attach, start. No image inspection, no pulls (unless an image is missing and pulling is
//! allowed), no sleeps or polling: exit is observed with the wait endpoint, output with the
//! attach stream.

mod config;
mod container;
mod disk;
mod door;
mod network;
mod output;
mod taskdir;

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bollard::container::{
    AttachContainerOptions, KillContainerOptions, ListContainersOptions, WaitContainerOptions,
};
use bollard::Docker;
use bytes::Bytes;
use ferrum_model::protocol::{LogStream, RunSpec};
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use config::{ExecutorConfig, Limits};
pub use container::{LABEL_ATTEMPT, LABEL_RUNNER, LABEL_TASK};
pub use network::{ApiDoor, NetworkMode, INPUT_CHAIN, ISOLATED_BRIDGE, ISOLATED_NETWORK};
pub use output::truncation_note;

use crate::contract::{self, ContractError, TaskIdentity};
use crate::unpack::UnpackError;
use container::ContainerSpec;
use disk::TaskDisk;
use taskdir::{Cleanup, DirContents};

/// How long to wait for the output stream to drain after the container stopped.
const DRAIN_GRACE: Duration = Duration::from_secs(5);
/// How often a running task's disk is checked for being full. The kernel already refuses
/// writes past the limit; the check only ends a task that keeps going after that.
const DISK_CHECK: Duration = Duration::from_millis(250);
const MIB: i64 = 1024 * 1024;

/// One task to run.
#[derive(Debug, Clone)]
pub struct TaskRun {
    pub task_id: String,
    pub attempt: i32,
    pub schedule_id: Option<String>,
    pub spec: RunSpec,
    pub payload: Vec<u8>,
    /// The revision's zip on local disk, when it has one.
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
    /// The container started: user code is running.
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
    /// From container start to exit.
    pub duration: Duration,
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
}

/// The Docker executor. Cheap to clone; share one per runner.
#[derive(Clone)]
pub struct DockerExecutor {
    docker: Docker,
    config: Arc<ExecutorConfig>,
    /// The isolated bridge's gateway address, in `isolated` mode.
    gateway: Option<Ipv4Addr>,
    /// Keeps the API door listening while any clone of the executor lives.
    door: Option<Arc<door::DoorGuard>>,
}

impl DockerExecutor {
    /// Connects to the local engine, negotiating the API version down to what it speaks, and
    /// creates the work directory. Relative work dirs are made absolute (bind mounts need it).
    /// In `isolated` mode it also creates the isolated network and installs the host filter.
    pub async fn connect(mut config: ExecutorConfig) -> Result<Self, ExecError> {
        let docker = Docker::connect_with_local_defaults()?
            .negotiate_version()
            .await?;
        std::fs::create_dir_all(config.tasks_dir())?;
        config.work_dir = std::fs::canonicalize(&config.work_dir)?;
        let gateway = match config.network {
            NetworkMode::Isolated => Some(network::ensure_isolated(&docker).await?),
            _ => None,
        };
        Ok(DockerExecutor {
            docker,
            config: Arc::new(config),
            gateway,
            door: None,
        })
    }

    /// Opens the way for tasks to reach the Ferrum API at `api` (the URL the runner uses) and
    /// records it as [`ExecutorConfig::api_door`], so every task gets `IRON_HOST`, `IRON_PORT`
    /// and `IRON_PROTOCOL`. In `isolated` mode that is a forwarder on the bridge's gateway
    /// (port [`ExecutorConfig::door_port`]); on an operator's named network it is the API URL
    /// itself (the operator provides the route); in `none` mode there is no door.
    pub async fn open_door(&mut self, api: &str) -> Result<Option<ApiDoor>, ExecError> {
        let target = door::Target::parse(api)?;
        let (api_door, guard) = match (&self.config.network, self.gateway) {
            (NetworkMode::None, _) => return Ok(None),
            (NetworkMode::Named(_), _) => (target.as_door(), None),
            (NetworkMode::Isolated, Some(gateway)) => {
                let (d, g) = door::open(gateway, self.config.door_port, target).await?;
                (d, Some(Arc::new(g)))
            }
            (NetworkMode::Isolated, None) => {
                return Err(ExecError::Sandbox("isolated network not set up".to_owned()))
            }
        };
        Arc::make_mut(&mut self.config).api_door = Some(api_door.clone());
        self.door = guard;
        Ok(Some(api_door))
    }

    pub fn config(&self) -> &ExecutorConfig {
        &self.config
    }

    pub fn docker(&self) -> &Docker {
        &self.docker
    }

    /// Runs a task to its end. `Started` and output go to `events` (a slow receiver slows the
    /// container's writes rather than buffering without bound); `cancel` kills the container
    /// and yields [`Outcome::Cancelled`]. The container and task dir are removed on every path,
    /// including when this future is dropped.
    pub async fn run(
        &self,
        task: TaskRun,
        events: mpsc::Sender<TaskEvent>,
        cancel: CancellationToken,
    ) -> Result<RunReport, ExecError> {
        let name = format!("ferrum-{}-{}", task.task_id, task.attempt);
        let disk = self.task_disk(&format!("{}-{}", task.task_id, task.attempt));
        let cleanup = Cleanup::new(self.docker.clone(), name.clone(), disk.clone());
        let result = self.run_in(&task, &name, disk, events, cancel).await;
        cleanup.finish().await;
        result
    }

    async fn run_in(
        &self,
        task: &TaskRun,
        name: &str,
        disk: TaskDisk,
        events: mpsc::Sender<TaskEvent>,
        cancel: CancellationToken,
    ) -> Result<RunReport, ExecError> {
        let limits = task.limits.unwrap_or(self.config.limits);
        let identity = TaskIdentity {
            task_id: task.task_id.clone(),
            schedule_id: task.schedule_id.clone(),
            iron: task.iron.clone(),
            batch_id: task.batch.as_ref().map(|(id, _)| id.clone()),
        };
        let invocation = contract::invocation(&task.spec, &identity)?;
        self.prepare_dir(task, &disk, limits.disk_bytes).await?;
        let spec = ContainerSpec {
            name,
            image: &task.spec.image,
            task_id: &task.task_id,
            attempt: task.attempt,
            invocation,
            host_dir: &disk.mount,
            limits,
        };
        container::create(&self.docker, &self.config, &spec).await?;

        let attach = AttachContainerOptions::<String> {
            stdout: Some(true),
            stderr: Some(true),
            stream: Some(true),
            ..Default::default()
        };
        let attached = self.docker.attach_container(name, Some(attach)).await?;
        self.docker.start_container::<String>(name, None).await?;
        let started = Instant::now();
        // The receiver may be gone already (lease lost); the run still has to finish cleanly.
        let _ = events.send(TaskEvent::Started).await;
        let pump = tokio::spawn(output::pump(
            attached.output,
            events,
            self.config.log_cap_bytes,
        ));

        let ended = self
            .wait_for_end(name, task.timeout, &cancel, &disk.mount)
            .await;
        let duration = started.elapsed();
        let summary = match tokio::time::timeout(DRAIN_GRACE, pump).await {
            Ok(Ok(summary)) => summary,
            Ok(Err(e)) => {
                tracing::warn!(container = name, error = %e, "output pump failed");
                Default::default()
            }
            Err(_) => {
                tracing::warn!(container = name, "output did not drain after exit");
                Default::default()
            }
        };
        let disk_full = || Outcome::Error {
            exit_code: 137,
            msg: disk_full_msg(limits.disk_bytes),
        };
        let outcome = match ended? {
            End::Exited(0) => Outcome::Complete,
            End::Exited(code) => {
                let full = disk::is_full(&disk.mount);
                let failure = self.failure(name, code, summary.last_stderr_line()).await;
                match failure {
                    Outcome::Error { exit_code, .. } if full => Outcome::Error {
                        exit_code,
                        msg: disk_full_msg(limits.disk_bytes),
                    },
                    other => other,
                }
            }
            End::DiskFull => disk_full(),
            End::TimedOut => Outcome::Timeout,
            End::Cancelled => Outcome::Cancelled,
        };
        let cap = task.max_result_bytes;
        let dir = disk.mount.join(disk::TASK_SUBDIR);
        let result = tokio::task::spawn_blocking(move || crate::result::read(&dir, cap))
            .await
            .map_err(|e| ExecError::Io(std::io::Error::other(e)))??;
        Ok(RunReport {
            outcome,
            log_bytes: summary.forwarded,
            truncated: summary.truncated,
            duration,
            result,
        })
    }

    /// Where the disk of the task run `key` (`<task>-<attempt>`) lives.
    fn task_disk(&self, key: &str) -> TaskDisk {
        TaskDisk {
            image: self.config.disks_dir().join(format!("{key}.img")),
            mount: self.config.tasks_dir().join(key),
        }
    }

    /// Creates and mounts the task's disk, then fills `task/` (bind-mounted at `/mnt/task`).
    async fn prepare_dir(
        &self,
        task: &TaskRun,
        disk: &TaskDisk,
        disk_bytes: i64,
    ) -> Result<(), ExecError> {
        let dir = disk.mount.join(disk::TASK_SUBDIR);
        let disk = disk.clone();
        let zip = task.zip.clone();
        let payload = task.payload.clone();
        let batch_results = task.batch.as_ref().map(|(_, lines)| lines.clone());
        let config = contract::has_config(&task.spec)
            .then(|| task.spec.config.clone())
            .flatten();
        let (uid, gid, limits) = (
            self.config.task_uid,
            self.config.task_gid,
            self.config.unpack,
        );
        let prepared = tokio::task::spawn_blocking(move || {
            disk.create(u64::try_from(disk_bytes).unwrap_or(0), uid, gid)
                .map_err(|e| ExecError::Sandbox(format!("creating the task disk: {e}")))?;
            let contents = DirContents {
                zip: zip.as_deref(),
                payload: &payload,
                batch_results: batch_results.as_deref(),
                config: config.as_deref(),
                uid,
                gid,
                limits,
            };
            match taskdir::prepare(&dir, &contents) {
                Err(_) if disk::is_full(&disk.mount) => Err(ExecError::CodeExceedsDisk {
                    mib: disk_bytes / MIB,
                }),
                other => other.map_err(ExecError::from),
            }
        })
        .await
        .map_err(|e| ExecError::Io(std::io::Error::other(e)))?;
        prepared
    }

    /// Waits for exit, the timeout, cancellation or a full disk, whichever comes first; all
    /// but the first kill the container (SIGKILL: the task gets no grace period, as with
    /// IronWorker).
    async fn wait_for_end(
        &self,
        name: &str,
        timeout: Duration,
        cancel: &CancellationToken,
        disk: &std::path::Path,
    ) -> Result<End, ExecError> {
        let options = WaitContainerOptions {
            condition: "not-running",
        };
        let mut wait = self.docker.wait_container(name, Some(options));
        let end = tokio::select! {
            exit = wait.next() => return match exit {
                Some(Ok(response)) => Ok(End::Exited(exit_code(response.status_code))),
                Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => {
                    Ok(End::Exited(exit_code(code)))
                }
                Some(Err(e)) => Err(e.into()),
                None => Err(ExecError::Io(std::io::Error::other("container wait ended early"))),
            },
            _ = tokio::time::sleep(timeout) => End::TimedOut,
            _ = cancel.cancelled() => End::Cancelled,
            _ = until_full(disk) => End::DiskFull,
        };
        self.kill(name).await;
        Ok(end)
    }

    async fn kill(&self, name: &str) {
        let options = KillContainerOptions { signal: "SIGKILL" };
        if let Err(e) = self.docker.kill_container(name, Some(options)).await {
            // 409: it stopped by itself in the meantime, which is fine.
            tracing::debug!(container = name, error = %e, "kill failed");
        }
    }

    /// A non-zero exit: `killed` when the kernel's OOM killer ended it, `error` otherwise.
    async fn failure(&self, name: &str, code: i32, last_stderr: Option<String>) -> Outcome {
        let oom = self
            .docker
            .inspect_container(name, None)
            .await
            .ok()
            .and_then(|c| c.state)
            .and_then(|s| s.oom_killed)
            .unwrap_or(false);
        if oom {
            return Outcome::Killed {
                exit_code: code,
                msg: "Killed: out of memory".to_owned(),
            };
        }
        let msg = match last_stderr {
            Some(line) => format!("Process exited with code {code}: {line}"),
            None => format!("Process exited with code {code}"),
        };
        Outcome::Error {
            exit_code: code,
            msg,
        }
    }

    /// Removes this host's containers, task disks and task dirs left by a previous runner
    /// process (crash recovery). Call before leasing. Returns how many containers were removed.
    pub async fn cleanup_orphans(&self) -> Result<usize, ExecError> {
        let filters = HashMap::from([(
            "label".to_owned(),
            vec![format!("{LABEL_RUNNER}={}", self.config.host_id)],
        )]);
        let options = ListContainersOptions {
            all: true,
            filters,
            ..Default::default()
        };
        let orphans = self.docker.list_containers(Some(options)).await?;
        let mut removed = 0;
        for orphan in orphans {
            let Some(id) = orphan.id else { continue };
            taskdir::remove_container(&self.docker, &id).await?;
            removed += 1;
        }
        let (tasks, disks) = (self.config.tasks_dir(), self.config.disks_dir());
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            // Task disks a crashed runner left mounted, then their images.
            disk::unmount_all_under(&tasks)?;
            if disks.exists() {
                taskdir::remove_dir_if_present(&disks)?;
            }
            for entry in std::fs::read_dir(&tasks)? {
                let entry = entry?;
                if entry.file_type()?.is_dir() {
                    taskdir::remove_dir_if_present(&entry.path())?;
                } else {
                    std::fs::remove_file(entry.path())?;
                }
            }
            Ok(())
        })
        .await
        .map_err(|e| ExecError::Io(std::io::Error::other(e)))??;
        Ok(removed)
    }
}

enum End {
    Exited(i32),
    TimedOut,
    Cancelled,
    DiskFull,
}

/// Resolves once the task's disk is full.
async fn until_full(mount: &std::path::Path) {
    let mut tick = tokio::time::interval(DISK_CHECK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let path = mount.to_owned();
        if tokio::task::spawn_blocking(move || disk::is_full(&path))
            .await
            .unwrap_or(false)
        {
            return;
        }
    }
}

/// The `msg` of a task stopped at its disk limit.
pub fn disk_full_msg(disk_bytes: i64) -> String {
    format!(
        "the task used its whole disk limit of {} MiB",
        disk_bytes / MIB
    )
}

fn exit_code(code: i64) -> i32 {
    i32::try_from(code).unwrap_or(i32::MAX)
}
