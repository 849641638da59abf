//! The task-event duty: hands every task's final state to the handlers that hang off it.
//!
//! The store writes one event per task that reaches a final state, in the statement that
//! writes it (`ferrum_store::events`). This duty claims events in batches, gives each batch
//! to every handler in [`handlers`], and deletes the batch once all of them succeeded. Any
//! number of replicas run it: a claim is exclusive while it lasts ([`CLAIM_FOR`]). A batch
//! whose handler failed is not deleted; its claim runs out and it comes back, to this replica
//! or another. So delivery is at least once and handlers must be idempotent: a handler that
//! counts (a batch's fan-in) records in the database which events it has counted.
//!
//! Add a consumer by implementing [`TaskEventHandler`] and listing it in [`handlers`].

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use ferrum_store::TaskEvent;

use crate::AppState;

/// Longest the duty sleeps when there are no events.
const IDLE: Duration = Duration::from_millis(200);
/// Most events one pass claims; a full pass is followed by the next at once.
const CLAIM_BATCH: i64 = 500;
/// How long a claimed batch is this replica's. Past it, another replica may take the batch
/// again, so it is far longer than handling a batch takes.
pub const CLAIM_FOR: Duration = Duration::from_secs(60);

/// Something that must happen when tasks reach their final states.
#[async_trait]
pub trait TaskEventHandler: Send + Sync {
    /// Names the handler in logs.
    fn name(&self) -> &'static str;
    /// Handles a batch of events, oldest first. An error leaves the batch to be delivered
    /// again (to every handler), so a handler must be idempotent.
    async fn handle(&self, state: &AppState, events: &[TaskEvent]) -> Result<(), String>;
}

/// The handlers every replica runs, in order.
pub fn handlers() -> Vec<Arc<dyn TaskEventHandler>> {
    vec![
        Arc::new(crate::ops::events::FinishedTasks),
        Arc::new(crate::tenant::batches::FanIn),
        Arc::new(crate::task_tokens::TokenRevoker),
    ]
}

/// Consumes task events with `handlers` until the process ends.
pub async fn consume(state: AppState, handlers: Vec<Arc<dyn TaskEventHandler>>) {
    loop {
        let passed = pass(&state, &handlers).await;
        crate::ops::metrics().duty("task_events", &passed);
        match passed {
            Ok(n) if n >= CLAIM_BATCH as usize => continue,
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "handling task events failed"),
        }
        tokio::time::sleep(IDLE).await;
    }
}

/// One claim, handled and deleted; answers how many events it claimed.
async fn pass(
    state: &AppState,
    handlers: &[Arc<dyn TaskEventHandler>],
) -> Result<usize, ferrum_store::StoreError> {
    let events = state
        .store
        .claim_task_events(CLAIM_BATCH, CLAIM_FOR)
        .await?;
    if events.is_empty() {
        return Ok(0);
    }
    let mut handled = true;
    for h in handlers {
        if let Err(e) = h.handle(state, &events).await {
            tracing::warn!(handler = h.name(), error = %e, n = events.len(),
                "a task-event handler failed; the events will be delivered again");
            handled = false;
        }
    }
    if handled {
        let ids: Vec<i64> = events.iter().map(|e| e.id).collect();
        state.store.delete_task_events(&ids).await?;
    }
    Ok(events.len())
}
