//! Codes on Postgres (the flows are `crate::common::codes`): a code's limit and pause are
//! copied into its queued rows in `task_queue`.

use async_trait::async_trait;
use ferrum_model::Id;
use sqlx::{Postgres, Transaction};

use super::batches::PARKED_AT;
use super::PgStore;
use crate::common::codes::CodeSql;
use crate::StoreResult;

#[async_trait]
impl CodeSql for PgStore {
    /// Unfinished tasks are exactly those in the dispatch queue (queued or leased).
    const UNNEEDED_ZIPS: &'static str = "SELECT r.id, r.zip_key FROM code_revisions r \
           JOIN codes c ON c.id = r.code_id \
         WHERE r.zip_key IS NOT NULL AND r.zip_freed_at IS NULL \
           AND (c.deleted_at IS NOT NULL OR r.rev <= c.latest_rev - $1) \
           AND NOT EXISTS (SELECT 1 FROM task_queue q JOIN tasks t ON t.id = q.task_id \
                           WHERE q.code_id = r.code_id AND t.code_revision_id = r.id) \
         ORDER BY r.code_id, r.rev LIMIT $2";

    /// The code row is locked `FOR UPDATE`, so no one is queueing its tasks: the flags of
    /// all its queued rows can change at once (`migrations/0007_admission.sql`). Newly
    /// limited rows are all held until the admission after the commit; a batch's parked
    /// items stay held whatever the limit.
    async fn limit_changed(
        tx: &mut Transaction<'static, Postgres>,
        code: &str,
        limited: bool,
    ) -> StoreResult<()> {
        sqlx::query(&format!(
            "UPDATE task_queue SET limited = $2, held = $2 OR run_at = {PARKED_AT} \
             WHERE code_id = $1 AND NOT leased AND limited <> $2"
        ))
        .bind(code)
        .bind(limited)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// With a snapshot taken after the code row's lock, this sets the flag on all of the
    /// code's queued rows, those of transactions that were queueing included (the invariant
    /// of `migrations/0006_paused_queue.sql`). Leased rows are left alone: a requeue reads the
    /// code's flag again. No index leads to a code's queued rows, so this reads the narrow
    /// queue table through once; pausing is rare, and an index would cost every enqueue and
    /// lease.
    async fn paused_changed(
        tx: &mut Transaction<'static, Postgres>,
        code: Id,
        paused: bool,
    ) -> StoreResult<()> {
        sqlx::query(
            "UPDATE task_queue SET paused = $2 WHERE code_id = $1 AND NOT leased AND paused <> $2",
        )
        .bind(code.to_string())
        .bind(paused)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }
}
