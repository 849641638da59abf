//! Schedules and firing them.
//!
//! Firing reads the due schedules, queues their tasks and moves `next_start` on in one
//! `BEGIN IMMEDIATE` transaction: with SQLite's single writer no other firing can interleave,
//! so every slot makes its tasks once. The arithmetic (cron, misfires, limits) is shared with
//! the Postgres backend (`crate::derived`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use ferrum_model::{Id, NewSchedule, Page, Schedule, ScheduleStatus};

use sqlx::{Connection, Row, SqliteConnection};

use super::rows::{self, micros, now};
use super::tasks::insert_tasks;
use super::SqliteStore;
use crate::derived::{check_schedule_limit, firing, resumed_next, task_of, FireFailure};
use crate::{ScheduleStore, ScheduleUpdate, StoreError, StoreResult};

#[async_trait]
impl ScheduleStore for SqliteStore {
    async fn create_schedules(
        &self,
        project: Id,
        schedules: Vec<NewSchedule>,
        max_active: Option<i64>,
    ) -> StoreResult<Vec<Id>> {
        // A write transaction: no other writer runs between the count and the inserts.
        let mut tx = self.write().await?;
        if max_active.is_some() {
            let active: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM schedules WHERE project_id = ?1 AND status = 'scheduled'",
            )
            .bind(project.to_string())
            .fetch_one(&mut *tx)
            .await?;
            check_schedule_limit(max_active, active, schedules.len())?;
        }
        let at = now();
        let mut ids = Vec::with_capacity(schedules.len());
        for s in schedules {
            let code_id: Option<String> = sqlx::query_scalar(
                "SELECT id FROM codes WHERE project_id = ?1 AND name = ?2 AND deleted_at IS NULL",
            )
            .bind(project.to_string())
            .bind(&s.code_name)
            .fetch_optional(&mut *tx)
            .await?;
            let code_id = code_id.ok_or_else(|| StoreError::UnknownCode(s.code_name.clone()))?;
            let id = Id::generate();
            sqlx::query(
                "INSERT INTO schedules (id, project_id, code_id, code_name, payload, start_at, \
                 end_at, next_start, run_every, run_times, priority, timeout, task_delay, \
                 cluster, label, cron, timezone, misfire, created_at, updated_at) \
                 VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17,?18,?19,?19)",
            )
            .bind(id.to_string())
            .bind(project.to_string())
            .bind(code_id)
            .bind(&s.code_name)
            .bind(&s.payload)
            .bind(micros(s.start_at))
            .bind(s.end_at.map(micros))
            .bind(micros(s.first_slot))
            .bind(s.run_every)
            .bind(s.run_times)
            .bind(s.priority)
            .bind(s.timeout)
            .bind(s.task_delay)
            .bind(&s.cluster)
            .bind(&s.label)
            .bind(&s.cron)
            .bind(&s.timezone)
            .bind(s.misfire.as_str())
            .bind(at)
            .execute(&mut *tx)
            .await?;
            ids.push(id);
        }
        tx.commit().await?;
        Ok(ids)
    }

    async fn schedule(&self, project: Id, id: Id) -> StoreResult<Option<Schedule>> {
        let row = sqlx::query("SELECT * FROM schedules WHERE project_id = ?1 AND id = ?2")
            .bind(project.to_string())
            .bind(id.to_string())
            .fetch_optional(&self.reader)
            .await?;
        row.as_ref().map(rows::schedule).transpose()
    }

    async fn schedules(&self, project: Id, page: Page) -> StoreResult<Vec<Schedule>> {
        let rows = sqlx::query(
            "SELECT * FROM schedules WHERE project_id = ?1 ORDER BY id DESC LIMIT ?2 OFFSET ?3",
        )
        .bind(project.to_string())
        .bind(page.limit())
        .bind(page.offset())
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(rows::schedule).collect()
    }

    async fn cancel_schedule(&self, project: Id, id: Id) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE schedules SET \
               status = CASE WHEN status = 'scheduled' THEN 'cancelled' ELSE status END, \
               next_start = CASE WHEN status = 'scheduled' THEN NULL ELSE next_start END, \
               updated_at = ?3 \
             WHERE project_id = ?1 AND id = ?2",
        )
        .bind(project.to_string())
        .bind(id.to_string())
        .bind(now())
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn update_schedule(&self, project: Id, id: Id, u: ScheduleUpdate) -> StoreResult<bool> {
        let mut tx = self.write().await?;
        let at = now();
        let done = sqlx::query(
            "UPDATE schedules SET payload = coalesce(?3, payload), \
             priority = coalesce(?4, priority), timeout = coalesce(?5, timeout), \
             cluster = coalesce(?6, cluster), label = coalesce(?7, label), \
             run_every = coalesce(?8, run_every), run_times = coalesce(?9, run_times), \
             end_at = coalesce(?10, end_at), task_delay = coalesce(?11, task_delay), \
             updated_at = ?12 WHERE project_id = ?1 AND id = ?2",
        )
        .bind(project.to_string())
        .bind(id.to_string())
        .bind(u.payload)
        .bind(u.priority)
        .bind(u.timeout)
        .bind(u.cluster)
        .bind(u.label)
        .bind(u.run_every)
        .bind(u.run_times)
        .bind(u.end_at.map(micros))
        .bind(u.task_delay)
        .bind(at)
        .execute(&mut *tx)
        .await?;
        // New limits may already be reached: the schedule ends now rather than firing once
        // more past them.
        sqlx::query(
            "UPDATE schedules SET status = 'complete', next_start = NULL, updated_at = ?2, \
             msg = CASE WHEN run_count >= run_times THEN 'Ran max times.' \
                   ELSE 'Reached end_at.' END \
             WHERE id = ?1 AND status = 'scheduled' \
               AND (run_count >= run_times OR next_start > end_at)",
        )
        .bind(id.to_string())
        .bind(at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    async fn fire_due(&self, now_at: DateTime<Utc>, limit: i64) -> StoreResult<Vec<Id>> {
        let mut tx = self.write().await?;
        let due = sqlx::query(
            "SELECT s.* FROM schedules s JOIN codes c ON c.id = s.code_id \
             WHERE s.status = 'scheduled' AND NOT s.paused AND s.next_start <= ?1 \
               AND NOT c.paused AND c.deleted_at IS NULL \
             ORDER BY s.next_start LIMIT ?2",
        )
        .bind(micros(now_at))
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        let mut fired = Vec::new();
        let at = now();
        for row in &due {
            let id: String = row.try_get("id").unwrap_or_default();
            let failures: i32 = row.try_get("fire_failures").unwrap_or(0);
            // Each schedule under a savepoint of its own: one that cannot fire (a row that got
            // past validation, or was stored before a limit existed) is skipped alone.
            let s = match rows::schedule(row) {
                Ok(s) => s,
                Err(e) => {
                    let f = FireFailure::new(id, failures, &e.to_string(), now_at);
                    record_failure(&mut tx, &f, at).await?;
                    continue;
                }
            };
            let (f, done) = firing(&s, now_at);
            let n = f.slots.len();
            let tasks = vec![task_of(&s); n];
            let queued = if tasks.is_empty() {
                Ok(Vec::new())
            } else {
                let mut savepoint = tx.begin().await?;
                match insert_tasks(&mut savepoint, s.project_id, tasks).await {
                    Ok(ids) => {
                        savepoint.commit().await?;
                        Ok(ids)
                    }
                    Err(e) => {
                        savepoint.rollback().await?;
                        Err(e)
                    }
                }
            };
            match queued {
                Ok(ids) => fired.extend(ids),
                Err(e) => {
                    let f = FireFailure::new(id, failures, &e.to_string(), now_at);
                    record_failure(&mut tx, &f, at).await?;
                    continue;
                }
            }
            sqlx::query(
                "UPDATE schedules SET run_count = run_count + ?2, \
                   last_run_time = CASE WHEN ?2 > 0 THEN ?5 ELSE last_run_time END, \
                   next_start = ?3, \
                   status = CASE WHEN ?4 IS NULL THEN status ELSE 'complete' END, \
                   msg = CASE WHEN fire_failures > 0 THEN ?4 ELSE coalesce(?4, msg) END, \
                   fire_failures = 0, updated_at = ?6 \
                 WHERE id = ?1",
            )
            .bind(s.id.to_string())
            .bind(i64::try_from(n).unwrap_or(i64::MAX))
            .bind(f.next.map(micros))
            .bind(done)
            .bind(micros(now_at))
            .bind(at)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(fired)
    }

    async fn set_schedule_paused(
        &self,
        project: Id,
        id: Id,
        paused: bool,
    ) -> StoreResult<Option<bool>> {
        let mut tx = self.write().await?;
        let row = sqlx::query("SELECT * FROM schedules WHERE project_id = ?1 AND id = ?2")
            .bind(project.to_string())
            .bind(id.to_string())
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let s = rows::schedule(&row)?;
        if s.paused == paused || s.status != ScheduleStatus::Scheduled {
            return Ok(Some(false));
        }
        let next = if paused {
            s.next_start
        } else {
            resumed_next(&s, Utc::now())?
        };
        sqlx::query(
            "UPDATE schedules SET paused = ?2, next_start = ?3, updated_at = ?4 WHERE id = ?1",
        )
        .bind(id.to_string())
        .bind(paused)
        .bind(next.map(micros))
        .bind(now())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(true))
    }

    async fn next_fire_at(&self, now_at: DateTime<Utc>) -> StoreResult<Option<DateTime<Utc>>> {
        let row = sqlx::query(
            "SELECT min(s.next_start) AS next FROM schedules s JOIN codes c ON c.id = s.code_id \
             WHERE s.status = 'scheduled' AND NOT s.paused AND s.next_start > ?1 \
               AND NOT c.paused",
        )
        .bind(micros(now_at))
        .fetch_one(&self.reader)
        .await?;
        rows::Cols::opt_time(&row, "next")
    }
}

/// Skips a schedule that could not fire: it waits, or is stopped ([`FireFailure`]).
async fn record_failure(conn: &mut SqliteConnection, f: &FireFailure, at: i64) -> StoreResult<()> {
    sqlx::query(
        "UPDATE schedules SET fire_failures = fire_failures + 1, next_start = ?2, \
           status = coalesce(?3, status), msg = ?4, updated_at = ?5 WHERE id = ?1",
    )
    .bind(&f.id)
    .bind(f.next.map(micros))
    .bind(f.status)
    .bind(&f.msg)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}
