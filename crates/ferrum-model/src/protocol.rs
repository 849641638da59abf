//! The runner protocol: what runners and the API say to each other over HTTP.
//!
//! Runners never see the database (brief §3). A runner registers with a runner token bound to
//! a cluster and gets a credential of its own (`runner_secret`), which it sends as
//! `Authorization: Bearer …` on every later call; these messages go under `/runner/v1`:
//!
//! | call | body | answer |
//! |---|---|---|
//! | `POST /runner/v1/register` | [`RegisterRequest`] | [`RegisterResponse`] |
//! | `POST /runner/v1/heartbeat` | [`RunnerHeartbeat`] | [`RunnerHeartbeatResponse`] |
//! | `POST /runner/v1/lease` | [`LeaseRequest`] | [`LeaseResponse`] (long-poll up to `wait_ms`) |
//! | `POST /runner/v1/tasks/{id}/started` | [`AttemptRef`] | [`HeartbeatResponse`] |
//! | `POST /runner/v1/tasks/{id}/heartbeat` | [`AttemptRef`] | [`HeartbeatResponse`] |
//! | `PUT /runner/v1/tasks/{id}/log?attempt=&seq=&stream=` | raw bytes | [`LogAck`] |
//! | `PUT /runner/v1/tasks/{id}/result?attempt=` | the result's bytes | [`ResultAck`] |
//! | `POST /runner/v1/tasks/{id}/complete` | [`CompleteRequest`] | [`CompleteResponse`] |
//! | `GET /runner/v1/revisions/{rev_id}/zip` | | the zip bytes |
//!
//! Every per-task call carries the lease's `attempt` and is authorised against the lease the
//! calling runner holds. The API answers **409** when that attempt is no longer the task's
//! current lease (it was leased again, or it ended), and **404** when the task is not this
//! runner's at all (another runner's, requeued after the lease expired, or no such task): in
//! both cases nothing changed, and the runner must stop the container and forget the task.
//! This fencing is what makes at-least-once delivery safe. A revision's zip is served only to a
//! runner holding a lease on a task of that revision.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{Id, TaskStatus};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterRequest {
    pub hostname: String,
    pub concurrency: u32,
    pub version: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterResponse {
    pub runner_id: Id,
    /// The runner's own credential, shown once: the bearer token of every later call. It is
    /// valid while the runner token it registered with is not revoked.
    pub runner_secret: String,
    /// The cluster the runner's token is bound to.
    pub cluster: String,
    /// How long a lease lasts without a heartbeat.
    pub lease_secs: u32,
    /// How often the runner should heartbeat each running task.
    pub heartbeat_secs: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRequest {
    /// Most tasks to lease now: the runner's free slots.
    pub max_tasks: u32,
    /// How long the API may hold the request open when nothing is runnable.
    pub wait_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeaseResponse {
    pub leases: Vec<Lease>,
    /// An admin asked this runner to drain: it gets no tasks from now on, and should finish
    /// what it runs and stop asking. Defaulted for servers of versions before it.
    #[serde(default)]
    pub draining: bool,
}

/// The runner's own heartbeat, every `heartbeat_secs`: it is alive, and runs this many tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunnerHeartbeat {
    /// Tasks in progress on the runner (at most the concurrency it registered with).
    pub running: u32,
}

/// What the API knows of the runner: whether it is asked to drain, and whether it counts as
/// drained (it reported nothing running and holds no lease).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunnerHeartbeatResponse {
    pub draining: bool,
    pub drained: bool,
}

/// One task handed to a runner, with everything needed to run it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lease {
    pub task_id: Id,
    pub project_id: Id,
    /// Fencing token: quote it on every call about this task.
    pub attempt: i32,
    pub timeout_secs: i32,
    /// The payload bytes, base64 (standard alphabet): payloads need not be UTF-8.
    pub payload_base64: String,
    pub schedule_id: Option<Id>,
    pub code: RunSpec,
    /// The task's own token, for its container's `IRON_TOKEN`: it may queue tasks in the
    /// task's project and read their state, while this attempt runs. Defaulted so that
    /// runners and servers of versions before it still understand each other.
    #[serde(default)]
    pub task_token: Option<SecretToken>,
    /// The largest result (`RESULT_FILE`) the API accepts, in bytes; a larger one ends the
    /// task as `error`.
    #[serde(default = "default_max_result_bytes")]
    pub max_result_bytes: u64,
    /// For a batch's reduce task: what its `BATCH_ID` and `BATCH_RESULTS_FILE` hold. Absent
    /// for every other task, and to runners and servers of versions before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<BatchInput>,
}

/// The result cap of a server that does not say: the API's default.
pub fn default_max_result_bytes() -> u64 {
    16 * 1024 * 1024
}

/// A secret in a message: serialized as the plain string, never shown by `Debug`, so a
/// lease that is logged does not leak it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretToken(pub String);

impl std::fmt::Debug for SecretToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretToken(…)")
    }
}

/// The API stored a task's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResultAck {
    pub size: u64,
}

/// A reduce task's input: its batch and the batch's items, one JSON line each in index order
/// (`{"index","task_id","status","result"?,"msg"?}`, as `GET …/batches/{id}/results` answers).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchInput {
    pub batch_id: Id,
    pub results_jsonl: String,
}

/// How to run a code revision (contract §6).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSpec {
    pub code_id: Id,
    pub code_name: String,
    pub revision_id: Id,
    pub rev: i32,
    /// The image to create the container from: the code's own image, or the stack's.
    pub image: String,
    /// True for Docker-style codes (`image` [+ `command`]): environment only, no argv flags.
    pub docker_style: bool,
    pub runtime: Option<String>,
    pub file_name: Option<String>,
    pub command: Option<String>,
    pub config: Option<String>,
    pub env_vars: BTreeMap<String, String>,
    /// True when the revision has a zip to fetch from `/runner/v1/revisions/{rev}/zip`.
    pub has_zip: bool,
    /// The code's own resource settings ([`crate::CodeSpec`]); `None` = the runner's default.
    /// The runner clamps each to its ceiling. Defaulted so that runners and servers of
    /// versions before these fields still understand each other.
    #[serde(default)]
    pub memory_mb: Option<i32>,
    #[serde(default)]
    pub cpus: Option<f64>,
    #[serde(default)]
    pub pids: Option<i32>,
    #[serde(default)]
    pub disk_mb: Option<i32>,
}

/// Names a lease: the task and the attempt the runner holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptRef {
    pub attempt: i32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatResponse {
    /// A user asked to cancel the task: stop the container and report `cancelled`.
    pub cancel_requested: bool,
}

/// Which output stream a log chunk holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogStream {
    Stdout,
    Stderr,
}

impl LogStream {
    pub fn as_str(self) -> &'static str {
        match self {
            LogStream::Stdout => "stdout",
            LogStream::Stderr => "stderr",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogAck {
    /// False when the chunk was a duplicate (already stored): harmless, chunks are idempotent.
    pub stored: bool,
}

/// How an attempt ended, as the runner saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompleteRequest {
    pub attempt: i32,
    /// One of `complete`, `error`, `timeout`, `cancelled`, `killed`.
    pub status: TaskStatus,
    pub exit_code: Option<i32>,
    pub msg: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompleteResponse {
    /// The automatic retry queued because of this failure, if any.
    pub retry_task_id: Option<Id>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server from before the resource settings sends none: a newer runner still reads it.
    #[test]
    fn a_run_spec_without_resource_settings_still_parses() {
        let old = serde_json::json!({
            "code_id": Id::generate(), "code_name": "c", "revision_id": Id::generate(),
            "rev": 1, "image": "ferrum/stack-sh:1", "docker_style": false, "runtime": "sh",
            "file_name": "w.sh", "command": null, "config": null, "env_vars": {},
            "has_zip": true
        });
        let spec: RunSpec = serde_json::from_value(old).unwrap();
        assert_eq!((spec.memory_mb, spec.cpus, spec.pids), (None, None, None));
    }
}
