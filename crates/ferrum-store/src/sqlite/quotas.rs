//! Project quotas on SQLite (see `crate::quotas`). Enqueues hold the write lock, so counts
//! and tokens are exact without row locks.

use async_trait::async_trait;
use chrono::Utc;
use ferrum_model::Id;
use sqlx::{Row, Sqlite, Transaction};

use super::rows::micros;
use super::SqliteStore;
use crate::quotas::{check_queued, Bucket, ProjectQuotas, QuotaStore};
use crate::StoreResult;

#[async_trait]
impl QuotaStore for SqliteStore {
    async fn project_quotas(&self, project: Id) -> StoreResult<Option<ProjectQuotas>> {
        let row = sqlx::query(
            "SELECT max_concurrency, max_queued, tasks_per_minute, retention_days \
             FROM projects WHERE id = ?1",
        )
        .bind(project.to_string())
        .fetch_optional(&self.reader)
        .await?;
        Ok(row.map(|r| ProjectQuotas {
            max_concurrency: r.get("max_concurrency"),
            max_queued: r.get("max_queued"),
            tasks_per_minute: r.get("tasks_per_minute"),
            retention_days: r.get("retention_days"),
        }))
    }

    async fn set_project_quotas(&self, project: Id, q: &ProjectQuotas) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE projects SET max_concurrency = ?2, max_queued = ?3, retention_days = ?5, \
             rate_tokens = CASE WHEN tasks_per_minute IS ?4 THEN rate_tokens ELSE NULL END, \
             rate_at = CASE WHEN tasks_per_minute IS ?4 THEN rate_at ELSE NULL END, \
             tasks_per_minute = ?4 \
             WHERE id = ?1",
        )
        .bind(project.to_string())
        .bind(q.max_concurrency)
        .bind(q.max_queued)
        .bind(q.tasks_per_minute)
        .bind(q.retention_days)
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}

/// Refuses `n` more tasks for `project` past its queued cap or creation rate, inside the
/// enqueue's write transaction.
pub(crate) async fn enforce(
    tx: &mut Transaction<'_, Sqlite>,
    project: Id,
    n: usize,
) -> StoreResult<()> {
    let row = sqlx::query(
        "SELECT max_queued, tasks_per_minute, rate_tokens, rate_at FROM projects WHERE id = ?1",
    )
    .bind(project.to_string())
    .fetch_optional(&mut **tx)
    .await?;
    let Some(row) = row else { return Ok(()) };
    if let Some(cap) = row.get::<Option<i32>, _>("max_queued") {
        let queued: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM (SELECT 1 FROM tasks \
             WHERE project_id = ?1 AND status = 'queued' LIMIT ?2)",
        )
        .bind(project.to_string())
        .bind(i64::from(cap) + 1)
        .fetch_one(&mut **tx)
        .await?;
        check_queued(cap, queued, n)?;
    }
    if let Some(per_minute) = row.get::<Option<i32>, _>("tasks_per_minute") {
        let now = Utc::now();
        let at: Option<i64> = row.get("rate_at");
        let bucket = Bucket {
            per_minute,
            tokens: row.get("rate_tokens"),
            at: at.and_then(chrono::DateTime::from_timestamp_micros),
        };
        let left = bucket.take(now, n)?;
        sqlx::query("UPDATE projects SET rate_tokens = ?2, rate_at = ?3 WHERE id = ?1")
            .bind(project.to_string())
            .bind(left)
            .bind(micros(now))
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}
