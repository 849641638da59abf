//! The runner fleet on SQLite (see `crate::fleet`; the flows are `crate::common::fleet`).

use super::SqliteStore;
use crate::common::fleet::FleetSql;

impl FleetSql for SqliteStore {
    const RUNNER_BUSY: &'static str = "SELECT 1 FROM tasks \
         WHERE runner_id = $1 AND status IN ('preparing', 'running')";
}
