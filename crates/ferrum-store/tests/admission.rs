//! The point of `migrations/0007_admission.sql`: a code at its concurrency limit keeps only
//! its best `max_concurrency` queued tasks in the dispatch index, however long its backlog,
//! so that leases do not step over the rest. The contract rules (`tests/contract/limits.rs`)
//! check that the answers stay the same; this checks that the backlog is really held.
//! Postgres only: SQLite has no dispatch index to keep small.

use ferrum_model::{CodeSpec, NewRevision, NewTask};
use ferrum_store::testing::{fresh_store, lease_ids, project_with_code, queued_task};
use ferrum_store::{CodeStore, PgStore, TaskStore};

async fn admitted(store: &PgStore, code: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM task_queue q JOIN codes c ON c.id = q.code_id \
         WHERE c.name = $1 AND NOT q.leased AND NOT q.held",
    )
    .bind(code)
    .fetch_one(store.pool())
    .await
    .unwrap()
}

fn tasks(code: &str, n: usize) -> Vec<NewTask> {
    (0..n).map(|_| queued_task(code)).collect()
}

#[tokio::test]
async fn a_throttled_backlog_stays_out_of_the_dispatch_index() {
    let (store, _) = fresh_store().await.unwrap();
    let (project, _) = project_with_code(&store, "free").await.unwrap();
    let throttled = NewRevision {
        name: "throttled".into(),
        spec: CodeSpec {
            max_concurrency: Some(2),
            ..CodeSpec::default()
        },
        zip: None,
    };
    store.put_revision(project, throttled).await.unwrap();
    store
        .enqueue(project, tasks("throttled", 1000))
        .await
        .unwrap();
    store.enqueue(project, tasks("free", 3)).await.unwrap();
    assert_eq!(admitted(&store, "throttled").await, 2);
    assert_eq!(
        admitted(&store, "free").await,
        3,
        "unlimited codes are not held"
    );

    assert_eq!(lease_ids(&store, 100).await.unwrap().len(), 5);
    assert_eq!(
        admitted(&store, "throttled").await,
        2,
        "the leased tasks' successors are admitted, and no more"
    );
}
