//! The dispatch queue: leases, heartbeats, log chunks, completion and lease expiry.
//!
//! The rules are those of the Postgres backend (`migrations/0002_lease.sql`, `pg/dispatch.rs`):
//! highest priority first, then oldest `run_at`, then id; paused codes skipped; per-code and
//! per-project concurrency limits make tasks wait; every write about a leased task requires
//! `attempt = ?n AND runner_id = ?m AND status IN ('preparing', 'running')` (fencing). Where Postgres needs
//! `SKIP LOCKED` and advisory locks, SQLite's single writer does the job: a lease is one
//! `BEGIN IMMEDIATE` transaction, so nothing changes between choosing tasks and taking them.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use ferrum_model::protocol::LogStream;
use ferrum_model::{CodeRevision, Id, TaskStatus};
use sqlx::sqlite::SqliteRow;

use super::rows::{self, micros, now, Cols};
use super::SqliteStore;
use crate::derived::{error_class, require_final, sort_in_dispatch_order};
use crate::{
    DispatchStore, Fenced, LeaseSpec, LeasedTask, Outcome, ReapReport, StoreError, StoreResult,
};

/// A lease length as stored (microseconds).
fn span(d: Duration) -> i64 {
    d.as_micros().try_into().unwrap_or(i64::MAX)
}

/// Runnable tasks of a cluster in dispatch order, with what the limits need. The soft filter
/// on running counts keeps a saturated code from crowding out runnable work behind it; the
/// exact per-batch check happens in [`admit`].
const CANDIDATES: &str = "SELECT t.id, t.code_id, t.project_id, \
      c.max_concurrency AS code_max, p.max_concurrency AS project_max, \
      (SELECT count(*) FROM tasks a \
        WHERE a.code_id = t.code_id AND a.status IN ('preparing', 'running')) AS code_running, \
      (SELECT count(*) FROM tasks a \
        WHERE a.project_id = t.project_id AND a.status IN ('preparing', 'running')) \
        AS project_running \
    FROM tasks t \
    JOIN codes c ON c.id = t.code_id \
    JOIN projects p ON p.id = t.project_id \
    WHERE t.status = 'queued' AND t.cluster = ?1 AND t.run_at <= ?2 AND NOT c.paused \
      AND (c.max_concurrency IS NULL OR c.max_concurrency > code_running) \
      AND (p.max_concurrency IS NULL OR p.max_concurrency > project_running) \
    ORDER BY t.priority DESC, t.run_at, t.id \
    LIMIT ?3";

/// Picks, in dispatch order, the candidates the code and project limits admit: each limited
/// code or project takes only as many as it has free slots.
fn admit(candidates: &[SqliteRow]) -> StoreResult<Vec<String>> {
    let mut code_left: HashMap<String, i64> = HashMap::new();
    let mut project_left: HashMap<String, i64> = HashMap::new();
    let mut accepted = Vec::new();
    for c in candidates {
        let code = c.text("code_id")?;
        let project = c.text("project_id")?;
        if let Some(max) = c.opt_big("code_max")? {
            let running = c.big("code_running")?;
            code_left.entry(code.clone()).or_insert(max - running);
        }
        if let Some(max) = c.opt_big("project_max")? {
            let running = c.big("project_running")?;
            project_left.entry(project.clone()).or_insert(max - running);
        }
        let full = |left: &HashMap<String, i64>, key: &str| left.get(key).is_some_and(|n| *n <= 0);
        if full(&code_left, &code) || full(&project_left, &project) {
            continue;
        }
        if let Some(n) = code_left.get_mut(&code) {
            *n -= 1;
        }
        if let Some(n) = project_left.get_mut(&project) {
            *n -= 1;
        }
        accepted.push(c.text("id")?);
    }
    Ok(accepted)
}

impl SqliteStore {
    /// Why a fenced write matched nothing: a stale attempt of a task still recorded with
    /// `runner` (409), or a task that is not the runner's (404, whatever it is).
    pub(super) async fn fence_miss<T>(&self, task: Id, runner: Id) -> StoreResult<Fenced<T>> {
        let own: Option<bool> =
            sqlx::query_scalar("SELECT coalesce(runner_id = ?2, false) FROM tasks WHERE id = ?1")
                .bind(task.to_string())
                .bind(runner.to_string())
                .fetch_optional(&self.reader)
                .await?;
        Ok(if own == Some(true) {
            Fenced::Stale
        } else {
            Fenced::NotHeld
        })
    }
}

#[async_trait]
impl DispatchStore for SqliteStore {
    async fn lease(&self, spec: &LeaseSpec) -> StoreResult<Vec<LeasedTask>> {
        let mut tx = self.write().await?;
        let at = now();
        let candidates = sqlx::query(CANDIDATES)
            .bind(&spec.cluster)
            .bind(at)
            .bind(i64::from(spec.max_tasks))
            .fetch_all(&mut *tx)
            .await?;
        let accepted = admit(&candidates)?;
        if accepted.is_empty() {
            return Ok(Vec::new());
        }
        let ids =
            serde_json::to_string(&accepted).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let taken = sqlx::query(&format!(
            "UPDATE tasks SET status = 'preparing', attempt = attempt + 1, runner_id = ?2, \
             lease_expires_at = ?3, cancel_requested = 0, updated_at = ?4 \
             WHERE id IN (SELECT value FROM json_each(?1)) RETURNING attempt, {}",
            rows::LEASED_TASK_COLUMNS
        ))
        .bind(ids)
        .bind(spec.runner_id.to_string())
        .bind(at.saturating_add(span(spec.lease_for)))
        .bind(at)
        .fetch_all(&mut *tx)
        .await?;
        let mut revisions: HashMap<Id, CodeRevision> = HashMap::new();
        let mut leased = Vec::with_capacity(taken.len());
        for row in &taken {
            let revision = match revisions.entry(rows::id(row, "code_revision_id")?) {
                Entry::Occupied(known) => known.get().clone(),
                Entry::Vacant(slot) => {
                    let row = sqlx::query(&format!(
                        "SELECT c.name, {} FROM code_revisions r \
                         JOIN codes c ON c.id = r.code_id WHERE r.id = ?1",
                        rows::REVISION_COLUMNS
                    ))
                    .bind(slot.key().to_string())
                    .fetch_one(&mut *tx)
                    .await?;
                    slot.insert(rows::revision(&row)?).clone()
                }
            };
            leased.push(rows::leased_task(row, revision)?);
        }
        sort_in_dispatch_order(&mut leased);
        tx.commit().await?;
        Ok(leased)
    }

    async fn mark_running(
        &self,
        task: Id,
        runner: Id,
        attempt: i32,
        lease_for: Duration,
    ) -> StoreResult<Fenced<bool>> {
        let at = now();
        let row = sqlx::query(
            "UPDATE tasks SET status = 'running', start_time = ?3, updated_at = ?3, \
             lease_expires_at = ?4 \
             WHERE id = ?1 AND attempt = ?2 AND status IN ('preparing', 'running') \
               AND runner_id = ?5 \
             RETURNING cancel_requested",
        )
        .bind(task.to_string())
        .bind(attempt)
        .bind(at)
        .bind(at.saturating_add(span(lease_for)))
        .bind(runner.to_string())
        .fetch_optional(&self.writer)
        .await?;
        match row {
            Some(r) => Ok(Fenced::Current(r.flag("cancel_requested")?)),
            None => self.fence_miss(task, runner).await,
        }
    }

    async fn heartbeat(
        &self,
        task: Id,
        runner: Id,
        attempt: i32,
        lease_for: Duration,
    ) -> StoreResult<Fenced<bool>> {
        let row = sqlx::query(
            "UPDATE tasks SET lease_expires_at = ?3 \
             WHERE id = ?1 AND attempt = ?2 AND status IN ('preparing', 'running') \
               AND runner_id = ?4 \
             RETURNING cancel_requested",
        )
        .bind(task.to_string())
        .bind(attempt)
        .bind(now().saturating_add(span(lease_for)))
        .bind(runner.to_string())
        .fetch_optional(&self.writer)
        .await?;
        match row {
            Some(r) => Ok(Fenced::Current(r.flag("cancel_requested")?)),
            None => self.fence_miss(task, runner).await,
        }
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
        let mut tx = self.write().await?;
        let room: Option<bool> = sqlx::query_scalar(
            "SELECT log_size < ?3 FROM tasks \
             WHERE id = ?1 AND attempt = ?2 AND status IN ('preparing', 'running') \
               AND runner_id = ?4",
        )
        .bind(task.to_string())
        .bind(attempt)
        .bind(max_log_bytes)
        .bind(runner.to_string())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(room) = room else {
            drop(tx);
            return self.fence_miss(task, runner).await;
        };
        if !room {
            return Ok(Fenced::Current(false));
        }
        let stored = sqlx::query(
            "INSERT INTO task_log_chunks (task_id, attempt, seq, stream, data) \
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING",
        )
        .bind(task.to_string())
        .bind(attempt)
        .bind(seq)
        .bind(stream.as_str())
        .bind(data)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if stored {
            sqlx::query("UPDATE tasks SET log_size = log_size + ?2 WHERE id = ?1")
                .bind(task.to_string())
                .bind(i64::try_from(data.len()).unwrap_or(i64::MAX))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(Fenced::Current(stored))
    }

    async fn complete(
        &self,
        task: Id,
        runner: Id,
        attempt: i32,
        outcome: Outcome,
    ) -> StoreResult<Fenced<Option<Id>>> {
        require_final(&outcome)?;
        let error_class = error_class(&outcome);
        let mut tx = self.write().await?;
        let at = now();
        // A successful run keeps the msg set by progress (contract §5.9).
        let done = sqlx::query(
            "UPDATE tasks SET status = ?3, exit_code = ?4, error_class = ?6, \
               msg = CASE WHEN ?3 = 'complete' THEN msg ELSE coalesce(?5, msg) END, \
               end_time = ?7, start_time = coalesce(start_time, ?7), \
               updated_at = ?7, lease_expires_at = NULL \
             WHERE id = ?1 AND attempt = ?2 AND status IN ('preparing', 'running') \
               AND runner_id = ?8 \
             RETURNING retries_left",
        )
        .bind(task.to_string())
        .bind(attempt)
        .bind(outcome.status.as_str())
        .bind(outcome.exit_code)
        .bind(outcome.msg)
        .bind(error_class)
        .bind(at)
        .bind(runner.to_string())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(done) = done else {
            drop(tx);
            return self.fence_miss(task, runner).await;
        };
        let failed = matches!(outcome.status, TaskStatus::Error | TaskStatus::Timeout);
        let retry = if failed && done.int("retries_left")? > 0 {
            let retry_id = Id::generate();
            sqlx::query(
                "INSERT INTO tasks (id, project_id, code_id, code_name, code_revision_id, \
                   code_rev, status, priority, payload, timeout, delay, cluster, label, \
                   schedule_id, batch_id, original_task_id, retry_count, retries_left, \
                   retries_delay, created_at, updated_at, run_at, batch_index, parent_id) \
                 SELECT ?2, d.project_id, d.code_id, d.code_name, d.code_revision_id, \
                   d.code_rev, 'queued', d.priority, d.payload, d.timeout, d.retries_delay, \
                   d.cluster, d.label, d.schedule_id, d.batch_id, d.id, d.retry_count + 1, \
                   d.retries_left - 1, d.retries_delay, ?3, ?3, ?3 + d.retries_delay * 1000000, \
                   d.batch_index, d.parent_id \
                 FROM tasks d WHERE d.id = ?1",
            )
            .bind(task.to_string())
            .bind(retry_id.to_string())
            .bind(at)
            .execute(&mut *tx)
            .await?;
            Some(retry_id)
        } else {
            None
        };
        tx.commit().await?;
        Ok(Fenced::Current(retry))
    }

    async fn holds_revision(&self, runner: Id, revision: Id) -> StoreResult<bool> {
        Ok(sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM tasks WHERE runner_id = ?1 \
               AND status IN ('preparing', 'running') AND code_revision_id = ?2)",
        )
        .bind(runner.to_string())
        .bind(revision.to_string())
        .fetch_one(&self.reader)
        .await?)
    }

    async fn reap_expired(&self, max_attempts: i32) -> StoreResult<ReapReport> {
        let rows = sqlx::query(
            "UPDATE tasks SET \
               status = CASE WHEN cancel_requested THEN 'cancelled' \
                             WHEN attempt >= ?1 THEN 'killed' ELSE 'queued' END, \
               msg = CASE WHEN cancel_requested THEN msg \
                          WHEN attempt >= ?1 THEN 'Runner lost: lease expired on attempt ' \
                               || attempt || ' of ' || ?1 \
                          ELSE msg END, \
               end_time = CASE WHEN cancel_requested OR attempt >= ?1 THEN ?2 END, \
               start_time = CASE WHEN cancel_requested OR attempt >= ?1 THEN start_time END, \
               runner_id = NULL, lease_expires_at = NULL, updated_at = ?2 \
             WHERE status IN ('preparing', 'running') AND lease_expires_at < ?2 \
             RETURNING status",
        )
        .bind(max_attempts)
        .bind(now())
        .fetch_all(&self.writer)
        .await?;
        let mut report = ReapReport::default();
        for row in rows {
            match row.text("status")?.as_str() {
                "queued" => report.requeued += 1,
                _ => report.lost += 1,
            }
        }
        Ok(report)
    }

    async fn next_delayed_at(&self, now_at: DateTime<Utc>) -> StoreResult<Option<DateTime<Utc>>> {
        // Reads the `tasks_delayed` partial index, which holds only delayed tasks.
        let row = sqlx::query(
            "SELECT min(run_at) AS next FROM tasks \
             WHERE status = 'queued' AND delay > 0 AND run_at > ?1",
        )
        .bind(micros(now_at))
        .fetch_one(&self.reader)
        .await?;
        row.opt_time("next")
    }
}
