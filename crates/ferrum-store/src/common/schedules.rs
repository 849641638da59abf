//! Schedules, written once for both backends. A backend supplies only
//! [`ScheduleSql::fire`]: how a pass claims the due schedules (Postgres: `SKIP LOCKED`, so
//! replicas fire side by side; SQLite: the one writer) and queues their tasks.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use ferrum_model::{Id, NewSchedule, Page, Schedule, ScheduleStatus};

use super::sql::{args, first, one, Arg, Sql, SqlTx};
use crate::derived::{check_schedule_limit, resumed_next};
use crate::rows::{self, Cols};
use crate::{ScheduleStore, ScheduleUpdate, StoreError, StoreResult};

/// What a backend does its own way for schedules.
#[async_trait]
pub(crate) trait ScheduleSql: Sql {
    /// [`ScheduleStore::fire_due`].
    async fn fire(&self, now: DateTime<Utc>, limit: i64) -> StoreResult<Vec<Id>>;
}

#[async_trait]
impl<S: ScheduleSql> ScheduleStore for S {
    async fn create_schedules(
        &self,
        project: Id,
        schedules: Vec<NewSchedule>,
        max_active: Option<i64>,
    ) -> StoreResult<Vec<Id>> {
        let mut tx = self.begin().await?;
        if max_active.is_some() {
            // The project row's lock (SQLite: the write transaction) serializes creations in
            // the project, so the count holds.
            let sql = format!("SELECT id FROM projects WHERE id = $1{}", S::FOR_UPDATE);
            tx.fetch(&sql, args![project]).await?;
            let active = tx
                .fetch(
                    "SELECT count(*) AS n FROM schedules \
                     WHERE project_id = $1 AND status = 'scheduled'",
                    args![project],
                )
                .await?;
            check_schedule_limit(max_active, one(active)?.big("n")?, schedules.len())?;
        }
        let insert = format!(
            "INSERT INTO schedules (id, project_id, code_id, code_name, payload, start_at, \
             end_at, next_start, run_every, run_times, priority, timeout, task_delay, \
             cluster, label, cron, timezone, misfire, created_at, updated_at) \
             VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,\
             {now},{now})",
            now = S::now(19)
        );
        let mut ids = Vec::with_capacity(schedules.len());
        for s in schedules {
            let code = tx
                .fetch(
                    "SELECT id FROM codes WHERE project_id = $1 AND name = $2 \
                     AND deleted_at IS NULL",
                    args![project, &s.code_name],
                )
                .await?;
            let code = first(code).ok_or_else(|| StoreError::UnknownCode(s.code_name.clone()))?;
            let id = Id::generate();
            let args = args![
                id,
                project,
                code.text("id")?,
                &s.code_name,
                s.payload,
                s.start_at,
                s.end_at,
                s.first_slot,
                s.run_every,
                s.run_times,
                s.priority,
                s.timeout,
                s.task_delay,
                &s.cluster,
                &s.label,
                &s.cron,
                &s.timezone,
                s.misfire.as_str(),
                Arg::Now,
            ];
            tx.execute(&insert, args).await?;
            ids.push(id);
        }
        tx.commit().await?;
        Ok(ids)
    }

    async fn schedule(&self, project: Id, id: Id) -> StoreResult<Option<Schedule>> {
        let rows = self
            .read(
                "SELECT * FROM schedules WHERE project_id = $1 AND id = $2",
                args![project, id],
            )
            .await?;
        first(rows).as_ref().map(rows::schedule).transpose()
    }

    async fn schedules(&self, project: Id, page: Page) -> StoreResult<Vec<Schedule>> {
        let rows = self
            .read(
                "SELECT * FROM schedules WHERE project_id = $1 \
                 ORDER BY id DESC LIMIT $2 OFFSET $3",
                args![project, page.limit(), page.offset()],
            )
            .await?;
        rows.iter().map(rows::schedule).collect()
    }

    async fn cancel_schedule(&self, project: Id, id: Id) -> StoreResult<bool> {
        let sql = format!(
            "UPDATE schedules SET \
               status = CASE WHEN status = 'scheduled' THEN 'cancelled' ELSE status END, \
               next_start = CASE WHEN status = 'scheduled' THEN NULL ELSE next_start END, \
               updated_at = {} \
             WHERE project_id = $1 AND id = $2",
            S::now(3)
        );
        Ok(self.write_count(&sql, args![project, id, Arg::Now]).await? == 1)
    }

    async fn update_schedule(&self, project: Id, id: Id, u: ScheduleUpdate) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        // `label`, `run_times` and `end_at` may be removed: each comes with a flag saying
        // whether it was given, as NULL is a value for them.
        let sql = format!(
            "UPDATE schedules SET payload = coalesce($3, payload), \
             priority = coalesce($4, priority), timeout = coalesce($5, timeout), \
             cluster = coalesce($6, cluster), \
             label = CASE WHEN $7 THEN $8 ELSE label END, \
             run_times = CASE WHEN $9 THEN $10 ELSE run_times END, \
             end_at = CASE WHEN $11 THEN $12 ELSE end_at END, \
             task_delay = coalesce($13, task_delay), \
             updated_at = {} WHERE project_id = $1 AND id = $2",
            S::now(14)
        );
        let args = args![
            project,
            id,
            u.payload,
            u.priority,
            u.timeout,
            u.cluster,
            u.label.is_some(),
            u.label.flatten(),
            u.run_times.is_some(),
            u.run_times.flatten(),
            u.end_at.is_some(),
            u.end_at.flatten(),
            u.task_delay,
            Arg::Now,
        ];
        let done = tx.execute(&sql, args).await?;
        // A schedule that has ended stays ended: only an active one takes a new timing.
        if let Some(t) = u.timing {
            let sql = "UPDATE schedules SET run_every = $2, cron = $3, timezone = $4, \
                       misfire = $5, next_start = $6 WHERE id = $1 AND status = 'scheduled'";
            let args = args![
                id,
                t.run_every,
                t.cron,
                t.timezone,
                t.misfire.as_str(),
                t.next_start
            ];
            tx.execute(sql, args).await?;
        }
        // New limits may already be reached: the schedule ends now rather than firing once
        // more past them.
        let sql = format!(
            "UPDATE schedules SET status = 'complete', next_start = NULL, updated_at = {}, \
             msg = CASE WHEN run_count >= run_times THEN 'Ran max times.' \
                   ELSE 'Reached end_at.' END \
             WHERE id = $1 AND status = 'scheduled' \
               AND (run_count >= run_times OR next_start > end_at)",
            S::now(2)
        );
        tx.execute(&sql, args![id, Arg::Now]).await?;
        tx.commit().await?;
        Ok(done == 1)
    }

    async fn fire_due(&self, now: DateTime<Utc>, limit: i64) -> StoreResult<Vec<Id>> {
        self.fire(now, limit).await
    }

    async fn set_schedule_paused(
        &self,
        project: Id,
        id: Id,
        paused: bool,
    ) -> StoreResult<Option<bool>> {
        let mut tx = self.begin().await?;
        let sql = format!(
            "SELECT * FROM schedules WHERE project_id = $1 AND id = $2{}",
            S::FOR_UPDATE
        );
        let Some(row) = first(tx.fetch(&sql, args![project, id]).await?) else {
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
        let sql = format!(
            "UPDATE schedules SET paused = $2, next_start = $3, updated_at = {} WHERE id = $1",
            S::now(4)
        );
        tx.execute(&sql, args![id, paused, next, Arg::Now]).await?;
        tx.commit().await?;
        Ok(Some(true))
    }

    async fn next_fire_at(&self, now: DateTime<Utc>) -> StoreResult<Option<DateTime<Utc>>> {
        let rows = self
            .read(
                "SELECT s.next_start FROM schedules s JOIN codes c ON c.id = s.code_id \
                 WHERE s.status = 'scheduled' AND NOT s.paused AND s.next_start > $1 \
                   AND NOT c.paused \
                 ORDER BY s.next_start LIMIT 1",
                args![now],
            )
            .await?;
        first(rows).map(|r| r.time("next_start")).transpose()
    }
}
