//! How Postgres runs the statements written once for both backends (`crate::common::sql`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use ferrum_model::{Id, NewTask};
use sqlx::postgres::{PgArguments, PgQueryResult, PgRow};
use sqlx::query::Query;
use sqlx::{Postgres, Transaction};

use super::tasks::{cancel_unfinished, insert_tasks_with};
use super::PgStore;
use crate::common::queue::{Queue, Unfinished};
use crate::common::sql::{execute, fetch, Arg, Bind, Sql};
use crate::task_list::Dialect;
use crate::StoreResult;

impl Bind for Postgres {
    fn bind<'q>(q: Query<'q, Postgres, PgArguments>, arg: Arg) -> Query<'q, Postgres, PgArguments> {
        match arg {
            Arg::Text(v) => q.bind(v),
            Arg::Int(v) => q.bind(v),
            Arg::Big(v) => q.bind(v),
            Arg::Float(v) => q.bind(v),
            Arg::Flag(v) => q.bind(v),
            Arg::Bytes(v) => q.bind(v),
            Arg::Json(v) => q.bind(v),
            Arg::Time(v) => q.bind(v),
            Arg::List(v) => q.bind(v),
            // The SQL says now(): the database's clock, the same for the whole transaction.
            Arg::Now => q.bind(None::<DateTime<Utc>>),
        }
    }

    fn affected(done: &PgQueryResult) -> u64 {
        done.rows_affected()
    }
}

#[async_trait]
impl Sql for PgStore {
    type Row = PgRow;
    type Tx = Transaction<'static, Postgres>;

    const FOR_UPDATE: &'static str = " FOR UPDATE";
    const FOR_NO_KEY_UPDATE: &'static str = " FOR NO KEY UPDATE";
    const DIALECT: Dialect = Dialect::Postgres;
    const RECORDS: &'static str = "task_records";

    fn now(_: usize) -> String {
        "now()".into()
    }

    fn plus_secs(time: &str, secs: &str) -> String {
        format!("{time} + make_interval(secs => {secs})")
    }

    fn any(col: &str, n: usize) -> String {
        format!("{col} = ANY(${n})")
    }

    async fn read(&self, sql: &str, args: Vec<Arg>) -> StoreResult<Vec<PgRow>> {
        fetch(&self.pool, sql, args).await
    }

    async fn write(&self, sql: &str, args: Vec<Arg>) -> StoreResult<Vec<PgRow>> {
        fetch(&self.pool, sql, args).await
    }

    async fn write_count(&self, sql: &str, args: Vec<Arg>) -> StoreResult<u64> {
        execute(&self.pool, sql, args).await
    }

    async fn begin(&self) -> StoreResult<Self::Tx> {
        Ok(self.pool.begin().await?)
    }
}

#[async_trait]
impl Queue for PgStore {
    const WAITING: &'static str = "task_queue WHERE NOT leased";

    async fn insert_tasks(
        tx: &mut Self::Tx,
        project: Id,
        tasks: Vec<NewTask>,
        retries: Option<(i32, i32)>,
        limited: &mut Vec<String>,
    ) -> StoreResult<Vec<Id>> {
        let inserted = insert_tasks_with(tx, project, tasks, retries).await?;
        limited.extend(inserted.limited_codes);
        Ok(inserted.ids)
    }

    async fn cancel_unfinished(tx: &mut Self::Tx, project: Id, of: Unfinished) -> StoreResult<u64> {
        let (filter, id) = match of {
            Unfinished::Task(id) => ("t.id = $2", id),
            Unfinished::Batch(id) => ("t.batch_id = $2", id),
            Unfinished::Code(id) => ("t.code_id = $2", id),
        };
        cancel_unfinished(tx, &project.to_string(), filter, &id.to_string()).await
    }

    async fn after_commit(&self, limited: Vec<String>) {
        self.admit(limited).await;
    }
}
