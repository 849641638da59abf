//! Retention, written once for both backends (see `crate::retention`). A backend supplies
//! [`RetentionSql::delete_finished`]: how it deletes a page of tasks with what hangs off them.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use ferrum_model::Id;

use super::sql::{args, Sql, SqlTx};
use crate::retention::{id_bound, Deleted, RetentionStore, FINAL};
use crate::rows::{self, Cols};
use crate::StoreResult;

/// What a backend does its own way for retention.
#[async_trait]
pub(crate) trait RetentionSql: Sql {
    /// Deletes the finished ones of the project's tasks `ids` in `tx`, with their log chunks,
    /// events, tokens and results; what it deleted (no batches yet), and the ids of the
    /// batches those tasks belonged to.
    async fn delete_finished(
        tx: &mut Self::Tx,
        project: Id,
        ids: Vec<String>,
    ) -> StoreResult<(Deleted, Vec<String>)>;
}

#[async_trait]
impl<S: RetentionSql> RetentionStore for S {
    async fn retention_projects(&self, default_days: Option<i32>) -> StoreResult<Vec<(Id, i32)>> {
        let rows = self
            .read(
                "SELECT id, coalesce(retention_days, $1) AS days FROM projects \
                 WHERE coalesce(retention_days, $1) IS NOT NULL ORDER BY id",
                args![default_days],
            )
            .await?;
        rows.iter()
            .map(|r| Ok((rows::id(r, "id")?, r.int("days")?)))
            .collect()
    }

    async fn expired_tasks(
        &self,
        project: Id,
        cutoff: DateTime<Utc>,
        after: Option<Id>,
        limit: i64,
    ) -> StoreResult<Vec<Id>> {
        let sql = format!(
            "SELECT t.id FROM tasks t \
             WHERE t.project_id = $1 AND t.id < $2 AND t.id > $3 \
               AND t.status IN {FINAL} AND t.end_time < $4 \
               AND NOT EXISTS (SELECT 1 FROM batches b WHERE b.id = t.batch_id \
                 AND b.status IN ('running', 'reducing')) \
             ORDER BY t.id LIMIT $5"
        );
        let after = after.map(|a| a.to_string()).unwrap_or_default();
        let args = args![project, id_bound(cutoff), after, cutoff, limit];
        let rows = self.read(&sql, args).await?;
        rows.iter().map(|r| rows::id(r, "id")).collect()
    }

    async fn delete_tasks(&self, project: Id, ids: &[Id]) -> StoreResult<Deleted> {
        let ids: Vec<String> = ids.iter().map(Id::to_string).collect();
        let mut tx = self.begin().await?;
        let (mut deleted, batches) = S::delete_finished(&mut tx, project, ids).await?;
        // A separate statement: it must see the tasks deleted above.
        let sql = format!(
            "DELETE FROM batches WHERE {} AND project_id = $2 \
               AND status NOT IN ('running', 'reducing') \
               AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.batch_id = batches.id)",
            S::any("id", 1)
        );
        deleted.batches = tx.execute(&sql, args![batches, project]).await?;
        tx.commit().await?;
        Ok(deleted)
    }
}
