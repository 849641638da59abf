//! A schedule the firing duty cannot fire is the tenant's problem alone: it shows status
//! `error` and the reason in its JSON, while another project's schedule keeps firing.

use chrono::Utc;
use ferrum_store::{ScheduleStore, MAX_FIRE_FAILURES};

use crate::common::TestApp;

#[tokio::test]
async fn a_poisoned_schedule_shows_its_error_and_stops_no_other_project() {
    let app = TestApp::start().await;
    let a = app.tenant("alpha").await;
    let b = app.tenant("beta").await;
    app.hello_code(&a, "hello").await;
    app.hello_code(&b, "hello").await;
    let poisoned = app.schedule(&a, "hello").await;
    let healthy = app.schedule(&b, "hello").await;
    // Past validation, as a row stored before a rule existed would be.
    sqlx::query("UPDATE schedules SET code_name = 'gone' WHERE id = $1")
        .bind(&poisoned)
        .execute(app.store.pool())
        .await
        .unwrap();
    let mut now = Utc::now();
    for _ in 0..MAX_FIRE_FAILURES {
        app.store.fire_due(now, 100).await.unwrap();
        now += chrono::Duration::hours(1);
    }
    let path = format!("/2/projects/{}/schedules/{poisoned}", a.project);
    let s = app.get(&a, &path).await.expect(200).json();
    assert_eq!(s["status"], "error");
    let msg = s["msg"].as_str().unwrap();
    assert!(
        msg.starts_with("Stopped after 3 failed attempts") && msg.contains("gone"),
        "{msg}"
    );
    let pause = format!("{path}/pause");
    app.post(&a, &pause, serde_json::json!({}))
        .await
        .expect(409);
    let tasks = format!("/2/projects/{}/schedules/{healthy}/tasks", b.project);
    let fired = app.get(&b, &tasks).await.expect(200).json();
    assert_eq!(
        fired["tasks"].as_array().unwrap().len(),
        MAX_FIRE_FAILURES as usize
    );
}
