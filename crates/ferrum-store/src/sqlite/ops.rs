//! Readiness on SQLite (see `crate::ops`; the flows are `crate::common::ops`).

use sqlx::migrate::Migrator;

use super::SqliteStore;
use crate::common::ops::OpsSql;

static MIGRATOR: Migrator = sqlx::migrate!("../../migrations/sqlite");

impl OpsSql for SqliteStore {
    fn migrator() -> &'static Migrator {
        &MIGRATOR
    }
}
