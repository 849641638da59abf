//! Retention on Postgres (see `crate::retention`; the flows are `crate::common::retention`).

use async_trait::async_trait;
use ferrum_model::Id;
use sqlx::{Postgres, Row, Transaction};

use super::PgStore;
use crate::common::retention::RetentionSql;
use crate::retention::{Deleted, FINAL};
use crate::StoreResult;

#[async_trait]
impl RetentionSql for PgStore {
    /// One statement: the tasks first (only finished ones of this project), then what hangs
    /// off exactly those.
    async fn delete_finished(
        tx: &mut Transaction<'static, Postgres>,
        project: Id,
        ids: Vec<String>,
    ) -> StoreResult<(Deleted, Vec<String>)> {
        let sql = format!(
            "WITH gone AS ( \
               DELETE FROM tasks WHERE id = ANY($1) AND project_id = $2 AND status IN {FINAL} \
               RETURNING id, batch_id), \
             chunks AS (DELETE FROM task_log_chunks WHERE task_id IN (SELECT id FROM gone)), \
             events AS (DELETE FROM task_events WHERE task_id IN (SELECT id FROM gone)), \
             tokens AS (DELETE FROM task_tokens WHERE task_id IN (SELECT id FROM gone)), \
             results AS (DELETE FROM task_results WHERE task_id IN (SELECT id FROM gone) \
               RETURNING blob_key) \
             SELECT (SELECT count(*) FROM gone) AS tasks, \
               (SELECT coalesce(array_agg(blob_key), '{{}}') FROM results \
                 WHERE blob_key IS NOT NULL) AS blobs, \
               (SELECT coalesce(array_agg(DISTINCT batch_id), '{{}}') FROM gone \
                 WHERE batch_id IS NOT NULL) AS batches"
        );
        let row = sqlx::query(&sql)
            .bind(&ids)
            .bind(project.to_string())
            .fetch_one(&mut **tx)
            .await?;
        let deleted = Deleted {
            tasks: row.get::<i64, _>("tasks") as u64,
            result_blobs: row.get("blobs"),
            batches: 0,
        };
        Ok((deleted, row.get("batches")))
    }
}
