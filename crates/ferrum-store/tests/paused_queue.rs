//! The invariant of `migrations/0006_paused_queue.sql` under a race: a queue row's `paused`
//! must not stay `true` once its code is resumed. A resume locks the code row `FOR UPDATE`,
//! then sets the flag on the code's queued rows. An enqueue that starts in between must wait
//! for the resume and read the resumed code, or its task would stay out of the dispatch index
//! for good. And a cancel-all racing a pause must take turns with it, not deadlock. Postgres
//! only: SQLite has one writer and no `paused` queue rows.

use std::time::Duration;

use ferrum_model::Id;
use ferrum_store::testing::{fresh_store, lease_ids, project_with_code, queued_task};
use ferrum_store::{CodeStore, PgStore, TaskStore};
use sqlx::{Postgres, Transaction};

/// `set_paused` by hand, stopped between its two statements: the code row is locked
/// `FOR UPDATE` and its flag set; its queued rows are not yet. [`finish_set_paused`] ends it.
async fn begin_set_paused(
    store: &PgStore,
    code: Id,
    paused: bool,
) -> Transaction<'static, Postgres> {
    let mut tx = store.pool().begin().await.unwrap();
    sqlx::query("SELECT 1 FROM codes WHERE id = $1 FOR UPDATE")
        .bind(code.to_string())
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("UPDATE codes SET paused = $2 WHERE id = $1")
        .bind(code.to_string())
        .bind(paused)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx
}

/// Waits until another session of this database waits for a lock: the racing call has
/// reached the code row the test's transaction holds. Explicit synchronisation with the
/// database, not a guess at how long the call takes.
async fn until_blocked(store: &PgStore) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(store.pool())
        .await
        .unwrap();
        if waiting > 0 {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the racing call never waited for the lock"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The second statement of `set_paused` (the code's queued rows), then the commit.
async fn finish_set_paused(mut tx: Transaction<'static, Postgres>, code: Id, paused: bool) {
    sqlx::query("UPDATE task_queue SET paused = $2 WHERE code_id = $1 AND NOT leased")
        .bind(code.to_string())
        .bind(paused)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn a_task_queued_during_a_resume_is_leasable_after_it() {
    let (store, _) = fresh_store().await.unwrap();
    let (project, code) = project_with_code(&store, "c").await.unwrap();
    store.set_paused(project, code, true).await.unwrap();

    let resume = begin_set_paused(&store, code, false).await;

    let queueing = {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .enqueue(project, vec![queued_task("c")])
                .await
                .unwrap()
        })
    };
    until_blocked(&store).await;
    finish_set_paused(resume, code, false).await;
    let queued = queueing.await.unwrap();

    let leased = lease_ids(&store, 10).await.unwrap();
    assert_eq!(
        leased, queued,
        "the task queued during the resume is leasable"
    );
}

/// Pausing (or resuming) a code and cancelling all its tasks both lock many of the code's
/// queue rows, each in the order its plan reads them; on a large queue table Postgres even
/// starts concurrent scans of it where another scan is (`synchronize_seqscans`). Run at once,
/// each could hold rows the other waits for: a deadlock, answered to one of them as an error.
/// So a cancel-all takes turns with a pause on the code row: it waits for a pause that holds
/// it, then cancels everything, the paused tasks included.
#[tokio::test]
async fn cancelling_all_waits_for_a_pause_in_progress() {
    let (store, _) = fresh_store().await.unwrap();
    let (project, code) = project_with_code(&store, "c").await.unwrap();
    let backlog = (0..100).map(|_| queued_task("c")).collect();
    store.enqueue(project, backlog).await.unwrap();

    let pause = begin_set_paused(&store, code, true).await;

    let cancelling = {
        let store = store.clone();
        tokio::spawn(async move { store.cancel_all(project, code).await })
    };
    until_blocked(&store).await;
    assert!(
        !cancelling.is_finished(),
        "the cancel waits for the pause to commit"
    );
    finish_set_paused(pause, code, true).await;

    assert_eq!(cancelling.await.unwrap().unwrap(), 100);
    let queued: i64 = sqlx::query_scalar("SELECT count(*) FROM task_queue")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(queued, 0, "the paused tasks were cancelled too");
}
