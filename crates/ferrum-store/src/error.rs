//! The store's error type.

/// Why a store call failed. The first variants are the caller's mistake and map to 4xx; the
/// last ones are the backend's and map to 5xx.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A task or schedule named a code the project does not have.
    #[error("code {0:?} not found")]
    UnknownCode(String),
    /// A write that would break a uniqueness rule (e.g. a project name already in use).
    #[error("{0}")]
    Conflict(String),
    /// A write that would take a project past one of its limits.
    #[error("{0}")]
    LimitReached(String),
    /// Tasks a project may not queue now (its queued cap or creation rate); nothing was
    /// written, and the caller may try again after `retry_after_secs`.
    #[error("{msg}")]
    QuotaExceeded { msg: String, retry_after_secs: u64 },
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// A statement written for several calls at once (coalesced completions) failed; each of
    /// them gets the database's message.
    #[error("database error: {0}")]
    CoalescedWrite(String),
    #[error("migration error: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A row the database returned does not fit the model (e.g. an unknown status).
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

pub type StoreResult<T> = Result<T, StoreError>;
