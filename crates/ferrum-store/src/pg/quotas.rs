//! Project quotas on Postgres (see `crate::quotas`).

use async_trait::async_trait;
use chrono::Utc;
use ferrum_model::Id;
use sqlx::{Postgres, Row, Transaction};

use super::PgStore;
use crate::quotas::{check_queued, Bucket, ProjectQuotas, QuotaStore};
use crate::StoreResult;

#[async_trait]
impl QuotaStore for PgStore {
    async fn project_quotas(&self, project: Id) -> StoreResult<Option<ProjectQuotas>> {
        let row = sqlx::query(
            "SELECT max_concurrency, max_queued, tasks_per_minute, retention_days \
             FROM projects WHERE id = $1",
        )
        .bind(project.to_string())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| ProjectQuotas {
            max_concurrency: r.get("max_concurrency"),
            max_queued: r.get("max_queued"),
            tasks_per_minute: r.get("tasks_per_minute"),
            retention_days: r.get("retention_days"),
        }))
    }

    async fn set_project_quotas(&self, project: Id, q: &ProjectQuotas) -> StoreResult<bool> {
        // A changed rate starts with a full bucket.
        let done = sqlx::query(
            "UPDATE projects SET max_concurrency = $2, max_queued = $3, retention_days = $5, \
             rate_tokens = CASE WHEN tasks_per_minute IS DISTINCT FROM $4 THEN NULL ELSE rate_tokens END, \
             rate_at = CASE WHEN tasks_per_minute IS DISTINCT FROM $4 THEN NULL ELSE rate_at END, \
             tasks_per_minute = $4 \
             WHERE id = $1",
        )
        .bind(project.to_string())
        .bind(q.max_concurrency)
        .bind(q.max_queued)
        .bind(q.tasks_per_minute)
        .bind(q.retention_days)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}

/// Refuses `n` more tasks for `project` past its queued cap or creation rate, inside the
/// enqueue's transaction `tx` (so a refusal writes nothing and an accepted request's tokens
/// are spent only if it commits). Projects without these quotas pay one primary-key read.
pub(crate) async fn enforce(
    tx: &mut Transaction<'_, Postgres>,
    project: Id,
    n: usize,
) -> StoreResult<()> {
    let unlimited: Option<bool> = sqlx::query_scalar(
        "SELECT max_queued IS NULL AND tasks_per_minute IS NULL FROM projects WHERE id = $1",
    )
    .bind(project.to_string())
    .fetch_optional(&mut **tx)
    .await?;
    if unlimited != Some(false) {
        return Ok(());
    }
    // The project row's lock orders this project's enqueues: counts and tokens stay exact.
    // NO KEY UPDATE does not block the foreign-key checks of tasks being inserted.
    let row = sqlx::query(
        "SELECT max_queued, tasks_per_minute, rate_tokens, rate_at FROM projects \
         WHERE id = $1 FOR NO KEY UPDATE",
    )
    .bind(project.to_string())
    .fetch_one(&mut **tx)
    .await?;
    if let Some(cap) = row.get::<Option<i32>, _>("max_queued") {
        let queued: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM (SELECT 1 FROM task_queue \
             WHERE project_id = $1 AND NOT leased LIMIT $2) q",
        )
        .bind(project.to_string())
        .bind(i64::from(cap) + 1)
        .fetch_one(&mut **tx)
        .await?;
        check_queued(cap, queued, n)?;
    }
    if let Some(per_minute) = row.get::<Option<i32>, _>("tasks_per_minute") {
        let now = Utc::now();
        let bucket = Bucket {
            per_minute,
            tokens: row.get("rate_tokens"),
            at: row.get("rate_at"),
        };
        let left = bucket.take(now, n)?;
        sqlx::query("UPDATE projects SET rate_tokens = $2, rate_at = $3 WHERE id = $1")
            .bind(project.to_string())
            .bind(left)
            .bind(now)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}
