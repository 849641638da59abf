//! The embedded backend: SQLite through sqlx, for `ferrum dev` and single-machine use.
//!
//! SQLite has no `SKIP LOCKED` and no advisory locks; instead it serialises writers. So every
//! write goes through one connection (the writer pool has exactly one), and writes that read
//! before they write run in `BEGIN IMMEDIATE` transactions, which take the write lock up front:
//! a lease selects and flips its tasks with no other writer in between, which is what makes
//! "no task leased twice" and the concurrency limits hold. Reads use a pool of their own and,
//! in WAL mode, never wait for the writer. The busy timeout covers a second process opening
//! the same file (e.g. a CLI command next to `ferrum dev`).
//!
//! Storage choices (see `migrations/sqlite/0001_schema.sql`): ids are text, timestamps are
//! integer microseconds since the epoch, and the application supplies "now".

mod accounts;
mod batches;
mod codes;
mod dispatch;
mod events;
mod fleet;
mod ops;
mod results;
mod retention;
mod rows;
mod schedules;
mod sql;
mod tasks;
mod webhooks;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Sqlite, Transaction};

use crate::StoreResult;

/// How long a statement waits for another process's write lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// Read connections; WAL readers do not block each other or the writer.
const READERS: u32 = 8;

/// The embedded store: one SQLite database file.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating it if needed) the database at `path` and brings its schema up to date.
    pub async fn open(path: &Path) -> StoreResult<Self> {
        let options = SqliteConnectOptions::from_str("sqlite:")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await?;
        sqlx::migrate!("../../migrations/sqlite")
            .run(&writer)
            .await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(READERS)
            .connect_with(options.read_only(true))
            .await?;
        Ok(SqliteStore { writer, reader })
    }

    /// A write transaction holding the database's write lock from its first statement.
    async fn write(&self) -> StoreResult<Transaction<'static, Sqlite>> {
        Ok(self.writer.begin_with("BEGIN IMMEDIATE").await?)
    }

    /// Closes both pools, flushing the WAL into the database file.
    pub async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }
}
