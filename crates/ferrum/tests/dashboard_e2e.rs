//! The dashboard in a real browser: headless Chromium (Debian's `chromium` and
//! `chromium-driver`, driven over WebDriver with fantoccini) against a real `ferrum serve` on
//! Postgres and a runner on Docker. It logs in; watches a task go from queued to complete with
//! its log arriving live; cancels a running task from its page; filters tasks by a payload
//! field and bulk-retries the failed ones; creates a cron schedule and sees its next fire
//! times; edits a schedule and sees its new next fire times (previewed as typed, then saved);
//! uploads a code's second revision from its page (after a refused one showing the API's
//! hint) and sees it listed and run; follows a batch to its result; and sees the runner on the
//! runners page. A screenshot
//! of each page is saved under `$CARGO_TARGET_DIR/dashboard-screenshots/` (or the system's
//! temporary directory). Every wait is for a condition in the page, never a fixed sleep.

mod support;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;
use support::{free_port, zip_of, Ferrum, ADMIN, RUNNER};

const WAIT: Duration = Duration::from_secs(120);

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn browser() -> (Driver, Client) {
    let port = free_port();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver (apt-get install chromium-driver; scripts/test does)");
    let driver = Driver(child);
    let caps = json!({
        "goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,1000"]
        }
    });
    let caps = caps.as_object().unwrap().clone();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        // chromedriver listens on plain HTTP on this machine: no TLS needed.
        let http = hyper_util::client::legacy::connect::HttpConnector::new();
        match ClientBuilder::new(http)
            .capabilities(caps.clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
        {
            Ok(c) => return (driver, c),
            Err(e) => {
                assert!(
                    Instant::now() < deadline,
                    "chromedriver did not answer: {e}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

fn shots() -> PathBuf {
    let base = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let dir = base.join("dashboard-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn shot(c: &Client, name: &str) {
    let png = c.screenshot().await.unwrap();
    std::fs::write(shots().join(format!("{name}.png")), png).unwrap();
}

/// Waits until the text of `css` satisfies `ok`, reloading the page between looks when
/// `reload` (pages without live updates).
async fn until_text(c: &Client, css: &str, reload: bool, ok: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Ok(el) = c.find(Locator::Css(css)).await {
            if let Ok(text) = el.text().await {
                if ok(&text) {
                    return text;
                }
            }
        }
        assert!(Instant::now() < deadline, "{css} never matched");
        if reload {
            c.refresh().await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Replaces the text of the input `css` inside the form `form` with `text`.
async fn retype(c: &Client, form: &str, css: &str, text: &str) {
    let el = c
        .find(Locator::Id(form))
        .await
        .unwrap()
        .find(Locator::Css(css))
        .await
        .unwrap();
    el.clear().await.unwrap();
    el.send_keys(text).await.unwrap();
}

async fn click_link(c: &Client, text: &str) {
    c.find(Locator::LinkText(text))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

async fn click_button(c: &Client, label: &str) {
    let xpath = format!("//button[normalize-space(.)='{label}']");
    c.find(Locator::XPath(&xpath))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

#[tokio::test]
async fn the_dashboard_drives_tasks_schedules_batches_and_the_fleet_in_chromium() {
    let mut f = Ferrum::start(&[]).await;
    f.start_runner(RUNNER, 4, &[]);
    f.upload_sh("greet", "echo started; sleep 2; echo finished", json!({}))
        .await;
    f.upload_sh("forever", "trap '' TERM; echo up; sleep 300", json!({}))
        .await;
    f.upload_sh(
        "judge",
        "if grep -q bad \"$PAYLOAD_FILE\"; then echo no >&2; exit 1; fi; echo ok",
        json!({}),
    )
    .await;
    let (_driver, c) = browser().await;
    let base = &f.api;
    let project = f.project.clone();

    // Log in with the token.
    c.goto(&format!("{base}/login")).await.unwrap();
    shot(&c, "login").await;
    let field = c.find(Locator::Id("token")).await.unwrap();
    field.send_keys(ADMIN).await.unwrap();
    click_button(&c, "Log in").await;
    until_text(&c, "h1", false, |t| t == "Projects").await;
    shot(&c, "projects").await;

    // A task goes from queued to complete, its log arriving live.
    let task = f.queue(json!({"code_name": "greet"})).await;
    c.goto(&format!("{base}/projects/{project}/tasks/{task}"))
        .await
        .unwrap();
    until_text(&c, "#task-status", false, |t| t == "complete").await;
    until_text(&c, "#task-log", false, |t| t.contains("finished")).await;
    shot(&c, "task").await;

    // Cancel a running task from its page.
    let forever = f.queue(json!({"code_name": "forever"})).await;
    f.wait_for(&forever, Some("running"), WAIT).await;
    c.goto(&format!("{base}/projects/{project}/tasks/{forever}"))
        .await
        .unwrap();
    click_button(&c, "Cancel").await;
    until_text(&c, "#task-status", true, |t| t == "cancelled").await;
    shot(&c, "task-cancelled").await;

    // Filter by a payload field and bulk-retry the failed ones.
    let bad = f
        .queue(json!({"code_name": "judge", "payload": "{\"kind\":\"bad\"}"}))
        .await;
    let good = f
        .queue(json!({"code_name": "judge", "payload": "{\"kind\":\"good\"}"}))
        .await;
    f.wait_for(&bad, Some("error"), WAIT).await;
    f.wait_for(&good, Some("complete"), WAIT).await;
    c.goto(&format!(
        "{base}/projects/{project}/tasks?status=error&field=kind&value=bad"
    ))
    .await
    .unwrap();
    shot(&c, "tasks-filtered").await;
    let rows = c.find_all(Locator::Css("input[name=ids]")).await.unwrap();
    assert_eq!(rows.len(), 1, "only the failed bad task matches");
    c.find(Locator::Id("select-all"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    click_button(&c, "Retry").await;
    let deadline = Instant::now() + WAIT;
    loop {
        let retried = f.get("/2/projects/{pid}/tasks?code_name=judge").await;
        let retries: Vec<_> = retried["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["original_task_id"] == bad.as_str())
            .cloned()
            .collect();
        if !retries.is_empty() {
            assert_eq!(retries.len(), 1);
            break;
        }
        assert!(Instant::now() < deadline, "no retry of the failed task");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // A cron schedule, with its next fire times previewed as it is typed.
    c.goto(&format!("{base}/projects/{project}/schedules"))
        .await
        .unwrap();
    let form = c.find(Locator::Id("schedule-form")).await.unwrap();
    form.find(Locator::Css("input[name=code_name]"))
        .await
        .unwrap()
        .send_keys("greet")
        .await
        .unwrap();
    form.find(Locator::Css("input[name=timezone]"))
        .await
        .unwrap()
        .send_keys("Europe/Paris")
        .await
        .unwrap();
    form.find(Locator::Css("input[name=cron]"))
        .await
        .unwrap()
        .send_keys("0 9 * * 1")
        .await
        .unwrap();
    until_text(&c, "#cron-preview", false, |t| t.starts_with("Next:")).await;
    shot(&c, "schedule-preview").await;
    click_button(&c, "Create schedule").await;
    until_text(&c, "tbody", false, |t| t.contains("0 9 * * 1")).await;
    shot(&c, "schedules").await;

    // Edit a schedule: the preview follows what is typed, saving shows the new fire times.
    let every = f
        .post(
            "/2/projects/{pid}/schedules",
            json!({"schedules": [{"code_name": "greet", "run_every": 3600,
                                  "start_at": "2030-01-01T00:00:00Z"}]}),
        )
        .await;
    let every = every["schedules"][0]["id"].as_str().unwrap().to_owned();
    c.refresh().await.unwrap();
    click_link(&c, &every).await;
    until_text(&c, "#next-fire-times", false, |t| {
        t.contains("2030-01-01 01:00:00 UTC")
    })
    .await;
    shot(&c, "schedule").await;
    retype(&c, "schedule-edit", "input[name=run_every]", "7200").await;
    until_text(&c, "#edit-preview", false, |t| {
        t.starts_with("Next:") && t.contains("02:00:00") && !t.contains("01:00:00")
    })
    .await;
    shot(&c, "schedule-edit-preview").await;
    click_button(&c, "Save").await;
    until_text(&c, "#next-fire-times", false, |t| {
        t.contains("2030-01-01 02:00:00 UTC") && !t.contains("01:00:00")
    })
    .await;
    shot(&c, "schedule-edited").await;
    let saved = f
        .get(&format!("/2/projects/{{pid}}/schedules/{every}"))
        .await;
    assert_eq!(saved["run_every"], 7200);

    // Upload greet's second revision from its page: first with a file the zip lacks (the
    // API's message, nothing stored), then right; the new revision is listed and runs.
    let zip = shots().join("greet-v2.zip");
    std::fs::write(&zip, zip_of(&[("worker.sh", b"echo v2".as_slice())])).unwrap();
    let zip = zip.to_str().unwrap().to_owned();
    c.goto(&format!("{base}/projects/{project}/codes"))
        .await
        .unwrap();
    shot(&c, "codes").await;
    click_link(&c, "greet").await;
    until_text(&c, "#revisions tbody", false, |t| t.starts_with('1')).await;
    shot(&c, "code").await;
    let file = |c: &Client| {
        let c = c.clone();
        let zip = zip.clone();
        async move {
            let input = c.find(Locator::Id("upload-file")).await.unwrap();
            input.send_keys(&zip).await.unwrap();
        }
    };
    file(&c).await;
    retype(&c, "upload-form", "input[name=file_name]", "main.sh").await;
    click_button(&c, "Upload revision").await;
    until_text(&c, "#upload-form [role=alert]", false, |t| {
        t.contains("is not in the zip") && t.contains("worker.sh")
    })
    .await;
    shot(&c, "code-upload-refused").await;
    file(&c).await;
    retype(&c, "upload-form", "input[name=file_name]", "worker.sh").await;
    click_button(&c, "Upload revision").await;
    until_text(&c, "#revisions tbody", false, |t| t.starts_with("2")).await;
    shot(&c, "code-revision-2").await;
    let v2 = f.queue(json!({"code_name": "greet"})).await;
    f.wait_for(&v2, Some("complete"), WAIT).await;
    assert!(f.log(&v2).await.contains("v2"), "the new revision ran");

    // A batch, followed to its result.
    f.upload_sh(
        "item",
        "cat \"$PAYLOAD_FILE\" > \"$RESULT_FILE\"",
        json!({}),
    )
    .await;
    f.upload_sh(
        "sum",
        "n=0; while read -r l; do n=$((n+1)); done < \"$BATCH_RESULTS_FILE\"; echo $n > \"$RESULT_FILE\"",
        json!({}),
    )
    .await;
    let batch = f
        .post(
            "/2/projects/{pid}/batches",
            json!({"code_name": "item", "payloads": [1, 2, 3], "reduce": {"code_name": "sum"}}),
        )
        .await;
    let batch = batch["id"].as_str().unwrap().to_owned();
    c.goto(&format!("{base}/projects/{project}/batches/{batch}"))
        .await
        .unwrap();
    until_text(&c, "#batch-status", true, |t| t == "complete").await;
    until_text(&c, "#batch-result", false, |t| t.trim() == "3").await;
    shot(&c, "batch").await;

    // The admin sees the runner.
    c.goto(&format!("{base}/runners")).await.unwrap();
    until_text(&c, ".runner-status", true, |t| t == "active").await;
    shot(&c, "runners").await;

    // Logging out ends the session.
    click_button(&c, "Log out").await;
    until_text(&c, "h1", false, |t| t == "Ferrum").await;
    c.goto(&format!("{base}/projects")).await.unwrap();
    until_text(&c, "h1", false, |t| t == "Ferrum").await;
    c.close().await.unwrap();
}
