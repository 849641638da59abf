//! Fresh databases for tests, in the manner of sqlx's own tests: each test gets its own
//! database, so tests run in parallel without seeing each other.
//!
//! - Postgres: a new database on `FERRUM_TEST_DATABASE_URL` (default: the local `postgres`
//!   superuser), migrated.
//! - SQLite: a new file in a temporary directory that is removed when the [`TempDb`] drops.

use std::path::{Path, PathBuf};

use ferrum_model::Id;

use crate::{PgStore, SqliteStore, StoreResult};

/// The server tests connect to; `scripts/services` prints the value to use.
pub fn admin_url() -> String {
    std::env::var("FERRUM_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres:postgres@127.0.0.1:5432/postgres".into())
}

/// Creates an empty database with no schema and returns its URL.
pub async fn fresh_database() -> StoreResult<String> {
    let admin = admin_url();
    let name = format!("ferrum_test_{}", Id::generate());
    let conn = sqlx::postgres::PgPool::connect(&admin).await?;
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

/// A temporary directory holding one test's SQLite database; removed on drop.
#[derive(Debug)]
pub struct TempDb {
    dir: PathBuf,
}

impl TempDb {
    pub fn path(&self) -> &Path {
        &self.dir
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
