//! Issue 17's batch acceptance on `ferrum dev` (SQLite, its one runner), through the CLI only:
//! a batch of 100 Python items doubling numbers, a reduce that sums, ordered results
//! `[2, 4, …, 200]` and the batch result `10100`; and a batch whose failing items still
//! reduce, with those items marked. Needs the Docker engine and the stack images.

mod dev_support;

use dev_support::*;
use serde_json::Value;

const DOUBLE_PY: &str = "import json, os\n\
n = json.load(open(os.environ['PAYLOAD_FILE']))\n\
if n < 0:\n    raise SystemExit('negative: %d' % n)\n\
json.dump(n * 2, open(os.environ['RESULT_FILE'], 'w'))\n";
const SUM_PY: &str = "import json, os\n\
items = [json.loads(line) for line in open(os.environ['BATCH_RESULTS_FILE'])]\n\
total = sum(i['result'] for i in items if i['status'] == 'complete')\n\
json.dump({'total': total, 'failed': [i['index'] for i in items if i['status'] != 'complete']},\n\
          open(os.environ['RESULT_FILE'], 'w'))\n";

/// Runs `ferrum batch run double --payloads FILE --reduce sum --wait`: the items it printed
/// (one JSON line each) and the batch's id (from stderr).
fn run_batch(dev: &Dev, payloads: &[i64], expect_ok: bool) -> (Vec<Value>, String) {
    let file = dev.worker("items", &[]);
    let file = std::path::Path::new(&file).join("items.jsonl");
    let lines: Vec<String> = payloads.iter().map(i64::to_string).collect();
    std::fs::write(&file, lines.join("\n")).unwrap();
    let out = dev.cli(&[
        "batch",
        "run",
        "double",
        "--payloads",
        file.to_str().unwrap(),
        "--reduce",
        "sum",
        "--wait",
    ]);
    assert_eq!(out.status.success(), expect_ok, "{}", stderr(&out));
    let items = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let id = stderr(&out)
        .split_whitespace()
        .skip_while(|w| *w != "batch")
        .nth(1)
        .expect("the batch id on stderr")
        .to_owned();
    (items, id)
}

#[test]
fn python_batches_double_sum_and_mark_failed_items_on_ferrum_dev() {
    let dev = Dev::start();
    dev.configure();
    let w = dev.worker("double", &[("double.py", DOUBLE_PY)]);
    ok(dev.cli(&["upload", "double", &w, "--file-name", "double.py"]));
    let w = dev.worker("sum", &[("sum.py", SUM_PY)]);
    ok(dev.cli(&["upload", "sum", &w, "--file-name", "sum.py"]));

    let (items, id) = run_batch(&dev, &(1..=100).collect::<Vec<_>>(), true);
    let results: Vec<Value> = items.iter().map(|i| i["result"].clone()).collect();
    let expected: Vec<Value> = (1..=100).map(|n| Value::from(n * 2)).collect();
    assert_eq!(results, expected);
    let total: Value = serde_json::from_str(&ok(dev.cli(&["batch", "result", &id]))).unwrap();
    assert_eq!(total, serde_json::json!({"total": 10100, "failed": []}));

    // Items 2 and 4 fail (no retries): the reduce still runs, and sees them marked.
    let (items, id) = run_batch(&dev, &[1, -2, 3, -4, 5], true);
    let statuses: Vec<&str> = items
        .iter()
        .map(|i| i["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        ["complete", "error", "complete", "error", "complete"]
    );
    assert!(
        items[1]["msg"]
            .as_str()
            .unwrap_or_default()
            .contains("negative: -2"),
        "{items:?}"
    );
    let total: Value = serde_json::from_str(&ok(dev.cli(&["batch", "result", &id]))).unwrap();
    assert_eq!(total, serde_json::json!({"total": 18, "failed": [1, 3]}));
}
