//! Runner registration on Postgres (the rest of accounts is `crate::common::accounts`).

use async_trait::async_trait;
use ferrum_model::Id;

use super::{rows, PgStore};
use crate::common::accounts::AccountSql;
use crate::{RunnerIdentity, StoreResult};

#[async_trait]
impl AccountSql for PgStore {
    async fn register(
        &self,
        token_hash: String,
        secret_hash: String,
        hostname: &str,
        concurrency: i32,
        version: &str,
    ) -> StoreResult<Option<RunnerIdentity>> {
        // One statement: a token revoked concurrently either registers nothing or is seen
        // revoked by every later call of the runner.
        let row = sqlx::query(
            "WITH tok AS ( \
               UPDATE runner_tokens SET last_used_at = now() \
               WHERE token_hash = $2 AND revoked_at IS NULL RETURNING token_hash, cluster) \
             INSERT INTO runners (id, cluster, hostname, concurrency, token_hash, secret_hash, \
               version) \
             SELECT $1, tok.cluster, $3, $4, tok.token_hash, $5, $6 FROM tok \
             RETURNING id, cluster, false AS draining",
        )
        .bind(Id::generate().to_string())
        .bind(token_hash)
        .bind(hostname)
        .bind(concurrency)
        .bind(secret_hash)
        .bind(version)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(rows::runner_identity).transpose()
    }
}
