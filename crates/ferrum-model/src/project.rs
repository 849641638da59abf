//! Projects (the tenant boundary) and the authenticated caller.

use chrono::{DateTime, Utc};

use crate::Id;

/// A tenant's project. Everything else belongs to exactly one project.
#[derive(Debug, Clone, PartialEq)]
pub struct Project {
    pub id: Id,
    pub name: String,
    pub owner_id: Id,
    /// Most tasks of this project that may run at once; `None` means no limit.
    pub max_concurrency: Option<i32>,
    pub created_at: DateTime<Utc>,
}

/// Who a token belongs to. An admin may act on every project; a user only on the projects
/// they own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user_id: Id,
    pub is_admin: bool,
}
