//! Firing due schedules on Postgres (the rest of schedules is `crate::common::schedules`).
//!
//! Firing claims due rows with `FOR UPDATE SKIP LOCKED` and, in the same transaction, queues
//! their tasks and moves `next_start` on. A replica that looks after the commit sees the new
//! `next_start`; one that looked before finds the rows locked and skips them, or (having
//! waited on nothing) re-reads them under Postgres' READ COMMITTED re-check and finds them no
//! longer due. So every slot makes its tasks once however many replicas fire, with no leader.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use ferrum_model::{Id, NewTask};

use sqlx::postgres::PgRow;
use sqlx::{Connection, PgConnection, Row};

use super::tasks::{insert_tasks, Inserted};
use super::{rows, PgStore};
use crate::common::schedules::ScheduleSql;
use crate::derived::{firing, task_of, FireFailure};
use crate::StoreResult;

/// What one due schedule queues now and where it goes next.
struct Planned {
    id: Id,
    tasks: Vec<NewTask>,
    next: Option<DateTime<Utc>>,
    done: Option<String>,
}

/// One project's schedules (or one schedule) and whether queueing their tasks worked.
type Queued = (Id, Vec<Planned>, StoreResult<Inserted>);

/// Queues every group's tasks so that a schedule whose tasks cannot be queued (a row that
/// got past validation, or was stored before a limit existed) fails alone. The fast path is
/// one savepoint around every insert of the pass; only when that fails does each project, then
/// each schedule of a failing project, get a savepoint of its own. Errors of the connection
/// itself (a savepoint that cannot be rolled back) still end the pass.
async fn queue_isolated(
    conn: &mut PgConnection,
    groups: Vec<(Id, Vec<Planned>)>,
) -> StoreResult<Vec<Queued>> {
    let mut all = conn.begin().await?;
    let mut queued = Vec::with_capacity(groups.len());
    let mut whole = Ok(());
    for (project, group) in &groups {
        let tasks = tasks_of(group);
        if tasks.is_empty() {
            queued.push(Inserted::default());
            continue;
        }
        match insert_tasks(&mut all, *project, tasks).await {
            Ok(ins) => queued.push(ins),
            Err(e) => {
                whole = Err(e);
                break;
            }
        }
    }
    if whole.is_ok() {
        all.commit().await?;
        return Ok(groups
            .into_iter()
            .zip(queued)
            .map(|((project, group), ins)| (project, group, Ok(ins)))
            .collect());
    }
    all.rollback().await?;
    let mut out = Vec::new();
    for (project, group) in groups {
        match try_insert(conn, project, tasks_of(&group)).await? {
            Ok(ins) => out.push((project, group, Ok(ins))),
            Err(_) => {
                for planned in group {
                    let result = try_insert(conn, project, planned.tasks.clone()).await?;
                    out.push((project, vec![planned], result));
                }
            }
        }
    }
    Ok(out)
}

fn tasks_of(group: &[Planned]) -> Vec<NewTask> {
    group.iter().flat_map(|p| p.tasks.iter().cloned()).collect()
}

/// Inserts under a savepoint: the outer result fails only when the savepoint itself does.
async fn try_insert(
    conn: &mut PgConnection,
    project: Id,
    tasks: Vec<NewTask>,
) -> StoreResult<StoreResult<Inserted>> {
    if tasks.is_empty() {
        return Ok(Ok(Inserted::default()));
    }
    let mut savepoint = conn.begin().await?;
    match insert_tasks(&mut savepoint, project, tasks).await {
        Ok(ins) => {
            savepoint.commit().await?;
            Ok(Ok(ins))
        }
        Err(e) => {
            savepoint.rollback().await?;
            Ok(Err(e))
        }
    }
}

fn failures_of(due: &[PgRow], id: Id) -> i32 {
    let id = id.to_string();
    due.iter()
        .find(|r| r.try_get::<String, _>("id").is_ok_and(|i| i == id))
        .and_then(|r| r.try_get("fire_failures").ok())
        .unwrap_or(0)
}

/// Skips the schedules that could not fire: each waits, or is stopped ([`FireFailure`]).
async fn record_failures(conn: &mut PgConnection, failed: &[FireFailure]) -> StoreResult<()> {
    let ids: Vec<&str> = failed.iter().map(|f| f.id.as_str()).collect();
    let next: Vec<Option<DateTime<Utc>>> = failed.iter().map(|f| f.next).collect();
    let status: Vec<Option<&str>> = failed.iter().map(|f| f.status).collect();
    let msg: Vec<&str> = failed.iter().map(|f| f.msg.as_str()).collect();
    sqlx::query(
        "UPDATE schedules s SET fire_failures = s.fire_failures + 1, next_start = u.next, \
           status = coalesce(u.status, s.status), msg = u.msg, updated_at = now() \
         FROM UNNEST($1::text[], $2::timestamptz[], $3::text[], $4::text[]) \
           AS u(id, next, status, msg) \
         WHERE s.id = u.id",
    )
    .bind(&ids)
    .bind(&next)
    .bind(&status)
    .bind(&msg)
    .execute(conn)
    .await?;
    Ok(())
}

/// Column vectors of the one `UPDATE` that advances every fired schedule.
#[derive(Default)]
struct Advance {
    id: Vec<String>,
    fired: Vec<i32>,
    next: Vec<Option<DateTime<Utc>>>,
    done: Vec<Option<String>>,
}

#[async_trait]
impl ScheduleSql for PgStore {
    async fn fire(&self, now: DateTime<Utc>, limit: i64) -> StoreResult<Vec<Id>> {
        let mut tx = self.pool.begin().await?;
        let due = sqlx::query(
            "SELECT s.* FROM schedules s JOIN codes c ON c.id = s.code_id \
             WHERE s.status = 'scheduled' AND NOT s.paused AND s.next_start <= $1 \
               AND NOT c.paused AND c.deleted_at IS NULL \
             ORDER BY s.next_start LIMIT $2 FOR UPDATE OF s SKIP LOCKED",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        let mut failed = Vec::new();
        let mut by_project: BTreeMap<Id, Vec<Planned>> = BTreeMap::new();
        for row in &due {
            match rows::schedule(row) {
                Ok(s) => {
                    let (f, done) = firing(&s, now);
                    let tasks = vec![task_of(&s); f.slots.len()];
                    by_project.entry(s.project_id).or_default().push(Planned {
                        id: s.id,
                        tasks,
                        next: f.next,
                        done,
                    });
                }
                Err(e) => {
                    let id: String = row.try_get("id").unwrap_or_default();
                    let failures: i32 = row.try_get("fire_failures").unwrap_or(0);
                    failed.push(FireFailure::new(id, failures, &e.to_string(), now));
                }
            }
        }
        let mut fired = Vec::new();
        let mut limited_codes = Vec::new();
        let mut advance = Advance::default();
        let groups: Vec<_> = by_project.into_iter().collect();
        for (_project, planned, result) in queue_isolated(&mut tx, groups).await? {
            match result {
                Ok(queued) => {
                    fired.extend(queued.ids);
                    limited_codes.extend(queued.limited_codes);
                    for p in planned {
                        advance.id.push(p.id.to_string());
                        advance
                            .fired
                            .push(i32::try_from(p.tasks.len()).unwrap_or(i32::MAX));
                        advance.next.push(p.next);
                        advance.done.push(p.done);
                    }
                }
                Err(e) => {
                    // The fallback queues a failing project's schedules one by one.
                    for p in planned {
                        let failures = failures_of(&due, p.id);
                        let msg = e.to_string();
                        failed.push(FireFailure::new(p.id.to_string(), failures, &msg, now));
                    }
                }
            }
        }
        sqlx::query(
            "UPDATE schedules s SET run_count = s.run_count + u.fired, \
               last_run_time = CASE WHEN u.fired > 0 THEN $5 ELSE s.last_run_time END, \
               next_start = u.next, \
               status = CASE WHEN u.done IS NULL THEN s.status ELSE 'complete' END, \
               msg = CASE WHEN s.fire_failures > 0 THEN u.done ELSE coalesce(u.done, s.msg) END, \
               fire_failures = 0, updated_at = now() \
             FROM UNNEST($1::text[], $2::int[], $3::timestamptz[], $4::text[]) \
               AS u(id, fired, next, done) \
             WHERE s.id = u.id",
        )
        .bind(&advance.id)
        .bind(&advance.fired)
        .bind(&advance.next)
        .bind(&advance.done)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if !failed.is_empty() {
            record_failures(&mut tx, &failed).await?;
        }
        tx.commit().await?;
        self.admit(limited_codes).await;
        Ok(fired)
    }
}
