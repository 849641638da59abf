//! A code's `max_concurrency` over time: a throttled backlog drains in dispatch order, one
//! freed slot at a time, whatever happens to it meanwhile (tasks queued later at a higher
//! priority, limits set and lifted, cancels, requeues, delays, many workers at once).
//! Postgres keeps only a limited code's best tasks in its dispatch index
//! (`migrations/0007_admission.sql`); these rules hold it to the same answers as SQLite.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use ferrum_model::validation::{new_schedule, ScheduleOptions};
use ferrum_model::{CodeSpec, Id, TaskStatus};
use ferrum_store::LeasedTask;

use super::world::{outcome, runner, spec, task, world, Backend, World};

fn limited(max: i32) -> CodeSpec {
    CodeSpec {
        max_concurrency: Some(max),
        ..CodeSpec::default()
    }
}

async fn finish(w: &World, leased: &[LeasedTask]) {
    for l in leased {
        w.store
            .complete(l.id, runner(), l.attempt, outcome(TaskStatus::Complete))
            .await
            .unwrap();
    }
}

fn ids(leased: &[LeasedTask]) -> Vec<Id> {
    leased.iter().map(|l| l.id).collect()
}

pub async fn a_limited_backlog_drains_in_priority_order_one_slot_at_a_time(backend: Backend) {
    let w = world(backend).await;
    w.code("c", limited(2)).await;
    let mut queued = Vec::new();
    for priority in [0, 1, 2, 0, 1, 2] {
        queued.push((priority, w.queue("c", priority, 0).await));
    }
    let batch = (0..6).map(|i| task("c", i % 3, 0)).collect();
    let ids_of_batch = w.store.enqueue(w.project, batch).await.unwrap();
    queued.extend((0..6).map(|i| (i % 3, ids_of_batch[i as usize])));
    let mut expected = queued.clone();
    expected.sort_by_key(|(priority, _)| -priority);

    let mut order = Vec::new();
    loop {
        let leased = w.lease(10).await;
        if leased.is_empty() {
            break;
        }
        assert!(leased.len() <= 2, "never more than the limit at once");
        assert!(w.lease(10).await.is_empty(), "the limit is reached");
        order.extend(ids(&leased));
        finish(&w, &leased).await;
    }
    let expected: Vec<Id> = expected.into_iter().map(|(_, id)| id).collect();
    assert_eq!(order, expected, "highest priority first, then oldest");
}

pub async fn a_later_higher_priority_task_of_a_limited_code_goes_first(backend: Backend) {
    let w = world(backend).await;
    w.code("c", limited(1)).await;
    let low = w.queue("c", 0, 0).await;
    let high = w.queue("c", 2, 0).await;
    let first = w.lease(10).await;
    assert_eq!(ids(&first), vec![high]);
    finish(&w, &first).await;
    assert_eq!(ids(&w.lease(10).await), vec![low]);
}

pub async fn tasks_a_schedule_or_a_webhook_queues_for_a_limited_code_run_at_once(backend: Backend) {
    let w = world(backend).await;
    w.code("c", limited(1)).await;
    let once = ScheduleOptions {
        start_at: Some(Utc::now() - chrono::Duration::seconds(1)),
        ..ScheduleOptions::default()
    };
    let schedule = new_schedule("c", b"{}".to_vec(), once, Utc::now()).unwrap();
    w.store
        .create_schedules(w.project, vec![schedule], None)
        .await
        .unwrap();
    let fired = w.store.fire_due(Utc::now(), 10).await.unwrap();
    assert_eq!(fired.len(), 1);
    let leased = w.lease(10).await;
    assert_eq!(ids(&leased), fired, "the scheduled task");
    finish(&w, &leased).await;

    let delivery = w
        .store
        .enqueue_once(w.project, "hook", "k", task("c", 0, 0))
        .await
        .unwrap();
    assert_eq!(
        ids(&w.lease(10).await),
        vec![delivery.task_id],
        "the webhook's task"
    );
}

pub async fn a_limit_set_or_lifted_applies_to_the_queued_backlog(backend: Backend) {
    let w = world(backend).await;
    w.code("c", CodeSpec::default()).await;
    for _ in 0..6 {
        w.queue("c", 0, 0).await;
    }
    w.code("c", limited(2)).await;
    assert_eq!(
        w.lease(10).await.len(),
        2,
        "the new limit holds the backlog"
    );
    w.code("c", CodeSpec::default()).await;
    assert_eq!(w.lease(10).await.len(), 4, "without a limit all of it runs");
}

pub async fn cancels_requeues_and_delays_do_not_strand_a_limited_backlog(backend: Backend) {
    let w = world(backend).await;
    w.code("c", limited(1)).await;
    let best = w.queue("c", 2, 0).await;
    let next = w.queue("c", 1, 0).await;
    let delayed = w.queue("c", 2, 1).await;
    let last = w.queue("c", 0, 0).await;

    w.store.cancel(w.project, best).await.unwrap();
    w.store.reap_expired(3).await.unwrap();
    let short = w
        .store
        .lease(&spec(10, Duration::from_millis(1)))
        .await
        .unwrap();
    assert_eq!(
        ids(&short),
        vec![next],
        "the cancelled task's place is taken"
    );

    tokio::time::sleep(Duration::from_millis(1100)).await;
    let reaped = w.store.reap_expired(3).await.unwrap();
    assert_eq!(reaped.requeued, 1);
    let mut rest = Vec::new();
    loop {
        let leased = w.lease(10).await;
        if leased.is_empty() {
            break;
        }
        assert_eq!(leased.len(), 1);
        rest.extend(ids(&leased));
        finish(&w, &leased).await;
    }
    assert_eq!(
        rest,
        vec![delayed, next, last],
        "the due delayed task, the requeued one, then the rest"
    );
}

pub async fn workers_and_producers_at_once_never_exceed_a_code_limit(backend: Backend) {
    const LIMIT: i64 = 3;
    const PER_PRODUCER: usize = 25;
    let w = Arc::new(world(backend).await);
    w.code("c", limited(LIMIT as i32)).await;
    let producers: Vec<_> = (0..4)
        .map(|_| {
            let w = w.clone();
            tokio::spawn(async move {
                for i in 0..PER_PRODUCER {
                    w.queue("c", (i % 3) as i32, 0).await;
                }
            })
        })
        .collect();
    let running = Arc::new(AtomicI64::new(0));
    let peak = Arc::new(AtomicI64::new(0));
    let done = Arc::new(AtomicI64::new(0));
    let total = (4 * PER_PRODUCER) as i64;
    let workers: Vec<_> = (0..6)
        .map(|_| {
            let (w, running, peak, done) = (w.clone(), running.clone(), peak.clone(), done.clone());
            tokio::spawn(async move {
                while done.load(Ordering::SeqCst) < total {
                    let leased = w.lease(2).await;
                    let now = running.fetch_add(leased.len() as i64, Ordering::SeqCst);
                    peak.fetch_max(now + leased.len() as i64, Ordering::SeqCst);
                    for l in &leased {
                        running.fetch_sub(1, Ordering::SeqCst);
                        w.store
                            .complete(l.id, runner(), l.attempt, outcome(TaskStatus::Complete))
                            .await
                            .unwrap();
                        done.fetch_add(1, Ordering::SeqCst);
                    }
                    if leased.is_empty() {
                        w.store.reap_expired(3).await.unwrap();
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
            })
        })
        .collect();
    for p in producers {
        p.await.unwrap();
    }
    let all_done = async {
        for wk in workers {
            wk.await.unwrap();
        }
    };
    tokio::time::timeout(Duration::from_secs(60), all_done)
        .await
        .expect("every task runs");
    assert_eq!(done.load(Ordering::SeqCst), total);
    assert!(peak.load(Ordering::SeqCst) <= LIMIT, "the limit held");
}
