//! The task-event duty hands every final state to its handlers once they all succeed, and
//! delivers again what a failing handler did not take.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use ferrum_api::queue_signal::QueueSignal;
use ferrum_api::task_events::{consume, TaskEventHandler};
use ferrum_api::{ApiConfig, AppState};
use ferrum_blob::LocalDir;
use ferrum_model::{CodeSpec, Id, NewRevision, NewTask, TaskStatus};
use ferrum_store::testing::fresh_store;
use ferrum_store::{AccountStore, CodeStore, PgStore, TaskEvent, TaskEventStore, TaskStore};
use tokio::sync::mpsc;

/// Passes events on; fails its first `fail_first` batches.
struct Recorder {
    seen: mpsc::UnboundedSender<TaskEvent>,
    fail_first: AtomicUsize,
    calls: Mutex<usize>,
}

#[async_trait]
impl TaskEventHandler for Recorder {
    fn name(&self) -> &'static str {
        "recorder"
    }

    async fn handle(&self, _: &AppState, events: &[TaskEvent]) -> Result<(), String> {
        *self.calls.lock().unwrap() += 1;
        if self
            .fail_first
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err("not yet".into());
        }
        for e in events {
            self.seen.send(e.clone()).unwrap();
        }
        Ok(())
    }
}

/// An app state on a fresh database, and a queued task of a new project.
async fn setup() -> (PgStore, AppState, Id, Id) {
    let (store, _) = fresh_store().await.unwrap();
    let dir = std::env::temp_dir().join(format!("ferrum-events-{}", Id::generate()));
    let state = AppState {
        store: Arc::new(store.clone()),
        blobs: Arc::new(LocalDir::new(&dir).await.unwrap()),
        config: Arc::new(ApiConfig::default()),
        queue: QueueSignal::default(),
    };
    let user = store.create_user("e@example.com", false).await.unwrap();
    let project = store.create_project(user, "p").await.unwrap().id;
    let rev = NewRevision {
        name: "c".into(),
        spec: CodeSpec::default(),
        zip: None,
    };
    store.put_revision(project, rev).await.unwrap();
    let task = NewTask {
        code_name: "c".into(),
        payload: b"{}".to_vec(),
        timeout: 60,
        cluster: "default".into(),
        ..NewTask::default()
    };
    let id = store.enqueue(project, vec![task]).await.unwrap()[0];
    (store, state, project, id)
}

#[tokio::test]
async fn handlers_get_each_final_state_and_it_is_deleted_once_handled() {
    let (store, state, project, id) = setup().await;

    let (tx, mut rx) = mpsc::unbounded_channel();
    let recorder = Arc::new(Recorder {
        seen: tx,
        fail_first: AtomicUsize::new(0),
        calls: Mutex::new(0),
    });
    tokio::spawn(consume(state.clone(), vec![recorder.clone()]));
    store.cancel(project, id).await.unwrap();
    let e = rx.recv().await.unwrap();
    assert_eq!(
        (e.task_id, e.project_id, e.status),
        (id, project, TaskStatus::Cancelled)
    );
    // Handled events are gone: nothing is left to claim.
    let left = store
        .claim_task_events(10, std::time::Duration::ZERO)
        .await
        .unwrap();
    assert!(left.is_empty());
}

#[tokio::test]
async fn a_failed_batch_is_neither_deleted_nor_handed_out_while_claimed() {
    let (store, state, project, id) = setup().await;
    store.cancel(project, id).await.unwrap();
    // The first delivery fails: the batch must stay claimed (for `CLAIM_FOR`), neither
    // deleted nor handed to another consumer; the store contract shows it coming back after.
    let (tx, mut rx) = mpsc::unbounded_channel();
    let recorder = Arc::new(Recorder {
        seen: tx,
        fail_first: AtomicUsize::new(1),
        calls: Mutex::new(0),
    });
    let failing = tokio::spawn(consume(state.clone(), vec![recorder.clone()]));
    while *recorder.calls.lock().unwrap() == 0 {
        tokio::task::yield_now().await;
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    failing.abort();
    assert!(rx.try_recv().is_err(), "the failed batch was not handled");
    let held = store
        .claim_task_events(10, std::time::Duration::ZERO)
        .await
        .unwrap();
    assert!(
        held.is_empty(),
        "the failed batch is still claimed, not deleted or free"
    );
}

/// Shutdown reaches every duty: `stop` returns once they all ended, and with them ended a
/// final state is no longer handed on (its event stays for the next process).
#[tokio::test]
async fn stopping_the_duties_ends_them_all() {
    let (store, state, project, id) = setup().await;
    let duties = ferrum_api::duties::spawn(state.clone());
    duties.stop().await;
    store.cancel(project, id).await.unwrap();
    let pending = store
        .claim_task_events(10, std::time::Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(pending.len(), 1, "no duty took the event after stop");
}
