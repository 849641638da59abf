//! Tasks that queue tasks, end to end: a master task uses the official Python client
//! (iron-worker 1.3.8, bundled in its zip as a user would) with no configuration — the
//! container's `IRON_*` variables are all it needs — to queue children, wait for them and
//! read their results; and a task token cannot reach beyond its task.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};
use support::{Ferrum, ADMIN, RUNNER};

const WAIT: Duration = Duration::from_secs(180);

/// Doubles its payload's `n` and returns it as its result.
const DOUBLE: &str = r#"
import json, os
n = json.load(open(os.environ["PAYLOAD_FILE"]))["n"]
with open(os.environ["RESULT_FILE"], "w") as f:
    json.dump({"doubled": 2 * n}, f)
"#;

/// Queues one child per number, waits for each, sums their results, returns the sum.
const MASTER: &str = r#"
import json, os, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from iron_worker import IronWorker

numbers = json.load(open(os.environ["PAYLOAD_FILE"]))["numbers"]
worker = IronWorker()  # no configuration: IRON_* from the container
children = [worker.queue(code_name="double", payload={"n": n}) for n in numbers]
total = 0
for child in children:
    done = worker.wait_for_task(child)
    assert done.status == "complete", done.status
    total += worker.client.get("tasks/%s/result" % child.id)["body"]["doubled"]
print("children:", " ".join(c.id for c in children))
with open(os.environ["RESULT_FILE"], "w") as f:
    json.dump({"total": total, "children": [c.id for c in children]}, f)
"#;

/// Slices its list into a batch of `double` items with a `sum` reduce, queued from inside
/// its container with the official client's own HTTP client, waits for the batch, and
/// returns the total as its own result.
const BATCH_MASTER: &str = r#"
import json, os, sys, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from iron_worker import IronWorker

numbers = json.load(open(os.environ["PAYLOAD_FILE"]))["numbers"]
worker = IronWorker()  # no configuration: IRON_* from the container
items = [{"n": n} for n in numbers]
body = json.dumps({"code_name": "double", "payloads": items, "reduce": {"code_name": "sum"}})
batch = worker.client.post("batches", body=body,
                           headers={"Content-Type": "application/json"})["body"]
while True:
    b = worker.client.get("batches/%s" % batch["id"])["body"]
    if b["status"] not in ("running", "reducing"):
        break
    time.sleep(0.5)
assert b["status"] == "complete", b
total = worker.client.get("batches/%s/result" % batch["id"])["body"]
with open(os.environ["RESULT_FILE"], "w") as f:
    json.dump({"total": total, "batch": batch["id"]}, f)
"#;

/// Sums the `doubled` results of its batch's items.
const SUM: &str = r#"
import json, os
items = [json.loads(l) for l in open(os.environ["BATCH_RESULTS_FILE"])]
with open(os.environ["RESULT_FILE"], "w") as f:
    json.dump(sum(i["result"]["doubled"] for i in items), f)
"#;

/// Tries what a task token must not do (and what it may), and returns the statuses — and,
/// for the test only, the token itself, to try it after the task ended.
const PROBE: &str = r#"
import json, os, urllib.request, urllib.error
env = os.environ
base = "%s://%s:%s/2" % (env["IRON_PROTOCOL"], env["IRON_HOST"], env["IRON_PORT"])
pid, me = env["IRON_PROJECT_ID"], env["TASK_ID"]
other = json.load(open(env["PAYLOAD_FILE"]))["other_project"]

def call(method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method)
    req.add_header("Authorization", "OAuth " + env["IRON_TOKEN"])
    req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")

child = {"tasks": [{"code_name": "noop", "payload": ""}]}
out = {
    "queue_child": call("POST", "/projects/%s/tasks" % pid, child),
    "queue_second": call("POST", "/projects/%s/tasks" % pid, child),
    "queue_past_cap": call("POST", "/projects/%s/tasks" % pid, child),
    "other_project_list": call("GET", "/projects/%s/tasks" % other),
    "other_project_queue": call("POST", "/projects/%s/tasks" % other, child),
    "upload_code": call("POST", "/projects/%s/codes" % pid, {"name": "x"}),
    "list_codes": call("GET", "/projects/%s/codes" % pid),
    "projects": call("GET", "/projects"),
    "own_progress": call("POST", "/projects/%s/tasks/%s/progress" % (pid, me), {"percent": 50}),
    "own_task": call("GET", "/projects/%s/tasks/%s" % (pid, me)),
    "children": call("GET", "/projects/%s/tasks" % pid),
    "token": env["IRON_TOKEN"],
}
with open(env["RESULT_FILE"], "w") as f:
    json.dump(out, f)
"#;

/// The site-packages directory the official client is installed in on this host.
fn site_packages() -> PathBuf {
    let out = Command::new("python3")
        .args([
            "-c",
            "import iron_worker, os; print(os.path.dirname(iron_worker.__file__))",
        ])
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "the official client is missing: pip install iron-worker==1.3.8 (scripts/test does)"
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// The official client and its dependencies, as files for a code zip (pure Python, no
/// caches), the way a user bundles them into a worker.
fn bundled_client() -> Vec<(String, Vec<u8>)> {
    let site = site_packages();
    let mut files = Vec::new();
    for module in ["iron_worker.py", "iron_core.py", "six.py"] {
        files.push((module.to_owned(), std::fs::read(site.join(module)).unwrap()));
    }
    for package in [
        "requests",
        "urllib3",
        "idna",
        "certifi",
        "charset_normalizer",
        "dateutil",
    ] {
        add_dir(&site, &site.join(package), &mut files);
    }
    files
}

fn add_dir(root: &Path, dir: &Path, files: &mut Vec<(String, Vec<u8>)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            if !path.ends_with("__pycache__") {
                add_dir(root, &path, files);
            }
        } else {
            let name = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            files.push((name, std::fs::read(&path).unwrap()));
        }
    }
}

async fn result_of(f: &Ferrum, id: &str) -> Value {
    let r = f
        .text(&format!("/2/projects/{{pid}}/tasks/{id}/result"))
        .await;
    serde_json::from_str(&r).expect("a JSON result")
}

/// A Python worker's upload JSON.
fn py(name: &str) -> Value {
    json!({"name": name, "runtime": "python", "file_name": "worker.py"})
}

/// Uploads `master` (with the official client bundled), queues it with `numbers`, and
/// answers its id and its result once it completed.
async fn run_master(f: &Ferrum, master: &str, numbers: Value) -> (String, Value) {
    let mut files = bundled_client();
    files.push(("worker.py".into(), master.as_bytes().to_vec()));
    let files: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(n, d)| (n.as_str(), d.as_slice()))
        .collect();
    f.upload(py("master"), &files).await;
    let payload = json!({ "numbers": numbers }).to_string();
    let id = f
        .queue(json!({"code_name": "master", "payload": payload}))
        .await;
    let done = f.wait_for(&id, None, WAIT).await;
    assert_eq!(done["status"], "complete", "{done}\n{}", f.log(&id).await);
    assert!(
        done.get("parent_id").is_none(),
        "a user's task has no parent"
    );
    let result = result_of(f, &id).await;
    (id, result)
}

#[tokio::test]
async fn a_master_task_queues_children_with_the_official_client_and_sums_their_results() {
    let mut f = Ferrum::start(&[]).await;
    f.start_runner(RUNNER, 4, &[]);
    f.upload(py("double"), &[("worker.py", DOUBLE.as_bytes())])
        .await;
    let (master, result) = run_master(&f, MASTER, json!([1, 2, 3, 4])).await;
    assert_eq!(result["total"], 20, "{result}");

    // The children carry their parent and are listed by it.
    let children: Vec<String> = result["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    for c in &children {
        assert_eq!(f.task(c).await["parent_id"], master.as_str());
    }
    let listed = f
        .get(&format!("/2/projects/{{pid}}/tasks?parent_id={master}"))
        .await;
    let mut listed: Vec<String> = listed["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_owned())
        .collect();
    listed.sort();
    let mut expected = children.clone();
    expected.sort();
    assert_eq!(listed, expected);
}

#[tokio::test]
async fn a_master_task_queues_a_batch_from_its_container_and_returns_the_total() {
    let mut f = Ferrum::start(&[]).await;
    f.start_runner(RUNNER, 4, &[]);
    f.upload(py("double"), &[("worker.py", DOUBLE.as_bytes())])
        .await;
    f.upload(py("sum"), &[("worker.py", SUM.as_bytes())]).await;
    let (master, result) =
        run_master(&f, BATCH_MASTER, json!((1..=10).collect::<Vec<i64>>())).await;
    assert_eq!(result["total"], 110, "{result}");

    // The batch, its items and its reduce are the master's children.
    let batch_id = result["batch"].as_str().unwrap();
    let batch = f
        .get(&format!("/2/projects/{{pid}}/batches/{batch_id}"))
        .await;
    assert_eq!(batch["parent_id"], master.as_str(), "{batch}");
    let children = f
        .get(&format!(
            "/2/projects/{{pid}}/tasks?parent_id={master}&per_page=100"
        ))
        .await;
    assert_eq!(
        children["tasks"].as_array().unwrap().len(),
        11,
        "{children}"
    );
}

#[tokio::test]
async fn a_task_token_reaches_only_its_task_and_dies_with_it() {
    let mut f = Ferrum::start(&["--max-children-per-task", "2"]).await;
    f.start_runner(RUNNER, 2, &[]);
    let other = f.post("/2/projects", json!({"name": "other"})).await;
    let other = other["id"].as_str().unwrap().to_owned();
    f.upload_sh("noop", "true", json!({})).await;
    let py = json!({"name": "probe", "runtime": "python", "file_name": "worker.py"});
    f.upload(py, &[("worker.py", PROBE.as_bytes())]).await;
    let payload = json!({"other_project": other}).to_string();
    let probe = f
        .queue(json!({"code_name": "probe", "payload": payload}))
        .await;
    let done = f.wait_for(&probe, None, WAIT).await;
    assert_eq!(
        done["status"],
        "complete",
        "{done}\n{}",
        f.log(&probe).await
    );
    let out = result_of(&f, &probe).await;
    let status = |k: &str| out[k][0].as_u64().unwrap_or_default();
    assert_eq!(status("queue_child"), 200, "{out}");
    assert_eq!(status("queue_second"), 200, "{out}");
    assert_eq!(status("queue_past_cap"), 429, "{out}");
    assert!(out["queue_past_cap"][1]["msg"]
        .as_str()
        .unwrap()
        .contains("at most 2"));
    assert_eq!(status("other_project_list"), 404, "{out}");
    assert_eq!(status("other_project_queue"), 404, "{out}");
    assert_eq!(status("upload_code"), 403, "{out}");
    assert_eq!(status("list_codes"), 403, "{out}");
    assert_eq!(status("projects"), 403, "{out}");
    assert_eq!(status("own_progress"), 200, "{out}");
    assert_eq!(status("own_task"), 404, "{out}");
    assert_eq!(
        out["children"][1]["tasks"].as_array().unwrap().len(),
        2,
        "{out}"
    );

    // The token is in no task JSON, no log, no error answer; and it died with its task.
    let token = out["token"].as_str().unwrap().to_owned();
    let task_json = f.task(&probe).await.to_string();
    assert!(!task_json.contains(&token));
    assert!(!f.log(&probe).await.contains(&token));
    assert!(!out.to_string().replace(&token, "").contains("ftt_"));
    let after = reqwest::Client::new()
        .get(format!("{}/2/projects/{}/tasks", f.api, f.project))
        .header("Authorization", format!("OAuth {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), 401);
    // The admin still sees everything, the probe's progress included.
    assert_eq!(f.task(&probe).await["percent"], 50);
    let _ = ADMIN;
}
