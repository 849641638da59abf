//! `ferrum dev` end to end, driven only through the CLI, as the README's quickstart does:
//! start `ferrum dev` in a temporary directory, run the `ferrum configure …` line it prints,
//! upload a code, queue a task, follow its log to the end and see `complete`; then Ctrl-C.
//! Needs the Docker engine and the stack images (`ferrum stacks build`).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_ferrum")
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    l.local_addr().expect("bound").port()
}

/// A temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "ferrum-{tag}-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(dir.join("home")).expect("temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs the CLI with `dir/home` as HOME and `dir` as working directory, so the test's
/// configuration is its own (and no IRON_* variable of the caller leaks in).
fn cli_in(dir: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(bin());
    cmd.args(args)
        .current_dir(dir)
        .env("HOME", dir.join("home"))
        .stdin(Stdio::null());
    for (key, _) in std::env::vars() {
        if key.starts_with("IRON_") {
            cmd.env_remove(key);
        }
    }
    cmd.output().expect("the ferrum binary runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[track_caller]
fn ok(o: Output) -> String {
    assert!(o.status.success(), "failed: {}{}", stdout(&o), stderr(&o));
    stdout(&o)
}

/// A failure must be one line on stderr, exit status 1, and never a panic.
#[track_caller]
fn one_line_error(o: Output, expect: &str) {
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "exit status; stderr: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(err.starts_with("error: "), "{err}");
    assert!(err.contains(expect), "{err:?} should mention {expect:?}");
    assert!(!err.contains("panicked"), "{err}");
}

/// A running `ferrum dev`; interrupted (and, failing that, killed) on drop.
struct Dev {
    child: Child,
    dir: TempDir,
    /// The `ferrum configure …` arguments it printed.
    configure: Vec<String>,
}

impl Dev {
    fn start() -> Dev {
        let dir = TempDir::new("dev-cli");
        let log = std::fs::File::create(dir.0.join("dev.log")).expect("log file");
        let port = free_port();
        let mut cmd = Command::new(bin());
        cmd.args(["dev", "--listen", &format!("127.0.0.1:{port}")])
            .args(["--data-dir", "data", "--concurrency", "2"])
            .current_dir(&dir.0)
            .env_remove("FERRUM_ADMIN_TOKEN")
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .stdin(Stdio::null());
        let child = cmd.spawn().expect("ferrum dev starts");
        let mut dev = Dev {
            child,
            dir,
            configure: Vec::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let out = dev.output();
            if let Some(line) = out
                .lines()
                .find(|l| l.trim_start().starts_with("ferrum configure"))
            {
                dev.configure = line.split_whitespace().skip(1).map(str::to_owned).collect();
                break;
            }
            if let Ok(Some(status)) = dev.child.try_wait() {
                panic!("ferrum dev exited with {status}:\n{out}");
            }
            assert!(
                Instant::now() < deadline,
                "ferrum dev did not come up:\n{out}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        dev
    }

    /// Everything `ferrum dev` printed so far.
    fn output(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(self.dir.0.join("dev.log")) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    fn cli(&self, args: &[&str]) -> Output {
        cli_in(&self.dir.0, args)
    }

    fn configure(&self) {
        let args: Vec<&str> = self.configure.iter().map(String::as_str).collect();
        ok(self.cli(&args));
    }

    /// A worker directory under the test's directory.
    fn worker(&self, name: &str, files: &[(&str, &str)]) -> String {
        let dir = self.dir.0.join(name);
        std::fs::create_dir_all(&dir).expect("worker dir");
        for (file, body) in files {
            std::fs::write(dir.join(file), body).expect("worker file");
        }
        dir.display().to_string()
    }

    /// Sends SIGINT (Ctrl-C) and waits for a clean exit.
    fn interrupt(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .expect("kill");
        assert!(sent.success());
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "ferrum dev ignored Ctrl-C");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = Command::new("kill")
                .args(["-INT", &self.child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

const HELLO: &str = "echo \"hello from $TASK_ID\"\necho \"payload: $(cat \"$PAYLOAD_FILE\")\"\necho \"to stderr\" >&2\n";

#[test]
fn upload_queue_follow_to_complete_through_the_cli_only() {
    let mut dev = Dev::start();
    dev.configure();
    let worker = dev.worker("hello", &[("hello.sh", HELLO)]);
    let up = ok(dev.cli(&["upload", "hello", &worker, "--file-name", "hello.sh"]));
    assert!(up.contains("Uploaded hello"), "{up}");

    let id = ok(dev.cli(&[
        "queue",
        "hello",
        "--payload",
        r#"{"who":"world"}"#,
        "--priority",
        "1",
        "--label",
        "first",
    ]));
    let id = id.trim();
    assert_eq!(id.len(), 24, "a task id: {id:?}");

    let follow = dev.cli(&["log", id, "--follow"]);
    let log = ok(follow.clone());
    assert!(log.contains(&format!("hello from {id}")), "{log}");
    assert!(log.contains(r#"payload: {"who":"world"}"#), "{log}");
    assert!(log.contains("to stderr"), "{log}");
    assert!(stderr(&follow).contains("complete"), "{}", stderr(&follow));

    let status: Value = serde_json::from_str(&ok(dev.cli(&["status", id, "--output", "json"])))
        .expect("status JSON");
    assert_eq!(status["status"], "complete");
    assert_eq!(status["label"], "first");
    assert_eq!(status["priority"], 1);
    assert!(ok(dev.cli(&["status", id])).contains("complete"));

    let tasks: Value = serde_json::from_str(&ok(
        dev.cli(&["list", "tasks", "--code", "hello", "--output", "json"])
    ))
    .expect("tasks JSON");
    assert_eq!(tasks["tasks"][0]["id"], id);
    assert!(ok(dev.cli(&["list", "codes"])).contains("hello"));

    let schedule = ok(dev.cli(&[
        "schedule",
        "create",
        "hello",
        "--run-every",
        "3600",
        "--start-at",
        "2099-01-01T00:00:00Z",
    ]));
    let schedule = schedule.trim();
    assert!(ok(dev.cli(&["list", "schedules"])).contains(schedule));
    ok(dev.cli(&["schedule", "cancel", schedule]));
    let url = ok(dev.cli(&["webhook", "hello", "--label", "hooked"]));
    assert!(url.trim().contains("/webhooks/"), "{url}");

    let status = dev.interrupt();
    assert!(
        status.success(),
        "ferrum dev exit: {status}\n{}",
        dev.output()
    );
    assert!(
        dev.output().contains("Ferrum dev stopped"),
        "{}",
        dev.output()
    );
}

#[test]
fn user_mistakes_get_one_line_errors() {
    let dev = Dev::start();
    dev.configure();
    let worker = dev.worker("w", &[("w.sh", "echo hi\n")]);

    one_line_error(dev.cli(&["queue", "nope"]), "Code \"nope\" not found");
    one_line_error(
        dev.cli(&["queue", "nope", "--payload-file", "missing.json"]),
        "cannot read payload file missing.json",
    );
    one_line_error(
        dev.cli(&["upload", "w", "no-such-dir", "--file-name", "w.sh"]),
        "is not a directory",
    );
    one_line_error(
        dev.cli(&["upload", "w", &worker, "--file-name", "other.sh"]),
        "has no file other.sh",
    );
    one_line_error(
        dev.cli(&["status", "000000000000000000000000"]),
        "not found",
    );
    one_line_error(dev.cli(&["webhook", "nope"]), "no code named");

    let wrong = cli_env(&dev, &[("IRON_TOKEN", "wrong")], &["list", "codes"]);
    one_line_error(wrong, "rejected the token");
    let closed = format!("{}", free_port());
    let nobody = cli_env(&dev, &[("IRON_PORT", &closed)], &["list", "codes"]);
    one_line_error(nobody, "cannot reach the Ferrum API");

    let fresh = TempDir::new("no-config");
    one_line_error(cli_in(&fresh.0, &["list", "tasks"]), "no token configured");
}

fn cli_env(dev: &Dev, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut cmd = Command::new(bin());
    cmd.args(args)
        .current_dir(&dev.dir.0)
        .env("HOME", dev.dir.0.join("home"));
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("the ferrum binary runs")
}

#[test]
fn run_local_runs_a_worker_under_the_service_contract() {
    let dir = TempDir::new("run-local");
    let worker = dir.0.join("w");
    std::fs::create_dir_all(&worker).expect("worker dir");
    std::fs::write(worker.join("w.sh"), HELLO).expect("worker file");
    std::fs::write(worker.join("fail.sh"), "echo broken >&2\nexit 3\n").expect("worker file");
    std::fs::write(dir.0.join("payload.json"), r#"{"n":1}"#).expect("payload");

    let w = worker.display().to_string();
    let run = cli_in(
        &dir.0,
        &[
            "run-local",
            &w,
            "--file-name",
            "w.sh",
            "--payload",
            "payload.json",
        ],
    );
    let out = ok(run.clone());
    assert!(out.contains("hello from "), "{out}");
    assert!(out.contains(r#"payload: {"n":1}"#), "{out}");
    assert!(stderr(&run).contains("to stderr"), "{}", stderr(&run));
    assert!(stderr(&run).contains("task complete"), "{}", stderr(&run));

    let failed = cli_in(
        &dir.0,
        &[
            "run-local",
            &w,
            "--file-name",
            "fail.sh",
            "--output",
            "json",
        ],
    );
    let report: Value = serde_json::from_str(&stdout(&failed)).expect("JSON report");
    assert_eq!(report["status"], "error");
    assert!(report["log"]
        .as_str()
        .unwrap_or_default()
        .contains("broken"));
    one_line_error(failed, "exited with code 3");
}
