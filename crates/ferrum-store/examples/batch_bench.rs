//! Batch enqueue benchmark (issue 17): a 100,000-item batch queued through
//! `BatchStore::create_batch` against the floor, a raw multi-row `INSERT` of the same rows
//! (the `tasks` rows and their `task_queue` rows, in one transaction, 5,000 rows per
//! statement, from prepared column arrays) on the same database.
//!
//! Both write the same columns; the batch path also looks the code up, builds a `NewTask` per
//! item, writes the `batches` row, maintains the `tasks_batch` index and notifies runners.
//! Runs alternate (raw, batch, raw, batch, …) and each table is truncated between runs, so
//! neither side benefits from warmer caches. Prints each run and the ratio of medians
//! (raw time / batch time; 1.0 = as fast as the floor).
//!
//! Run: `scripts/bench-batches` (or `cargo run --release -p ferrum-store --example
//! batch_bench` with `FERRUM_TEST_DATABASE_URL` set). `BENCH_ITEMS` (default 100,000) and
//! `BENCH_RUNS` (default 3 of each) change it.

use std::time::{Duration, Instant};

use ferrum_model::{Id, NewBatch};
use ferrum_store::{BatchStore, PgStore};

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn payloads(n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| format!("{{\"n\":{i}}}").into_bytes())
        .collect()
}

async fn clear(store: &PgStore) -> Result<(), sqlx::Error> {
    sqlx::query("TRUNCATE task_queue, task_events, batches, tasks")
        .execute(store.pool())
        .await?;
    Ok(())
}

/// The floor: the same rows with nothing but two multi-row inserts per chunk.
async fn raw_insert(store: &PgStore, project: Id, n: usize) -> Result<Duration, sqlx::Error> {
    let (code_id, rev_id): (String, String) = sqlx::query_as(
        "SELECT id, latest_revision_id FROM codes WHERE project_id = $1 AND name = 'noop'",
    )
    .bind(project.to_string())
    .fetch_one(store.pool())
    .await?;
    let batch = Id::generate().to_string();
    let all = payloads(n);
    let begun = Instant::now();
    let mut tx = store.pool().begin().await?;
    for (c, chunk) in all.chunks(5_000).enumerate() {
        let ids: Vec<String> = chunk.iter().map(|_| Id::generate().to_string()).collect();
        let index: Vec<i32> = (0..chunk.len()).map(|i| (c * 5_000 + i) as i32).collect();
        sqlx::query(
            "WITH ins AS ( \
               INSERT INTO tasks (id, project_id, code_id, code_name, code_revision_id, \
                 code_rev, status, priority, payload, timeout, cluster, batch_id, batch_index, \
                 run_at) \
               SELECT t.id, $2, $3, 'noop', $4, 1, 'queued', 0, t.payload, 3600, 'default', \
                 $5, t.idx, now() \
               FROM UNNEST($1::text[], $6::bytea[], $7::int[]) AS t(id, payload, idx) \
               RETURNING id, project_id, code_id, cluster, priority, run_at) \
             INSERT INTO task_queue (task_id, project_id, code_id, cluster, priority, run_at, \
               delayed, paused, limited, held) \
             SELECT id, project_id, code_id, cluster, priority, run_at, false, false, false, \
               false FROM ins",
        )
        .bind(&ids)
        .bind(project.to_string())
        .bind(&code_id)
        .bind(&rev_id)
        .bind(&batch)
        .bind(chunk)
        .bind(&index)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(begun.elapsed())
}

async fn batch_insert(
    store: &PgStore,
    project: Id,
    n: usize,
) -> Result<Duration, Box<dyn std::error::Error>> {
    let batch = NewBatch {
        code_name: "noop".into(),
        payloads: payloads(n),
        timeout: 3600,
        cluster: "default".into(),
        ..NewBatch::default()
    };
    let begun = Instant::now();
    let b = store.create_batch(project, batch).await?;
    let took = begun.elapsed();
    assert_eq!(b.total as usize, n);
    Ok(took)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n = env_num("BENCH_ITEMS", 100_000) as usize;
    let runs = env_num("BENCH_RUNS", 3);
    let (store, _url) = ferrum_store::testing::fresh_store().await?;
    let (project, _) = ferrum_store::testing::project_with_code(&store, "noop").await?;
    let (mut raw, mut batch) = (Vec::new(), Vec::new());
    for run in 0..runs {
        clear(&store).await?;
        let r = raw_insert(&store, project, n).await?;
        clear(&store).await?;
        let b = batch_insert(&store, project, n).await?;
        println!(
            "run {run}: raw INSERT {:.0} ms, batch {:.0} ms",
            r.as_secs_f64() * 1e3,
            b.as_secs_f64() * 1e3
        );
        raw.push(r);
        batch.push(b);
    }
    let (r, b) = (median(raw), median(batch));
    println!(
        "{n} items: raw INSERT median {:.0} ms, batch median {:.0} ms, ratio (raw/batch) {:.2}",
        r.as_secs_f64() * 1e3,
        b.as_secs_f64() * 1e3,
        r.as_secs_f64() / b.as_secs_f64()
    );
    Ok(())
}
