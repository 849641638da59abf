//! Code packages and revisions.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use ferrum_model::{Code, CodeRevision, Id, NewRevision, Page, TaskStatus};
use sqlx::Row;

use super::batches::PARKED_AT;
use super::{rows, PgStore};
use crate::derived::keep_margin;
use crate::{CodeStore, StoreError, StoreResult};

#[async_trait]
impl CodeStore for PgStore {
    async fn put_revision(&self, project: Id, rev: NewRevision) -> StoreResult<Code> {
        let mut tx = self.pool.begin().await?;
        let project_s = project.to_string();
        let fresh_id = Id::generate().to_string();
        // Creates the code on first upload; a concurrent first upload of the same name loses
        // the insert and then locks the winner's row.
        sqlx::query(
            "INSERT INTO codes (id, project_id, name, latest_rev, latest_revision_id) \
             VALUES ($1, $2, $3, 0, '') \
             ON CONFLICT (project_id, name) WHERE deleted_at IS NULL DO NOTHING",
        )
        .bind(&fresh_id)
        .bind(&project_s)
        .bind(&rev.name)
        .execute(&mut *tx)
        .await?;
        let row = sqlx::query(
            "SELECT id, latest_rev, max_concurrency FROM codes \
             WHERE project_id = $1 AND name = $2 AND deleted_at IS NULL FOR UPDATE",
        )
        .bind(&project_s)
        .bind(&rev.name)
        .fetch_one(&mut *tx)
        .await?;
        let code_id: String = row.try_get("id")?;
        let next_rev: i32 = row.try_get::<i32, _>("latest_rev")? + 1;
        let old_limit: Option<i32> = row.try_get("max_concurrency")?;
        let new_limit = rev.spec.max_concurrency.filter(|n| *n > 0);
        let revision_id = Id::generate().to_string();
        let spec = &rev.spec;
        let env = serde_json::to_value(&spec.env_vars)
            .map_err(|e| StoreError::Corrupt(format!("env_vars: {e}")))?;
        sqlx::query(
            "INSERT INTO code_revisions (id, code_id, project_id, rev, runtime, stack, file_name, \
             image, command, config, env_vars, max_concurrency, retries, retries_delay, \
             default_priority, memory_mb, cpus, pids, zip_key, zip_checksum, zip_size, disk_mb) \
             VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19,$20,$21,$22)",
        )
        .bind(&revision_id)
        .bind(&code_id)
        .bind(&project_s)
        .bind(next_rev)
        .bind(&spec.runtime)
        .bind(&spec.stack)
        .bind(&spec.file_name)
        .bind(&spec.image)
        .bind(&spec.command)
        .bind(&spec.config)
        .bind(env)
        .bind(spec.max_concurrency)
        .bind(spec.retries)
        .bind(spec.retries_delay)
        .bind(spec.default_priority)
        .bind(spec.memory_mb)
        .bind(spec.cpus)
        .bind(spec.pids)
        .bind(rev.zip.as_ref().map(|z| &z.key))
        .bind(rev.zip.as_ref().map(|z| &z.checksum))
        .bind(rev.zip.as_ref().map(|z| z.size))
        .bind(spec.disk_mb)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE codes SET latest_rev = $2, latest_revision_id = $3, max_concurrency = $4, \
             updated_at = now() WHERE id = $1",
        )
        .bind(&code_id)
        .bind(next_rev)
        .bind(&revision_id)
        .bind(new_limit)
        .execute(&mut *tx)
        .await?;
        if old_limit.is_some() != new_limit.is_some() {
            // The code row is locked `FOR UPDATE`, so no one is queueing its tasks: the flags
            // of all its queued rows can change at once (`migrations/0007_admission.sql`).
            // Newly limited rows are all held until the admission below; a batch's parked
            // items stay held whatever the limit.
            sqlx::query(&format!(
                "UPDATE task_queue SET limited = $2, held = $2 OR run_at = {PARKED_AT} \
                 WHERE code_id = $1 AND NOT leased AND limited <> $2"
            ))
            .bind(&code_id)
            .bind(new_limit.is_some())
            .execute(&mut *tx)
            .await?;
        }
        let row = sqlx::query(&format!("{} WHERE c.id = $1", rows::code_select()))
            .bind(&code_id)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        if new_limit.is_some() && new_limit != old_limit {
            self.admit(vec![code_id]).await;
        }
        rows::code(&row)
    }

    async fn code(&self, project: Id, id: Id) -> StoreResult<Option<Code>> {
        let row = sqlx::query(&format!(
            "{} WHERE c.project_id = $1 AND c.id = $2 AND c.deleted_at IS NULL",
            rows::code_select()
        ))
        .bind(project.to_string())
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(rows::code).transpose()
    }

    async fn code_by_name(&self, project: Id, name: &str) -> StoreResult<Option<Code>> {
        let row = sqlx::query(&format!(
            "{} WHERE c.project_id = $1 AND c.name = $2 AND c.deleted_at IS NULL",
            rows::code_select()
        ))
        .bind(project.to_string())
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(rows::code).transpose()
    }

    async fn codes(&self, project: Id, page: Page) -> StoreResult<Vec<Code>> {
        let rows = sqlx::query(&format!(
            "{} WHERE c.project_id = $1 AND c.deleted_at IS NULL \
             ORDER BY c.id DESC LIMIT $2 OFFSET $3",
            rows::code_select()
        ))
        .bind(project.to_string())
        .bind(page.limit())
        .bind(page.offset())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(rows::code).collect()
    }

    async fn revisions(&self, project: Id, code: Id, page: Page) -> StoreResult<Vec<CodeRevision>> {
        let rows = sqlx::query(&format!(
            "SELECT c.name, {} FROM code_revisions r JOIN codes c ON c.id = r.code_id \
             WHERE c.project_id = $1 AND c.id = $2 AND c.deleted_at IS NULL \
             ORDER BY r.rev DESC LIMIT $3 OFFSET $4",
            rows::REVISION_COLUMNS
        ))
        .bind(project.to_string())
        .bind(code.to_string())
        .bind(page.limit())
        .bind(page.offset())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(rows::revision).collect()
    }

    async fn revision_of(
        &self,
        project: Id,
        code: Id,
        rev: Option<i32>,
    ) -> StoreResult<Option<CodeRevision>> {
        let row = sqlx::query(&format!(
            "SELECT c.name, {} FROM code_revisions r JOIN codes c ON c.id = r.code_id \
             WHERE c.project_id = $1 AND c.id = $2 AND c.deleted_at IS NULL \
             AND r.rev = coalesce($3, c.latest_rev)",
            rows::REVISION_COLUMNS
        ))
        .bind(project.to_string())
        .bind(code.to_string())
        .bind(rev)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(rows::revision).transpose()
    }

    async fn revision(&self, id: Id) -> StoreResult<Option<CodeRevision>> {
        let row = sqlx::query(&format!(
            "SELECT c.name, {} FROM code_revisions r JOIN codes c ON c.id = r.code_id \
             WHERE r.id = $1",
            rows::REVISION_COLUMNS
        ))
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(rows::revision).transpose()
    }

    async fn delete_code(&self, project: Id, id: Id) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await?;
        let deleted = sqlx::query(
            "UPDATE codes SET deleted_at = now(), updated_at = now() \
             WHERE project_id = $1 AND id = $2 AND deleted_at IS NULL",
        )
        .bind(project.to_string())
        .bind(id.to_string())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if deleted == 0 {
            return Ok(false);
        }
        let project = project.to_string();
        super::tasks::cancel_unfinished(&mut tx, &project, "t.code_id = $2", &id.to_string())
            .await?;
        sqlx::query(
            "UPDATE schedules SET status = 'cancelled', msg = 'Code deleted', updated_at = now() \
             WHERE code_id = $1 AND status = 'scheduled'",
        )
        .bind(id.to_string())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Two statements in one transaction: the first locks the code row `FOR UPDATE`, which
    /// waits for every transaction queueing its tasks (they hold `FOR KEY SHARE`) to commit;
    /// the second, with a snapshot taken after that, sets the flag on all of the code's
    /// queued rows, theirs included (the invariant of `migrations/0006_paused_queue.sql`).
    /// Leased rows are left alone: a requeue reads the code's flag again. No index leads to a
    /// code's queued rows, so the second statement reads the narrow queue table through once;
    /// pausing is rare, and an index would cost every enqueue and lease.
    async fn set_paused(&self, project: Id, id: Id, paused: bool) -> StoreResult<Option<bool>> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(
            "UPDATE codes c SET paused = $3, updated_at = now() \
             FROM (SELECT id, paused AS was FROM codes WHERE id = $2 FOR UPDATE) old \
             WHERE c.id = old.id AND c.project_id = $1 AND c.deleted_at IS NULL \
             RETURNING old.was",
        )
        .bind(project.to_string())
        .bind(id.to_string())
        .bind(paused)
        .fetch_optional(&mut *tx)
        .await?;
        if row.is_some() {
            sqlx::query(
                "UPDATE task_queue SET paused = $2 \
                 WHERE code_id = $1 AND NOT leased AND paused <> $2",
            )
            .bind(id.to_string())
            .bind(paused)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(row
            .map(|r| r.try_get::<bool, _>("was"))
            .transpose()?
            .map(|was| was != paused))
    }

    async fn unneeded_zips(&self, keep: Option<u32>, limit: i64) -> StoreResult<Vec<(Id, String)>> {
        // Unfinished tasks are exactly those in the dispatch queue (queued or leased).
        let rows = sqlx::query(
            "SELECT r.id, r.zip_key FROM code_revisions r JOIN codes c ON c.id = r.code_id \
             WHERE r.zip_key IS NOT NULL AND r.zip_freed_at IS NULL \
               AND (c.deleted_at IS NOT NULL OR r.rev <= c.latest_rev - $1) \
               AND NOT EXISTS (SELECT 1 FROM task_queue q JOIN tasks t ON t.id = q.task_id \
                               WHERE q.code_id = r.code_id AND t.code_revision_id = r.id) \
             ORDER BY r.code_id, r.rev LIMIT $2",
        )
        .bind(keep_margin(keep))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| Ok((rows::id(row, "id")?, row.try_get("zip_key")?)))
            .collect()
    }

    async fn zip_freed(&self, revision: Id, key: &str) -> StoreResult<bool> {
        let last: bool = sqlx::query_scalar(
            "WITH mark AS (UPDATE code_revisions SET zip_freed_at = now() WHERE id = $1) \
             SELECT NOT EXISTS (SELECT 1 FROM code_revisions \
                                WHERE zip_key = $2 AND id <> $1 AND zip_freed_at IS NULL)",
        )
        .bind(revision.to_string())
        .bind(key)
        .fetch_one(&self.pool)
        .await?;
        Ok(last)
    }

    async fn code_stats(
        &self,
        project: Id,
        code: Id,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> StoreResult<BTreeMap<TaskStatus, i64>> {
        let rows = sqlx::query(
            "SELECT status, count(*) AS n FROM task_records \
             WHERE project_id = $1 AND code_id = $2 AND updated_at BETWEEN $3 AND $4 \
             GROUP BY status",
        )
        .bind(project.to_string())
        .bind(code.to_string())
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await?;
        let mut stats: BTreeMap<TaskStatus, i64> =
            TaskStatus::ALL.into_iter().map(|s| (s, 0)).collect();
        for row in rows {
            let status: String = row.try_get("status")?;
            let status = status
                .parse()
                .map_err(|e| StoreError::Corrupt(format!("{e}")))?;
            stats.insert(status, row.try_get("n")?);
        }
        Ok(stats)
    }
}
