//! Batches: items are ordinary tasks with their place in the batch; the fan-in counts each
//! item once (after its retries) and queues the reduce exactly once, or fails the batch when
//! its failure tolerance is exceeded.

use std::sync::Arc;
use std::time::Duration;

use ferrum_model::{BatchStatus, Id, NewBatch, NewReduce, TaskStatus};
use ferrum_store::{StoreError, TaskEvent};

use super::world::{outcome, runner, world, Backend, World};

fn new_batch(n: usize, reduce: bool) -> NewBatch {
    NewBatch {
        code_name: "map".into(),
        payloads: (1..=n).map(|i| i.to_string().into_bytes()).collect(),
        reduce: reduce.then(|| NewReduce {
            code_name: "sum".into(),
            payload: b"{\"r\":1}".to_vec(),
            timeout: 60,
            priority: None,
        }),
        timeout: 60,
        cluster: "default".into(),
        ..NewBatch::default()
    }
}

async fn setup(backend: Backend) -> World {
    let w = world(backend).await;
    w.code("map", Default::default()).await;
    w.code("sum", Default::default()).await;
    w
}

/// Claims and deletes every pending event.
async fn events(w: &World) -> Vec<TaskEvent> {
    let mut all = Vec::new();
    loop {
        let evs = w
            .store
            .claim_task_events(500, Duration::from_secs(60))
            .await
            .unwrap();
        if evs.is_empty() {
            return all;
        }
        let ids: Vec<i64> = evs.iter().map(|e| e.id).collect();
        w.store.delete_task_events(&ids).await.unwrap();
        all.extend(evs);
    }
}

/// Leases up to `n` tasks and ends each with the status `f` picks by payload.
async fn run(w: &World, n: u32, f: impl Fn(&[u8]) -> TaskStatus) -> Vec<Id> {
    let leased = w.lease(n).await;
    let mut ids = Vec::new();
    for l in leased {
        let st = f(&l.payload);
        w.store
            .complete(l.id, runner(), l.attempt, outcome(st))
            .await
            .unwrap();
        ids.push(l.id);
    }
    ids
}

pub async fn batch_items_are_tasks_and_a_failed_item_still_reduces_once(backend: Backend) {
    let w = setup(backend).await;
    let mut nb = new_batch(5, true);
    nb.retries = Some(1);
    nb.label = Some("l".into());
    let b = w.store.create_batch(w.project, nb).await.unwrap();
    assert_eq!((b.status, b.total, b.done), (BatchStatus::Running, 5, 0));
    let items = w
        .store
        .batch_items(w.project, b.id, None, 100)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        items.iter().map(|i| i.index).collect::<Vec<_>>(),
        vec![0, 1, 2, 3, 4]
    );
    let t = w
        .store
        .task(w.project, items[3].task_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (t.origin.batch_id, t.origin.batch_index),
        (Some(b.id), Some(3))
    );
    assert_eq!(
        (t.payload.as_slice(), t.label.as_deref()),
        (&b"4"[..], Some("l"))
    );

    // Items 2 and 4 fail: each is retried once, and fails again.
    let fail = |p: &[u8]| {
        if p == b"2" || p == b"4" {
            TaskStatus::Error
        } else {
            TaskStatus::Complete
        }
    };
    run(&w, 10, fail).await;
    let evs = events(&w).await;
    assert!(w.store.fan_in(&evs).await.unwrap().reduces.is_empty());
    let got = w.store.batch(w.project, b.id).await.unwrap().unwrap();
    assert_eq!(
        (got.status, got.done, got.failed),
        (BatchStatus::Running, 3, 0)
    );
    run(&w, 10, fail).await;
    let evs = events(&w).await;
    let reduces = w.store.fan_in(&evs).await.unwrap().reduces;
    assert_eq!(reduces.len(), 1);
    // Delivered again (a replica crashed before deleting them): nothing more happens.
    assert!(w.store.fan_in(&evs).await.unwrap().reduces.is_empty());
    let got = w.store.batch(w.project, b.id).await.unwrap().unwrap();
    assert_eq!(
        (got.status, got.done, got.failed, got.reduce_task_id),
        (BatchStatus::Reducing, 5, 2, Some(reduces[0]))
    );
    assert_eq!(got.counts.get(&TaskStatus::Complete), Some(&3));
    assert_eq!(got.counts.get(&TaskStatus::Error), Some(&2));
    let items = w
        .store
        .batch_items(w.project, b.id, Some(0), 2)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        items.iter().map(|i| i.index).collect::<Vec<_>>(),
        vec![1, 2]
    );
    // Index 1 (payload "2") failed twice: its slot shows the retry.
    assert_eq!(
        (items[0].status, items[1].status),
        (TaskStatus::Error, TaskStatus::Complete)
    );
    let retried = w
        .store
        .task(w.project, items[0].task_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (retried.origin.retry_count, retried.origin.batch_index),
        (1, Some(1))
    );

    let reduce = w.lease(10).await;
    assert_eq!(reduce.len(), 1);
    assert_eq!(
        (reduce[0].id, reduce[0].payload.as_slice()),
        (reduces[0], &b"{\"r\":1}"[..])
    );
    let rt = w
        .store
        .task(w.project, reduce[0].id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (rt.origin.batch_id, rt.origin.batch_index),
        (Some(b.id), None)
    );
    w.store
        .complete(
            reduce[0].id,
            runner(),
            reduce[0].attempt,
            outcome(TaskStatus::Complete),
        )
        .await
        .unwrap();
    let evs = events(&w).await;
    w.store.fan_in(&evs).await.unwrap();
    let got = w.store.batch(w.project, b.id).await.unwrap().unwrap();
    assert_eq!(got.status, BatchStatus::Complete);
}

/// Several replicas handing the same events to the fan-in at once queue one reduce.
pub async fn concurrent_fan_ins_queue_one_reduce(backend: Backend) {
    let w = Arc::new(setup(backend).await);
    let b = w
        .store
        .create_batch(w.project, new_batch(20, true))
        .await
        .unwrap();
    run(&w, 20, |_| TaskStatus::Complete).await;
    let evs = Arc::new(events(&w).await);
    let mut handles = Vec::new();
    for _ in 0..4 {
        let (w, evs) = (Arc::clone(&w), Arc::clone(&evs));
        handles.push(tokio::spawn(
            async move { w.store.fan_in(&evs).await.unwrap() },
        ));
    }
    let mut reduces = Vec::new();
    for h in handles {
        reduces.extend(h.await.unwrap().reduces);
    }
    assert_eq!(reduces.len(), 1);
    let got = w.store.batch(w.project, b.id).await.unwrap().unwrap();
    assert_eq!((got.status, got.done), (BatchStatus::Reducing, 20));
    assert_eq!(w.lease(50).await.len(), 1);
}

pub async fn an_exceeded_tolerance_fails_the_batch_and_cancels_the_rest(backend: Backend) {
    let w = setup(backend).await;
    let mut nb = new_batch(10, true);
    nb.tolerated_failure_count = Some(1);
    let b = w.store.create_batch(w.project, nb).await.unwrap();
    run(&w, 2, |_| TaskStatus::Error).await;
    let evs = events(&w).await;
    assert!(w.store.fan_in(&evs).await.unwrap().reduces.is_empty());
    let got = w.store.batch(w.project, b.id).await.unwrap().unwrap();
    assert_eq!(got.status, BatchStatus::Failed);
    assert!(
        got.msg.as_deref().unwrap().contains("2 of 10 items failed"),
        "{:?}",
        got.msg
    );
    assert_eq!(got.counts.get(&TaskStatus::Cancelled), Some(&8));
    // The cancellations' events change nothing, and no reduce ever runs.
    let evs = events(&w).await;
    assert_eq!(evs.len(), 8);
    assert!(w.store.fan_in(&evs).await.unwrap().reduces.is_empty());
    assert!(w.lease(50).await.is_empty());
    let got = w.store.batch(w.project, b.id).await.unwrap().unwrap();
    assert_eq!(
        (got.status, got.reduce_task_id),
        (BatchStatus::Failed, None)
    );
}

pub async fn a_batch_without_reduce_completes_and_cancel_stops_the_rest(backend: Backend) {
    let w = setup(backend).await;
    let a = w
        .store
        .create_batch(w.project, new_batch(3, false))
        .await
        .unwrap();
    run(&w, 3, |_| TaskStatus::Complete).await;
    w.store.fan_in(&events(&w).await).await.unwrap();
    let got = w.store.batch(w.project, a.id).await.unwrap().unwrap();
    assert_eq!(got.status, BatchStatus::Complete);

    let b = w
        .store
        .create_batch(w.project, new_batch(4, true))
        .await
        .unwrap();
    let leased = w.lease(1).await;
    assert_eq!(
        w.store.cancel_batch(w.project, b.id).await.unwrap(),
        Some(BatchStatus::Cancelled)
    );
    let got = w.store.batch(w.project, b.id).await.unwrap().unwrap();
    assert_eq!(got.counts.get(&TaskStatus::Cancelled), Some(&3));
    let running = w
        .store
        .task(w.project, leased[0].id)
        .await
        .unwrap()
        .unwrap();
    assert!(running.cancel_requested);
    w.store
        .complete(
            leased[0].id,
            runner(),
            leased[0].attempt,
            outcome(TaskStatus::Cancelled),
        )
        .await
        .unwrap();
    assert!(w
        .store
        .fan_in(&events(&w).await)
        .await
        .unwrap()
        .reduces
        .is_empty());
    let listed = w
        .store
        .batches(w.project, Default::default())
        .await
        .unwrap();
    assert_eq!(
        listed.iter().map(|b| b.id).collect::<Vec<_>>(),
        vec![b.id, a.id]
    );
    assert_eq!(listed[0].status, BatchStatus::Cancelled);
}

pub async fn batches_are_all_or_nothing_and_per_project(backend: Backend) {
    let w = setup(backend).await;
    let mut nb = new_batch(3, true);
    nb.code_name = "nope".into();
    assert!(matches!(
        w.store.create_batch(w.project, nb).await,
        Err(StoreError::UnknownCode(_))
    ));
    let mut nb = new_batch(3, true);
    nb.reduce.as_mut().unwrap().code_name = "nope".into();
    assert!(matches!(
        w.store.create_batch(w.project, nb).await,
        Err(StoreError::UnknownCode(_))
    ));
    assert!(w
        .store
        .batches(w.project, Default::default())
        .await
        .unwrap()
        .is_empty());
    assert!(w.lease(10).await.is_empty());

    let b = w
        .store
        .create_batch(w.project, new_batch(12_000, false))
        .await
        .unwrap();
    assert_eq!(b.total, 12_000);
    let user = w.store.create_user("o@example.com", false).await.unwrap();
    let other = w.store.create_project(user, "q").await.unwrap().id;
    assert!(w.store.batch(other, b.id).await.unwrap().is_none());
    assert!(w
        .store
        .batch_items(other, b.id, None, 10)
        .await
        .unwrap()
        .is_none());
    assert_eq!(w.store.cancel_batch(other, b.id).await.unwrap(), None);
    assert!(w
        .store
        .batches(other, Default::default())
        .await
        .unwrap()
        .is_empty());
    let items = w
        .store
        .batch_items(w.project, b.id, Some(11_997), 10)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        items.iter().map(|i| i.index).collect::<Vec<_>>(),
        vec![11_998, 11_999]
    );
    let got = w.store.batch(w.project, b.id).await.unwrap().unwrap();
    assert_eq!(got.counts.get(&TaskStatus::Queued), Some(&12_000));
}

/// Indexes of leased batch items, sorted.
fn indexes(leased: &[ferrum_store::LeasedTask]) -> Vec<i32> {
    let mut ix: Vec<i32> = leased
        .iter()
        .map(|l| String::from_utf8_lossy(&l.payload).parse::<i32>().unwrap() - 1)
        .collect();
    ix.sort();
    ix
}

pub async fn max_concurrency_releases_one_parked_item_per_finished_one(backend: Backend) {
    let w = setup(backend).await;
    let mut nb = new_batch(6, true);
    nb.max_concurrency = Some(2);
    let b = w.store.create_batch(w.project, nb).await.unwrap();
    let first = w.lease(50).await;
    assert_eq!(indexes(&first), vec![0, 1], "only the window is leasable");
    assert!(w.lease(50).await.is_empty());

    // A parked item cancelled by its user is counted, but frees no slot.
    let parked = w.store.tasks(w.project, &Default::default()).await.unwrap();
    let last = parked
        .iter()
        .find(|t| t.origin.batch_index == Some(5))
        .unwrap();
    w.store.cancel(w.project, last.id).await.unwrap();
    let report = w.store.fan_in(&events(&w).await).await.unwrap();
    assert_eq!(report.released, 0);
    assert!(w.lease(50).await.is_empty());

    // Each finished released item releases the next parked one, in index order.
    w.store
        .complete(
            first[0].id,
            runner(),
            first[0].attempt,
            outcome(TaskStatus::Error),
        )
        .await
        .unwrap();
    let report = w.store.fan_in(&events(&w).await).await.unwrap();
    assert_eq!(report.released, 1);
    assert!(report.queued_any());
    let next = w.lease(50).await;
    assert_eq!(indexes(&next), vec![2]);
    // Redelivered events release nothing more.
    assert_eq!(w.store.fan_in(&[]).await.unwrap(), Default::default());

    for l in [&first[1], &next[0]] {
        w.store
            .complete(l.id, runner(), l.attempt, outcome(TaskStatus::Complete))
            .await
            .unwrap();
    }
    assert_eq!(w.store.fan_in(&events(&w).await).await.unwrap().released, 2);
    let rest = w.lease(50).await;
    assert_eq!(indexes(&rest), vec![3, 4]);
    for l in &rest {
        w.store
            .complete(l.id, runner(), l.attempt, outcome(TaskStatus::Complete))
            .await
            .unwrap();
    }
    let report = w.store.fan_in(&events(&w).await).await.unwrap();
    assert_eq!((report.released, report.reduces.len()), (0, 1));
    let got = w.store.batch(w.project, b.id).await.unwrap().unwrap();
    assert_eq!(
        (got.status, got.done, got.failed),
        (BatchStatus::Reducing, 6, 2)
    );
}

pub async fn a_batch_past_the_queued_cap_is_refused_whole(backend: Backend) {
    use ferrum_store::ProjectQuotas;
    let w = setup(backend).await;
    let q = ProjectQuotas {
        max_queued: Some(5),
        ..ProjectQuotas::default()
    };
    assert!(w.store.set_project_quotas(w.project, &q).await.unwrap());
    match w.store.create_batch(w.project, new_batch(6, false)).await {
        Err(StoreError::QuotaExceeded { msg, .. }) => assert!(msg.contains("max_queued"), "{msg}"),
        other => panic!("{other:?}"),
    }
    assert!(w.lease(50).await.is_empty(), "nothing was written");
    assert!(w
        .store
        .batches(w.project, Default::default())
        .await
        .unwrap()
        .is_empty());
    w.store
        .create_batch(w.project, new_batch(5, false))
        .await
        .unwrap();
}
