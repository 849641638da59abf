//! The store contract: rules every backend must keep. Each test gets a fresh database.
//! Every test runs against every backend: the `contract!` list at the end generates
//! `pg::<test>` and `sqlite::<test>`; a new backend joins by adding a [`Backend`] variant.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use ferrum_model::protocol::LogStream;
use ferrum_model::validation::{new_schedule, ScheduleOptions};
use ferrum_model::{CodeSpec, Id, NewRevision, NewTask, Page, TaskFilter, TaskStatus};
use ferrum_store::testing::{self, TempDb};
use ferrum_store::{Fenced, LeaseSpec, Outcome, Store, StoreError};

#[derive(Debug, Clone, Copy)]
enum Backend {
    Pg,
    Sqlite,
}

struct World {
    store: Arc<dyn Store>,
    project: Id,
    /// Keeps a SQLite database's directory alive for the test.
    _db: Option<TempDb>,
}

async fn world(backend: Backend) -> World {
    let (store, db): (Arc<dyn Store>, _) = match backend {
        Backend::Pg => (Arc::new(testing::fresh_store().await.unwrap().0), None),
        Backend::Sqlite => {
            let (store, db) = testing::fresh_sqlite_store().await.unwrap();
            (Arc::new(store), Some(db))
        }
    };
    let user = store.create_user("t@example.com", false).await.unwrap();
    let project = store.create_project(user, "p").await.unwrap().id;
    World {
        store,
        project,
        _db: db,
    }
}

impl World {
    async fn code(&self, name: &str, spec: CodeSpec) -> Id {
        let rev = NewRevision {
            name: name.into(),
            spec,
            zip: None,
        };
        self.store.put_revision(self.project, rev).await.unwrap().id
    }

    async fn queue(&self, code: &str, priority: i32, delay: i32) -> Id {
        let t = task(code, priority, delay);
        self.store.enqueue(self.project, vec![t]).await.unwrap()[0]
    }

    async fn lease(&self, max: u32) -> Vec<ferrum_store::LeasedTask> {
        self.store
            .lease(&spec(max, Duration::from_secs(30)))
            .await
            .unwrap()
    }
}

fn task(code: &str, priority: i32, delay: i32) -> NewTask {
    NewTask {
        code_name: code.into(),
        payload: b"{}".to_vec(),
        priority: Some(priority),
        timeout: 3600,
        delay,
        cluster: "default".into(),
        ..NewTask::default()
    }
}

fn spec(max: u32, lease_for: Duration) -> LeaseSpec {
    LeaseSpec {
        runner_id: Id::generate(),
        cluster: "default".into(),
        max_tasks: max,
        lease_for,
    }
}

fn outcome(status: TaskStatus) -> Outcome {
    Outcome {
        status,
        exit_code: None,
        msg: None,
    }
}

async fn leases_highest_priority_first_then_oldest(backend: Backend) {
    let w = world(backend).await;
    w.code("c", CodeSpec::default()).await;
    let low = w.queue("c", 0, 0).await;
    let high_old = w.queue("c", 2, 0).await;
    let mid = w.queue("c", 1, 0).await;
    let high_new = w.queue("c", 2, 0).await;
    let order: Vec<Id> = w.lease(10).await.iter().map(|l| l.task.id).collect();
    assert_eq!(order, vec![high_old, high_new, mid, low]);
}

async fn delayed_tasks_wait_and_clusters_are_separate(backend: Backend) {
    let w = world(backend).await;
    w.code("c", CodeSpec::default()).await;
    w.queue("c", 0, 3600).await;
    let mut other = task("c", 0, 0);
    other.cluster = "gpu".into();
    w.store.enqueue(w.project, vec![other]).await.unwrap();
    assert!(
        w.lease(10).await.is_empty(),
        "delayed and other-cluster tasks must wait"
    );
    let mut gpu = spec(10, Duration::from_secs(30));
    gpu.cluster = "gpu".into();
    assert_eq!(w.store.lease(&gpu).await.unwrap().len(), 1);
    assert!(w.store.next_run_at("default").await.unwrap().is_some());
}

async fn paused_code_holds_its_tasks_until_resumed(backend: Backend) {
    let w = world(backend).await;
    let code = w.code("c", CodeSpec::default()).await;
    w.queue("c", 0, 0).await;
    assert_eq!(
        w.store.set_paused(w.project, code, true).await.unwrap(),
        Some(true)
    );
    assert_eq!(
        w.store.set_paused(w.project, code, true).await.unwrap(),
        Some(false)
    );
    assert!(w.lease(10).await.is_empty());
    w.store.set_paused(w.project, code, false).await.unwrap();
    assert_eq!(w.lease(10).await.len(), 1);
}

async fn code_max_concurrency_makes_tasks_wait_not_fail(backend: Backend) {
    let w = world(backend).await;
    let limited = CodeSpec {
        max_concurrency: Some(2),
        ..CodeSpec::default()
    };
    w.code("limited", limited).await;
    w.code("free", CodeSpec::default()).await;
    for _ in 0..5 {
        w.queue("limited", 2, 0).await;
    }
    let free = w.queue("free", 0, 0).await;
    let first = w.lease(10).await;
    assert_eq!(first.len(), 3, "two of the limited code and the free one");
    assert!(first.iter().any(|l| l.task.id == free));
    assert!(w.lease(10).await.is_empty());
    let done = &first
        .iter()
        .find(|l| l.task.code_name == "limited")
        .unwrap()
        .task;
    w.store
        .complete(done.id, done.attempt, outcome(TaskStatus::Complete))
        .await
        .unwrap();
    assert_eq!(w.lease(10).await.len(), 1, "a freed slot admits one more");
    let queued = TaskFilter {
        statuses: vec![TaskStatus::Queued],
        ..TaskFilter::default()
    };
    assert_eq!(w.store.tasks(w.project, &queued).await.unwrap().len(), 2);
}

async fn project_concurrency_limit_holds_across_concurrent_leasers(backend: Backend) {
    let w = world(backend).await;
    w.store
        .set_project_concurrency(w.project, Some(3))
        .await
        .unwrap();
    w.code("c", CodeSpec::default()).await;
    let tasks: Vec<NewTask> = (0..50).map(|_| task("c", 0, 0)).collect();
    w.store.enqueue(w.project, tasks).await.unwrap();
    let leasers = (0..8).map(|_| {
        let store = w.store.clone();
        tokio::spawn(async move { store.lease(&spec(2, Duration::from_secs(30))).await })
    });
    let mut total = 0;
    for l in leasers {
        total += l.await.unwrap().unwrap().len();
    }
    assert_eq!(total, 3);
}

async fn a_stale_attempt_cannot_overwrite_a_newer_one(backend: Backend) {
    let w = world(backend).await;
    w.code("c", CodeSpec::default()).await;
    let id = w.queue("c", 0, 0).await;
    let first = w
        .store
        .lease(&spec(1, Duration::from_millis(1)))
        .await
        .unwrap();
    let old_attempt = first[0].task.attempt;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let reaped = w.store.reap_expired(3).await.unwrap();
    assert_eq!(reaped.requeued, 1);
    let second = w.lease(1).await;
    assert_eq!(second[0].task.id, id);
    let new_attempt = second[0].task.attempt;
    assert!(new_attempt > old_attempt);
    let s = &*w.store;
    assert_eq!(
        s.heartbeat(id, old_attempt, Duration::from_secs(30))
            .await
            .unwrap(),
        Fenced::Stale
    );
    assert_eq!(
        s.append_log(id, old_attempt, 0, LogStream::Stdout, b"old", 1 << 20)
            .await
            .unwrap(),
        Fenced::Stale
    );
    assert_eq!(
        s.complete(id, old_attempt, outcome(TaskStatus::Error))
            .await
            .unwrap(),
        Fenced::Stale
    );
    assert_eq!(
        s.complete(id, new_attempt, outcome(TaskStatus::Complete))
            .await
            .unwrap(),
        Fenced::Current(None)
    );
    let t = s.task(w.project, id).await.unwrap().unwrap();
    assert_eq!(t.status, TaskStatus::Complete);
}

async fn expired_leases_are_retried_then_marked_killed(backend: Backend) {
    let w = world(backend).await;
    w.code("c", CodeSpec::default()).await;
    let id = w.queue("c", 0, 0).await;
    for _ in 0..2 {
        assert_eq!(
            w.store.lease(&spec(1, Duration::ZERO)).await.unwrap().len(),
            1
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
        w.store.reap_expired(2).await.unwrap();
    }
    let t = w.store.task(w.project, id).await.unwrap().unwrap();
    assert_eq!(t.status, TaskStatus::Killed);
    assert!(t.msg.unwrap().contains("lease expired"));
    assert!(w.lease(1).await.is_empty());
}

async fn heartbeats_keep_a_lease_alive(backend: Backend) {
    let w = world(backend).await;
    w.code("c", CodeSpec::default()).await;
    let id = w.queue("c", 0, 0).await;
    let l = w
        .store
        .lease(&spec(1, Duration::from_millis(50)))
        .await
        .unwrap();
    let attempt = l[0].task.attempt;
    assert_eq!(
        w.store
            .mark_running(id, attempt, Duration::from_secs(30))
            .await
            .unwrap(),
        Fenced::Current(false)
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(w.store.reap_expired(3).await.unwrap().requeued, 0);
    let t = w.store.task(w.project, id).await.unwrap().unwrap();
    assert_eq!(t.status, TaskStatus::Running);
    assert!(t.start_time.is_some());
}

async fn cancelling_queued_and_running_tasks(backend: Backend) {
    let w = world(backend).await;
    w.code("c", CodeSpec::default()).await;
    let queued = w.queue("c", 0, 3600).await;
    let running = w.queue("c", 0, 0).await;
    let attempt = w.lease(1).await[0].task.attempt;
    let s = &*w.store;
    assert_eq!(
        s.cancel(w.project, queued).await.unwrap(),
        Some(TaskStatus::Cancelled)
    );
    assert_eq!(
        s.cancel(w.project, running).await.unwrap(),
        Some(TaskStatus::Preparing)
    );
    assert_eq!(
        s.heartbeat(running, attempt, Duration::from_secs(30))
            .await
            .unwrap(),
        Fenced::Current(true),
        "the runner learns of the cancel from its heartbeat"
    );
    s.complete(running, attempt, outcome(TaskStatus::Cancelled))
        .await
        .unwrap();
    let done = s.cancel(w.project, running).await.unwrap();
    assert_eq!(
        done,
        Some(TaskStatus::Cancelled),
        "a finished task is left alone"
    );
    assert_eq!(s.cancel(w.project, Id::generate()).await.unwrap(), None);
}

async fn failures_with_retries_left_queue_linked_retries(backend: Backend) {
    let w = world(backend).await;
    let retrying = CodeSpec {
        retries: 1,
        retries_delay: 0,
        ..CodeSpec::default()
    };
    w.code("c", retrying).await;
    let id = w.queue("c", 1, 0).await;
    let l = w.lease(1).await;
    let failed = Outcome {
        status: TaskStatus::Error,
        exit_code: Some(3),
        msg: Some("boom".into()),
    };
    let Fenced::Current(Some(retry)) = w
        .store
        .complete(id, l[0].task.attempt, failed.clone())
        .await
        .unwrap()
    else {
        panic!("a retry must be queued");
    };
    let t = w.store.task(w.project, id).await.unwrap().unwrap();
    assert_eq!((t.status, t.exit_code), (TaskStatus::Error, Some(3)));
    assert_eq!(t.error_class.as_deref(), Some("Process Exit 3"));
    let r = w.store.task(w.project, retry).await.unwrap().unwrap();
    assert_eq!(
        (r.origin.original_task_id, r.origin.retry_count, r.priority),
        (Some(id), 1, 1)
    );
    let l2 = w.lease(1).await;
    assert_eq!(l2[0].task.id, retry);
    let again = w
        .store
        .complete(retry, l2[0].task.attempt, failed)
        .await
        .unwrap();
    assert_eq!(again, Fenced::Current(None), "out of retries");
}

async fn batch_enqueue_is_all_or_nothing(backend: Backend) {
    let w = world(backend).await;
    w.code("c", CodeSpec::default()).await;
    let batch = vec![task("c", 0, 0), task("missing", 0, 0), task("c", 0, 0)];
    let err = w.store.enqueue(w.project, batch).await.unwrap_err();
    assert!(matches!(err, StoreError::UnknownCode(name) if name == "missing"));
    assert!(w
        .store
        .tasks(w.project, &TaskFilter::default())
        .await
        .unwrap()
        .is_empty());
    let ids = w
        .store
        .enqueue(w.project, (0..100).map(|_| task("c", 0, 0)).collect())
        .await
        .unwrap();
    assert_eq!(ids.len(), 100);
    let listed = w
        .store
        .tasks(
            w.project,
            &TaskFilter {
                page: Page::new(None, Some(100)),
                ..TaskFilter::default()
            },
        )
        .await
        .unwrap();
    let mut newest_first = ids.clone();
    newest_first.reverse();
    assert_eq!(
        listed.iter().map(|t| t.id).collect::<Vec<_>>(),
        newest_first
    );
}

async fn log_chunks_are_ordered_idempotent_and_capped(backend: Backend) {
    let w = world(backend).await;
    w.code("c", CodeSpec::default()).await;
    let id = w.queue("c", 0, 0).await;
    assert_eq!(w.store.read_log(w.project, id, false).await.unwrap(), None);
    let a = w.lease(1).await[0].task.attempt;
    let s = &*w.store;
    s.append_log(id, a, 1, LogStream::Stderr, b"err\n", 10)
        .await
        .unwrap();
    s.append_log(id, a, 0, LogStream::Stdout, b"out\n", 10)
        .await
        .unwrap();
    assert_eq!(
        s.append_log(id, a, 0, LogStream::Stdout, b"out\n", 10)
            .await
            .unwrap(),
        Fenced::Current(false)
    );
    assert_eq!(
        s.append_log(id, a, 2, LogStream::Stdout, b"more\n", 10)
            .await
            .unwrap(),
        Fenced::Current(true)
    );
    assert_eq!(
        s.append_log(id, a, 3, LogStream::Stdout, b"over\n", 10)
            .await
            .unwrap(),
        Fenced::Current(false)
    );
    assert_eq!(
        s.read_log(w.project, id, false).await.unwrap().unwrap(),
        b"out\nerr\nmore\n"
    );
    assert_eq!(
        s.read_log(w.project, id, true).await.unwrap().unwrap(),
        b"out\nmore\n"
    );
}

async fn eight_concurrent_leasers_lease_a_thousand_tasks_exactly_once(backend: Backend) {
    let w = world(backend).await;
    w.code("c", CodeSpec::default()).await;
    let tasks: Vec<NewTask> = (0..1000).map(|i| task("c", i % 3, 0)).collect();
    let queued: HashSet<Id> = w
        .store
        .enqueue(w.project, tasks)
        .await
        .unwrap()
        .into_iter()
        .collect();
    let leasers = (0..8).map(|_| {
        let store = w.store.clone();
        tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let got = store
                    .lease(&spec(7, Duration::from_secs(60)))
                    .await
                    .unwrap();
                if got.is_empty() {
                    return mine;
                }
                for l in got {
                    let done = store
                        .complete(l.task.id, l.task.attempt, outcome(TaskStatus::Complete))
                        .await
                        .unwrap();
                    assert_eq!(done, Fenced::Current(None));
                    mine.push(l.task.id);
                }
            }
        })
    });
    let mut seen = HashSet::new();
    for l in leasers {
        for id in l.await.unwrap() {
            assert!(seen.insert(id), "task {id} leased twice");
        }
    }
    assert_eq!(seen, queued);
}

async fn tenants_cannot_see_each_other(backend: Backend) {
    let w = world(backend).await;
    w.code("c", CodeSpec::default()).await;
    let id = w.queue("c", 0, 0).await;
    let other_user = w.store.create_user("o@example.com", false).await.unwrap();
    let other = w.store.create_project(other_user, "q").await.unwrap().id;
    assert!(w.store.task(other, id).await.unwrap().is_none());
    assert!(w.store.code_by_name(other, "c").await.unwrap().is_none());
    assert_eq!(w.store.cancel(other, id).await.unwrap(), None);
    assert!(matches!(
        w.store.enqueue(other, vec![task("c", 0, 0)]).await,
        Err(StoreError::UnknownCode(_))
    ));
    let who = w.store.authenticate("nope").await.unwrap();
    assert!(who.is_none());
    w.store.add_user_token(other_user, "tok").await.unwrap();
    let p = w.store.authenticate("tok").await.unwrap().unwrap();
    assert!(w.store.project(&p, w.project).await.unwrap().is_none());
    assert!(w.store.project(&p, other).await.unwrap().is_some());
}

async fn code_resource_limits_round_trip(backend: Backend) {
    let w = world(backend).await;
    let limited = CodeSpec {
        memory_mb: Some(128),
        cpus: Some(0.25),
        pids: Some(64),
        ..CodeSpec::default()
    };
    let code = w.code("c", limited.clone()).await;
    w.code("c", CodeSpec::default()).await;
    let latest = w.store.code(w.project, code).await.unwrap().unwrap().latest;
    assert_eq!(latest.spec, CodeSpec::default(), "unset stays unset");
    let first = w
        .store
        .revision_of(w.project, code, Some(1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.spec, limited);
    let listed = w
        .store
        .revisions(w.project, code, Page::default())
        .await
        .unwrap();
    let specs: Vec<_> = listed.iter().map(|r| r.spec.clone()).collect();
    assert_eq!(specs, [CodeSpec::default(), limited.clone()]);
    // A runner sees them through the lease's revision.
    w.code("c", limited.clone()).await;
    w.queue("c", 0, 0).await;
    let leased = w.lease(1).await;
    assert_eq!(leased[0].revision.spec, limited);
}

async fn active_schedules_are_limited_per_project(backend: Backend) {
    let w = world(backend).await;
    w.code("c", CodeSpec::default()).await;
    let every_minute = || {
        let opts = ScheduleOptions {
            run_every: Some(60.0),
            ..ScheduleOptions::default()
        };
        new_schedule("c", b"{}".to_vec(), opts, chrono::Utc::now()).unwrap()
    };
    let store = &w.store;
    let three = (0..3).map(|_| every_minute()).collect::<Vec<_>>();
    let too_many = store.create_schedules(w.project, three, Some(2)).await;
    assert!(matches!(too_many, Err(StoreError::LimitReached(_))));
    assert!(store
        .schedules(w.project, Page::default())
        .await
        .unwrap()
        .is_empty());
    let two = (0..2).map(|_| every_minute()).collect::<Vec<_>>();
    let ids = store
        .create_schedules(w.project, two, Some(2))
        .await
        .unwrap();
    let one_more = store
        .create_schedules(w.project, vec![every_minute()], Some(2))
        .await;
    assert!(matches!(one_more, Err(StoreError::LimitReached(_))));
    // Cancelled schedules no longer count; no limit means none.
    assert!(store.cancel_schedule(w.project, ids[0]).await.unwrap());
    store
        .create_schedules(w.project, vec![every_minute()], Some(2))
        .await
        .unwrap();
    store
        .create_schedules(w.project, vec![every_minute()], None)
        .await
        .unwrap();
}

/// Generates one `#[tokio::test]` per backend for each contract test.
macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod pg {
            $(#[tokio::test]
            async fn $name() {
                super::$name(super::Backend::Pg).await
            })*
        }
        mod sqlite {
            $(#[tokio::test]
            async fn $name() {
                super::$name(super::Backend::Sqlite).await
            })*
        }
    };
}

contract!(
    leases_highest_priority_first_then_oldest,
    delayed_tasks_wait_and_clusters_are_separate,
    paused_code_holds_its_tasks_until_resumed,
    code_max_concurrency_makes_tasks_wait_not_fail,
    project_concurrency_limit_holds_across_concurrent_leasers,
    a_stale_attempt_cannot_overwrite_a_newer_one,
    expired_leases_are_retried_then_marked_killed,
    heartbeats_keep_a_lease_alive,
    cancelling_queued_and_running_tasks,
    failures_with_retries_left_queue_linked_retries,
    batch_enqueue_is_all_or_nothing,
    log_chunks_are_ordered_idempotent_and_capped,
    eight_concurrent_leasers_lease_a_thousand_tasks_exactly_once,
    tenants_cannot_see_each_other,
    code_resource_limits_round_trip,
    active_schedules_are_limited_per_project,
);
