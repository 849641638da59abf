//! Per-code webhooks, written once for both backends. A backend supplies only
//! [`WebhookSql::enqueue_once`]: how it keeps two deliveries of one key to one task.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use ferrum_model::{Id, NewTask, NewWebhook, SignatureScheme, Webhook};

use super::sql::{args, first, Arg, Sql};
use crate::rows;
use crate::{hash_token, Delivery, StoreResult, WebhookStore};

/// `SELECT` of webhooks aliased `w` with their code's name, as [`rows::webhook`] reads them.
/// Only webhooks of codes that still exist: deleting a code silences its URLs.
const WEBHOOK_SELECT: &str = "SELECT w.*, c.name AS code_name FROM webhooks w \
    JOIN codes c ON c.id = w.code_id AND c.deleted_at IS NULL";

/// What a backend does its own way for webhooks.
#[async_trait]
pub(crate) trait WebhookSql: Sql {
    /// [`WebhookStore::enqueue_once`].
    async fn deliver_once(
        &self,
        project: Id,
        scope: &str,
        key: &str,
        task: NewTask,
    ) -> StoreResult<Delivery>;
}

#[async_trait]
impl<S: WebhookSql> WebhookStore for S {
    async fn create_webhook(
        &self,
        project: Id,
        token: &str,
        hook: NewWebhook,
    ) -> StoreResult<Option<Webhook>> {
        let id = Id::generate();
        let t = &hook.task;
        let sql = format!(
            "INSERT INTO webhooks (id, project_id, code_id, token_hash, signature, secret, \
             sync_timeout, priority, timeout, delay, cluster, label, created_at) \
             SELECT $1, $2, c.id, $4, $5, $6, $7, $8, $9, $10, $11, $12, {} FROM codes c \
             WHERE c.project_id = $2 AND c.id = $3 AND c.deleted_at IS NULL",
            S::now(13)
        );
        let args = args![
            id,
            project,
            hook.code_id,
            hash_token(token),
            hook.signature.map(SignatureScheme::as_str),
            &hook.secret,
            hook.sync_timeout,
            t.priority,
            t.timeout,
            t.delay,
            &t.cluster,
            &t.label,
            Arg::Now,
        ];
        if self.write_count(&sql, args).await? == 0 {
            return Ok(None);
        }
        // From the writer: SQLite's readers may not see the new row yet.
        let row = self
            .write(&format!("{WEBHOOK_SELECT} WHERE w.id = $1"), args![id])
            .await?;
        first(row).as_ref().map(rows::webhook).transpose()
    }

    async fn webhooks(&self, project: Id, code: Id) -> StoreResult<Vec<Webhook>> {
        let sql = format!(
            "{WEBHOOK_SELECT} WHERE w.project_id = $1 AND w.code_id = $2 ORDER BY w.id DESC"
        );
        let rows = self.read(&sql, args![project, code]).await?;
        rows.iter().map(rows::webhook).collect()
    }

    async fn delete_webhook(&self, project: Id, code: Id, id: Id) -> StoreResult<bool> {
        let done = self
            .write_count(
                "DELETE FROM webhooks WHERE project_id = $1 AND code_id = $2 AND id = $3",
                args![project, code, id],
            )
            .await?;
        Ok(done == 1)
    }

    async fn webhook_by_token(&self, token: &str) -> StoreResult<Option<Webhook>> {
        let sql = format!("{WEBHOOK_SELECT} WHERE w.token_hash = $1");
        let row = first(self.read(&sql, args![hash_token(token)]).await?);
        row.as_ref().map(rows::webhook).transpose()
    }

    async fn enqueue_once(
        &self,
        project: Id,
        scope: &str,
        key: &str,
        task: NewTask,
    ) -> StoreResult<Delivery> {
        self.deliver_once(project, scope, key, task).await
    }

    async fn purge_deliveries(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        self.write_count(
            "DELETE FROM webhook_deliveries WHERE created_at < $1",
            args![before],
        )
        .await
    }
}
