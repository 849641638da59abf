//! The official IronWorker Python client (iron-worker 1.3.8), unchanged, against a real
//! `ferrum serve` + `ferrum runner` running tasks in Docker (`tests/python/worker_flow.py`).

mod support;

use std::process::Command;

use support::{Ferrum, ADMIN, RUNNER};

#[tokio::test]
async fn the_official_python_client_runs_workers_end_to_end() {
    let probe = Command::new("python3")
        .args(["-c", "import iron_worker"])
        .output()
        .expect("python3 must be installed for this test");
    assert!(
        probe.status.success(),
        "the official client is missing: pip install iron-worker==1.3.8 (scripts/test does)"
    );
    let mut f = Ferrum::start(&[]).await;
    f.start_runner(RUNNER, 2, &[]);
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/python/worker_flow.py"
    );
    let port = f.api.rsplit(':').next().unwrap_or_default().to_owned();
    let empty = f.dir.join("cwd");
    std::fs::create_dir_all(&empty).expect("an empty working directory");
    let flow = f.project.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .arg(script)
            .current_dir(empty)
            .env("IRON_PROTOCOL", "http")
            .env("IRON_HOST", "127.0.0.1")
            .env("IRON_PORT", port)
            .env("IRON_PROJECT_ID", flow)
            .env("IRON_TOKEN", ADMIN)
            .output()
            .expect("python3 runs")
    })
    .await
    .expect("the flow finishes");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("worker flow: ok"), "{stdout}");
}
