//! How the executor runs containers on a host: work dir, label, user, network and limits.

use std::path::PathBuf;

use ferrum_model::protocol::RunSpec;

use super::{ApiDoor, NetworkMode, TaskRun};
use crate::unpack::UnpackLimits;

const MIB: i64 = 1024 * 1024;
const NANOS_PER_CPU: i64 = 1_000_000_000;

/// Resource limits of one task container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Memory limit; swap is capped to the same value (no extra swap).
    pub memory_bytes: i64,
    /// CPU quota in billionths of a CPU (`--cpus` × 1e9).
    pub nano_cpus: i64,
    /// Most processes/threads the task may have (fork-bomb guard).
    pub pids: i64,
    /// Size of the task's disk (`disk.rs`): everything it writes to `/mnt/task` and `/tmp`,
    /// its code and payload included. The rest of its filesystem is read-only.
    pub disk_bytes: i64,
}

impl Default for Limits {
    /// 512 MB as IronWorker documented (contract §6.4), one CPU, 256 pids, a 1 GiB disk.
    fn default() -> Self {
        Limits {
            memory_bytes: 512 * 1024 * 1024,
            nano_cpus: 1_000_000_000,
            pids: 256,
            disk_bytes: 1024 * MIB,
        }
    }
}

impl Limits {
    /// The default ceiling on what a code may ask for: 4 GiB, every CPU of the host (Docker
    /// refuses more), 4096 pids, a 10 GiB disk.
    pub fn default_ceiling() -> Self {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        Limits {
            memory_bytes: 4096 * MIB,
            nano_cpus: cpus as i64 * NANOS_PER_CPU,
            pids: 4096,
            disk_bytes: 10 * 1024 * MIB,
        }
    }

    /// These limits with each setting given (memory in MiB, CPUs, pids, disk in MiB) in
    /// place of the matching value: how a code's settings and the operator's flags are read
    /// alike.
    pub fn with_settings(
        self,
        memory_mb: Option<i32>,
        cpus: Option<f64>,
        pids: Option<i32>,
        disk_mb: Option<i32>,
    ) -> Limits {
        Limits {
            memory_bytes: memory_mb.map_or(self.memory_bytes, |m| i64::from(m) * MIB),
            // `as` saturates, and the ceiling applies afterwards anyway.
            nano_cpus: cpus.map_or(self.nano_cpus, |c| {
                (c * NANOS_PER_CPU as f64).round() as i64
            }),
            pids: pids.map_or(self.pids, i64::from),
            disk_bytes: disk_mb.map_or(self.disk_bytes, |m| i64::from(m) * MIB),
        }
    }

    /// Each value lowered to `ceiling`'s where it is above it.
    pub fn clamped_to(self, ceiling: Limits) -> Limits {
        Limits {
            memory_bytes: self.memory_bytes.min(ceiling.memory_bytes),
            nano_cpus: self.nano_cpus.min(ceiling.nano_cpus),
            pids: self.pids.min(ceiling.pids),
            disk_bytes: self.disk_bytes.min(ceiling.disk_bytes),
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
    /// Where task containers sit on the network (`network.rs`); `isolated` by default.
    pub network: NetworkMode,
    /// Port of the API door on the isolated bridge's gateway; 0 picks a free one.
    pub door_port: u16,
    /// The Docker engine's network namespace (a path such as `/proc/1/ns/net`) when the
    /// runner runs in another one; `None`: the runner's own (`netns.rs`).
    pub engine_netns: Option<PathBuf>,
    /// How tasks reach the Ferrum API (`IRON_HOST`/`IRON_PORT`/`IRON_PROTOCOL`), once the
    /// door is open ([`DockerExecutor::open_door`](super::DockerExecutor::open_door)); `None`
    /// in `none` mode or before the door is opened.
    pub api_door: Option<ApiDoor>,
    /// Numeric user the task runs as; the stack images name uid 1000 `ferrum`.
    pub task_uid: u32,
    pub task_gid: u32,
    /// Limits for tasks whose code gives none.
    pub limits: Limits,
    /// The operator's ceiling: no task gets more, whatever its code or `limits` say, so a
    /// tenant cannot take a host's memory, CPUs or process table.
    pub max_limits: Limits,
    /// Output bytes forwarded per task before the log is truncated.
    pub log_cap_bytes: u64,
    pub unpack: UnpackLimits,
    /// Pull an image that is not present locally (Docker-style codes with their own image).
    pub pull_missing: bool,
}

impl ExecutorConfig {
    /// Defaults for a host: uid/gid 1000, default limits and ceiling, 8 MiB log cap (contract
    /// §8.15).
    pub fn new(work_dir: impl Into<PathBuf>, host_id: impl Into<String>) -> Self {
        ExecutorConfig {
            work_dir: work_dir.into(),
            host_id: host_id.into(),
            network: NetworkMode::Isolated,
            door_port: 0,
            engine_netns: None,
            api_door: None,
            task_uid: 1000,
            task_gid: 1000,
            limits: Limits::default(),
            max_limits: Limits::default_ceiling(),
            log_cap_bytes: 8 * 1024 * 1024,
            unpack: UnpackLimits::default(),
            pull_missing: true,
        }
    }

    /// The limits a task of `code` runs under: the defaults with the code's own settings laid
    /// over them, clamped to the ceiling.
    pub fn limits_for(&self, code: &RunSpec) -> Limits {
        self.limits
            .with_settings(code.memory_mb, code.cpus, code.pids, code.disk_mb)
            .clamped_to(self.max_limits)
    }

    /// The limits `task` runs under: its own, or the defaults clamped to the ceiling.
    pub(crate) fn limits_of(&self, task: &TaskRun) -> Limits {
        task.limits
            .unwrap_or_else(|| self.limits.clamped_to(self.max_limits))
    }

    pub(crate) fn tasks_dir(&self) -> PathBuf {
        self.work_dir.join("tasks")
    }

    /// Where the task disks' image files live.
    pub(crate) fn disks_dir(&self) -> PathBuf {
        self.work_dir.join("disks")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> ExecutorConfig {
        let mut c = ExecutorConfig::new("/tmp/unused", "test");
        c.max_limits = Limits {
            memory_bytes: 1024 * MIB,
            nano_cpus: 2_000_000_000,
            pids: 1000,
            disk_bytes: 2048 * MIB,
        };
        c
    }

    fn code(memory_mb: Option<i32>, cpus: Option<f64>, pids: Option<i32>) -> RunSpec {
        with_disk(memory_mb, cpus, pids, None)
    }

    fn with_disk(
        memory_mb: Option<i32>,
        cpus: Option<f64>,
        pids: Option<i32>,
        disk_mb: Option<i32>,
    ) -> RunSpec {
        RunSpec {
            code_id: ferrum_model::Id::generate(),
            code_name: "c".into(),
            revision_id: ferrum_model::Id::generate(),
            rev: 1,
            image: "ferrum/stack-sh:1".into(),
            docker_style: false,
            runtime: Some("sh".into()),
            file_name: Some("w.sh".into()),
            command: None,
            config: None,
            env_vars: Default::default(),
            has_zip: true,
            memory_mb,
            cpus,
            pids,
            disk_mb,
        }
    }

    #[test]
    fn a_code_without_settings_gets_the_defaults() {
        assert_eq!(
            config().limits_for(&code(None, None, None)),
            Limits::default()
        );
    }

    #[test]
    fn a_codes_settings_replace_the_defaults_below_the_ceiling() {
        let limits = config().limits_for(&with_disk(Some(128), Some(0.5), Some(64), Some(100)));
        let want = Limits {
            memory_bytes: 128 * MIB,
            nano_cpus: 500_000_000,
            pids: 64,
            disk_bytes: 100 * MIB,
        };
        assert_eq!(limits, want);
    }

    #[test]
    fn nothing_exceeds_the_ceiling() {
        let c = config();
        let limits = c.limits_for(&with_disk(
            Some(100_000),
            Some(1e300),
            Some(i32::MAX),
            Some(i32::MAX),
        ));
        assert_eq!(limits, c.max_limits);
        // Defaults above the ceiling are clamped too: the operator's ceiling always wins.
        let low = ExecutorConfig {
            max_limits: Limits {
                memory_bytes: 64 * MIB,
                nano_cpus: 100_000_000,
                pids: 8,
                disk_bytes: 16 * MIB,
            },
            ..c
        };
        assert_eq!(low.limits_for(&code(None, None, None)), low.max_limits);
    }

    #[test]
    fn the_default_ceiling_is_every_host_cpu() {
        let cpus = std::thread::available_parallelism().unwrap().get() as i64;
        assert_eq!(Limits::default_ceiling().nano_cpus, cpus * NANOS_PER_CPU);
        assert_eq!(Limits::default_ceiling().memory_bytes, 4096 * MIB);
    }
}
