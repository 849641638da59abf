//! Per-code webhooks and deduplicated deliveries.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use ferrum_model::{Id, NewTask, NewWebhook, SignatureScheme, Webhook};

use super::{rows, tasks::insert_tasks, PgStore};
use crate::{hash_token, Delivery, StoreError, StoreResult, WebhookStore};

/// `SELECT` of webhooks aliased `w` with their code's name, as [`rows::webhook`] reads them. Only
/// webhooks of codes that still exist: deleting a code silences its URLs.
const WEBHOOK_SELECT: &str = "SELECT w.*, c.name AS code_name FROM webhooks w \
    JOIN codes c ON c.id = w.code_id AND c.deleted_at IS NULL";

#[async_trait]
impl WebhookStore for PgStore {
    async fn create_webhook(
        &self,
        project: Id,
        token: &str,
        hook: NewWebhook,
    ) -> StoreResult<Option<Webhook>> {
        let id = Id::generate();
        let t = &hook.task;
        let inserted = sqlx::query(
            "INSERT INTO webhooks (id, project_id, code_id, token_hash, signature, secret, \
             sync_timeout, priority, timeout, delay, cluster, label) \
             SELECT $1, $2, c.id, $4, $5, $6, $7, $8, $9, $10, $11, $12 FROM codes c \
             WHERE c.project_id = $2 AND c.id = $3 AND c.deleted_at IS NULL",
        )
        .bind(id.to_string())
        .bind(project.to_string())
        .bind(hook.code_id.to_string())
        .bind(hash_token(token))
        .bind(hook.signature.map(SignatureScheme::as_str))
        .bind(&hook.secret)
        .bind(hook.sync_timeout)
        .bind(t.priority)
        .bind(t.timeout)
        .bind(t.delay)
        .bind(&t.cluster)
        .bind(&t.label)
        .execute(&self.pool)
        .await?;
        if inserted.rows_affected() == 0 {
            return Ok(None);
        }
        let row = sqlx::query(&format!("{WEBHOOK_SELECT} WHERE w.id = $1"))
            .bind(id.to_string())
            .fetch_one(&self.pool)
            .await?;
        rows::webhook(&row).map(Some)
    }

    async fn webhooks(&self, project: Id, code: Id) -> StoreResult<Vec<Webhook>> {
        let rows = sqlx::query(&format!(
            "{WEBHOOK_SELECT} WHERE w.project_id = $1 AND w.code_id = $2 ORDER BY w.id DESC"
        ))
        .bind(project.to_string())
        .bind(code.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(rows::webhook).collect()
    }

    async fn delete_webhook(&self, project: Id, code: Id, id: Id) -> StoreResult<bool> {
        let done =
            sqlx::query("DELETE FROM webhooks WHERE project_id = $1 AND code_id = $2 AND id = $3")
                .bind(project.to_string())
                .bind(code.to_string())
                .bind(id.to_string())
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn webhook_by_token(&self, token: &str) -> StoreResult<Option<Webhook>> {
        let row = sqlx::query(&format!("{WEBHOOK_SELECT} WHERE w.token_hash = $1"))
            .bind(hash_token(token))
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(rows::webhook).transpose()
    }

    async fn enqueue_once(
        &self,
        project: Id,
        scope: &str,
        key: &str,
        task: NewTask,
    ) -> StoreResult<Delivery> {
        let mut tx = self.pool.begin().await?;
        super::quotas::enforce(&mut tx, project, 1).await?;
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

    async fn purge_deliveries(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM webhook_deliveries WHERE created_at < $1")
            .bind(before)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }
}
