//! Background duties every API replica runs: reaping expired leases, firing due schedules,
//! waking runners when delayed tasks become due, and forgetting old webhook delivery keys.
//!
//! None needs a leader. Each pass claims its rows in the database (`FOR UPDATE SKIP LOCKED`
//! and conditional updates), so N replicas running the same loop never double-fire a schedule
//! or requeue a task twice; more replicas only means passes happen more often.
//!
//! No tenant input can stop a duty: a pass skips a row it cannot handle (logged with its id)
//! and handles every other; a schedule that keeps failing is stopped with status `error` and a
//! `msg` (`ScheduleStore::fire_due`), and no stored value reaches a `NOTIFY` unbounded.
//!
//! Firing and waking are timed, not polled: each loop asks the store when its next event is
//! and sleeps until then, so a slot fires within a few milliseconds of its time. The sleep is
//! capped at [`TICK`] so that schedules created or resumed on another replica are seen soon.

use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::ops::metrics::{metrics, Source, SourceLabels};
use crate::AppState;

/// Longest any duty sleeps between passes.
const TICK: Duration = Duration::from_millis(500);
/// Most schedules one pass fires; when a pass is full the next one starts at once.
const FIRE_BATCH: i64 = 500;
/// How long webhook delivery keys are kept to recognise a retried delivery. Senders retry
/// within minutes (Slack) to hours (GitHub redeliveries by hand); a day covers both.
const DELIVERY_MEMORY: chrono::Duration = chrono::Duration::hours(24);
/// How long a runner not heard from stays listed (as offline) before it is forgotten: long
/// enough for an operator to see a runner that died over a weekend, short enough that a fleet
/// restarted daily does not pile up rows.
const RUNNER_MEMORY: chrono::Duration = chrono::Duration::days(7);
/// How often old delivery keys are purged and silent runners forgotten.
const PURGE_EVERY: Duration = Duration::from_secs(600);

/// The running duties of this process; [`Duties::stop`] ends them.
pub struct Duties {
    shutdown: CancellationToken,
    tasks: JoinSet<()>,
}

impl Duties {
    /// Starts a duty that runs until [`Duties::stop`].
    fn start(&mut self, duty: impl Future<Output = ()> + Send + 'static) {
        let shutdown = self.shutdown.clone();
        self.tasks.spawn(async move {
            tokio::select! {
                () = shutdown.cancelled() => {}
                () = duty => {}
            }
        });
    }

    /// Stops every duty at its next await point and waits until they have stopped. A pass cut
    /// short loses nothing: each pass's writes are one transaction, rolled back if dropped,
    /// and what it claimed comes back when its claim runs out.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        while self.tasks.join_next().await.is_some() {}
    }
}

/// Starts the duties on the current runtime; they run until [`Duties::stop`].
pub fn spawn(state: AppState) -> Duties {
    let mut duties = Duties {
        shutdown: CancellationToken::new(),
        tasks: JoinSet::new(),
    };
    duties.start(reap_expired_leases(state.clone()));
    duties.start(fire_schedules(state.clone()));
    duties.start(wake_for_delayed_tasks(state.clone()));
    duties.start(crate::task_events::consume(
        state.clone(),
        crate::task_events::handlers(),
    ));
    duties.start(crate::zip_gc::run(state.clone()));
    duties.start(crate::retention::run(state.clone()));
    duties.start(purge(state));
    duties
}

async fn reap_expired_leases(state: AppState) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let reaped = state.store.reap_expired(state.config.max_attempts).await;
        metrics().duty("reap_expired_leases", &reaped);
        match reaped {
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

/// Sleeps until `at` (if given), but never longer than [`TICK`].
async fn sleep_until(at: Option<DateTime<Utc>>) {
    let wait = at
        .and_then(|at| (at - Utc::now()).to_std().ok())
        .map_or(TICK, |d| d.min(TICK));
    tokio::time::sleep(wait).await;
}

async fn fire_schedules(state: AppState) {
    // The earliest slot the last look found, for the firing lag.
    let mut slot: Option<DateTime<Utc>> = None;
    loop {
        let now = Utc::now();
        let fired = state.store.fire_due(now, FIRE_BATCH).await;
        metrics().duty("fire_schedules", &fired);
        let full = match fired {
            Ok(fired) => {
                if !fired.is_empty() {
                    if let Some(lag) = slot.and_then(|at| (Utc::now() - at).to_std().ok()) {
                        metrics().schedule_lag.observe(lag.as_secs_f64());
                    }
                    metrics()
                        .tasks_created
                        .get_or_create(&SourceLabels {
                            source: Source::schedule,
                            project: String::new(),
                        })
                        .inc_by(fired.len() as u64);
                    tracing::debug!(tasks = fired.len(), "schedules fired");
                    state.queue.wake();
                }
                fired.len() as i64 >= FIRE_BATCH
            }
            Err(e) => {
                tracing::error!(error = %e, "firing schedules failed");
                false
            }
        };
        if full {
            continue;
        }
        match state.store.next_fire_at(now).await {
            Ok(next) => {
                slot = next;
                sleep_until(next).await
            }
            Err(e) => {
                tracing::error!(error = %e, "finding the next schedule slot failed");
                sleep_until(None).await;
            }
        }
    }
}

/// Held lease requests look at the queue when woken; this wakes them when a delayed task's
/// `run_at` arrives, so it starts on time rather than at the requests' next periodic look.
async fn wake_for_delayed_tasks(state: AppState) {
    let mut due: Option<DateTime<Utc>> = None;
    loop {
        let now = Utc::now();
        if due.is_some_and(|at| at <= now) {
            state.queue.wake();
        }
        let next = state.store.next_delayed_at(now).await;
        metrics().duty("wake_for_delayed_tasks", &next);
        due = match next {
            Ok(next) => next,
            Err(e) => {
                tracing::error!(error = %e, "finding the next delayed task failed");
                None
            }
        };
        sleep_until(due).await;
    }
}

/// Forgets what is kept only for a while: webhook delivery keys, and runners long silent.
async fn purge(state: AppState) {
    let mut tick = tokio::time::interval(PURGE_EVERY);
    loop {
        tick.tick().await;
        let purged = state
            .store
            .purge_deliveries(Utc::now() - DELIVERY_MEMORY)
            .await;
        metrics().duty("purge_deliveries", &purged);
        if let Err(e) = purged {
            tracing::error!(error = %e, "purging webhook delivery keys failed");
        }
        let forgotten = state.store.forget_runners(Utc::now() - RUNNER_MEMORY).await;
        metrics().duty("forget_runners", &forgotten);
        match forgotten {
            Ok(0) => {}
            Ok(n) => tracing::info!(runners = n, "forgot runners silent for 7 days"),
            Err(e) => tracing::error!(error = %e, "forgetting silent runners failed"),
        }
    }
}
