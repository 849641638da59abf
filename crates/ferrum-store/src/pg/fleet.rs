//! The runner fleet on Postgres (see `crate::fleet`; the flows are `crate::common::fleet`).

use super::PgStore;
use crate::common::fleet::FleetSql;

impl FleetSql for PgStore {
    const RUNNER_BUSY: &'static str = "SELECT 1 FROM task_queue WHERE runner_id = $1 AND leased";
}
