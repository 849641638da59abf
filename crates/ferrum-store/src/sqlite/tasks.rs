//! Queueing and cancelling tasks on SQLite: a task's dispatch state is in its `tasks` row
//! (the flows are `crate::common::tasks`).

use ferrum_model::{Id, NewTask, TaskOrigin};
use sqlx::SqliteConnection;

use super::rows::{now, secs};
use super::SqliteStore;
use crate::common::queue::code_heads;
use crate::StoreResult;

/// Inserts tasks inside the caller's write transaction; an unknown code fails the whole call
/// before anything is written. Runners are woken by the API's in-process queue signal.
pub(crate) async fn insert_tasks(
    conn: &mut SqliteConnection,
    project: Id,
    tasks: Vec<NewTask>,
) -> StoreResult<Vec<Id>> {
    insert_tasks_with(conn, project, tasks, None).await
}

/// [`insert_tasks`], with `(retries, retries_delay)` in place of the codes' own when given (a
/// batch's items).
pub(crate) async fn insert_tasks_with(
    conn: &mut SqliteConnection,
    project: Id,
    tasks: Vec<NewTask>,
    retries: Option<(i32, i32)>,
) -> StoreResult<Vec<Id>> {
    let project_s = project.to_string();
    let heads = code_heads::<SqliteStore, _, _>(&mut *conn, project, &tasks).await?;
    let at = now();
    let mut ids = Vec::with_capacity(tasks.len());
    for t in tasks {
        let head = &heads[&t.code_name];
        let id = Id::generate();
        let (retries_left, retries_delay) = retries.unwrap_or((head.retries, head.retries_delay));
        let TaskOrigin {
            schedule_id,
            batch_id,
            batch_index,
            original_task_id,
            retry_count,
            parent_id,
        } = t.origin;
        sqlx::query(
            "INSERT INTO tasks (id, project_id, code_id, code_name, code_revision_id, code_rev, \
             status, priority, payload, timeout, delay, cluster, label, schedule_id, batch_id, \
             original_task_id, retry_count, retries_left, retries_delay, created_at, \
             updated_at, run_at, batch_index, parent_id) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'queued', ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, \
             ?15, ?16, ?17, ?18, ?19, ?19, ?20, ?21, ?22)",
        )
        .bind(id.to_string())
        .bind(&project_s)
        .bind(&head.id)
        .bind(&t.code_name)
        .bind(&head.revision_id)
        .bind(head.rev)
        .bind(t.priority.unwrap_or(head.default_priority).clamp(0, 2))
        .bind(&t.payload)
        .bind(t.timeout)
        .bind(t.delay)
        .bind(&t.cluster)
        .bind(&t.label)
        .bind(schedule_id.map(|i| i.to_string()))
        .bind(batch_id.map(|i| i.to_string()))
        .bind(original_task_id.map(|i| i.to_string()))
        .bind(retry_count)
        .bind(retries_left)
        .bind(retries_delay)
        .bind(at)
        .bind(at + secs(t.delay))
        .bind(batch_index)
        .bind(parent_id.map(|i| i.to_string()))
        .execute(&mut *conn)
        .await?;
        ids.push(id);
    }
    Ok(ids)
}

/// Cancels the unfinished tasks matching `filter` (a condition on `?1`): queued ones at once,
/// leased ones by flagging them for their runner. Returns how many were affected.
pub(crate) async fn cancel_unfinished(
    conn: &mut SqliteConnection,
    filter: &str,
    arg: &str,
) -> StoreResult<u64> {
    let done = sqlx::query(&format!(
        "UPDATE tasks SET \
           status = CASE WHEN status = 'queued' THEN 'cancelled' ELSE status END, \
           end_time = CASE WHEN status = 'queued' THEN ?2 ELSE end_time END, \
           cancel_requested = status <> 'queued', \
           updated_at = ?2 \
         WHERE {filter} AND status IN ('queued', 'preparing', 'running')"
    ))
    .bind(arg)
    .bind(now())
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}
