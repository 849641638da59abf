//! How the executor runs containers on a host: work dir, label, user, network and limits.

use std::path::PathBuf;

use crate::unpack::UnpackLimits;

/// Resource limits of one task container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Memory limit; swap is capped to the same value (no extra swap).
    pub memory_bytes: i64,
    /// CPU quota in billionths of a CPU (`--cpus` × 1e9).
    pub nano_cpus: i64,
    /// Most processes/threads the task may have (fork-bomb guard).
    pub pids: i64,
}

impl Default for Limits {
    /// 512 MB as IronWorker documented (contract §6.4), one CPU, 256 pids.
    fn default() -> Self {
        Limits {
            memory_bytes: 512 * 1024 * 1024,
            nano_cpus: 1_000_000_000,
            pids: 256,
        }
    }
}

/// How the executor runs containers on this host.
#[derive(Debug, Clone)]
pub struct ExecutorConfig {
    /// Task directories live in `<work_dir>/tasks/<task_id>-<attempt>`. Must be on the
    /// Docker host's filesystem (it is bind-mounted), and used by one runner only.
    pub work_dir: PathBuf,
    /// Value of the `ferrum.runner` label; identifies this runner host's containers.
    pub host_id: String,
    /// Docker network mode (`bridge`, `none`, a network name); `None` = engine default.
    pub network_mode: Option<String>,
    /// Numeric user the task runs as; the stack images name uid 1000 `ferrum`.
    pub task_uid: u32,
    pub task_gid: u32,
    /// Limits for tasks that give none.
    pub limits: Limits,
    /// Output bytes forwarded per task before the log is truncated.
    pub log_cap_bytes: u64,
    pub unpack: UnpackLimits,
    /// Pull an image that is not present locally (Docker-style codes with their own image).
    pub pull_missing: bool,
}

impl ExecutorConfig {
    /// Defaults for a host: uid/gid 1000, default limits, 8 MiB log cap (contract §8.15).
    pub fn new(work_dir: impl Into<PathBuf>, host_id: impl Into<String>) -> Self {
        ExecutorConfig {
            work_dir: work_dir.into(),
            host_id: host_id.into(),
            network_mode: None,
            task_uid: 1000,
            task_gid: 1000,
            limits: Limits::default(),
            log_cap_bytes: 8 * 1024 * 1024,
            unpack: UnpackLimits::default(),
            pull_missing: true,
        }
    }

    pub(crate) fn tasks_dir(&self) -> PathBuf {
        self.work_dir.join("tasks")
    }
}
