//! Issue 19, the fleet, end to end: real `ferrum serve` on Postgres, real `ferrum runner`
//! processes on the Docker engine. A drained runner takes no new task even with a free slot,
//! its running task completes, and the fleet list (API and CLI) shows it drained.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::{Ferrum, ADMIN, RUNNER};

const WAIT: Duration = Duration::from_secs(60);

/// Waits until `check` holds for the runner list, or fails after [`WAIT`].
async fn wait_runners(f: &Ferrum, what: &str, check: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + WAIT;
    loop {
        let listed = f.get("/2/runners").await;
        let runners = listed["runners"].as_array().cloned().unwrap_or_default();
        if check(&runners) {
            return runners;
        }
        assert!(Instant::now() < deadline, "{what}: {listed}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The one child `parent` queued, once it exists.
async fn wait_child(f: &Ferrum, parent: &str) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let listed = f
            .get(&format!("/2/projects/{{pid}}/tasks?parent_id={parent}"))
            .await;
        if let Some(id) = listed["tasks"][0]["id"].as_str() {
            return id.to_owned();
        }
        assert!(Instant::now() < deadline, "no child of {parent}: {listed}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn status_of<'a>(runners: &'a [Value], id: &str) -> &'a str {
    let r = runners.iter().find(|r| r["id"] == id);
    r.and_then(|r| r["status"].as_str()).unwrap_or("absent")
}

#[tokio::test]
async fn a_drained_runner_finishes_its_task_takes_no_new_one_and_shows_drained() {
    let mut f = Ferrum::start(&[]).await;
    // Two slots: the drained runner has a free one when the next task is queued.
    f.start_runner(RUNNER, 2, &[]);
    let runners = wait_runners(&f, "the runner registers", |r| r.len() == 1).await;
    let drained_id = runners[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(runners[0]["concurrency"], 2);
    assert_eq!(runners[0]["version"], env!("CARGO_PKG_VERSION"));

    // The held task queues a child far in the future (no runner takes it) and runs until
    // that child is cancelled: it is running when the drain comes, and ends only after the
    // test queued the next task and then cancelled the child.
    let hold = r#"echo started
base="$IRON_PROTOCOL://$IRON_HOST:$IRON_PORT/2/projects/$IRON_PROJECT_ID/tasks"
auth="Authorization: OAuth $IRON_TOKEN"
gate=$(curl -sf -H "$auth" -H 'Content-Type: application/json' \
  -d '{"tasks":[{"code_name":"quick","delay":3600}]}' "$base" \
  | sed 's/.*"id":"\([0-9a-f]*\)".*/\1/')
until curl -sf -H "$auth" "$base/$gate" | grep -q '"status":"cancelled"'; do sleep 0.2; done
echo released"#;
    f.upload_sh("hold", hold, json!({})).await;
    f.upload_sh("quick", "echo quick", json!({})).await;
    let held = f.queue(json!({"code_name": "hold"})).await;
    f.wait_for(&held, Some("running"), WAIT).await;
    let gate = wait_child(&f, &held).await;

    let drain = f
        .post(&format!("/2/runners/{drained_id}/drain"), json!({}))
        .await;
    assert_eq!(drain["runner"]["status"], "draining", "{drain}");
    let next = f.queue(json!({"code_name": "quick"})).await;
    f.post(
        &format!("/2/projects/{{pid}}/tasks/{gate}/cancel"),
        json!({}),
    )
    .await;

    let t = f.wait_for(&held, None, WAIT).await;
    assert_eq!(t["status"], "complete", "the running task completes: {t}");
    assert!(f.log(&held).await.contains("released"));
    let runners = wait_runners(&f, "the runner reports drained", |r| {
        status_of(r, &drained_id) == "drained"
    })
    .await;
    assert_eq!(runners[0]["running"], 0);
    let t = f.task(&next).await;
    assert_eq!(
        t["status"], "queued",
        "no other runner exists, and the drained one took nothing: {t}"
    );

    // Another runner takes it; the drained one stays drained.
    f.start_runner(RUNNER, 1, &[]);
    let t = f.wait_for(&next, None, WAIT).await;
    assert_eq!(t["status"], "complete", "{t}");
    let runners = wait_runners(&f, "the new runner is active", |r| r.len() == 2).await;
    assert_eq!(status_of(&runners, &drained_id), "drained");
    let clusters = f.get("/2/clusters").await;
    let default = &clusters["clusters"][0];
    assert_eq!(
        (&default["id"], &default["runners"], &default["capacity"]),
        (&json!("default"), &json!(1), &json!(1)),
        "only the new runner counts: {clusters}"
    );

    // The CLI shows the same list.
    let port = f.api.rsplit(':').next().unwrap().to_owned();
    let out = Command::new(env!("CARGO_BIN_EXE_ferrum"))
        .args(["runners", "--output", "json"])
        .env("HOME", &f.dir)
        .env("IRON_TOKEN", ADMIN)
        .env("IRON_HOST", "127.0.0.1")
        .env("IRON_PORT", &port)
        .env("IRON_PROTOCOL", "http")
        .output()
        .expect("ferrum runners runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let runners = listed["runners"].as_array().unwrap();
    assert_eq!(status_of(runners, &drained_id), "drained", "{listed}");
}
