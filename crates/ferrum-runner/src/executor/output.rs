//! Forwards a container's attached stdout/stderr to the task's event sink, in order, up to the
//! per-task log cap. Past the cap the stream is still drained (so the container never blocks
//! on a full pipe) but nothing more is forwarded, and one truncation note is emitted.

use bollard::container::LogOutput;
use bytes::Bytes;
use ferrum_model::protocol::LogStream;
use futures_util::{Stream, StreamExt};
use tokio::sync::mpsc;

use super::TaskEvent;

/// How much of stderr's tail to keep for the error message of a failed task.
const STDERR_TAIL: usize = 4096;
/// Longest error message taken from stderr.
const MAX_MSG_CHARS: usize = 1000;

/// What the pump saw once the stream ended.
#[derive(Debug, Default)]
pub(crate) struct PumpSummary {
    /// Bytes forwarded to the sink, not counting the truncation note.
    pub forwarded: u64,
    pub truncated: bool,
    stderr_tail: Vec<u8>,
}

impl PumpSummary {
    /// The last non-empty line the task wrote to stderr, if any.
    pub fn last_stderr_line(&self) -> Option<String> {
        let text = String::from_utf8_lossy(&self.stderr_tail);
        let line = text.lines().rev().map(str::trim).find(|l| !l.is_empty())?;
        Some(line.chars().take(MAX_MSG_CHARS).collect())
    }
}

/// The note appended to the log when the cap is reached.
pub fn truncation_note(cap: u64) -> Bytes {
    Bytes::from(format!("\n[ferrum: log truncated at {cap} bytes]\n"))
}

pub(crate) async fn pump<S>(mut output: S, events: mpsc::Sender<TaskEvent>, cap: u64) -> PumpSummary
where
    S: Stream<Item = Result<LogOutput, bollard::errors::Error>> + Unpin,
{
    let mut summary = PumpSummary::default();
    // Once the receiver is gone nobody wants output any more, but keep draining.
    let mut sink_open = true;
    while let Some(item) = output.next().await {
        let (stream, data) = match item {
            Ok(LogOutput::StdOut { message }) | Ok(LogOutput::Console { message }) => {
                (LogStream::Stdout, message)
            }
            Ok(LogOutput::StdErr { message }) => (LogStream::Stderr, message),
            Ok(LogOutput::StdIn { .. }) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "container output stream failed");
                break;
            }
        };
        if stream == LogStream::Stderr {
            remember_tail(&mut summary.stderr_tail, &data);
        }
        if summary.truncated || !sink_open {
            continue;
        }
        let room = cap.saturating_sub(summary.forwarded);
        let (chunk, overflow) = if data.len() as u64 > room {
            (data.slice(..room as usize), true)
        } else {
            (data, false)
        };
        summary.forwarded += chunk.len() as u64;
        if !chunk.is_empty() {
            sink_open = events
                .send(TaskEvent::Output {
                    stream,
                    data: chunk,
                })
                .await
                .is_ok();
        }
        if overflow {
            summary.truncated = true;
            if sink_open {
                let note = TaskEvent::Output {
                    stream: LogStream::Stderr,
                    data: truncation_note(cap),
                };
                sink_open = events.send(note).await.is_ok();
            }
        }
    }
    summary
}

fn remember_tail(tail: &mut Vec<u8>, data: &[u8]) {
    tail.extend_from_slice(&data[data.len().saturating_sub(STDERR_TAIL)..]);
    if tail.len() > STDERR_TAIL {
        tail.drain(..tail.len() - STDERR_TAIL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(s: &str) -> Result<LogOutput, bollard::errors::Error> {
        Ok(LogOutput::StdOut {
            message: Bytes::from(s.to_owned()),
        })
    }

    fn err(s: &str) -> Result<LogOutput, bollard::errors::Error> {
        Ok(LogOutput::StdErr {
            message: Bytes::from(s.to_owned()),
        })
    }

    async fn collect(
        items: Vec<Result<LogOutput, bollard::errors::Error>>,
        cap: u64,
    ) -> (Vec<TaskEvent>, PumpSummary) {
        let (tx, mut rx) = mpsc::channel(100);
        let summary = pump(futures_util::stream::iter(items), tx, cap).await;
        let mut events = Vec::new();
        while let Some(e) = rx.recv().await {
            events.push(e);
        }
        (events, summary)
    }

    #[tokio::test]
    async fn forwards_in_order_and_keeps_last_stderr_line() {
        let (events, summary) = collect(vec![out("a"), err("boom\n\n"), out("b")], 100).await;
        let got: Vec<(LogStream, Bytes)> = events
            .into_iter()
            .map(|e| match e {
                TaskEvent::Output { stream, data } => (stream, data),
                TaskEvent::Started => unreachable!(),
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (LogStream::Stdout, Bytes::from("a")),
                (LogStream::Stderr, Bytes::from("boom\n\n")),
                (LogStream::Stdout, Bytes::from("b")),
            ]
        );
        assert_eq!(summary.forwarded, 8);
        assert!(!summary.truncated);
        assert_eq!(summary.last_stderr_line().as_deref(), Some("boom"));
    }

    #[tokio::test]
    async fn truncates_once_at_cap() {
        let (events, summary) = collect(vec![out("12345"), out("6789"), err("late")], 7).await;
        assert!(summary.truncated);
        assert_eq!(summary.forwarded, 7);
        assert_eq!(events.len(), 3);
        match &events[1] {
            TaskEvent::Output { data, .. } => assert_eq!(data, &Bytes::from("67")),
            TaskEvent::Started => unreachable!(),
        }
        match &events[2] {
            TaskEvent::Output { data, .. } => assert_eq!(data, &truncation_note(7)),
            TaskEvent::Started => unreachable!(),
        }
        assert_eq!(summary.last_stderr_line().as_deref(), Some("late"));
    }
}
