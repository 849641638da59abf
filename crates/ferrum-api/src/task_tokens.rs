//! Task tokens: the `IRON_TOKEN` of a task's container, so that a worker can queue tasks (the
//! master/worker pattern) with the official clients and no configuration.
//!
//! Scoped like a CI job token. One is made per leased attempt, handed to the runner in the
//! lease (fenced like the lease itself) and stored hashed. It is valid only while its attempt
//! is the task's current lease and the task is unfinished, and never past the task's
//! timeout (checked at every use, `TaskTokenStore::authenticate_task_token`); the task-event
//! handler [`TokenRevoker`] deletes the tokens of tasks that reached a final state. What it
//! may call is decided in `tenant::task_auth`: queue tasks in its own project (children,
//! `parent_id` set; at most `max_children_per_task` per attempt, and no deeper than
//! `max_task_depth`), read its children, and set its own progress. It never appears in a
//! task's JSON, a log line (`SecretToken` hides it from `Debug`) or an error.

use async_trait::async_trait;
use ferrum_model::protocol::{Lease, SecretToken};
use ferrum_store::{NewTaskToken, TaskEvent};

use crate::task_events::TaskEventHandler;
use crate::{ApiError, AppState};

/// Gives each lease a fresh task token, stored (hashed) in one statement.
pub(crate) async fn issue(state: &AppState, leases: &mut [Lease]) -> Result<(), ApiError> {
    if leases.is_empty() {
        return Ok(());
    }
    let mut tokens = Vec::with_capacity(leases.len());
    for lease in leases.iter_mut() {
        let token = format!("ftt_{}", ferrum_model::token::generate());
        tokens.push(NewTaskToken {
            token: token.clone(),
            task_id: lease.task_id,
            project_id: lease.project_id,
            attempt: lease.attempt,
        });
        lease.task_token = Some(SecretToken(token));
    }
    state.store.issue_task_tokens(&tokens).await?;
    Ok(())
}

/// Deletes the tokens of tasks that reached a final state. Authentication already refuses
/// them (it checks the task's status); this keeps the table small.
pub struct TokenRevoker;

#[async_trait]
impl TaskEventHandler for TokenRevoker {
    fn name(&self) -> &'static str {
        "task-token revoker"
    }

    async fn handle(&self, state: &AppState, events: &[TaskEvent]) -> Result<(), String> {
        let tasks: Vec<_> = events.iter().map(|e| e.task_id).collect();
        state
            .store
            .revoke_task_tokens(&tasks)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}
