//! `ferrum run-local DIR --payload FILE`: runs a worker once, here, exactly as a runner would —
//! same stack image, same task directory, argv and environment (contract §6), same container
//! hardening — through `ferrum_runner`'s executor. No API, database or token is involved.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use ferrum_model::protocol::{LogStream, RunSpec};
use ferrum_model::{stacks, Id};
use ferrum_runner::result::TaskResult;
use ferrum_runner::{DockerExecutor, Executor, ExecutorConfig, Outcome, TaskEvent, TaskRun};
use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::output::{self, Format};
use super::package::{zip_dir, CodeArgs};

#[derive(Debug, clap::Args)]
pub struct RunLocalArgs {
    #[command(flatten)]
    pub code: CodeArgs,
    /// A file whose contents are the task's payload (default: `{}`).
    #[arg(long = "payload", alias = "payload-file", value_name = "FILE")]
    pub payload: Option<PathBuf>,
    /// Seconds before the run is killed.
    #[arg(long, default_value_t = 3600)]
    pub timeout: u64,
}

pub async fn run_local(args: RunLocalArgs, format: Format) -> anyhow::Result<()> {
    args.code.check()?;
    let payload = match &args.payload {
        Some(p) => {
            std::fs::read(p).with_context(|| format!("cannot read payload file {}", p.display()))?
        }
        None => b"{}".to_vec(),
    };
    let image = match &args.code.image {
        Some(image) => image.clone(),
        None => [args.code.stack.clone(), args.code.runtime()]
            .into_iter()
            .flatten()
            .find_map(|name| stacks::image_for(&name))
            .ok_or_else(|| anyhow!("no stack image for this runtime (see `ferrum stacks list`)"))?
            .to_owned(),
    };
    let task_id = Id::generate();
    let work = std::env::temp_dir().join(format!("ferrum-run-local-{task_id}"));
    std::fs::create_dir_all(&work)?;
    let result = run_in(&args, &work, task_id, image, payload, format).await;
    let _ = std::fs::remove_dir_all(&work);
    result
}

async fn run_in(
    args: &RunLocalArgs,
    work: &std::path::Path,
    task_id: Id,
    image: String,
    payload: Vec<u8>,
    format: Format,
) -> anyhow::Result<()> {
    let zip = work.join("code.zip");
    std::fs::write(&zip, zip_dir(&args.code.dir)?)?;
    let executor = DockerExecutor::connect(ExecutorConfig::new(
        work.join("run"),
        format!("run-local-{task_id}"),
    ))
    .await
    .map_err(|e| {
        anyhow!(
            "cannot use the Docker engine ({e}); install and start one, e.g. \
             `apt-get install -y docker.io && dockerd &`"
        )
    })?;
    let spec = RunSpec {
        code_id: Id::generate(),
        code_name: "run-local".into(),
        revision_id: Id::generate(),
        rev: 1,
        image,
        docker_style: args.code.image.is_some(),
        runtime: args.code.runtime(),
        file_name: args.code.file_name.clone(),
        command: args.code.command.clone(),
        config: args.code.config()?,
        env_vars: args.code.env.iter().cloned().collect(),
        has_zip: true,
        memory_mb: None,
        cpus: None,
        pids: None,
        disk_mb: None,
    };
    let run = TaskRun {
        task_id: task_id.to_string(),
        attempt: 1,
        schedule_id: None,
        spec,
        payload,
        zip: Some(zip),
        timeout: Duration::from_secs(args.timeout.max(1)),
        limits: None,
        iron: None,
        max_result_bytes: ferrum_model::protocol::default_max_result_bytes(),
        batch: None,
    };
    let (events, mut received) = mpsc::channel(64);
    let cancel = CancellationToken::new();
    let stop = cancel.clone();
    tokio::spawn(async move {
        crate::server::shutdown_signal().await;
        stop.cancel();
    });
    let json = format.is_json();
    let printer = tokio::spawn(async move {
        let mut log = Vec::new();
        let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
        while let Some(event) = received.recv().await {
            let TaskEvent::Output { stream, data } = event else {
                continue;
            };
            if json {
                log.extend_from_slice(&data);
            } else if stream == LogStream::Stdout {
                let _ = out.write_all(&data);
                let _ = out.flush();
            } else {
                let _ = err.write_all(&data);
            }
        }
        log
    });
    let report = executor.run(run, events, cancel).await?;
    let log = printer.await?;
    let (status, msg) = match &report.outcome {
        Outcome::Complete => ("complete", None),
        Outcome::Error { msg, .. } => ("error", Some(msg.clone())),
        Outcome::Killed { msg, .. } => ("killed", Some(msg.clone())),
        Outcome::Timeout => (
            "timeout",
            Some(format!("timed out after {}s", args.timeout)),
        ),
        Outcome::Cancelled => ("cancelled", Some("interrupted".to_owned())),
    };
    let result = match &report.result {
        TaskResult::Bytes(data) => Some(data.as_slice()),
        _ => None,
    };
    if json {
        let result = result.map(|data| {
            serde_json::from_slice::<serde_json::Value>(data)
                .unwrap_or_else(|_| String::from_utf8_lossy(data).into_owned().into())
        });
        output::json(&json!({
            "status": status,
            "msg": msg,
            "duration": report.duration.as_millis() as u64,
            "log": String::from_utf8_lossy(&log),
            "result": result,
        }));
    } else if let Some(data) = result {
        // The result after the log, as a worker under the API would return it.
        eprintln!("task result ({} bytes):", data.len());
        let mut out = std::io::stdout();
        let _ = out.write_all(data);
        let _ = out.flush();
    }
    match msg {
        None => {
            if !json {
                eprintln!("task {status} in {:.1}s", report.duration.as_secs_f64());
            }
            Ok(())
        }
        Some(msg) => bail!("task {status}: {msg}"),
    }
}
