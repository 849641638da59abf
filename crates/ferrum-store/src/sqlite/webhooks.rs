//! Webhook deliveries on SQLite (the rest of webhooks is `crate::common::webhooks`).

use async_trait::async_trait;
use ferrum_model::{Id, NewTask};

use super::rows::now;
use super::tasks::insert_tasks;
use super::SqliteStore;
use crate::common::webhooks::WebhookSql;
use crate::{Delivery, StoreError, StoreResult};

#[async_trait]
impl WebhookSql for SqliteStore {
    /// The key check and the enqueue share one write transaction, so a retry racing the
    /// original delivery finds its key and queues nothing.
    async fn deliver_once(
        &self,
        project: Id,
        scope: &str,
        key: &str,
        task: NewTask,
    ) -> StoreResult<Delivery> {
        let mut tx = self.write().await?;
        let first: Option<String> = sqlx::query_scalar(
            "SELECT task_id FROM webhook_deliveries \
             WHERE project_id = ?1 AND scope = ?2 AND key = ?3",
        )
        .bind(project.to_string())
        .bind(scope)
        .bind(key)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(first) = first {
            return Ok(Delivery {
                task_id: first
                    .parse()
                    .map_err(|e| StoreError::Corrupt(format!("task_id: {e}")))?,
                duplicate: true,
            });
        }
        crate::common::quotas::enforce::<SqliteStore>(&mut tx, project, 1).await?;
        let task_id = insert_tasks(&mut tx, project, vec![task])
            .await?
            .pop()
            .ok_or_else(|| StoreError::Corrupt("insert_tasks returned no id".into()))?;
        sqlx::query(
            "INSERT INTO webhook_deliveries (project_id, scope, key, task_id, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .bind(project.to_string())
        .bind(scope)
        .bind(key)
        .bind(task_id.to_string())
        .bind(now())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Delivery {
            task_id,
            duplicate: false,
        })
    }
}
