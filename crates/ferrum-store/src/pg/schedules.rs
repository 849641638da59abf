//! Schedules and firing them.
//!
//! Firing claims due rows with `FOR UPDATE SKIP LOCKED` and, in the same transaction, queues
//! their tasks and moves `next_start` on. A replica that looks after the commit sees the new
//! `next_start`; one that looked before finds the rows locked and skips them, or (having
//! waited on nothing) re-reads them under Postgres' READ COMMITTED re-check and finds them no
//! longer due. So every slot makes its tasks once however many replicas fire, with no leader.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use ferrum_model::{Id, NewSchedule, NewTask, Page, Schedule, ScheduleStatus};

use super::{rows, tasks::insert_tasks, PgStore};
use crate::derived::{check_schedule_limit, firing, resumed_next, task_of};
use crate::{ScheduleStore, ScheduleUpdate, StoreError, StoreResult};

/// Column vectors of the one `UPDATE` that advances every fired schedule.
#[derive(Default)]
struct Advance {
    id: Vec<String>,
    fired: Vec<i32>,
    next: Vec<Option<DateTime<Utc>>>,
    done: Vec<Option<String>>,
}

#[async_trait]
impl ScheduleStore for PgStore {
    async fn create_schedules(
        &self,
        project: Id,
        schedules: Vec<NewSchedule>,
        max_active: Option<i64>,
    ) -> StoreResult<Vec<Id>> {
        let mut tx = self.pool.begin().await?;
        if max_active.is_some() {
            // The project row's lock serializes creations in the project, so the count holds.
            sqlx::query("SELECT id FROM projects WHERE id = $1 FOR UPDATE")
                .bind(project.to_string())
                .execute(&mut *tx)
                .await?;
            let active: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM schedules WHERE project_id = $1 AND status = 'scheduled'",
            )
            .bind(project.to_string())
            .fetch_one(&mut *tx)
            .await?;
            check_schedule_limit(max_active, active, schedules.len())?;
        }
        let mut ids = Vec::with_capacity(schedules.len());
        for s in schedules {
            let code_id: Option<String> = sqlx::query_scalar(
                "SELECT id FROM codes WHERE project_id = $1 AND name = $2 AND deleted_at IS NULL",
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
                 cluster, label, cron, timezone, misfire) \
                 VALUES ($1,$2,$3,$4,$5,$6,$7,$15,$8,$9,$10,$11,$12,$13,$14,$16,$17,$18)",
            )
            .bind(id.to_string())
            .bind(project.to_string())
            .bind(code_id)
            .bind(&s.code_name)
            .bind(&s.payload)
            .bind(s.start_at)
            .bind(s.end_at)
            .bind(s.run_every)
            .bind(s.run_times)
            .bind(s.priority)
            .bind(s.timeout)
            .bind(s.task_delay)
            .bind(&s.cluster)
            .bind(&s.label)
            .bind(s.first_slot)
            .bind(&s.cron)
            .bind(&s.timezone)
            .bind(s.misfire.as_str())
            .execute(&mut *tx)
            .await?;
            ids.push(id);
        }
        tx.commit().await?;
        Ok(ids)
    }

    async fn schedule(&self, project: Id, id: Id) -> StoreResult<Option<Schedule>> {
        let row = sqlx::query("SELECT * FROM schedules WHERE project_id = $1 AND id = $2")
            .bind(project.to_string())
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(rows::schedule).transpose()
    }

    async fn schedules(&self, project: Id, page: Page) -> StoreResult<Vec<Schedule>> {
        let rows = sqlx::query(
            "SELECT * FROM schedules WHERE project_id = $1 ORDER BY id DESC LIMIT $2 OFFSET $3",
        )
        .bind(project.to_string())
        .bind(page.limit())
        .bind(page.offset())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(rows::schedule).collect()
    }

    async fn cancel_schedule(&self, project: Id, id: Id) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE schedules SET \
               status = CASE WHEN status = 'scheduled' THEN 'cancelled' ELSE status END, \
               next_start = CASE WHEN status = 'scheduled' THEN NULL ELSE next_start END, \
               updated_at = now() \
             WHERE project_id = $1 AND id = $2",
        )
        .bind(project.to_string())
        .bind(id.to_string())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn update_schedule(&self, project: Id, id: Id, u: ScheduleUpdate) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE schedules SET payload = coalesce($3, payload), \
             priority = coalesce($4, priority), timeout = coalesce($5, timeout), \
             cluster = coalesce($6, cluster), label = coalesce($7, label), \
             run_every = coalesce($8, run_every), run_times = coalesce($9, run_times), \
             end_at = coalesce($10, end_at), task_delay = coalesce($11, task_delay), \
             updated_at = now() WHERE project_id = $1 AND id = $2",
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
        .bind(u.end_at)
        .bind(u.task_delay)
        .execute(&mut *tx)
        .await?;
        // New limits may already be reached: the schedule ends now rather than firing once
        // more past them.
        sqlx::query(
            "UPDATE schedules SET status = 'complete', next_start = NULL, updated_at = now(), \
             msg = CASE WHEN run_count >= run_times THEN 'Ran max times.' \
                   ELSE 'Reached end_at.' END \
             WHERE id = $1 AND status = 'scheduled' \
               AND (run_count >= run_times OR next_start > end_at)",
        )
        .bind(id.to_string())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    async fn fire_due(&self, now: DateTime<Utc>, limit: i64) -> StoreResult<Vec<Id>> {
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
        let mut by_project: BTreeMap<Id, Vec<NewTask>> = BTreeMap::new();
        let mut advance = Advance::default();
        for row in &due {
            let s = rows::schedule(row)?;
            let (f, done) = firing(&s, now);
            let n = f.slots.len();
            by_project
                .entry(s.project_id)
                .or_default()
                .extend(std::iter::repeat_n(task_of(&s), n));
            advance.id.push(s.id.to_string());
            advance.fired.push(i32::try_from(n).unwrap_or(i32::MAX));
            advance.next.push(f.next);
            advance.done.push(done);
        }
        let mut fired = Vec::new();
        let mut limited_codes = Vec::new();
        for (project, tasks) in by_project.into_iter().filter(|(_, t)| !t.is_empty()) {
            let queued = insert_tasks(&mut tx, project, tasks).await?;
            fired.extend(queued.ids);
            limited_codes.extend(queued.limited_codes);
        }
        sqlx::query(
            "UPDATE schedules s SET run_count = s.run_count + u.fired, \
               last_run_time = CASE WHEN u.fired > 0 THEN $5 ELSE s.last_run_time END, \
               next_start = u.next, \
               status = CASE WHEN u.done IS NULL THEN s.status ELSE 'complete' END, \
               msg = coalesce(u.done, s.msg), updated_at = now() \
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
        tx.commit().await?;
        self.admit(limited_codes).await;
        Ok(fired)
    }

    async fn set_schedule_paused(
        &self,
        project: Id,
        id: Id,
        paused: bool,
    ) -> StoreResult<Option<bool>> {
        let mut tx = self.pool.begin().await?;
        let row =
            sqlx::query("SELECT * FROM schedules WHERE project_id = $1 AND id = $2 FOR UPDATE")
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
            "UPDATE schedules SET paused = $2, next_start = $3, updated_at = now() WHERE id = $1",
        )
        .bind(id.to_string())
        .bind(paused)
        .bind(next)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(true))
    }

    async fn next_fire_at(&self, now: DateTime<Utc>) -> StoreResult<Option<DateTime<Utc>>> {
        Ok(sqlx::query_scalar(
            "SELECT s.next_start FROM schedules s JOIN codes c ON c.id = s.code_id \
             WHERE s.status = 'scheduled' AND NOT s.paused AND s.next_start > $1 \
               AND NOT c.paused \
             ORDER BY s.next_start LIMIT 1",
        )
        .bind(now)
        .fetch_optional(&self.pool)
        .await?)
    }
}
