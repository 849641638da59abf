//! Task results end to end: real `ferrum serve` + `ferrum runner`, real Docker containers, a
//! real S3-compatible blob store (s3s-fs, `scripts/s3-server`). A worker writes
//! `RESULT_FILE`; the result comes back from `GET …/tasks/{id}/result` (JSON or bytes), large
//! ones through the blob store, and one over the cap ends the task as `error`.

mod support;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use support::{Ferrum, ADMIN, RUNNER};

const WAIT: Duration = Duration::from_secs(120);
/// The cap and inline threshold `ferrum serve` gets here.
const CAP: usize = 100_000;
const INLINE: usize = 1_000;

/// An s3s-fs server with one bucket, killed on drop.
struct S3 {
    child: Child,
    port: u16,
    store: PathBuf,
}

impl Drop for S3 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn s3s_fs() -> PathBuf {
    if let Ok(p) = std::env::var("FERRUM_S3S_FS") {
        return p.into();
    }
    let out = Command::new("sh")
        .args([
            "-c",
            "command -v s3s-fs || echo \"${CARGO_HOME:-$HOME/.cargo}/bin/s3s-fs\"",
        ])
        .output()
        .expect("sh runs");
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    assert!(path.exists(), "s3s-fs is missing: run scripts/s3-server");
    path
}

async fn start_s3(dir: &std::path::Path) -> S3 {
    let store = dir.join("s3");
    std::fs::create_dir_all(store.join("results-bucket")).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(s3s_fs())
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--access-key", "rkey", "--secret-key", "rsecret"])
        .arg(&store)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("s3s-fs starts");
    let deadline = Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "s3s-fs did not come up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    S3 { child, port, store }
}

async fn raw_get(f: &Ferrum, path: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(format!("{}{}", f.api, path.replace("{pid}", &f.project)))
        .header("Authorization", format!("OAuth {ADMIN}"))
        .send()
        .await
        .expect("the API answers")
}

#[tokio::test]
async fn results_round_trip_as_json_bytes_and_s3_blobs_and_the_cap_holds() {
    let tmp = std::env::temp_dir().join(format!("ferrum-results-{}", std::process::id()));
    let s3 = start_s3(&tmp).await;
    let url = format!(
        "s3://results-bucket?endpoint=http://127.0.0.1:{}&region=us-east-1",
        s3.port
    );
    let (cap, inline) = (CAP.to_string(), INLINE.to_string());
    let mut f = Ferrum::start_with_blobs(
        Some(&url),
        &[
            ("AWS_ACCESS_KEY_ID", "rkey"),
            ("AWS_SECRET_ACCESS_KEY", "rsecret"),
        ],
        &["--max-result-bytes", &cap, "--result-inline-bytes", &inline],
    )
    .await;
    f.start_runner(RUNNER, 4, &[]);
    // The payload says what to return.
    let worker = r#"case "$(cat "$PAYLOAD_FILE")" in
  json) printf '{"n": 42, "ok": true}' > "$RESULT_FILE" ;;
  binary) printf '\000\377\001' > "$RESULT_FILE" ;;
  large) yes 0123456789abcdef | head -c 50000 > "$RESULT_FILE" ;;
  over) head -c 100001 /dev/zero > "$RESULT_FILE" ;;
  none) echo no result ;;
esac"#;
    f.upload_sh("results", worker, json!({})).await;
    let mut ids = Vec::new();
    for kind in ["json", "binary", "large", "over", "none"] {
        ids.push(
            f.queue(json!({"code_name": "results", "payload": kind}))
                .await,
        );
    }
    let mut tasks = Vec::new();
    for id in &ids {
        tasks.push(f.wait_for(id, None, WAIT).await);
    }

    // JSON: served as JSON, its size in the task.
    assert_eq!(tasks[0]["status"], "complete", "{}", tasks[0]);
    assert_eq!(tasks[0]["result_size"], 21);
    let r = raw_get(&f, &format!("/2/projects/{{pid}}/tasks/{}/result", ids[0])).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    assert_eq!(r.text().await.unwrap(), r#"{"n": 42, "ok": true}"#);

    // Bytes that are not JSON come back exactly, as octet-stream.
    let r = raw_get(&f, &format!("/2/projects/{{pid}}/tasks/{}/result", ids[1])).await;
    assert_eq!(r.headers()["content-type"], "application/octet-stream");
    assert_eq!(r.bytes().await.unwrap().to_vec(), vec![0u8, 0xff, 1]);

    // Large: above the inline threshold, so it lives in the S3 bucket, and comes back whole.
    assert_eq!(tasks[2]["result_size"], 50_000);
    let r = raw_get(&f, &format!("/2/projects/{{pid}}/tasks/{}/result", ids[2])).await;
    let body = r.bytes().await.unwrap();
    let expected: Vec<u8> = b"0123456789abcdef\n"
        .iter()
        .copied()
        .cycle()
        .take(50_000)
        .collect();
    assert_eq!(body.to_vec(), expected);
    // One object under the task's prefix, named by its attempt (`1-…`).
    let prefix = s3.store.join(format!("results-bucket/results/{}", ids[2]));
    let objects: Vec<_> = std::fs::read_dir(&prefix)
        .expect("the task's results in S3")
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(objects.len(), 1, "{objects:?}");
    assert!(objects[0]
        .file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with("1-")));
    assert_eq!(std::fs::read(&objects[0]).unwrap(), expected);
    let small = s3.store.join(format!("results-bucket/results/{}", ids[0]));
    assert!(!small.exists(), "small results stay in the database");

    // Over the cap: the task fails with a msg that says the size and the cap; no result.
    assert_eq!(tasks[3]["status"], "error", "{}", tasks[3]);
    let msg = tasks[3]["msg"].as_str().unwrap_or_default();
    assert!(
        msg.contains("100001 bytes") && msg.contains("100000 bytes"),
        "{msg}"
    );
    let r = raw_get(&f, &format!("/2/projects/{{pid}}/tasks/{}/result", ids[3])).await;
    assert_eq!(r.status(), 404);

    // None: 404 with a msg, and result_size 0.
    assert_eq!(tasks[4]["result_size"], 0);
    let r = raw_get(&f, &format!("/2/projects/{{pid}}/tasks/{}/result", ids[4])).await;
    assert_eq!(r.status(), 404);
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(body["msg"].as_str().is_some(), "{body}");
    drop(f);
    drop(s3);
    let _ = std::fs::remove_dir_all(tmp);
}

/// `ferrum result ID` prints the result as it was returned.
#[tokio::test]
async fn the_cli_prints_a_result() {
    let mut f = Ferrum::start(&[]).await;
    f.start_runner(RUNNER, 1, &[]);
    f.upload_sh("r", r#"printf '[1, 2, 3]' > "$RESULT_FILE""#, json!({}))
        .await;
    let id = f.queue(json!({"code_name": "r", "payload": ""})).await;
    f.wait_for(&id, Some("complete"), WAIT).await;
    let port = f.api.rsplit(':').next().unwrap_or_default().to_owned();
    let out = Command::new(env!("CARGO_BIN_EXE_ferrum"))
        .args(["result", &id])
        .current_dir(&f.dir)
        .env("HOME", &f.dir)
        .env("IRON_PROTOCOL", "http")
        .env("IRON_HOST", "127.0.0.1")
        .env("IRON_PORT", port)
        .env("IRON_PROJECT_ID", &f.project)
        .env("IRON_TOKEN", ADMIN)
        .output()
        .expect("ferrum result runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "[1, 2, 3]");
}
