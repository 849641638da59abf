//! Translating a task into a Docker container: the hardened create request and its creation,
//! with at most one recovery step (remove a stale same-named container, or pull a missing
//! image when allowed). Nothing here inspects images per task: the create call itself tells
//! us when an image is missing, which keeps the queue-to-running path short.

use std::collections::HashMap;
use std::path::Path;

use bollard::container::{Config, CreateContainerOptions};
use bollard::image::CreateImageOptions;
use bollard::models::{HostConfig, HostConfigLogConfig};
use bollard::Docker;
use futures_util::StreamExt;

use super::{disk, init, taskdir, ExecError, ExecutorConfig, Limits, NetworkMode};
use crate::contract::{Invocation, HOME_DIR, TASK_DIR};

/// Label naming the runner host that owns a container (orphan cleanup keys on it).
pub const LABEL_RUNNER: &str = "ferrum.runner";
/// Label naming the task a container runs.
pub const LABEL_TASK: &str = "ferrum.task";
/// Label naming the attempt a container runs.
pub const LABEL_ATTEMPT: &str = "ferrum.attempt";
/// Label of a container created for a pool, before any task (`pool.rs`); a container's
/// labels cannot change, so a pooled one never carries the task labels (its name does).
pub const LABEL_POOL: &str = "ferrum.pool";

pub(crate) struct ContainerSpec<'a> {
    pub name: &'a str,
    pub image: &'a str,
    /// The task and attempt it runs; `None` for a container parked in a pool, which also
    /// gets the pool's control directory (`init.rs`).
    pub task: Option<(&'a str, i32)>,
    /// What it runs; the environment is complete (the door's variables included).
    pub invocation: Invocation,
    pub host_dir: &'a Path,
    pub limits: Limits,
}

/// The create request: non-root user, no capabilities, no-new-privileges, memory (without
/// extra swap), CPU and pids limits, a read-only root with the task's disk (`/mnt/task`,
/// `/tmp` and the home) as the only writable mounts (and, for a parked container, its control
/// directory read-only), the runner's network mode, and the `none` log
/// driver because output is read from the attach stream (no json-file writes, no log-follow
/// polling).
pub(crate) fn container_config(
    config: &ExecutorConfig,
    spec: &ContainerSpec<'_>,
) -> Config<String> {
    let mut labels = HashMap::from([(LABEL_RUNNER.to_owned(), config.host_id.clone())]);
    let mut binds = vec![
        format!(
            "{}:{TASK_DIR}:rw",
            spec.host_dir.join(disk::TASK_SUBDIR).display()
        ),
        format!("{}:/tmp:rw", spec.host_dir.join(disk::TMP_SUBDIR).display()),
        format!(
            "{}:{HOME_DIR}:rw",
            spec.host_dir.join(disk::HOME_SUBDIR).display()
        ),
    ];
    match spec.task {
        Some((task_id, attempt)) => {
            labels.insert(LABEL_TASK.to_owned(), task_id.to_owned());
            labels.insert(LABEL_ATTEMPT.to_owned(), attempt.to_string());
        }
        None => {
            labels.insert(LABEL_POOL.to_owned(), spec.image.to_owned());
            binds.push(format!(
                "{}:{}:ro",
                spec.host_dir.join(init::CONTROL_SUBDIR).display(),
                init::CONTROL_DIR
            ));
        }
    }
    let isolated = config.network == NetworkMode::Isolated;
    let host_config = HostConfig {
        // The root filesystem is read-only: the task writes only to its disk (`disk.rs`).
        readonly_rootfs: Some(true),
        binds: Some(binds),
        cap_drop: Some(vec!["ALL".to_owned()]),
        security_opt: Some(vec!["no-new-privileges".to_owned()]),
        memory: Some(spec.limits.memory_bytes),
        memory_swap: Some(spec.limits.memory_bytes),
        nano_cpus: Some(spec.limits.nano_cpus),
        pids_limit: Some(spec.limits.pids),
        network_mode: Some(config.network.docker_name().to_owned()),
        sysctls: isolated.then(|| {
            // No IPv6 inside: the isolated network has none, and a link-local address
            // would otherwise still reach the bridge.
            HashMap::from([("net.ipv6.conf.all.disable_ipv6".to_owned(), "1".to_owned())])
        }),
        log_config: Some(HostConfigLogConfig {
            typ: Some("none".to_owned()),
            config: None,
        }),
        ..Default::default()
    };
    Config {
        image: Some(spec.image.to_owned()),
        user: Some(format!("{}:{}", config.task_uid, config.task_gid)),
        env: Some(spec.invocation.env.clone()),
        entrypoint: spec.invocation.entrypoint.clone(),
        cmd: spec.invocation.cmd.clone(),
        working_dir: spec.invocation.working_dir.clone(),
        labels: Some(labels),
        attach_stdin: Some(false),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        open_stdin: Some(false),
        tty: Some(false),
        host_config: Some(host_config),
        ..Default::default()
    }
}

/// Creates the container, recovering once from a name clash (a leftover of a crashed run of
/// the same attempt) or a missing image (pulled only when `pull_missing`).
pub(crate) async fn create(
    docker: &Docker,
    config: &ExecutorConfig,
    spec: &ContainerSpec<'_>,
) -> Result<(), ExecError> {
    let body = container_config(config, spec);
    let options = || {
        Some(CreateContainerOptions {
            name: spec.name.to_owned(),
            platform: None,
        })
    };
    match docker.create_container(options(), body.clone()).await {
        Ok(_) => return Ok(()),
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 409, ..
        }) => taskdir::remove_container(docker, spec.name).await?,
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => {
            if !config.pull_missing {
                return Err(ExecError::ImageMissing(spec.image.to_owned()));
            }
            pull(docker, spec.image).await?;
        }
        Err(e) => return Err(e.into()),
    }
    docker.create_container(options(), body).await?;
    Ok(())
}

async fn pull(docker: &Docker, image: &str) -> Result<(), ExecError> {
    tracing::info!(image, "pulling missing image");
    let options = CreateImageOptions {
        from_image: image.to_owned(),
        ..Default::default()
    };
    let mut progress = docker.create_image(Some(options), None, None);
    while let Some(step) = progress.next().await {
        step.map_err(|e| ExecError::Pull {
            image: image.to_owned(),
            source: e,
        })?;
    }
    Ok(())
}
