//! Dispatch: order, delays, clusters, pauses, limits, leases, fencing, expiry, cancels,
//! retries, and many leasers at once.

use std::collections::HashSet;
use std::time::Duration;

use ferrum_model::protocol::LogStream;
use ferrum_model::{CodeSpec, Id, NewTask, TaskFilter, TaskStatus};
use ferrum_store::{Fenced, Outcome};

use super::world::{outcome, runner, spec, task, world, Backend};

pub async fn leases_highest_priority_first_then_oldest(backend: Backend) {
    let w = world(backend).await;
    w.code("c", CodeSpec::default()).await;
    let low = w.queue("c", 0, 0).await;
    let high_old = w.queue("c", 2, 0).await;
    let mid = w.queue("c", 1, 0).await;
    let high_new = w.queue("c", 2, 0).await;
    let order: Vec<Id> = w.lease(10).await.iter().map(|l| l.id).collect();
    assert_eq!(order, vec![high_old, high_new, mid, low]);
}

/// A lease answers what running each task takes, as queued, on both leasing paths: a code
/// without a limit and one with.
pub async fn a_lease_answers_what_running_the_task_takes(backend: Backend) {
    let w = world(backend).await;
    let free = w.code("free", CodeSpec::default()).await;
    let limit = CodeSpec {
        max_concurrency: Some(1),
        ..CodeSpec::default()
    };
    let limited = w.code("limited", limit).await;
    let schedule = Id::generate();
    let mut a = task("free", 2, 0);
    a.payload = vec![0xff, 0x00, b'a'];
    a.timeout = 90;
    a.origin.schedule_id = Some(schedule);
    let mut b = task("limited", 1, 0);
    b.payload = b"{\"n\":1}".to_vec();
    b.timeout = 7;
    let ids = w.store.enqueue(w.project, vec![a, b]).await.unwrap();
    let leased = w.lease(10).await;
    let got: Vec<_> = leased
        .iter()
        .map(|l| {
            let what = (l.id, l.project_id, l.attempt, l.priority, l.timeout);
            (
                what,
                l.payload.clone(),
                l.schedule_id,
                l.revision.name.as_str(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (
                (ids[0], w.project, 1, 2, 90),
                vec![0xff, 0x00, b'a'],
                Some(schedule),
                "free"
            ),
            (
                (ids[1], w.project, 1, 1, 7),
                b"{\"n\":1}".to_vec(),
                None,
                "limited"
            ),
        ]
    );
    assert_eq!(
        (leased[0].revision.code_id, leased[1].revision.code_id),
        (free, limited)
    );
    for l in &leased {
        let record = w.store.task(w.project, l.id).await.unwrap().unwrap();
        assert_eq!(
            (record.status, record.run_at),
            (TaskStatus::Preparing, l.run_at)
        );
    }
}

pub async fn delayed_tasks_wait_and_clusters_are_separate(backend: Backend) {
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
    let now = chrono::Utc::now();
    assert!(w.store.next_delayed_at(now).await.unwrap().is_some());
}

pub async fn paused_code_holds_its_tasks_until_resumed(backend: Backend) {
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

/// Tasks that enter a paused queue (queued, or requeued after an expired lease) wait too, and
/// a paused code's backlog does not keep another code's tasks from being leased.
pub async fn a_pause_holds_tasks_queued_or_requeued_into_it(backend: Backend) {
    let w = world(backend).await;
    let code = w.code("c", CodeSpec::default()).await;
    w.code("other", CodeSpec::default()).await;
    let running = w.queue("c", 0, 0).await;
    let short = w.store.lease(&spec(1, Duration::from_millis(50))).await;
    assert_eq!(short.unwrap()[0].id, running);
    w.store.set_paused(w.project, code, true).await.unwrap();
    let queued_while_paused = w.queue("c", 5, 0).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(w.store.reap_expired(3).await.unwrap().requeued, 1);
    let other = w.queue("other", 0, 0).await;
    let leased: Vec<Id> = w.lease(10).await.iter().map(|l| l.id).collect();
    assert_eq!(
        leased,
        vec![other],
        "only the unpaused code's task is leased"
    );
    w.store.set_paused(w.project, code, false).await.unwrap();
    let mut resumed: Vec<Id> = w.lease(10).await.iter().map(|l| l.id).collect();
    resumed.sort();
    let mut expected = vec![running, queued_while_paused];
    expected.sort();
    assert_eq!(resumed, expected);
}

/// Pausing and resuming while other connections queue tasks of the code leaves no task
/// behind: once the code is resumed, every task is leased.
pub async fn resuming_while_tasks_are_queued_leaves_none_behind(backend: Backend) {
    let w = world(backend).await;
    let code = w.code("c", CodeSpec::default()).await;
    let queueing: Vec<_> = (0..4)
        .map(|_| {
            let (store, project) = (w.store.clone(), w.project);
            tokio::spawn(async move {
                for _ in 0..50 {
                    store.enqueue(project, vec![task("c", 0, 0)]).await.unwrap();
                }
            })
        })
        .collect();
    let mut paused = true;
    while !queueing.iter().all(|q| q.is_finished()) {
        w.store.set_paused(w.project, code, paused).await.unwrap();
        paused = !paused;
    }
    for q in queueing {
        q.await.unwrap();
    }
    w.store.set_paused(w.project, code, false).await.unwrap();
    let mut leased = 0;
    loop {
        let n = w.lease(50).await.len();
        if n == 0 {
            break;
        }
        leased += n;
    }
    assert_eq!(leased, 200, "every task queued around the pauses is leased");
}

pub async fn code_max_concurrency_makes_tasks_wait_not_fail(backend: Backend) {
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
    assert!(first.iter().any(|l| l.id == free));
    assert!(w.lease(10).await.is_empty());
    let done = first.iter().find(|l| l.revision.name == "limited").unwrap();
    w.store
        .complete(
            done.id,
            runner(),
            done.attempt,
            outcome(TaskStatus::Complete),
        )
        .await
        .unwrap();
    assert_eq!(w.lease(10).await.len(), 1, "a freed slot admits one more");
    let queued = TaskFilter {
        statuses: vec![TaskStatus::Queued],
        ..TaskFilter::default()
    };
    assert_eq!(w.store.tasks(w.project, &queued).await.unwrap().len(), 2);
}

pub async fn project_concurrency_limit_holds_across_concurrent_leasers(backend: Backend) {
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

pub async fn a_stale_attempt_cannot_overwrite_a_newer_one(backend: Backend) {
    let w = world(backend).await;
    w.code("c", CodeSpec::default()).await;
    let id = w.queue("c", 0, 0).await;
    let first = w
        .store
        .lease(&spec(1, Duration::from_millis(1)))
        .await
        .unwrap();
    let old_attempt = first[0].attempt;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let reaped = w.store.reap_expired(3).await.unwrap();
    assert_eq!(reaped.requeued, 1);
    let second = w.lease(1).await;
    assert_eq!(second[0].id, id);
    let new_attempt = second[0].attempt;
    assert!(new_attempt > old_attempt);
    let s = &*w.store;
    assert_eq!(
        s.heartbeat(id, runner(), old_attempt, Duration::from_secs(30))
            .await
            .unwrap(),
        Fenced::Stale
    );
    assert_eq!(
        s.append_log(
            id,
            runner(),
            old_attempt,
            0,
            LogStream::Stdout,
            b"old",
            1 << 20
        )
        .await
        .unwrap(),
        Fenced::Stale
    );
    assert_eq!(
        s.complete(id, runner(), old_attempt, outcome(TaskStatus::Error))
            .await
            .unwrap(),
        Fenced::Stale
    );
    assert_eq!(
        s.complete(id, runner(), new_attempt, outcome(TaskStatus::Complete))
            .await
            .unwrap(),
        Fenced::Current(None)
    );
    let t = s.task(w.project, id).await.unwrap().unwrap();
    assert_eq!(t.status, TaskStatus::Complete);
}

/// Many completions at once (which the Postgres store writes in shared statements) are each
/// answered for themselves: a stale attempt or a second completion of the same attempt is
/// `Stale` and changes nothing, while every current one records its own outcome.
pub async fn concurrent_completions_are_each_answered_for_themselves(backend: Backend) {
    let w = world(backend).await;
    w.code("c", CodeSpec::default()).await;
    let tasks: Vec<NewTask> = (0..60).map(|_| task("c", 0, 0)).collect();
    w.store.enqueue(w.project, tasks).await.unwrap();
    let leased = w.lease(60).await;
    assert_eq!(leased.len(), 60);
    let ending = |i: usize| match i % 3 {
        0 => outcome(TaskStatus::Complete),
        1 => Outcome {
            msg: Some(format!("cancelled {i}")),
            ..outcome(TaskStatus::Cancelled)
        },
        _ => outcome(TaskStatus::Killed),
    };
    // Per task: its own completion, a stale attempt's, and for every fourth task a second
    // completion of the same attempt, all at once.
    let mut calls = Vec::new();
    for (i, l) in leased.iter().enumerate() {
        let mut mine = vec![(l.attempt, ending(i)), (l.attempt + 1, ending(i))];
        if i % 4 == 0 {
            mine.push((l.attempt, ending(i)));
        }
        for (attempt, ended) in mine {
            let (store, id) = (w.store.clone(), l.id);
            calls.push(tokio::spawn(async move {
                let answer = store.complete(id, runner(), attempt, ended).await.unwrap();
                (id, attempt, answer)
            }));
        }
    }
    let mut current = HashSet::new();
    for call in calls {
        let (id, attempt, answer) = call.await.unwrap();
        if answer == Fenced::Current(None) {
            assert!(current.insert(id), "task {id} completed twice");
        } else {
            assert_eq!(answer, Fenced::Stale);
        }
        let lease = leased.iter().find(|l| l.id == id).unwrap();
        if attempt != lease.attempt {
            assert_eq!(answer, Fenced::Stale, "a stale attempt of {id} took effect");
        }
    }
    assert_eq!(current.len(), 60);
    for (i, l) in leased.iter().enumerate() {
        let t = w.store.task(w.project, l.id).await.unwrap().unwrap();
        let expected = ending(i);
        assert_eq!(t.status, expected.status);
        assert_eq!(t.msg, expected.msg);
        assert_eq!(t.attempt, l.attempt);
    }
    assert!(w.lease(1).await.is_empty());
}

pub async fn expired_leases_are_retried_then_marked_killed(backend: Backend) {
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

/// What tenants read of a task between lease and outcome: `preparing` with the lease's
/// attempt until the runner reports the start, `running` after, `queued` again (attempt kept)
/// when the lease expires; status filters see the same.
pub async fn a_leased_task_reads_as_preparing_then_running(backend: Backend) {
    let w = world(backend).await;
    w.code("c", CodeSpec::default()).await;
    let id = w.queue("c", 0, 0).await;
    let s = &*w.store;
    let with_status = |status| TaskFilter {
        statuses: vec![status],
        ..TaskFilter::default()
    };
    let read = || async { s.task(w.project, id).await.unwrap().unwrap() };

    let attempt = s.lease(&spec(1, Duration::ZERO)).await.unwrap()[0].attempt;
    assert_eq!(
        (read().await.status, read().await.attempt),
        (TaskStatus::Preparing, 1)
    );
    let preparing = s
        .tasks(w.project, &with_status(TaskStatus::Preparing))
        .await;
    assert_eq!(preparing.unwrap().len(), 1);
    assert!(s
        .tasks(w.project, &with_status(TaskStatus::Queued))
        .await
        .unwrap()
        .is_empty());

    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(s.reap_expired(3).await.unwrap().requeued, 1);
    assert_eq!(
        (read().await.status, read().await.attempt),
        (TaskStatus::Queued, 1)
    );

    let attempt2 = w.lease(1).await[0].attempt;
    assert_eq!(attempt2, attempt + 1);
    assert_eq!(
        (read().await.status, read().await.attempt),
        (TaskStatus::Preparing, 2)
    );
    s.mark_running(id, runner(), attempt2, Duration::from_secs(30))
        .await
        .unwrap();
    let running = read().await;
    assert_eq!((running.status, running.attempt), (TaskStatus::Running, 2));
    assert!(running.start_time.is_some());
    let listed = s.tasks(w.project, &with_status(TaskStatus::Running)).await;
    assert_eq!(listed.unwrap()[0].id, id);
}

pub async fn heartbeats_keep_a_lease_alive(backend: Backend) {
    let w = world(backend).await;
    w.code("c", CodeSpec::default()).await;
    let id = w.queue("c", 0, 0).await;
    let l = w
        .store
        .lease(&spec(1, Duration::from_millis(50)))
        .await
        .unwrap();
    let attempt = l[0].attempt;
    assert_eq!(
        w.store
            .mark_running(id, runner(), attempt, Duration::from_secs(30))
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

pub async fn cancelling_queued_and_running_tasks(backend: Backend) {
    let w = world(backend).await;
    w.code("c", CodeSpec::default()).await;
    let queued = w.queue("c", 0, 3600).await;
    let running = w.queue("c", 0, 0).await;
    let attempt = w.lease(1).await[0].attempt;
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
        s.heartbeat(running, runner(), attempt, Duration::from_secs(30))
            .await
            .unwrap(),
        Fenced::Current(true),
        "the runner learns of the cancel from its heartbeat"
    );
    s.complete(running, runner(), attempt, outcome(TaskStatus::Cancelled))
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

pub async fn failures_with_retries_left_queue_linked_retries(backend: Backend) {
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
        .complete(id, runner(), l[0].attempt, failed.clone())
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
    assert_eq!(l2[0].id, retry);
    let again = w
        .store
        .complete(retry, runner(), l2[0].attempt, failed)
        .await
        .unwrap();
    assert_eq!(again, Fenced::Current(None), "out of retries");
}

pub async fn eight_concurrent_leasers_lease_a_thousand_tasks_exactly_once(backend: Backend) {
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
                        .complete(l.id, runner(), l.attempt, outcome(TaskStatus::Complete))
                        .await
                        .unwrap();
                    assert_eq!(done, Fenced::Current(None));
                    mine.push(l.id);
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
