//! How SQLite runs the statements written once for both backends (`crate::common::sql`):
//! reads on the reader pool, writes on the one writer, times as integer microseconds.

use async_trait::async_trait;
use ferrum_model::{Id, NewTask};
use sqlx::query::Query;
use sqlx::sqlite::{SqliteArguments, SqliteQueryResult, SqliteRow};
use sqlx::{Sqlite, Transaction};

use super::rows::{micros, now, secs};
use super::tasks::{cancel_unfinished, insert_tasks_with};
use super::SqliteStore;
use crate::common::queue::{Queue, Unfinished};
use crate::common::sql::{execute, fetch, Arg, Bind, Sql};
use crate::task_list::Dialect;
use crate::StoreResult;

impl Bind for Sqlite {
    fn bind<'q>(
        q: Query<'q, Sqlite, SqliteArguments<'q>>,
        arg: Arg,
    ) -> Query<'q, Sqlite, SqliteArguments<'q>> {
        match arg {
            Arg::Text(v) => q.bind(v),
            Arg::Int(v) => q.bind(v),
            Arg::Big(v) => q.bind(v),
            Arg::Float(v) => q.bind(v),
            Arg::Flag(v) => q.bind(v),
            Arg::Bytes(v) => q.bind(v),
            Arg::Json(v) => q.bind(v.to_string()),
            Arg::Time(v) => q.bind(v.map(micros)),
            Arg::List(v) => q.bind(serde_json::Value::from(v).to_string()),
            Arg::Now => q.bind(now()),
        }
    }

    fn affected(done: &SqliteQueryResult) -> u64 {
        done.rows_affected()
    }
}

#[async_trait]
impl Sql for SqliteStore {
    type Row = SqliteRow;
    type Tx = Transaction<'static, Sqlite>;

    const FOR_UPDATE: &'static str = "";
    const FOR_NO_KEY_UPDATE: &'static str = "";
    const DIALECT: Dialect = Dialect::Sqlite;
    const RECORDS: &'static str = "tasks";

    fn now(n: usize) -> String {
        format!("${n}")
    }

    fn plus_secs(time: &str, n: &str) -> String {
        format!("{time} + {n} * {}", secs(1))
    }

    fn any(col: &str, n: usize) -> String {
        format!("{col} IN (SELECT value FROM json_each(${n}))")
    }

    async fn read(&self, sql: &str, args: Vec<Arg>) -> StoreResult<Vec<SqliteRow>> {
        fetch(&self.reader, sql, args).await
    }

    async fn write(&self, sql: &str, args: Vec<Arg>) -> StoreResult<Vec<SqliteRow>> {
        fetch(&self.writer, sql, args).await
    }

    async fn write_count(&self, sql: &str, args: Vec<Arg>) -> StoreResult<u64> {
        execute(&self.writer, sql, args).await
    }

    async fn begin(&self) -> StoreResult<Self::Tx> {
        self.write().await
    }
}

#[async_trait]
impl Queue for SqliteStore {
    const WAITING: &'static str = "tasks WHERE status = 'queued'";

    async fn insert_tasks(
        tx: &mut Self::Tx,
        project: Id,
        tasks: Vec<NewTask>,
        retries: Option<(i32, i32)>,
        _limited: &mut Vec<String>,
    ) -> StoreResult<Vec<Id>> {
        insert_tasks_with(tx, project, tasks, retries).await
    }

    async fn cancel_unfinished(
        tx: &mut Self::Tx,
        _project: Id,
        of: Unfinished,
    ) -> StoreResult<u64> {
        let (filter, id) = match of {
            Unfinished::Task(id) => ("id = ?1", id),
            Unfinished::Batch(id) => ("batch_id = ?1", id),
            Unfinished::Code(id) => ("code_id = ?1", id),
        };
        cancel_unfinished(tx, filter, &id.to_string()).await
    }

    async fn after_commit(&self, _limited: Vec<String>) {}
}
