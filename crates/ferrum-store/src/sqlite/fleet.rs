//! The runner fleet on SQLite (see `crate::fleet`; the flows are `crate::common::fleet`).

use super::SqliteStore;
use crate::common::fleet::FleetSql;

impl FleetSql for SqliteStore {
    fn runner_busy(runner: &str) -> String {
        format!(
            "SELECT 1 FROM tasks WHERE runner_id = {runner} AND status IN ('preparing', 'running')"
        )
    }
}
