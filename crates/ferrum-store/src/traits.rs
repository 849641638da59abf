//! The storage contract. Both backends pass the same suite, `tests/contract/`.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use ferrum_model::protocol::LogStream;
use ferrum_model::recurrence::MisfirePolicy;
use ferrum_model::{
    Code, CodeRevision, Id, NewRevision, NewSchedule, NewTask, NewWebhook, Page, Principal,
    Project, Schedule, Task, TaskFilter, TaskStatus, Webhook,
};

use crate::StoreResult;

/// Users, tokens, projects and runner tokens. Tokens are passed in the clear and stored hashed.
#[async_trait]
pub trait AccountStore {
    /// Makes `token` the token of the bootstrap admin user, creating that user on first start.
    async fn bootstrap_admin(&self, token: &str) -> StoreResult<Principal>;
    async fn create_user(&self, email: &str, is_admin: bool) -> StoreResult<Id>;
    async fn add_user_token(&self, user_id: Id, token: &str) -> StoreResult<()>;
    /// Starts a dashboard session of `user_id` that ends at `expires_at` (`token` stored
    /// hashed), deleting every session already past its end.
    async fn start_session(
        &self,
        user_id: Id,
        token: &str,
        expires_at: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// Who holds this dashboard session, if it exists and has not expired. Sessions are not
    /// API tokens: `authenticate` never accepts one, and this never accepts an API token.
    async fn session(&self, token: &str) -> StoreResult<Option<Principal>>;
    /// Ends a dashboard session (logout); false if there was none.
    async fn end_session(&self, token: &str) -> StoreResult<bool>;
    /// Who holds this token, if anyone.
    async fn authenticate(&self, token: &str) -> StoreResult<Option<Principal>>;
    async fn create_project(&self, owner: Id, name: &str) -> StoreResult<Project>;
    /// The project, if it exists and `who` may use it (admins may use every project).
    async fn project(&self, who: &Principal, id: Id) -> StoreResult<Option<Project>>;
    async fn projects(&self, who: &Principal) -> StoreResult<Vec<Project>>;
    /// Sets a project's concurrency limit; `None` removes it.
    async fn set_project_concurrency(&self, project: Id, limit: Option<i32>) -> StoreResult<()>;
    /// Creates a runner token bound to `cluster`; answers the token's id.
    async fn add_runner_token(&self, cluster: &str, token: &str) -> StoreResult<Id>;
    /// The cluster a runner token is bound to, if the token is valid and not revoked.
    async fn authenticate_runner(&self, token: &str) -> StoreResult<Option<String>>;
    /// Records a runner daemon that just started, if `token` is a valid, unrevoked runner
    /// token: the runner belongs to the token's cluster, and `secret` (stored hashed) is its
    /// credential from now on; `version` is the daemon's, for the fleet list. `None` if the
    /// token is not valid.
    async fn register_runner(
        &self,
        token: &str,
        secret: &str,
        hostname: &str,
        concurrency: i32,
        version: &str,
    ) -> StoreResult<Option<RunnerIdentity>>;
    /// The runner whose credential is `secret`, while the token it registered with is valid.
    async fn authenticate_runner_secret(&self, secret: &str)
        -> StoreResult<Option<RunnerIdentity>>;
    /// Every runner token, oldest first, revoked ones included.
    async fn runner_tokens(&self) -> StoreResult<Vec<RunnerToken>>;
    /// Revokes a runner token, and with it the authority of every runner it registered.
    /// False if there is no such token or it was already revoked.
    async fn revoke_runner_token(&self, id: Id) -> StoreResult<bool>;
}

/// A registered runner: who holds a lease, and the cluster it may lease from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunnerIdentity {
    pub runner_id: Id,
    pub cluster: String,
    /// An admin asked it to drain (`crate::fleet`): read with the credential, so a lease
    /// call of a draining runner is answered without another query.
    pub draining: bool,
}

/// A runner token as admins see it: never the token itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunnerToken {
    pub id: Id,
    pub cluster: String,
    pub created_at: DateTime<Utc>,
    /// When a runner last registered with it.
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// Code packages and their revisions.
#[async_trait]
pub trait CodeStore {
    /// Stores the next revision of the code `rev.name`, creating the code on first upload. The
    /// code keeps its id across revisions; its dispatch settings follow the latest revision.
    async fn put_revision(&self, project: Id, rev: NewRevision) -> StoreResult<Code>;
    async fn code(&self, project: Id, id: Id) -> StoreResult<Option<Code>>;
    async fn code_by_name(&self, project: Id, name: &str) -> StoreResult<Option<Code>>;
    /// Newest first.
    async fn codes(&self, project: Id, page: Page) -> StoreResult<Vec<Code>>;
    /// Newest first.
    async fn revisions(&self, project: Id, code: Id, page: Page) -> StoreResult<Vec<CodeRevision>>;
    /// A revision by number, or the latest when `rev` is `None`.
    async fn revision_of(
        &self,
        project: Id,
        code: Id,
        rev: Option<i32>,
    ) -> StoreResult<Option<CodeRevision>>;
    /// A revision by id, whatever its project: for runners, which serve every project.
    async fn revision(&self, id: Id) -> StoreResult<Option<CodeRevision>>;
    /// Deletes the code. Its unfinished tasks are cancelled and its schedules cancelled, so
    /// nothing runs a code that no longer exists. False if there was no such code.
    async fn delete_code(&self, project: Id, id: Id) -> StoreResult<bool>;
    /// Pauses or resumes the code's queue. `Some(true)` if that changed something,
    /// `Some(false)` if it already was so, `None` if there is no such code.
    async fn set_paused(&self, project: Id, id: Id, paused: bool) -> StoreResult<Option<bool>>;
    /// Zips the blob store may delete, at most `limit`, as (revision id, zip key): every
    /// revision of a deleted code, and with `keep` the revisions older than a code's last
    /// `keep` (at least 1, so the latest stays); never a revision an unfinished task is bound
    /// to. New tasks bind to a live code's latest revision, and automatic retries only come
    /// from unfinished tasks, so a revision found here stays unneeded.
    async fn unneeded_zips(&self, keep: Option<u32>, limit: i64) -> StoreResult<Vec<(Id, String)>>;
    /// Marks a revision's zip as gone; true when no other revision still holds the same zip
    /// key (an options-only upload shares its predecessor's zip), so the blob may be deleted.
    async fn zip_freed(&self, revision: Id, key: &str) -> StoreResult<bool>;
    /// Task counts per status of tasks last changed within `[from, to]`.
    async fn code_stats(
        &self,
        project: Id,
        code: Id,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> StoreResult<BTreeMap<TaskStatus, i64>>;
}

/// Tasks as tenants see them.
#[async_trait]
pub trait TaskStore {
    /// Queues all the tasks in one transaction: all are committed, or none (e.g. when one names
    /// an unknown code, [`crate::StoreError::UnknownCode`]). Ids come back in input order.
    async fn enqueue(&self, project: Id, tasks: Vec<NewTask>) -> StoreResult<Vec<Id>>;
    async fn task(&self, project: Id, id: Id) -> StoreResult<Option<Task>>;
    /// Newest first.
    async fn tasks(&self, project: Id, filter: &TaskFilter) -> StoreResult<Vec<Task>>;
    /// Cancels a queued task at once; flags a leased one so its runner stops it; leaves a
    /// finished one alone. The status afterwards, or `None` if there is no such task.
    async fn cancel(&self, project: Id, id: Id) -> StoreResult<Option<TaskStatus>>;
    /// Cancels every unfinished task of a code; returns how many.
    async fn cancel_all(&self, project: Id, code: Id) -> StoreResult<u64>;
    /// Sets `percent` and `msg`; false if there is no such task.
    async fn set_progress(
        &self,
        project: Id,
        id: Id,
        percent: Option<i32>,
        msg: Option<String>,
    ) -> StoreResult<bool>;
    /// Queues a copy of the task, bound to the code's latest revision, that may run after
    /// `delay` seconds. `None` if there is no such task.
    async fn retry(&self, project: Id, id: Id, delay: i32) -> StoreResult<Option<Id>>;
    /// The log of the task's current attempt: both streams, or stdout only. `None` while the
    /// task has never started (and if there is no such task).
    async fn read_log(
        &self,
        project: Id,
        id: Id,
        stdout_only: bool,
    ) -> StoreResult<Option<Vec<u8>>>;
}

/// What a runner asks for when it leases.
#[derive(Debug, Clone)]
pub struct LeaseSpec {
    /// The runner that will hold the leases: every later call about them must be its.
    pub runner_id: Id,
    pub cluster: String,
    pub max_tasks: u32,
    /// How long the lease lasts without a heartbeat.
    pub lease_for: Duration,
}

/// A task a runner now holds: what running it takes, with the revision it runs.
///
/// Not the whole task record (about 30 columns): leasing is the busiest path of the service,
/// and a runner needs only these fields, so Postgres encodes and the client decodes no more.
/// The record itself says `preparing` until the runner reports the start; read it with
/// [`TaskStore::task`].
#[derive(Debug, Clone)]
pub struct LeasedTask {
    pub id: Id,
    pub project_id: Id,
    /// The lease's attempt: the fencing token every call about this lease quotes.
    pub attempt: i32,
    pub priority: i32,
    /// When the task became runnable; with `priority`, the order leases answer tasks in.
    pub run_at: DateTime<Utc>,
    /// Seconds the run may take.
    pub timeout: i32,
    /// The payload exactly as queued.
    pub payload: Vec<u8>,
    /// The schedule that queued the task, if one did.
    pub schedule_id: Option<Id>,
    /// The batch of an item or reduce task; `batch_index` is `None` for the reduce task.
    pub batch_id: Option<Id>,
    pub batch_index: Option<i32>,
    pub revision: CodeRevision,
}

/// The answer to a call that quotes a lease's attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fenced<T> {
    /// The attempt is the task's current lease; the call took effect.
    Current(T),
    /// The attempt is stale (the lease expired, the task was leased again, or it ended) while
    /// the task is still recorded with this runner: nothing was written.
    Stale,
    /// The task is not this runner's (another runner holds or held it, it was requeued, or
    /// there is no such task): nothing was written. The API answers 404, telling a foreign
    /// caller nothing about the task.
    NotHeld,
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub status: TaskStatus,
    pub exit_code: Option<i32>,
    pub msg: Option<String>,
}

/// What a pass over expired leases did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReapReport {
    /// Tasks put back in the queue for another attempt.
    pub requeued: u64,
    /// Tasks out of attempts, marked `killed`.
    pub lost: u64,
}

/// The dispatch queue as runners (through the API) use it.
#[async_trait]
pub trait DispatchStore {
    /// Leases up to `max_tasks` runnable tasks of the runner's cluster: highest priority first,
    /// then oldest `run_at`; skipping paused codes, codes at their `max_concurrency` and
    /// projects at their concurrency limit. Leased tasks are `preparing`, with a new attempt.
    async fn lease(&self, spec: &LeaseSpec) -> StoreResult<Vec<LeasedTask>>;
    /// The container started: `preparing → running`, `start_time` set, lease renewed.
    async fn mark_running(
        &self,
        task: Id,
        runner: Id,
        attempt: i32,
        lease_for: Duration,
    ) -> StoreResult<Fenced<bool>>;
    /// Renews the lease; answers whether a cancel was requested.
    async fn heartbeat(
        &self,
        task: Id,
        runner: Id,
        attempt: i32,
        lease_for: Duration,
    ) -> StoreResult<Fenced<bool>>;
    /// Stores one log chunk. Chunks are idempotent by `(attempt, seq)`; `stored` is false for a
    /// duplicate or once the log has reached `max_log_bytes`.
    // A chunk is named by its lease (task, runner, attempt) and its place (seq, stream).
    #[allow(clippy::too_many_arguments)]
    async fn append_log(
        &self,
        task: Id,
        runner: Id,
        attempt: i32,
        seq: i64,
        stream: LogStream,
        data: &[u8],
        max_log_bytes: i64,
    ) -> StoreResult<Fenced<bool>>;
    /// Records how the attempt ended. A failure (`error`, `timeout`) of a code with retries
    /// left queues a linked retry task, whose id is returned.
    async fn complete(
        &self,
        task: Id,
        runner: Id,
        attempt: i32,
        outcome: Outcome,
    ) -> StoreResult<Fenced<Option<Id>>>;
    /// Whether `runner` holds a current lease on a task of `revision`: only then may it
    /// download the revision's code.
    async fn holds_revision(&self, runner: Id, revision: Id) -> StoreResult<bool>;
    /// Puts tasks whose lease expired back in the queue, keeping their priority and `run_at`
    /// (their place in line, ahead of what was queued after them), or marks them `killed`
    /// once they have had `max_attempts` attempts.
    async fn reap_expired(&self, max_attempts: i32) -> StoreResult<ReapReport>;
    /// The earliest `run_at` later than `now` of a queued delayed task, in any cluster: when
    /// held lease requests should look at the queue again.
    async fn next_delayed_at(&self, now: DateTime<Utc>) -> StoreResult<Option<DateTime<Utc>>>;
}

/// A partial update of a schedule (S5): `None` leaves a field as it is. The fields a schedule
/// may also lack (`label`, `run_times`, `end_at`) take `Some(None)` to remove them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScheduleUpdate {
    pub payload: Option<Vec<u8>>,
    pub priority: Option<i32>,
    pub timeout: Option<i32>,
    pub cluster: Option<String>,
    pub label: Option<Option<String>>,
    pub run_times: Option<Option<i32>>,
    pub end_at: Option<Option<DateTime<Utc>>>,
    pub task_delay: Option<i32>,
    /// A new answer to "when does it fire", replacing the old one whole.
    pub timing: Option<ScheduleTiming>,
}

/// How a schedule repeats and its next slot, validated together: an update that changes how a
/// schedule repeats also moves its next firing onto the new recurrence, in the same write, so
/// no slot of the old recurrence fires after the update (a firing pass holds the row's lock).
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleTiming {
    pub run_every: Option<i32>,
    pub cron: Option<String>,
    pub timezone: Option<String>,
    pub misfire: MisfirePolicy,
    pub next_start: DateTime<Utc>,
}

/// Schedules, and firing them.
#[async_trait]
pub trait ScheduleStore {
    /// Creates all the schedules in one transaction, or none. Ids in input order. With
    /// `max_active`, refuses ([`crate::StoreError::LimitReached`]) a batch that would leave the
    /// project with more active schedules than that; creations in one project are serialized,
    /// so concurrent batches cannot slip past the limit together.
    async fn create_schedules(
        &self,
        project: Id,
        schedules: Vec<NewSchedule>,
        max_active: Option<i64>,
    ) -> StoreResult<Vec<Id>>;
    async fn schedule(&self, project: Id, id: Id) -> StoreResult<Option<Schedule>>;
    /// Newest first.
    async fn schedules(&self, project: Id, page: Page) -> StoreResult<Vec<Schedule>>;
    /// False if there is no such schedule.
    async fn cancel_schedule(&self, project: Id, id: Id) -> StoreResult<bool>;
    async fn update_schedule(
        &self,
        project: Id,
        id: Id,
        update: ScheduleUpdate,
    ) -> StoreResult<bool>;
    /// Fires up to `limit` schedules due at `now`: each firing queues one task and advances
    /// the schedule in the same transaction, claimed with `SKIP LOCKED`, so several API
    /// replicas never fire one occurrence twice. Returns the tasks queued.
    async fn fire_due(&self, now: DateTime<Utc>, limit: i64) -> StoreResult<Vec<Id>>;
    /// Pauses or resumes an active schedule. Resuming skips the slots missed while paused (a
    /// one-shot still runs). `Some(true)` if that changed something, `Some(false)` if it
    /// already was so or the schedule is not active, `None` if there is no such schedule.
    async fn set_schedule_paused(
        &self,
        project: Id,
        id: Id,
        paused: bool,
    ) -> StoreResult<Option<bool>>;
    /// The earliest slot later than `now` of an active, unpaused schedule of an unpaused code:
    /// when the firing duty should run next.
    async fn next_fire_at(&self, now: DateTime<Utc>) -> StoreResult<Option<DateTime<Utc>>>;
}

/// A delivery queued by [`WebhookStore::enqueue_once`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    pub task_id: Id,
    /// True when an earlier delivery with the same key had queued `task_id`; nothing new
    /// was queued.
    pub duplicate: bool,
}

/// Per-code webhooks and deduplicated deliveries.
#[async_trait]
pub trait WebhookStore {
    /// Creates a webhook whose URL secret is `token` (stored hashed). `None` if the project
    /// has no such code.
    async fn create_webhook(
        &self,
        project: Id,
        token: &str,
        hook: NewWebhook,
    ) -> StoreResult<Option<Webhook>>;
    /// The code's webhooks, newest first.
    async fn webhooks(&self, project: Id, code: Id) -> StoreResult<Vec<Webhook>>;
    /// False if the code has no such webhook.
    async fn delete_webhook(&self, project: Id, code: Id, id: Id) -> StoreResult<bool>;
    /// The webhook whose URL secret is `token`, while its code exists.
    async fn webhook_by_token(&self, token: &str) -> StoreResult<Option<Webhook>>;
    /// Queues `task` unless a delivery with the same `(scope, key)` already queued one in
    /// this project; the check and the enqueue are one transaction, so concurrent retries
    /// of one delivery make one task.
    async fn enqueue_once(
        &self,
        project: Id,
        scope: &str,
        key: &str,
        task: NewTask,
    ) -> StoreResult<Delivery>;
    /// Forgets delivery keys recorded before `before`; returns how many.
    async fn purge_deliveries(&self, before: DateTime<Utc>) -> StoreResult<u64>;
}

/// Everything a backend provides.
pub trait Store:
    AccountStore
    + CodeStore
    + TaskStore
    + DispatchStore
    + ScheduleStore
    + WebhookStore
    + crate::TaskEventStore
    + crate::OpsStore
    + crate::BatchStore
    + crate::QuotaStore
    + crate::ResultStore
    + crate::TaskTokenStore
    + crate::FleetStore
    + crate::RetentionStore
    + Send
    + Sync
{
}

impl<T> Store for T where
    T: AccountStore
        + CodeStore
        + TaskStore
        + DispatchStore
        + ScheduleStore
        + WebhookStore
        + crate::TaskEventStore
        + crate::OpsStore
        + crate::BatchStore
        + crate::QuotaStore
        + crate::ResultStore
        + crate::TaskTokenStore
        + crate::FleetStore
        + crate::RetentionStore
        + Send
        + Sync
{
}
