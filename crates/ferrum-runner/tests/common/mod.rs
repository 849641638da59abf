//! Helpers for tests against the real Docker engine.

#![allow(dead_code, unused_macros)]

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::io::Write;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bollard::container::ListContainersOptions;
use bollard::Docker;
use bytes::{Bytes, BytesMut};
use ferrum_model::protocol::{LogStream, RunSpec};
use ferrum_model::Id;
use ferrum_runner::executor::{
    ApiDoor, DockerExecutor, ExecError, Executor, ExecutorConfig, NetworkMode, PoolConfig,
    PooledExecutor, RunReport, TaskEvent, TaskRun,
};
use ferrum_runner::stacks;
use futures_util::FutureExt;
use tokio::sync::{mpsc, OnceCell};
use tokio_util::sync::CancellationToken;

static SH_IMAGE: OnceCell<()> = OnceCell::const_new();

/// Builds the `sh` stack image once if it is missing.
pub async fn ensure_sh_image() {
    SH_IMAGE
        .get_or_init(|| async {
            stacks::build(&["sh".to_owned()], false).await.unwrap();
        })
        .await;
}

/// A unique scratch directory under `$TMPDIR/ferrum-runner-tests` (test zips and work dirs;
/// task dirs inside are removed by the executor, which the tests check).
pub fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir()
        .join("ferrum-runner-tests")
        .join(format!("{tag}-{}", Id::generate()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Which executor a suite test runs on; [`suite!`] runs each test once per kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Cold,
    Pooled,
}

/// Parked containers per pooled image in tests: two, so a test may run two tasks at once.
pub const POOL: usize = 2;

/// Generates `cold::<test>` and `pooled::<test>` for each `async fn <test>(kind: Kind)`, each
/// run through [`suite`].
macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        mod cold {
            $(#[tokio::test]
            async fn $name() {
                $crate::common::suite($crate::common::Kind::Cold, super::$name).await
            })*
        }
        mod pooled {
            $(#[tokio::test]
            async fn $name() {
                $crate::common::suite($crate::common::Kind::Pooled, super::$name).await
            })*
        }
    };
}

tokio::task_local! {
    /// The executors a suite test made, shut down and checked when it ends.
    static MADE: Arc<Mutex<Vec<TestExec>>>;
}

/// Runs one suite test, then shuts down every executor it made (its pools included) and
/// checks that nothing of theirs is left: no container, no mount, no task dir, no disk.
pub async fn suite<F, Fut>(kind: Kind, test: F)
where
    F: FnOnce(Kind) -> Fut,
    Fut: Future<Output = ()>,
{
    let made = Arc::new(Mutex::new(Vec::new()));
    let result = MADE
        .scope(made.clone(), AssertUnwindSafe(test(kind)).catch_unwind())
        .await;
    let made = std::mem::take(&mut *made.lock().unwrap());
    for exec in &made {
        exec.exec.shutdown().await;
    }
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
    for exec in &made {
        exec.assert_clean().await;
    }
}

/// The executor under test, cold or pooled, with what tests look at beside it.
#[derive(Clone)]
pub struct TestExec {
    pub kind: Kind,
    exec: Arc<dyn Executor>,
    pooled: Option<Arc<PooledExecutor>>,
    docker: Docker,
    /// Images with a pool (pooled kind only).
    pub pooled_images: Vec<String>,
}

impl TestExec {
    pub fn config(&self) -> &ExecutorConfig {
        self.exec.config()
    }

    pub fn docker(&self) -> &Docker {
        &self.docker
    }

    /// Runs a task; on the pooled kind, first waits for the pools to be full, so a task that
    /// fits a pool is sure to take a parked container.
    pub async fn run(
        &self,
        task: TaskRun,
        events: mpsc::Sender<TaskEvent>,
        cancel: CancellationToken,
    ) -> Result<RunReport, ExecError> {
        self.until_full().await;
        self.exec.run(task, events, cancel).await
    }

    pub async fn until_full(&self) {
        if let Some(pooled) = &self.pooled {
            pooled.until_full().await;
        }
    }

    /// How many containers sit parked once the pools are full.
    pub fn parked(&self) -> usize {
        self.pooled_images.len() * POOL
    }

    /// Whether `task` should take a parked container on this executor.
    pub fn fits_pool(&self, task: &TaskRun) -> bool {
        !task.spec.docker_style
            && task.limits.is_none()
            && self.pooled_images.contains(&task.spec.image)
    }

    /// The crash-recovery pass a restarted runner makes: a fresh cold executor on the same
    /// work dir and host id.
    pub async fn cleanup_orphans(&self) -> usize {
        DockerExecutor::connect(self.config().clone())
            .await
            .unwrap()
            .cleanup_orphans()
            .await
            .unwrap()
    }

    async fn assert_clean(&self) {
        let host = &self.config().host_id;
        let filters = HashMap::from([("label".to_owned(), vec![format!("ferrum.runner={host}")])]);
        let options = ListContainersOptions {
            all: true,
            filters,
            ..Default::default()
        };
        let left = self.docker.list_containers(Some(options)).await.unwrap();
        assert!(left.is_empty(), "containers left: {left:?}");
        let work = &self.config().work_dir;
        assert!(mounts_under(work).is_empty(), "{:?}", mounts_under(work));
        let tasks: Vec<_> = std::fs::read_dir(work.join("tasks")).unwrap().collect();
        assert!(tasks.is_empty(), "task dirs left: {tasks:?}");
        let disks = work.join("disks");
        if disks.exists() {
            let images: Vec<_> = std::fs::read_dir(disks).unwrap().collect();
            assert!(images.is_empty(), "disk images left: {images:?}");
        }
    }
}

/// An executor of `kind` with its own work dir and host id, so parallel tests never see each
/// other's containers; pooled, it parks [`POOL`] containers of the sh stack.
pub async fn executor(kind: Kind, tag: &str, tweak: impl FnOnce(&mut ExecutorConfig)) -> TestExec {
    make(kind, tag, tweak, None, &[stacks::IMAGE_SH]).await.0
}

/// [`executor`] with the API door opened towards `api`; also answers the door.
pub async fn executor_with_door(
    kind: Kind,
    tag: &str,
    tweak: impl FnOnce(&mut ExecutorConfig),
    api: &str,
) -> (TestExec, Option<ApiDoor>) {
    make(kind, tag, tweak, Some(api), &[stacks::IMAGE_SH]).await
}

/// [`executor`] pooling the given images instead.
pub async fn executor_for(kind: Kind, tag: &str, images: &[&str]) -> TestExec {
    make(kind, tag, |_| {}, None, images).await.0
}

async fn make(
    kind: Kind,
    tag: &str,
    tweak: impl FnOnce(&mut ExecutorConfig),
    api: Option<&str>,
    images: &[&str],
) -> (TestExec, Option<ApiDoor>) {
    ensure_sh_image().await;
    let mut config = ExecutorConfig::new(scratch(tag), format!("test-{tag}-{}", Id::generate()));
    config.network = NetworkMode::None;
    config.pull_missing = false;
    tweak(&mut config);
    let mut cold = DockerExecutor::connect(config).await.unwrap();
    let door = match api {
        Some(api) => cold.open_door(&[api]).await.unwrap(),
        None => None,
    };
    let docker = cold.docker().clone();
    let (exec, pooled, pooled_images): (Arc<dyn Executor>, _, _) = match kind {
        Kind::Cold => (Arc::new(cold), None, Vec::new()),
        Kind::Pooled => {
            let sizes = images.iter().map(|i| (i.to_string(), POOL)).collect();
            let pooled = Arc::new(PooledExecutor::start(cold, &PoolConfig { sizes }));
            let images = images.iter().map(|i| i.to_string()).collect();
            (pooled.clone(), Some(pooled), images)
        }
    };
    let exec = TestExec {
        kind,
        exec,
        pooled,
        docker,
        pooled_images,
    };
    let _ = MADE.try_with(|made| made.lock().unwrap().push(exec.clone()));
    (exec, door)
}

pub fn sh_spec(file_name: &str) -> RunSpec {
    RunSpec {
        code_id: Id::generate(),
        code_name: "test".into(),
        revision_id: Id::generate(),
        rev: 1,
        image: stacks::IMAGE_SH.into(),
        docker_style: false,
        runtime: Some("sh".into()),
        file_name: Some(file_name.into()),
        command: None,
        config: None,
        env_vars: BTreeMap::new(),
        has_zip: true,
        memory_mb: None,
        cpus: None,
        pids: None,
        disk_mb: None,
    }
}

/// Writes a zip holding `files` (name, contents) into `dir`.
pub fn make_zip(dir: &Path, files: &[(&str, &[u8])]) -> PathBuf {
    let path = dir.join(format!("{}.zip", Id::generate()));
    let mut w = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
    let opts = zip::write::SimpleFileOptions::default().unix_permissions(0o644);
    for (name, data) in files {
        w.start_file(*name, opts).unwrap();
        w.write_all(data).unwrap();
    }
    w.finish().unwrap();
    path
}

/// A task running `script` as `run.sh` with the sh stack.
pub fn sh_task(exec: &TestExec, script: &str) -> TaskRun {
    let zip = make_zip(&exec.config().work_dir, &[("run.sh", script.as_bytes())]);
    TaskRun {
        task_id: Id::generate().to_string(),
        attempt: 1,
        schedule_id: None,
        spec: sh_spec("run.sh"),
        payload: Vec::new(),
        zip: Some(zip),
        timeout: Duration::from_secs(30),
        limits: None,
        iron: None,
        max_result_bytes: 1024,
        batch: None,
    }
}

/// What a run produced.
pub struct Collected {
    pub result: Result<RunReport, ExecError>,
    pub started: bool,
    pub chunks: Vec<(LogStream, Bytes)>,
}

impl Collected {
    pub fn stream(&self, which: LogStream) -> Bytes {
        let mut out = BytesMut::new();
        for (s, d) in &self.chunks {
            if *s == which {
                out.extend_from_slice(d);
            }
        }
        out.freeze()
    }

    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.stream(LogStream::Stdout)).into_owned()
    }

    pub fn report(&self) -> &RunReport {
        self.result.as_ref().unwrap()
    }
}

/// Runs a task, collecting its events, then checks that its container and task dir are gone
/// and that it took a parked container exactly when it should have.
pub async fn run(exec: &TestExec, task: TaskRun, cancel: CancellationToken) -> Collected {
    let pooled = exec.kind == Kind::Pooled && exec.fits_pool(&task);
    let (tx, mut rx) = mpsc::channel(64);
    let name = format!("ferrum-{}-{}", task.task_id, task.attempt);
    let dir = exec
        .config()
        .work_dir
        .join("tasks")
        .join(format!("{}-{}", task.task_id, task.attempt));
    let collector = tokio::spawn(async move {
        let mut started = false;
        let mut chunks = Vec::new();
        while let Some(event) = rx.recv().await {
            match event {
                TaskEvent::Started => started = true,
                TaskEvent::Output { stream, data } => chunks.push((stream, data)),
            }
        }
        (started, chunks)
    });
    let result = exec.run(task, tx, cancel).await;
    let (started, chunks) = collector.await.unwrap();
    assert_gone(exec, &name, &dir).await;
    if let Ok(report) = &result {
        assert_eq!(report.pooled, pooled, "ran pooled: {}", report.pooled);
    }
    Collected {
        result,
        started,
        chunks,
    }
}

pub async fn assert_gone(exec: &TestExec, name: &str, dir: &Path) {
    match exec.docker().inspect_container(name, None).await {
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => {}
        other => panic!("container {name} still exists: {other:?}"),
    }
    assert!(!dir.exists(), "task dir {} left behind", dir.display());
    let image = exec.config().work_dir.join("disks").join(format!(
        "{}.img",
        dir.file_name().unwrap().to_string_lossy()
    ));
    assert!(!image.exists(), "task disk {} left behind", image.display());
    assert!(mounts_under(dir).is_empty(), "task disk still mounted");
}

/// Mount points at or below `dir`.
pub fn mounts_under(dir: &Path) -> Vec<String> {
    let dir = dir.to_string_lossy().into_owned();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|p| p.starts_with(&dir))
        .map(str::to_owned)
        .collect()
}
