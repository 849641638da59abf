//! Code packages and revisions, written once for both backends. A backend supplies
//! [`CodeSql`]: what a change of a code's limit or pause does to its queued tasks (Postgres
//! copies both into `task_queue`; SQLite's lease reads the code row) and which revisions
//! unfinished tasks still need.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use ferrum_model::{Code, CodeRevision, Id, NewRevision, Page, TaskStatus};

use super::queue::{Queue, Unfinished};
use super::sql::{args, first, one, Arg, SqlTx};
use crate::derived::keep_margin;
use crate::rows::{self, Cols};
use crate::{CodeStore, StoreError, StoreResult};

/// What a backend does its own way for codes.
#[async_trait]
pub(crate) trait CodeSql: Queue {
    /// `id, zip_key` of revisions whose zip no task needs: `$1` the keep margin
    /// ([`keep_margin`]), `$2` the limit.
    const UNNEEDED_ZIPS: &'static str;
    /// The code `code`, locked, now has a concurrency limit (`limited`) or no longer has one.
    async fn limit_changed(tx: &mut Self::Tx, code: &str, limited: bool) -> StoreResult<()>;
    /// The code `code`, locked, is now `paused` or resumed.
    async fn paused_changed(tx: &mut Self::Tx, code: Id, paused: bool) -> StoreResult<()>;
}

#[async_trait]
impl<S: CodeSql> CodeStore for S {
    async fn put_revision(&self, project: Id, rev: NewRevision) -> StoreResult<Code> {
        let mut tx = self.begin().await?;
        // Creates the code on first upload; a concurrent first upload of the same name loses
        // the insert and then locks the winner's row.
        let sql = format!(
            "INSERT INTO codes (id, project_id, name, latest_rev, latest_revision_id, \
             created_at, updated_at) VALUES ($1, $2, $3, 0, '', {now}, {now}) \
             ON CONFLICT (project_id, name) WHERE deleted_at IS NULL DO NOTHING",
            now = S::now(4)
        );
        tx.execute(&sql, args![Id::generate(), project, &rev.name, Arg::Now])
            .await?;
        let sql = format!(
            "SELECT id, latest_rev, max_concurrency FROM codes \
             WHERE project_id = $1 AND name = $2 AND deleted_at IS NULL{}",
            S::FOR_UPDATE
        );
        let row = one(tx.fetch(&sql, args![project, &rev.name]).await?)?;
        let code_id = row.text("id")?;
        let next_rev = row.int("latest_rev")? + 1;
        let old_limit = row.opt_int("max_concurrency")?;
        let new_limit = rev.spec.max_concurrency.filter(|n| *n > 0);
        let revision_id = Id::generate();
        let spec = &rev.spec;
        let env = serde_json::to_value(&spec.env_vars)
            .map_err(|e| StoreError::Corrupt(format!("env_vars: {e}")))?;
        let zip = rev.zip.as_ref();
        let sql = format!(
            "INSERT INTO code_revisions (id, code_id, project_id, rev, runtime, stack, file_name, \
             image, command, config, env_vars, max_concurrency, retries, retries_delay, \
             default_priority, memory_mb, cpus, pids, zip_key, zip_checksum, zip_size, disk_mb, \
             created_at) \
             VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19,$20,$21,\
             $22,{})",
            S::now(23)
        );
        let args = args![
            revision_id,
            &code_id,
            project,
            next_rev,
            &spec.runtime,
            &spec.stack,
            &spec.file_name,
            &spec.image,
            &spec.command,
            &spec.config,
            env,
            spec.max_concurrency,
            spec.retries,
            spec.retries_delay,
            spec.default_priority,
            spec.memory_mb,
            spec.cpus,
            spec.pids,
            zip.map(|z| z.key.clone()),
            zip.map(|z| z.checksum.clone()),
            zip.map(|z| z.size),
            spec.disk_mb,
            Arg::Now,
        ];
        tx.execute(&sql, args).await?;
        let sql = format!(
            "UPDATE codes SET latest_rev = $2, latest_revision_id = $3, max_concurrency = $4, \
             updated_at = {} WHERE id = $1",
            S::now(5)
        );
        let args = args![&code_id, next_rev, revision_id, new_limit, Arg::Now];
        tx.execute(&sql, args).await?;
        if old_limit.is_some() != new_limit.is_some() {
            S::limit_changed(&mut tx, &code_id, new_limit.is_some()).await?;
        }
        let sql = format!("{} WHERE c.id = $1", rows::code_select());
        let row = one(tx.fetch(&sql, args![&code_id]).await?)?;
        tx.commit().await?;
        if new_limit.is_some() && new_limit != old_limit {
            self.after_commit(vec![code_id]).await;
        }
        rows::code(&row)
    }

    async fn code(&self, project: Id, id: Id) -> StoreResult<Option<Code>> {
        let sql = format!(
            "{} WHERE c.project_id = $1 AND c.id = $2 AND c.deleted_at IS NULL",
            rows::code_select()
        );
        let rows = self.read(&sql, args![project, id]).await?;
        first(rows).as_ref().map(rows::code).transpose()
    }

    async fn code_by_name(&self, project: Id, name: &str) -> StoreResult<Option<Code>> {
        let sql = format!(
            "{} WHERE c.project_id = $1 AND c.name = $2 AND c.deleted_at IS NULL",
            rows::code_select()
        );
        let rows = self.read(&sql, args![project, name]).await?;
        first(rows).as_ref().map(rows::code).transpose()
    }

    async fn codes(&self, project: Id, page: Page) -> StoreResult<Vec<Code>> {
        let sql = format!(
            "{} WHERE c.project_id = $1 AND c.deleted_at IS NULL \
             ORDER BY c.id DESC LIMIT $2 OFFSET $3",
            rows::code_select()
        );
        let rows = self
            .read(&sql, args![project, page.limit(), page.offset()])
            .await?;
        rows.iter().map(rows::code).collect()
    }

    async fn revisions(&self, project: Id, code: Id, page: Page) -> StoreResult<Vec<CodeRevision>> {
        let sql = format!(
            "SELECT c.name, {} FROM code_revisions r JOIN codes c ON c.id = r.code_id \
             WHERE c.project_id = $1 AND c.id = $2 AND c.deleted_at IS NULL \
             ORDER BY r.rev DESC LIMIT $3 OFFSET $4",
            rows::REVISION_COLUMNS
        );
        let args = args![project, code, page.limit(), page.offset()];
        let rows = self.read(&sql, args).await?;
        rows.iter().map(rows::revision).collect()
    }

    async fn revision_of(
        &self,
        project: Id,
        code: Id,
        rev: Option<i32>,
    ) -> StoreResult<Option<CodeRevision>> {
        let sql = format!(
            "SELECT c.name, {} FROM code_revisions r JOIN codes c ON c.id = r.code_id \
             WHERE c.project_id = $1 AND c.id = $2 AND c.deleted_at IS NULL \
             AND r.rev = coalesce($3, c.latest_rev)",
            rows::REVISION_COLUMNS
        );
        let rows = self.read(&sql, args![project, code, rev]).await?;
        first(rows).as_ref().map(rows::revision).transpose()
    }

    async fn revision(&self, id: Id) -> StoreResult<Option<CodeRevision>> {
        let sql = format!(
            "SELECT c.name, {} FROM code_revisions r JOIN codes c ON c.id = r.code_id \
             WHERE r.id = $1",
            rows::REVISION_COLUMNS
        );
        let rows = self.read(&sql, args![id]).await?;
        first(rows).as_ref().map(rows::revision).transpose()
    }

    async fn delete_code(&self, project: Id, id: Id) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let sql = format!(
            "UPDATE codes SET deleted_at = {now}, updated_at = {now} \
             WHERE project_id = $1 AND id = $2 AND deleted_at IS NULL",
            now = S::now(3)
        );
        if tx.execute(&sql, args![project, id, Arg::Now]).await? == 0 {
            return Ok(false);
        }
        S::cancel_unfinished(&mut tx, project, Unfinished::Code(id)).await?;
        let sql = format!(
            "UPDATE schedules SET status = 'cancelled', msg = 'Code deleted', updated_at = {} \
             WHERE code_id = $1 AND status = 'scheduled'",
            S::now(2)
        );
        tx.execute(&sql, args![id, Arg::Now]).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// The code row is locked first (Postgres: `FOR UPDATE`, which waits for every
    /// transaction queueing its tasks, as they hold `FOR KEY SHARE`), so what
    /// [`CodeSql::paused_changed`] does afterwards covers the tasks they queued.
    async fn set_paused(&self, project: Id, id: Id, paused: bool) -> StoreResult<Option<bool>> {
        let mut tx = self.begin().await?;
        let sql = format!(
            "SELECT paused FROM codes WHERE project_id = $1 AND id = $2 AND deleted_at IS NULL{}",
            S::FOR_UPDATE
        );
        let Some(row) = first(tx.fetch(&sql, args![project, id]).await?) else {
            return Ok(None);
        };
        let was = row.flag("paused")?;
        let sql = format!(
            "UPDATE codes SET paused = $2, updated_at = {} WHERE id = $1",
            S::now(3)
        );
        tx.execute(&sql, args![id, paused, Arg::Now]).await?;
        S::paused_changed(&mut tx, id, paused).await?;
        tx.commit().await?;
        Ok(Some(was != paused))
    }

    async fn unneeded_zips(&self, keep: Option<u32>, limit: i64) -> StoreResult<Vec<(Id, String)>> {
        let rows = self
            .read(S::UNNEEDED_ZIPS, args![keep_margin(keep), limit])
            .await?;
        rows.iter()
            .map(|row| Ok((rows::id(row, "id")?, row.text("zip_key")?)))
            .collect()
    }

    async fn zip_freed(&self, revision: Id, key: &str) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let sql = format!(
            "UPDATE code_revisions SET zip_freed_at = {} WHERE id = $1",
            S::now(2)
        );
        tx.execute(&sql, args![revision, Arg::Now]).await?;
        let others = tx
            .fetch(
                "SELECT count(*) AS n FROM code_revisions \
                 WHERE zip_key = $1 AND id <> $2 AND zip_freed_at IS NULL",
                args![key, revision],
            )
            .await?;
        let others = one(others)?.big("n")?;
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
        let sql = format!(
            "SELECT status, count(*) AS n FROM {} \
             WHERE project_id = $1 AND code_id = $2 AND updated_at BETWEEN $3 AND $4 \
             GROUP BY status",
            S::RECORDS
        );
        let rows = self.read(&sql, args![project, code, from, to]).await?;
        let mut stats: BTreeMap<TaskStatus, i64> =
            TaskStatus::ALL.into_iter().map(|s| (s, 0)).collect();
        for row in rows {
            stats.insert(rows::status(&row, "status")?, row.big("n")?);
        }
        Ok(stats)
    }
}
