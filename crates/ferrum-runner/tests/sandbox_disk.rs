//! The task's disk limit against the real engine: a task writes only to `/mnt/task`, `/tmp`
//! and `$HOME`, all on its own loop-mounted disk; writing past the limit stops it with a clear
//! `msg`; the rest of its filesystem is read-only; disks are unmounted and removed on every
//! path, including after a runner crash. Every run also checks (in `common::run`) that the
//! container, the task dir, the disk image and the mount are gone. Each test runs on the cold
//! and the pooled executor; the disk sizes are the executor's defaults, so pools serve them.

#[macro_use]
mod common;

use std::time::Duration;

use common::*;
use ferrum_runner::executor::{Limits, Outcome, TaskEvent};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const MIB: i64 = 1024 * 1024;

/// An executor whose tasks get a disk of `mib`.
async fn with_disk(kind: Kind, tag: &str, mib: i64) -> TestExec {
    executor(kind, tag, |c| {
        c.limits = Limits {
            disk_bytes: mib * MIB,
            ..Limits::default()
        }
    })
    .await
}

fn disk_full(mib: i64) -> String {
    format!("the task used its whole disk limit of {mib} MiB")
}

async fn a_task_writing_past_its_disk_limit_is_stopped_with_a_clear_msg(kind: Kind) {
    let exec = with_disk(kind, "disk-full", 32).await;
    // dd fails at the limit; the task carries on regardless, so the runner has to stop it.
    let script = "dd if=/dev/zero of=/mnt/task/big bs=1M count=100 2>/dev/null; \
                  echo \"dd=$?\"; sleep 600";
    let mut task = sh_task(&exec, script);
    task.timeout = Duration::from_secs(300);
    let got = run(&exec, task, CancellationToken::new()).await;
    assert_eq!(
        got.report().outcome,
        Outcome::Error {
            exit_code: 137,
            msg: disk_full(32)
        },
        "{}",
        got.stdout()
    );
}

async fn tmp_counts_against_the_same_limit(kind: Kind) {
    let exec = with_disk(kind, "disk-tmp", 32).await;
    let script = "dd if=/dev/zero of=/tmp/big bs=1M count=100 || exit 1";
    let task = sh_task(&exec, script);
    let got = run(&exec, task, CancellationToken::new()).await;
    let Outcome::Error { msg, .. } = &got.report().outcome else {
        panic!("{:?}", got.report().outcome)
    };
    assert_eq!(msg, &disk_full(32));
}

const LAYOUT_SCRIPT: &str = r#"
for p in / /var/tmp /etc /usr /home; do
  if touch "$p/probe" 2>/dev/null; then echo "writable $p"; else echo "read-only $p"; fi
done
dd if=/dev/zero of=/tmp/ok bs=1M count=8 2>/dev/null && echo "tmp ok"
dd if=/dev/zero of=/mnt/task/ok bs=1M count=8 2>/dev/null && echo "task ok"
mkdir -p "$HOME/.cache" && echo cached > "$HOME/.cache/x" && echo "home ok $HOME $(stat -c %u "$HOME")"
df -k /mnt/task | awk 'NR==2 {print "task-kb", $2}'
df -k /tmp | awk 'NR==2 {print "tmp-kb", $2}'
df -k "$HOME" | awk 'NR==2 {print "home-kb", $2}'
"#;

async fn only_the_task_disk_is_writable_and_a_task_within_its_limit_completes(kind: Kind) {
    let exec = with_disk(kind, "disk-layout", 48).await;
    let task = sh_task(&exec, LAYOUT_SCRIPT);
    let got = run(&exec, task, CancellationToken::new()).await;
    let out = got.stdout();
    assert_eq!(got.report().outcome, Outcome::Complete, "{out}");
    for p in ["/", "/var/tmp", "/etc", "/usr", "/home"] {
        assert!(out.contains(&format!("read-only {p}\n")), "{out}");
    }
    assert!(
        out.contains("tmp ok\ntask ok\nhome ok /home/ferrum 1000\n"),
        "{out}"
    );
    let kb = |key: &str| -> i64 {
        out.lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    // One filesystem for all three, no bigger than the limit.
    assert_eq!(kb("task-kb "), kb("tmp-kb "), "{out}");
    assert_eq!(kb("task-kb "), kb("home-kb "), "{out}");
    assert!(kb("task-kb ") <= 48 * 1024, "{out}");
    assert!(kb("task-kb ") >= 40 * 1024, "{out}");
}

async fn a_code_bigger_than_the_disk_is_refused_clearly(kind: Kind) {
    let exec = with_disk(kind, "disk-code", 16).await;
    let mut task = sh_task(&exec, "echo never");
    let big = vec![b'x'; 40 * MIB as usize];
    task.zip = Some(make_zip(
        &exec.config().work_dir,
        &[("run.sh", b"echo never"), ("data.bin", &big)],
    ));
    let got = run(&exec, task, CancellationToken::new()).await;
    let err = got.result.as_ref().expect_err("the run fails").to_string();
    assert_eq!(
        err,
        "the code does not fit in the task's disk limit of 16 MiB"
    );
    assert!(!got.started);
}

async fn a_crashed_runners_disks_are_cleaned_at_the_next_start(kind: Kind) {
    let exec = executor(kind, "disk-crash", |_| {}).await;
    let work = exec.config().work_dir.clone();
    let task = sh_task(&exec, "echo up; sleep 600");
    let (tx, mut rx) = mpsc::channel(16);
    let mut running = Box::pin(exec.run(task, tx, CancellationToken::new()));
    // Drive the run until the task is up, then lose it without any cleanup: a crash.
    tokio::select! {
        _ = &mut running => panic!("the task ended early"),
        _ = async { while !matches!(rx.recv().await, Some(TaskEvent::Started)) {} } => {}
    }
    std::mem::forget(running);
    // A pool parks a container in the place of the one taken; its filler then waits.
    exec.until_full().await;
    let mounted = mounts_under(&work).len();
    assert_eq!(mounted, 1 + exec.parked(), "the disks are mounted");

    // Parked containers are orphans too.
    assert_eq!(exec.cleanup_orphans().await, 1 + exec.parked());
    assert!(mounts_under(&work).is_empty(), "{:?}", mounts_under(&work));
    assert_eq!(std::fs::read_dir(work.join("tasks")).unwrap().count(), 0);
    assert!(
        !work.join("disks").exists() || std::fs::read_dir(work.join("disks")).unwrap().count() == 0
    );
}

suite!(
    a_task_writing_past_its_disk_limit_is_stopped_with_a_clear_msg,
    tmp_counts_against_the_same_limit,
    only_the_task_disk_is_writable_and_a_task_within_its_limit_completes,
    a_code_bigger_than_the_disk_is_refused_clearly,
    a_crashed_runners_disks_are_cleaned_at_the_next_start,
);
