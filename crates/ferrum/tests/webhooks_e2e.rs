//! Webhooks end to end: a real `ferrum serve`, a real runner and Docker. A third party posts
//! to a per-code webhook URL (no project token) and, in synchronous mode, gets the worker's
//! stdout back as the answer.

mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::{Ferrum, RUNNER};

/// Creates a webhook of `code`; returns its URL.
async fn webhook(f: &Ferrum, code: &str, body: serde_json::Value) -> String {
    let code_id = f.get("/2/projects/{pid}/codes").await["codes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == code)
        .expect("the code")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = f
        .post(
            &format!("/2/projects/{{pid}}/codes/{code_id}/webhooks"),
            body,
        )
        .await;
    r["url"].as_str().expect("a webhook url").to_owned()
}

#[tokio::test]
async fn sync_webhook_answers_with_the_workers_stdout() {
    let mut f = Ferrum::start(&[]).await;
    f.start_runner(RUNNER, 2, &[]);
    let script = r#"printf '{"text": "you said %s"}' "$(cat "$PAYLOAD_FILE")""#;
    f.upload_sh("bot", script, json!({})).await;
    let sync_url = webhook(&f, "bot", json!({"sync_timeout": 30})).await;
    let async_url = webhook(&f, "bot", json!({})).await;
    let http = reqwest::Client::new();

    let started = Instant::now();
    let r = http.post(&sync_url).body("hello").send().await.unwrap();
    let took = started.elapsed();
    assert_eq!(r.status(), 200);
    let header = |name: &str| r.headers()[name].to_str().unwrap().to_owned();
    assert_eq!(header("x-ferrum-task-status"), "complete");
    assert_eq!(header("content-type"), "application/json");
    let task_id = header("x-ferrum-task-id");
    let body = r.text().await.unwrap();
    assert_eq!(body, r#"{"text": "you said hello"}"#);
    println!(
        "sync webhook answered with the result in {} ms",
        took.as_millis()
    );
    assert_eq!(f.task(&task_id).await["payload"], "hello");

    // Without sync_timeout the answer is the task id, at once, before any runner acts.
    let started = Instant::now();
    let r = http.post(&async_url).body("later").send().await.unwrap();
    let took = started.elapsed();
    let queued: serde_json::Value = r.json().await.unwrap();
    assert_eq!(queued["msg"], "Queued up.");
    // Latency lives in benchmarks; the answer's shape says it did not wait for a runner.
    println!("async webhook acknowledged in {} ms", took.as_millis());
    let id = queued["id"].as_str().unwrap();
    f.wait_for(id, Some("complete"), Duration::from_secs(60))
        .await;
    assert_eq!(f.log(id).await, r#"{"text": "you said later"}"#);
}
