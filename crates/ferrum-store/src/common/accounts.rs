//! Users, tokens, projects and runners, written once for both backends. A backend supplies
//! only [`AccountSql::register`]: how a runner registers against a token that may be revoked
//! at the same moment.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use ferrum_model::{Id, Principal, Project};

use super::sql::{args, first, one, Arg, Sql, SqlTx};
use crate::rows::{self, Cols};
use crate::{
    hash_token, AccountStore, RunnerIdentity, RunnerToken, StoreError, StoreResult, ADMIN_EMAIL,
};

/// What a backend does its own way for accounts.
#[async_trait]
pub(crate) trait AccountSql: Sql {
    /// [`AccountStore::register_runner`], with the token and secret already hashed.
    async fn register(
        &self,
        token_hash: String,
        secret_hash: String,
        hostname: &str,
        concurrency: i32,
        version: &str,
    ) -> StoreResult<Option<RunnerIdentity>>;
}

/// Reads `id, is_admin`.
fn principal(row: &impl Cols) -> StoreResult<Principal> {
    Ok(Principal {
        user_id: rows::id(row, "id")?,
        is_admin: row.flag("is_admin")?,
    })
}

#[async_trait]
impl<S: AccountSql> AccountStore for S {
    async fn bootstrap_admin(&self, token: &str) -> StoreResult<Principal> {
        let mut tx = self.begin().await?;
        let sql = format!(
            "INSERT INTO users (id, email, is_admin, created_at) VALUES ($1, $2, $3, {}) \
             ON CONFLICT (email) DO NOTHING",
            S::now(4)
        );
        tx.execute(&sql, args![Id::generate(), ADMIN_EMAIL, true, Arg::Now])
            .await?;
        let user = one(tx
            .fetch("SELECT id FROM users WHERE email = $1", args![ADMIN_EMAIL])
            .await?)?;
        let user_id = rows::id(&user, "id")?;
        let sql = format!(
            "INSERT INTO tokens (token_hash, user_id, created_at) VALUES ($1, $2, {}) \
             ON CONFLICT (token_hash) DO NOTHING",
            S::now(3)
        );
        tx.execute(&sql, args![hash_token(token), user_id, Arg::Now])
            .await?;
        tx.commit().await?;
        Ok(Principal {
            user_id,
            is_admin: true,
        })
    }

    async fn create_user(&self, email: &str, is_admin: bool) -> StoreResult<Id> {
        let id = Id::generate();
        let sql = format!(
            "INSERT INTO users (id, email, is_admin, created_at) VALUES ($1, $2, $3, {}) \
             ON CONFLICT (email) DO NOTHING",
            S::now(4)
        );
        let done = self
            .write_count(&sql, args![id, email, is_admin, Arg::Now])
            .await?;
        if done == 0 {
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
        let sql = format!(
            "DELETE FROM dashboard_sessions WHERE expires_at <= {}",
            S::now(1)
        );
        self.write_count(&sql, args![Arg::Now]).await?;
        let sql = format!(
            "INSERT INTO dashboard_sessions (token_hash, user_id, created_at, expires_at) \
             VALUES ($1, $2, {}, $3)",
            S::now(4)
        );
        let args = args![hash_token(token), user_id, expires_at, Arg::Now];
        self.write_count(&sql, args).await?;
        Ok(())
    }

    async fn session(&self, token: &str) -> StoreResult<Option<Principal>> {
        let sql = format!(
            "SELECT u.id, u.is_admin FROM dashboard_sessions s JOIN users u ON u.id = s.user_id \
             WHERE s.token_hash = $1 AND s.expires_at > {}",
            S::now(2)
        );
        let rows = self.read(&sql, args![hash_token(token), Arg::Now]).await?;
        first(rows).as_ref().map(principal).transpose()
    }

    async fn end_session(&self, token: &str) -> StoreResult<bool> {
        let done = self
            .write_count(
                "DELETE FROM dashboard_sessions WHERE token_hash = $1",
                args![hash_token(token)],
            )
            .await?;
        Ok(done > 0)
    }

    async fn add_user_token(&self, user_id: Id, token: &str) -> StoreResult<()> {
        let sql = format!(
            "INSERT INTO tokens (token_hash, user_id, created_at) VALUES ($1, $2, {})",
            S::now(3)
        );
        self.write_count(&sql, args![hash_token(token), user_id, Arg::Now])
            .await?;
        Ok(())
    }

    async fn authenticate(&self, token: &str) -> StoreResult<Option<Principal>> {
        let rows = self
            .read(
                "SELECT u.id, u.is_admin FROM tokens t JOIN users u ON u.id = t.user_id \
                 WHERE t.token_hash = $1",
                args![hash_token(token)],
            )
            .await?;
        first(rows).as_ref().map(principal).transpose()
    }

    async fn create_project(&self, owner: Id, name: &str) -> StoreResult<Project> {
        let sql = format!(
            "INSERT INTO projects (id, name, owner_id, created_at) VALUES ($1, $2, $3, {}) \
             RETURNING *",
            S::now(4)
        );
        let rows = self
            .write(&sql, args![Id::generate(), name, owner, Arg::Now])
            .await?;
        rows::project(&one(rows)?)
    }

    async fn project(&self, who: &Principal, id: Id) -> StoreResult<Option<Project>> {
        let rows = self
            .read(
                "SELECT * FROM projects WHERE id = $1 AND ($2 OR owner_id = $3)",
                args![id, who.is_admin, who.user_id],
            )
            .await?;
        first(rows).as_ref().map(rows::project).transpose()
    }

    async fn projects(&self, who: &Principal) -> StoreResult<Vec<Project>> {
        let rows = self
            .read(
                "SELECT * FROM projects WHERE $1 OR owner_id = $2 ORDER BY id DESC",
                args![who.is_admin, who.user_id],
            )
            .await?;
        rows.iter().map(rows::project).collect()
    }

    async fn set_project_concurrency(&self, project: Id, limit: Option<i32>) -> StoreResult<()> {
        self.write_count(
            "UPDATE projects SET max_concurrency = $2 WHERE id = $1",
            args![project, limit],
        )
        .await?;
        Ok(())
    }

    async fn add_runner_token(&self, cluster: &str, token: &str) -> StoreResult<Id> {
        let id = Id::generate();
        let mut tx = self.begin().await?;
        let sql = format!(
            "INSERT INTO clusters (name, created_at) VALUES ($1, {}) ON CONFLICT DO NOTHING",
            S::now(2)
        );
        tx.execute(&sql, args![cluster, Arg::Now]).await?;
        let sql = format!(
            "INSERT INTO runner_tokens (id, token_hash, cluster, created_at) \
             VALUES ($1, $2, $3, {})",
            S::now(4)
        );
        tx.execute(&sql, args![id, hash_token(token), cluster, Arg::Now])
            .await?;
        tx.commit().await?;
        Ok(id)
    }

    async fn authenticate_runner(&self, token: &str) -> StoreResult<Option<String>> {
        let rows = self
            .read(
                "SELECT cluster FROM runner_tokens WHERE token_hash = $1 AND revoked_at IS NULL",
                args![hash_token(token)],
            )
            .await?;
        first(rows).map(|r| r.text("cluster")).transpose()
    }

    async fn register_runner(
        &self,
        token: &str,
        secret: &str,
        hostname: &str,
        concurrency: i32,
        version: &str,
    ) -> StoreResult<Option<RunnerIdentity>> {
        let (token, secret) = (hash_token(token), hash_token(secret));
        self.register(token, secret, hostname, concurrency, version)
            .await
    }

    async fn authenticate_runner_secret(
        &self,
        secret: &str,
    ) -> StoreResult<Option<RunnerIdentity>> {
        let rows = self
            .read(
                "SELECT r.id, r.cluster, r.drain_requested_at IS NOT NULL AS draining \
                 FROM runners r JOIN runner_tokens k ON k.token_hash = r.token_hash \
                 WHERE r.secret_hash = $1 AND k.revoked_at IS NULL",
                args![hash_token(secret)],
            )
            .await?;
        first(rows).as_ref().map(rows::runner_identity).transpose()
    }

    async fn runner_tokens(&self) -> StoreResult<Vec<RunnerToken>> {
        let sql = format!(
            "SELECT {} FROM runner_tokens ORDER BY created_at, id",
            rows::RUNNER_TOKEN_COLUMNS
        );
        let rows = self.read(&sql, args![]).await?;
        rows.iter().map(rows::runner_token).collect()
    }

    async fn revoke_runner_token(&self, id: Id) -> StoreResult<bool> {
        let sql = format!(
            "UPDATE runner_tokens SET revoked_at = {} WHERE id = $1 AND revoked_at IS NULL",
            S::now(2)
        );
        Ok(self.write_count(&sql, args![id, Arg::Now]).await? == 1)
    }
}
