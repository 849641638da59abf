//! Fresh databases for tests, in the manner of sqlx's own tests: each test gets its own
//! database, so tests run in parallel without seeing each other.
//!
//! - Postgres: a new database on `FERRUM_TEST_DATABASE_URL` (default: the local `postgres`
//!   superuser), migrated. Databases are not dropped when a test ends (a failed test's database
//!   is worth a look); instead, the first test of each process drops those older than
//!   [`STALE_AFTER_SECS`], so repeated runs on one machine do not pile them up.
//! - SQLite: a new file in a temporary directory that is removed when the [`TempDb`] drops.

use std::path::{Path, PathBuf};

use ferrum_model::{CodeSpec, Id, NewRevision, NewTask};

use crate::{AccountStore, CodeStore, DispatchStore, LeaseSpec, PgStore, SqliteStore, StoreResult};

/// The server tests connect to; `scripts/services` prints the value to use.
pub fn admin_url() -> String {
    std::env::var("FERRUM_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres:postgres@127.0.0.1:5432/postgres".into())
}

/// Test databases older than this (by the creation time in their name's id) are dropped.
pub const STALE_AFTER_SECS: i64 = 2 * 3600;

/// Drops the test databases left by earlier runs: those named `ferrum_test_<id>` whose id was
/// made more than [`STALE_AFTER_SECS`] ago (an id starts with its creation time in seconds,
/// 8 hex digits). One still in use is skipped: dropping it fails, and that is fine.
pub async fn drop_stale_databases(conn: &sqlx::PgPool) -> StoreResult<()> {
    let stale: Vec<String> = sqlx::query_scalar(
        "SELECT datname FROM pg_database \
         WHERE datname ~ '^ferrum_test_[0-9a-f]{24}$' \
           AND ('x' || substr(datname, 13, 8))::bit(32)::bigint \
               < extract(epoch FROM now())::bigint - $1",
    )
    .bind(STALE_AFTER_SECS)
    .fetch_all(conn)
    .await?;
    for name in stale {
        if let Err(e) = sqlx::query(&format!("DROP DATABASE IF EXISTS {name}"))
            .execute(conn)
            .await
        {
            tracing::debug!(database = %name, error = %e, "stale test database kept");
        }
    }
    Ok(())
}

/// Creates an empty database with no schema and returns its URL.
pub async fn fresh_database() -> StoreResult<String> {
    static SWEPT: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    let admin = admin_url();
    let name = format!("ferrum_test_{}", Id::generate());
    let conn = sqlx::postgres::PgPool::connect(&admin).await?;
    SWEPT
        .get_or_try_init(|| drop_stale_databases(&conn))
        .await?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&conn)
        .await?;
    conn.close().await;
    Ok(match admin.rsplit_once('/') {
        Some((server, _)) => format!("{server}/{name}"),
        None => format!("{admin}/{name}"),
    })
}

/// Creates an empty, migrated database and returns a store on it with its URL.
pub async fn fresh_store() -> StoreResult<(PgStore, String)> {
    let url = fresh_database().await?;
    Ok((PgStore::connect(&url, 20).await?, url))
}

/// A user and a project holding one code named `code` (default settings, no zip): what a test
/// or benchmark needs before it can queue tasks. Answers the project and the code.
pub async fn project_with_code<S>(store: &S, code: &str) -> StoreResult<(Id, Id)>
where
    S: AccountStore + CodeStore + ?Sized,
{
    let user = store.create_user("test@example.com", false).await?;
    let project = store.create_project(user, "test").await?.id;
    let rev = NewRevision {
        name: code.into(),
        spec: CodeSpec::default(),
        zip: None,
    };
    Ok((project, store.put_revision(project, rev).await?.id))
}

/// A task of `code` on the `default` cluster (the one [`lease_ids`] leases from), with an
/// empty JSON payload and a one-minute timeout.
pub fn queued_task(code: &str) -> NewTask {
    NewTask {
        code_name: code.into(),
        payload: b"{}".to_vec(),
        timeout: 60,
        cluster: "default".into(),
        ..NewTask::default()
    }
}

/// Leases up to `max` tasks of the `default` cluster for a new runner (a one-minute lease) and
/// answers their ids, in the order the lease gave them.
pub async fn lease_ids<S>(store: &S, max: u32) -> StoreResult<Vec<Id>>
where
    S: DispatchStore + ?Sized,
{
    let spec = LeaseSpec {
        runner_id: Id::generate(),
        cluster: "default".into(),
        max_tasks: max,
        lease_for: std::time::Duration::from_secs(60),
    };
    Ok(store.lease(&spec).await?.iter().map(|l| l.id).collect())
}

/// A temporary directory holding one test's SQLite database; removed on drop.
#[derive(Debug)]
pub struct TempDb {
    dir: PathBuf,
}

impl TempDb {
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Runs `sql` on this database past the store, as a row written before a rule existed (or
    /// by hand) would be: for tests that the store survives rows validation would refuse.
    pub async fn execute(&self, sql: &str) -> StoreResult<u64> {
        use sqlx::{Connection, Executor};
        let url = format!("sqlite:{}", self.dir.join("ferrum.db").display());
        let mut conn = sqlx::SqliteConnection::connect(&url).await?;
        let done = conn.execute(sql).await?;
        conn.close().await?;
        Ok(done.rows_affected())
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Creates an empty, migrated SQLite database in a fresh temporary directory.
pub async fn fresh_sqlite_store() -> StoreResult<(SqliteStore, TempDb)> {
    let dir = std::env::temp_dir().join(format!("ferrum-test-{}", Id::generate()));
    std::fs::create_dir_all(&dir).map_err(sqlx::Error::Io)?;
    let db = TempDb { dir };
    let store = SqliteStore::open(&db.path().join("ferrum.db")).await?;
    Ok((store, db))
}
