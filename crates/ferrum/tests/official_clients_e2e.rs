//! IronWorker's official Node client, unchanged, against a real `ferrum serve` + `ferrum
//! runner` running tasks in Docker (`tests/node/worker_flow.js`), and the shape of what the
//! official Ruby client uploads. Both clients upload runtime `sh` with a `__runner__.sh` that
//! ends by running `node FILE` / `ruby FILE`, so the `sh` stack must carry both interpreters.
//!
//! The Node client comes from npm: `npm ci` in `tests/node` (scripts/test does it), with the
//! `adm-zip` override users need on today's Node.js (see docs/IRONWORKER.md). The Ruby gem
//! comes only from rubygems.org, which this test does not assume; its upload is reproduced
//! byte for byte in shape (runtime `sh`, a runner script that execs `ruby`).

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::json;
use support::{Ferrum, ADMIN, RUNNER};

#[tokio::test]
async fn the_official_node_client_uploads_queues_and_reads_the_log() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/node");
    assert!(
        dir.join("node_modules/iron_worker").is_dir(),
        "the official Node client is missing: (cd tests/node && npm ci) (scripts/test does)"
    );
    let mut f = Ferrum::start(&[]).await;
    f.start_runner(RUNNER, 2, &[]);
    let port = f.api.rsplit(':').next().unwrap_or_default().to_owned();
    let project = f.project.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(dir.join("worker_flow.js"))
            .env("IRON_SCHEME", "http")
            .env("IRON_HOST", "127.0.0.1")
            .env("IRON_PORT", port)
            .env("IRON_PROJECT_ID", project)
            .env("IRON_TOKEN", ADMIN)
            .output()
            .expect("node must be installed for this test")
    })
    .await
    .expect("the flow finishes");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{stdout}\n{stderr}\nlogs in {}",
        f.dir.display()
    );
    assert!(stdout.contains("node worker flow: ok"), "{stdout}");
}

/// What the Ruby client (gem iron_worker) uploads: runtime `sh`, `__runner__.sh` setting up
/// its environment and finally exec'ing `ruby` on the worker file.
const RUBY_RUNNER: &str = r#"#!/bin/sh
root() {
  while [ $# -gt 1 ]; do
    if [ "$1" = "-d" ]; then printf "%s" "$2"; break; fi
    shift
  done
}
cd "$(root "$@")"
PATH=.:./bin:$PATH
export PATH
exec ruby hello.rb "$@"
"#;

const RUBY_WORKER: &str = r#"
i = ARGV.index("-payload")
puts "hello from ruby #{RUBY_VERSION}"
puts "payload=#{File.read(ARGV[i + 1])}"
"#;

#[tokio::test]
async fn ruby_client_uploads_run_in_the_sh_stack() {
    let mut f = Ferrum::start(&[]).await;
    f.start_runner(RUNNER, 1, &[]);
    f.upload(
        json!({"name": "ruby-hello", "runtime": "sh", "file_name": "__runner__.sh"}),
        &[
            ("__runner__.sh", RUBY_RUNNER.as_bytes()),
            ("hello.rb", RUBY_WORKER.as_bytes()),
        ],
    )
    .await;
    let id = f
        .queue(json!({"code_name": "ruby-hello", "payload": "{\"who\":\"ruby\"}"}))
        .await;
    let t = f.wait_for(&id, None, Duration::from_secs(120)).await;
    let log = f.log(&id).await;
    assert_eq!(t["status"], "complete", "{log}");
    assert!(log.contains("hello from ruby 3."), "{log}");
    assert!(log.contains(r#"payload={"who":"ruby"}"#), "{log}");
}

/// `sh` workers make HTTP calls: wget (and curl) in the stack fetch a page from a server in
/// the same container, as the task user. (busybox's static wget used to die with SIGSEGV.)
#[test]
fn wget_and_curl_work_in_the_sh_stack() {
    let script = "(busybox httpd -f -p 8000 -h /etc &); \
        for i in $(seq 50); do wget -qO- http://127.0.0.1:8000/passwd >/tmp/w && break; sleep 0.1; done; \
        curl -fsS http://127.0.0.1:8000/passwd >/tmp/c && grep -q ferrum /tmp/w && cmp /tmp/w /tmp/c";
    let out = Command::new("docker")
        .args(["run", "--rm", "-u", "1000", "--network", "none"])
        .arg(ferrum_model::stacks::IMAGE_SH)
        .args(["sh", "-c", script])
        .output()
        .expect("docker runs");
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
}
