//! Helpers for tests against the real Docker engine.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use ferrum_model::protocol::{LogStream, RunSpec};
use ferrum_model::Id;
use ferrum_runner::executor::{
    DockerExecutor, ExecError, ExecutorConfig, NetworkMode, RunReport, TaskEvent, TaskRun,
};
use ferrum_runner::stacks;
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

/// An executor with its own work dir and host id, so parallel tests never see each other's
/// containers.
pub async fn executor(tag: &str, tweak: impl FnOnce(&mut ExecutorConfig)) -> DockerExecutor {
    ensure_sh_image().await;
    let mut config = ExecutorConfig::new(scratch(tag), format!("test-{tag}-{}", Id::generate()));
    config.network = NetworkMode::None;
    config.pull_missing = false;
    tweak(&mut config);
    DockerExecutor::connect(config).await.unwrap()
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
pub fn sh_task(exec: &DockerExecutor, script: &str) -> TaskRun {
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

/// Runs a task, collecting its events, then checks that its container and task dir are gone.
pub async fn run(exec: &DockerExecutor, task: TaskRun, cancel: CancellationToken) -> Collected {
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
    Collected {
        result,
        started,
        chunks,
    }
}

pub async fn assert_gone(exec: &DockerExecutor, name: &str, dir: &Path) {
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
