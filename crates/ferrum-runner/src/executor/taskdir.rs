//! The per-task directory on the runner host, bind-mounted at `/mnt/task`, and the guard that
//! removes it together with the container on every path out of a run.

use std::io;
use std::path::Path;

use bollard::container::RemoveContainerOptions;
use bollard::Docker;

use super::disk::TaskDisk;
use crate::contract::{BATCH_RESULTS_NAME, CONFIG_NAME, PAYLOAD_NAME};
use crate::unpack::{hand_over, unpack_zip, write_fresh, UnpackError, UnpackLimits};

/// What goes into a fresh task directory.
pub(crate) struct DirContents<'a> {
    pub zip: Option<&'a Path>,
    pub payload: &'a [u8],
    /// A reduce task's `BATCH_RESULTS_FILE`.
    pub batch_results: Option<&'a [u8]>,
    pub config: Option<&'a str>,
    pub uid: u32,
    pub gid: u32,
    pub limits: UnpackLimits,
}

/// Fills `dir`, the empty `task/` of a fresh disk, in place (a parked container has it
/// mounted already, so it is never replaced): unpacks the zip, writes the payload (always,
/// even empty) and the config (only when given), then hands the tree to the task user.
/// Blocking: run it on the blocking pool.
pub(crate) fn prepare(dir: &Path, contents: &DirContents<'_>) -> Result<(), UnpackError> {
    if let Some(zip) = contents.zip {
        unpack_zip(zip, dir, contents.limits)?;
    }
    write_fresh(&dir.join(PAYLOAD_NAME), contents.payload)?;
    if let Some(lines) = contents.batch_results {
        write_fresh(&dir.join(BATCH_RESULTS_NAME), lines)?;
    }
    if let Some(config) = contents.config {
        write_fresh(&dir.join(CONFIG_NAME), config.as_bytes())?;
    }
    hand_over(dir, contents.uid, contents.gid)?;
    Ok(())
}

/// Removes a directory tree without following symlinks (std's `remove_dir_all` does not
/// follow them), treating "already gone" as success.
pub(crate) fn remove_dir_if_present(dir: &Path) -> io::Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// Removes a container, treating "already gone" as success.
pub(crate) async fn remove_container(
    docker: &Docker,
    name: &str,
) -> Result<(), bollard::errors::Error> {
    let options = RemoveContainerOptions {
        force: true,
        v: true,
        ..Default::default()
    };
    match docker.remove_container(name, Some(options)).await {
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(()),
        // 409: removal already in progress (e.g. a racing cleanup).
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 409, ..
        }) => Ok(()),
        other => other,
    }
}

/// Removes the container and the task's disk (unmounting it) when the run ends. `finish` does it inline;
/// if the run's future is dropped instead (runner shutdown, aborted task), `Drop` spawns the
/// same cleanup on the runtime so nothing is left behind. Orphans that survive even that (a
/// killed runner process) are found by label at the next start (`cleanup_orphans`).
pub(crate) struct Cleanup {
    docker: Docker,
    container: String,
    disk: TaskDisk,
    armed: bool,
}

impl Cleanup {
    pub fn new(docker: Docker, container: String, disk: TaskDisk) -> Self {
        Cleanup {
            docker,
            container,
            disk,
            armed: true,
        }
    }

    /// The container's current name (or id).
    pub fn container(&self) -> &str {
        &self.container
    }

    pub fn disk(&self) -> &TaskDisk {
        &self.disk
    }

    /// The container now goes by `name`.
    pub fn renamed(&mut self, name: String) {
        self.container = name;
    }

    pub async fn finish(mut self) {
        self.armed = false;
        clean(
            self.docker.clone(),
            self.container.clone(),
            self.disk.clone(),
        )
        .await;
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(clean(
                self.docker.clone(),
                std::mem::take(&mut self.container),
                self.disk.clone(),
            ));
        }
    }
}

/// The container goes first: it holds the disk's bind mounts.
async fn clean(docker: Docker, container: String, disk: TaskDisk) {
    if let Err(e) = remove_container(&docker, &container).await {
        tracing::warn!(container, error = %e, "could not remove task container");
    }
    let shown = disk.mount.display().to_string();
    match tokio::task::spawn_blocking(move || disk.release()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(dir = shown, error = %e, "could not remove task disk"),
        Err(e) => tracing::warn!(dir = shown, error = %e, "task disk removal panicked"),
    }
}
