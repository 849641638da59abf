//! Schedule firing by several replicas, each with its own Postgres pool: every slot makes
//! exactly one task. The backend-agnostic firing rules are in the contract suite
//! (`tests/contract/firing.rs`), run on every backend.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use ferrum_model::validation::{new_schedule, ScheduleOptions};
use ferrum_model::{Page, ScheduleStatus, TaskFilter};
use ferrum_store::{PgStore, ScheduleStore, TaskStore};

fn secs(n: i64) -> chrono::Duration {
    chrono::Duration::seconds(n)
}

/// Three replicas, each with its own pool, fire a seconds cron as fast as they can for six
/// seconds: every slot makes exactly one task.
#[tokio::test]
async fn concurrent_firers_make_one_task_per_slot() {
    let (store, url) = ferrum_store::testing::fresh_store().await.unwrap();
    let (project, _) = ferrum_store::testing::project_with_code(&store, "c")
        .await
        .unwrap();
    let start = Utc::now();
    let o = ScheduleOptions {
        start_at: Some(start),
        end_at: Some(start + secs(5)),
        cron: Some("* * * * * *".into()),
        min_interval_secs: Some(1),
        misfire: Some("catch_up".into()),
        ..ScheduleOptions::default()
    };
    let s = new_schedule("c", b"{}".to_vec(), o, Utc::now()).unwrap();
    let id = store
        .create_schedules(project, vec![s], None)
        .await
        .unwrap()[0];
    let mut firers = Vec::new();
    for _ in 0..3 {
        let store = Arc::new(PgStore::connect(&url, 4).await.unwrap());
        firers.push(tokio::spawn(async move {
            let stop = Utc::now() + secs(7);
            while Utc::now() < stop {
                store.fire_due(Utc::now(), 10).await.unwrap();
                tokio::time::sleep(Duration::from_millis(3)).await;
            }
        }));
    }
    for f in firers {
        f.await.unwrap();
    }
    let s = store.schedule(project, id).await.unwrap().unwrap();
    let slots = 5 + usize::from(start.timestamp_subsec_nanos() == 0);
    let filter = TaskFilter {
        schedule_id: Some(id),
        page: Page::new(None, Some(100)),
        ..TaskFilter::default()
    };
    assert_eq!(store.tasks(project, &filter).await.unwrap().len(), slots);
    assert_eq!(s.run_count as usize, slots);
    assert_eq!(s.status, ScheduleStatus::Complete);
}
