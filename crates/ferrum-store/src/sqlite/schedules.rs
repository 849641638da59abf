//! Firing due schedules on SQLite (the rest of schedules is `crate::common::schedules`).
//!
//! Firing reads the due schedules, queues their tasks and moves `next_start` on in one
//! `BEGIN IMMEDIATE` transaction: with SQLite's single writer no other firing can interleave,
//! so every slot makes its tasks once. The arithmetic (cron, misfires, limits) is shared with
//! the Postgres backend (`crate::derived`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use ferrum_model::Id;

use sqlx::{Connection, Row, SqliteConnection};

use super::rows::{self, micros, now};
use super::tasks::insert_tasks;
use super::SqliteStore;
use crate::common::schedules::ScheduleSql;
use crate::derived::{firing, task_of, FireFailure};
use crate::StoreResult;

#[async_trait]
impl ScheduleSql for SqliteStore {
    async fn fire(&self, now_at: DateTime<Utc>, limit: i64) -> StoreResult<Vec<Id>> {
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
