//! Code packages and revisions.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use ferrum_model::{Code, CodeRevision, Id, NewRevision, Page, TaskStatus};
use sqlx::Row;

use super::rows::{self, micros, now};
use super::SqliteStore;
use crate::{CodeStore, StoreError, StoreResult};

#[async_trait]
impl CodeStore for SqliteStore {
    async fn put_revision(&self, project: Id, rev: NewRevision) -> StoreResult<Code> {
        let mut tx = self.write().await?;
        let project_s = project.to_string();
        let at = now();
        sqlx::query(
            "INSERT INTO codes (id, project_id, name, latest_rev, latest_revision_id, \
             created_at, updated_at) VALUES (?1, ?2, ?3, 0, '', ?4, ?4) \
             ON CONFLICT (project_id, name) WHERE deleted_at IS NULL DO NOTHING",
        )
        .bind(Id::generate().to_string())
        .bind(&project_s)
        .bind(&rev.name)
        .bind(at)
        .execute(&mut *tx)
        .await?;
        let row = sqlx::query(
            "SELECT id, latest_rev FROM codes \
             WHERE project_id = ?1 AND name = ?2 AND deleted_at IS NULL",
        )
        .bind(&project_s)
        .bind(&rev.name)
        .fetch_one(&mut *tx)
        .await?;
        let code_id: String = row.try_get("id")?;
        let next_rev: i32 = row.try_get::<i32, _>("latest_rev")? + 1;
        let revision_id = Id::generate().to_string();
        let spec = &rev.spec;
        let env = serde_json::to_string(&spec.env_vars)
            .map_err(|e| StoreError::Corrupt(format!("env_vars: {e}")))?;
        sqlx::query(
            "INSERT INTO code_revisions (id, code_id, project_id, rev, runtime, stack, file_name, \
             image, command, config, env_vars, max_concurrency, retries, retries_delay, \
             default_priority, memory_mb, cpus, pids, zip_key, zip_checksum, zip_size, \
             created_at, disk_mb) \
             VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17,?18,?19,?20,?21,?22,?23)",
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
        .bind(at)
        .bind(spec.disk_mb)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE codes SET latest_rev = ?2, latest_revision_id = ?3, max_concurrency = ?4, \
             updated_at = ?5 WHERE id = ?1",
        )
        .bind(&code_id)
        .bind(next_rev)
        .bind(&revision_id)
        .bind(spec.max_concurrency.filter(|n| *n > 0))
        .bind(at)
        .execute(&mut *tx)
        .await?;
        let row = sqlx::query(&format!("{} WHERE c.id = ?1", rows::code_select()))
            .bind(&code_id)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        rows::code(&row)
    }

    async fn code(&self, project: Id, id: Id) -> StoreResult<Option<Code>> {
        let row = sqlx::query(&format!(
            "{} WHERE c.project_id = ?1 AND c.id = ?2 AND c.deleted_at IS NULL",
            rows::code_select()
        ))
        .bind(project.to_string())
        .bind(id.to_string())
        .fetch_optional(&self.reader)
        .await?;
        row.as_ref().map(rows::code).transpose()
    }

    async fn code_by_name(&self, project: Id, name: &str) -> StoreResult<Option<Code>> {
        let row = sqlx::query(&format!(
            "{} WHERE c.project_id = ?1 AND c.name = ?2 AND c.deleted_at IS NULL",
            rows::code_select()
        ))
        .bind(project.to_string())
        .bind(name)
        .fetch_optional(&self.reader)
        .await?;
        row.as_ref().map(rows::code).transpose()
    }

    async fn codes(&self, project: Id, page: Page) -> StoreResult<Vec<Code>> {
        let rows = sqlx::query(&format!(
            "{} WHERE c.project_id = ?1 AND c.deleted_at IS NULL \
             ORDER BY c.id DESC LIMIT ?2 OFFSET ?3",
            rows::code_select()
        ))
        .bind(project.to_string())
        .bind(page.limit())
        .bind(page.offset())
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(rows::code).collect()
    }

    async fn revisions(&self, project: Id, code: Id, page: Page) -> StoreResult<Vec<CodeRevision>> {
        let rows = sqlx::query(&format!(
            "SELECT c.name, {} FROM code_revisions r JOIN codes c ON c.id = r.code_id \
             WHERE c.project_id = ?1 AND c.id = ?2 AND c.deleted_at IS NULL \
             ORDER BY r.rev DESC LIMIT ?3 OFFSET ?4",
            rows::REVISION_COLUMNS
        ))
        .bind(project.to_string())
        .bind(code.to_string())
        .bind(page.limit())
        .bind(page.offset())
        .fetch_all(&self.reader)
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
             WHERE c.project_id = ?1 AND c.id = ?2 AND c.deleted_at IS NULL \
             AND r.rev = coalesce(?3, c.latest_rev)",
            rows::REVISION_COLUMNS
        ))
        .bind(project.to_string())
        .bind(code.to_string())
        .bind(rev)
        .fetch_optional(&self.reader)
        .await?;
        row.as_ref().map(rows::revision).transpose()
    }

    async fn revision(&self, id: Id) -> StoreResult<Option<CodeRevision>> {
        let row = sqlx::query(&format!(
            "SELECT c.name, {} FROM code_revisions r JOIN codes c ON c.id = r.code_id \
             WHERE r.id = ?1",
            rows::REVISION_COLUMNS
        ))
        .bind(id.to_string())
        .fetch_optional(&self.reader)
        .await?;
        row.as_ref().map(rows::revision).transpose()
    }

    async fn delete_code(&self, project: Id, id: Id) -> StoreResult<bool> {
        let mut tx = self.write().await?;
        let at = now();
        let deleted = sqlx::query(
            "UPDATE codes SET deleted_at = ?3, updated_at = ?3 \
             WHERE project_id = ?1 AND id = ?2 AND deleted_at IS NULL",
        )
        .bind(project.to_string())
        .bind(id.to_string())
        .bind(at)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if deleted == 0 {
            return Ok(false);
        }
        super::tasks::cancel_unfinished(&mut tx, "code_id = ?1", &id.to_string()).await?;
        sqlx::query(
            "UPDATE schedules SET status = 'cancelled', msg = 'Code deleted', updated_at = ?2 \
             WHERE code_id = ?1 AND status = 'scheduled'",
        )
        .bind(id.to_string())
        .bind(at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn set_paused(&self, project: Id, id: Id, paused: bool) -> StoreResult<Option<bool>> {
        let mut tx = self.write().await?;
        let was: Option<bool> = sqlx::query_scalar(
            "SELECT paused FROM codes WHERE project_id = ?1 AND id = ?2 AND deleted_at IS NULL",
        )
        .bind(project.to_string())
        .bind(id.to_string())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(was) = was else {
            return Ok(None);
        };
        sqlx::query("UPDATE codes SET paused = ?2, updated_at = ?3 WHERE id = ?1")
            .bind(id.to_string())
            .bind(paused)
            .bind(now())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(was != paused))
    }

    async fn unneeded_zips(&self, keep: Option<u32>, limit: i64) -> StoreResult<Vec<(Id, String)>> {
        let rows = sqlx::query(
            "SELECT r.id, r.zip_key FROM code_revisions r JOIN codes c ON c.id = r.code_id \
             WHERE r.zip_key IS NOT NULL AND r.zip_freed_at IS NULL \
               AND (c.deleted_at IS NOT NULL OR r.rev <= c.latest_rev - ?1) \
               AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.code_id = r.code_id \
                               AND t.code_revision_id = r.id \
                               AND t.status IN ('queued', 'preparing', 'running')) \
             ORDER BY r.code_id, r.rev LIMIT ?2",
        )
        .bind(crate::derived::keep_margin(keep))
        .bind(limit)
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|row| Ok((rows::id(row, "id")?, row.try_get("zip_key")?)))
            .collect()
    }

    async fn zip_freed(&self, revision: Id, key: &str) -> StoreResult<bool> {
        let mut tx = self.write().await?;
        sqlx::query("UPDATE code_revisions SET zip_freed_at = ?1 WHERE id = ?2")
            .bind(now())
            .bind(revision.to_string())
            .execute(&mut *tx)
            .await?;
        let others: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM code_revisions \
             WHERE zip_key = ?1 AND id <> ?2 AND zip_freed_at IS NULL",
        )
        .bind(key)
        .bind(revision.to_string())
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(others == 0)
    }

    async fn code_stats(
        &self,
        project: Id,
        code: Id,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> StoreResult<BTreeMap<TaskStatus, i64>> {
        let rows = sqlx::query(
            "SELECT status, count(*) AS n FROM tasks \
             WHERE project_id = ?1 AND code_id = ?2 AND updated_at BETWEEN ?3 AND ?4 \
             GROUP BY status",
        )
        .bind(project.to_string())
        .bind(code.to_string())
        .bind(micros(from))
        .bind(micros(to))
        .fetch_all(&self.reader)
        .await?;
        let mut stats: BTreeMap<TaskStatus, i64> =
            TaskStatus::ALL.into_iter().map(|s| (s, 0)).collect();
        for row in rows {
            stats.insert(rows::status(&row, "status")?, row.try_get("n")?);
        }
        Ok(stats)
    }
}
