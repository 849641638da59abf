//! How a backend queues tasks, for the flows written once (batches, webhooks). Postgres
//! queues into `task_queue` and admits limited codes after the commit; SQLite's queue is the
//! `tasks` table itself.

use std::collections::HashMap;

use async_trait::async_trait;
use ferrum_model::{Id, NewTask};
use sqlx::{Executor, IntoArguments};

use super::sql::{args, fetch, Bind, Sql};
use crate::rows::Cols;
use crate::{StoreError, StoreResult};

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

/// The code facts a new task copies at queue time.
pub(crate) struct CodeHead {
    pub id: String,
    pub revision_id: String,
    pub rev: i32,
    pub default_priority: i32,
    pub retries: i32,
    pub retries_delay: i32,
    /// The code has a concurrency limit: its new tasks wait to be admitted (Postgres).
    pub limited: bool,
}

/// The codes `tasks` name, with their latest revisions, by name: what inserting them needs
/// first. [`StoreError::UnknownCode`] for the first task whose code the project lacks, before
/// anything is written. `S` says how a list is matched; `conn` may be a savepoint.
pub(crate) async fn code_heads<'c, S, DB, E>(
    conn: E,
    project: Id,
    tasks: &[NewTask],
) -> StoreResult<HashMap<String, CodeHead>>
where
    S: Sql,
    DB: Bind,
    DB::Row: Cols,
    E: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
{
    let mut names: Vec<String> = tasks.iter().map(|t| t.code_name.clone()).collect();
    names.sort();
    names.dedup();
    let sql = format!(
        "SELECT c.name, c.id, c.latest_revision_id, c.latest_rev, r.default_priority, \
         r.retries, r.retries_delay, c.max_concurrency IS NOT NULL AS limited \
         FROM codes c JOIN code_revisions r ON r.id = c.latest_revision_id \
         WHERE c.project_id = $1 AND {} AND c.deleted_at IS NULL",
        S::any("c.name", 2)
    );
    let heads = fetch(conn, &sql, args![project, names])
        .await?
        .iter()
        .map(|r| {
            let head = CodeHead {
                id: r.text("id")?,
                revision_id: r.text("latest_revision_id")?,
                rev: r.int("latest_rev")?,
                default_priority: r.int("default_priority")?,
                retries: r.int("retries")?,
                retries_delay: r.int("retries_delay")?,
                limited: r.flag("limited")?,
            };
            Ok((r.text("name")?, head))
        })
        .collect::<StoreResult<HashMap<_, _>>>()?;
    if let Some(t) = tasks.iter().find(|t| !heads.contains_key(&t.code_name)) {
        return Err(StoreError::UnknownCode(t.code_name.clone()));
    }
    Ok(heads)
}
