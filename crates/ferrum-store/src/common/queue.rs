//! How a backend queues tasks, for the flows written once (batches, webhooks). Postgres
//! queues into `task_queue` and admits limited codes after the commit; SQLite's queue is the
//! `tasks` table itself.

use async_trait::async_trait;
use ferrum_model::{Id, NewTask};

use super::sql::Sql;
use crate::StoreResult;

/// Whose unfinished tasks [`Queue::cancel_unfinished`] cancels.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Unfinished {
    /// One task.
    Task(Id),
    /// A batch's (its items and its reduce task).
    Batch(Id),
    /// A code's.
    Code(Id),
}

#[async_trait]
pub(crate) trait Queue: Sql {
    /// `FROM` and `WHERE` of the tasks waiting to be leased, to which a statement adds
    /// `AND …` (Postgres: unleased `task_queue` rows; SQLite: `queued` tasks).
    const WAITING: &'static str;
    /// Queues `tasks` (with the batch's `retries` setting, when given) and answers their ids.
    /// Codes whose tasks must be admitted once the transaction commits go into `limited`.
    async fn insert_tasks(
        tx: &mut Self::Tx,
        project: Id,
        tasks: Vec<NewTask>,
        retries: Option<(i32, i32)>,
        limited: &mut Vec<String>,
    ) -> StoreResult<Vec<Id>>;
    /// Cancels the project's unfinished tasks `of`: queued ones at once, leased ones by
    /// flagging them for their runner. How many it affected.
    async fn cancel_unfinished(tx: &mut Self::Tx, project: Id, of: Unfinished) -> StoreResult<u64>;
    /// After the commit: admits the `limited` codes' new tasks (Postgres; SQLite's lease
    /// applies the limits itself).
    async fn after_commit(&self, limited: Vec<String>);
}
