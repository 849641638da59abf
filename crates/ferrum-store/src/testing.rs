//! Fresh databases for tests, in the manner of sqlx's own tests: each test gets its own
//! database, created from `FERRUM_TEST_DATABASE_URL` (default: the local `postgres` superuser)
//! and migrated, so tests run in parallel without seeing each other.

use ferrum_model::Id;

use crate::{PgStore, StoreResult};

/// The server tests connect to; `scripts/services` prints the value to use.
pub fn admin_url() -> String {
    std::env::var("FERRUM_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres:postgres@127.0.0.1:5432/postgres".into())
}

/// Creates an empty, migrated database and returns a store on it with its URL.
pub async fn fresh_store() -> StoreResult<(PgStore, String)> {
    let admin = admin_url();
    let name = format!("ferrum_test_{}", Id::generate());
    let conn = sqlx::postgres::PgPool::connect(&admin).await?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&conn)
        .await?;
    conn.close().await;
    let url = match admin.rsplit_once('/') {
        Some((server, _)) => format!("{server}/{name}"),
        None => format!("{admin}/{name}"),
    };
    Ok((PgStore::connect(&url, 20).await?, url))
}
