//! Dispatch benchmark: Ferrum's store against the raw Postgres floor, in the same run, on the
//! same server, through the same client library.
//!
//! - enqueue: batched `enqueue` (1,000 tasks a call) vs a raw multi-row `INSERT … UNNEST` of
//!   minimal rows into a plain table;
//! - lease+complete: N concurrent leasers taking 10 tasks a call and completing each, on a queue
//!   holding 1,000,000 tasks, vs the same loop in plain SQL (`UPDATE … WHERE id IN (SELECT …
//!   FOR UPDATE SKIP LOCKED LIMIT 10)` then one `UPDATE` per job) on a plain table. Each
//!   completion is its own call on both sides; Ferrum's store coalesces the calls that arrive
//!   while four are being written (`pg/completions.rs`), the floor's never;
//! - the same with 4 leasers once 100,000 tasks of a paused code wait at the head of Ferrum's
//!   queue (at a higher priority), then with 100,000 more of a code limited to one task at a
//!   time whose one slot is taken by a long task: they must not slow the leasing of the rest.
//!
//! Run: `scripts/bench-dispatch` (or `cargo run --release -p ferrum-store --example
//! dispatch_bench` with `FERRUM_TEST_DATABASE_URL` set). `BENCH_TASKS` and `BENCH_SECS` change
//! the queue size (default 1,000,000) and the seconds each side is measured per number of
//! leasers (default 20).

use std::time::{Duration, Instant};

use ferrum_model::{CodeSpec, Id, NewRevision, NewTask, TaskStatus};
use ferrum_store::{CodeStore, DispatchStore, LeaseSpec, Outcome, PgStore, TaskStore};
use sqlx::PgPool;

const BATCH: usize = 1000;
const LEASE_BATCH: u32 = 10;

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let total = env_num("BENCH_TASKS", 1_000_000) as usize;
    let secs = Duration::from_secs(env_num("BENCH_SECS", 20));
    let (store, _url) = ferrum_store::testing::fresh_store().await?;
    let pool = store.pool().clone();
    let (project, _) = ferrum_store::testing::project_with_code(&store, "noop").await?;
    sqlx::query(
        "CREATE TABLE bench_raw_jobs (id bigserial PRIMARY KEY, status text NOT NULL, \
         priority smallint NOT NULL, run_at timestamptz NOT NULL DEFAULT now(), payload bytea)",
    )
    .execute(&pool)
    .await?;
    sqlx::query(
        "CREATE INDEX bench_raw_runnable ON bench_raw_jobs (priority DESC, run_at) \
         WHERE status = 'queued'",
    )
    .execute(&pool)
    .await?;

    println!(
        "# Ferrum dispatch benchmark: {total} queued tasks, {}s per side and number of leasers",
        secs.as_secs()
    );
    println!(
        "{:<28} {:>12} {:>12} {:>7}   per job (ferrum, raw): CPU µs machine, client; \
         WAL bytes; full-page images",
        "measure", "ferrum/s", "raw/s", "ratio"
    );
    let ferrum = enqueue_ferrum(&store, project, total).await?;
    let raw = enqueue_raw(&pool, total).await?;
    println!(
        "{:<28} {ferrum:>12.0} {raw:>12.0} {:>7.2}",
        "enqueue (1000/batch)",
        ferrum / raw
    );

    let statements = StatementStats::open(&pool).await;
    for leasers in [1, 4, 16] {
        if let Some(stats) = &statements {
            stats.reset().await?;
        }
        let measured = lease_complete_both(&store, &pool, leasers, secs).await?;
        report(&format!("lease+complete, {leasers} leasers"), &measured);
        if let Some(stats) = &statements {
            stats.print().await?;
        }
    }

    // Backlogs at the head of the queue (a higher priority) that cannot run now must not slow
    // other codes' leases: a paused code's, then also one of a code at its concurrency limit
    // of 1, its one slot taken by a long task. Both stay out of the dispatch index, as the
    // floor's finished jobs do.
    let paused = queue_backlog(&store, project, "paused", CodeSpec::default()).await?;
    store.set_paused(project, paused, true).await?;
    let measured = lease_complete_both(&store, &pool, 4, secs).await?;
    report("4 leasers, 100k paused ahead", &measured);
    let throttled = CodeSpec {
        max_concurrency: Some(1),
        ..CodeSpec::default()
    };
    queue_backlog(&store, project, "throttled", throttled).await?;
    let long_task = LeaseSpec {
        runner_id: Id::generate(),
        cluster: "default".into(),
        max_tasks: 1,
        lease_for: Duration::from_secs(3600),
    };
    let running = store.lease(&long_task).await?;
    assert_eq!(running[0].revision.name, "throttled", "the slot is taken");
    let measured = lease_complete_both(&store, &pool, 4, secs).await?;
    report("4 leasers, +100k throttled", &measured);
    Ok(())
}

/// Queues [`BACKLOG`] tasks of a new code `name` at priority 1, ahead of the rest, and answers
/// the code.
async fn queue_backlog(
    store: &PgStore,
    project: Id,
    name: &str,
    spec: CodeSpec,
) -> Result<Id, ferrum_store::StoreError> {
    let rev = NewRevision {
        name: name.into(),
        spec,
        zip: None,
    };
    let code = store.put_revision(project, rev).await?.id;
    for _ in 0..BACKLOG / BATCH {
        let backlog = (0..BATCH)
            .map(|_| NewTask {
                code_name: name.into(),
                priority: Some(1),
                ..task()
            })
            .collect();
        store.enqueue(project, backlog).await?;
    }
    Ok(code)
}

/// Tasks of a code that cannot run queued ahead of the rest in the last measurements.
const BACKLOG: usize = 100_000;

/// Measures both sides with `leasers` leasers for `secs` each, in four slices of a quarter of
/// the time, in the order ferrum, raw, raw, ferrum, ferrum, raw, raw, ferrum, so that drift
/// during the run (autovacuum, checkpoints, the queue head moving) weighs on both alike.
/// Answers each side's slices, in the order measured, and which sides' queues ran dry.
///
/// Each measurement starts from vacuumed, analyzed tables on both sides, as autovacuum leaves
/// them sooner or later, whatever the one before left behind: a pause, for one, leaves the
/// dead dispatch-index entries of its 100,000 rows until vacuum removes them.
async fn lease_complete_both(
    store: &PgStore,
    pool: &PgPool,
    leasers: usize,
    secs: Duration,
) -> Result<Measured, sqlx::Error> {
    sqlx::query("VACUUM ANALYZE tasks, task_queue, bench_raw_jobs")
        .execute(pool)
        .await?;
    let slice = secs / 4;
    let (mut ferrum, mut raw) = (Vec::new(), Vec::new());
    for _ in 0..2 {
        ferrum.push(lease_complete_ferrum(store, leasers, slice).await?);
        raw.push(lease_complete_raw(pool, leasers, slice).await?);
        raw.push(lease_complete_raw(pool, leasers, slice).await?);
        ferrum.push(lease_complete_ferrum(store, leasers, slice).await?);
    }
    let dry = dry_sides(pool).await?;
    Ok(Measured { ferrum, raw, dry })
}

/// One measurement of both sides.
struct Measured {
    ferrum: Vec<Rate>,
    raw: Vec<Rate>,
    /// The sides whose queue ran dry: their rate counts idle time, and the ratio means
    /// nothing. `BENCH_TASKS` must cover all the measurements.
    dry: Vec<&'static str>,
}

/// The sides with no task of the benchmark's code left to lease.
async fn dry_sides(pool: &PgPool) -> Result<Vec<&'static str>, sqlx::Error> {
    let (ferrum, raw): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM task_queue q JOIN codes c ON c.id = q.code_id \
                 WHERE c.name = 'noop' AND NOT q.leased), \
                (SELECT count(*) FROM bench_raw_jobs WHERE status = 'queued')",
    )
    .fetch_one(pool)
    .await?;
    Ok([("ferrum", ferrum), ("raw", raw)]
        .into_iter()
        .filter(|(_, left)| *left == 0)
        .map(|(side, _)| side)
        .collect())
}

/// Server-side cost per statement call, from `pg_stat_statements` when the server loads it
/// (`shared_preload_libraries = 'pg_stat_statements'`): what each side's statements cost
/// Postgres itself, apart from the client and the network. Coalesced completions show as
/// `ferrum coalesced`: their calls against the jobs they completed give the batches' size.
struct StatementStats {
    pool: PgPool,
}

impl StatementStats {
    async fn open(pool: &PgPool) -> Option<Self> {
        sqlx::query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            .execute(pool)
            .await
            .ok()?;
        let stats = StatementStats { pool: pool.clone() };
        stats.reset().await.ok()?;
        Some(stats)
    }

    async fn reset(&self) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT pg_stat_statements_reset()")
            .execute(&self.pool)
            .await
            .map(drop)
    }

    async fn print(&self) -> Result<(), sqlx::Error> {
        let rows: Vec<(String, f64, f64, f64, f64, f64, f64)> = sqlx::query_as(
            "SELECT CASE WHEN query LIKE 'WITH cand AS%' THEN 'ferrum lease' \
                         WHEN query LIKE 'WITH off AS%' THEN 'ferrum complete' \
                         WHEN query LIKE 'WITH req AS%' THEN 'ferrum coalesced' \
                         WHEN query LIKE '%WHERE id IN%' THEN 'raw claim' \
                         ELSE 'raw complete' END AS what, \
               sum(calls)::float8, \
               sum(total_plan_time)::float8 / sum(calls), \
               sum(total_exec_time)::float8 / sum(calls), \
               sum(shared_blks_hit + shared_blks_read)::float8 / sum(calls), \
               sum(wal_records)::float8 / sum(calls), \
               sum(wal_fpi)::float8 / sum(calls) \
             FROM pg_stat_statements \
             WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) \
               AND (query LIKE 'WITH cand AS%' OR query LIKE 'WITH off AS%' \
                    OR query LIKE 'WITH req AS%' OR query LIKE 'UPDATE bench_raw_jobs%') \
             GROUP BY 1 ORDER BY 1",
        )
        .fetch_all(&self.pool)
        .await?;
        for (what, calls, plan, exec, buffers, wal, fpi) in rows {
            println!(
                "    {what:<16} {calls:>8.0} calls: {plan:.3} ms plan + {exec:.3} ms exec, \
                 {buffers:.0} buffers, {wal:.1} WAL records, {fpi:.2} full-page images"
            );
        }
        Ok(())
    }
}

/// A measured rate, with the CPU time per job of the whole machine (Postgres, this client, the
/// kernel) and of this process alone: on a small machine the client competes with Postgres for
/// the same cores, so both costs show in the rate. Also the WAL each job wrote, and how many
/// full-page images of it: after each checkpoint, the first change to every page logs the whole
/// page, and where checkpoints fell made runs differ (see `docs/BENCHMARKS.md`). And how many
/// autovacuum runs on the database's tables ended meanwhile, to tell whether one coincides
/// with a slice that cost more than the others.
struct Rate {
    per_sec: f64,
    machine_cpu_us: f64,
    client_cpu_us: f64,
    wal_bytes: f64,
    wal_fpi: f64,
    autovacuums: f64,
}

impl Rate {
    /// The mean of measurements of equal length.
    fn mean(slices: &[Rate]) -> Rate {
        let n = slices.len().max(1) as f64;
        let sum = |f: fn(&Rate) -> f64| slices.iter().map(f).sum::<f64>() / n;
        Rate {
            per_sec: sum(|r| r.per_sec),
            machine_cpu_us: sum(|r| r.machine_cpu_us),
            client_cpu_us: sum(|r| r.client_cpu_us),
            wal_bytes: sum(|r| r.wal_bytes),
            wal_fpi: sum(|r| r.wal_fpi),
            autovacuums: sum(|r| r.autovacuums),
        }
    }
}

/// Prints the means of both sides' slices and their ratio, then each slice: its rate, machine
/// CPU per job and autovacuums ended, so a run's outliers can be traced to where they fell.
fn report(what: &str, measured: &Measured) {
    let (ferrum, raw) = (&measured.ferrum[..], &measured.raw[..]);
    let slices = |side: &[Rate]| {
        side.iter()
            .map(|r| {
                format!(
                    "{:.0} ({:.0}, {:.0})",
                    r.per_sec, r.machine_cpu_us, r.autovacuums
                )
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    let (slices_ferrum, slices_raw) = (slices(ferrum), slices(raw));
    let (ferrum, raw) = (Rate::mean(ferrum), Rate::mean(raw));
    println!(
        "{what:<28} {:>12.0} {:>12.0} {:>7.2}   {:.0}, {:.0}   {:.0}, {:.0}   {:.0}, {:.0}   \
         {:.3}, {:.3}",
        ferrum.per_sec,
        raw.per_sec,
        ferrum.per_sec / raw.per_sec,
        ferrum.machine_cpu_us,
        raw.machine_cpu_us,
        ferrum.client_cpu_us,
        raw.client_cpu_us,
        ferrum.wal_bytes,
        raw.wal_bytes,
        ferrum.wal_fpi,
        raw.wal_fpi
    );
    println!("    slices, jobs/s (machine CPU µs/job, autovacuums ended): ferrum {slices_ferrum}");
    println!("    {:<54} raw {slices_raw}", "");
    for side in &measured.dry {
        println!(
            "    WARNING: the {side} queue ran dry, so this ratio means nothing; raise BENCH_TASKS"
        );
    }
}

/// Sums the numeric fields at `indexes` of a whitespace-separated `/proc` line, in clock ticks
/// (1/100 s), as microseconds.
fn ticks_us(line: &str, indexes: &[usize]) -> f64 {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let ticks: f64 = indexes
        .iter()
        .filter_map(|i| fields.get(*i).and_then(|f| f.parse::<f64>().ok()))
        .sum();
    ticks * 1e6 / 100.0
}

/// This process's user + system CPU time in microseconds, from `/proc/self/stat`.
fn client_cpu_us() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    ticks_us(stat.rsplit(')').next().unwrap_or_default(), &[11, 12])
}

/// The machine's busy CPU time (user, nice, system, irq, softirq over all cores) in
/// microseconds, from the first line of `/proc/stat`.
fn machine_cpu_us() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    ticks_us(stat.lines().next().unwrap_or_default(), &[1, 2, 3, 6, 7])
}

fn task() -> NewTask {
    NewTask {
        code_name: "noop".into(),
        payload: b"{}".to_vec(),
        priority: Some(0),
        timeout: 3600,
        cluster: "default".into(),
        ..NewTask::default()
    }
}

async fn enqueue_ferrum(
    store: &PgStore,
    project: Id,
    total: usize,
) -> Result<f64, ferrum_store::StoreError> {
    let start = Instant::now();
    for _ in 0..total / BATCH {
        store
            .enqueue(project, (0..BATCH).map(|_| task()).collect())
            .await?;
    }
    Ok(total as f64 / start.elapsed().as_secs_f64())
}

async fn enqueue_raw(pool: &PgPool, total: usize) -> Result<f64, sqlx::Error> {
    let start = Instant::now();
    let payloads: Vec<Vec<u8>> = (0..BATCH).map(|_| b"{}".to_vec()).collect();
    for _ in 0..total / BATCH {
        sqlx::query(
            "INSERT INTO bench_raw_jobs (status, priority, payload) \
             SELECT 'queued', 0, p FROM UNNEST($1::bytea[]) AS p",
        )
        .bind(&payloads)
        .execute(pool)
        .await?;
    }
    Ok(total as f64 / start.elapsed().as_secs_f64())
}

/// Counters so far: the server's WAL (full-page images, bytes) from `pg_stat_wal`, and the
/// autovacuum runs ended on the database's tables. The WAL is the whole server's, so other
/// databases' writes during a run would count too.
async fn counters(pool: &PgPool) -> Result<(f64, f64, f64), sqlx::Error> {
    sqlx::query_as(
        "SELECT wal_fpi::float8, wal_bytes::float8, \
                (SELECT sum(autovacuum_count)::float8 FROM pg_stat_user_tables) \
         FROM pg_stat_wal",
    )
    .fetch_one(pool)
    .await
}

/// Runs `leasers` copies of `work` (each stops at its deadline and returns how many jobs it
/// finished) and gives the combined rate.
async fn measure<F, Fut>(pool: &PgPool, leasers: usize, work: F) -> Result<Rate, sqlx::Error>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = u64> + Send + 'static,
{
    let (fpi, wal, vacuums) = counters(pool).await?;
    let (start, machine, client) = (Instant::now(), machine_cpu_us(), client_cpu_us());
    let handles: Vec<_> = (0..leasers).map(|_| tokio::spawn(work())).collect();
    let mut done = 0;
    for h in handles {
        done += h.await.unwrap_or(0);
    }
    let per_sec = done as f64 / start.elapsed().as_secs_f64();
    let (machine_cpu, client_cpu) = (machine_cpu_us(), client_cpu_us());
    let (fpi_after, wal_after, vacuums_after) = counters(pool).await?;
    let jobs = done.max(1) as f64;
    Ok(Rate {
        per_sec,
        machine_cpu_us: (machine_cpu - machine) / jobs,
        client_cpu_us: (client_cpu - client) / jobs,
        wal_bytes: (wal_after - wal) / jobs,
        wal_fpi: (fpi_after - fpi) / jobs,
        autovacuums: vacuums_after - vacuums,
    })
}

async fn lease_complete_ferrum(
    store: &PgStore,
    leasers: usize,
    secs: Duration,
) -> Result<Rate, sqlx::Error> {
    let deadline = Instant::now() + secs;
    measure(store.pool(), leasers, || {
        let store = store.clone();
        async move {
            let spec = LeaseSpec {
                runner_id: Id::generate(),
                cluster: "default".into(),
                max_tasks: LEASE_BATCH,
                lease_for: Duration::from_secs(300),
            };
            let mut n = 0;
            while Instant::now() < deadline {
                let Ok(leased) = store.lease(&spec).await else {
                    break;
                };
                for l in leased {
                    let outcome = Outcome {
                        status: TaskStatus::Complete,
                        exit_code: Some(0),
                        msg: None,
                    };
                    if store
                        .complete(l.id, spec.runner_id, l.attempt, outcome)
                        .await
                        .is_ok()
                    {
                        n += 1;
                    }
                }
            }
            n
        }
    })
    .await
}

async fn lease_complete_raw(
    pool: &PgPool,
    leasers: usize,
    secs: Duration,
) -> Result<Rate, sqlx::Error> {
    let deadline = Instant::now() + secs;
    measure(pool, leasers, || {
        let pool = pool.clone();
        // The limit is a literal, as in Ferrum's lease: a bound LIMIT makes Postgres plan
        // every call afresh.
        let claim = format!(
            "UPDATE bench_raw_jobs SET status = 'running' WHERE id IN ( \
               SELECT id FROM bench_raw_jobs WHERE status = 'queued' AND run_at <= now() \
               ORDER BY priority DESC, run_at LIMIT {LEASE_BATCH} FOR UPDATE SKIP LOCKED) \
             RETURNING id"
        );
        async move {
            let mut n = 0;
            while Instant::now() < deadline {
                let Ok(ids) = sqlx::query_scalar::<_, i64>(&claim).fetch_all(&pool).await else {
                    break;
                };
                for id in ids {
                    let done =
                        sqlx::query("UPDATE bench_raw_jobs SET status = 'done' WHERE id = $1")
                            .bind(id)
                            .execute(&pool)
                            .await;
                    if done.is_ok() {
                        n += 1;
                    }
                }
            }
            n
        }
    })
    .await
}
