//! The cold Docker executor: for each task, a disk, then create, attach, start. It also owns
//! what every Docker-based executor shares: the engine connection, the sandbox set-up (network,
//! filter, door), filling a task's disk and supervising a started container to its end.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bollard::container::{
    AttachContainerOptions, KillContainerOptions, ListContainersOptions, LogOutput,
    WaitContainerOptions,
};
use bollard::Docker;
use futures_util::future::BoxFuture;
use futures_util::{Stream, StreamExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::container::{self, ContainerSpec};
use super::disk::{self, TaskDisk};
use super::taskdir::{self, Cleanup, DirContents};
use super::{
    door, network, output, ApiDoor, ExecError, Executor, ExecutorConfig, Limits, NetworkMode,
    Outcome, RunReport, TaskEvent, TaskRun, LABEL_RUNNER,
};
use crate::contract::{self, Invocation, TaskIdentity};

/// How long to wait for the output stream to drain after the container stopped.
const DRAIN_GRACE: Duration = Duration::from_secs(5);
/// How often a running task's disk is checked for being full. The kernel already refuses
/// writes past the limit; the check only ends a task that keeps going after that.
const DISK_CHECK: Duration = Duration::from_millis(250);
const MIB: i64 = 1024 * 1024;

/// A container's attached stdout/stderr.
pub(crate) type Output =
    Pin<Box<dyn Stream<Item = Result<LogOutput, bollard::errors::Error>> + Send>>;

/// A container whose user code runs, and what [`DockerExecutor::supervise`] needs about it.
pub(crate) struct Supervised<'a> {
    /// Its name or id.
    pub container: &'a str,
    pub output: Output,
    pub task: &'a TaskRun,
    pub limits: Limits,
    pub disk: &'a TaskDisk,
    pub pooled: bool,
}

/// The cold Docker executor: each task's container is created when the task runs. Cheap to
/// clone; share one per runner. A [`PooledExecutor`](super::PooledExecutor) wraps one.
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
            NetworkMode::Isolated => {
                Some(network::ensure_isolated(&docker, config.engine_netns.as_deref()).await?)
            }
            _ => None,
        };
        Ok(DockerExecutor {
            docker,
            config: Arc::new(config),
            gateway,
            door: None,
        })
    }

    /// Opens the way for tasks to reach the Ferrum API at `apis` (the replicas' URLs the
    /// runner uses, one scheme for all) and records it as [`ExecutorConfig::api_door`], so
    /// every task gets `IRON_HOST`, `IRON_PORT` and `IRON_PROTOCOL`. In `isolated` mode that
    /// is a forwarder on the bridge's gateway (port [`ExecutorConfig::door_port`]) to
    /// whichever replica it can reach; on an operator's named network it is the first API URL
    /// itself (the operator provides the route); in `none` mode there is no door.
    pub async fn open_door(
        &mut self,
        apis: &[impl AsRef<str>],
    ) -> Result<Option<ApiDoor>, ExecError> {
        let targets = door::Target::parse_all(apis)?;
        let (api_door, guard) = match (&self.config.network, self.gateway) {
            (NetworkMode::None, _) => return Ok(None),
            (NetworkMode::Named(_), _) => (targets[0].as_door(), None),
            (NetworkMode::Isolated, Some(gateway)) => {
                let netns = self.config.engine_netns.as_deref();
                let (d, g) = door::open(gateway, self.config.door_port, targets, netns).await?;
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

    pub fn docker(&self) -> &Docker {
        &self.docker
    }

    /// [`Executor::run`] in a container created for the task.
    pub(crate) async fn run_cold(
        &self,
        task: TaskRun,
        events: mpsc::Sender<TaskEvent>,
        cancel: CancellationToken,
    ) -> Result<RunReport, ExecError> {
        let name = format!("ferrum-{}-{}", task.task_id, task.attempt);
        let disk = self.task_disk(&format!("{}-{}", task.task_id, task.attempt));
        let cleanup = Cleanup::new(self.docker.clone(), name.clone(), disk.clone());
        let result = self.run_in(&task, &name, &disk, events, cancel).await;
        cleanup.finish().await;
        result
    }

    async fn run_in(
        &self,
        task: &TaskRun,
        name: &str,
        disk: &TaskDisk,
        events: mpsc::Sender<TaskEvent>,
        cancel: CancellationToken,
    ) -> Result<RunReport, ExecError> {
        let limits = self.config.limits_of(task);
        let mut invocation = self.invocation(task)?;
        invocation.env = self.task_env(invocation.env);
        self.create_disk(disk, limits.disk_bytes).await?;
        self.fill_task_dir(task, disk, limits.disk_bytes).await?;
        let spec = ContainerSpec {
            name,
            image: &task.spec.image,
            task: Some((&task.task_id, task.attempt)),
            invocation,
            host_dir: &disk.mount,
            limits,
        };
        container::create(&self.docker, &self.config, &spec).await?;
        let output = self.attach(name).await?;
        self.docker.start_container::<String>(name, None).await?;
        let run = Supervised {
            container: name,
            output,
            task,
            limits,
            disk,
            pooled: false,
        };
        self.supervise(run, events, cancel).await
    }

    /// The task's argv, working dir and contract environment (without the door's variables).
    pub(crate) fn invocation(&self, task: &TaskRun) -> Result<Invocation, ExecError> {
        let identity = TaskIdentity {
            task_id: task.task_id.clone(),
            schedule_id: task.schedule_id.clone(),
            iron: task.iron.clone(),
            batch_id: task.batch.as_ref().map(|(id, _)| id.clone()),
        };
        Ok(contract::invocation(&task.spec, &identity)?)
    }

    /// A task's environment with the API door's `IRON_*` variables laid over it.
    pub(crate) fn task_env(&self, mut env: Vec<String>) -> Vec<String> {
        if let Some(door) = &self.config.api_door {
            door.apply(&mut env);
        }
        env
    }

    /// Where the disk `key` (`<task>-<attempt>`, or a parked container's) lives.
    pub(crate) fn task_disk(&self, key: &str) -> TaskDisk {
        TaskDisk {
            image: self.config.disks_dir().join(format!("{key}.img")),
            mount: self.config.tasks_dir().join(key),
        }
    }

    /// Creates, formats and mounts a disk of `disk_bytes` (`disk.rs`).
    pub(crate) async fn create_disk(
        &self,
        disk: &TaskDisk,
        disk_bytes: i64,
    ) -> Result<(), ExecError> {
        let disk = disk.clone();
        let (uid, gid) = (self.config.task_uid, self.config.task_gid);
        blocking(move || {
            disk.create(u64::try_from(disk_bytes).unwrap_or(0), uid, gid)
                .map_err(|e| ExecError::Sandbox(format!("creating the task disk: {e}")))
        })
        .await
    }

    /// Fills the disk's `task/` (bind-mounted at `/mnt/task`): the unpacked zip, the payload,
    /// the config.
    pub(crate) async fn fill_task_dir(
        &self,
        task: &TaskRun,
        disk: &TaskDisk,
        disk_bytes: i64,
    ) -> Result<(), ExecError> {
        let dir = disk.mount.join(disk::TASK_SUBDIR);
        let mount = disk.mount.clone();
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
        blocking(move || {
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
                Err(_) if disk::is_full(&mount) => Err(ExecError::CodeExceedsDisk {
                    mib: disk_bytes / MIB,
                }),
                other => other.map_err(ExecError::from),
            }
        })
        .await
    }

    /// Attaches to a container's stdout and stderr, from now on (the `none` log driver keeps
    /// nothing from before).
    pub(crate) async fn attach(&self, container: &str) -> Result<Output, ExecError> {
        let attach = AttachContainerOptions::<String> {
            stdout: Some(true),
            stderr: Some(true),
            stream: Some(true),
            ..Default::default()
        };
        Ok(self
            .docker
            .attach_container(container, Some(attach))
            .await?
            .output)
    }

    /// Follows a container whose user code has just started to its end: reports `Started`,
    /// forwards its output, enforces the timeout, cancel and the full disk, and says how it
    /// ended.
    pub(crate) async fn supervise(
        &self,
        run: Supervised<'_>,
        events: mpsc::Sender<TaskEvent>,
        cancel: CancellationToken,
    ) -> Result<RunReport, ExecError> {
        let (name, limits, mount) = (run.container, run.limits, &run.disk.mount);
        let started = Instant::now();
        // The receiver may be gone already (lease lost); the run still has to finish cleanly.
        let _ = events.send(TaskEvent::Started).await;
        let pump = tokio::spawn(output::pump(run.output, events, self.config.log_cap_bytes));

        let ended = self
            .wait_for_end(name, run.task.timeout, &cancel, mount)
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
                let full = disk::is_full(mount);
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
        let cap = run.task.max_result_bytes;
        let dir = mount.join(disk::TASK_SUBDIR);
        let result = blocking(move || Ok(crate::result::read(&dir, cap)?)).await?;
        Ok(RunReport {
            outcome,
            log_bytes: summary.forwarded,
            truncated: summary.truncated,
            duration,
            pooled: run.pooled,
            result,
        })
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

    /// Removes this host's containers (parked ones included: they carry the same label), task
    /// disks and task dirs left by a previous runner process (crash recovery). Call before
    /// leasing and before parking. Returns how many containers were removed.
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

/// Runs blocking work (disks, files) off the async workers.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ExecError> + Send + 'static,
) -> Result<T, ExecError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ExecError::Io(std::io::Error::other(e)))?
}

fn exit_code(code: i64) -> i32 {
    i32::try_from(code).unwrap_or(i32::MAX)
}

impl Executor for DockerExecutor {
    fn config(&self) -> &ExecutorConfig {
        &self.config
    }

    fn run(
        &self,
        task: TaskRun,
        events: mpsc::Sender<TaskEvent>,
        cancel: CancellationToken,
    ) -> BoxFuture<'_, Result<RunReport, ExecError>> {
        Box::pin(self.run_cold(task, events, cancel))
    }

    /// A cold executor holds nothing between tasks.
    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}
