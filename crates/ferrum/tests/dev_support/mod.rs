//! The `ferrum dev` harness shared by the CLI tests: a real `ferrum dev` in a temporary
//! directory, and the CLI run as a subprocess against it with its own HOME, as a user would.

#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_ferrum")
}

pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    l.local_addr().expect("bound").port()
}

/// A temporary directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
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
pub fn cli_in(dir: &Path, args: &[&str]) -> Output {
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

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[track_caller]
pub fn ok(o: Output) -> String {
    assert!(o.status.success(), "failed: {}{}", stdout(&o), stderr(&o));
    stdout(&o)
}

/// A failure must be one line on stderr, exit status 1, and never a panic.
#[track_caller]
pub fn one_line_error(o: Output, expect: &str) {
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "exit status; stderr: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(err.starts_with("error: "), "{err}");
    assert!(err.contains(expect), "{err:?} should mention {expect:?}");
    assert!(!err.contains("panicked"), "{err}");
}

/// A running `ferrum dev`; interrupted (and, failing that, killed) on drop.
pub struct Dev {
    pub child: Child,
    pub dir: TempDir,
    /// The `ferrum configure …` arguments it printed.
    pub configure: Vec<String>,
}

impl Dev {
    pub fn start() -> Dev {
        Dev::start_in(TempDir::new("dev-cli"))
    }

    /// Starts `ferrum dev` in `dir` (a directory an earlier `ferrum dev` may have used).
    pub fn start_in(dir: TempDir) -> Dev {
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

    /// Stops this `ferrum dev` (Ctrl-C) and hands back its directory for another start.
    pub fn stop(mut self) -> TempDir {
        assert!(self.interrupt().success(), "{}", self.output());
        std::mem::replace(&mut self.dir, TempDir(PathBuf::new()))
    }

    /// Everything `ferrum dev` printed so far.
    pub fn output(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(self.dir.0.join("dev.log")) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    pub fn cli(&self, args: &[&str]) -> Output {
        cli_in(&self.dir.0, args)
    }

    pub fn configure(&self) {
        let args: Vec<&str> = self.configure.iter().map(String::as_str).collect();
        ok(self.cli(&args));
    }

    /// A worker directory under the test's directory.
    pub fn worker(&self, name: &str, files: &[(&str, &str)]) -> String {
        let dir = self.dir.0.join(name);
        std::fs::create_dir_all(&dir).expect("worker dir");
        for (file, body) in files {
            std::fs::write(dir.join(file), body).expect("worker file");
        }
        dir.display().to_string()
    }

    /// Sends SIGINT (Ctrl-C) and waits for a clean exit.
    pub fn interrupt(&mut self) -> std::process::ExitStatus {
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

pub fn cli_env(dev: &Dev, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut cmd = Command::new(bin());
    cmd.args(args)
        .current_dir(&dev.dir.0)
        .env("HOME", dev.dir.0.join("home"));
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("the ferrum binary runs")
}
