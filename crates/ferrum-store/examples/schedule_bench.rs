//! Schedule firing benchmark: 10,000 active cron schedules, fired by three replicas (each its
//! own pool), each running the firing duty's loop: `fire_due`, then sleep until
//! `next_fire_at` (at most 500 ms). Schedule i fires at second `i % 60` of every minute, so
//! about 167 slots fall due each second.
//!
//! A task's lag is the time from its slot to the moment its firing transaction had
//! committed (measured by the replica that fired it, right after `fire_due` returned).
//!
//! Run: `scripts/bench-schedules` (or `cargo run --release -p ferrum-store --example
//! schedule_bench` with `FERRUM_TEST_DATABASE_URL` set). `BENCH_SCHEDULES` (default 10,000),
//! `BENCH_SECS` (seconds of firing, default 90) and `BENCH_REPLICAS` (default 3) change it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, DurationRound, SubsecRound, Utc};
use ferrum_model::validation::{new_schedule, ScheduleOptions};
use ferrum_model::Id;
use ferrum_store::{PgStore, ScheduleStore};

const BATCH: i64 = 500;

/// Tasks fired, each with the moment its firing had committed.
type Fired = Arc<Mutex<Vec<(Id, DateTime<Utc>)>>>;
const TICK: Duration = Duration::from_millis(500);

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The slot a task fired at `at` was for: the last second `second` of a minute at or before
/// `at`.
fn slot_of(at: DateTime<Utc>, second: i64) -> DateTime<Utc> {
    let minute = at
        .duration_trunc(chrono::Duration::minutes(1))
        .expect("a minute");
    let slot = minute + chrono::Duration::seconds(second);
    if slot > at {
        slot - chrono::Duration::minutes(1)
    } else {
        slot
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n = env_num("BENCH_SCHEDULES", 10_000) as usize;
    let secs = env_num("BENCH_SECS", 90) as i64;
    let replicas = env_num("BENCH_REPLICAS", 3);
    let (store, url) = ferrum_store::testing::fresh_store().await?;
    let (project, _) = ferrum_store::testing::project_with_code(&store, "noop").await?;

    let start_at = Utc::now().trunc_subsecs(0) + chrono::Duration::seconds(30);
    let mut second_of: HashMap<Id, i64> = HashMap::with_capacity(n);
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        let mut batch = Vec::with_capacity(chunk.len());
        for i in chunk {
            let opts = ScheduleOptions {
                start_at: Some(start_at),
                cron: Some(format!("{} * * * * *", i % 60)),
                ..ScheduleOptions::default()
            };
            batch.push(new_schedule("noop", b"{}".to_vec(), opts, Utc::now())?);
        }
        let ids = store.create_schedules(project, batch, None).await?;
        second_of.extend(ids.into_iter().zip(chunk.iter().map(|i| (*i % 60) as i64)));
    }
    println!(
        "# Ferrum schedule firing benchmark: {n} active cron schedules, {replicas} replicas, \
         {secs} s of firing"
    );

    let stop = start_at + chrono::Duration::seconds(secs);
    let fired: Fired = Arc::default();
    let mut loops = Vec::new();
    for _ in 0..replicas {
        let replica = PgStore::connect(&url, 4).await?;
        let fired = fired.clone();
        loops.push(tokio::spawn(async move {
            while Utc::now() < stop {
                let now = Utc::now();
                let ids = replica.fire_due(now, BATCH).await.expect("fire_due");
                let committed = Utc::now();
                let full = ids.len() as i64 >= BATCH;
                fired
                    .lock()
                    .unwrap()
                    .extend(ids.into_iter().map(|id| (id, committed)));
                if full {
                    continue;
                }
                let next = replica.next_fire_at(now).await.expect("next_fire_at");
                let wait = next
                    .and_then(|at| (at - Utc::now()).to_std().ok())
                    .map_or(TICK, |d| d.min(TICK));
                tokio::time::sleep(wait).await;
            }
        }));
    }
    for l in loops {
        l.await?;
    }

    let fired = std::mem::take(&mut *fired.lock().unwrap());
    let tasks: Vec<(String, String)> =
        sqlx::query_as("SELECT id, schedule_id FROM tasks WHERE schedule_id IS NOT NULL")
            .fetch_all(store.pool())
            .await?;
    let schedule_of: HashMap<String, String> = tasks.into_iter().collect();
    let mut lags_ms: Vec<f64> = fired
        .iter()
        .map(|(task, committed)| {
            let schedule: Id = schedule_of[&task.to_string()].parse().expect("an id");
            let slot = slot_of(*committed, second_of[&schedule]);
            (*committed - slot).num_microseconds().unwrap_or(i64::MAX) as f64 / 1000.0
        })
        .collect();
    lags_ms.sort_by(f64::total_cmp);
    let runs: i64 = sqlx::query_scalar("SELECT sum(run_count)::bigint FROM schedules")
        .fetch_one(store.pool())
        .await?;
    let pct = |p: f64| lags_ms[((lags_ms.len() - 1) as f64 * p) as usize];
    println!(
        "firings: {} tasks ({:.0}/s), schedules' run_count total {runs} (equal: no slot fired twice)",
        lags_ms.len(),
        lags_ms.len() as f64 / secs as f64
    );
    println!(
        "lag from slot to committed task: p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        pct(0.5),
        pct(0.9),
        pct(0.99),
        pct(1.0)
    );
    assert_eq!(
        runs as usize,
        lags_ms.len(),
        "a slot fired twice, or a firing was lost"
    );
    Ok(())
}
