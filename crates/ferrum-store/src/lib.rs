//! Ferrum's storage layer: the [`Store`] trait every backend implements, the Postgres backend
//! ([`PgStore`], production) and the embedded SQLite backend ([`SqliteStore`], `ferrum dev`).
//! Both pass one contract suite (`tests/contract/`) and share their row mapping (`rows`).
//!
//! The trait is split by concern ([`AccountStore`], [`CodeStore`], [`TaskStore`],
//! [`DispatchStore`], [`ScheduleStore`], [`WebhookStore`]); [`Store`] is all of them. Every method that takes a
//! `project` scopes its query to that project, so tenant isolation holds at this layer and the
//! API only has to resolve which project a caller may use.
//!
//! The dispatch rules (priority order, limits, leases, fencing) live in the backend, inside the
//! database's transactions, because only there can they hold across many API replicas.

pub mod batches;
mod common;
mod derived;
mod error;
pub mod events;
pub mod fleet;
pub mod ops;
pub mod pg;
pub mod quotas;
pub mod results;
pub mod retention;
mod rows;
pub mod sqlite;
mod task_list;
pub mod testing;
mod traits;

pub use batches::{BatchStore, FanIn};
pub use derived::MAX_FIRE_FAILURES;
pub use error::{StoreError, StoreResult};
pub use events::{TaskEvent, TaskEventStore};
pub use fleet::{ClusterInfo, FleetStore, RunnerInfo, RunnerState, RunnerStatus};
pub use ops::{OpsStore, QueueDepth, SchemaState, TaskTiming};
pub use pg::PgStore;
pub use quotas::{ProjectQuotas, QuotaStore};
pub use results::{NewTaskToken, ResultStore, StoredResult, TaskGrant, TaskTokenStore};
pub use retention::{Deleted, RetentionStore};
pub use sqlite::SqliteStore;
pub use traits::{
    AccountStore, CodeStore, Delivery, DispatchStore, Fenced, LeaseSpec, LeasedTask, Outcome,
    ReapReport, RunnerIdentity, RunnerToken, ScheduleStore, ScheduleTiming, ScheduleUpdate, Store,
    TaskStore, WebhookStore,
};

/// The bootstrap admin user's email, in every backend.
const ADMIN_EMAIL: &str = "admin@ferrum.local";

/// Hashes a token for storage: tokens are never stored in the clear (brief §5).
pub fn hash_token(token: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}
