//! Issue 19, end to end: a real Prometheus (Debian's `prometheus`) scrapes a running `ferrum
//! serve` (with the admin token, as `deploy/prometheus/prometheus.yml` shows) and a runner's
//! health listener, and PromQL over its HTTP API answers what the test made happen.

mod support;

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::{Ferrum, ADMIN, RUNNER};

const WAIT: Duration = Duration::from_secs(60);

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    l.local_addr().expect("bound").port()
}

/// A Prometheus server, killed when dropped.
struct Prometheus {
    url: String,
    child: Child,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    /// Starts Prometheus scraping the API (admin token) and the runner every second.
    fn start(dir: &std::path::Path, api: &str, runner_health: &str) -> Prometheus {
        let port = free_port();
        let api_host = api.trim_start_matches("http://");
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
             scrape_configs:\n\
             - job_name: ferrum-api\n  authorization:\n    credentials: {ADMIN}\n  \
               static_configs:\n  - targets: ['{api_host}']\n\
             - job_name: ferrum-runner\n  static_configs:\n  - targets: ['{runner_health}']\n"
        );
        let config_file = dir.join("prometheus.yml");
        std::fs::write(&config_file, config).expect("prometheus config");
        let log = std::fs::File::create(dir.join("prometheus.log")).expect("log");
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config_file.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("prometheus runs (scripts/test installs Debian's package)");
        Prometheus {
            url: format!("http://127.0.0.1:{port}"),
            child,
        }
    }

    /// The value of an instant PromQL query that answers one sample, if it does.
    async fn value(&self, http: &reqwest::Client, query: &str) -> Option<f64> {
        let r: Value = http
            .get(format!("{}/api/v1/query", self.url))
            .query(&[("query", query)])
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        r["data"]["result"][0]["value"][1].as_str()?.parse().ok()
    }

    /// Polls `query` until it answers `want`; fails with the last answer after [`WAIT`].
    async fn wait_for(&self, http: &reqwest::Client, query: &str, want: f64) {
        let deadline = Instant::now() + WAIT;
        loop {
            let got = self.value(http, query).await;
            if got == Some(want) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{query} = {got:?}, want {want}; see prometheus.log"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

#[tokio::test]
async fn prometheus_scrapes_queue_depth_and_completed_tasks() {
    let mut f = Ferrum::start(&[]).await;
    let health = format!("127.0.0.1:{}", free_port());
    f.start_runner(RUNNER, 2, &["--health-listen", &health]);
    f.upload_sh("quick", "echo done", json!({})).await;
    // Three tasks run to completion on the runner's cluster...
    let mut done = Vec::new();
    for _ in 0..3 {
        done.push(
            f.queue(json!({"code_name": "quick", "payload": "{}"}))
                .await,
        );
    }
    for id in &done {
        let t = f.wait_for(id, None, WAIT).await;
        assert_eq!(t["status"], "complete", "{t}");
    }
    // ...and five wait on a cluster no runner serves, two of them at priority 2.
    for p in [0, 0, 0, 2, 2] {
        f.queue(json!({"code_name": "quick", "payload": "{}", "cluster": "nobody", "priority": p}))
            .await;
    }

    let http = reqwest::Client::new();
    let prom = Prometheus::start(&f.dir, &f.api, &health);
    prom.wait_for(&http, r#"sum(ferrum_queue_depth{cluster="nobody"})"#, 5.0)
        .await;
    prom.wait_for(
        &http,
        r#"ferrum_queue_depth{cluster="nobody",priority="2"}"#,
        2.0,
    )
    .await;
    prom.wait_for(
        &http,
        r#"sum(ferrum_tasks_finished_total{status="complete"})"#,
        3.0,
    )
    .await;
    prom.wait_for(
        &http,
        r#"sum(ferrum_tasks_created_total{source="api"})"#,
        8.0,
    )
    .await;
    prom.wait_for(&http, "ferrum_task_run_duration_seconds_count", 3.0)
        .await;
    // The oldest waiting task has been waiting a while, and the runner is idle.
    let age = prom
        .value(
            &http,
            r#"max(ferrum_queue_oldest_age_seconds{cluster="nobody"})"#,
        )
        .await;
    assert!(age.is_some_and(|a| a > 0.0), "{age:?}");
    prom.wait_for(&http, r#"ferrum_runner_slots{state="available"}"#, 2.0)
        .await;
    prom.wait_for(&http, "ferrum_runner_leased_tasks_total", 3.0)
        .await;
    // Each task ran in a container of its own, parked or cold (which depends on how soon
    // the pool was full).
    prom.wait_for(&http, "sum(ferrum_runner_task_containers_total)", 3.0)
        .await;
    // HTTP requests are counted by route template, never by concrete path.
    prom.wait_for(
        &http,
        r#"sum(ferrum_http_requests_total{route="/2/projects/{project_id}/tasks",method="POST",status="200"})"#,
        8.0,
    )
    .await;
}

#[tokio::test]
async fn probes_answer_and_metrics_need_the_admin_token() {
    let mut f = Ferrum::start(&[]).await;
    let health = format!("127.0.0.1:{}", free_port());
    f.start_runner(RUNNER, 1, &["--health-listen", &health]);
    let http = reqwest::Client::new();
    for path in ["/healthz", "/readyz"] {
        let r = http.get(format!("{}{path}", f.api)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
    }
    let r = http.get(format!("{}/metrics", f.api)).send().await.unwrap();
    assert_eq!(r.status(), 401);
    // A tenant's token is refused too.
    let user = f.post("/2/users", json!({"email": "t@example.com"})).await;
    let tenant = user["token"].as_str().expect("a token");
    let r = http
        .get(format!("{}/metrics", f.api))
        .bearer_auth(tenant)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // The runner becomes ready once registered and leasing.
    let deadline = Instant::now() + WAIT;
    loop {
        let r = http.get(format!("http://{health}/readyz")).send().await;
        if r.as_ref().is_ok_and(|r| r.status() == 200) {
            break;
        }
        assert!(Instant::now() < deadline, "runner never ready: {r:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = http
        .get(format!("http://{health}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn readyz_is_503_while_the_object_store_is_unreachable() {
    let f = Ferrum::start(&[]).await;
    let ready = || async { reqwest::get(format!("{}/readyz", f.api)).await.unwrap() };
    assert_eq!(ready().await.status(), 200);
    // The blob directory becomes a plain file: every read of the store fails.
    let blobs = f.dir.join("blobs");
    let moved = f.dir.join("blobs.away");
    std::fs::rename(&blobs, &moved).unwrap();
    std::fs::write(&blobs, b"not a directory").unwrap();
    let r = ready().await;
    assert_eq!(r.status(), 503);
    let body: Value = r.json().await.unwrap();
    let msg = body["msg"].as_str().unwrap_or_default();
    assert!(msg.contains("object store"), "{msg}");
    let r = reqwest::get(format!("{}/healthz", f.api)).await.unwrap();
    assert_eq!(r.status(), 200, "the process still lives");
    std::fs::remove_file(&blobs).unwrap();
    std::fs::rename(&moved, &blobs).unwrap();
    assert_eq!(ready().await.status(), 200);
}
