//! Task events: every path that ends a task writes exactly one event, in the statement that
//! ends it; events are claimed by one consumer at a time and gone once deleted.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use ferrum_model::{CodeSpec, Id, TaskStatus};
use ferrum_store::{Fenced, Outcome, TaskEvent};

use super::world::{outcome, runner, spec, world, Backend, World};

/// Claims and deletes every pending event; answers them per task.
async fn drain(w: &World) -> BTreeMap<Id, Vec<TaskEvent>> {
    let mut by_task: BTreeMap<Id, Vec<TaskEvent>> = BTreeMap::new();
    loop {
        let events = w
            .store
            .claim_task_events(100, Duration::from_secs(60))
            .await
            .unwrap();
        if events.is_empty() {
            return by_task;
        }
        let ids: Vec<i64> = events.iter().map(|e| e.id).collect();
        w.store.delete_task_events(&ids).await.unwrap();
        for e in events {
            by_task.entry(e.task_id).or_default().push(e);
        }
    }
}

fn statuses(events: &BTreeMap<Id, Vec<TaskEvent>>, id: Id) -> Vec<(TaskStatus, bool)> {
    events
        .get(&id)
        .map(|v| v.iter().map(|e| (e.status, e.retried)).collect())
        .unwrap_or_default()
}

/// Completions one at a time and many at once (Postgres coalesces those into shared
/// statements), each once: a repeated completion is stale and writes no second event.
pub async fn every_completion_writes_exactly_one_event(backend: Backend) {
    let w = Arc::new(world(backend).await);
    w.code("c", CodeSpec::default()).await;
    let mut ids = Vec::new();
    for _ in 0..40 {
        ids.push(w.queue("c", 0, 0).await);
    }
    let leased = w.lease(40).await;
    assert_eq!(leased.len(), 40);
    let mut done = Vec::new();
    for l in leased {
        let w = Arc::clone(&w);
        done.push(tokio::spawn(async move {
            let first = w
                .store
                .complete(l.id, runner(), l.attempt, outcome(TaskStatus::Complete))
                .await
                .unwrap();
            let again = w
                .store
                .complete(l.id, runner(), l.attempt, outcome(TaskStatus::Complete))
                .await
                .unwrap();
            assert_eq!((first, again), (Fenced::Current(None), Fenced::Stale));
        }));
    }
    for d in done {
        d.await.unwrap();
    }
    let events = drain(&w).await;
    assert_eq!(events.len(), 40);
    for id in &ids {
        assert_eq!(statuses(&events, *id), vec![(TaskStatus::Complete, false)]);
        let e = &events[id][0];
        assert_eq!(
            (e.project_id, e.batch_id, e.parent_id),
            (w.project, None, None)
        );
    }
    assert!(
        drain(&w).await.is_empty(),
        "deleted events do not come back"
    );
}

/// A failure with retries left is an event marked `retried`; the retry's end is another.
/// Timeouts and errors without retries are plain events.
pub async fn failures_write_one_event_per_attempted_task(backend: Backend) {
    let w = world(backend).await;
    let retrying = CodeSpec {
        retries: 1,
        ..CodeSpec::default()
    };
    w.code("c", retrying).await;
    let id = w.queue("c", 0, 0).await;
    let l = w.lease(1).await;
    let failed = Outcome {
        status: TaskStatus::Error,
        exit_code: Some(1),
        msg: None,
    };
    let Fenced::Current(Some(retry)) = w
        .store
        .complete(id, runner(), l[0].attempt, failed)
        .await
        .unwrap()
    else {
        panic!("a retry must be queued");
    };
    let l = w.lease(1).await;
    assert_eq!(l[0].id, retry);
    w.store
        .complete(retry, runner(), l[0].attempt, outcome(TaskStatus::Timeout))
        .await
        .unwrap();
    let events = drain(&w).await;
    assert_eq!(statuses(&events, id), vec![(TaskStatus::Error, true)]);
    assert_eq!(statuses(&events, retry), vec![(TaskStatus::Timeout, false)]);
    assert_eq!(events.len(), 2);
}

/// Cancels: a queued task at once, a leased one when its runner reports the stop, every task
/// of a code (cancel-all and deleting the code); a task already final writes nothing again.
pub async fn cancels_write_one_event_per_task(backend: Backend) {
    let w = world(backend).await;
    let code = w.code("c", CodeSpec::default()).await;
    let other = w.code("d", CodeSpec::default()).await;
    let queued = w.queue("c", 0, 3600).await;
    let leased = w.queue("c", 0, 0).await;
    let attempt = w.lease(1).await[0].attempt;
    let s = &*w.store;
    s.cancel(w.project, queued).await.unwrap();
    s.cancel(w.project, leased).await.unwrap();
    assert_eq!(
        statuses(&drain(&w).await, queued),
        vec![(TaskStatus::Cancelled, false)]
    );
    s.complete(leased, runner(), attempt, outcome(TaskStatus::Cancelled))
        .await
        .unwrap();
    s.cancel(w.project, leased).await.unwrap();
    s.cancel(w.project, queued).await.unwrap();
    let events = drain(&w).await;
    assert_eq!(events.len(), 1);
    assert_eq!(
        statuses(&events, leased),
        vec![(TaskStatus::Cancelled, false)]
    );

    let a = w.queue("c", 0, 0).await;
    let b = w.queue("c", 0, 0).await;
    assert_eq!(s.cancel_all(w.project, code).await.unwrap(), 2);
    s.cancel_all(w.project, code).await.unwrap();
    let c = w.queue("d", 0, 0).await;
    assert!(s.delete_code(w.project, other).await.unwrap());
    let events = drain(&w).await;
    assert_eq!(events.len(), 3);
    for id in [a, b, c] {
        assert_eq!(statuses(&events, id), vec![(TaskStatus::Cancelled, false)]);
    }
}

/// The reaper: a requeue is no event; a lost task out of attempts is `killed`, a lost task
/// with a cancel requested is `cancelled`, one event each.
pub async fn the_reaper_writes_events_for_the_tasks_it_ends(backend: Backend) {
    let w = world(backend).await;
    w.code("c", CodeSpec::default()).await;
    let lost = w.queue("c", 0, 0).await;
    let s = &*w.store;
    for _ in 0..2 {
        assert_eq!(s.lease(&spec(1, Duration::ZERO)).await.unwrap().len(), 1);
        tokio::time::sleep(Duration::from_millis(5)).await;
        s.reap_expired(2).await.unwrap();
        if s.task(w.project, lost).await.unwrap().unwrap().status == TaskStatus::Queued {
            assert!(drain(&w).await.is_empty(), "a requeue is not an event");
        }
    }
    let cancelled = w.queue("c", 0, 0).await;
    assert_eq!(
        s.lease(&spec(1, Duration::ZERO)).await.unwrap()[0].id,
        cancelled
    );
    s.cancel(w.project, cancelled).await.unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    s.reap_expired(5).await.unwrap();
    let events = drain(&w).await;
    assert_eq!(statuses(&events, lost), vec![(TaskStatus::Killed, false)]);
    assert_eq!(
        statuses(&events, cancelled),
        vec![(TaskStatus::Cancelled, false)]
    );
    assert_eq!(events.len(), 2);
}

/// Concurrent consumers get disjoint events; a claim that runs out hands the event to the
/// next claimer (a consumer that crashed), one that holds keeps it from others.
pub async fn claimed_events_go_to_one_consumer_until_their_claim_runs_out(backend: Backend) {
    let w = Arc::new(world(backend).await);
    let code = w.code("c", CodeSpec::default()).await;
    for _ in 0..30 {
        w.queue("c", 0, 0).await;
    }
    w.store.cancel_all(w.project, code).await.unwrap();
    let mut claims = Vec::new();
    for _ in 0..4 {
        let w = Arc::clone(&w);
        claims.push(tokio::spawn(async move {
            w.store
                .claim_task_events(10, Duration::from_secs(60))
                .await
                .unwrap()
        }));
    }
    let mut seen = Vec::new();
    for c in claims {
        seen.extend(c.await.unwrap().into_iter().map(|e| e.id));
    }
    let mut unique = seen.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(
        (seen.len(), unique.len()),
        (30, 30),
        "each event claimed once"
    );
    let held = w
        .store
        .claim_task_events(100, Duration::ZERO)
        .await
        .unwrap();
    assert!(held.is_empty(), "claims still hold");

    let s = &*w.store;
    let id = w.queue("c", 0, 0).await;
    s.cancel(w.project, id).await.unwrap();
    let first = s.claim_task_events(10, Duration::ZERO).await.unwrap();
    assert_eq!(first.len(), 1);
    tokio::time::sleep(Duration::from_millis(5)).await;
    let again = s
        .claim_task_events(10, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(again, first, "an expired claim comes back");
    s.delete_task_events(&[first[0].id]).await.unwrap();
}
