//! The official Python client (iron-worker 1.3.8) against a live API, driven by
//! `tests/python/client_flow.py`. Missing Python or a missing package fails the test: a
//! compatibility check that silently skips proves nothing.

use std::path::PathBuf;
use std::process::Command;

use ferrum_model::Id;

use crate::common::TestApp;

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/client_flow.py")
}

fn require_client() {
    let check = Command::new("python3")
        .args([
            "-c",
            "import iron_worker; assert iron_worker.IronWorker.VERSION == '1.3.8'",
        ])
        .output()
        .expect("python3 is required for this test and was not found on PATH");
    assert!(
        check.status.success(),
        "the iron-worker 1.3.8 Python package is required: pip install iron-worker==1.3.8\n{}",
        String::from_utf8_lossy(&check.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_python_client_works_end_to_end() {
    require_client();
    let app = TestApp::start().await;
    let t = app.tenant("python").await;
    let port = app.base.rsplit(':').next().unwrap().to_owned();
    // An empty working directory and HOME: an iron.json in either would override the env.
    let dir = std::env::temp_dir().join(format!("ferrum-python-{}", Id::generate()));
    std::fs::create_dir_all(&dir).unwrap();

    let mut cmd = Command::new("python3");
    cmd.arg(script()).current_dir(&dir).env("HOME", &dir);
    for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("IRON_")) {
        cmd.env_remove(key);
    }
    cmd.env("IRON_PROTOCOL", "http")
        .env("IRON_HOST", "127.0.0.1")
        .env("IRON_PORT", &port)
        .env("IRON_PROJECT_ID", t.project.to_string())
        .env("IRON_TOKEN", &t.token);
    let output = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .expect("python3 could not be started");
    let _ = std::fs::remove_dir_all(&dir);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("python client flow: OK"),
        "the Python client flow failed\n--- stdout\n{stdout}\n--- stderr\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
