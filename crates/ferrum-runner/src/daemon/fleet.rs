//! The runner's own heartbeat (`POST /runner/v1/heartbeat`): every `heartbeat_secs` it tells
//! the API it is alive and how many tasks it runs, and learns whether an admin asked it to
//! drain. The lease loop learns the same from lease answers; either way the flag lands in one
//! `watch` channel the loop waits on.

use std::sync::Arc;
use std::time::Duration;

use ferrum_model::protocol::RunnerHeartbeat;
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;

use super::client::ApiClient;
use crate::health::RunnerHealth;

/// Sends the runner's heartbeat every `every`, and at once when `nudge` is notified (the
/// last task of a draining runner ended: the API should see it drained now, not a period
/// later), until `shutdown` is cancelled. A failed heartbeat is logged when heartbeats start
/// failing and retried at the next period: only `last_seen_at` suffers.
pub(crate) async fn heartbeat_loop(
    client: ApiClient,
    health: Arc<RunnerHealth>,
    every: Duration,
    draining: watch::Sender<bool>,
    nudge: Arc<Notify>,
    shutdown: CancellationToken,
) {
    let mut failing = false;
    let mut drained = false;
    loop {
        let running = u32::try_from(health.running().max(0)).unwrap_or(u32::MAX);
        match client.runner_heartbeat(&RunnerHeartbeat { running }).await {
            Ok(answer) => {
                failing = false;
                if answer.draining {
                    draining.send_if_modified(|d| !std::mem::replace(d, true));
                }
                if answer.drained && !drained {
                    tracing::info!("drained: the API counts this runner drained");
                }
                drained = answer.drained;
            }
            Err(e) if !failing => {
                failing = true;
                tracing::warn!(error = %e, "runner heartbeat failed");
            }
            Err(_) => {}
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = nudge.notified() => {}
            _ = shutdown.cancelled() => return,
        }
    }
}
