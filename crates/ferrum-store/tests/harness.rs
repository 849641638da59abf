//! The test harness cleans up after earlier runs: test databases older than
//! `STALE_AFTER_SECS` are dropped, newer ones (another run's, still in use) are kept.

use ferrum_store::testing::{admin_url, drop_stale_databases, fresh_database, STALE_AFTER_SECS};

/// A test database name whose id was made `age_secs` ago (an id starts with its creation
/// time in seconds, 8 hex digits).
fn name_aged(age_secs: i64, tail: &str) -> String {
    let made = chrono::Utc::now().timestamp() - age_secs;
    format!("ferrum_test_{made:08x}{tail}")
}

async fn exists(conn: &sqlx::PgPool, name: &str) -> bool {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
        .bind(name)
        .fetch_one(conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn stale_test_databases_are_dropped_and_recent_ones_kept() {
    fresh_database().await.unwrap();
    let conn = sqlx::PgPool::connect(&admin_url()).await.unwrap();
    let stale = name_aged(STALE_AFTER_SECS + 60, "5a1e5a1e5a1e5a1e");
    let recent = name_aged(60, "0be5e0be5e0be5e0");
    for name in [&stale, &recent] {
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&conn)
            .await
            .unwrap();
    }
    drop_stale_databases(&conn).await.unwrap();
    assert!(
        !exists(&conn, &stale).await,
        "a database of an old run is dropped"
    );
    assert!(
        exists(&conn, &recent).await,
        "a database of a recent run is kept"
    );
    sqlx::query(&format!("DROP DATABASE {recent}"))
        .execute(&conn)
        .await
        .unwrap();
}
