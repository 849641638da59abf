//! `ferrum quota` against a running `ferrum serve`: an admin sets a project's queued cap with
//! the CLI, and queueing past it answers 429 with `Retry-After`, writing nothing.

mod support;

use std::process::Command;

use serde_json::{json, Value};
use support::{Ferrum, ADMIN};

fn quota(f: &Ferrum, args: &[&str]) -> std::process::Output {
    let (host, port) = f
        .api
        .trim_start_matches("http://")
        .split_once(':')
        .expect("host:port");
    Command::new(env!("CARGO_BIN_EXE_ferrum"))
        .arg("quota")
        .args(args)
        .env("HOME", &f.dir)
        .current_dir(&f.dir)
        .env("IRON_PROTOCOL", "http")
        .env("IRON_HOST", host)
        .env("IRON_PORT", port)
        .env("IRON_PROJECT_ID", &f.project)
        .env("IRON_TOKEN", ADMIN)
        .output()
        .expect("ferrum quota runs")
}

#[tokio::test]
async fn an_admin_caps_queued_tasks_with_the_cli() {
    let f = Ferrum::start(&[]).await;
    f.upload_sh("hello", "echo hi", json!({})).await;
    let set = quota(
        &f,
        &["set", "--max-queued", "1", "--tasks-per-minute", "100"],
    );
    assert!(
        set.status.success(),
        "{}",
        String::from_utf8_lossy(&set.stderr)
    );
    let shown = quota(&f, &["show", "--output", "json"]);
    assert!(shown.status.success());
    let shown: Value = serde_json::from_slice(&shown.stdout).expect("JSON");
    assert_eq!(
        shown,
        json!({"max_concurrency": null, "max_queued": 1, "tasks_per_minute": 100, "retention_days": null})
    );
    let bad = quota(&f, &["set", "--max-queued", "0"]);
    assert!(!bad.status.success());

    f.queue(json!({"code_name": "hello", "payload": "1"})).await;
    let r = reqwest::Client::new()
        .post(format!("{}/2/projects/{}/tasks", f.api, f.project))
        .header("Authorization", format!("OAuth {ADMIN}"))
        .json(&json!({"tasks": [{"code_name": "hello", "payload": "2"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    let listed = f.get("/2/projects/{pid}/tasks").await;
    assert_eq!(listed["tasks"].as_array().map(Vec::len), Some(1));

    let lifted = quota(&f, &["set", "--max-queued", "none"]);
    assert!(lifted.status.success());
    f.queue(json!({"code_name": "hello", "payload": "2"})).await;
}
