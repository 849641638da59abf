//! Queueing and cancelling tasks on Postgres: a task's dispatch state is its `task_queue`
//! row (the flows are `crate::common::tasks`).

use ferrum_model::{Id, NewTask, TaskOrigin};
use sqlx::PgConnection;

use super::PgStore;
use crate::common::queue::{code_heads, CodeHead};
use crate::StoreResult;

/// Tasks written by [`insert_tasks`]: their ids, and the limited codes among theirs, which
/// [`super::PgStore::admit`] must be given once the transaction commits.
#[derive(Default)]
pub(crate) struct Inserted {
    pub ids: Vec<Id>,
    pub limited_codes: Vec<String>,
}

/// Inserts tasks, and their dispatch queue rows, with one multi-row statement and wakes runners
/// of their clusters. The notification is delivered when the surrounding transaction commits,
/// never before. Tasks of limited codes are queued held: the caller admits them after the
/// commit (admitting here would take advisory locks in the caller's order, not the code order
/// `ferrum_lease()` keeps).
pub(crate) async fn insert_tasks(
    conn: &mut PgConnection,
    project: Id,
    tasks: Vec<NewTask>,
) -> StoreResult<Inserted> {
    insert_tasks_with(conn, project, tasks, None).await
}

/// [`insert_tasks`], with `(retries, retries_delay)` in place of the codes' own when given (a
/// batch's items).
pub(crate) async fn insert_tasks_with(
    conn: &mut PgConnection,
    project: Id,
    tasks: Vec<NewTask>,
    retries: Option<(i32, i32)>,
) -> StoreResult<Inserted> {
    let project_s = project.to_string();
    let heads = code_heads::<PgStore, _, _>(&mut *conn, project, &tasks).await?;
    let n = tasks.len();
    let mut cols = TaskColumns::with_capacity(n);
    let mut ids = Vec::with_capacity(n);
    let mut limited_codes = Vec::new();
    for t in tasks {
        let head = &heads[&t.code_name];
        if head.limited && !limited_codes.contains(&head.id) {
            limited_codes.push(head.id.clone());
        }
        let id = Id::generate();
        ids.push(id);
        cols.push(id, head, t, retries);
    }
    let mut clusters = cols.cluster.clone();
    clusters.sort();
    clusters.dedup();
    sqlx::query(concat!(
        "WITH ins AS ( \
         INSERT INTO tasks (id, project_id, code_id, code_name, code_revision_id, code_rev, \
         status, priority, payload, timeout, delay, cluster, label, schedule_id, batch_id, \
         original_task_id, retry_count, retries_left, retries_delay, run_at, batch_index, parent_id) \
         SELECT t.id, $1, t.code_id, t.code_name, t.rev_id, t.rev, 'queued', t.priority, \
         t.payload, t.timeout, t.delay, t.cluster, t.label, t.schedule_id, t.batch_id, \
         t.original_task_id, t.retry_count, t.retries_left, t.retries_delay, \
         now() + make_interval(secs => t.delay), t.batch_index, t.parent_id \
         FROM UNNEST($2::text[], $3::text[], $4::text[], $5::text[], $6::int[], $7::smallint[], \
         $8::bytea[], $9::int[], $10::int[], $11::text[], $12::text[], $13::text[], \
         $14::text[], $15::text[], $16::int[], $17::int[], $18::int[], $19::int[], $20::text[]) \
         AS t(id, code_id, code_name, rev_id, rev, priority, payload, timeout, delay, cluster, \
         label, schedule_id, batch_id, original_task_id, retry_count, retries_left, \
         retries_delay, batch_index, parent_id) \
         RETURNING id, project_id, code_id, cluster, priority, run_at, delay) ",
        queue_rows_from!("ins"),
    ))
    .bind(&project_s)
    .bind(&cols.id)
    .bind(&cols.code_id)
    .bind(&cols.code_name)
    .bind(&cols.rev_id)
    .bind(&cols.rev)
    .bind(&cols.priority)
    .bind(&cols.payload)
    .bind(&cols.timeout)
    .bind(&cols.delay)
    .bind(&cols.cluster)
    .bind(&cols.label)
    .bind(&cols.schedule_id)
    .bind(&cols.batch_id)
    .bind(&cols.original_task_id)
    .bind(&cols.retry_count)
    .bind(&cols.retries_left)
    .bind(&cols.retries_delay)
    .bind(&cols.batch_index)
    .bind(&cols.parent_id)
    .execute(&mut *conn)
    .await?;
    // The payload is only a hint (listeners wake on any notification), and Postgres refuses
    // one over 8000 bytes, failing the whole transaction: so it is bounded here, whatever a
    // row stored before cluster names were bounded holds.
    sqlx::query("SELECT pg_notify('ferrum_queue', left(c, 64)) FROM UNNEST($1::text[]) AS c")
        .bind(&clusters)
        .execute(&mut *conn)
        .await?;
    Ok(Inserted { ids, limited_codes })
}

/// Column vectors for the multi-row insert.
#[derive(Default)]
struct TaskColumns {
    id: Vec<String>,
    code_id: Vec<String>,
    code_name: Vec<String>,
    rev_id: Vec<String>,
    rev: Vec<i32>,
    priority: Vec<i16>,
    payload: Vec<Vec<u8>>,
    timeout: Vec<i32>,
    delay: Vec<i32>,
    cluster: Vec<String>,
    label: Vec<Option<String>>,
    schedule_id: Vec<Option<String>>,
    batch_id: Vec<Option<String>>,
    batch_index: Vec<Option<i32>>,
    original_task_id: Vec<Option<String>>,
    retry_count: Vec<i32>,
    retries_left: Vec<i32>,
    retries_delay: Vec<i32>,
    parent_id: Vec<Option<String>>,
}

impl TaskColumns {
    fn with_capacity(n: usize) -> Self {
        let mut c = TaskColumns::default();
        c.id.reserve(n);
        c.payload.reserve(n);
        c
    }

    fn push(&mut self, id: Id, head: &CodeHead, t: NewTask, retries: Option<(i32, i32)>) {
        let (retries_left, retries_delay) = retries.unwrap_or((head.retries, head.retries_delay));
        let TaskOrigin {
            schedule_id,
            batch_id,
            batch_index,
            original_task_id,
            retry_count,
            parent_id,
        } = t.origin;
        self.id.push(id.to_string());
        self.code_id.push(head.id.clone());
        self.code_name.push(t.code_name);
        self.rev_id.push(head.revision_id.clone());
        self.rev.push(head.rev);
        self.priority
            .push(t.priority.unwrap_or(head.default_priority).clamp(0, 2) as i16);
        self.payload.push(t.payload);
        self.timeout.push(t.timeout);
        self.delay.push(t.delay);
        self.cluster.push(t.cluster);
        self.label.push(t.label);
        self.schedule_id.push(schedule_id.map(|i| i.to_string()));
        self.batch_id.push(batch_id.map(|i| i.to_string()));
        self.batch_index.push(batch_index);
        self.original_task_id
            .push(original_task_id.map(|i| i.to_string()));
        self.retry_count.push(retry_count);
        self.retries_left.push(retries_left);
        self.retries_delay.push(retries_delay);
        self.parent_id.push(parent_id.map(|i| i.to_string()));
    }
}

/// Cancels the project's unfinished tasks matching `filter` (a condition on the task `t` and
/// `$2`): queued ones at once (off the queue), leased ones by flagging them for their runner.
/// Returns how many were affected. Queue rows are locked first, as every dispatch statement
/// does, so a cancel racing a lease waits for it and then sees the task leased.
pub(crate) async fn cancel_unfinished(
    conn: &mut PgConnection,
    project: &str,
    filter: &str,
    arg: &str,
) -> StoreResult<u64> {
    let done: i64 = sqlx::query_scalar(&format!(
        "WITH target AS ( \
           SELECT q.task_id, q.leased FROM task_queue q JOIN tasks t ON t.id = q.task_id \
           WHERE t.project_id = $1 AND {filter} \
           FOR UPDATE OF q), \
         dequeued AS ( \
           DELETE FROM task_queue q USING target \
           WHERE q.task_id = target.task_id AND NOT target.leased), \
         marked AS ( \
           UPDATE tasks t SET \
             status = CASE WHEN target.leased THEN t.status ELSE 'cancelled' END, \
             end_time = CASE WHEN target.leased THEN t.end_time ELSE now() END, \
             cancel_requested = target.leased, \
             updated_at = now() \
           FROM target WHERE t.id = target.task_id \
           RETURNING 1) \
         SELECT count(*) FROM marked"
    ))
    .bind(project)
    .bind(arg)
    .fetch_one(conn)
    .await?;
    Ok(u64::try_from(done).unwrap_or(0))
}
