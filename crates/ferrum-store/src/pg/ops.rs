//! Readiness on Postgres (see `crate::ops`; the flows are `crate::common::ops`).

use sqlx::migrate::Migrator;

use super::PgStore;
use crate::common::ops::OpsSql;

static MIGRATOR: Migrator = sqlx::migrate!("../../migrations");

impl OpsSql for PgStore {
    fn migrator() -> &'static Migrator {
        &MIGRATOR
    }
}
