//! The task-event outbox on Postgres (see `crate::events`).

use std::time::Duration;

use async_trait::async_trait;

use super::dispatch::interval;
use super::PgStore;
use crate::events::{event, TaskEvent, TaskEventStore};
use crate::StoreResult;

#[async_trait]
impl TaskEventStore for PgStore {
    async fn claim_task_events(
        &self,
        limit: i64,
        claim_for: Duration,
    ) -> StoreResult<Vec<TaskEvent>> {
        let rows = sqlx::query(
            "UPDATE task_events e SET claimed_until = now() + $2 \
             FROM (SELECT id FROM task_events \
                   WHERE claimed_until IS NULL OR claimed_until < now() \
                   ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED) c \
             WHERE e.id = c.id \
             RETURNING e.*",
        )
        .bind(limit)
        .bind(interval(claim_for))
        .fetch_all(&self.pool)
        .await?;
        let mut events = rows.iter().map(event).collect::<StoreResult<Vec<_>>>()?;
        events.sort_by_key(|e| e.id);
        Ok(events)
    }

    async fn delete_task_events(&self, ids: &[i64]) -> StoreResult<()> {
        sqlx::query("DELETE FROM task_events WHERE id = ANY($1)")
            .bind(ids)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
