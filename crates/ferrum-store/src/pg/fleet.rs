//! The runner fleet on Postgres (see `crate::fleet`; the flows are `crate::common::fleet`).

use super::PgStore;
use crate::common::fleet::FleetSql;

impl FleetSql for PgStore {
    fn runner_busy(runner: &str) -> String {
        format!("SELECT 1 FROM task_queue WHERE runner_id = {runner} AND leased")
    }
}
