//! Project quotas, written once for both backends (see `crate::quotas`). A backend supplies
//! which of its tasks wait ([`Queue::WAITING`]). The project row is locked while the
//! enqueue's transaction lasts (Postgres: `FOR NO KEY UPDATE`, which does not block the
//! foreign-key checks of tasks being inserted; SQLite: the one writer), so that its counts
//! and tokens stay exact.

use async_trait::async_trait;
use chrono::Utc;
use ferrum_model::Id;

use super::queue::Queue;
use super::sql::{args, first, one, SqlTx};
use crate::quotas::{check_queued, Bucket, ProjectQuotas, QuotaStore};
use crate::rows::Cols;
use crate::StoreResult;

#[async_trait]
impl<S: Queue> QuotaStore for S {
    async fn project_quotas(&self, project: Id) -> StoreResult<Option<ProjectQuotas>> {
        let rows = self
            .read(
                "SELECT max_concurrency, max_queued, tasks_per_minute, retention_days \
                 FROM projects WHERE id = $1",
                args![project],
            )
            .await?;
        first(rows)
            .map(|r| {
                Ok(ProjectQuotas {
                    max_concurrency: r.opt_int("max_concurrency")?,
                    max_queued: r.opt_int("max_queued")?,
                    tasks_per_minute: r.opt_int("tasks_per_minute")?,
                    retention_days: r.opt_int("retention_days")?,
                })
            })
            .transpose()
    }

    async fn set_project_quotas(&self, project: Id, q: &ProjectQuotas) -> StoreResult<bool> {
        // A changed rate starts with a full bucket.
        let done = self
            .write_count(
                "UPDATE projects SET max_concurrency = $2, max_queued = $3, retention_days = $5, \
                 rate_tokens = CASE WHEN tasks_per_minute IS DISTINCT FROM $4 THEN NULL \
                   ELSE rate_tokens END, \
                 rate_at = CASE WHEN tasks_per_minute IS DISTINCT FROM $4 THEN NULL \
                   ELSE rate_at END, \
                 tasks_per_minute = $4 \
                 WHERE id = $1",
                args![
                    project,
                    q.max_concurrency,
                    q.max_queued,
                    q.tasks_per_minute,
                    q.retention_days
                ],
            )
            .await?;
        Ok(done == 1)
    }
}

/// Refuses `n` more tasks for `project` past its queued cap or creation rate, inside the
/// enqueue's transaction `tx` (so a refusal writes nothing and an accepted request's tokens
/// are spent only if it commits). Projects without these quotas pay one primary-key read.
pub(crate) async fn enforce<S: Queue>(tx: &mut S::Tx, project: Id, n: usize) -> StoreResult<()> {
    let unlimited = tx
        .fetch(
            "SELECT max_queued IS NULL AND tasks_per_minute IS NULL AS unlimited \
             FROM projects WHERE id = $1",
            args![project],
        )
        .await?;
    match first(unlimited) {
        Some(row) if !row.flag("unlimited")? => {}
        _ => return Ok(()),
    }
    let sql = format!(
        "SELECT max_queued, tasks_per_minute, rate_tokens, rate_at FROM projects \
         WHERE id = $1{}",
        S::FOR_NO_KEY_UPDATE
    );
    let row = one(tx.fetch(&sql, args![project]).await?)?;
    if let Some(cap) = row.opt_int("max_queued")? {
        let sql = format!(
            "SELECT count(*) AS n FROM (SELECT 1 FROM {} AND project_id = $1 LIMIT $2) q",
            S::WAITING
        );
        let queued = one(tx.fetch(&sql, args![project, i64::from(cap) + 1]).await?)?;
        check_queued(cap, queued.big("n")?, n)?;
    }
    if let Some(per_minute) = row.opt_int("tasks_per_minute")? {
        let now = Utc::now();
        let bucket = Bucket {
            per_minute,
            tokens: row.opt_float("rate_tokens")?,
            at: row.opt_time("rate_at")?,
        };
        let left = bucket.take(now, n)?;
        tx.execute(
            "UPDATE projects SET rate_tokens = $2, rate_at = $3 WHERE id = $1",
            args![project, left, now],
        )
        .await?;
    }
    Ok(())
}
