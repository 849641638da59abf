//! A running task's log and status as server-sent events, for its page's live log.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use ferrum_model::{Id, Task, TaskStatus};
use futures_util::stream::{self, Stream};

use super::extract::Found;
use crate::AppState;

/// How often a live log looks for more.
const POLL: Duration = Duration::from_millis(500);

/// The task's log (whole, each time it grew) and status until it ends.
pub async fn stream_log(Found(_, task): Found<Task>, State(state): State<AppState>) -> Response {
    let events = log_events(state, task.project_id, task.id);
    Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response()
}

fn log_events(
    state: AppState,
    project: Id,
    id: Id,
) -> impl Stream<Item = Result<Event, Infallible>> {
    // (last log length sent, last status sent, ended)
    stream::unfold(
        (state, None::<usize>, None::<TaskStatus>, false),
        move |(state, sent, last, ended)| async move {
            if ended {
                return None;
            }
            loop {
                let task = state.store.task(project, id).await.ok().flatten();
                let log = state
                    .store
                    .read_log(project, id, false)
                    .await
                    .ok()
                    .flatten();
                let Some(task) = task else {
                    return Some((
                        Ok(Event::default().event("end").data("gone")),
                        (state, sent, last, true),
                    ));
                };
                let log = String::from_utf8_lossy(&log.unwrap_or_default()).into_owned();
                let done = task.status.is_terminal();
                if sent != Some(log.len()) {
                    let data = serde_json::to_string(&log).unwrap_or_default();
                    let ev = Event::default().event("log").data(data);
                    return Some((Ok(ev), (state, Some(log.len()), last, false)));
                }
                if last != Some(task.status) {
                    let ev = Event::default().event("status").data(task.status.as_str());
                    return Some((Ok(ev), (state, sent, Some(task.status), false)));
                }
                if done {
                    return Some((
                        Ok(Event::default().event("end").data("")),
                        (state, sent, last, true),
                    ));
                }
                tokio::time::sleep(POLL).await;
            }
        },
    )
}
