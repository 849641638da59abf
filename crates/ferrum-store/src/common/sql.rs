//! How shared code runs a statement on either backend: values go in as [`Arg`]s, rows come
//! out as the backend's row type (read through [`Cols`]), and the backend says where a read,
//! a write and a transaction run. SQL is written with `$n` placeholders, which sqlx's SQLite
//! driver reads as well as Postgres does.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use ferrum_model::Id;
use sqlx::query::Query;
use sqlx::{Database, Executor, IntoArguments};

use crate::rows::Cols;
use crate::task_list::Dialect;
use crate::{StoreError, StoreResult};

/// A value to bind. The backend decides how each is stored: timestamps are `timestamptz` in
/// Postgres and integer microseconds in SQLite.
#[derive(Debug, Clone)]
pub(crate) enum Arg {
    Text(Option<String>),
    Int(Option<i32>),
    Big(Option<i64>),
    Float(Option<f64>),
    Flag(bool),
    Bytes(Option<Vec<u8>>),
    Time(Option<DateTime<Utc>>),
    /// A JSON document: `jsonb` in Postgres, text in SQLite.
    Json(serde_json::Value),
    /// A list, read by the SQL [`Sql::any`] writes: a `text[]` in Postgres, JSON text in
    /// SQLite.
    List(Vec<String>),
    /// The statement's "now", at the place [`Sql::now`] gave: SQLite's SQL reads the
    /// application's clock from it; Postgres's SQL says `now()` and leaves it unread.
    Now,
}

/// `From` conversions of the values the store binds, one line each.
macro_rules! arg_from {
    ($($t:ty => |$v:ident| $e:expr),* $(,)?) => {
        $(impl From<$t> for Arg {
            fn from($v: $t) -> Self {
                $e
            }
        })*
    };
}

arg_from! {
    String => |v| Arg::Text(Some(v)),
    &str => |v| Arg::Text(Some(v.to_owned())),
    &String => |v| Arg::Text(Some(v.clone())),
    Option<String> => |v| Arg::Text(v),
    &Option<String> => |v| Arg::Text(v.clone()),
    Option<&str> => |v| Arg::Text(v.map(str::to_owned)),
    Id => |v| Arg::Text(Some(v.to_string())),
    Option<Id> => |v| Arg::Text(v.map(|i| i.to_string())),
    i32 => |v| Arg::Int(Some(v)),
    Option<i32> => |v| Arg::Int(v),
    i64 => |v| Arg::Big(Some(v)),
    Option<i64> => |v| Arg::Big(v),
    f64 => |v| Arg::Float(Some(v)),
    Option<f64> => |v| Arg::Float(v),
    serde_json::Value => |v| Arg::Json(v),
    bool => |v| Arg::Flag(v),
    Vec<u8> => |v| Arg::Bytes(Some(v)),
    Option<Vec<u8>> => |v| Arg::Bytes(v),
    DateTime<Utc> => |v| Arg::Time(Some(v)),
    Option<DateTime<Utc>> => |v| Arg::Time(v),
    Vec<String> => |v| Arg::List(v),
}

/// The arguments of a statement, in placeholder order: `args![project, id, Arg::Now]`.
macro_rules! args {
    ($($v:expr),* $(,)?) => {
        vec![$($crate::common::sql::Arg::from($v)),*]
    };
}
pub(crate) use args;

/// A backend's statements: where reads, writes and transactions run.
#[async_trait]
pub(crate) trait Sql: Send + Sync {
    type Row: Cols + Send + Sync + 'static;
    type Tx: SqlTx<Row = Self::Row>;
    /// The SQL for a statement's now, bound as [`Arg::Now`] at placeholder `n`: `now()` in
    /// Postgres (the database's clock), `$n` in SQLite (the application supplies it).
    fn now(n: usize) -> String;
    /// The SQL for the time `time` plus `secs` seconds (both SQL expressions).
    fn plus_secs(time: &str, secs: &str) -> String;
    /// The SQL for "`col` is in the [`Arg::List`] at placeholder `n`".
    fn any(col: &str, n: usize) -> String;
    /// What a `SELECT` adds to lock the rows it reads until the transaction ends: `FOR UPDATE`
    /// in Postgres; nothing in SQLite, whose write transactions already exclude each other.
    const FOR_UPDATE: &'static str;
    /// Like [`Sql::FOR_UPDATE`], but not blocking foreign-key checks of rows that refer to
    /// the locked ones (Postgres: `FOR NO KEY UPDATE`).
    const FOR_NO_KEY_UPDATE: &'static str;
    /// The task list's dialect (`crate::task_list`).
    const DIALECT: Dialect;
    /// Tasks with the status tenants see: the view `task_records` in Postgres (a leased task
    /// is `preparing` there), the table `tasks` in SQLite (which stores that status).
    const RECORDS: &'static str;
    /// Rows of a read (SQLite: on the reader pool, which never waits for the writer).
    async fn read(&self, sql: &str, args: Vec<Arg>) -> StoreResult<Vec<Self::Row>>;
    /// Rows of a statement on the write side (SQLite: the one writer) in a transaction of its
    /// own: a write, or a read that must see a write just made.
    async fn write(&self, sql: &str, args: Vec<Arg>) -> StoreResult<Vec<Self::Row>>;
    /// Rows a write in a transaction of its own affected.
    async fn write_count(&self, sql: &str, args: Vec<Arg>) -> StoreResult<u64>;
    /// A write transaction (SQLite: holding the write lock from its first statement).
    async fn begin(&self) -> StoreResult<Self::Tx>;
}

/// Statements in a write transaction.
#[async_trait]
pub(crate) trait SqlTx: Send {
    type Row: Cols + Send + Sync + 'static;
    async fn fetch(&mut self, sql: &str, args: Vec<Arg>) -> StoreResult<Vec<Self::Row>>;
    /// Rows the statement affected.
    async fn execute(&mut self, sql: &str, args: Vec<Arg>) -> StoreResult<u64>;
    async fn commit(self) -> StoreResult<()>;
}

/// The one row a statement must answer.
pub(crate) fn one<R>(rows: Vec<R>) -> StoreResult<R> {
    rows.into_iter()
        .next()
        .ok_or(StoreError::Database(sqlx::Error::RowNotFound))
}

/// The first row, if any.
pub(crate) fn first<R>(rows: Vec<R>) -> Option<R> {
    rows.into_iter().next()
}

/// How one sqlx database binds an [`Arg`] and counts affected rows: what [`fetch`] and
/// [`execute`] need to serve both backends.
pub(crate) trait Bind: Database {
    fn bind<'q>(
        q: Query<'q, Self, Self::Arguments<'q>>,
        arg: Arg,
    ) -> Query<'q, Self, Self::Arguments<'q>>;
    fn affected(done: &Self::QueryResult) -> u64;
}

fn query<DB: Bind>(sql: &str, args: Vec<Arg>) -> Query<'_, DB, DB::Arguments<'_>> {
    args.into_iter()
        .fold(sqlx::query::<DB>(sql), |q, a| DB::bind(q, a))
}

/// Runs `sql` on `ex` and answers its rows.
pub(crate) async fn fetch<'c, DB, E>(ex: E, sql: &str, args: Vec<Arg>) -> StoreResult<Vec<DB::Row>>
where
    DB: Bind,
    E: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
{
    Ok(query::<DB>(sql, args).fetch_all(ex).await?)
}

/// Runs `sql` on `ex` and answers how many rows it affected.
pub(crate) async fn execute<'c, DB, E>(ex: E, sql: &str, args: Vec<Arg>) -> StoreResult<u64>
where
    DB: Bind,
    E: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
{
    Ok(DB::affected(&query::<DB>(sql, args).execute(ex).await?))
}

#[async_trait]
impl<DB> SqlTx for sqlx::Transaction<'static, DB>
where
    DB: Bind,
    DB::Row: Cols,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    type Row = DB::Row;

    async fn fetch(&mut self, sql: &str, args: Vec<Arg>) -> StoreResult<Vec<DB::Row>> {
        fetch(&mut **self, sql, args).await
    }

    async fn execute(&mut self, sql: &str, args: Vec<Arg>) -> StoreResult<u64> {
        execute(&mut **self, sql, args).await
    }

    async fn commit(self) -> StoreResult<()> {
        Ok(sqlx::Transaction::commit(self).await?)
    }
}
