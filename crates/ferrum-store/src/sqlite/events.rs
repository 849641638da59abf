//! The task-event outbox on SQLite (see `crate::events`). One writer: a claim is atomic.

use std::time::Duration;

use async_trait::async_trait;

use super::rows::{now, secs};
use super::SqliteStore;
use crate::events::{event, TaskEvent, TaskEventStore};
use crate::StoreResult;

#[async_trait]
impl TaskEventStore for SqliteStore {
    async fn claim_task_events(
        &self,
        limit: i64,
        claim_for: Duration,
    ) -> StoreResult<Vec<TaskEvent>> {
        let at = now();
        let until = at.saturating_add(i64::try_from(claim_for.as_micros()).unwrap_or(secs(3600)));
        let rows = sqlx::query(
            "UPDATE task_events SET claimed_until = ?2 \
             WHERE id IN (SELECT id FROM task_events \
                          WHERE claimed_until IS NULL OR claimed_until < ?3 \
                          ORDER BY id LIMIT ?1) \
             RETURNING *",
        )
        .bind(limit)
        .bind(until)
        .bind(at)
        .fetch_all(&self.writer)
        .await?;
        let mut events = rows.iter().map(event).collect::<StoreResult<Vec<_>>>()?;
        events.sort_by_key(|e| e.id);
        Ok(events)
    }

    async fn delete_task_events(&self, ids: &[i64]) -> StoreResult<()> {
        let ids = serde_json::to_string(ids).unwrap_or_else(|_| "[]".into());
        sqlx::query("DELETE FROM task_events WHERE id IN (SELECT value FROM json_each(?1))")
            .bind(ids)
            .execute(&self.writer)
            .await?;
        Ok(())
    }
}
