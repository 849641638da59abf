//! The task list query, built the same way for both backends so that every filter answers
//! its first page from an index (`migrations/0013_task_list.sql`, `sqlite/0009_task_list.sql`).
//!
//! Why a builder rather than one statement with `($n IS NULL OR col = $n)` arms: a prepared
//! statement with optional arms gets one generic plan, which cannot pick the index of the
//! filter actually given; a statement per filter shape can. Every index is
//! `(project_id, <column>, id DESC)`, so a filter walks its index newest first and stops after
//! one page, whether it matches everything or nothing:
//! - status: one branch per stored status, merged by id (`UNION ALL`), because an index
//!   walk yields one status' rows in id order, not several statuses' rows interleaved;
//! - the time range bounds the id (ids begin with their creation second), with a minute of
//!   slack either way for ids made before their transaction's clock, and rechecks
//!   `created_at` exactly;
//! - `before` (the keyset cursor) is `id < $before`: a page deep in the list costs what the
//!   first one does. `page`/`per_page` (IronWorker's offset paging) still work on top.

use chrono::{DateTime, Utc};
use ferrum_model::{Id, TaskFilter, TaskStatus};

use crate::common::sql::Arg;

/// Slack between an id's second and its row's `created_at` (the id is made in the
/// application, `created_at` by the database's clock).
const ID_CLOCK_SLACK_SECS: i64 = 60;

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Postgres,
    Sqlite,
}

pub(crate) struct ListQuery {
    pub sql: String,
    pub binds: Vec<Arg>,
}

/// The arguments of the statement being built: `$n` placeholders, which both drivers read.
struct Builder {
    binds: Vec<Arg>,
}

impl Builder {
    fn push(&mut self, b: impl Into<Arg>) -> String {
        self.binds.push(b.into());
        format!("${}", self.binds.len())
    }
}

/// How a tenant-visible status is stored: Postgres stores a leased task as `queued` (the
/// view `task_records` shows it as `preparing`), SQLite stores `preparing` itself.
fn stored(dialect: Dialect, s: TaskStatus) -> &'static str {
    match (dialect, s) {
        (Dialect::Postgres, TaskStatus::Preparing) => TaskStatus::Queued.as_str(),
        _ => s.as_str(),
    }
}

fn id_floor(t: DateTime<Utc>) -> String {
    let secs = (t.timestamp() - ID_CLOCK_SLACK_SECS).clamp(0, i64::from(u32::MAX));
    format!("{secs:08x}{}", "0".repeat(16))
}

fn id_ceiling(t: DateTime<Utc>) -> String {
    let secs = (t.timestamp() + ID_CLOCK_SLACK_SECS).clamp(0, i64::from(u32::MAX));
    format!("{secs:08x}{}", "f".repeat(16))
}

/// The list statement for `project` and `f`; rows come out newest first.
pub(crate) fn list_query(dialect: Dialect, project: Id, f: &TaskFilter) -> ListQuery {
    let mut b = Builder { binds: Vec::new() };
    let mut conds = vec![format!("t.project_id = {}", b.push(project))];
    let mut eq = |b: &mut Builder, col: &str, v: Option<String>| {
        if let Some(v) = v {
            conds.push(format!("t.{col} = {}", b.push(v)));
        }
    };
    eq(&mut b, "code_name", f.code_name.clone());
    eq(&mut b, "cluster", f.cluster.clone());
    eq(&mut b, "label", f.label.clone());
    eq(&mut b, "schedule_id", f.schedule_id.map(|i| i.to_string()));
    eq(&mut b, "parent_id", f.parent_id.map(|i| i.to_string()));
    eq(&mut b, "batch_id", f.batch_id.map(|i| i.to_string()));
    if let Some(before) = f.before {
        conds.push(format!("t.id < {}", b.push(before)));
    }
    if let Some(from) = f.from_time {
        conds.push(format!("t.id >= {}", b.push(id_floor(from))));
        conds.push(format!("t.created_at >= {}", b.push(from)));
    }
    if let Some(to) = f.to_time {
        conds.push(format!("t.id <= {}", b.push(id_ceiling(to))));
        conds.push(format!("t.created_at <= {}", b.push(to)));
    }
    let (cols, from) = match dialect {
        // Postgres picks the page's ids from the table (it holds the indexed columns; the
        // lease flag tells queued from preparing), then reads those rows from the view
        // (`wrap`). Joining the view inside would let the planner merge-join it over the
        // whole primary key: a page deep in the list then read every row above it.
        Dialect::Postgres => ("t.id", "tasks t LEFT JOIN task_queue q ON q.task_id = t.id"),
        Dialect::Sqlite => ("t.*", "tasks t"),
    };
    let wrap = |sql: String| match dialect {
        Dialect::Postgres => format!(
            "SELECT r.* FROM ({sql}) AS page JOIN task_records r ON r.id = page.id \
             ORDER BY r.id DESC"
        ),
        Dialect::Sqlite => sql,
    };
    let limit = f.page.limit();
    let offset = f.page.offset();
    let where_ = conds.join(" AND ");

    let mut stored_statuses: Vec<&str> = f.statuses.iter().map(|s| stored(dialect, *s)).collect();
    stored_statuses.sort_unstable();
    stored_statuses.dedup();
    if stored_statuses.is_empty() {
        let sql = format!(
            "SELECT {cols} FROM {from} WHERE {where_} ORDER BY t.id DESC LIMIT {limit} OFFSET {offset}"
        );
        return ListQuery {
            sql: wrap(sql),
            binds: b.binds,
        };
    }
    let branches: Vec<String> = stored_statuses
        .iter()
        .map(|st| {
            let mut extra = format!(" AND t.status = {}", b.push(st.to_string()));
            if dialect == Dialect::Postgres && *st == TaskStatus::Queued.as_str() {
                // `queued` holds both queued and preparing (leased) tasks: keep those asked
                // for, as the view `task_records` tells them apart.
                let queued = f.statuses.contains(&TaskStatus::Queued);
                let preparing = f.statuses.contains(&TaskStatus::Preparing);
                match (queued, preparing) {
                    (true, false) => extra.push_str(" AND NOT coalesce(q.leased, false)"),
                    (false, true) => extra.push_str(" AND coalesce(q.leased, false)"),
                    _ => {}
                }
            }
            format!(
                "SELECT * FROM (SELECT {cols} FROM {from} WHERE {where_}{extra} \
                 ORDER BY t.id DESC LIMIT {}) AS s",
                limit + offset
            )
        })
        .collect();
    let sql = if branches.len() == 1 {
        format!(
            "{} ORDER BY id DESC LIMIT {limit} OFFSET {offset}",
            branches[0]
        )
    } else {
        format!(
            "{} ORDER BY id DESC LIMIT {limit} OFFSET {offset}",
            branches.join(" UNION ALL ")
        )
    };
    ListQuery {
        sql: wrap(sql),
        binds: b.binds,
    }
}
