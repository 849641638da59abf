//! The CLI covers the API: every command driven as a subprocess against a real `ferrum dev`
//! (Docker runs the tasks), with its exit status checked — cancel/retry, code
//! delete/pause/resume, cron schedules, webhook list/revoke, JSON-lines queueing,
//! completions, honest exit codes for commands that wait, input the way users type it, and
//! tables and logs that read well.

mod dev_support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use dev_support::*;
use serde_json::Value;

fn json_of(out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("JSON expected ({e}): {out}"))
}

/// A task's status through the CLI.
fn status_of(dev: &Dev, id: &str) -> String {
    let t = json_of(&ok(dev.cli(&["status", id, "--output", "json"])));
    t["status"].as_str().unwrap_or_default().to_owned()
}

#[test]
fn commands_that_wait_exit_non_zero_unless_the_task_completed() {
    let dev = Dev::start();
    dev.configure();
    let w = dev.worker(
        "w",
        &[
            ("ok.sh", "echo fine\n"),
            ("fail.sh", "echo broken >&2\nexit 3\n"),
        ],
    );
    ok(dev.cli(&["upload", "good", &w, "--file-name", "ok.sh"]));
    ok(dev.cli(&["upload", "bad", &w, "--file-name", "fail.sh"]));

    let good = ok(dev.cli(&["queue", "good"])).trim().to_owned();
    let follow = dev.cli(&["log", &good, "--follow"]);
    assert!(ok(follow.clone()).contains("fine"));
    assert!(stderr(&follow).contains(&format!("task {good} complete")));

    let bad = ok(dev.cli(&["queue", "bad"])).trim().to_owned();
    let follow = dev.cli(&["log", &bad, "--follow"]);
    assert!(stdout(&follow).contains("broken"), "{}", stdout(&follow));
    one_line_error(follow, &format!("task {bad} ended error"));
    // Scripts reading JSON get the JSON and the same exit status.
    let follow = dev.cli(&["log", &bad, "--follow", "--output", "json"]);
    assert_eq!(json_of(&stdout(&follow))["status"], "error");
    assert_eq!(follow.status.code(), Some(1));
    // Without --follow nothing is waited for: printing a failed task's log succeeds.
    assert!(ok(dev.cli(&["log", &bad])).contains("broken"));
}

#[test]
fn cancel_retry_pause_resume_and_delete_through_the_cli() {
    let dev = Dev::start();
    dev.configure();
    let w = dev.worker("w", &[("hi.sh", "echo \"hi $(cat \"$PAYLOAD_FILE\")\"\n")]);
    ok(dev.cli(&["upload", "hi", &w, "--file-name", "hi.sh"]));

    // Paused before queueing, so the task cannot have started: no race to order.
    assert!(ok(dev.cli(&["code", "pause", "hi"])).contains("paused"));
    let held = ok(dev.cli(&["queue", "hi", "--payload", "one"]))
        .trim()
        .to_owned();
    assert_eq!(status_of(&dev, &held), "queued");
    let table = ok(dev.cli(&["status", &held]));
    let start = table.lines().find(|l| l.starts_with("start_time")).unwrap();
    assert!(
        start.trim_end().ends_with(" -"),
        "unset time shows -: {table}"
    );

    assert!(ok(dev.cli(&["cancel", &held])).contains("cancelled"));
    assert_eq!(status_of(&dev, &held), "cancelled");
    let again = ok(dev.cli(&["cancel", &held, "--output", "json"]));
    assert_eq!(json_of(&again)["status"], "cancelled");

    let retry = ok(dev.cli(&["retry", &held])).trim().to_owned();
    assert_eq!(retry.len(), 24, "a new task id: {retry}");
    assert_ne!(retry, held);
    assert_eq!(status_of(&dev, &retry), "queued");
    assert!(ok(dev.cli(&["code", "resume", "hi"])).contains("resumed"));
    let log = ok(dev.cli(&["log", &retry, "--follow"]));
    assert!(log.contains("hi one"), "{log}");
    let tasks = json_of(&ok(
        dev.cli(&["list", "tasks", "--code", "hi", "--output", "json"])
    ));
    let finished = tasks["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == retry.as_str())
        .cloned()
        .unwrap();
    assert_eq!(finished["status"], "complete");
    let listed = ok(dev.cli(&["list", "tasks", "--code", "hi"]));
    let row = listed.lines().find(|l| l.starts_with(&retry)).unwrap();
    assert!(
        row.contains("ms ") || row.contains("s "),
        "duration has a unit: {row}"
    );

    // A finished task stays as it is, and the command says so.
    let done = ok(dev.cli(&["cancel", &retry]));
    assert!(done.contains("already ended complete"), "{done}");

    let deleted = ok(dev.cli(&["code", "delete", "hi", "--output", "json"]));
    assert_eq!(json_of(&deleted)["name"], "hi");
    assert!(!ok(dev.cli(&["list", "codes"])).contains("hi"));
    one_line_error(dev.cli(&["code", "delete", "hi"]), "no code named \"hi\"");
    one_line_error(
        dev.cli(&["cancel", "000000000000000000000000"]),
        "not found",
    );
}

#[test]
fn schedules_webhooks_and_jsonl_queueing_through_the_cli() {
    let dev = Dev::start();
    dev.configure();
    let w = dev.worker("w", &[("hi.sh", "cat \"$PAYLOAD_FILE\"\n")]);
    ok(dev.cli(&["upload", "hi", &w, "--file-name", "hi.sh"]));

    // Cron schedules: created with --cron/--timezone, listed with a cron column.
    let id = ok(dev.cli(&[
        "schedule",
        "create",
        "hi",
        "--cron",
        "30 4 * * 1",
        "--timezone",
        "Europe/Paris",
    ]))
    .trim()
    .to_owned();
    let table = ok(dev.cli(&["list", "schedules"]));
    let header = table.lines().next().unwrap();
    assert!(
        header.contains("cron") && header.contains("timezone"),
        "{table}"
    );
    let row = table.lines().find(|l| l.starts_with(&id)).unwrap();
    assert!(
        row.contains("30 4 * * 1") && row.contains("Europe/Paris"),
        "{row}"
    );
    let run_every = row.split_whitespace().nth(4);
    assert_eq!(
        run_every,
        Some("-"),
        "no run_every 0 for a cron schedule: {row}"
    );
    let listed = json_of(&ok(dev.cli(&["list", "schedules", "--output", "json"])));
    assert_eq!(listed["schedules"][0]["cron"], "30 4 * * 1");
    one_line_error(
        dev.cli(&["schedule", "create", "hi", "--cron", "not a cron"]),
        "cron",
    );

    // Update: the cron moves to another zone and time; the next run follows it.
    let updated = ok(dev.cli(&[
        "schedule",
        "update",
        &id,
        "--cron",
        "15 9 * * *",
        "--timezone",
        "Asia/Kolkata",
        "--label",
        "daily",
    ]));
    assert!(
        updated.contains("03:45:00"),
        "09:15 in Kolkata is 03:45 UTC: {updated}"
    );
    let s = json_of(&ok(dev.cli(&["list", "schedules", "--output", "json"])));
    let s = &s["schedules"][0];
    assert_eq!(s["cron"], "15 9 * * *");
    assert_eq!(s["timezone"], "Asia/Kolkata");
    assert_eq!(s["label"], "daily");
    one_line_error(
        dev.cli(&["schedule", "update", &id, "--timezone", "Mars/Olympus"]),
        "timezone",
    );

    // Pause and resume: the schedule says so, and a second pause is a no-op, not an error.
    assert!(ok(dev.cli(&["schedule", "pause", &id])).contains(&id));
    ok(dev.cli(&["schedule", "pause", &id]));
    let s = json_of(&ok(dev.cli(&["list", "schedules", "--output", "json"])));
    assert_eq!(s["schedules"][0]["paused"], true);
    ok(dev.cli(&["schedule", "resume", &id]));
    let s = json_of(&ok(dev.cli(&["list", "schedules", "--output", "json"])));
    assert_eq!(s["schedules"][0]["paused"], false);

    // Webhooks: each call mints a URL; list shows them; revoke stops a URL at once.
    let first = ok(dev.cli(&["webhook", "hi"])).trim().to_owned();
    let second = ok(dev.cli(&["webhook", "hi", "--label", "two"]))
        .trim()
        .to_owned();
    let hooks = json_of(&ok(dev.cli(&["webhook", "list", "hi", "--output", "json"])));
    let hooks = hooks["webhooks"].as_array().unwrap().clone();
    assert_eq!(hooks.len(), 2);
    assert_eq!(post(&first), 200);
    let older = hooks.iter().find(|h| h["label"].is_null()).unwrap();
    let older = older["id"].as_str().unwrap();
    assert!(ok(dev.cli(&["webhook", "revoke", "hi", older])).contains(older));
    assert_eq!(post(&first), 404, "a revoked URL stops working");
    assert_eq!(post(&second), 200);
    ok(dev.cli(&["webhook", "revoke", "hi", "--all"]));
    assert_eq!(post(&second), 404);
    assert!(ok(dev.cli(&["webhook", "list", "hi"])).lines().count() == 1);

    // JSON lines: a payload per line for CODE, or a whole task object.
    let file = dev.dir.0.join("tasks.jsonl");
    std::fs::write(
        &file,
        "{\"n\":1}\n\n{\"code_name\":\"hi\",\"payload\":\"two\",\"label\":\"L\"}\n\"three\"\n",
    )
    .unwrap();
    let ids: Vec<String> = ok(dev.cli(&["queue", "hi", "--jsonl", file.to_str().unwrap()]))
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(ids.len(), 3, "{ids:?}");
    let want = ["{\"n\":1}", "two", "three"];
    for (id, want) in ids.iter().zip(want) {
        let log = ok(dev.cli(&["log", id, "--follow"]));
        assert_eq!(log.trim(), want);
    }
    let t = json_of(&ok(dev.cli(&["status", &ids[1], "--output", "json"])));
    assert_eq!(t["label"], "L");
    let before = count_tasks(&dev);
    std::fs::write(&file, "{\"n\":1}\nnot json\n").unwrap();
    one_line_error(
        dev.cli(&["queue", "hi", "--jsonl", file.to_str().unwrap()]),
        "line 2 is not JSON",
    );
    assert_eq!(count_tasks(&dev), before, "a bad file queues nothing");
}

fn count_tasks(dev: &Dev) -> usize {
    let t = json_of(&ok(dev.cli(&[
        "list",
        "tasks",
        "--per-page",
        "100",
        "--output",
        "json",
    ])));
    t["tasks"].as_array().map_or(0, Vec::len)
}

/// POSTs to a URL as a third party would (no token); returns the HTTP status.
fn post(url: &str) -> u16 {
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST"])
        .args(["-d", "{}", url])
        .output()
        .expect("curl runs");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

#[test]
fn input_is_taken_the_way_users_type_it() {
    let dev = Dev::start();
    let api = dev
        .configure
        .iter()
        .skip_while(|a| *a != "--host")
        .nth(1)
        .cloned()
        .unwrap();
    let token = std::fs::read_to_string(dev.dir.0.join("data/admin-token")).unwrap();
    // `host:port`, as people type it, and the project by name.
    let bare = api.trim_start_matches("http://");
    let shown = ok(dev.cli(&[
        "configure",
        "--host",
        bare,
        "--token",
        token.trim(),
        "--project",
        "dev",
    ]));
    assert!(shown.contains(&api), "{shown}");
    ok(dev.cli(&["list", "codes"]));
    one_line_error(
        dev.cli(&["configure", "--project", "nope"]),
        "no project \"nope\"",
    );

    for (flag, value, says) in [
        ("--priority", "-1", "-1 is not in 0..=2"),
        ("--delay", "-5", "-5 is not in 0..="),
        ("--priority", "3", "3 is not in 0..=2"),
    ] {
        let out = dev.cli(&["queue", "x", flag, value]);
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(stderr(&out).contains(says), "{}", stderr(&out));
        assert!(!stderr(&out).contains("-- -"), "{}", stderr(&out));
    }

    for shell in ["bash", "zsh", "fish"] {
        let script = ok(dev.cli(&["completions", shell]));
        assert!(
            script.contains("ferrum") && script.contains("webhook"),
            "{shell}"
        );
    }

    // A large upload with stderr redirected: no progress bar, no `\r`.
    let big = dev.dir.0.join("big");
    std::fs::create_dir_all(&big).unwrap();
    std::fs::write(big.join("run.sh"), "echo big\n").unwrap();
    let noise: Vec<u8> = (0..3_000_000u64).map(|i| (i * 7919 % 251) as u8).collect();
    std::fs::write(big.join("data.bin"), noise).unwrap();
    let up = dev.cli(&[
        "upload",
        "big",
        big.to_str().unwrap(),
        "--file-name",
        "run.sh",
    ]);
    assert!(ok(up.clone()).contains("Uploaded big"));
    assert!(!stderr(&up).contains('\r'), "{:?}", stderr(&up));

    // Logs written to a file carry no colour codes.
    assert!(!dev.output().contains('\u{1b}'), "{}", dev.output());
}

#[test]
fn operators_get_json_logs() {
    let port = free_port();
    let mut runner = Command::new(bin())
        .args(["runner", "--api", &format!("http://127.0.0.1:{port}")])
        .args(["--token", "nobody", "--log-format", "json"])
        .args([
            "--work-dir",
            std::env::temp_dir()
                .join("ferrum-json-logs")
                .to_str()
                .unwrap(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ferrum runner starts");
    let mut stderr = runner.stderr.take().unwrap();
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    // Read until a whole line is there; the runner keeps retrying the missing API.
    while !seen.contains('\n') && Instant::now() < deadline {
        let mut buf = [0u8; 4096];
        match std::io::Read::read(&mut stderr, &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => seen.push_str(&String::from_utf8_lossy(&buf[..n])),
        }
    }
    let _ = runner.kill();
    let _ = runner.wait();
    let line = seen.lines().next().unwrap_or_default();
    let parsed: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {seen}"));
    assert!(
        parsed["level"].is_string() && parsed["fields"].is_object(),
        "{line}"
    );
}
