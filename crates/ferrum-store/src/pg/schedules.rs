//! Schedules and firing them.

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use ferrum_model::{Id, NewSchedule, NewTask, Page, Schedule, TaskOrigin};
use sqlx::Row;

use super::{rows, tasks::insert_tasks, PgStore};
use crate::{ScheduleStore, ScheduleUpdate, StoreError, StoreResult};

/// Where a schedule goes after firing at `now`: the first slot after `now` on its grid
/// (misfires after downtime collapse into the one run just made), or `None` when it is done.
fn next_after(s: &Schedule, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let every = Duration::seconds(s.run_every?.into());
    let mut next = s.next_start? + every;
    if next <= now {
        let behind = (now - next).num_seconds() / every.num_seconds() + 1;
        next += every * i32::try_from(behind).unwrap_or(i32::MAX);
    }
    let ran_out = s.run_times.is_some_and(|max| s.run_count + 1 >= max);
    let past_end = s.end_at.is_some_and(|end| next > end);
    (!ran_out && !past_end).then_some(next)
}

#[async_trait]
impl ScheduleStore for PgStore {
    async fn create_schedules(
        &self,
        project: Id,
        schedules: Vec<NewSchedule>,
    ) -> StoreResult<Vec<Id>> {
        let mut tx = self.pool.begin().await?;
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
                 cluster, label) \
                 VALUES ($1,$2,$3,$4,$5,$6,$7,$6,$8,$9,$10,$11,$12,$13,$14)",
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
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn fire_due(&self, now: DateTime<Utc>, limit: i64) -> StoreResult<Vec<Id>> {
        let mut tx = self.pool.begin().await?;
        // Schedules whose end passed before their next slot end without firing.
        sqlx::query(
            "UPDATE schedules SET status = 'complete', msg = 'Reached end_at.', \
             next_start = NULL, updated_at = now() \
             WHERE status = 'scheduled' AND end_at IS NOT NULL AND next_start > end_at",
        )
        .execute(&mut *tx)
        .await?;
        let due = sqlx::query(
            "SELECT s.* FROM schedules s JOIN codes c ON c.id = s.code_id \
             WHERE s.status = 'scheduled' AND s.next_start <= $1 AND NOT c.paused \
             ORDER BY s.next_start LIMIT $2 FOR UPDATE OF s SKIP LOCKED",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        let mut fired = Vec::with_capacity(due.len());
        for row in &due {
            let s = rows::schedule(row)?;
            let project: String = row.try_get("project_id")?;
            let project: Id = project
                .parse()
                .map_err(|e| StoreError::Corrupt(format!("{e}")))?;
            let task = NewTask {
                code_name: s.code_name.clone(),
                payload: s.payload.clone(),
                priority: Some(s.priority),
                timeout: s.timeout,
                delay: s.task_delay,
                cluster: s.cluster.clone(),
                label: s.label.clone(),
                origin: TaskOrigin {
                    schedule_id: Some(s.id),
                    ..TaskOrigin::default()
                },
            };
            fired.extend(insert_tasks(&mut tx, project, vec![task]).await?);
            let next = next_after(&s, now);
            sqlx::query(
                "UPDATE schedules SET run_count = run_count + 1, last_run_time = $2, \
                 next_start = $3, \
                 status = CASE WHEN $3::timestamptz IS NULL THEN 'complete' ELSE status END, \
                 msg = CASE WHEN $3::timestamptz IS NULL THEN 'Ran max times.' ELSE msg END, \
                 updated_at = now() WHERE id = $1",
            )
            .bind(s.id.to_string())
            .bind(now)
            .bind(next)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(fired)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrum_model::ScheduleStatus;

    fn schedule(next: DateTime<Utc>, every: Option<i32>, times: Option<i32>) -> Schedule {
        Schedule {
            id: Id::generate(),
            project_id: Id::generate(),
            code_name: "c".into(),
            payload: vec![],
            status: ScheduleStatus::Scheduled,
            msg: None,
            start_at: next,
            end_at: None,
            next_start: Some(next),
            last_run_time: None,
            run_every: every,
            run_times: times,
            run_count: 0,
            priority: 0,
            timeout: 3600,
            task_delay: 0,
            cluster: "default".into(),
            label: None,
            created_at: next,
            updated_at: next,
        }
    }

    #[test]
    fn misfires_collapse_into_one_run_and_realign() {
        let t0 = Utc::now();
        let s = schedule(t0, Some(60), None);
        let next = next_after(&s, t0 + Duration::seconds(605)).unwrap();
        assert_eq!(next, t0 + Duration::seconds(660));
    }

    #[test]
    fn one_shot_and_run_times_end_the_schedule() {
        let t0 = Utc::now();
        assert_eq!(next_after(&schedule(t0, None, None), t0), None);
        assert_eq!(next_after(&schedule(t0, Some(60), Some(1)), t0), None);
        assert!(next_after(&schedule(t0, Some(60), Some(2)), t0).is_some());
    }
}
