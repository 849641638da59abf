//! The dispatch queue: leases, heartbeats, log chunks, completion and lease expiry.
//!
//! Dispatch state lives in the narrow `task_queue` table, one row per unfinished task (see
//! `migrations/0005_task_queue.sql`). A lease writes only the queue row; the task record in
//! `tasks` catches up, in the same statement, when the runner reports the start or the
//! outcome, and `task_records` shows a leased task as `preparing` until then. Every call about a leased task quotes its `attempt`, and every write is
//! conditioned on the queue row being leased with that attempt: a runner whose lease expired
//! (and the task was requeued or leased again) can no longer change the task. That is the
//! fencing the brief asks for. Statements lock the queue row before the task row.
//!
//! Fencing tests `lease_expires_at IS NOT NULL` (true exactly when `leased`, by a check
//! constraint) rather than `leased`: a condition on `leased` lets the planner read the small
//! `task_queue_leased` partial index whole instead of the primary key, a cost that grows with
//! the number of running tasks on every heartbeat and completion.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use ferrum_model::protocol::LogStream;
use ferrum_model::{Id, TaskStatus};
use sqlx::postgres::types::PgInterval;
use sqlx::Row;

use super::{rows, PgStore};
use crate::derived::{error_class, require_final, sort_in_dispatch_order, stored_msg};
use crate::{DispatchStore, Fenced, LeaseSpec, LeasedTask, Outcome, ReapReport, StoreResult};

pub(crate) fn interval(d: Duration) -> PgInterval {
    PgInterval {
        months: 0,
        days: 0,
        microseconds: d.as_micros().try_into().unwrap_or(i64::MAX),
    }
}

/// The common case of leasing in one plain statement: the top `{limit}` runnable tasks of
/// cluster `$1` are locked (`SKIP LOCKED`), and those whose code and project have no
/// concurrency limit are leased at once for runner `$2` and lease time `$3`. Only the queue
/// rows are written; the task records change when the runner reports the start. The answer's
/// rows are the leased tasks ([`rows::LEASED_TASK_COLUMNS`] and the lease's `attempt`), or one
/// row of nulls when none, each carrying `held`: how many top candidates have a limit and were
/// left for `ferrum_lease()`, which checks limits strictly under advisory locks. Measured, a
/// plpgsql call costs about a third more than this statement, so limits cost only the
/// projects and codes that set them.
///
/// The concurrency counts correlate with the code and project rows (`c.id`, `p.id`), not with
/// the candidate's columns: the code and project lookups then depend on the candidate's ids
/// alone, so Postgres can memoize them (a `Memoize` node) and a batch of one code's tasks
/// reads its code, project and counts once instead of once per candidate.
///
/// The limit is written into the statement (see [`lease_unlimited_sql`]) rather than bound: for
/// a bound `LIMIT` the generic plan assumes a tenth of the queue and sorts it whole, so
/// Postgres planned every call afresh (about 0.4 ms, as long as the execution). With a literal
/// limit the generic plan reads the dispatch index, and the plan cache keeps it. A plan made
/// while the queue was small (a seq scan) is replaced when autovacuum analyzes the grown
/// table: new statistics invalidate cached plans.
const LEASE_UNLIMITED: &str = "\
    WITH cand AS ( \
      SELECT q.task_id, c.max_concurrency IS NOT NULL OR p.max_concurrency IS NOT NULL AS limited \
      FROM task_queue q \
      JOIN codes c ON c.id = q.code_id \
      JOIN projects p ON p.id = q.project_id \
      WHERE NOT q.leased AND NOT q.paused AND NOT q.held AND q.cluster = $1 \
        AND q.run_at <= now() \
        AND NOT c.paused \
        AND (c.max_concurrency IS NULL OR c.max_concurrency > ( \
              SELECT count(*) FROM task_queue a WHERE a.code_id = c.id AND a.leased)) \
        AND (p.max_concurrency IS NULL OR p.max_concurrency > ( \
              SELECT count(*) FROM task_queue a WHERE a.project_id = p.id AND a.leased)) \
      ORDER BY q.priority DESC, q.run_at \
      LIMIT {limit} \
      FOR UPDATE OF q SKIP LOCKED), \
    lease AS ( \
      UPDATE task_queue q SET leased = true, attempt = q.attempt + 1, runner_id = $2, \
        lease_expires_at = now() + $3 \
      FROM cand WHERE q.task_id = cand.task_id AND NOT cand.limited \
      RETURNING q.task_id, q.attempt) \
    SELECT h.held, l.attempt, {columns} \
    FROM (SELECT count(*) FILTER (WHERE limited) AS held FROM cand) h \
    LEFT JOIN (lease l JOIN tasks t ON t.id = l.task_id) ON true";

/// Records a failure and, when the task has retries left, queues the linked retry (`$7`) in
/// the same statement, so a retry is never lost between two writes. `$8` is the runner.
const COMPLETE_OR_RETRY: &str = concat!(
    "WITH ",
    take_attempt_off_queue!("$8"),
    ", done AS (",
    record_outcome!(),
    " RETURNING t.*), \
     retry AS ( \
       INSERT INTO tasks (id, project_id, code_id, code_name, code_revision_id, \
         code_rev, status, priority, payload, timeout, delay, cluster, label, \
         schedule_id, batch_id, original_task_id, retry_count, retries_left, \
         retries_delay, run_at, batch_index, parent_id) \
       SELECT $7, d.project_id, d.code_id, d.code_name, d.code_revision_id, \
         d.code_rev, 'queued', d.priority, d.payload, d.timeout, d.retries_delay, \
         d.cluster, d.label, d.schedule_id, d.batch_id, d.id, d.retry_count + 1, \
         d.retries_left - 1, d.retries_delay, \
         now() + make_interval(secs => d.retries_delay), d.batch_index, d.parent_id \
       FROM done d WHERE d.retries_left > 0 \
       RETURNING id, project_id, code_id, cluster, priority, run_at, delay), \
     queue AS (",
    queue_rows_from!("retry"),
    "), \
     wake AS (SELECT pg_notify('ferrum_queue', left(cluster, 64)) FROM retry) \
     SELECT (SELECT count(*) FROM done) AS n, (SELECT id FROM retry) AS retry_id, \
            (SELECT count(*) FROM wake) AS woke"
);

/// [`LEASE_UNLIMITED`] for a batch size. Runners ask for few distinct sizes, so each connection
/// prepares only a handful of variants.
fn lease_unlimited_sql(limit: i32) -> String {
    LEASE_UNLIMITED
        .replace("{limit}", &limit.to_string())
        .replace("{columns}", rows::LEASED_TASK_COLUMNS)
}

impl PgStore {
    /// Admits queued tasks of the given limited codes into the dispatch index, up to each
    /// code's limit (`ferrum_admit()`, `migrations/0007_admission.sql`). Codes are taken in id
    /// order, as `ferrum_lease()` takes their advisory locks, so the two never deadlock.
    ///
    /// Callers run it after their commit, so it cannot fail them: the tasks are queued either
    /// way, and a failed admission is only logged (the reaper's next pass admits them).
    /// Answering an error for committed work would make clients queue it again.
    pub(crate) async fn admit(&self, mut codes: Vec<String>) {
        if codes.is_empty() {
            return;
        }
        codes.sort();
        codes.dedup();
        let admitted =
            sqlx::query("SELECT ferrum_admit(c) FROM (SELECT unnest($1::text[]) AS c) codes")
                .bind(&codes)
                .execute(&self.pool)
                .await;
        if let Err(e) = admitted {
            tracing::warn!(error = %e, "admission after queueing failed; the reaper will admit");
        }
    }

    /// The reaper's admission pass: runs `ferrum_admit()` for every limited code with due
    /// tasks waiting. It catches what no other path admits at once: requeued tasks, cancelled
    /// admitted ones, delays that ended, and a process that died between queueing tasks and
    /// admitting them. A code whose admitted tasks are already its best costs two short index
    /// reads.
    async fn admit_waiting(&self) -> StoreResult<()> {
        sqlx::query(
            "SELECT ferrum_admit(w.id) FROM ( \
               SELECT c.id FROM codes c \
               WHERE c.max_concurrency IS NOT NULL \
                 AND EXISTS (SELECT 1 FROM task_queue q WHERE q.code_id = c.id AND q.limited \
                   AND NOT q.leased AND q.held AND q.run_at <= now()) \
               ORDER BY c.id) w",
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Runs [`LEASE_UNLIMITED`]: the leased rows, and how many limited candidates it held back.
    async fn lease_unlimited(
        &self,
        spec: &LeaseSpec,
        max: i32,
    ) -> StoreResult<(Vec<sqlx::postgres::PgRow>, i64)> {
        let rows = sqlx::query(&lease_unlimited_sql(max))
            .bind(&spec.cluster)
            .bind(spec.runner_id.to_string())
            .bind(interval(spec.lease_for))
            .fetch_all(&self.pool)
            .await?;
        let held = match rows.first() {
            Some(row) => row.try_get("held")?,
            None => 0,
        };
        let mut leased = Vec::with_capacity(rows.len());
        for row in rows {
            if row.try_get::<Option<String>, _>("id")?.is_some() {
                leased.push(row);
            }
        }
        Ok((leased, held))
    }

    /// Why a fenced write matched nothing: a stale attempt of a task still recorded with
    /// `runner` (409), or a task that is not the runner's (404, whatever it is).
    pub(super) async fn fence_miss<T>(&self, task: Id, runner: Id) -> StoreResult<Fenced<T>> {
        let own: Option<bool> = sqlx::query_scalar(
            "SELECT coalesce(q.runner_id, t.runner_id) = $2 FROM tasks t \
             LEFT JOIN task_queue q ON q.task_id = t.id WHERE t.id = $1",
        )
        .bind(task.to_string())
        .bind(runner.to_string())
        .fetch_optional(&self.pool)
        .await?
        .flatten();
        Ok(if own == Some(true) {
            Fenced::Stale
        } else {
            Fenced::NotHeld
        })
    }

    /// `value` when the write matched the lease, else why not ([`Self::fence_miss`]).
    async fn fenced<T>(
        &self,
        current: bool,
        value: T,
        task: Id,
        runner: Id,
    ) -> StoreResult<Fenced<T>> {
        if current {
            Ok(Fenced::Current(value))
        } else {
            self.fence_miss(task, runner).await
        }
    }

    /// Extends a current lease of `runner`; when `started`, also moves the task record to
    /// `running` with the lease's attempt and runner. Answers whether a cancel was requested.
    /// A plain heartbeat writes only the narrow queue row (a HOT update, since
    /// `lease_expires_at` is in no index), not the task record.
    async fn renew_lease(
        &self,
        task: Id,
        runner: Id,
        attempt: i32,
        lease_for: Duration,
        started: bool,
    ) -> StoreResult<Fenced<bool>> {
        let sql = if started {
            "WITH renewed AS ( \
               UPDATE task_queue SET lease_expires_at = now() + $3 \
               WHERE task_id = $1 AND attempt = $2 AND lease_expires_at IS NOT NULL \
                 AND runner_id = $4 \
               RETURNING task_id, attempt, runner_id) \
             UPDATE tasks t SET status = 'running', start_time = now(), updated_at = now(), \
               attempt = renewed.attempt, runner_id = renewed.runner_id \
             FROM renewed WHERE t.id = renewed.task_id \
             RETURNING t.cancel_requested"
        } else {
            "UPDATE task_queue q SET lease_expires_at = now() + $3 FROM tasks t \
             WHERE q.task_id = $1 AND q.attempt = $2 AND q.lease_expires_at IS NOT NULL \
               AND q.runner_id = $4 AND t.id = q.task_id \
             RETURNING t.cancel_requested"
        };
        let row = sqlx::query(sql)
            .bind(task.to_string())
            .bind(attempt)
            .bind(interval(lease_for))
            .bind(runner.to_string())
            .fetch_optional(&self.pool)
            .await?;
        match row {
            Some(r) => Ok(Fenced::Current(r.try_get("cancel_requested")?)),
            None => self.fence_miss(task, runner).await,
        }
    }
}

#[async_trait]
impl DispatchStore for PgStore {
    async fn lease(&self, spec: &LeaseSpec) -> StoreResult<Vec<LeasedTask>> {
        let max = i32::try_from(spec.max_tasks).unwrap_or(i32::MAX);
        let (mut rows, held) = self.lease_unlimited(spec, max).await?;
        let taken = i32::try_from(rows.len()).unwrap_or(max);
        if held > 0 && taken < max {
            let strict = format!(
                "SELECT l.attempt, {} \
                 FROM (SELECT task_id, attempt FROM ferrum_lease($1, $2, $3, $4)) l \
                 JOIN tasks t ON t.id = l.task_id",
                rows::LEASED_TASK_COLUMNS
            );
            let strict = sqlx::query(&strict)
                .bind(&spec.cluster)
                .bind(max - taken)
                .bind(spec.runner_id.to_string())
                .bind(interval(spec.lease_for))
                .fetch_all(&self.pool)
                .await?;
            rows.extend(strict);
        }
        let mut leased = Vec::with_capacity(rows.len());
        for row in &rows {
            let revision = self
                .cached_revision(rows::id(row, "code_revision_id")?)
                .await?;
            leased.push(rows::leased_task(row, revision)?);
        }
        sort_in_dispatch_order(&mut leased);
        Ok(leased)
    }

    async fn mark_running(
        &self,
        task: Id,
        runner: Id,
        attempt: i32,
        lease_for: Duration,
    ) -> StoreResult<Fenced<bool>> {
        self.renew_lease(task, runner, attempt, lease_for, true)
            .await
    }

    async fn heartbeat(
        &self,
        task: Id,
        runner: Id,
        attempt: i32,
        lease_for: Duration,
    ) -> StoreResult<Fenced<bool>> {
        self.renew_lease(task, runner, attempt, lease_for, false)
            .await
    }

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
    ) -> StoreResult<Fenced<bool>> {
        let row = sqlx::query(
            "WITH cur AS ( \
               SELECT t.log_size < $6 AS room FROM task_queue q JOIN tasks t ON t.id = q.task_id \
               WHERE q.task_id = $1 AND q.attempt = $2 \
               AND q.lease_expires_at IS NOT NULL AND q.runner_id = $7), \
             ins AS ( \
               INSERT INTO task_log_chunks (task_id, attempt, seq, stream, data) \
               SELECT $1, $2, $3, $4, $5 FROM cur WHERE cur.room \
               ON CONFLICT DO NOTHING RETURNING 1), \
             grow AS ( \
               UPDATE tasks SET log_size = log_size + length($5) \
               WHERE id = $1 AND EXISTS (SELECT 1 FROM ins)) \
             SELECT EXISTS (SELECT 1 FROM cur) AS current, \
                    EXISTS (SELECT 1 FROM ins) AS stored",
        )
        .bind(task.to_string())
        .bind(attempt)
        .bind(seq)
        .bind(stream.as_str())
        .bind(data)
        .bind(max_log_bytes)
        .bind(runner.to_string())
        .fetch_one(&self.pool)
        .await?;
        let (current, stored) = (row.try_get("current")?, row.try_get("stored")?);
        self.fenced(current, stored, task, runner).await
    }

    async fn complete(
        &self,
        task: Id,
        runner: Id,
        attempt: i32,
        outcome: Outcome,
    ) -> StoreResult<Fenced<Option<Id>>> {
        require_final(&outcome)?;
        if !matches!(outcome.status, TaskStatus::Error | TaskStatus::Timeout) {
            let current = self
                .completions
                .complete(task, runner, attempt, outcome)
                .await?;
            return self.fenced(current, None, task, runner).await;
        }
        let row = sqlx::query(COMPLETE_OR_RETRY)
            .bind(task.to_string())
            .bind(attempt)
            .bind(outcome.status.as_str())
            .bind(outcome.exit_code)
            .bind(error_class(&outcome))
            .bind(stored_msg(&outcome))
            .bind(Id::generate().to_string())
            .bind(runner.to_string())
            .fetch_optional(&self.pool)
            .await?;
        match row {
            None => self.fence_miss(task, runner).await,
            Some(row) => {
                let done: i64 = row.try_get("n")?;
                let retry = rows::opt_id(&row, "retry_id")?;
                self.fenced(done == 1, retry, task, runner).await
            }
        }
    }

    async fn holds_revision(&self, runner: Id, revision: Id) -> StoreResult<bool> {
        Ok(sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM task_queue q JOIN tasks t ON t.id = q.task_id \
               WHERE q.runner_id = $1 AND q.lease_expires_at IS NOT NULL \
                 AND t.code_revision_id = $2)",
        )
        .bind(runner.to_string())
        .bind(revision.to_string())
        .fetch_one(&self.pool)
        .await?)
    }

    async fn reap_expired(&self, max_attempts: i32) -> StoreResult<ReapReport> {
        let rows = sqlx::query(
            "WITH expired AS ( \
               SELECT task_id, attempt FROM task_queue \
               WHERE leased AND lease_expires_at < now() \
               FOR UPDATE SKIP LOCKED), \
             fate AS ( \
               SELECT t.id, t.code_id, e.attempt, \
                 CASE WHEN t.cancel_requested THEN 'cancelled' \
                      WHEN e.attempt >= $1 THEN 'killed' ELSE 'queued' END AS status \
               FROM tasks t JOIN expired e ON t.id = e.task_id), \
             code AS ( \
               SELECT id, paused, max_concurrency IS NOT NULL AS limited FROM codes \
               WHERE id IN (SELECT code_id FROM fate) FOR KEY SHARE), \
             requeued AS ( \
               UPDATE task_queue q SET leased = false, lease_expires_at = NULL, \
                 runner_id = NULL, delayed = false, paused = c.paused, \
                 limited = c.limited, held = c.limited \
               FROM fate f JOIN code c ON c.id = f.code_id \
               WHERE q.task_id = f.id AND f.status = 'queued'), \
             dropped AS ( \
               DELETE FROM task_queue q USING fate f \
               WHERE q.task_id = f.id AND f.status <> 'queued'), \
             reaped AS ( \
               UPDATE tasks t SET status = f.status, \
                 msg = CASE WHEN f.status = 'killed' THEN 'Runner lost: lease expired on attempt ' \
                                 || f.attempt || ' of ' || $1 \
                            ELSE t.msg END, \
                 end_time = CASE WHEN f.status = 'queued' THEN NULL ELSE now() END, \
                 start_time = CASE WHEN f.status = 'queued' THEN NULL ELSE t.start_time END, \
                 attempt = f.attempt, runner_id = NULL, updated_at = now() \
               FROM fate f WHERE t.id = f.id \
               RETURNING t.status, t.cluster), \
             wake AS ( \
               SELECT pg_notify('ferrum_queue', left(cluster, 64)) FROM reaped WHERE status = 'queued') \
             SELECT status, (SELECT count(*) FROM wake) AS woke FROM reaped",
        )
        .bind(max_attempts)
        .fetch_all(&self.pool)
        .await?;
        // The reap has committed: its report must reach the caller even if this pass fails.
        if let Err(e) = self.admit_waiting().await {
            tracing::warn!(error = %e, "the reaper's admission pass failed");
        }
        let mut report = ReapReport::default();
        for row in rows {
            match row.try_get::<String, _>("status")?.as_str() {
                "queued" => report.requeued += 1,
                _ => report.lost += 1,
            }
        }
        Ok(report)
    }

    async fn next_delayed_at(&self, now: DateTime<Utc>) -> StoreResult<Option<DateTime<Utc>>> {
        // Reads the `task_queue_delayed` partial index, which holds only delayed tasks.
        Ok(sqlx::query_scalar(
            "SELECT run_at FROM task_queue WHERE NOT leased AND delayed AND run_at > $1 \
             ORDER BY run_at LIMIT 1",
        )
        .bind(now)
        .fetch_optional(&self.pool)
        .await?)
    }
}
