//! Wakes long-polling runners when work may have become runnable.
//!
//! Within one process a [`tokio::sync::Notify`] does it. Across API replicas, enqueueing sends
//! a Postgres `NOTIFY ferrum_queue` in its transaction, and each replica's listener forwards it
//! here. A runner's long-poll also re-checks on a short timer, so a lost notification costs
//! latency, never work.

use std::sync::Arc;

use tokio::sync::Notify;

/// Shared by the enqueueing routes, the listener and the long-polls.
#[derive(Debug, Clone, Default)]
pub struct QueueSignal {
    notify: Arc<Notify>,
}

impl QueueSignal {
    /// Something was queued (or freed a concurrency slot): wake every waiting long-poll.
    pub fn wake(&self) {
        self.notify.notify_waiters();
    }

    /// Resolves at the next [`QueueSignal::wake`]. Create the future before checking the
    /// queue, so a wake between the check and the wait is not lost.
    pub fn notified(&self) -> tokio::sync::futures::Notified<'_> {
        self.notify.notified()
    }
}
