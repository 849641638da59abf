//! The retention duty: a project's own `retention_days`, else the operator's default; large
//! results leave the blob store with their tasks, logs are archived there when asked; a task
//! that cannot be deleted is skipped without stopping the rest, and goes on a later pass.
//! Passes run while leasers lease and complete other tasks delete exactly the old ones.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use ferrum_api::queue_signal::QueueSignal;
use ferrum_api::retention::pass;
use ferrum_api::{ApiConfig, AppState};
use ferrum_blob::{BlobStore, LocalDir};
use ferrum_model::protocol::LogStream;
use ferrum_model::{CodeSpec, Id, NewRevision, NewTask, TaskStatus};
use ferrum_store::testing::fresh_store;
use ferrum_store::{
    AccountStore, CodeStore, DispatchStore, LeaseSpec, Outcome, PgStore, ProjectQuotas, QuotaStore,
    ResultStore, StoredResult, TaskStore,
};

fn state(
    store: &PgStore,
    blobs: Arc<dyn BlobStore>,
    default_days: Option<u32>,
    archive_logs: bool,
) -> AppState {
    AppState {
        store: Arc::new(store.clone()),
        blobs,
        config: Arc::new(ApiConfig {
            retention_days: default_days,
            archive_logs,
            ..ApiConfig::default()
        }),
        queue: QueueSignal::default(),
    }
}

/// A project with a code, and `n` of its tasks run to `complete`; the first one logged a
/// line and returned a large result, stored under `results/{task}/{attempt}` in `blobs`.
async fn finished_tasks(
    store: &PgStore,
    blobs: &dyn BlobStore,
    name: &str,
    n: usize,
) -> (Id, Vec<Id>) {
    let user = store
        .create_user(&format!("{name}@example.com"), false)
        .await
        .unwrap();
    let project = store.create_project(user, name).await.unwrap().id;
    let rev = NewRevision {
        name: "c".into(),
        spec: CodeSpec::default(),
        zip: None,
    };
    store.put_revision(project, rev).await.unwrap();
    let ids = store.enqueue(project, vec![task(); n]).await.unwrap();
    let runner = Id::generate();
    for l in store.lease(&lease_spec(runner, n)).await.unwrap() {
        if l.id == ids[0] {
            let log = b"its log\n";
            let chunk =
                store.append_log(l.id, runner, l.attempt, 0, LogStream::Stdout, log, 1 << 20);
            chunk.await.unwrap();
            let key = format!("results/{}/{}", l.id, l.attempt);
            blobs.put(&key, "big".into()).await.unwrap();
            let result = StoredResult {
                size: 3,
                content_type: "application/octet-stream".into(),
                data: None,
                blob_key: Some(key),
            };
            store
                .put_result(l.id, runner, l.attempt, result)
                .await
                .unwrap();
        }
        store
            .complete(l.id, runner, l.attempt, complete())
            .await
            .unwrap();
    }
    (project, ids)
}

/// A task of the code `c` in the default cluster.
fn task() -> NewTask {
    NewTask {
        code_name: "c".into(),
        payload: b"{}".to_vec(),
        timeout: 60,
        cluster: "default".into(),
        ..NewTask::default()
    }
}

fn lease_spec(runner: Id, n: usize) -> LeaseSpec {
    LeaseSpec {
        runner_id: runner,
        cluster: "default".into(),
        max_tasks: n as u32,
        lease_for: Duration::from_secs(30),
    }
}

fn complete() -> Outcome {
    Outcome {
        status: TaskStatus::Complete,
        exit_code: Some(0),
        msg: None,
    }
}

#[tokio::test]
async fn retention_deletes_by_each_projects_days_and_skips_a_task_it_cannot_delete() {
    let (store, _) = fresh_store().await.unwrap();
    let dir = std::env::temp_dir().join(format!("ferrum-retention-{}", Id::generate()));
    let blobs: Arc<dyn BlobStore> = Arc::new(LocalDir::new(&dir).await.unwrap());
    let (kept2, kept_ids) = finished_tasks(&store, &*blobs, "keeps", 1).await;
    let (short, ids) = finished_tasks(&store, &*blobs, "short", 3).await;
    let two_days = ProjectQuotas {
        retention_days: Some(2),
        ..ProjectQuotas::default()
    };
    assert!(store.set_project_quotas(short, &two_days).await.unwrap());
    let large = format!("results/{}/1", ids[0]);
    assert!(blobs.get(&large).await.unwrap().is_some());
    // A row the duty cannot delete, as a broken row or a failing disk would make it.
    let poison = format!(
        "CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
           IF OLD.id = '{}' THEN RAISE EXCEPTION 'poisoned row'; END IF; RETURN OLD; END $$",
        ids[1]
    );
    for sql in [
        poison.as_str(),
        "CREATE TRIGGER poison BEFORE DELETE ON tasks FOR EACH ROW EXECUTE FUNCTION poison()",
    ] {
        sqlx::query(sql).execute(store.pool()).await.unwrap();
    }

    let no_default = state(&store, blobs.clone(), None, false);
    let now = Utc::now();
    let nothing = pass(&no_default, now).await.unwrap();
    assert_eq!(nothing.tasks, 0, "nothing is two days old yet");
    let later = now + chrono::Duration::days(3);
    let report = pass(&no_default, later).await.unwrap();
    assert_eq!(
        (report.tasks, report.blobs, report.skipped),
        (2, 1, 1),
        "{report:?}"
    );
    assert!(store.task(short, ids[0]).await.unwrap().is_none());
    assert!(store.task(short, ids[2]).await.unwrap().is_none());
    assert!(
        store.task(short, ids[1]).await.unwrap().is_some(),
        "the poisoned task stays"
    );
    assert!(
        blobs.get(&large).await.unwrap().is_none(),
        "its large result left the blob store"
    );
    assert!(
        store.task(kept2, kept_ids[0]).await.unwrap().is_some(),
        "no retention, no deletion"
    );

    sqlx::query("DROP TRIGGER poison ON tasks")
        .execute(store.pool())
        .await
        .unwrap();
    let again = pass(&no_default, later).await.unwrap();
    assert_eq!(
        (again.tasks, again.skipped),
        (1, 0),
        "a later pass takes it"
    );

    let archived = format!("archive/logs/{short}/{}", ids[0]);
    assert!(
        blobs.get(&archived).await.unwrap().is_none(),
        "no archive unless asked"
    );
    let default_one_day = state(&store, blobs.clone(), Some(1), true);
    let report = pass(&default_one_day, now + chrono::Duration::days(2))
        .await
        .unwrap();
    assert_eq!(
        report.tasks, 1,
        "the operator's default applies to the other project"
    );
    assert!(store.task(kept2, kept_ids[0]).await.unwrap().is_none());
    let archived = format!("archive/logs/{kept2}/{}", kept_ids[0]);
    let log = blobs
        .get(&archived)
        .await
        .unwrap()
        .expect("the log was archived first");
    assert_eq!(&log[..], b"its log\n");
}

/// Retention passes run while four leasers lease and complete the tasks queued after the
/// cutoff: exactly the tasks that ended before it go. A task running across the cutoff and one
/// queued before it but leased meanwhile stay, and complete; so does every new task.
#[tokio::test]
async fn passes_delete_exactly_the_old_tasks_while_leasers_lease_and_complete() {
    let (store, _) = fresh_store().await.unwrap();
    let dir = std::env::temp_dir().join(format!("ferrum-retention-{}", Id::generate()));
    let blobs: Arc<dyn BlobStore> = Arc::new(LocalDir::new(&dir).await.unwrap());
    let (project, old) = finished_tasks(&store, &*blobs, "busy", 250).await;
    let holder = Id::generate();
    let running = store.enqueue(project, vec![task()]).await.unwrap()[0];
    let held = store.lease(&lease_spec(holder, 1)).await.unwrap();
    assert_eq!(held[0].id, running);
    let waiting = store.enqueue(project, vec![task()]).await.unwrap()[0];
    let cutoff = Utc::now();
    let new = store.enqueue(project, vec![task(); 400]).await.unwrap();
    let state = state(&store, blobs, Some(1), false);
    let as_of = cutoff + chrono::Duration::days(1);

    // Each leaser completes a few tasks, waits until a pass has run, then goes on: passes and
    // completions interleave whatever the scheduling.
    let remaining = Arc::new(AtomicUsize::new(new.len() + 1));
    let (passes, passed) = tokio::sync::watch::channel(0u32);
    let leasers: Vec<_> = (0..4)
        .map(|_| {
            let (store, remaining, mut passed) = (store.clone(), remaining.clone(), passed.clone());
            tokio::spawn(async move {
                let runner = Id::generate();
                let mut done = Vec::new();
                while remaining.load(Ordering::SeqCst) > 0 {
                    if done.len() == 10 {
                        passed.wait_for(|n| *n > 0).await.unwrap();
                    }
                    let leased = store.lease(&lease_spec(runner, 3)).await.unwrap();
                    for l in leased {
                        let completed = store.complete(l.id, runner, l.attempt, complete());
                        completed.await.unwrap();
                        remaining.fetch_sub(1, Ordering::SeqCst);
                        done.push(l.id);
                    }
                    tokio::task::yield_now().await;
                }
                done
            })
        })
        .collect();
    let mut deleted = 0;
    while leasers.iter().any(|l| !l.is_finished()) {
        deleted += pass(&state, as_of).await.unwrap().tasks;
        passes.send_modify(|n| *n += 1);
    }
    let mut ran = Vec::new();
    for l in leasers {
        ran.extend(l.await.unwrap());
    }
    deleted += pass(&state, as_of).await.unwrap().tasks;
    let completed = store.complete(running, holder, held[0].attempt, complete());
    completed.await.unwrap();
    deleted += pass(&state, as_of).await.unwrap().tasks;

    assert_eq!(deleted, old.len() as u64, "exactly the old finished tasks");
    for id in &old {
        assert!(
            store.task(project, *id).await.unwrap().is_none(),
            "{id} went"
        );
    }
    ran.sort();
    let mut expected: Vec<Id> = new.iter().copied().chain([waiting]).collect();
    expected.sort();
    assert_eq!(
        ran, expected,
        "every new task and the waiting one were leased once"
    );
    for id in expected.iter().chain([&running]) {
        let t = store.task(project, *id).await.unwrap();
        let status = t.map(|t| t.status);
        assert_eq!(
            status,
            Some(TaskStatus::Complete),
            "{id} stays and completed"
        );
    }
}
