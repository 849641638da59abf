//! Users, tokens, projects and runners.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use ferrum_model::{Id, Principal, Project};
use sqlx::Row;

use super::{rows, PgStore};
use crate::{
    hash_token, AccountStore, RunnerIdentity, RunnerToken, StoreError, StoreResult, ADMIN_EMAIL,
};

#[async_trait]
impl AccountStore for PgStore {
    async fn bootstrap_admin(&self, token: &str) -> StoreResult<Principal> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO users (id, email, is_admin) VALUES ($1, $2, true) \
             ON CONFLICT (email) DO NOTHING",
        )
        .bind(Id::generate().to_string())
        .bind(ADMIN_EMAIL)
        .execute(&mut *tx)
        .await?;
        let user_id = rows::id(
            &sqlx::query("SELECT id FROM users WHERE email = $1")
                .bind(ADMIN_EMAIL)
                .fetch_one(&mut *tx)
                .await?,
            "id",
        )?;
        sqlx::query(
            "INSERT INTO tokens (token_hash, user_id) VALUES ($1, $2) \
             ON CONFLICT (token_hash) DO NOTHING",
        )
        .bind(hash_token(token))
        .bind(user_id.to_string())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Principal {
            user_id,
            is_admin: true,
        })
    }

    async fn create_user(&self, email: &str, is_admin: bool) -> StoreResult<Id> {
        let id = Id::generate();
        let done = sqlx::query(
            "INSERT INTO users (id, email, is_admin) VALUES ($1, $2, $3) \
             ON CONFLICT (email) DO NOTHING",
        )
        .bind(id.to_string())
        .bind(email)
        .bind(is_admin)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::Conflict(format!(
                "user {email:?} already exists"
            )));
        }
        Ok(id)
    }

    async fn start_session(
        &self,
        user_id: Id,
        token: &str,
        expires_at: DateTime<Utc>,
    ) -> StoreResult<()> {
        sqlx::query("DELETE FROM dashboard_sessions WHERE expires_at <= now()")
            .execute(&self.pool)
            .await?;
        sqlx::query(
            "INSERT INTO dashboard_sessions (token_hash, user_id, expires_at) VALUES ($1, $2, $3)",
        )
        .bind(hash_token(token))
        .bind(user_id.to_string())
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn session(&self, token: &str) -> StoreResult<Option<Principal>> {
        let row = sqlx::query(
            "SELECT u.id, u.is_admin FROM dashboard_sessions s JOIN users u ON u.id = s.user_id \
             WHERE s.token_hash = $1 AND s.expires_at > now()",
        )
        .bind(hash_token(token))
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(Principal {
                user_id: rows::id(&r, "id")?,
                is_admin: r.try_get("is_admin")?,
            })
        })
        .transpose()
    }

    async fn end_session(&self, token: &str) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM dashboard_sessions WHERE token_hash = $1")
            .bind(hash_token(token))
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn add_user_token(&self, user_id: Id, token: &str) -> StoreResult<()> {
        sqlx::query("INSERT INTO tokens (token_hash, user_id) VALUES ($1, $2)")
            .bind(hash_token(token))
            .bind(user_id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn authenticate(&self, token: &str) -> StoreResult<Option<Principal>> {
        let row = sqlx::query(
            "SELECT u.id, u.is_admin FROM tokens t JOIN users u ON u.id = t.user_id \
             WHERE t.token_hash = $1",
        )
        .bind(hash_token(token))
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(Principal {
                user_id: rows::id(&r, "id")?,
                is_admin: r.try_get("is_admin")?,
            })
        })
        .transpose()
    }

    async fn create_project(&self, owner: Id, name: &str) -> StoreResult<Project> {
        let row = sqlx::query(
            "INSERT INTO projects (id, name, owner_id) VALUES ($1, $2, $3) RETURNING *",
        )
        .bind(Id::generate().to_string())
        .bind(name)
        .bind(owner.to_string())
        .fetch_one(&self.pool)
        .await?;
        rows::project(&row)
    }

    async fn project(&self, who: &Principal, id: Id) -> StoreResult<Option<Project>> {
        let row = sqlx::query("SELECT * FROM projects WHERE id = $1 AND ($2 OR owner_id = $3)")
            .bind(id.to_string())
            .bind(who.is_admin)
            .bind(who.user_id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(rows::project).transpose()
    }

    async fn projects(&self, who: &Principal) -> StoreResult<Vec<Project>> {
        let rows = sqlx::query("SELECT * FROM projects WHERE $1 OR owner_id = $2 ORDER BY id DESC")
            .bind(who.is_admin)
            .bind(who.user_id.to_string())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(rows::project).collect()
    }

    async fn set_project_concurrency(&self, project: Id, limit: Option<i32>) -> StoreResult<()> {
        sqlx::query("UPDATE projects SET max_concurrency = $2 WHERE id = $1")
            .bind(project.to_string())
            .bind(limit)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn add_runner_token(&self, cluster: &str, token: &str) -> StoreResult<Id> {
        let id = Id::generate();
        let mut tx = self.pool.begin().await?;
        sqlx::query("INSERT INTO clusters (name) VALUES ($1) ON CONFLICT DO NOTHING")
            .bind(cluster)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO runner_tokens (id, token_hash, cluster) VALUES ($1, $2, $3)")
            .bind(id.to_string())
            .bind(hash_token(token))
            .bind(cluster)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(id)
    }

    async fn authenticate_runner(&self, token: &str) -> StoreResult<Option<String>> {
        Ok(sqlx::query_scalar(
            "SELECT cluster FROM runner_tokens WHERE token_hash = $1 AND revoked_at IS NULL",
        )
        .bind(hash_token(token))
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn register_runner(
        &self,
        token: &str,
        secret: &str,
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
        .bind(hash_token(token))
        .bind(hostname)
        .bind(concurrency)
        .bind(hash_token(secret))
        .bind(version)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(rows::runner_identity).transpose()
    }

    async fn authenticate_runner_secret(
        &self,
        secret: &str,
    ) -> StoreResult<Option<RunnerIdentity>> {
        let row = sqlx::query(
            "SELECT r.id, r.cluster, r.drain_requested_at IS NOT NULL AS draining FROM runners r \
             JOIN runner_tokens k ON k.token_hash = r.token_hash \
             WHERE r.secret_hash = $1 AND k.revoked_at IS NULL",
        )
        .bind(hash_token(secret))
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(rows::runner_identity).transpose()
    }

    async fn runner_tokens(&self) -> StoreResult<Vec<RunnerToken>> {
        let sql = format!(
            "SELECT {} FROM runner_tokens ORDER BY created_at, id",
            rows::RUNNER_TOKEN_COLUMNS
        );
        let rows = sqlx::query(&sql).fetch_all(&self.pool).await?;
        rows.iter().map(rows::runner_token).collect()
    }

    async fn revoke_runner_token(&self, id: Id) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE runner_tokens SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL",
        )
        .bind(id.to_string())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}
