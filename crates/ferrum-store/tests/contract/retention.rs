//! Retention: exactly the finished tasks that ended before the cutoff go, with what hangs off
//! them, while other tasks keep being leased and completed.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use ferrum_model::protocol::LogStream;
use ferrum_model::{CodeSpec, Id, TaskStatus};
use ferrum_store::{NewTaskToken, Store, StoredResult};

use super::world::{outcome, runner, spec, task, world, Backend};

/// Leases and completes `n` tasks of the default cluster, one at a time.
async fn run_tasks(store: &dyn Store, n: usize) -> Vec<Id> {
    let mut done = Vec::new();
    while done.len() < n {
        let leased = store
            .lease(&spec(1, Duration::from_secs(30)))
            .await
            .unwrap();
        for l in leased {
            let ok = store.complete(l.id, runner(), l.attempt, outcome(TaskStatus::Complete));
            ok.await.unwrap();
            done.push(l.id);
        }
    }
    done
}

/// Deletes every page the store offers for `project` before `cutoff`; answers how many tasks
/// went and the result blobs to delete.
async fn retain(
    store: &dyn Store,
    project: Id,
    cutoff: chrono::DateTime<Utc>,
) -> (u64, Vec<String>) {
    let (mut tasks, mut blobs, mut after) = (0, Vec::new(), None);
    loop {
        let page = store
            .expired_tasks(project, cutoff, after, 7)
            .await
            .unwrap();
        let Some(last) = page.last() else {
            return (tasks, blobs);
        };
        after = Some(*last);
        let deleted = store.delete_tasks(project, &page).await.unwrap();
        tasks += deleted.tasks;
        blobs.extend(deleted.result_blobs);
    }
}

pub async fn retention_deletes_exactly_what_ended_before_the_cutoff_while_leasing_goes_on(
    backend: Backend,
) {
    let w = world(backend).await;
    let s = w.store.clone();
    w.code("c", CodeSpec::default()).await;

    // Old: 30 finished tasks, one with a log, a large result and a token.
    for _ in 0..30 {
        w.queue("c", 0, 0).await;
    }
    let first = s.lease(&spec(1, Duration::from_secs(30))).await.unwrap();
    let traced = &first[0];
    let logged = s.append_log(
        traced.id,
        runner(),
        traced.attempt,
        0,
        LogStream::Stdout,
        b"x",
        1 << 20,
    );
    logged.await.unwrap();
    let token = NewTaskToken {
        token: "retained-token".into(),
        task_id: traced.id,
        project_id: w.project,
        attempt: traced.attempt,
    };
    s.issue_task_tokens(&[token]).await.unwrap();
    let result = StoredResult {
        size: 3,
        content_type: "application/octet-stream".into(),
        data: None,
        blob_key: Some(format!("results/{}/1", traced.id)),
    };
    s.put_result(traced.id, runner(), traced.attempt, result)
        .await
        .unwrap();
    let done = s.complete(
        traced.id,
        runner(),
        traced.attempt,
        outcome(TaskStatus::Error),
    );
    done.await.unwrap();
    let mut old = vec![traced.id];
    old.extend(run_tasks(&*s, 29).await);
    // An old task still running, and another project's finished task: neither may go.
    let running_old = w.queue("c", 0, 0).await;
    let held = s.lease(&spec(1, Duration::from_secs(300))).await.unwrap();
    assert_eq!(held[0].id, running_old);
    let other = w.other_project("other").await;
    let other_code = ferrum_model::NewRevision {
        name: "c".into(),
        spec: CodeSpec::default(),
        zip: None,
    };
    s.put_revision(other, other_code).await.unwrap();
    let other_task = s.enqueue(other, vec![task("c", 0, 0)]).await.unwrap()[0];
    run_tasks(&*s, 1).await;
    let cutoff = Utc::now();
    // Another project's ids are never this project's to delete.
    assert_eq!(
        s.delete_tasks(w.project, &[other_task])
            .await
            .unwrap()
            .tasks,
        0
    );

    // New: 120 tasks queued and run by 4 leasers while retention deletes page by page.
    for _ in 0..120 {
        w.queue("c", 0, 0).await;
    }
    let leasers: Vec<_> = (0..4)
        .map(|_| {
            let s = Arc::clone(&s);
            tokio::spawn(async move { run_tasks(&*s, 30).await })
        })
        .collect();
    let (deleted, blobs) = retain(&*s, w.project, cutoff).await;
    let mut new = Vec::new();
    for l in leasers {
        new.extend(l.await.unwrap());
    }
    let (again, _) = retain(&*s, w.project, cutoff).await;
    assert_eq!(deleted + again, 30, "exactly the old finished tasks");
    assert_eq!(blobs, [format!("results/{}/1", traced.id)]);

    for id in &old {
        assert!(s.task(w.project, *id).await.unwrap().is_none(), "{id} went");
    }
    assert!(s
        .read_log(w.project, traced.id, false)
        .await
        .unwrap()
        .is_none());
    assert!(s.result(w.project, traced.id).await.unwrap().is_none());
    assert!(s
        .authenticate_task_token("retained-token")
        .await
        .unwrap()
        .is_none());
    let list = |table: &str| format!("DELETE FROM {table} WHERE task_id = '{}'", traced.id);
    for table in [
        "task_log_chunks",
        "task_events",
        "task_tokens",
        "task_results",
    ] {
        assert_eq!(
            w.execute(&list(table)).await,
            0,
            "nothing of it left in {table}"
        );
    }
    assert_eq!(new.len(), 120);
    for id in new.iter().chain([&running_old]) {
        assert!(
            s.task(w.project, *id).await.unwrap().is_some(),
            "{id} stays"
        );
    }
    let t = s.task(other, other_task).await.unwrap().unwrap();
    assert_eq!(
        t.status,
        TaskStatus::Complete,
        "the other project keeps its task"
    );
}

pub async fn retention_applies_a_projects_own_days_else_the_default(backend: Backend) {
    let w = world(backend).await;
    let s = &*w.store;
    let other = w.other_project("other").await;
    let own = ferrum_store::ProjectQuotas {
        retention_days: Some(3),
        ..Default::default()
    };
    assert!(s.set_project_quotas(other, &own).await.unwrap());
    let only_own = s.retention_projects(None).await.unwrap();
    assert_eq!(only_own, [(other, 3)]);
    let mut all = s.retention_projects(Some(30)).await.unwrap();
    all.sort();
    let mut want = vec![(other, 3), (w.project, 30)];
    want.sort();
    assert_eq!(all, want);
}

pub async fn retention_keeps_a_running_batchs_tasks_and_deletes_an_ended_batch_with_its_last(
    backend: Backend,
) {
    let w = world(backend).await;
    let s = &*w.store;
    w.code("map", CodeSpec::default()).await;
    w.code("sum", CodeSpec::default()).await;
    let batch = |reduce: bool| ferrum_model::NewBatch {
        code_name: "map".into(),
        payloads: vec![b"1".to_vec(), b"2".to_vec()],
        reduce: reduce.then(|| ferrum_model::NewReduce {
            code_name: "sum".into(),
            payload: b"{}".to_vec(),
            timeout: 60,
            priority: None,
        }),
        timeout: 60,
        cluster: "default".into(),
        ..ferrum_model::NewBatch::default()
    };
    let ended = s.create_batch(w.project, batch(false)).await.unwrap();
    run_tasks(s, 2).await;
    let reducing = s.create_batch(w.project, batch(true)).await.unwrap();
    let items = run_tasks(s, 2).await;
    let events = s
        .claim_task_events(500, Duration::from_secs(60))
        .await
        .unwrap();
    let fanned = s.fan_in(&events).await.unwrap();
    assert_eq!(fanned.reduces.len(), 1, "the second batch is reducing");
    let cutoff = Utc::now();

    let (deleted, _) = retain(s, w.project, cutoff).await;
    assert_eq!(deleted, 2, "only the ended batch's items");
    assert!(
        s.batch(w.project, ended.id).await.unwrap().is_none(),
        "it went with its last task"
    );
    assert!(s.batch(w.project, reducing.id).await.unwrap().is_some());
    for id in items {
        assert!(
            s.task(w.project, id).await.unwrap().is_some(),
            "the reduce reads {id}"
        );
    }
}
