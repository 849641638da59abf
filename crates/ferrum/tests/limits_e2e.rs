//! Per-code resource limits, end to end: a code's `memory_mb`, `cpus` and `pids` reach its
//! container's cgroups through the API, the runner protocol and the runner, clamped to the
//! runner's ceilings. Reads cgroup v1 files, as this host's Docker engine provides them.

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::{Ferrum, RUNNER};

const WAIT: Duration = Duration::from_secs(60);
const MIB: u64 = 1024 * 1024;
/// CFS period Docker sets; the quota is `cpus` of it.
const CPU_PERIOD_US: f64 = 100_000.0;

/// Prints the container's memory limit, pids limit and CPU quota, one per line.
const SCRIPT: &str = "cat /sys/fs/cgroup/memory/memory.limit_in_bytes \
    /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/cpu/cpu.cfs_quota_us";

/// Uploads `name` with `options`, runs one task of it and returns what its cgroups say:
/// (memory bytes, pids, CPUs).
async fn limits_seen(f: &Ferrum, name: &str, options: Value) -> (u64, u64, f64) {
    f.upload_sh(name, SCRIPT, options).await;
    let id = f.queue(json!({"code_name": name})).await;
    let t = f.wait_for(&id, None, WAIT).await;
    assert_eq!(t["status"], "complete", "{t}");
    let log = f.log(&id).await;
    let values: Vec<&str> = log.lines().collect();
    let [memory, pids, quota] = values[..] else {
        panic!("unexpected log {log:?}");
    };
    let quota: f64 = quota.parse().expect("a CPU quota");
    (
        memory.parse().expect("a memory limit"),
        pids.parse().expect("a pids limit"),
        quota / CPU_PERIOD_US,
    )
}

#[tokio::test]
async fn code_limits_reach_the_container_within_the_runners_ceilings() {
    let mut f = Ferrum::start(&[]).await;
    f.start_runner(RUNNER, 1, &["--max-memory-mb", "256"]);

    let asked = json!({"memory_mb": 128, "pids": 64, "cpus": 0.5});
    let seen = limits_seen(&f, "small", asked).await;
    assert_eq!(seen, (128 * MIB, 64, 0.5), "the code's own settings");

    let greedy = json!({"memory_mb": 100_000, "pids": 1_000_000, "cpus": 1000});
    let host_cpus = std::thread::available_parallelism().unwrap().get() as f64;
    let seen = limits_seen(&f, "greedy", greedy).await;
    assert_eq!(
        seen,
        (256 * MIB, 4096, host_cpus),
        "clamped to the flag's memory ceiling and the default pids and CPU ceilings"
    );

    let seen = limits_seen(&f, "plain", json!({})).await;
    assert_eq!(
        seen,
        (256 * MIB, 256, 1.0),
        "the runner's defaults: 1 CPU, 256 pids, and 512 MiB lowered to the 256 MiB ceiling"
    );
}

#[tokio::test]
async fn runner_flags_set_the_defaults_and_ceilings() {
    let mut f = Ferrum::start(&[]).await;
    let flags = [
        "--memory-mb",
        "64",
        "--pids",
        "32",
        "--cpus",
        "0.25",
        "--max-pids",
        "48",
    ];
    f.start_runner(RUNNER, 1, &flags);

    let seen = limits_seen(&f, "plain", json!({})).await;
    assert_eq!(seen, (64 * MIB, 32, 0.25), "the flags' defaults");

    let seen = limits_seen(&f, "more_pids", json!({"pids": 100})).await;
    assert_eq!(seen, (64 * MIB, 48, 0.25), "clamped to --max-pids");
}
