//! Counts finished tasks and records their queue wait and run time, off the task-event seam
//! (`crate::task_events`): every final state passes through it exactly once per delivery.

use async_trait::async_trait;
use ferrum_store::TaskEvent;

use super::metrics::{metrics, StatusLabels};
use crate::task_events::TaskEventHandler;
use crate::AppState;

pub struct FinishedTasks;

#[async_trait]
impl TaskEventHandler for FinishedTasks {
    fn name(&self) -> &'static str {
        "metrics"
    }

    async fn handle(&self, state: &AppState, events: &[TaskEvent]) -> Result<(), String> {
        let ids: Vec<_> = events.iter().map(|e| e.task_id).collect();
        // Read first: a failed read leaves the batch to come back without having counted it.
        let timings = state
            .store
            .task_timings(&ids)
            .await
            .map_err(|e| e.to_string())?;
        let m = metrics();
        let per_project = state.config.metrics_per_project;
        for e in events {
            m.tasks_finished
                .get_or_create(&labels(e.status.as_str(), per_project, e))
                .inc();
        }
        for t in timings {
            let Some(start) = t.start_time else { continue };
            let wait = (start - t.run_at).num_milliseconds().max(0) as f64 / 1000.0;
            m.queue_wait.observe(wait);
            if let Some(end) = t.end_time {
                let run = (end - start).num_milliseconds().max(0) as f64 / 1000.0;
                m.run_duration
                    .get_or_create(&StatusLabels {
                        status: t.status.as_str().to_owned(),
                        project: String::new(),
                    })
                    .observe(run);
            }
        }
        Ok(())
    }
}

fn labels(status: &str, per_project: bool, e: &TaskEvent) -> StatusLabels {
    StatusLabels {
        status: status.to_owned(),
        project: if per_project {
            e.project_id.to_string()
        } else {
            String::new()
        },
    }
}
