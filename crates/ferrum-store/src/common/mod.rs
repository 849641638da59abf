//! What both backends do the same way, written once over [`sql::Sql`]: the flows, the SQL
//! they share, the binding and the row mapping. A backend supplies where statements run and
//! the statements that really differ (locking, arrays, its queue, its clock).

pub(crate) mod accounts;
pub(crate) mod batches;
pub(crate) mod codes;
pub(crate) mod fleet;
pub(crate) mod ops;
pub(crate) mod queue;
pub(crate) mod quotas;
pub(crate) mod results;
pub(crate) mod retention;
pub(crate) mod schedules;
pub(crate) mod sql;
pub(crate) mod tasks;
pub(crate) mod webhooks;
