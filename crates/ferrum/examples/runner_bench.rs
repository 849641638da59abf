//! Runner benchmark: Ferrum's queue→user-code-running latency and no-op task throughput
//! through API + runner + Docker, with the cold executor and with the pooled one (pre-started
//! containers), beside the raw floor measured in the same run through the Docker API
//! (create+start of the same image; the same number of containers at the same concurrency).
//! The two runners serve two clusters of one `ferrum serve`, so latency samples interleave
//! raw, cold and pooled. Run with `scripts/bench-runner`, which builds everything and starts
//! Postgres and Docker.
//!
//! User code marks "running" by printing the wall clock in nanoseconds (a static C program,
//! `scripts/bench/now.c`, passed as `BENCH_NOW`), so both paths are timed by the same clock
//! from the same first instruction of user code.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bollard::container::{
    Config, CreateContainerOptions, LogsOptions, RemoveContainerOptions, StartContainerOptions,
    WaitContainerOptions,
};
use bollard::models::HostConfig;
use bollard::Docker;
use futures_util::StreamExt;
use serde_json::{json, Value};

const IMAGE: &str = ferrum_model::stacks::IMAGE_SH;
const ADMIN: &str = "bench-admin";
const RUNNER: &str = "bench-runner";
const API: &str = "http://127.0.0.1:18999";
/// The cold runner's cluster (that of the `FERRUM_RUNNER_TOKEN`), and the pooled runner's.
const COLD: &str = "default";
const POOLED: &str = "pooled";

type Error = Box<dyn std::error::Error + Send + Sync>;

fn now_ns() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or_default()
}

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The value at quantile `q` (0..=1) of the samples.
fn quantile(mut v: Vec<f64>, q: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let i = ((v.len() - 1) as f64 * q).round() as usize;
    v[i]
}

/// Stops the spawned server and runners when the benchmark ends, however it ends: runners
/// first, with SIGTERM, so a pooled one removes its parked containers and their disks on the
/// way out (a killed runner leaves them to its next start); whatever is still up a minute
/// later is killed.
struct Processes(Vec<Child>);

impl Drop for Processes {
    fn drop(&mut self) {
        for c in self.0.iter_mut().rev() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(60);
            while Instant::now() < deadline && matches!(c.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let samples = env_num("BENCH_SAMPLES", 30);
    let tasks = env_num("BENCH_TASKS", 200);
    let concurrency = env_num("BENCH_CONCURRENCY", 4);
    let now_bin = PathBuf::from(std::env::var("BENCH_NOW")?);
    let db = std::env::var("BENCH_DATABASE_URL")?;
    let work = std::env::temp_dir().join(format!("ferrum-runner-bench-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let docker = Docker::connect_with_local_defaults()?
        .negotiate_version()
        .await?;
    let mount = now_bin
        .parent()
        .ok_or("BENCH_NOW has no directory")?
        .to_owned();
    let program = now_bin
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or("bad BENCH_NOW")?
        .to_owned();

    let mut procs = start_serve(&work, &db)?;
    let client = Client {
        http: reqwest::Client::new(),
    };
    client.wait_up().await?;
    let pooled_token = client
        .post("/2/runner_tokens", json!({"cluster": POOLED}))
        .await?["token"]
        .as_str()
        .ok_or("no runner token")?
        .to_owned();
    let runner = |token: &str, executor: &str| start_runner(&work, token, executor, concurrency);
    procs.0.push(runner(RUNNER, "cold")?);
    procs.0.push(runner(&pooled_token, "pooled")?);
    let project = client.post("/2/projects", json!({"name": "bench"})).await?["id"]
        .as_str()
        .ok_or("no project id")?
        .to_owned();
    client
        .upload(&project, &program, &std::fs::read(&now_bin)?)
        .await?;
    // Warm up: each runner fetches and caches the zip; every path touches the image once.
    for cluster in [COLD, POOLED] {
        let warm = client.queue(&project, cluster, 1).await?;
        client.wait_complete(&project, &warm).await?;
    }
    raw_run(&docker, "bench-raw-warm", &mount, &program).await?;

    let batch_items = env_num("BENCH_BATCH_ITEMS", 0);
    if batch_items > 0 {
        let rounds = env_num("BENCH_BATCH_ROUNDS", 4).max(1);
        let (batch, tasks) = client.batch_vs_tasks(&project, batch_items, rounds).await?;
        drop(procs);
        println!(
            "# Ferrum batch benchmark: {batch_items} no-op items on the pooled runner at \
             concurrency {concurrency}, in {rounds} alternating rounds"
        );
        println!("one batch of the items, queued to batch complete: {batch:.1} s");
        println!("the items as independent tasks, queued to all complete: {tasks:.1} s");
        println!("batch / independent tasks: {:.2}", batch / tasks);
        let _ = std::fs::remove_dir_all(&work);
        return Ok(());
    }

    let (mut cold_lat, mut pooled_lat, mut raw_lat) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..samples {
        cold_lat.push(client.latency(&project, COLD).await?);
        pooled_lat.push(client.latency(&project, POOLED).await?);
        let t0 = now_ns();
        let out = raw_run(&docker, &format!("bench-raw-{i}"), &mount, &program).await?;
        raw_lat.push((out.trim().parse::<i128>()? - t0) as f64 / 1e6);
    }

    let cold_rate = client.throughput(&project, COLD, tasks).await?;
    let pooled_rate = client.throughput(&project, POOLED, tasks).await?;
    let raw_rate = raw_throughput(&docker, &mount, &program, tasks, concurrency).await?;
    drop(procs);

    println!(
        "# Ferrum runner benchmark: {samples} latency samples, {tasks} no-op tasks at \
         concurrency {concurrency}"
    );
    println!(
        "{:<34} {:>8} {:>8} {:>8} {:>6} {:>6}",
        "measure", "cold", "pooled", "raw", "cold/", "pooled/"
    );
    for (what, q) in [("latency median (ms)", 0.5), ("latency p90 (ms)", 0.9)] {
        let (c, p, r) = (
            quantile(cold_lat.clone(), q),
            quantile(pooled_lat.clone(), q),
            quantile(raw_lat.clone(), q),
        );
        println!(
            "{:<34} {c:>8.1} {p:>8.1} {r:>8.1} {:>6.2} {:>6.2}",
            format!("queue→running {what}"),
            c / r,
            p / r
        );
    }
    println!(
        "{:<34} {cold_rate:>8.1} {pooled_rate:>8.1} {raw_rate:>8.1} {:>6.2} {:>6.2}",
        "no-op throughput (tasks/s)",
        cold_rate / raw_rate,
        pooled_rate / raw_rate
    );
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}

/// The `ferrum` binary of the same target directory.
fn ferrum_bin() -> Result<PathBuf, Error> {
    Ok(std::env::current_exe()?
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("ferrum"))
        .ok_or("no target dir")?)
}

/// Starts `ferrum serve`.
fn start_serve(work: &Path, db: &str) -> Result<Processes, Error> {
    let mut procs = Processes(Vec::new());
    procs.0.push(
        Command::new(ferrum_bin()?)
            .args(["serve", "--listen", API.trim_start_matches("http://")])
            .args(["--blob-url", &format!("file://{}/blobs", work.display())])
            .env("DATABASE_URL", db)
            .env("FERRUM_ADMIN_TOKEN", ADMIN)
            .env("FERRUM_RUNNER_TOKEN", RUNNER)
            .env("FERRUM_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()?,
    );
    Ok(procs)
}

/// Starts a `ferrum runner` with the given token and `--executor`; each has its own work dir
/// and host id.
fn start_runner(
    work: &Path,
    token: &str,
    executor: &str,
    concurrency: usize,
) -> Result<Child, Error> {
    Ok(Command::new(ferrum_bin()?)
        .args([
            "runner",
            "--api",
            API,
            "--token",
            token,
            "--executor",
            executor,
        ])
        .args(["--host-id", &format!("bench-{executor}")])
        .args(["--concurrency", &concurrency.to_string()])
        .args([
            "--work-dir",
            &format!("{}/runner-{executor}", work.display()),
        ])
        .env("FERRUM_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()?)
}

/// `tasks` raw containers, `concurrency` at a time; containers per second.
async fn raw_throughput(
    docker: &Docker,
    mount: &Path,
    program: &str,
    tasks: usize,
    concurrency: usize,
) -> Result<f64, Error> {
    let start = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|w| {
            let (docker, mount, program) = (docker.clone(), mount.to_owned(), program.to_owned());
            let share = tasks / concurrency + usize::from(w < tasks % concurrency);
            tokio::spawn(async move {
                for i in 0..share {
                    raw_run(&docker, &format!("bench-raw-t{w}-{i}"), &mount, &program).await?;
                }
                Ok::<_, Error>(())
            })
        })
        .collect();
    for w in workers {
        w.await??;
    }
    Ok(tasks as f64 / start.elapsed().as_secs_f64())
}

/// The floor: create+start of the same image through the Docker API, running the same
/// program from a bind mount, then wait, read its output and remove it.
async fn raw_run(
    docker: &Docker,
    name: &str,
    mount: &Path,
    program: &str,
) -> Result<String, Error> {
    let config = Config {
        image: Some(IMAGE.to_owned()),
        cmd: Some(vec![format!("/mnt/task/{program}")]),
        user: Some("1000:1000".to_owned()),
        host_config: Some(HostConfig {
            binds: Some(vec![format!("{}:/mnt/task:ro", mount.display())]),
            ..Default::default()
        }),
        ..Default::default()
    };
    // The process id keeps names apart from leftovers of an interrupted earlier run.
    let name = &format!("{name}-{}", std::process::id());
    let options = CreateContainerOptions {
        name: name.as_str(),
        platform: None,
    };
    docker.create_container(Some(options), config).await?;
    docker
        .start_container(name, None::<StartContainerOptions<String>>)
        .await?;
    let mut wait = docker.wait_container(name, None::<WaitContainerOptions<String>>);
    while wait.next().await.is_some() {}
    let options = LogsOptions::<String> {
        stdout: true,
        ..Default::default()
    };
    let mut logs = docker.logs(name, Some(options));
    let mut out = String::new();
    while let Some(chunk) = logs.next().await {
        out.push_str(&chunk?.to_string());
    }
    let remove = RemoveContainerOptions {
        force: true,
        ..Default::default()
    };
    docker.remove_container(name, Some(remove)).await?;
    Ok(out)
}

/// The tenant side of the benchmark, over HTTP.
struct Client {
    http: reqwest::Client,
}

impl Client {
    async fn wait_up(&self) -> Result<(), Error> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self
            .http
            .get(format!("{API}/openapi.json"))
            .send()
            .await
            .is_err()
        {
            if Instant::now() > deadline {
                return Err("ferrum serve did not start".into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }

    async fn post(&self, path: &str, body: Value) -> Result<Value, Error> {
        let r = self
            .http
            .post(format!("{API}{path}"))
            .header("Authorization", format!("OAuth {ADMIN}"))
            .body(body.to_string())
            .send()
            .await?
            .error_for_status()?;
        Ok(r.json().await?)
    }

    async fn text(&self, path: &str) -> Result<String, Error> {
        let r = self
            .http
            .get(format!("{API}{path}"))
            .header("Authorization", format!("OAuth {ADMIN}"))
            .send()
            .await?
            .error_for_status()?;
        Ok(r.text().await?)
    }

    async fn upload(&self, project: &str, name: &str, program: &[u8]) -> Result<(), Error> {
        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let options = zip::write::SimpleFileOptions::default().unix_permissions(0o755);
        zip.start_file(name, options)?;
        std::io::Write::write_all(&mut zip, program)?;
        let zip = zip.finish()?.into_inner();
        let data = json!({"name": "now", "runtime": "binary", "file_name": name});
        let form = reqwest::multipart::Form::new()
            .text("data", data.to_string())
            .part(
                "file",
                reqwest::multipart::Part::bytes(zip).file_name("now.zip"),
            );
        self.http
            .post(format!("{API}/2/projects/{project}/codes"))
            .header("Authorization", format!("OAuth {ADMIN}"))
            .multipart(form)
            .send()
            .await?
            .error_for_status()?;
        Ok(())
    }

    /// From just before queueing one task to the first instruction of its user code, in ms.
    async fn latency(&self, project: &str, cluster: &str) -> Result<f64, Error> {
        let t0 = now_ns();
        let ids = self.queue(project, cluster, 1).await?;
        self.wait_complete(project, &ids).await?;
        let log = self
            .text(&format!("/2/projects/{project}/tasks/{}/log", ids[0]))
            .await?;
        Ok((log.trim().parse::<i128>()? - t0) as f64 / 1e6)
    }

    /// `n` tasks queued at once until all completed; tasks per second.
    async fn throughput(&self, project: &str, cluster: &str, n: usize) -> Result<f64, Error> {
        let start = Instant::now();
        let ids = self.queue(project, cluster, n).await?;
        self.wait_complete(project, &ids).await?;
        Ok(n as f64 / start.elapsed().as_secs_f64())
    }

    /// Issue 17's end-to-end comparison: `n` no-op items as batches against `n` independent
    /// tasks queued in one call, both on the pooled runner, in `rounds` that alternate so any
    /// drift in the machine's load falls on both alike. Returns the seconds each side took,
    /// from the call that queues them to the moment the API reports them all done.
    async fn batch_vs_tasks(
        &self,
        project: &str,
        n: usize,
        rounds: usize,
    ) -> Result<(f64, f64), Error> {
        let code = self.code_id(project, "now").await?;
        let (mut batch_secs, mut task_secs) = (0.0, 0.0);
        for round in 0..rounds {
            let share = n / rounds + usize::from(round < n % rounds);
            let start = Instant::now();
            let body = json!({"code_name": "now", "cluster": POOLED, "payloads": vec![""; share]});
            let batch = self
                .post(&format!("/2/projects/{project}/batches"), body)
                .await?;
            let path = format!(
                "/2/projects/{project}/batches/{}",
                batch["id"].as_str().unwrap_or_default()
            );
            loop {
                let b: Value = serde_json::from_str(&self.text(&path).await?)?;
                match b["status"].as_str() {
                    Some("complete") => break,
                    Some("running" | "reducing") => {
                        tokio::time::sleep(Duration::from_millis(20)).await
                    }
                    other => return Err(format!("batch ended {other:?}: {b}").into()),
                }
            }
            batch_secs += start.elapsed().as_secs_f64();

            let stats = format!("/2/projects/{project}/codes/{code}/stats");
            let done_before = self.completed(&stats).await?;
            let start = Instant::now();
            self.queue(project, POOLED, share).await?;
            while self.completed(&stats).await? < done_before + share as i64 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            task_secs += start.elapsed().as_secs_f64();
        }
        Ok((batch_secs, task_secs))
    }

    /// The id of the project's code called `name`.
    async fn code_id(&self, project: &str, name: &str) -> Result<String, Error> {
        let codes: Value =
            serde_json::from_str(&self.text(&format!("/2/projects/{project}/codes")).await?)?;
        codes["codes"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["name"] == name))
            .and_then(|c| c["id"].as_str())
            .map(str::to_owned)
            .ok_or_else(|| format!("no code {name}").into())
    }

    /// How many of a code's tasks completed in the last 24 h, from its stats route; any that
    /// ended otherwise stops the benchmark.
    async fn completed(&self, stats: &str) -> Result<i64, Error> {
        let counts: Value = serde_json::from_str(&self.text(stats).await?)?;
        for failed in ["error", "timeout", "killed", "cancelled"] {
            if counts[failed].as_i64().unwrap_or(0) > 0 {
                let project = stats.split('/').nth(3).unwrap_or_default();
                let list = format!("/2/projects/{project}/tasks?code_name=now&{failed}=1");
                let tasks = self.text(&list).await?;
                return Err(format!("a task ended {failed}: {counts}; {tasks}").into());
            }
        }
        Ok(counts["complete"].as_i64().unwrap_or(0))
    }

    async fn queue(&self, project: &str, cluster: &str, n: usize) -> Result<Vec<String>, Error> {
        let task = json!({"code_name": "now", "cluster": cluster});
        let tasks: Vec<Value> = (0..n).map(|_| task.clone()).collect();
        let path = format!("/2/projects/{project}/tasks");
        let r = self.post(&path, json!({ "tasks": tasks })).await?;
        Ok(r["tasks"]
            .as_array()
            .ok_or("no tasks")?
            .iter()
            .filter_map(|t| t["id"].as_str().map(str::to_owned))
            .collect())
    }

    /// Polls until every task completed; any other end stops the benchmark.
    async fn wait_complete(&self, project: &str, ids: &[String]) -> Result<(), Error> {
        for id in ids {
            loop {
                let body = self
                    .text(&format!("/2/projects/{project}/tasks/{id}"))
                    .await?;
                let t: Value = serde_json::from_str(&body)?;
                match t["status"].as_str() {
                    Some("complete") => break,
                    Some("queued" | "preparing" | "running") => {
                        tokio::time::sleep(Duration::from_millis(5)).await
                    }
                    other => return Err(format!("task {id} ended {other:?}: {t}").into()),
                }
            }
        }
        Ok(())
    }
}
