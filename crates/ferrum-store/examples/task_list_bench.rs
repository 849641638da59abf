//! Task list benchmark (issue 18): one project holding 1,000,000 finished tasks (plus a
//! neighbour project of 200,000 and 1,000 tasks queued through `enqueue`), then each filter
//! of `GET …/tasks` through `TaskStore::tasks`: its first page, and a page deep in its
//! matches (by cursor, `before` = the id of the match 90 % of the way down), beside the
//! unfiltered first page. Target: every figure within 2 × the unfiltered first page.
//!
//! The history is written by one `INSERT … SELECT generate_series` per project (ids made
//! in SQL with the same layout as `Id`: the creation second, then a counter), spread over
//! the last 30 days: 3 % `error`, 1 % labelled `nightly`, 0.1 % from one schedule, five
//! codes in turn, everything else `complete`. Nothing is `killed`, `timeout` or in cluster
//! `gpu`, so those filters match nothing (the worst case for a scan).
//!
//! Run: `scripts/bench-task-list` (or `cargo run --release -p ferrum-store --example
//! task_list_bench` with `FERRUM_TEST_DATABASE_URL` set). `BENCH_TASKS` changes the count.

use std::time::{Duration, Instant};

use chrono::Utc;
use ferrum_model::validation::{new_task, TaskOptions};
use ferrum_model::{Id, Page, TaskFilter, TaskStatus};
use ferrum_store::{CodeStore, PgStore, TaskStore};

const RUNS: usize = 15;

/// Fills `project` with `n` finished tasks of codes `c0`..`c4` (which must exist).
async fn fill(pool: &sqlx::PgPool, project: Id, n: i64, schedule: &str) -> sqlx::Result<()> {
    let start = Utc::now().timestamp() - 30 * 86_400;
    let step = (30 * 86_400) as f64 / n as f64;
    sqlx::query(
        "INSERT INTO tasks (id, project_id, code_id, code_name, code_revision_id, code_rev, \
         status, priority, payload, timeout, cluster, label, schedule_id, created_at, \
         updated_at, run_at, start_time, end_time, attempt) \
         SELECT lpad(to_hex($3::bigint + floor(i * $4::float8)::bigint), 8, '0') \
                || substr(md5($1), 1, 6) || lpad(to_hex(i), 10, '0'), \
                $1, c.id, c.name, r.id, r.rev, \
                CASE WHEN i % 33 = 0 THEN 'error' ELSE 'complete' END, 0, \
                convert_to('{\"n\":' || i || '}', 'UTF8'), 3600, 'default', \
                CASE WHEN i % 100 = 7 THEN 'nightly' END, \
                CASE WHEN i % 1000 = 3 THEN $5 END, ts, ts, ts, ts, ts + interval '1 second', 1 \
         FROM generate_series(0, $2::bigint - 1) AS i \
         CROSS JOIN LATERAL (SELECT to_timestamp($3::bigint + i * $4::float8) AS ts) AS t \
         JOIN codes c ON c.project_id = $1 AND c.name = 'c' || (i % 5) \
         JOIN code_revisions r ON r.code_id = c.id",
    )
    .bind(project.to_string())
    .bind(n)
    .bind(start)
    .bind(step)
    .bind(schedule)
    .execute(pool)
    .await?;
    Ok(())
}

async fn project(store: &PgStore, name: &str) -> Result<Id, Box<dyn std::error::Error>> {
    use ferrum_store::AccountStore;
    let user = store
        .create_user(&format!("{name}@example.com"), false)
        .await?;
    let project = store.create_project(user, name).await?.id;
    for c in 0..5 {
        let rev = ferrum_model::NewRevision {
            name: format!("c{c}"),
            spec: Default::default(),
            zip: None,
        };
        store.put_revision(project, rev).await?;
    }
    Ok(project)
}

/// The median of `RUNS` reads of one page.
async fn time_page(store: &PgStore, project: Id, f: &TaskFilter) -> (Duration, usize) {
    let mut times = Vec::with_capacity(RUNS);
    let mut rows = 0;
    for _ in 0..RUNS {
        let t = Instant::now();
        rows = store.tasks(project, f).await.expect("list").len();
        times.push(t.elapsed());
    }
    times.sort();
    (times[RUNS / 2], rows)
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: i64 = std::env::var("BENCH_TASKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let (store, url) = ferrum_store::testing::fresh_store().await?;
    let pool = sqlx::PgPool::connect(&url).await?;
    let mine = project(&store, "mine").await?;
    let neighbour = project(&store, "neighbour").await?;
    let schedule = Id::generate().to_string();

    let t = Instant::now();
    // A history written directly is not a stream of final states: no outbox rows for it.
    sqlx::query("ALTER TABLE tasks DISABLE TRIGGER tasks_final_insert")
        .execute(&pool)
        .await?;
    fill(&pool, neighbour, n / 5, &schedule).await?;
    fill(&pool, mine, n, &schedule).await?;
    sqlx::query("ALTER TABLE tasks ENABLE TRIGGER tasks_final_insert")
        .execute(&pool)
        .await?;
    let queued = (0..1000)
        .map(|i| {
            let code = format!("c{}", i % 5);
            new_task(&code, b"{}".to_vec(), TaskOptions::default()).expect("valid task")
        })
        .collect::<Vec<_>>();
    store.enqueue(mine, queued).await?;
    sqlx::query("VACUUM ANALYZE tasks").execute(&pool).await?;
    println!(
        "filled {} + {} tasks in {:.0} s",
        n + 1000,
        n / 5,
        t.elapsed().as_secs_f64()
    );

    let window_end = Utc::now() - chrono::Duration::days(15);
    let status = |s: TaskStatus| TaskFilter {
        statuses: vec![s],
        ..TaskFilter::default()
    };
    let cases: Vec<(&str, TaskFilter)> = vec![
        ("(none)", TaskFilter::default()),
        ("complete=1", status(TaskStatus::Complete)),
        ("error=1 (3 %)", status(TaskStatus::Error)),
        ("killed=1 (none)", status(TaskStatus::Killed)),
        ("queued=1 (1,000)", status(TaskStatus::Queued)),
        (
            "error=1&timeout=1",
            TaskFilter {
                statuses: vec![TaskStatus::Error, TaskStatus::Timeout],
                ..TaskFilter::default()
            },
        ),
        (
            "code_name=c3",
            TaskFilter {
                code_name: Some("c3".into()),
                ..TaskFilter::default()
            },
        ),
        (
            "code_name=absent",
            TaskFilter {
                code_name: Some("absent".into()),
                ..TaskFilter::default()
            },
        ),
        (
            "label=nightly (1 %)",
            TaskFilter {
                label: Some("nightly".into()),
                ..TaskFilter::default()
            },
        ),
        (
            "cluster=gpu (none)",
            TaskFilter {
                cluster: Some("gpu".into()),
                ..TaskFilter::default()
            },
        ),
        (
            "schedule_id (0.1 %)",
            TaskFilter {
                schedule_id: Some(schedule.parse()?),
                ..TaskFilter::default()
            },
        ),
        (
            "from_time..to_time (1 day)",
            TaskFilter {
                from_time: Some(window_end - chrono::Duration::days(1)),
                to_time: Some(window_end),
                ..TaskFilter::default()
            },
        ),
        (
            "error=1&code_name=c3",
            TaskFilter {
                statuses: vec![TaskStatus::Error],
                code_name: Some("c3".into()),
                ..TaskFilter::default()
            },
        ),
    ];

    let mut base = Duration::ZERO;
    println!(
        "{:<28} {:>8} {:>12} {:>12} {:>6}",
        "filter", "matches", "first ms", "deep ms", "× base"
    );
    for (name, f) in &cases {
        let all = TaskFilter {
            page: Page::new(None, Some(100)),
            ..f.clone()
        };
        // Count the matches and find the cursor 90 % down, outside the timings.
        let mut matches = 0usize;
        let mut ids = Vec::new();
        let mut walk = all.clone();
        loop {
            let page = store.tasks(mine, &walk).await?;
            matches += page.len();
            ids.extend(page.iter().step_by(10).map(|t| t.id));
            match page.last() {
                Some(last) if page.len() == 100 => walk.before = Some(last.id),
                _ => break,
            }
        }
        let (first, _) = time_page(&store, mine, f).await;
        if base.is_zero() {
            base = first;
        }
        let deep = match ids.get(ids.len() * 9 / 10) {
            Some(id) if matches > 60 => {
                let g = TaskFilter {
                    before: Some(*id),
                    ..f.clone()
                };
                Some(time_page(&store, mine, &g).await.0)
            }
            _ => None,
        };
        let worst = deep.unwrap_or(first).max(first);
        println!(
            "{:<28} {:>8} {:>12} {:>12} {:>6.1}",
            name,
            matches,
            ms(first),
            deep.map(ms).unwrap_or_else(|| "-".into()),
            worst.as_secs_f64() / base.as_secs_f64()
        );
    }
    // IronWorker's offset paging, for comparison: it still reads every skipped row.
    let deep_offset = TaskFilter {
        page: Page::new(Some((n as u32 / 30) * 9 / 10), None),
        ..TaskFilter::default()
    };
    let (t, _) = time_page(&store, mine, &deep_offset).await;
    println!("{:<28} {:>8} {:>12}", "page=30000 (offset 90 %)", "", ms(t));
    Ok(())
}
