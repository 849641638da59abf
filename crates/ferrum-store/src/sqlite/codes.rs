//! Codes on SQLite (the flows are `crate::common::codes`): the lease reads a code's limit
//! and pause from its row, so changing them touches no task.

use async_trait::async_trait;
use ferrum_model::Id;
use sqlx::{Sqlite, Transaction};

use super::SqliteStore;
use crate::common::codes::CodeSql;
use crate::StoreResult;

#[async_trait]
impl CodeSql for SqliteStore {
    const UNNEEDED_ZIPS: &'static str = "SELECT r.id, r.zip_key FROM code_revisions r \
           JOIN codes c ON c.id = r.code_id \
         WHERE r.zip_key IS NOT NULL AND r.zip_freed_at IS NULL \
           AND (c.deleted_at IS NOT NULL OR r.rev <= c.latest_rev - $1) \
           AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.code_id = r.code_id \
                           AND t.code_revision_id = r.id \
                           AND t.status IN ('queued', 'preparing', 'running')) \
         ORDER BY r.code_id, r.rev LIMIT $2";

    async fn limit_changed(
        _: &mut Transaction<'static, Sqlite>,
        _: &str,
        _: bool,
    ) -> StoreResult<()> {
        Ok(())
    }

    async fn paused_changed(
        _: &mut Transaction<'static, Sqlite>,
        _: Id,
        _: bool,
    ) -> StoreResult<()> {
        Ok(())
    }
}
