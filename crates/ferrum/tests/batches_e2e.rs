//! Issue 17, batches end to end: real `ferrum serve` on Postgres, a real `ferrum runner`, real
//! Docker containers (`ferrum/stack-sh`). The fan-in runs off the task-event duty; the reduce
//! task reads `BATCH_ID` and `BATCH_RESULTS_FILE`, which its runner wrote from its lease.

mod support;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::{Ferrum, RUNNER};

const WAIT: Duration = Duration::from_secs(180);

/// Fails (exit 1) when its payload is a multiple of `$FAIL_EVERY`.
const ITEM: &str = "n=$(cat \"$PAYLOAD_FILE\"); echo \"item $n\"; \
                    if [ $((n % ${FAIL_EVERY:-1000})) -eq 0 ]; then exit 1; fi";
/// Prints its batch and its input.
const REDUCE: &str = "echo \"batch=$BATCH_ID\"; cat \"$BATCH_RESULTS_FILE\"";

/// Polls the batch until it has ended.
async fn wait_batch(f: &Ferrum, id: &str) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let b = f.get(&format!("/2/projects/{{pid}}/batches/{id}")).await;
        if !matches!(b["status"].as_str(), Some("running" | "reducing")) {
            return b;
        }
        assert!(Instant::now() < deadline, "batch still {b}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn failed_items_after_retries_are_marked_and_the_reduce_sees_every_item_in_order() {
    let mut f = Ferrum::start(&[]).await;
    f.start_runner(RUNNER, 4, &[]);
    f.upload_sh("item", ITEM, json!({"env_vars": {"FAIL_EVERY": "5"}}))
        .await;
    f.upload_sh("reduce", REDUCE, json!({})).await;
    let payloads: Vec<i64> = (1..=12).collect();
    let created = f
        .post(
            "/2/projects/{pid}/batches",
            json!({"code_name": "item", "payloads": payloads, "retries": 1,
                   "reduce": {"code_name": "reduce"}}),
        )
        .await;
    assert_eq!(created["total"], 12);
    let id = created["id"].as_str().unwrap();
    let b = wait_batch(&f, id).await;
    assert_eq!(b["status"], "complete", "{b}");
    assert_eq!(b["counts"], json!({"complete": 10, "error": 2}), "{b}");
    let reduce_id = b["reduce_task_id"].as_str().unwrap();
    let log = f.log(reduce_id).await;
    let mut lines = log.lines();
    assert_eq!(lines.next(), Some(format!("batch={id}").as_str()), "{log}");
    let items: Vec<Value> = lines.map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(items.len(), 12, "{log}");
    let results = f
        .get(&format!(
            "/2/projects/{{pid}}/batches/{id}/results?per_page=100"
        ))
        .await;
    assert_eq!(results["results"], Value::Array(items.clone()));
    for (i, item) in items.iter().enumerate() {
        assert_eq!(item["index"], i as i64, "{item}");
        let failed = (i + 1) % 5 == 0;
        assert_eq!(
            item["status"],
            if failed { "error" } else { "complete" },
            "{item}"
        );
        if failed {
            // The slot follows the item's retry, which failed too.
            let t = f.task(item["task_id"].as_str().unwrap()).await;
            assert_eq!(
                (t["retry_count"].as_i64(), t["batch_index"].as_i64()),
                (Some(1), Some(i as i64))
            );
        }
    }
}

#[tokio::test]
async fn an_exceeded_tolerance_fails_the_batch_cancels_the_rest_and_runs_no_reduce() {
    let mut f = Ferrum::start(&[]).await;
    f.upload_sh("item", ITEM, json!({"env_vars": {"FAIL_EVERY": "1"}}))
        .await;
    f.upload_sh("reduce", REDUCE, json!({})).await;
    let payloads: Vec<i64> = (1..=30).collect();
    let created = f
        .post(
            "/2/projects/{pid}/batches",
            json!({"code_name": "item", "payloads": payloads, "tolerated_failure_count": 1,
                   "reduce": {"code_name": "reduce"}}),
        )
        .await;
    let id = created["id"].as_str().unwrap();
    // One slot: items run one at a time, so most are still queued when the second fails.
    f.start_runner(RUNNER, 1, &[]);
    let b = wait_batch(&f, id).await;
    assert_eq!(b["status"], "failed", "{b}");
    assert!(b["msg"].as_str().unwrap().contains("items failed"), "{b}");
    assert!(b.get("reduce_task_id").is_none(), "{b}");
    let deadline = Instant::now() + WAIT;
    loop {
        let b = f.get(&format!("/2/projects/{{pid}}/batches/{id}")).await;
        let counts = b["counts"].as_object().unwrap().clone();
        let unfinished: i64 = ["queued", "preparing", "running"]
            .iter()
            .filter_map(|s| counts.get(*s).and_then(Value::as_i64))
            .sum();
        if unfinished == 0 {
            assert!(counts["cancelled"].as_i64().unwrap() >= 20, "{b}");
            break;
        }
        assert!(Instant::now() < deadline, "{b}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let reduces = f.get("/2/projects/{pid}/tasks?code_name=reduce").await;
    assert_eq!(reduces["tasks"], json!([]));
}

/// Doubles its payload (a number) into `RESULT_FILE`.
const DOUBLE_PY: &str = "import json, os\n\
n = json.load(open(os.environ['PAYLOAD_FILE']))\n\
json.dump(n * 2, open(os.environ['RESULT_FILE'], 'w'))\n";
/// Sums the items' results from `BATCH_RESULTS_FILE` into `RESULT_FILE`.
const SUM_PY: &str = "import json, os\n\
total = sum(json.loads(line)['result'] for line in open(os.environ['BATCH_RESULTS_FILE']))\n\
json.dump(total, open(os.environ['RESULT_FILE'], 'w'))\n";

#[tokio::test]
async fn a_hundred_python_items_double_and_the_reduce_sums_within_max_concurrency() {
    let mut f = Ferrum::start(&[]).await;
    f.start_runner(RUNNER, 4, &[]);
    for (name, file, body) in [
        ("double", "double.py", DOUBLE_PY),
        ("sum", "sum.py", SUM_PY),
    ] {
        f.upload(
            json!({"name": name, "runtime": "python", "file_name": file}),
            &[(file, body.as_bytes())],
        )
        .await;
    }
    let payloads: Vec<i64> = (1..=100).collect();
    let created = f
        .post(
            "/2/projects/{pid}/batches",
            json!({"code_name": "double", "payloads": payloads, "max_concurrency": 3,
                   "reduce": {"code_name": "sum"}}),
        )
        .await;
    let id = created["id"].as_str().unwrap();
    let b = wait_batch(&f, id).await;
    assert_eq!(b["status"], "complete", "{b}");
    assert_eq!(b["counts"], json!({"complete": 100}), "{b}");

    let results = f
        .get(&format!(
            "/2/projects/{{pid}}/batches/{id}/results?per_page=100"
        ))
        .await;
    let doubled: Vec<Value> = results["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["result"].clone())
        .collect();
    let expected: Vec<Value> = (1..=100).map(|n| json!(n * 2)).collect();
    assert_eq!(doubled, expected);
    let total = f
        .text(&format!("/2/projects/{{pid}}/batches/{id}/result"))
        .await;
    assert_eq!(total.trim(), "10100");

    // max_concurrency 3 on a runner with 4 slots: no instant saw more than 3 items running.
    let mut spans = Vec::new();
    for r in results["results"].as_array().unwrap() {
        let t = f.task(r["task_id"].as_str().unwrap()).await;
        let at = |k: &str| t[k].as_str().unwrap().to_owned();
        spans.push((at("start_time"), at("end_time")));
    }
    for (start, _) in &spans {
        let running = spans
            .iter()
            .filter(|(s, e)| s <= start && e > start)
            .count();
        assert!(running <= 3, "{running} items ran at {start}: {spans:?}");
    }
}
