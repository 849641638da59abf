//! Background duties every API replica runs: reaping expired leases and firing due schedules.
//!
//! Neither needs a leader. Each pass claims its rows in the database (`FOR UPDATE SKIP LOCKED`
//! and conditional updates), so N replicas running the same loop never double-fire a schedule
//! or requeue a task twice; more replicas only means passes happen more often.

use std::time::Duration;

use chrono::Utc;

use crate::AppState;

/// How often each duty runs.
const TICK: Duration = Duration::from_millis(500);
/// Most schedules one pass fires; the next pass takes the rest.
const FIRE_BATCH: i64 = 500;

/// Starts the duties on the current runtime. They run until the process ends.
pub fn spawn(state: AppState) {
    tokio::spawn(reap_expired_leases(state.clone()));
    tokio::spawn(fire_schedules(state));
}

async fn reap_expired_leases(state: AppState) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match state.store.reap_expired(state.config.max_attempts).await {
            Ok(report) if report.requeued > 0 || report.lost > 0 => {
                tracing::warn!(
                    requeued = report.requeued,
                    lost = report.lost,
                    "expired leases reaped"
                );
                state.queue.wake();
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "reaping expired leases failed"),
        }
    }
}

async fn fire_schedules(state: AppState) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match state.store.fire_due(Utc::now(), FIRE_BATCH).await {
            Ok(fired) if !fired.is_empty() => {
                tracing::debug!(tasks = fired.len(), "schedules fired");
                state.queue.wake();
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "firing schedules failed"),
        }
    }
}
