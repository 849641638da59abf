//! The zip collector: deletes from the blob store the code zips no task can need any more —
//! every revision of a deleted code, and, when the operator keeps only the last N revisions
//! (`ApiConfig::keep_revisions`, `ferrum serve --keep-revisions N`), the older ones. A
//! revision an unfinished task is bound to keeps its zip until that task ends
//! ([`ferrum_store::CodeStore::unneeded_zips`] says why nothing can bind to it afterwards).
//!
//! It runs after every code delete and upload (so space comes back at once) and every
//! [`EVERY`] (for revisions whose last task ended since). The mark comes first, then the
//! blob, and only when no other revision shares the zip (an options-only upload reuses its
//! predecessor's): a crash in between leaks one blob rather than deleting one in use.

use std::time::Duration;

use crate::AppState;

/// How often the collector looks for zips whose last task has ended.
const EVERY: Duration = Duration::from_secs(60);
/// Revisions handled per store query.
const BATCH: i64 = 100;

/// Deletes every zip that is no longer needed; returns how many blobs went.
pub async fn collect(state: &AppState) -> Result<u64, String> {
    let keep = state.config.keep_revisions;
    let mut freed = 0;
    loop {
        let batch = state
            .store
            .unneeded_zips(keep, BATCH)
            .await
            .map_err(|e| e.to_string())?;
        for (revision, key) in &batch {
            let last = state
                .store
                .zip_freed(*revision, key)
                .await
                .map_err(|e| e.to_string())?;
            if last {
                state.blobs.delete(key).await.map_err(|e| e.to_string())?;
                freed += 1;
            }
        }
        if (batch.len() as i64) < BATCH {
            return Ok(freed);
        }
    }
}

/// One pass now, in the background (after a delete or an upload); failures are logged.
pub fn kick(state: &AppState) {
    let state = state.clone();
    tokio::spawn(async move { pass(&state).await });
}

async fn pass(state: &AppState) {
    match collect(state).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(zips = n, "unneeded code zips deleted"),
        Err(e) => tracing::error!(error = %e, "deleting unneeded code zips failed"),
    }
}

/// The periodic duty.
pub async fn run(state: AppState) {
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        pass(&state).await;
    }
}
