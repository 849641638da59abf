//! End-to-end harness: a real `ferrum serve` on a fresh Postgres database, real `ferrum runner`
//! processes on the real Docker engine, driven over HTTP as a tenant would.
//!
//! Every process and container a test starts is killed and removed when its [`Ferrum`] drops,
//! including on panic.

#![allow(dead_code)]

use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub const ADMIN: &str = "e2e-admin-token";
pub const RUNNER: &str = "e2e-runner-token";

/// A running Ferrum: one API server and any number of runners.
pub struct Ferrum {
    pub api: String,
    pub project: String,
    pub db_url: String,
    pub dir: PathBuf,
    http: reqwest::Client,
    serve: Child,
    runners: Vec<Option<(Child, String)>>,
}

pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    l.local_addr().expect("bound").port()
}

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_ferrum")
}

impl Ferrum {
    /// Starts the API with `extra` arguments (e.g. `--lease-secs 3`) and creates a project.
    pub async fn start(extra: &[&str]) -> Ferrum {
        Self::start_with_blobs(None, &[], extra).await
    }

    /// [`Ferrum::start`] with another blob store than a local directory (`blob_url`, e.g. an
    /// `s3://` URL) and extra environment for `ferrum serve` (e.g. its S3 credentials).
    pub async fn start_with_blobs(
        blob_url: Option<&str>,
        env: &[(&str, &str)],
        extra: &[&str],
    ) -> Ferrum {
        let (_store, db_url) = ferrum_store::testing::fresh_store()
            .await
            .expect("a fresh database");
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("ferrum-e2e-{port}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let log = std::fs::File::create(dir.join("serve.log")).expect("log file");
        let blobs = match blob_url {
            Some(url) => url.to_owned(),
            None => format!("file://{}/blobs", dir.display()),
        };
        let serve = Command::new(bin())
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .args(["--blob-url", &blobs])
            .args(extra)
            .envs(env.iter().copied())
            .env("DATABASE_URL", &db_url)
            .env("FERRUM_ADMIN_TOKEN", ADMIN)
            .env("FERRUM_RUNNER_TOKEN", RUNNER)
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("ferrum serve starts");
        let api = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while http.get(format!("{api}/2/stacks")).send().await.is_err() {
            assert!(Instant::now() < deadline, "ferrum serve did not come up");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut f = Ferrum {
            api,
            project: String::new(),
            db_url,
            dir,
            http,
            serve,
            runners: Vec::new(),
        };
        let p = f.post("/2/projects", json!({"name": "e2e"})).await;
        f.project = p["id"].as_str().expect("project id").to_owned();
        f
    }

    /// Creates a runner token for `cluster` with `ferrum runner-token`.
    pub fn runner_token(&self, cluster: &str) -> String {
        let out = Command::new(bin())
            .args(["runner-token", "--cluster", cluster])
            .env("DATABASE_URL", &self.db_url)
            .output()
            .expect("ferrum runner-token runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .expect("utf-8")
            .trim()
            .to_owned()
    }

    /// Starts a runner; returns its index for [`Ferrum::signal_runner`].
    pub fn start_runner(&mut self, token: &str, concurrency: u32, extra: &[&str]) -> usize {
        let i = self.runners.len();
        let host_id = format!("e2e-{}-{i}", self.api.rsplit(':').next().unwrap_or("x"));
        let child = self.spawn_runner(token, concurrency, &host_id, i, extra);
        self.runners.push(Some((child, host_id)));
        i
    }

    /// Starts a new runner with the same host id and work dir as (dead) runner `i`, as an
    /// operator restarting a crashed runner would; returns the new index.
    pub fn restart_runner(&mut self, i: usize, token: &str, concurrency: u32) -> usize {
        let (mut old, host_id) = self.runners[i].take().expect("runner i exists");
        let _ = old.wait();
        let child = self.spawn_runner(token, concurrency, &host_id, i, &[]);
        self.runners.push(Some((child, host_id)));
        self.runners.len() - 1
    }

    fn spawn_runner(
        &self,
        token: &str,
        concurrency: u32,
        host_id: &str,
        work: usize,
        extra: &[&str],
    ) -> Child {
        let n = self.runners.len();
        let log = std::fs::File::create(self.dir.join(format!("runner-{n}.log"))).expect("log");
        Command::new(bin())
            .args(["runner", "--api", &self.api, "--token", token])
            .args(["--concurrency", &concurrency.to_string()])
            .args(["--host-id", host_id])
            .args(["--work-dir", &format!("{}/work-{work}", self.dir.display())])
            // Stopping at the end of a test waits a second for running tasks, not a minute.
            .args(["--drain-timeout", "1"])
            .args(extra)
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("ferrum runner starts")
    }

    /// Sends `signal` (e.g. "KILL", "TERM") to runner `i`.
    pub fn signal_runner(&mut self, i: usize, signal: &str) {
        if let Some((child, _)) = &self.runners[i] {
            let ok = Command::new("kill")
                .args([&format!("-{signal}"), &child.id().to_string()])
                .status()
                .expect("kill runs");
            assert!(ok.success());
        }
    }

    /// The containers of runner `i` that exist right now.
    pub fn containers_of(&self, i: usize) -> Vec<String> {
        let Some((_, host_id)) = &self.runners[i] else {
            return Vec::new();
        };
        containers_labelled(host_id)
    }

    pub async fn get(&self, path: &str) -> Value {
        let r = self.send(self.http.get(self.url(path))).await;
        r.json().await.expect("a JSON answer")
    }

    pub async fn post(&self, path: &str, body: Value) -> Value {
        let r = self
            .send(self.http.post(self.url(path)).body(body.to_string()))
            .await;
        r.json().await.expect("a JSON answer")
    }

    pub async fn text(&self, path: &str) -> String {
        let r = self.send(self.http.get(self.url(path))).await;
        r.text().await.expect("a text answer")
    }

    fn url(&self, path: &str) -> String {
        let path = path.replace("{pid}", &self.project);
        format!("{}{path}", self.api)
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> reqwest::Response {
        let r = req
            .header("Authorization", format!("OAuth {ADMIN}"))
            .send()
            .await
            .expect("the API answers");
        assert!(r.status().is_success(), "HTTP {}", r.status());
        r
    }

    /// Uploads a code whose files are `files` (name, contents), with `data` as the upload's
    /// JSON (`name`, `runtime`, `file_name`, options).
    pub async fn upload(&self, data: Value, files: &[(&str, &[u8])]) -> Value {
        let form = reqwest::multipart::Form::new()
            .text("data", data.to_string())
            .part(
                "file",
                reqwest::multipart::Part::bytes(zip_of(files)).file_name("code.zip"),
            );
        let r = self
            .send(
                self.http
                    .post(self.url("/2/projects/{pid}/codes"))
                    .multipart(form),
            )
            .await;
        r.json().await.expect("a JSON answer")
    }

    /// Uploads a one-file `sh` worker.
    pub async fn upload_sh(&self, name: &str, script: &str, options: Value) -> Value {
        let mut data = json!({"name": name, "runtime": "sh", "file_name": "worker.sh"});
        if let (Some(d), Some(o)) = (data.as_object_mut(), options.as_object()) {
            d.extend(o.clone());
        }
        self.upload(data, &[("worker.sh", script.as_bytes())]).await
    }

    /// Queues one task; returns its id.
    pub async fn queue(&self, task: Value) -> String {
        let r = self
            .post("/2/projects/{pid}/tasks", json!({"tasks": [task]}))
            .await;
        r["tasks"][0]["id"].as_str().expect("task id").to_owned()
    }

    pub async fn task(&self, id: &str) -> Value {
        self.get(&format!("/2/projects/{{pid}}/tasks/{id}")).await
    }

    pub async fn log(&self, id: &str) -> String {
        self.text(&format!("/2/projects/{{pid}}/tasks/{id}/log"))
            .await
    }

    /// Polls until the task has `status` (or any final status when `None`).
    pub async fn wait_for(&self, id: &str, status: Option<&str>, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let t = self.task(id).await;
            let s = t["status"].as_str().unwrap_or_default();
            let done = match status {
                Some(want) => s == want,
                None => !matches!(s, "queued" | "preparing" | "running"),
            };
            if done {
                return t;
            }
            assert!(
                Instant::now() < deadline,
                "task {id} still {s} after {within:?}; logs in {}",
                self.dir.display()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Ferrum {
    fn drop(&mut self) {
        let runners: Vec<_> = self.runners.drain(..).flatten().collect();
        // SIGTERM first: a runner drains, then removes its parked containers and their disks.
        for (child, _) in &runners {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
        }
        for (mut child, host_id) in runners {
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
            // What a runner killed earlier (or past the deadline) left behind.
            for c in labelled(&host_id, true) {
                let _ = Command::new("docker").args(["rm", "-f", &c]).output();
            }
        }
        // The killed runners' task disks (parked containers' included) are still mounted.
        let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let dir = self.dir.display().to_string();
        for point in info.lines().filter_map(|l| l.split(' ').nth(4)) {
            if point.starts_with(&dir) {
                let _ = Command::new("umount").args(["-l", point]).output();
            }
        }
        let _ = self.serve.kill();
        let _ = self.serve.wait();
    }
}

/// Names of the containers carrying `ferrum.runner=<host_id>` that run or ran a task, running
/// or not; those parked for tasks to come (`ferrum runner --pool`) are not a task's.
pub fn containers_labelled(host_id: &str) -> Vec<String> {
    labelled(host_id, false)
}

fn labelled(host_id: &str, with_parked: bool) -> Vec<String> {
    let out = Command::new("docker")
        .args(["ps", "-a", "--format", "{{.Names}}", "--filter"])
        .arg(format!("label=ferrum.runner={host_id}"))
        .output()
        .expect("docker ps runs");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter(|name| with_parked || !name.starts_with("ferrum-pool-"))
        .map(str::to_owned)
        .collect()
}

/// A zip of the given files.
pub fn zip_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut buf = std::io::Cursor::new(Vec::new());
    let mut zip = zip::ZipWriter::new(&mut buf);
    for (name, data) in files {
        zip.start_file(*name, zip::write::SimpleFileOptions::default())
            .expect("zip entry");
        zip.write_all(data).expect("zip data");
    }
    zip.finish().expect("zip finishes");
    buf.into_inner()
}

/// Another `ferrum serve` on the same database: one more API replica, with its own duties.
/// Killed when dropped.
pub struct Replica {
    pub api: String,
    child: Child,
}

impl Ferrum {
    /// Starts another API replica on this database and waits until it answers.
    pub async fn start_replica(&self) -> Replica {
        let port = free_port();
        let log = std::fs::File::create(self.dir.join(format!("serve-{port}.log"))).expect("log");
        let child = Command::new(bin())
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .args([
                "--blob-url",
                &format!("file://{}/blobs", self.dir.display()),
            ])
            .env("DATABASE_URL", &self.db_url)
            .env("FERRUM_ADMIN_TOKEN", ADMIN)
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("ferrum serve starts");
        let api = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while self
            .http
            .get(format!("{api}/2/stacks"))
            .send()
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "replica did not come up");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Replica { api, child }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
