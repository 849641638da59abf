//! Schedules and delayed tasks end to end: real `ferrum serve` processes (several replicas on
//! one database), a real runner and Docker.

mod support;

use std::time::{Duration, Instant};

use chrono::{DateTime, SubsecRound, Utc};
use serde_json::{json, Value};
use support::{Ferrum, RUNNER};

const WAIT: Duration = Duration::from_secs(60);

async fn create_schedule(f: &Ferrum, schedule: Value) -> String {
    let r = f
        .post(
            "/2/projects/{pid}/schedules",
            json!({"schedules": [schedule]}),
        )
        .await;
    r["schedules"][0]["id"]
        .as_str()
        .expect("schedule id")
        .to_owned()
}

async fn schedule(f: &Ferrum, id: &str) -> Value {
    f.get(&format!("/2/projects/{{pid}}/schedules/{id}")).await
}

async fn tasks_of(f: &Ferrum, id: &str) -> Vec<Value> {
    let r = f
        .get(&format!(
            "/2/projects/{{pid}}/schedules/{id}/tasks?per_page=100"
        ))
        .await;
    r["tasks"].as_array().expect("tasks").clone()
}

/// Polls until the schedule's status is `status`.
async fn wait_status(f: &Ferrum, id: &str, status: &str, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let s = schedule(f, id).await;
        if s["status"] == status {
            return s;
        }
        assert!(Instant::now() < deadline, "schedule still {}", s["status"]);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn time(v: &Value) -> DateTime<Utc> {
    v.as_str()
        .and_then(|t| t.parse().ok())
        .expect("an RFC 3339 time")
}

/// The operator setting that allows seconds crons (`ferrum serve` refuses runs closer than
/// 60 s apart by default).
const SECONDS_CRONS: &[&str] = &["--min-schedule-interval", "1"];

/// Lags of tasks fired by a seconds cron: each slot is a whole second, so a task's lag is how
/// far its creation is past the second it falls in. Returns (p50, max) in milliseconds.
fn lags_ms(tasks: &[Value]) -> (i64, i64) {
    let mut lags: Vec<i64> = tasks
        .iter()
        .map(|t| {
            let at = time(&t["created_at"]);
            (at - at.trunc_subsecs(0)).num_milliseconds()
        })
        .collect();
    lags.sort_unstable();
    (lags[lags.len() / 2], lags[lags.len() - 1])
}

/// Waits until the `witness` schedule (a seconds cron that is never stopped) has fired `n`
/// more tasks. A firing pass fires every due schedule, so once the witness has fired twice
/// after a moment, every schedule has had its chance to fire after that moment: this is how
/// the test knows that a stopped schedule *would* have fired by now, without guessing a time.
async fn witness_fires(f: &Ferrum, witness: &str, n: usize) {
    let target = tasks_of(f, witness).await.len() + n;
    let deadline = Instant::now() + WAIT;
    while tasks_of(f, witness).await.len() < target {
        assert!(
            Instant::now() < deadline,
            "the witness schedule stopped firing"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A seconds cron fires each slot, tells the worker its `SCHEDULE_ID`, and `run_times`,
/// `end_at` and pause stop it; resume starts it again.
#[tokio::test]
async fn cron_with_seconds_fires_on_time_and_stops_when_told() {
    let mut f = Ferrum::start(SECONDS_CRONS).await;
    f.start_runner(RUNNER, 4, &[]);
    f.upload_sh("tick", "echo \"schedule=$SCHEDULE_ID\"", json!({}))
        .await;
    let base = json!({"code_name": "tick", "payload": "{}", "cron": "* * * * * *"});
    let with = |extra: Value| {
        let mut s = base.clone();
        s.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        s
    };
    let witness = create_schedule(&f, with(json!({}))).await;
    let counted = create_schedule(&f, with(json!({"run_times": 4}))).await;
    let end_at = Utc::now() + chrono::Duration::seconds(3);
    let before_create = Utc::now();
    let ending = create_schedule(&f, with(json!({"end_at": end_at.to_rfc3339()}))).await;
    let paused = create_schedule(&f, with(json!({}))).await;

    let done = wait_status(&f, &counted, "complete", WAIT).await;
    assert_eq!(
        (done["run_count"].as_i64(), done["msg"].as_str()),
        (Some(4), Some("Ran max times."))
    );
    let tasks = tasks_of(&f, &counted).await;
    assert_eq!(tasks.len(), 4);
    // Latency is the benchmark's business (`scripts/bench-schedules`); printed for the log.
    let (p50, max) = lags_ms(&tasks);
    println!("seconds cron firing lag: p50 {p50} ms, max {max} ms");
    let first = tasks[0]["id"].as_str().unwrap();
    f.wait_for(first, Some("complete"), WAIT).await;
    assert_eq!(f.log(first).await.trim(), format!("schedule={counted}"));

    let ended = wait_status(&f, &ending, "complete", WAIT).await;
    assert_eq!(ended["msg"], "Reached end_at.");
    // At most one task per whole second between its creation and `end_at`, and none after.
    let most = (end_at.timestamp() - before_create.timestamp()) as usize;
    let fired = tasks_of(&f, &ending).await.len();
    assert!(
        (1..=most).contains(&fired),
        "{fired} slots up to end_at, at most {most}"
    );
    witness_fires(&f, &witness, 2).await;
    assert_eq!(
        tasks_of(&f, &ending).await.len(),
        fired,
        "fired past end_at"
    );

    let pause = format!("/2/projects/{{pid}}/schedules/{paused}/pause");
    assert_eq!(f.post(&pause, json!({})).await["msg"], "Paused");
    // A pass that read the schedule just before the pause may still fire it once.
    witness_fires(&f, &witness, 2).await;
    let before = tasks_of(&f, &paused).await.len();
    witness_fires(&f, &witness, 3).await;
    assert_eq!(
        tasks_of(&f, &paused).await.len(),
        before,
        "a paused schedule does not fire"
    );
    let resume = format!("/2/projects/{{pid}}/schedules/{paused}/resume");
    assert_eq!(f.post(&resume, json!({})).await["msg"], "Resumed");
    let deadline = Instant::now() + WAIT;
    while tasks_of(&f, &paused).await.len() == before {
        assert!(Instant::now() < deadline, "a resumed schedule fires again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for id in [&paused, &witness] {
        f.post(
            &format!("/2/projects/{{pid}}/schedules/{id}/cancel"),
            json!({}),
        )
        .await;
    }
}

/// Three `ferrum serve` replicas on one database fire a every-second cron for 35 occurrences:
/// exactly one task per occurrence.
#[tokio::test]
async fn three_replicas_make_exactly_one_task_per_occurrence() {
    let f = Ferrum::start(SECONDS_CRONS).await;
    let _r2 = f.start_replica().await;
    let _r3 = f.start_replica().await;
    f.upload_sh("beat", "true", json!({})).await;
    let start = Utc::now().trunc_subsecs(0) + chrono::Duration::seconds(2);
    let end = start + chrono::Duration::seconds(34);
    let id = create_schedule(
        &f,
        json!({"code_name": "beat", "payload": "{}", "cron": "* * * * * *",
               "misfire": "catch_up", "start_at": start.to_rfc3339(), "end_at": end.to_rfc3339()}),
    )
    .await;
    let s = wait_status(&f, &id, "complete", Duration::from_secs(60)).await;
    let tasks = tasks_of(&f, &id).await;
    assert_eq!(s["run_count"], 35);
    assert_eq!(tasks.len(), 35, "one task per occurrence, none twice");
    let mut seconds: Vec<i64> = tasks
        .iter()
        .map(|t| time(&t["created_at"]).timestamp())
        .collect();
    seconds.sort_unstable();
    seconds.dedup();
    let (p50, max) = lags_ms(&tasks);
    println!(
        "3 replicas: 35 tasks in {} distinct seconds; lag p50 {p50} ms, max {max} ms",
        seconds.len()
    );
}

/// A delayed task starts no earlier than its delay, and then starts (how soon after is
/// `scripts/bench-schedules`' business).
#[tokio::test]
async fn delayed_tasks_start_on_time() {
    let mut f = Ferrum::start(&[]).await;
    f.start_runner(RUNNER, 2, &[]);
    f.upload_sh("later", "true", json!({})).await;
    let warm = f.queue(json!({"code_name": "later", "payload": ""})).await;
    f.wait_for(&warm, Some("complete"), WAIT).await;
    let id = f
        .queue(json!({"code_name": "later", "payload": "", "delay": 3}))
        .await;
    let t = f.wait_for(&id, Some("complete"), WAIT).await;
    let waited = time(&t["start_time"]) - time(&t["created_at"]);
    println!("delay 3 s: started after {} ms", waited.num_milliseconds());
    assert!(
        waited >= chrono::Duration::seconds(3),
        "started early: {waited}"
    );
}

/// Issue 15, finding 6: a plain `ferrum serve` refuses a cron that fires every second, as it
/// refuses `run_every` under 60, with the same rule and a clear `msg`.
#[tokio::test]
async fn serve_refuses_crons_closer_than_a_minute_by_default() {
    let f = Ferrum::start(&[]).await;
    f.upload_sh("tick", "true", json!({})).await;
    let url = format!("{}/2/projects/{}/schedules", f.api, f.project);
    let http = reqwest::Client::new();
    for (schedule, needle) in [
        (
            json!({"cron": "* * * * * *"}),
            "runs must be at least 60 seconds apart",
        ),
        (
            json!({"run_every": 30}),
            "run_every must be at least 60 seconds",
        ),
    ] {
        let mut s = json!({"code_name": "tick", "payload": "{}"});
        s.as_object_mut()
            .unwrap()
            .extend(schedule.as_object().unwrap().clone());
        let r = http
            .post(&url)
            .header("Authorization", format!("OAuth {}", support::ADMIN))
            .body(json!({"schedules": [s]}).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        let body: Value = r.json().await.unwrap();
        let msg = body["msg"].as_str().unwrap();
        assert!(msg.contains(needle), "{msg}");
    }
    create_schedule(
        &f,
        json!({"code_name": "tick", "payload": "{}", "cron": "* * * * *"}),
    )
    .await;
}
