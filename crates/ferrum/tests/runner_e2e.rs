//! Issue "runner fleet", end to end: real `ferrum serve` on Postgres, real `ferrum runner`
//! processes, real Docker containers from the `ferrum/stack-sh` image.

mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::{Ferrum, RUNNER};

const WAIT: Duration = Duration::from_secs(60);

#[tokio::test]
async fn a_task_runs_in_a_container_and_its_log_comes_back() {
    let mut f = Ferrum::start(&[]).await;
    f.start_runner(RUNNER, 2, &[]);
    let script = "echo \"out $TASK_ID\"; cat \"$PAYLOAD_FILE\"; echo; echo oops >&2";
    f.upload_sh("hello", script, json!({})).await;
    let id = f
        .queue(json!({"code_name": "hello", "payload": "{\"a\":1}"}))
        .await;
    let t = f.wait_for(&id, None, WAIT).await;
    assert_eq!(t["status"], "complete", "{t}");
    // stdout and stderr are separate pipes: where stderr's one write lands among stdout's is
    // not defined, but each stream keeps its order and each write stays whole.
    let stdout = format!("out {id}\n{{\"a\":1}}\n");
    let log = f.log(&id).await;
    assert_eq!(log.len(), stdout.len() + "oops\n".len(), "{log:?}");
    assert_eq!(log.replacen("oops\n", "", 1), stdout, "{log:?}");
    let out = f
        .text(&format!("/2/projects/{{pid}}/tasks/{id}/outlog"))
        .await;
    assert_eq!(out, stdout);
    assert!(f.containers_of(0).is_empty(), "the container is removed");
}

#[tokio::test]
async fn a_saturated_runner_takes_higher_priorities_first() {
    let mut f = Ferrum::start(&[]).await;
    f.upload_sh("work", "cat \"$PAYLOAD_FILE\"", json!({}))
        .await;
    let mut ids = Vec::new();
    for (name, priority) in [
        ("low", 0),
        ("high", 2),
        ("mid", 1),
        ("high2", 2),
        ("low2", 0),
    ] {
        let id = f
            .queue(json!({"code_name": "work", "payload": name, "priority": priority}))
            .await;
        ids.push((name, id));
    }
    // One slot: tasks run one at a time, in dispatch order.
    f.start_runner(RUNNER, 1, &[]);
    let mut started = Vec::new();
    for (name, id) in &ids {
        let t = f.wait_for(id, Some("complete"), WAIT).await;
        started.push((
            t["start_time"].as_str().unwrap_or_default().to_owned(),
            *name,
        ));
    }
    started.sort();
    let order: Vec<&str> = started.iter().map(|(_, n)| *n).collect();
    assert_eq!(order, ["high", "high2", "mid", "low", "low2"]);
}

#[tokio::test]
async fn a_task_past_its_timeout_is_killed() {
    let mut f = Ferrum::start(&[]).await;
    f.start_runner(RUNNER, 1, &[]);
    f.upload_sh("sleepy", "echo start; sleep 60", json!({}))
        .await;
    let id = f.queue(json!({"code_name": "sleepy", "timeout": 2})).await;
    let t = f.wait_for(&id, None, WAIT).await;
    assert_eq!(t["status"], "timeout", "{t}");
    // On time, by the task's own record: it ran its 2 s, and was stopped long before its
    // 60 s sleep could end.
    let at = |k: &str| chrono::DateTime::parse_from_rfc3339(t[k].as_str().unwrap()).unwrap();
    let ran = at("end_time") - at("start_time");
    assert!(
        ran >= chrono::Duration::seconds(2) && ran < chrono::Duration::seconds(60),
        "ran {ran}"
    );
    assert!(f.log(&id).await.starts_with("start\n"));
    assert!(f.containers_of(0).is_empty());
}

#[tokio::test]
async fn cancelling_a_running_task_kills_it() {
    let mut f = Ferrum::start(&[]).await;
    f.start_runner(RUNNER, 1, &[]);
    f.upload_sh("forever", "trap '' TERM; echo up; sleep 300", json!({}))
        .await;
    let id = f.queue(json!({"code_name": "forever"})).await;
    f.wait_for(&id, Some("running"), WAIT).await;
    let r = f
        .post(&format!("/2/projects/{{pid}}/tasks/{id}/cancel"), json!({}))
        .await;
    assert!(r["msg"].is_string());
    let t = f
        .wait_for(&id, Some("cancelled"), Duration::from_secs(10))
        .await;
    assert_eq!(t["status"], "cancelled");
    // Killed, though it ignores SIGTERM: it never got past its 300 s sleep.
    assert_eq!(f.log(&id).await, "up\n");
    assert!(f.containers_of(0).is_empty());
}

#[tokio::test]
async fn a_non_zero_exit_is_an_error_with_the_code() {
    let mut f = Ferrum::start(&[]).await;
    f.start_runner(RUNNER, 1, &[]);
    f.upload_sh("fail", "echo bad input >&2; exit 3", json!({}))
        .await;
    let id = f.queue(json!({"code_name": "fail"})).await;
    let t = f.wait_for(&id, None, WAIT).await;
    assert_eq!(t["status"], "error");
    let msg = t["msg"].as_str().unwrap_or_default();
    assert!(msg.contains('3') && msg.contains("bad input"), "{msg}");
}

#[tokio::test]
async fn failures_are_retried_as_linked_tasks() {
    let mut f = Ferrum::start(&[]).await;
    f.start_runner(RUNNER, 1, &[]);
    f.upload_sh("flaky", "exit 1", json!({"retries": 2, "retries_delay": 0}))
        .await;
    let first = f.queue(json!({"code_name": "flaky"})).await;
    let deadline = Instant::now() + WAIT;
    let tasks = loop {
        let list = f
            .get("/2/projects/{pid}/tasks?code_name=flaky&error=1")
            .await;
        let tasks = list["tasks"].as_array().cloned().unwrap_or_default();
        if tasks.len() == 3 {
            break tasks;
        }
        assert!(
            Instant::now() < deadline,
            "expected 3 failed attempts: {list}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut counts: Vec<i64> = tasks
        .iter()
        .map(|t| t["retry_count"].as_i64().unwrap_or(-1))
        .collect();
    counts.sort();
    assert_eq!(counts, [0, 1, 2]);
    let original = tasks
        .iter()
        .find(|t| t["id"] == first.as_str())
        .expect("the original");
    assert_eq!(original["status"], "error");
    // A failure and its retry are written in one statement: the last attempt is `error`
    // without a fourth task, so there will never be one.
    let all = f.get("/2/projects/{pid}/tasks?code_name=flaky").await;
    assert_eq!(
        all["tasks"].as_array().map(Vec::len),
        Some(3),
        "no fourth attempt"
    );
}

#[tokio::test]
async fn tasks_run_unprivileged_and_limited() {
    let mut f = Ferrum::start(&[]).await;
    f.start_runner(RUNNER, 1, &[]);
    let script = "id -u; grep CapEff /proc/self/status; grep NoNewPrivs /proc/self/status; \
        cat /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/memory/memory.limit_in_bytes; \
        test -e /var/run/docker.sock && echo SOCKET || echo nosocket";
    f.upload_sh("probe", script, json!({})).await;
    let id = f.queue(json!({"code_name": "probe"})).await;
    let t = f.wait_for(&id, None, WAIT).await;
    assert_eq!(t["status"], "complete", "{t}");
    let log = f.log(&id).await;
    let lines: Vec<&str> = log.lines().collect();
    assert_ne!(lines[0], "0", "runs as a non-root user: {log}");
    assert!(
        lines[1].ends_with("0000000000000000"),
        "no capabilities: {log}"
    );
    assert!(lines[2].ends_with('1'), "no-new-privileges: {log}");
    assert!(lines[3].parse::<u64>().is_ok(), "a pids limit: {log}");
    assert!(
        lines[4].parse::<u64>().unwrap_or(u64::MAX) < 1 << 40,
        "a memory limit: {log}"
    );
    assert_eq!(lines[5], "nosocket");
}

#[tokio::test]
async fn a_fifty_megabyte_log_arrives_complete_and_in_order() {
    let mut f = Ferrum::start(&[]).await;
    f.start_runner(RUNNER, 1, &["--log-cap", "67108864"]);
    f.upload_sh("chatty", "seq 1 6500000", json!({})).await;
    let id = f.queue(json!({"code_name": "chatty"})).await;
    let t = f.wait_for(&id, None, Duration::from_secs(180)).await;
    assert_eq!(t["status"], "complete", "{t}");
    let log = f.log(&id).await;
    assert!(log.len() > 50_000_000, "{} bytes", log.len());
    let mut expected = 1u64;
    for line in log.lines() {
        assert_eq!(line.parse::<u64>().ok(), Some(expected), "line {expected}");
        expected += 1;
    }
    assert_eq!(expected, 6_500_001);
}

#[tokio::test]
async fn a_task_of_a_killed_runner_finishes_on_another() {
    let mut f = Ferrum::start(&["--lease-secs", "3"]).await;
    let doomed = f.start_runner(RUNNER, 1, &[]);
    f.upload_sh(
        "slow",
        "echo \"attempt on $HOSTNAME\"; sleep 4; echo done",
        json!({}),
    )
    .await;
    let id = f.queue(json!({"code_name": "slow"})).await;
    f.wait_for(&id, Some("running"), WAIT).await;
    f.signal_runner(doomed, "KILL");
    assert!(
        !f.containers_of(doomed).is_empty(),
        "the dead runner left its container"
    );
    f.start_runner(RUNNER, 1, &[]);
    let t = f.wait_for(&id, None, WAIT).await;
    assert_eq!(t["status"], "complete", "{t}");
    assert!(f.log(&id).await.ends_with("done\n"));
    // The dead runner's orphan goes when a runner starts again in its place.
    let restarted = f.restart_runner(doomed, RUNNER, 1);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f.containers_of(restarted).is_empty() {
        assert!(Instant::now() < deadline, "orphaned container not removed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn clusters_never_run_each_others_tasks() {
    let mut f = Ferrum::start(&[]).await;
    let gpu = f.runner_token("gpu");
    f.upload_sh("where", "echo ran", json!({})).await;
    f.start_runner(RUNNER, 2, &[]);
    let on_gpu = f
        .queue(json!({"code_name": "where", "cluster": "gpu"}))
        .await;
    let on_default = f.queue(json!({"code_name": "where"})).await;
    // The default runner leased `on_default`, queued after `on_gpu`: it has seen `on_gpu`
    // and passed it by.
    f.wait_for(&on_default, Some("complete"), WAIT).await;
    assert_eq!(
        f.task(&on_gpu).await["status"],
        "queued",
        "no gpu runner yet"
    );
    f.start_runner(&gpu, 1, &["--cluster", "gpu"]);
    let t = f.wait_for(&on_gpu, Some("complete"), WAIT).await;
    assert_eq!(t["cluster"], "gpu");
    let only_default = f.queue(json!({"code_name": "where"})).await;
    f.wait_for(&only_default, Some("complete"), WAIT).await;
}
