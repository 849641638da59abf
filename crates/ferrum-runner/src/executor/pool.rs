//! The pooled executor: containers created and started before their tasks arrive.
//!
//! Why: creating and starting a container costs about as much as everything else between
//! queueing a task and its first instruction together. A pool moves that cost out of the way:
//! per stack image, a few containers wait parked in the init of `init.rs`, each with its own
//! disk. A task takes one, its files are written onto that disk, and the init is released into
//! the worker. Each container still runs exactly one task and is removed after it; a filler
//! parks a new one in the background. Parked containers are created exactly like cold ones
//! (`container.rs`: user, capabilities, no-new-privileges, network, read-only root, disk)
//! with the pool's limits, which cannot change after creation; so a pool serves the runner's
//! default limits, and a task with other limits, a Docker-image code, or a task that finds its
//! pool empty runs cold, as does one whose parked init turns out to be gone.
//!
//! Parked containers carry the runner's label, so `cleanup_orphans` removes them after a
//! crash like any other, and `ferrum.pool` naming their image. A taken container is renamed
//! `ferrum-<task>-<attempt>`, like a cold one.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bollard::container::{LogOutput, RenameContainerOptions};
use ferrum_model::Id;
use futures_util::future::BoxFuture;
use futures_util::StreamExt;
use tokio::sync::{mpsc, watch, Notify};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::container::{self, ContainerSpec};
use super::disk::TaskDisk;
use super::docker::{blocking, Output, Supervised};
use super::taskdir::Cleanup;
use super::{
    init, DockerExecutor, ExecError, Executor, ExecutorConfig, Limits, RunReport, TaskEvent,
    TaskRun,
};

/// Longest a new container's init may take to say it is ready.
const READY_WAIT: Duration = Duration::from_secs(30);
/// Pauses of a filler whose parking fails (a missing image, a busy engine), doubling.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// How many containers to keep parked per stack image (`ferrum runner --pool`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolConfig {
    /// Image → parked containers; images not listed (or 0) get no pool.
    pub sizes: BTreeMap<String, usize>,
}

impl PoolConfig {
    /// `size` parked containers for every stack image.
    pub fn per_stack(size: usize) -> Self {
        let sizes = crate::stacks::images()
            .into_iter()
            .map(|image| (image.to_owned(), size))
            .collect();
        PoolConfig { sizes }
    }
}

/// Runs tasks in parked containers when it can, cold otherwise. Dropping it stops the
/// fillers; [`Executor::shutdown`] also removes the parked containers and waits for that.
pub struct PooledExecutor {
    inner: Arc<Inner>,
}

struct Inner {
    cold: DockerExecutor,
    pools: Vec<Arc<Pool>>,
    stop: CancellationToken,
    fillers: Mutex<Vec<JoinHandle<()>>>,
}

/// The parked containers of one image and limits.
struct Pool {
    image: String,
    limits: Limits,
    size: usize,
    parked: Mutex<VecDeque<Slot>>,
    /// How many are parked, for [`PooledExecutor::until_full`].
    count: watch::Sender<usize>,
    /// Wakes the filler when a container is taken.
    taken: Notify,
}

/// A parked container: its cleanup guard (which names the container and its disk, and
/// removes both if the slot is dropped) and its attached output, past the init's marker.
struct Slot {
    cleanup: Cleanup,
    output: Output,
}

impl PooledExecutor {
    /// Starts a filler per pool of `config`, each parking containers with the cold executor's
    /// settings and its default limits. Call after [`DockerExecutor::cleanup_orphans`].
    pub fn start(cold: DockerExecutor, config: &PoolConfig) -> Self {
        let limits = cold.config().limits.clamped_to(cold.config().max_limits);
        let pools = config
            .sizes
            .iter()
            .filter(|(_, size)| **size > 0)
            .map(|(image, size)| {
                Arc::new(Pool {
                    image: image.clone(),
                    limits,
                    size: *size,
                    parked: Mutex::new(VecDeque::new()),
                    count: watch::Sender::new(0),
                    taken: Notify::new(),
                })
            })
            .collect::<Vec<_>>();
        let inner = Arc::new(Inner {
            cold,
            pools,
            stop: CancellationToken::new(),
            fillers: Mutex::new(Vec::new()),
        });
        let fillers = inner
            .pools
            .iter()
            .map(|pool| tokio::spawn(fill(inner.clone(), pool.clone())))
            .collect();
        *inner.fillers.lock().unwrap() = fillers;
        PooledExecutor { inner }
    }

    /// Resolves once every pool holds its full size: how a caller makes sure that its next
    /// task (with the default limits) finds a parked container.
    pub async fn until_full(&self) {
        for pool in &self.inner.pools {
            let mut count = pool.count.subscribe();
            let _ = count.wait_for(|n| *n >= pool.size).await;
        }
    }
}

impl Drop for PooledExecutor {
    fn drop(&mut self) {
        self.inner.stop.cancel();
    }
}

impl Executor for PooledExecutor {
    fn config(&self) -> &ExecutorConfig {
        self.inner.cold.config()
    }

    fn run(
        &self,
        task: TaskRun,
        events: mpsc::Sender<TaskEvent>,
        cancel: CancellationToken,
    ) -> BoxFuture<'_, Result<RunReport, ExecError>> {
        Box::pin(self.inner.run(task, events, cancel))
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(self.inner.shutdown())
    }
}

impl Inner {
    async fn run(
        &self,
        task: TaskRun,
        events: mpsc::Sender<TaskEvent>,
        cancel: CancellationToken,
    ) -> Result<RunReport, ExecError> {
        let limits = self.cold.config().limits_of(&task);
        let invocation = self.cold.invocation(&task)?;
        let env = self.cold.task_env(invocation.env.clone());
        let script = init::task_script(&invocation, &env);
        let slot = match (&script, self.pool_for(&task, limits)) {
            (Some(_), Some(pool)) => pool.take(),
            _ => None,
        };
        let (Some(script), Some(slot)) = (script, slot) else {
            return self.cold.run_cold(task, events, cancel).await;
        };
        let Slot {
            mut cleanup,
            output,
        } = slot;
        let handed = self.hand_over(&mut cleanup, &task, &script, limits).await;
        let result = match handed {
            Ok(true) => {
                let run = Supervised {
                    container: cleanup.container(),
                    output,
                    task: &task,
                    limits,
                    disk: cleanup.disk(),
                    pooled: true,
                };
                self.cold.supervise(run, events, cancel).await
            }
            Ok(false) => {
                cleanup.finish().await;
                return self.cold.run_cold(task, events, cancel).await;
            }
            Err(e) => Err(e),
        };
        cleanup.finish().await;
        result
    }

    /// The pool a task fits: its image, exactly its limits, and a command the init can run
    /// (a Docker-image code keeps its image's own entrypoint and workdir, so never).
    fn pool_for(&self, task: &TaskRun, limits: Limits) -> Option<&Pool> {
        if task.spec.docker_style {
            return None;
        }
        self.pools
            .iter()
            .find(|p| p.image == task.spec.image && p.limits == limits)
            .map(|p| &**p)
    }

    /// Writes the task's files and script onto the parked container's disk while renaming
    /// it after the task, then releases its init. `Ok(false)`: the init was gone, nothing
    /// ran.
    async fn hand_over(
        &self,
        cleanup: &mut Cleanup,
        task: &TaskRun,
        script: &str,
        limits: Limits,
    ) -> Result<bool, ExecError> {
        let name = format!("ferrum-{}-{}", task.task_id, task.attempt);
        let disk = cleanup.disk().clone();
        let fill = async {
            self.cold
                .fill_task_dir(task, &disk, limits.disk_bytes)
                .await?;
            let (mount, script) = (disk.mount.clone(), script.to_owned());
            blocking(move || Ok(init::write_script(&mount, &script)?)).await
        };
        let options = RenameContainerOptions { name: name.clone() };
        let rename = self
            .cold
            .docker()
            .rename_container(cleanup.container(), options);
        let (filled, renamed) = tokio::join!(fill, rename);
        match renamed {
            Ok(()) => cleanup.renamed(name),
            Err(e) => tracing::warn!(container = cleanup.container(), error = %e, "rename failed"),
        }
        filled?;
        match init::release(&disk.mount) {
            Ok(()) => Ok(true),
            Err(e) => {
                tracing::warn!(container = cleanup.container(), error = %e,
                    "a parked container's init is gone; running its task cold");
                Ok(false)
            }
        }
    }

    /// Creates, starts and attaches one parked container with its disk and control
    /// directory, and waits for its init's marker; removes what it made if that fails.
    async fn park(&self, pool: &Pool) -> Result<Slot, ExecError> {
        let key = format!("pool-{}", Id::generate());
        let disk = self.cold.task_disk(&key);
        let cleanup = Cleanup::new(
            self.cold.docker().clone(),
            format!("ferrum-{key}"),
            disk.clone(),
        );
        match self.park_in(pool, cleanup.container(), &disk).await {
            Ok(output) => Ok(Slot { cleanup, output }),
            Err(e) => {
                cleanup.finish().await;
                Err(e)
            }
        }
    }

    async fn park_in(&self, pool: &Pool, name: &str, disk: &TaskDisk) -> Result<Output, ExecError> {
        let docker = self.cold.docker();
        self.cold.create_disk(disk, pool.limits.disk_bytes).await?;
        let config = self.cold.config();
        let (mount, uid, gid) = (disk.mount.clone(), config.task_uid, config.task_gid);
        blocking(move || Ok(init::prepare(&mount, uid, gid)?)).await?;
        let spec = ContainerSpec {
            name,
            image: &pool.image,
            task: None,
            invocation: init::invocation(),
            host_dir: &disk.mount,
            limits: pool.limits,
        };
        // A pool never pulls: a stack image is built on the runner (`ferrum stacks build`),
        // and a filler retrying a pull every backoff would only load the registry. A missing
        // image leaves the pool empty and its tasks cold (which pull if allowed).
        let config = ExecutorConfig {
            pull_missing: false,
            ..config.clone()
        };
        container::create(docker, &config, &spec).await?;
        let mut output = self.cold.attach(name).await?;
        docker.start_container::<String>(name, None).await?;
        tokio::time::timeout(READY_WAIT, until_ready(&mut output))
            .await
            .map_err(|_| ExecError::Pool("its init did not start".to_owned()))??;
        Ok(output)
    }

    async fn shutdown(&self) {
        self.stop.cancel();
        let fillers = std::mem::take(&mut *self.fillers.lock().unwrap());
        for filler in fillers {
            let _ = filler.await;
        }
        for pool in &self.pools {
            while let Some(slot) = pool.pop() {
                slot.cleanup.finish().await;
            }
        }
    }
}

impl Pool {
    fn len(&self) -> usize {
        self.parked.lock().unwrap().len()
    }

    fn push(&self, slot: Slot) {
        let mut parked = self.parked.lock().unwrap();
        parked.push_back(slot);
        self.count.send_replace(parked.len());
    }

    fn pop(&self) -> Option<Slot> {
        let mut parked = self.parked.lock().unwrap();
        let slot = parked.pop_front();
        self.count.send_replace(parked.len());
        slot
    }

    /// Takes the longest-parked container and wakes the filler.
    fn take(&self) -> Option<Slot> {
        let slot = self.pop()?;
        self.taken.notify_one();
        Some(slot)
    }
}

/// Keeps one pool full until the executor stops: parks a container whenever one is missing,
/// pausing after failures. A park in progress finishes (or cleans up) before the filler ends,
/// so [`Inner::shutdown`] leaves nothing behind.
async fn fill(inner: Arc<Inner>, pool: Arc<Pool>) {
    let mut backoff = FIRST_BACKOFF;
    loop {
        while pool.len() < pool.size {
            let parked = inner.park(&pool).await;
            if inner.stop.is_cancelled() {
                if let Ok(slot) = parked {
                    slot.cleanup.finish().await;
                }
                return;
            }
            match parked {
                Ok(slot) => {
                    pool.push(slot);
                    backoff = FIRST_BACKOFF;
                }
                Err(e) => {
                    // Said once per run of failures; the retries in between only at debug.
                    if backoff == FIRST_BACKOFF {
                        tracing::warn!(image = pool.image, error = %e,
                            "could not park a container; retrying with a growing pause");
                    } else {
                        tracing::debug!(image = pool.image, error = %e, retry_in = ?backoff,
                            "could not park a container");
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = inner.stop.cancelled() => return,
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
        tokio::select! {
            _ = pool.taken.notified() => {}
            _ = inner.stop.cancelled() => return,
        }
    }
}

/// Reads the init's marker off its output; anything else first is a failure.
async fn until_ready(output: &mut Output) -> Result<(), ExecError> {
    let mut seen = Vec::new();
    while seen.len() < init::READY.len() {
        match output.next().await {
            Some(Ok(LogOutput::StdOut { message })) => seen.extend_from_slice(&message),
            Some(Ok(LogOutput::StdErr { message })) => {
                let text = String::from_utf8_lossy(&message);
                return Err(ExecError::Pool(format!("its init failed: {}", text.trim())));
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e.into()),
            None => return Err(ExecError::Pool("its init exited".to_owned())),
        }
    }
    if seen != init::READY {
        let text = String::from_utf8_lossy(&seen);
        return Err(ExecError::Pool(format!("its init said {:?}", text.trim())));
    }
    Ok(())
}
