//! What every handler can reach.

use std::sync::Arc;
use std::time::Duration;

use ferrum_blob::BlobStore;
use ferrum_store::Store;

use crate::queue_signal::QueueSignal;

/// Settings of the API that operators may change.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// How long a runner's lease lasts without a heartbeat.
    pub lease_for: Duration,
    /// How often runners heartbeat each task (well under `lease_for`).
    pub heartbeat_every: Duration,
    /// Attempts a task gets before a lost lease marks it `killed`.
    pub max_attempts: i32,
    /// Per-task log cap in bytes; past it the log is truncated.
    pub max_log_bytes: i64,
    /// Largest unpacked size a code zip may have.
    pub max_zip_unpacked_bytes: u64,
    /// Largest request body of a code upload (multipart, zip included).
    pub max_upload_bytes: usize,
    /// Largest request body of every other tenant route (contract §8.14: about 1 MB; each
    /// payload is further limited to 64 KB).
    pub max_request_bytes: usize,
    /// Most active schedules a project may have (contract §3.4 S2: 100 by default); `None`
    /// for no limit.
    pub max_schedules_per_project: Option<i64>,
    /// The shortest time allowed between two runs of a schedule, by `run_every` or by cron
    /// (`ferrum serve --min-schedule-interval`: 60 s, IronWorker's; `ferrum dev` allows 1 s).
    pub min_schedule_interval: Duration,
    /// Maps a code's `stack`/`runtime` to the image its tasks run in.
    pub stacks: Arc<StackCatalog>,
    /// Label task counters with the project id (`/metrics`): one series per project, so off
    /// unless an operator wants them.
    pub metrics_per_project: bool,
    /// Largest result a task may return (`RESULT_FILE`); a larger one ends it as `error`.
    pub max_result_bytes: u64,
    /// Results up to this size are stored in the database, larger ones in the blob store.
    pub result_inline_bytes: u64,
    /// Most tasks one attempt of a task may queue with its task token (429 past it).
    pub max_children_per_task: i32,
    /// Most `parent_id` links above a task that queues with its task token (403 past it).
    pub max_task_depth: i32,
    /// Keep only the zips of each code's last N revisions (older ones are deleted from the
    /// blob store once no unfinished task needs them); `None` keeps every revision's zip.
    pub keep_revisions: Option<u32>,
    /// Days finished tasks are kept in projects that set no `retention_days` of their own
    /// (`crate::retention`); `None` keeps them until deleted.
    pub retention_days: Option<u32>,
    /// Write an expired task's log to the blob store before retention deletes the task.
    pub archive_logs: bool,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            lease_for: Duration::from_secs(30),
            heartbeat_every: Duration::from_secs(1),
            max_attempts: 3,
            max_log_bytes: 64 * 1024 * 1024,
            max_zip_unpacked_bytes: 512 * 1024 * 1024,
            max_upload_bytes: 256 * 1024 * 1024,
            max_request_bytes: 1024 * 1024,
            max_schedules_per_project: Some(100),
            min_schedule_interval: Duration::from_secs(
                ferrum_model::limits::MIN_RUN_EVERY_SECS
                    .unsigned_abs()
                    .into(),
            ),
            stacks: Arc::new(StackCatalog::default()),
            metrics_per_project: false,
            max_result_bytes: ferrum_model::protocol::default_max_result_bytes(),
            result_inline_bytes: 256 * 1024,
            max_children_per_task: 1000,
            max_task_depth: 5,
            keep_revisions: None,
            retention_days: None,
            archive_logs: false,
        }
    }
}

/// The stacks catalog: stack or runtime name → image. `GET /2/stacks` lists its names.
#[derive(Debug, Clone)]
pub struct StackCatalog {
    pub entries: Vec<(String, String)>,
}

impl StackCatalog {
    /// The image for a code's stack, else its runtime.
    pub fn image_for(&self, stack: Option<&str>, runtime: Option<&str>) -> Option<&str> {
        [stack, runtime].into_iter().flatten().find_map(|name| {
            self.entries
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, image)| image.as_str())
        })
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(n, _)| n.as_str())
    }
}

impl Default for StackCatalog {
    /// The catalog the runner's `ferrum stacks build` builds.
    fn default() -> Self {
        StackCatalog {
            entries: ferrum_model::stacks::CATALOG
                .iter()
                .map(|(name, image)| ((*name).to_owned(), (*image).to_owned()))
                .collect(),
        }
    }
}

/// Shared state of all handlers.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub blobs: Arc<dyn BlobStore>,
    pub config: Arc<ApiConfig>,
    pub queue: QueueSignal,
}
