//! Code packages and their revisions (contract §3.2, §4.1, §4.2).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::Id;

/// What a revision runs: either an old-style zip package (`runtime` + `file_name`, run in a
/// stack image) or a Docker image, optionally with a zip unpacked into the task directory.
///
/// `memory_mb`, `cpus`, `pids` and `disk_mb` are Ferrum's resource settings; `None` leaves the runner's
/// default. A runner clamps each to its operator's ceiling, so they ask, they do not command.
/// (Not `Eq`: `cpus` is a fraction.)
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CodeSpec {
    pub runtime: Option<String>,
    pub stack: Option<String>,
    pub file_name: Option<String>,
    pub image: Option<String>,
    pub command: Option<String>,
    pub config: Option<String>,
    pub env_vars: BTreeMap<String, String>,
    pub max_concurrency: Option<i32>,
    pub retries: i32,
    pub retries_delay: i32,
    pub default_priority: i32,
    /// Memory limit of the task's container, in MiB.
    pub memory_mb: Option<i32>,
    /// CPU quota in CPUs; fractions allowed (0.5 = half a CPU).
    pub cpus: Option<f64>,
    /// Most processes/threads in the task's container.
    pub pids: Option<i32>,
    /// Disk of the task (`/mnt/task` and `/tmp` together), in MiB.
    #[serde(default)]
    pub disk_mb: Option<i32>,
}

/// Where a revision's zip lives in the object store, and what it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZipInfo {
    /// The object-store key.
    pub key: String,
    /// Hex MD5 of the zip, reported as `latest_checksum`.
    pub checksum: String,
    pub size: i64,
}

/// One immutable revision of a code.
#[derive(Debug, Clone, PartialEq)]
pub struct CodeRevision {
    pub id: Id,
    pub code_id: Id,
    pub project_id: Id,
    pub name: String,
    pub rev: i32,
    pub spec: CodeSpec,
    pub zip: Option<ZipInfo>,
    pub created_at: DateTime<Utc>,
}

/// A named code of a project, with its latest revision.
#[derive(Debug, Clone, PartialEq)]
pub struct Code {
    pub id: Id,
    pub project_id: Id,
    pub name: String,
    /// While true, the code's queued tasks are not dispatched (contract §5.7).
    pub paused: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub latest: CodeRevision,
}

/// What an upload stores as the next revision of the code called `name`.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRevision {
    pub name: String,
    pub spec: CodeSpec,
    pub zip: Option<ZipInfo>,
}
