//! What operators read: the schema state, queue depth per cluster and priority (due tasks
//! only, leased ones not counted, deepest first within the cap) and finished tasks' timings.

use chrono::Utc;
use ferrum_model::{CodeSpec, TaskStatus};

use super::world::{outcome, runner, world, Backend};

pub async fn queue_depths_count_due_unleased_tasks_deepest_first(backend: Backend) {
    let w = world(backend).await;
    assert!(w.store.schema_state().await.unwrap().missing.is_empty());
    w.code("c", CodeSpec::default()).await;
    let before = Utc::now();
    for _ in 0..3 {
        w.queue("c", 0, 0).await;
    }
    for _ in 0..2 {
        w.queue("c", 2, 0).await;
    }
    w.queue("c", 1, 3600).await; // not due
    let leased = w.lease(1).await; // a priority-2 task
    assert_eq!(leased.len(), 1);

    let mut depths = w.store.queue_depths(Utc::now(), 10).await.unwrap();
    depths.sort_by_key(|d| d.priority);
    let got: Vec<_> = depths
        .iter()
        .map(|d| (d.cluster.as_str(), d.priority, d.depth))
        .collect();
    assert_eq!(got, vec![("default", 0, 3), ("default", 2, 1)]);
    assert!(depths
        .iter()
        .all(|d| d.oldest_run_at >= before - chrono::Duration::seconds(1)));
    let top = w.store.queue_depths(Utc::now(), 1).await.unwrap();
    assert_eq!(top.len(), 1);
    assert_eq!((top[0].priority, top[0].depth), (0, 3));

    let l = &leased[0];
    w.store
        .complete(l.id, runner(), l.attempt, outcome(TaskStatus::Complete))
        .await
        .unwrap();
    let timings = w.store.task_timings(&[l.id]).await.unwrap();
    assert_eq!(timings.len(), 1);
    assert_eq!(
        (
            timings[0].id,
            timings[0].status,
            timings[0].cluster.as_str()
        ),
        (l.id, TaskStatus::Complete, "default")
    );
    assert!(timings[0].end_time.is_some());
    assert!(w.store.task_timings(&[]).await.unwrap().is_empty());
}

/// Quotas round-trip, and past the queued cap or the rate an enqueue is refused whole.
pub async fn quotas_refuse_enqueues_past_the_cap_and_the_rate_writing_nothing(backend: Backend) {
    use ferrum_store::{ProjectQuotas, StoreError};
    let w = world(backend).await;
    w.code("c", CodeSpec::default()).await;
    assert_eq!(
        w.store.project_quotas(w.project).await.unwrap(),
        Some(ProjectQuotas::default())
    );
    let q = ProjectQuotas {
        max_queued: Some(3),
        ..ProjectQuotas::default()
    };
    assert!(w.store.set_project_quotas(w.project, &q).await.unwrap());
    assert_eq!(w.store.project_quotas(w.project).await.unwrap(), Some(q));
    w.queue("c", 0, 0).await;
    w.queue("c", 0, 0).await;
    let two = vec![super::world::task("c", 0, 0), super::world::task("c", 0, 0)];
    match w.store.enqueue(w.project, two).await {
        Err(StoreError::QuotaExceeded { msg, .. }) => assert!(msg.contains("max_queued"), "{msg}"),
        other => panic!("{other:?}"),
    }
    // A leased task no longer waits: it makes room.
    assert_eq!(w.lease(1).await.len(), 1);
    let two = vec![super::world::task("c", 0, 0), super::world::task("c", 0, 0)];
    assert_eq!(w.store.enqueue(w.project, two).await.unwrap().len(), 2);

    let rate = ProjectQuotas {
        tasks_per_minute: Some(2),
        ..ProjectQuotas::default()
    };
    assert!(w.store.set_project_quotas(w.project, &rate).await.unwrap());
    w.queue("c", 0, 0).await;
    w.queue("c", 0, 0).await;
    match w
        .store
        .enqueue(w.project, vec![super::world::task("c", 0, 0)])
        .await
    {
        Err(StoreError::QuotaExceeded {
            retry_after_secs, ..
        }) => assert!(retry_after_secs >= 1),
        other => panic!("{other:?}"),
    }
    assert!(!w
        .store
        .set_project_quotas(ferrum_model::Id::generate(), &rate)
        .await
        .unwrap());
}
