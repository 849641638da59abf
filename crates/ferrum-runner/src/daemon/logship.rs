//! Ships a task's events to the API: `started` once the container runs, then output as
//! ordered log chunks. Small writes are coalesced (flush at 64 KiB, on a stream switch, or
//! 200 ms after the first buffered byte), `seq` counts chunks across both streams from 0, and
//! failed uploads are retried: a chunk is idempotent per `seq`, so a retry is never a
//! duplicate in the log.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use ferrum_model::protocol::LogStream;
use ferrum_model::Id;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::client::{ApiClient, ApiError};
use super::task::{Stop, StopReason};
use crate::executor::TaskEvent;

/// Largest chunk uploaded at once.
pub(crate) const MAX_CHUNK: usize = 64 * 1024;
/// Longest time output waits in the buffer.
const FLUSH_AFTER: Duration = Duration::from_millis(200);
/// Retries for one chunk before it is given up (about two minutes with backoff).
const MAX_TRIES: u32 = 30;

pub(crate) struct LogShipper {
    client: ApiClient,
    task: Id,
    attempt: i32,
    stop: Stop,
    seq: u64,
    buf: BytesMut,
    buf_stream: LogStream,
    first_buffered: Option<Instant>,
}

impl LogShipper {
    pub fn new(client: ApiClient, task: Id, attempt: i32, stop: Stop) -> Self {
        LogShipper {
            client,
            task,
            attempt,
            stop,
            seq: 0,
            buf: BytesMut::new(),
            buf_stream: LogStream::Stdout,
            first_buffered: None,
        }
    }

    /// Consumes events until the executor drops its sender, then flushes what is left.
    pub async fn run(mut self, mut events: mpsc::Receiver<TaskEvent>) {
        loop {
            let deadline = self.first_buffered.map(|t| t + FLUSH_AFTER);
            let event = tokio::select! {
                event = events.recv() => event,
                _ = sleep_until(deadline) => {
                    self.flush().await;
                    continue;
                }
            };
            match event {
                None => break,
                Some(TaskEvent::Started) => self.started().await,
                Some(TaskEvent::Output { stream, data }) => self.push(stream, data).await,
            }
        }
        self.flush().await;
    }

    async fn started(&self) {
        let result = retry(|| self.client.started(self.task, self.attempt), &self.stop).await;
        match result {
            Ok(r) if r.cancel_requested => self.stop.request(StopReason::Cancel),
            Ok(_) => {}
            Err(e) => tracing::warn!(task = %self.task, error = %e, "could not report start"),
        }
    }

    async fn push(&mut self, stream: LogStream, mut data: Bytes) {
        if self.lost() {
            return;
        }
        if stream != self.buf_stream && !self.buf.is_empty() {
            self.flush().await;
        }
        self.buf_stream = stream;
        while !data.is_empty() {
            let take = (MAX_CHUNK - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data.split_to(take));
            self.first_buffered.get_or_insert_with(Instant::now);
            if self.buf.len() >= MAX_CHUNK {
                self.flush().await;
            }
        }
    }

    async fn flush(&mut self) {
        self.first_buffered = None;
        if self.buf.is_empty() {
            return;
        }
        let chunk = self.buf.split().freeze();
        if self.lost() {
            return;
        }
        let (seq, stream) = (self.seq, self.buf_stream);
        self.seq += 1;
        let result = retry(
            || {
                self.client
                    .log(self.task, self.attempt, seq, stream, chunk.clone())
            },
            &self.stop,
        )
        .await;
        if let Err(e) = result {
            tracing::warn!(task = %self.task, seq, error = %e, "dropping log chunk");
        }
    }

    fn lost(&self) -> bool {
        self.stop.reason() == Some(StopReason::LeaseLost)
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Calls `f` until it succeeds, fails permanently, or `MAX_TRIES` transient failures pass,
/// backing off from 100 ms to 5 s. A 409 marks the lease lost on `stop`.
pub(crate) async fn retry<T, F, Fut>(mut f: F, stop: &Stop) -> Result<T, ApiError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ApiError>>,
{
    let mut delay = Duration::from_millis(100);
    let mut tries = 0;
    loop {
        match f().await {
            Err(ApiError::LeaseLost(status)) => {
                stop.request(StopReason::LeaseLost);
                return Err(ApiError::LeaseLost(status));
            }
            Err(e) if e.is_transient() && tries + 1 < MAX_TRIES => {
                tries += 1;
                tracing::debug!(error = %e, tries, "retrying runner API call");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            other => return other,
        }
    }
}
