//! Queueing and cancelling tasks on SQLite: a task's dispatch state is in its `tasks` row
//! (the flows are `crate::common::tasks`).

use std::collections::HashMap;

use ferrum_model::{Id, NewTask, TaskOrigin};
use sqlx::{Row, SqliteConnection};

use super::rows::{now, secs};
use crate::{StoreError, StoreResult};

/// The code facts a new task copies at queue time.
struct CodeHead {
    id: String,
    revision_id: String,
    rev: i32,
    default_priority: i32,
    retries: i32,
    retries_delay: i32,
}

/// Looks up the named codes of a project with their latest revisions.
async fn code_heads(
    conn: &mut SqliteConnection,
    project: &str,
    names: &[&str],
) -> StoreResult<HashMap<String, CodeHead>> {
    let names = serde_json::to_string(names).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let rows = sqlx::query(
        "SELECT c.name, c.id, c.latest_revision_id, c.latest_rev, r.default_priority, \
         r.retries, r.retries_delay \
         FROM codes c JOIN code_revisions r ON r.id = c.latest_revision_id \
         WHERE c.project_id = ?1 AND c.name IN (SELECT value FROM json_each(?2)) \
         AND c.deleted_at IS NULL",
    )
    .bind(project)
    .bind(names)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get("name")?,
                CodeHead {
                    id: r.try_get("id")?,
                    revision_id: r.try_get("latest_revision_id")?,
                    rev: r.try_get("latest_rev")?,
                    default_priority: r.try_get("default_priority")?,
                    retries: r.try_get("retries")?,
                    retries_delay: r.try_get("retries_delay")?,
                },
            ))
        })
        .collect()
}

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
    let mut names: Vec<&str> = tasks.iter().map(|t| t.code_name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    let heads = code_heads(conn, &project_s, &names).await?;
    if let Some(t) = tasks.iter().find(|t| !heads.contains_key(&t.code_name)) {
        return Err(StoreError::UnknownCode(t.code_name.clone()));
    }
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
