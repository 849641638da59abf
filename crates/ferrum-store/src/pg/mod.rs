//! The Postgres backend.

/// The statement that gives newly inserted tasks their dispatch queue rows, from a CTE named
/// `$from` holding the new tasks' `id, project_id, code_id, cluster, priority, run_at, delay`.
/// Every path that queues a task (enqueue, schedules, webhooks, linked retries) ends in it.
/// A row's `paused` and `limited` are its code's, read under a `FOR KEY SHARE` lock so that a
/// concurrent pause, resume or change of limit either waits for this transaction or is seen
/// by it (see `migrations/0006_paused_queue.sql`). A limited code's rows start held, outside
/// the dispatch index, until `ferrum_admit()` admits them (`migrations/0007_admission.sql`).
macro_rules! queue_rows_from {
    ($from:literal) => {
        concat!(
            "INSERT INTO task_queue (task_id, project_id, code_id, cluster, priority, run_at, \
               delayed, paused, limited, held) \
             SELECT n.id, n.project_id, n.code_id, n.cluster, n.priority, n.run_at, \
               n.delay > 0, c.paused, c.limited, c.limited \
             FROM ",
            $from,
            " n JOIN (SELECT id, paused, max_concurrency IS NOT NULL AS limited FROM codes \
               WHERE id IN (SELECT code_id FROM ",
            $from,
            ") FOR KEY SHARE) c ON c.id = n.code_id"
        )
    };
}

/// The CTE `off` that takes the current attempt (`$1` task, `$2` attempt) of the runner
/// `$runner` (a parameter such as `"$7"`) off the queue, with the outcome to record (`$3`
/// status, `$4` exit code, `$5` error class, `$6` msg); empty when the attempt is stale or not
/// the runner's. Completions of one task end in it and [`record_outcome!`].
macro_rules! take_attempt_off_queue {
    ($runner:literal) => {
        concat!(
            "off AS ( \
           DELETE FROM task_queue WHERE task_id = $1 AND attempt = $2 \
             AND lease_expires_at IS NOT NULL AND runner_id = ",
            $runner,
            " \
           RETURNING task_id, attempt, runner_id, $3::text AS status, $4::int4 AS exit_code, \
             $5::text AS error_class, $6::text AS msg)"
        )
    };
}

/// Records outcomes from a CTE named `off` holding the tasks taken off the queue: `task_id`,
/// `attempt`, `runner_id`, and the outcome's `status`, `exit_code`, `error_class` and `msg`. A
/// successful run keeps the msg set by progress (contract §5.9).
macro_rules! record_outcome {
    () => {
        "UPDATE tasks t SET status = off.status, exit_code = off.exit_code, \
           error_class = off.error_class, \
           msg = CASE WHEN off.status = 'complete' THEN t.msg ELSE coalesce(off.msg, t.msg) END, \
           end_time = now(), start_time = coalesce(t.start_time, now()), updated_at = now(), \
           attempt = off.attempt, runner_id = off.runner_id \
         FROM off WHERE t.id = off.task_id"
    };
}

mod accounts;
mod batches;
mod codes;
mod completions;
mod dispatch;
mod events;
mod fleet;
mod ops;
mod results;
mod retention;
mod rows;
mod schedules;
mod sql;
mod tasks;
mod webhooks;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use ferrum_model::{CodeRevision, Id};
use sqlx::postgres::{PgPool, PgPoolOptions};

use crate::{CodeStore, StoreError, StoreResult};

/// Revisions are immutable, so leasing may remember them; past this many it starts afresh.
const REVISION_CACHE_CAP: usize = 10_000;

/// The production store: Postgres through sqlx, schema from `migrations/`.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    completions: completions::Completions,
    revisions: Arc<Mutex<HashMap<Id, CodeRevision>>>,
}

impl PgStore {
    /// Connects and brings the schema up to date.
    pub async fn connect(url: &str, max_connections: u32) -> StoreResult<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .connect(url)
            .await?;
        sqlx::migrate!("../../migrations").run(&pool).await?;
        Ok(PgStore {
            completions: completions::Completions::new(pool.clone()),
            pool,
            revisions: Arc::default(),
        })
    }

    /// The pool, for the queue listener and benchmarks.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// A revision by id, from memory when leasing has seen it before.
    async fn cached_revision(&self, id: Id) -> StoreResult<CodeRevision> {
        if let Some(rev) = self.lock_revisions().get(&id) {
            return Ok(rev.clone());
        }
        let rev = self
            .revision(id)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("revision {id} is missing")))?;
        let mut cache = self.lock_revisions();
        if cache.len() >= REVISION_CACHE_CAP {
            cache.clear();
        }
        cache.insert(id, rev.clone());
        Ok(rev)
    }

    fn lock_revisions(&self) -> std::sync::MutexGuard<'_, HashMap<Id, CodeRevision>> {
        self.revisions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl PgStore {
    /// Calls `wake` whenever any replica queues work (`NOTIFY ferrum_queue`, sent by enqueue,
    /// retries and requeues on commit). Reconnects after errors; runs until the process ends.
    pub fn watch_queue(&self, wake: impl Fn() + Send + 'static) {
        let pool = self.pool.clone();
        tokio::spawn(async move {
            loop {
                match sqlx::postgres::PgListener::connect_with(&pool).await {
                    Ok(mut listener) => {
                        if let Err(e) = listener.listen("ferrum_queue").await {
                            tracing::warn!(error = %e, "LISTEN ferrum_queue failed");
                        } else {
                            while listener.recv().await.is_ok() {
                                wake();
                            }
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "queue listener cannot connect"),
                }
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        });
    }
}
