//! `ferrum dev` end to end, driven only through the CLI, as the README's quickstart does:
//! start `ferrum dev` in a temporary directory, run the `ferrum configure …` line it prints,
//! upload a code, queue a task, follow its log to the end and see `complete`; then Ctrl-C.
//! Needs the Docker engine and the stack images (`ferrum stacks build`).

mod dev_support;

use dev_support::*;
use serde_json::Value;
const HELLO: &str = "echo \"hello from $TASK_ID\"\necho \"payload: $(cat \"$PAYLOAD_FILE\")\"\necho \"to stderr\" >&2\n";

#[test]
fn upload_queue_follow_to_complete_through_the_cli_only() {
    let mut dev = Dev::start();
    dev.configure();
    let worker = dev.worker("hello", &[("hello.sh", HELLO)]);
    let up = ok(dev.cli(&["upload", "hello", &worker, "--file-name", "hello.sh"]));
    assert!(up.contains("Uploaded hello"), "{up}");

    let id = ok(dev.cli(&[
        "queue",
        "hello",
        "--payload",
        r#"{"who":"world"}"#,
        "--priority",
        "1",
        "--label",
        "first",
    ]));
    let id = id.trim();
    assert_eq!(id.len(), 24, "a task id: {id:?}");

    let follow = dev.cli(&["log", id, "--follow"]);
    let log = ok(follow.clone());
    assert!(log.contains(&format!("hello from {id}")), "{log}");
    assert!(log.contains(r#"payload: {"who":"world"}"#), "{log}");
    assert!(log.contains("to stderr"), "{log}");
    assert!(stderr(&follow).contains("complete"), "{}", stderr(&follow));

    let status: Value = serde_json::from_str(&ok(dev.cli(&["status", id, "--output", "json"])))
        .expect("status JSON");
    assert_eq!(status["status"], "complete");
    assert_eq!(status["label"], "first");
    assert_eq!(status["priority"], 1);
    assert!(ok(dev.cli(&["status", id])).contains("complete"));

    let tasks: Value = serde_json::from_str(&ok(
        dev.cli(&["list", "tasks", "--code", "hello", "--output", "json"])
    ))
    .expect("tasks JSON");
    assert_eq!(tasks["tasks"][0]["id"], id);
    assert!(ok(dev.cli(&["list", "codes"])).contains("hello"));

    let schedule = ok(dev.cli(&[
        "schedule",
        "create",
        "hello",
        "--run-every",
        "3600",
        "--start-at",
        "2099-01-01T00:00:00Z",
    ]));
    let schedule = schedule.trim();
    assert!(ok(dev.cli(&["list", "schedules"])).contains(schedule));
    ok(dev.cli(&["schedule", "cancel", schedule]));
    let url = ok(dev.cli(&["webhook", "hello", "--label", "hooked"]));
    assert!(url.trim().contains("/webhooks/"), "{url}");

    let status = dev.interrupt();
    assert!(
        status.success(),
        "ferrum dev exit: {status}\n{}",
        dev.output()
    );
    assert!(
        dev.output().contains("Ferrum dev stopped"),
        "{}",
        dev.output()
    );
}

#[test]
fn user_mistakes_get_one_line_errors() {
    let dev = Dev::start();
    dev.configure();
    let worker = dev.worker("w", &[("w.sh", "echo hi\n")]);

    one_line_error(dev.cli(&["queue", "nope"]), "Code \"nope\" not found");
    one_line_error(
        dev.cli(&["queue", "nope", "--payload-file", "missing.json"]),
        "cannot read payload file missing.json",
    );
    one_line_error(
        dev.cli(&["upload", "w", "no-such-dir", "--file-name", "w.sh"]),
        "is not a directory",
    );
    one_line_error(
        dev.cli(&["upload", "w", &worker, "--file-name", "other.sh"]),
        "has no file other.sh",
    );
    one_line_error(
        dev.cli(&["status", "000000000000000000000000"]),
        "not found",
    );
    one_line_error(dev.cli(&["webhook", "nope"]), "no code named");

    let wrong = cli_env(&dev, &[("IRON_TOKEN", "wrong")], &["list", "codes"]);
    one_line_error(wrong, "rejected the token");
    let closed = format!("{}", free_port());
    let nobody = cli_env(&dev, &[("IRON_PORT", &closed)], &["list", "codes"]);
    one_line_error(nobody, "cannot reach the Ferrum API");

    let fresh = TempDir::new("no-config");
    one_line_error(cli_in(&fresh.0, &["list", "tasks"]), "no token configured");
}

#[test]
fn run_local_runs_a_worker_under_the_service_contract() {
    let dir = TempDir::new("run-local");
    let worker = dir.0.join("w");
    std::fs::create_dir_all(&worker).expect("worker dir");
    std::fs::write(worker.join("w.sh"), HELLO).expect("worker file");
    std::fs::write(worker.join("fail.sh"), "echo broken >&2\nexit 3\n").expect("worker file");
    std::fs::write(dir.0.join("payload.json"), r#"{"n":1}"#).expect("payload");

    let w = worker.display().to_string();
    let run = cli_in(
        &dir.0,
        &[
            "run-local",
            &w,
            "--file-name",
            "w.sh",
            "--payload",
            "payload.json",
        ],
    );
    let out = ok(run.clone());
    assert!(out.contains("hello from "), "{out}");
    assert!(out.contains(r#"payload: {"n":1}"#), "{out}");
    assert!(stderr(&run).contains("to stderr"), "{}", stderr(&run));
    assert!(stderr(&run).contains("task complete"), "{}", stderr(&run));

    let failed = cli_in(
        &dir.0,
        &[
            "run-local",
            &w,
            "--file-name",
            "fail.sh",
            "--output",
            "json",
        ],
    );
    let report: Value = serde_json::from_str(&stdout(&failed)).expect("JSON report");
    assert_eq!(report["status"], "error");
    assert!(report["log"]
        .as_str()
        .unwrap_or_default()
        .contains("broken"));
    one_line_error(failed, "exited with code 3");
}

/// A row count in `ferrum dev`'s SQLite database, read with the sqlite3 shell.
fn count(dir: &std::path::Path, sql: &str) -> String {
    let out = std::process::Command::new("sqlite3")
        .arg(dir.join("data/ferrum.db"))
        .arg(sql)
        .output()
        .expect("sqlite3 must be installed for this test (scripts/test installs it)");
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out).trim().to_owned()
}

#[test]
fn a_restart_reuses_the_admin_and_the_runner_token() {
    let dev = Dev::start();
    dev.configure();
    let first = dev.configure.clone();
    let dir = dev.stop();
    let tokens = count(&dir.0, "SELECT count(*) FROM runner_tokens");
    let users = count(&dir.0, "SELECT count(*) FROM users");
    assert_eq!(tokens, "1");

    let dev = Dev::start_in(dir);
    assert_eq!(dev.configure[4], first[4], "the same admin token");
    dev.configure();
    let tokens_after = count(&dev.dir.0, "SELECT count(*) FROM runner_tokens");
    assert_eq!(tokens_after, tokens, "no new runner token at a restart");
    assert_eq!(count(&dev.dir.0, "SELECT count(*) FROM users"), users);
    // The restarted runner works with the kept token.
    let w = dev.worker("w", &[("w.sh", "echo again\n")]);
    ok(dev.cli(&["upload", "w", &w, "--file-name", "w.sh"]));
    let id = ok(dev.cli(&["queue", "w"]));
    assert!(ok(dev.cli(&["log", id.trim(), "--follow"])).contains("again"));
}
