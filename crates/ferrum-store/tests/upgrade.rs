//! Upgrading a database that already holds work. `0005_task_queue.sql` moves the dispatch
//! state of every unfinished task into `task_queue`; a deployment that upgrades mid-work must
//! find each task where it was: queued tasks leasable (delayed ones still delayed), leased
//! ones fenced by their attempt and reaped when their lease has expired.
//! `0006_paused_queue.sql` then takes a paused code's queued tasks out of the dispatch index
//! until the code is resumed, and `0007_admission.sql` holds a limited code's backlog beyond
//! its limit outside it.

use std::path::Path;
use std::time::Duration;

use ferrum_model::{Id, TaskStatus};
use ferrum_store::testing::{fresh_database, lease_ids};
use ferrum_store::{CodeStore, DispatchStore, Fenced, LeaseSpec, Outcome, PgStore, TaskStore};
use sqlx::migrate::Migrator;
use sqlx::PgPool;

/// The schema before the queue table: the migrations numbered below 5, copied aside so that
/// sqlx's public `Migrator` can run just them.
async fn migrate_to_0004(pool: &PgPool) {
    let all = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations");
    let dir = std::env::temp_dir().join(format!("ferrum-upgrade-{}", Id::generate()));
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(&all).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.ends_with(".sql") && name.as_str() < "0005" {
            std::fs::copy(&path, dir.join(&name)).unwrap();
        }
    }
    Migrator::new(dir.as_path())
        .await
        .unwrap()
        .run(pool)
        .await
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

/// One project, one code, and tasks 1–5: queued, queued with a delay, preparing with an
/// expired lease (attempt 1), running (attempt 2), complete; task 6, queued, of a second
/// code that is paused; and tasks 7 (priority 0) and 8 (priority 2), queued on cluster
/// `limited`, of a third code whose `max_concurrency` is 1.
const WORK_IN_FLIGHT: &str = "
INSERT INTO users (id, email) VALUES ('000000000000000000000001', 'a@example.com');
INSERT INTO projects (id, name, owner_id)
    VALUES ('000000000000000000000002', 'p', '000000000000000000000001');
INSERT INTO codes (id, project_id, name, latest_rev, latest_revision_id)
    VALUES ('000000000000000000000003', '000000000000000000000002', 'c', 1,
            '000000000000000000000004');
INSERT INTO codes (id, project_id, name, latest_rev, latest_revision_id, paused)
    VALUES ('000000000000000000000005', '000000000000000000000002', 'paused', 1,
            '000000000000000000000006', true);
INSERT INTO codes (id, project_id, name, latest_rev, latest_revision_id, max_concurrency)
    VALUES ('000000000000000000000007', '000000000000000000000002', 'limited', 1,
            '000000000000000000000008', 1);
INSERT INTO code_revisions (id, code_id, project_id, rev)
    VALUES ('000000000000000000000004', '000000000000000000000003',
            '000000000000000000000002', 1),
           ('000000000000000000000006', '000000000000000000000005',
            '000000000000000000000002', 1),
           ('000000000000000000000008', '000000000000000000000007',
            '000000000000000000000002', 1);
INSERT INTO tasks (id, project_id, code_id, code_name, code_revision_id, code_rev, status,
                   priority, payload, timeout, delay, cluster, run_at, attempt, runner_id,
                   lease_expires_at)
SELECT '00000000000000000000001' || n, '000000000000000000000002',
       '000000000000000000000003', 'c', '000000000000000000000004', 1, status, 0, '\\x7b7d',
       60, delay, 'default', now() + make_interval(secs => delay), attempt, runner, lease
FROM (VALUES (1, 'queued', 0, 0, NULL, NULL::timestamptz),
             (2, 'queued', 600, 0, NULL, NULL),
             (3, 'preparing', 0, 1, '0000000000000000000000ff', now() - interval '1 minute'),
             (4, 'running', 0, 2, '0000000000000000000000ff', now() + interval '10 minutes'),
             (5, 'complete', 0, 1, '0000000000000000000000ff', NULL))
    AS v(n, status, delay, attempt, runner, lease);
INSERT INTO tasks (id, project_id, code_id, code_name, code_revision_id, code_rev, status,
                   priority, payload, timeout, delay, cluster, run_at)
VALUES ('000000000000000000000016', '000000000000000000000002', '000000000000000000000005',
        'paused', '000000000000000000000006', 1, 'queued', 0, '\\x7b7d', 60, 0, 'default',
        now()),
       ('000000000000000000000017', '000000000000000000000002', '000000000000000000000007',
        'limited', '000000000000000000000008', 1, 'queued', 0, '\\x7b7d', 60, 0, 'limited',
        now() - interval '1 minute'),
       ('000000000000000000000018', '000000000000000000000002', '000000000000000000000007',
        'limited', '000000000000000000000008', 1, 'queued', 2, '\\x7b7d', 60, 0, 'limited',
        now())";

fn task_id(n: u8) -> Id {
    format!("00000000000000000000001{n}").parse().unwrap()
}

#[tokio::test]
async fn tasks_in_flight_survive_the_queue_table_migration() {
    let url = fresh_database().await.unwrap();
    let pool = PgPool::connect(&url).await.unwrap();
    migrate_to_0004(&pool).await;
    sqlx::raw_sql(WORK_IN_FLIGHT).execute(&pool).await.unwrap();

    let store = PgStore::connect(&url, 4).await.unwrap();
    let project: Id = "000000000000000000000002".parse().unwrap();
    let read = |n| {
        let store = store.clone();
        async move {
            let t = store.task(project, task_id(n)).await.unwrap().unwrap();
            (t.status, t.attempt)
        }
    };
    assert_eq!(read(1).await, (TaskStatus::Queued, 0));
    assert_eq!(read(3).await, (TaskStatus::Preparing, 1));
    assert_eq!(read(4).await, (TaskStatus::Running, 2));
    assert_eq!(read(5).await, (TaskStatus::Complete, 1));

    let leased = lease_ids(&store, 10).await.unwrap();
    assert_eq!(
        leased,
        vec![task_id(1)],
        "only the undelayed queued task is runnable"
    );
    let delayed_until = store.next_delayed_at(chrono::Utc::now()).await.unwrap();
    assert!(delayed_until.is_some(), "the delayed task is still delayed");

    let done = Outcome {
        status: TaskStatus::Complete,
        exit_code: Some(0),
        msg: None,
    };
    // The runner that held the lease before the migration.
    let runner: Id = "0000000000000000000000ff".parse().unwrap();
    let stale = store.complete(task_id(4), runner, 1, done.clone()).await;
    assert_eq!(
        stale.unwrap(),
        Fenced::Stale,
        "an older attempt is fenced off"
    );
    let current = store.complete(task_id(4), runner, 2, done).await.unwrap();
    assert_eq!(current, Fenced::Current(None));
    assert_eq!(read(4).await, (TaskStatus::Complete, 2));

    assert_eq!(store.reap_expired(3).await.unwrap().requeued, 1);
    assert_eq!(read(3).await, (TaskStatus::Queued, 1));

    let paused: bool = sqlx::query_scalar("SELECT paused FROM task_queue WHERE task_id = $1")
        .bind(task_id(6).to_string())
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(
        paused,
        "a paused code's queued task is out of the dispatch index"
    );
    let code: Id = "000000000000000000000005".parse().unwrap();
    store.set_paused(project, code, false).await.unwrap();
    let mut leased = lease_ids(&store, 10).await.unwrap();
    leased.sort();
    assert_eq!(leased, vec![task_id(3), task_id(6)], "resumed and requeued");

    let admitted: Vec<String> = sqlx::query_scalar(
        "SELECT task_id FROM task_queue WHERE code_id = $1 AND NOT held ORDER BY task_id",
    )
    .bind("000000000000000000000007")
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        admitted,
        vec![task_id(8).to_string()],
        "of a code limited to 1, only its best queued task is in the dispatch index"
    );
    let spec = LeaseSpec {
        runner_id: Id::generate(),
        cluster: "limited".into(),
        max_tasks: 10,
        lease_for: Duration::from_secs(60),
    };
    let first = store.lease(&spec).await.unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].id, task_id(8));
    let done = Outcome {
        status: TaskStatus::Complete,
        exit_code: Some(0),
        msg: None,
    };
    store
        .complete(task_id(8), spec.runner_id, first[0].attempt, done)
        .await
        .unwrap();
    let second = store.lease(&spec).await.unwrap();
    assert_eq!(second.len(), 1, "the held task was admitted in its place");
    assert_eq!(second[0].id, task_id(7));
}
