//! What the store keeps: batches, logs, tenants, code settings and schedule limits.

use ferrum_model::protocol::LogStream;
use ferrum_model::validation::{new_schedule, ScheduleOptions};
use ferrum_model::{CodeSpec, Page, TaskFilter};
use ferrum_store::{Fenced, StoreError};

use super::world::{runner, task, world, Backend};

pub async fn batch_enqueue_is_all_or_nothing(backend: Backend) {
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

pub async fn log_chunks_are_ordered_idempotent_and_capped(backend: Backend) {
    let w = world(backend).await;
    w.code("c", CodeSpec::default()).await;
    let id = w.queue("c", 0, 0).await;
    assert_eq!(w.store.read_log(w.project, id, false).await.unwrap(), None);
    let a = w.lease(1).await[0].attempt;
    let s = &*w.store;
    s.append_log(id, runner(), a, 1, LogStream::Stderr, b"err\n", 10)
        .await
        .unwrap();
    s.append_log(id, runner(), a, 0, LogStream::Stdout, b"out\n", 10)
        .await
        .unwrap();
    assert_eq!(
        s.append_log(id, runner(), a, 0, LogStream::Stdout, b"out\n", 10)
            .await
            .unwrap(),
        Fenced::Current(false)
    );
    assert_eq!(
        s.append_log(id, runner(), a, 2, LogStream::Stdout, b"more\n", 10)
            .await
            .unwrap(),
        Fenced::Current(true)
    );
    assert_eq!(
        s.append_log(id, runner(), a, 3, LogStream::Stdout, b"over\n", 10)
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

pub async fn tenants_cannot_see_each_other(backend: Backend) {
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

pub async fn code_resource_limits_round_trip(backend: Backend) {
    let w = world(backend).await;
    let limited = CodeSpec {
        memory_mb: Some(128),
        cpus: Some(0.25),
        pids: Some(64),
        disk_mb: Some(100),
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

pub async fn active_schedules_are_limited_per_project(backend: Backend) {
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
