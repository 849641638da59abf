//! Completions, coalesced: completions that arrive while another one is being written wait for
//! it, then all share the next statement and its commit, as Postgres' own group commit does.
//!
//! Why: completing a task deletes one queue row and updates one task record, yet as a
//! statement of its own it costs more than those two writes: a round trip, the executor's
//! start-up and a commit that flushes the WAL. Measured with `scripts/dispatch-ab`, leasing ten
//! tasks and completing them in one statement costs about half the CPU per job of completing
//! them in ten (docs/BENCHMARKS.md). When many runners finish tasks at once, that is the
//! difference between a database that keeps up and one that does not.
//!
//! It costs nothing when completions are few: a completion is written at once unless
//! [`MAX_IN_FLIGHT`] statements are already being written, and only then it waits for the
//! next one. Each completion is still answered for itself: a stale attempt in a batch is
//! `Stale` and leaves the others alone. A batch is written by a task of its own, so a caller
//! that gives up (a runner that disconnects) cannot abandon the others' completions half-way.
//!
//! Only outcomes that never queue a retry are coalesced; errors and timeouts take
//! `COMPLETE_OR_RETRY` (in `dispatch.rs`), one statement each, as they are the rare case.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use ferrum_model::Id;
use sqlx::PgPool;
use tokio::sync::oneshot;

use crate::derived::{error_class, stored_msg};
use crate::{Outcome, StoreError, StoreResult};

/// How many completion statements may be written at once before completions wait and
/// coalesce. Concurrent statements already share Postgres' WAL flushes; coalescing saves their
/// fixed costs, which matter only once the database is busy. With a single place, 4 leasers in
/// `scripts/bench-dispatch` waited on each other's round trips and ran slower than without
/// coalescing; with four they run as before, and 16 coalesce.
const MAX_IN_FLIGHT: usize = 4;

/// The most completions one statement carries.
const MAX_BATCH: usize = 500;

/// One completion (`$1` task, `$2` attempt, `$3` status, `$4` exit code, `$5` error class,
/// `$6` msg, `$7` runner); a row comes back when the attempt was current and the runner's. It costs less than
/// [`COMPLETE_ALL`] with one element (`scripts/dispatch-ab`), so a lone completion takes it.
const COMPLETE_ONE: &str = concat!(
    "WITH ",
    take_attempt_off_queue!("$7"),
    " ",
    record_outcome!(),
    " RETURNING 1"
);

/// Takes the current attempts off the queue and records their outcomes, for the completions
/// in `$1`: a JSON array of `{task_id, runner_id, attempt, status, exit_code, error_class,
/// msg}`.
/// Answers the `(id, attempt, runner_id)` of each completion that was current.
///
/// The completions come as JSON rather than as arrays because Postgres cannot see how many
/// there are: given arrays, it planned every call afresh for their size (a custom plan), which
/// cost more than the writes; given JSON, it keeps one generic plan.
const COMPLETE_ALL: &str = concat!(
    "WITH req AS ( \
       SELECT * FROM jsonb_to_recordset($1) AS r(task_id text, runner_id text, attempt int4, \
         status text, exit_code int4, error_class text, msg text)), \
     off AS ( \
       DELETE FROM task_queue q USING req \
       WHERE q.task_id = req.task_id AND q.attempt = req.attempt \
         AND q.lease_expires_at IS NOT NULL AND q.runner_id = req.runner_id \
       RETURNING q.task_id, q.attempt, q.runner_id, req.status, req.exit_code, \
         req.error_class, req.msg) ",
    record_outcome!(),
    " RETURNING t.id, off.attempt, off.runner_id"
);

/// The coalescer of one store; clones share it.
#[derive(Debug, Clone)]
pub(crate) struct Completions {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    pool: PgPool,
    state: Mutex<State>,
}

/// Invariant: completions wait only while all [`MAX_IN_FLIGHT`] places are taken.
#[derive(Debug, Default)]
struct State {
    waiting: Vec<Waiting>,
    in_flight: usize,
}

/// One attempt of a task, the runner that ran it, and how it ended.
#[derive(Debug)]
struct Completion {
    task: Id,
    runner: Id,
    attempt: i32,
    outcome: Outcome,
}

/// A completion waiting for a place, and where its answer goes: whether its attempt was
/// current, or the database's error.
#[derive(Debug)]
struct Waiting {
    completion: Completion,
    answer: oneshot::Sender<Result<bool, String>>,
}

/// When a completion is written: at once, in a free place, or later, with those that wait.
enum Turn {
    Now(Completion),
    Later(oneshot::Receiver<Result<bool, String>>),
}

impl Completions {
    pub(crate) fn new(pool: PgPool) -> Self {
        Completions {
            inner: Arc::new(Inner {
                pool,
                state: Mutex::default(),
            }),
        }
    }

    /// Records `outcome` for `attempt` of `task` run by `runner`; answers whether the attempt
    /// was current and the runner's (when not, nothing was written). With a place free, the
    /// caller writes it at once; otherwise it waits to be written with the others that wait.
    pub(crate) async fn complete(
        &self,
        task: Id,
        runner: Id,
        attempt: i32,
        outcome: Outcome,
    ) -> StoreResult<bool> {
        let completion = Completion {
            task,
            runner,
            attempt,
            outcome,
        };
        let turn = {
            let mut state = self.inner.lock();
            if state.in_flight < MAX_IN_FLIGHT {
                state.in_flight += 1;
                Turn::Now(completion)
            } else {
                let (answer, answered) = oneshot::channel();
                state.waiting.push(Waiting { completion, answer });
                Turn::Later(answered)
            }
        };
        let answered = match turn {
            Turn::Now(completion) => {
                let _place = Place(Arc::clone(&self.inner));
                return Ok(write(&self.inner.pool, &[completion]).await?[0]);
            }
            Turn::Later(answered) => answered,
        };
        match answered.await {
            Ok(Ok(current)) => Ok(current),
            Ok(Err(e)) => Err(StoreError::CoalescedWrite(e)),
            Err(_) => Err(StoreError::CoalescedWrite(
                "the batch was dropped before it was written".into(),
            )),
        }
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes what waits, in batches, while places are free. Each batch is written by a task
    /// of its own, which no caller's cancellation can stop half-way.
    fn start_batches(self: &Arc<Self>) {
        let mut state = self.lock();
        while state.in_flight < MAX_IN_FLIGHT && !state.waiting.is_empty() {
            let n = state.waiting.len().min(MAX_BATCH);
            let (batch, answers): (Vec<_>, Vec<_>) = state
                .waiting
                .drain(..n)
                .map(|w| (w.completion, w.answer))
                .unzip();
            state.in_flight += 1;
            let place = Place(Arc::clone(self));
            tokio::spawn(async move {
                let written = write(&place.0.pool, &batch).await;
                if let Err(e) = &written {
                    tracing::warn!(error = %e, n = batch.len(), "coalesced completions failed");
                }
                for (i, answer) in answers.into_iter().enumerate() {
                    let result = written.as_ref().map(|current| current[i]);
                    // The caller may have given up; its completion was written all the same.
                    let _ = answer.send(result.map_err(|e| e.to_string()));
                }
                drop(place);
            });
        }
    }
}

/// One of the [`MAX_IN_FLIGHT`] places. Dropping it, even when the write panicked or its
/// caller gave up, frees it and starts what waits, so that no completion waits for a batch
/// that will not come.
struct Place(Arc<Inner>);

impl Drop for Place {
    fn drop(&mut self) {
        self.0.lock().in_flight -= 1;
        self.0.start_batches();
    }
}

/// Writes `batch` in one statement; answers, for each completion, whether its attempt was
/// current and its runner's (a foreign completion in the batch cannot take the holder's
/// place). A second completion of the same attempt by the same runner is answered `false`, as it would be after
/// the first one's statement. Rows are written in task id order, so two batches that share a
/// task (a runner repeating a completion through another replica) lock in the same order and
/// cannot deadlock.
async fn write(pool: &PgPool, batch: &[Completion]) -> Result<Vec<bool>, sqlx::Error> {
    if let [one] = batch {
        return Ok(vec![write_one(pool, one).await?]);
    }
    let mut seen = HashSet::new();
    let first: Vec<bool> = batch
        .iter()
        .map(|c| seen.insert((c.task, c.runner, c.attempt)))
        .collect();
    let mut rows: Vec<&Completion> = batch
        .iter()
        .zip(&first)
        .filter(|(_, f)| **f)
        .map(|(c, _)| c)
        .collect();
    // Ids order as their hex text does, the order in which the statement locks them.
    rows.sort_by_key(|c| c.task);
    let json: Vec<_> = rows
        .into_iter()
        .map(|c| {
            serde_json::json!({
                "task_id": c.task,
                "runner_id": c.runner,
                "attempt": c.attempt,
                "status": c.outcome.status.as_str(),
                "exit_code": c.outcome.exit_code,
                "error_class": error_class(&c.outcome),
                "msg": stored_msg(&c.outcome),
            })
        })
        .collect();
    let written: HashSet<(String, i32, String)> = sqlx::query_as(COMPLETE_ALL)
        .bind(sqlx::types::Json(json))
        .fetch_all(pool)
        .await?
        .into_iter()
        .collect();
    Ok(batch
        .iter()
        .zip(first)
        .map(|(c, first)| {
            let key = (c.task.to_string(), c.attempt, c.runner.to_string());
            first && written.contains(&key)
        })
        .collect())
}

/// Writes one completion with [`COMPLETE_ONE`].
async fn write_one(pool: &PgPool, c: &Completion) -> Result<bool, sqlx::Error> {
    let row = sqlx::query(COMPLETE_ONE)
        .bind(c.task.to_string())
        .bind(c.attempt)
        .bind(c.outcome.status.as_str())
        .bind(c.outcome.exit_code)
        .bind(error_class(&c.outcome))
        .bind(stored_msg(&c.outcome))
        .bind(c.runner.to_string())
        .fetch_optional(pool)
        .await?;
    Ok(row.is_some())
}
