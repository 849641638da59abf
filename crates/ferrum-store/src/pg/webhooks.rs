//! Webhook deliveries on Postgres (the rest of webhooks is `crate::common::webhooks`).

use async_trait::async_trait;
use ferrum_model::{Id, NewTask};

use super::{tasks::insert_tasks, PgStore};
use crate::common::webhooks::WebhookSql;
use crate::{Delivery, StoreError, StoreResult};

#[async_trait]
impl WebhookSql for PgStore {
    async fn deliver_once(
        &self,
        project: Id,
        scope: &str,
        key: &str,
        task: NewTask,
    ) -> StoreResult<Delivery> {
        let mut tx = self.pool.begin().await?;
        crate::common::quotas::enforce::<PgStore>(&mut tx, project, 1).await?;
        let queued = insert_tasks(&mut tx, project, vec![task]).await?;
        let task_id = *queued
            .ids
            .first()
            .ok_or_else(|| StoreError::Corrupt("insert_tasks returned no id".into()))?;
        // A concurrent delivery of the same key waits here on the primary key until the first
        // commits or rolls back, then sees its row: one task either way.
        let recorded = sqlx::query(
            "INSERT INTO webhook_deliveries (project_id, scope, key, task_id) \
             VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        )
        .bind(project.to_string())
        .bind(scope)
        .bind(key)
        .bind(task_id.to_string())
        .execute(&mut *tx)
        .await?;
        if recorded.rows_affected() == 1 {
            tx.commit().await?;
            self.admit(queued.limited_codes).await;
            return Ok(Delivery {
                task_id,
                duplicate: false,
            });
        }
        tx.rollback().await?;
        let first: String = sqlx::query_scalar(
            "SELECT task_id FROM webhook_deliveries \
             WHERE project_id = $1 AND scope = $2 AND key = $3",
        )
        .bind(project.to_string())
        .bind(scope)
        .bind(key)
        .fetch_one(&self.pool)
        .await?;
        Ok(Delivery {
            task_id: first
                .parse()
                .map_err(|e| StoreError::Corrupt(format!("task_id: {e}")))?,
            duplicate: true,
        })
    }
}
