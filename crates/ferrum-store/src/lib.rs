//! Ferrum's storage layer: the [`Store`] trait every backend implements, and the Postgres
//! backend ([`PgStore`]).
//!
//! The trait is split by concern ([`AccountStore`], [`CodeStore`], [`TaskStore`],
//! [`DispatchStore`], [`ScheduleStore`]); [`Store`] is all of them. Every method that takes a
//! `project` scopes its query to that project, so tenant isolation holds at this layer and the
//! API only has to resolve which project a caller may use.
//!
//! The dispatch rules (priority order, limits, leases, fencing) live in the backend, inside the
//! database's transactions, because only there can they hold across many API replicas.

mod error;
pub mod pg;
pub mod testing;
mod traits;

pub use error::{StoreError, StoreResult};
pub use pg::PgStore;
pub use traits::{
    AccountStore, CodeStore, DispatchStore, Fenced, LeaseSpec, LeasedTask, Outcome, ReapReport,
    ScheduleStore, ScheduleUpdate, Store, TaskStore,
};

/// Hashes a token for storage: tokens are never stored in the clear (brief §5).
pub fn hash_token(token: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}
