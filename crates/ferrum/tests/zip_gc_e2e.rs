//! Nothing left behind in the blob store: deleting a code frees its zips, and `ferrum serve
//! --keep-revisions N` keeps only the last N revisions' zips, never one a queued task needs.
//! Real `ferrum serve` on Postgres with a local blob directory, driven over HTTP.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;
use support::Ferrum;

/// The code zips in the blob directory.
fn zips(f: &Ferrum) -> usize {
    fn walk(dir: &Path) -> usize {
        std::fs::read_dir(dir).map_or(0, |entries| {
            entries
                .flatten()
                .map(|e| {
                    let p = e.path();
                    if p.is_dir() {
                        walk(&p)
                    } else {
                        usize::from(p.extension().is_some_and(|x| x == "zip"))
                    }
                })
                .sum()
        })
    }
    walk(&f.dir.join("blobs/codes"))
}

/// Waits (the collector runs in the background after each delete and upload) until the
/// blob directory holds `n` zips.
fn wait_for_zips(f: &Ferrum, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while zips(f) != n {
        assert!(
            Instant::now() < deadline,
            "{} zips, want {n}; logs in {}",
            zips(f),
            f.dir.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test]
async fn deleting_a_code_frees_its_zips() {
    let f = Ferrum::start(&[]).await;
    let a = f.upload_sh("a", "echo 1", json!({})).await;
    f.upload_sh("a", "echo 2", json!({})).await;
    f.upload_sh("b", "echo b", json!({})).await;
    assert_eq!(
        zips(&f),
        3,
        "no --keep-revisions: every revision keeps its zip"
    );
    let id = a["id"].as_str().unwrap();
    let r = reqwest::Client::new()
        .delete(format!("{}/2/projects/{}/codes/{id}", f.api, f.project))
        .header("Authorization", format!("OAuth {}", support::ADMIN))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    wait_for_zips(&f, 1);
}

#[tokio::test]
async fn keep_revisions_keeps_the_last_n_and_what_queued_tasks_need() {
    let f = Ferrum::start(&["--keep-revisions", "2"]).await;
    f.upload_sh("c", "echo 1", json!({})).await;
    // No runner: this task stays queued, bound to revision 1.
    f.queue(json!({"code_name": "c"})).await;
    for n in 2..=4 {
        f.upload_sh("c", &format!("echo {n}"), json!({})).await;
    }
    // Revisions 3 and 4 are kept; 2 goes; 1 stays for its queued task.
    wait_for_zips(&f, 3);
    let first = f.get("/2/projects/{pid}/tasks?code_name=c").await;
    let id = first["tasks"][0]["id"].as_str().unwrap().to_owned();
    f.post(&format!("/2/projects/{{pid}}/tasks/{id}/cancel"), json!({}))
        .await;
    f.upload_sh("c", "echo 5", json!({})).await;
    wait_for_zips(&f, 2);
}
