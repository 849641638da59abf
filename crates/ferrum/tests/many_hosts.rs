//! The production layout across hosts, simulated with network namespaces on one machine
//! (`hosts_support`): Postgres and an S3-compatible server (s3s-fs) on a database host, two
//! `ferrum serve` replicas on two API hosts, two `ferrum runner`s on two runner hosts, each
//! runner given both replicas' URLs. The runners drive the one Docker engine over its socket
//! (not network-namespaced), so they open their API door in the engine's namespace
//! (`--engine-netns`) and forward from their own; tasks reach the API through it.
//!
//! Tasks (sh and Python workers returning results, a task queueing a task through the door),
//! webhooks (sent to one replica, deduplicated across both) and a schedule give the results
//! they give on one host. Then, while tasks are queued and running and the schedule fires,
//! one API host dies (its process SIGKILLed, its link down): every task completes, each
//! exactly once, every schedule slot makes one task, and both runners carry on through the
//! other replica, doors included.

mod hosts_support;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::{Duration, Instant};

use chrono::{SubsecRound, Utc};
use hosts_support::{engine_netns, start_postgres, start_s3, wait_port, Lan, S3_KEY, S3_SECRET};
use serde_json::{json, Value};

const ADMIN: &str = "many-hosts-admin";
const RUNNER: &str = "many-hosts-runner";
const WAIT: Duration = Duration::from_secs(240);
const CLUSTERS: [&str; 2] = ["default", "b"];

const ECHO: &str = r#"cat "$PAYLOAD_FILE" > "$RESULT_FILE"; echo "echo $(cat "$PAYLOAD_FILE")""#;
const SLOW: &str = r#"sleep 1; cat "$PAYLOAD_FILE" > "$RESULT_FILE""#;
const DOUBLE: &str = r#"import json, os
n = json.load(open(os.environ["PAYLOAD_FILE"]))["n"]
json.dump({"double": 2 * n}, open(os.environ["RESULT_FILE"], "w"))
print("doubled", n)
"#;
/// Queues a child task through the runner's door with the task's own token; its result
/// says which door (port) it used and what the API answered.
const DOOR: &str = r#"set -e
cluster=$(cat "$PAYLOAD_FILE")
answer=$(curl -sf -X POST -H "Authorization: OAuth $IRON_TOKEN" \
  -H 'Content-Type: application/json' \
  -d "{\"tasks\": [{\"code_name\": \"echo\", \"payload\": \"\\\"from a task\\\"\", \"cluster\": \"$cluster\"}]}" \
  "$IRON_PROTOCOL://$IRON_HOST:$IRON_PORT/2/projects/$IRON_PROJECT_ID/tasks")
printf '{"port": %s, "queued": %s}' "$IRON_PORT" "$answer" > "$RESULT_FILE""#;

/// An admin's HTTP client of one API replica.
#[derive(Clone)]
struct Api {
    base: String,
    project: String,
    http: reqwest::Client,
}

impl Api {
    fn new(base: &str) -> Api {
        Api {
            base: base.to_owned(),
            project: String::new(),
            http: reqwest::Client::new(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path.replace("{pid}", &self.project))
    }

    async fn answer(&self, req: reqwest::RequestBuilder) -> reqwest::Response {
        let r = req
            .header("Authorization", format!("OAuth {ADMIN}"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{} answers: {e}", self.base));
        assert!(
            r.status().is_success(),
            "HTTP {} from {}",
            r.status(),
            self.base
        );
        r
    }

    async fn get(&self, path: &str) -> Value {
        let r = self.answer(self.http.get(self.url(path))).await;
        r.json().await.expect("JSON")
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        let r = self.http.post(self.url(path)).json(&body);
        self.answer(r).await.json().await.expect("JSON")
    }

    async fn upload(&self, name: &str, runtime: &str, file: &str, code: &str) {
        let data = json!({"name": name, "runtime": runtime, "file_name": file});
        let zip = zip_of(file, code);
        let form = reqwest::multipart::Form::new()
            .text("data", data.to_string())
            .part(
                "file",
                reqwest::multipart::Part::bytes(zip).file_name("code.zip"),
            );
        let r = self
            .http
            .post(self.url("/2/projects/{pid}/codes"))
            .multipart(form);
        self.answer(r).await;
    }

    async fn queue(&self, code: &str, payload: &str, cluster: &str) -> String {
        let task = json!({"code_name": code, "payload": payload, "cluster": cluster});
        let r = self
            .post("/2/projects/{pid}/tasks", json!({"tasks": [task]}))
            .await;
        r["tasks"][0]["id"].as_str().expect("task id").to_owned()
    }

    async fn task(&self, id: &str) -> Value {
        self.get(&format!("/2/projects/{{pid}}/tasks/{id}")).await
    }

    async fn result(&self, id: &str) -> Value {
        self.get(&format!("/2/projects/{{pid}}/tasks/{id}/result"))
            .await
    }

    /// Waits until every task of `ids` has ended; each must have completed.
    async fn wait_complete(&self, lan: &Lan, ids: impl IntoIterator<Item = &String>) {
        for id in ids {
            let t = wait_for(lan, &format!("task {id} ends"), || async move {
                let t = self.task(id).await;
                let s = t["status"].as_str().unwrap_or_default().to_owned();
                (!matches!(s.as_str(), "queued" | "preparing" | "running")).then_some(t)
            })
            .await;
            assert_eq!(t["status"], "complete", "task {id}: {t}");
        }
    }

    /// Every task of the project, by id.
    async fn all_tasks(&self) -> BTreeMap<String, Value> {
        let mut all = BTreeMap::new();
        let mut cursor = String::new();
        loop {
            let page = self
                .get(&format!("/2/projects/{{pid}}/tasks?per_page=100{cursor}"))
                .await;
            for t in page["tasks"].as_array().expect("tasks") {
                all.insert(t["id"].as_str().expect("id").to_owned(), t.clone());
            }
            match page["next_cursor"].as_str() {
                Some(next) => cursor = format!("&cursor={next}"),
                None => return all,
            }
        }
    }
}

fn zip_of(name: &str, data: &str) -> Vec<u8> {
    use std::io::Write;
    let mut buf = std::io::Cursor::new(Vec::new());
    let mut zip = zip::ZipWriter::new(&mut buf);
    zip.start_file(name, zip::write::SimpleFileOptions::default())
        .expect("zip entry");
    zip.write_all(data.as_bytes()).expect("zip data");
    zip.finish().expect("zip");
    buf.into_inner()
}

/// Polls `probe` until it answers something; fails after [`WAIT`] naming `what`, with where
/// the hosts' logs are.
async fn wait_for<T, F, Fut>(lan: &Lan, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "waited {WAIT:?} for: {what}; logs in {}",
            lan.dir.display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The webhook URL of `code` (made on `api`) on `other`'s address: a third party may post to
/// any replica.
async fn webhook(api: &Api, code: &str, body: Value) -> String {
    let codes = api.get("/2/projects/{pid}/codes").await;
    let code_id = codes["codes"]
        .as_array()
        .expect("codes")
        .iter()
        .find(|c| c["name"] == code)
        .expect("the code")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let r = api
        .post(
            &format!("/2/projects/{{pid}}/codes/{code_id}/webhooks"),
            body,
        )
        .await;
    let url = r["url"].as_str().expect("a webhook url");
    url[url.find("/webhooks/").expect("a webhook path")..].to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_production_layout_across_hosts_loses_nothing_when_an_api_host_dies() {
    let mut lan = Lan::new();
    let db = lan.host("db", 10);
    let api_hosts = [lan.host("api1", 21), lan.host("api2", 22)];
    let runner_hosts = [lan.host("run1", 31), lan.host("run2", 32)];
    let database_url = start_postgres(&mut lan, &db).await;
    let blob_url = start_s3(&mut lan, &db).await;

    // Two API replicas on one database and one bucket.
    let urls: Vec<String> = api_hosts
        .iter()
        .map(|h| format!("http://{}:8080", h.ip))
        .collect();
    for (i, host) in api_hosts.iter().enumerate() {
        let mut serve = Command::new(env!("CARGO_BIN_EXE_ferrum"));
        serve
            .args(["serve", "--listen", &format!("{}:8080", host.ip)])
            .args(["--blob-url", &blob_url])
            // A lease answer lost with its replica comes back within this.
            .args(["--lease-secs", "10"])
            .args(["--min-schedule-interval", "1"])
            .env("DATABASE_URL", &database_url)
            .env("FERRUM_ADMIN_TOKEN", ADMIN)
            .env("FERRUM_RUNNER_TOKEN", RUNNER)
            .env("AWS_ACCESS_KEY_ID", S3_KEY)
            .env("AWS_SECRET_ACCESS_KEY", S3_SECRET);
        lan.spawn(host, &format!("api{}", i + 1), serve, false);
    }
    for (i, host) in api_hosts.iter().enumerate() {
        wait_port(&lan, &format!("api{}", i + 1), &host.ip, 8080).await;
    }
    let mut a = Api::new(&urls[0]);
    a.project = a.post("/2/projects", json!({"name": "hosts"})).await["id"]
        .as_str()
        .expect("project id")
        .to_owned();
    let b = Api {
        base: urls[1].clone(),
        ..a.clone()
    };
    let (a, b) = (&a, &b);

    // Two runner hosts, one per cluster, each told both replicas.
    let b_token = a.post("/2/runner_tokens", json!({"cluster": "b"})).await["token"]
        .as_str()
        .expect("a runner token")
        .to_owned();
    for (i, (host, token)) in runner_hosts
        .iter()
        .zip([RUNNER, b_token.as_str()])
        .enumerate()
    {
        let mut runner = Command::new(env!("CARGO_BIN_EXE_ferrum"));
        runner
            .args(["runner", "--api", &urls.join(","), "--token", token])
            .args(["--concurrency", "2"])
            .args([
                "--host-id",
                &format!("many-hosts-{}-{i}", std::process::id()),
            ])
            .arg("--work-dir")
            .arg(lan.dir.join(&host.name))
            .args(["--engine-netns", &engine_netns()])
            .args(["--drain-timeout", "1"]);
        lan.spawn(host, &host.name.clone(), runner, true);
    }
    wait_for(&lan, "both runners registered", || async move {
        let r = a.get("/2/runners").await;
        (r["runners"].as_array().map(Vec::len) == Some(2)).then_some(())
    })
    .await;

    a.upload("echo", "sh", "echo.sh", ECHO).await;
    a.upload("slow", "sh", "slow.sh", SLOW).await;
    a.upload("door", "sh", "door.sh", DOOR).await;
    a.upload("double", "python", "double.py", DOUBLE).await;

    // Tasks on both runner hosts: results as on one host.
    let mut known = BTreeSet::new();
    let mut echoes = Vec::new();
    let mut doubles = Vec::new();
    let mut doors = Vec::new();
    for cluster in CLUSTERS {
        for i in 0..3 {
            let payload = json!({"i": i, "cluster": cluster});
            let id = a.queue("echo", &payload.to_string(), cluster).await;
            echoes.push((id, payload));
        }
        doubles.push(a.queue("double", r#"{"n": 21}"#, cluster).await);
        doors.push(a.queue("door", cluster, cluster).await);
    }
    let ids: Vec<String> = echoes.iter().map(|(id, _)| id.clone()).collect();
    a.wait_complete(&lan, ids.iter().chain(&doubles).chain(&doors))
        .await;
    for (id, payload) in &echoes {
        assert_eq!(&a.result(id).await, payload);
    }
    for id in &doubles {
        assert_eq!(a.result(id).await, json!({"double": 42}));
    }
    known.extend(ids.into_iter().chain(doubles).chain(doors.clone()));
    let mut ports = BTreeSet::new();
    for door in &doors {
        let result = a.result(door).await;
        ports.insert(result["port"].to_string());
        let child = result["queued"]["tasks"][0]["id"]
            .as_str()
            .expect("the child's id")
            .to_owned();
        b.wait_complete(&lan, [&child]).await;
        assert_eq!(b.task(&child).await["parent_id"], door.as_str());
        assert_eq!(b.result(&child).await, "from a task");
        known.insert(child);
    }
    assert_eq!(ports.len(), 2, "each runner host has its own door");

    // Webhooks: made on one replica, posted to the other; retries of one delivery to either
    // replica make one task.
    let http = reqwest::Client::new();
    let sync = webhook(a, "echo", json!({"sync_timeout": 60})).await;
    let r = http
        .post(format!("{}{sync}", b.base))
        .body(r#"{"hook": 1}"#)
        .send()
        .await
        .expect("a webhook answer");
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-ferrum-task-status"], "complete");
    known.insert(r.headers()["x-ferrum-task-id"].to_str().unwrap().to_owned());
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"hook": 1}));
    let plain = webhook(a, "echo", json!({})).await;
    let mut delivered = BTreeSet::new();
    for api in [a, b] {
        let r = http
            .post(format!("{}{plain}", api.base))
            .header("Idempotency-Key", "delivery-1")
            .body("once")
            .send()
            .await
            .expect("a webhook answer");
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        delivered.insert(v["id"].as_str().expect("task id").to_owned());
    }
    assert_eq!(
        delivered.len(),
        1,
        "one task for one delivery: {delivered:?}"
    );
    b.wait_complete(&lan, &delivered).await;
    known.extend(delivered);

    // A schedule firing every second, and a backlog on both runner hosts.
    let start = Utc::now().trunc_subsecs(0) + chrono::Duration::seconds(2);
    let slots = 16;
    let schedule = json!({"code_name": "echo", "payload": "\"beat\"", "cron": "* * * * * *",
        "misfire": "catch_up", "start_at": start.to_rfc3339(),
        "end_at": (start + chrono::Duration::seconds(slots - 1)).to_rfc3339()});
    let r = a
        .post(
            "/2/projects/{pid}/schedules",
            json!({"schedules": [schedule]}),
        )
        .await;
    let schedule_id = r["schedules"][0]["id"].as_str().expect("id").to_owned();
    let mut slow = Vec::new();
    for cluster in CLUSTERS {
        // Two slots a cluster, a second or more a task: ten seconds of backlog at least.
        for i in 0..20 {
            slow.push((
                a.queue("slow", &format!("\"{cluster}-{i}\""), cluster)
                    .await,
                cluster,
            ));
        }
    }

    // Kill API host 1 (every runner's first replica) while tasks of both clusters run and
    // wait, and the schedule has fired but not finished.
    let (schedule_ref, slow_ref) = (&schedule_id, &slow);
    let busy_and_firing = || async move {
        let s = b
            .get(&format!("/2/projects/{{pid}}/schedules/{schedule_ref}"))
            .await;
        let mut states = BTreeSet::new();
        for (id, cluster) in slow_ref {
            let status = b.task(id).await["status"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            states.insert((*cluster, status));
        }
        let busy = CLUSTERS.iter().all(|c| {
            states.contains(&(*c, "running".to_owned()))
                && states.contains(&(*c, "queued".to_owned()))
        });
        let firing = s["run_count"].as_i64().unwrap_or(0) >= 1 && s["status"] == "scheduled";
        (busy && firing).then_some(())
    };
    let what = "tasks running and queued in both clusters, the schedule firing";
    wait_for(&lan, what, busy_and_firing).await;
    lan.kill9("api1");
    lan.unplug(&api_hosts[0]);
    let killed_at = Utc::now();

    // More work through the surviving replica, doors included.
    for cluster in CLUSTERS {
        for i in 20..24 {
            slow.push((
                b.queue("slow", &format!("\"{cluster}-{i}\""), cluster)
                    .await,
                cluster,
            ));
        }
    }
    let mut late_doors = Vec::new();
    for cluster in CLUSTERS {
        late_doors.push(b.queue("door", cluster, cluster).await);
    }
    let slow_ids: Vec<String> = slow.iter().map(|(id, _)| id.clone()).collect();
    b.wait_complete(&lan, slow_ids.iter().chain(&late_doors))
        .await;
    for (id, _) in &slow {
        let payload = b.task(id).await["payload"]
            .as_str()
            .expect("payload")
            .to_owned();
        assert_eq!(b.result(id).await.to_string(), payload, "task {id}");
    }
    known.extend(slow_ids);
    for door in &late_doors {
        let result = b.result(door).await;
        let child = result["queued"]["tasks"][0]["id"]
            .as_str()
            .expect("the child's id")
            .to_owned();
        b.wait_complete(&lan, [&child]).await;
        known.insert(child);
    }
    known.extend(late_doors);

    // Every slot of the schedule made exactly one task, across the replica that died.
    let schedule_ref = &schedule_id;
    let s = wait_for(&lan, "the schedule ends", || async move {
        let s = b
            .get(&format!("/2/projects/{{pid}}/schedules/{schedule_ref}"))
            .await;
        (s["status"] == "complete").then_some(s)
    })
    .await;
    assert_eq!(s["run_count"], slots);
    let fired = b
        .get(&format!(
            "/2/projects/{{pid}}/schedules/{schedule_id}/tasks?per_page=100"
        ))
        .await;
    let fired: Vec<String> = fired["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .map(|t| t["id"].as_str().expect("id").to_owned())
        .collect();
    assert_eq!(fired.len() as i64, slots, "one task per slot, none twice");
    b.wait_complete(&lan, &fired).await;
    known.extend(fired);

    // Nothing lost, nothing made twice: the project holds exactly the tasks accounted for,
    // every one complete.
    let all = b.all_tasks().await;
    let listed: BTreeSet<String> = all.keys().cloned().collect();
    assert_eq!(
        listed, known,
        "the project's tasks are exactly those queued"
    );
    for (id, t) in &all {
        assert_eq!(t["status"], "complete", "task {id}");
    }

    // Both runners are alive and heard from since, through the replica left.
    wait_for(
        &lan,
        "both runners heartbeat after the API host died",
        || async move {
            let r = b.get("/2/runners").await;
            let runners = r["runners"].as_array().cloned().unwrap_or_default();
            let fresh = runners.iter().filter(|r| {
                let seen = r["last_seen_at"].as_str().and_then(|t| t.parse().ok());
                r["status"] == "active"
                    && seen.is_some_and(|t: chrono::DateTime<Utc>| t > killed_at)
            });
            (fresh.count() == 2).then_some(())
        },
    )
    .await;
}
