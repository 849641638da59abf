//! Runner registration on SQLite (the rest of accounts is `crate::common::accounts`): the
//! token check and the insert share one write transaction, so a revocation comes before or
//! after both.

use async_trait::async_trait;
use ferrum_model::Id;

use super::rows::now;
use super::SqliteStore;
use crate::common::accounts::AccountSql;
use crate::{RunnerIdentity, StoreResult};

#[async_trait]
impl AccountSql for SqliteStore {
    async fn register(
        &self,
        token_hash: String,
        secret_hash: String,
        hostname: &str,
        concurrency: i32,
        version: &str,
    ) -> StoreResult<Option<RunnerIdentity>> {
        let mut tx = self.write().await?;
        let at = now();
        let cluster: Option<String> = sqlx::query_scalar(
            "UPDATE runner_tokens SET last_used_at = ?2 \
             WHERE token_hash = ?1 AND revoked_at IS NULL RETURNING cluster",
        )
        .bind(&token_hash)
        .bind(at)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(cluster) = cluster else {
            return Ok(None);
        };
        let id = Id::generate();
        sqlx::query(
            "INSERT INTO runners (id, cluster, hostname, concurrency, started_at, last_seen_at, \
               token_hash, secret_hash, version) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6, ?7, ?8)",
        )
        .bind(id.to_string())
        .bind(&cluster)
        .bind(hostname)
        .bind(concurrency)
        .bind(at)
        .bind(token_hash)
        .bind(secret_hash)
        .bind(version)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(RunnerIdentity {
            runner_id: id,
            cluster,
            draining: false,
        }))
    }
}
