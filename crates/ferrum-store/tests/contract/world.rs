//! A fresh project on a fresh database of one backend, and small builders the tests share.

use std::sync::Arc;
use std::time::Duration;

use ferrum_model::{CodeSpec, Id, NewRevision, NewTask, TaskStatus};
use ferrum_store::testing::{self, TempDb};
use ferrum_store::{LeaseSpec, Outcome, Store};

#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Pg,
    Sqlite,
}

pub struct World {
    pub store: Arc<dyn Store>,
    pub project: Id,
    /// The Postgres pool, for statements past the store.
    pg: Option<sqlx::PgPool>,
    /// Keeps a SQLite database's directory alive for the test.
    db: Option<TempDb>,
}

pub async fn world(backend: Backend) -> World {
    let (store, pg, db): (Arc<dyn Store>, _, _) = match backend {
        Backend::Pg => {
            let store = testing::fresh_store().await.unwrap().0;
            let pool = store.pool().clone();
            (Arc::new(store), Some(pool), None)
        }
        Backend::Sqlite => {
            let (store, db) = testing::fresh_sqlite_store().await.unwrap();
            (Arc::new(store), None, Some(db))
        }
    };
    let user = store.create_user("t@example.com", false).await.unwrap();
    let project = store.create_project(user, "p").await.unwrap().id;
    World {
        store,
        project,
        pg,
        db,
    }
}

impl World {
    /// Another project of another user on the same database.
    pub async fn other_project(&self, name: &str) -> Id {
        let user = self
            .store
            .create_user(&format!("{name}@example.com"), false)
            .await
            .unwrap();
        self.store.create_project(user, name).await.unwrap().id
    }

    /// Runs `sql` past the store (the same text on both backends), as a row stored before a
    /// rule existed would be written; answers the rows it changed.
    pub async fn execute(&self, sql: &str) -> u64 {
        match (&self.pg, &self.db) {
            (Some(pool), _) => sqlx::query(sql)
                .execute(pool)
                .await
                .unwrap()
                .rows_affected(),
            (None, Some(db)) => db.execute(sql).await.unwrap(),
            (None, None) => unreachable!("every world has a database"),
        }
    }

    pub async fn code(&self, name: &str, spec: CodeSpec) -> Id {
        let rev = NewRevision {
            name: name.into(),
            spec,
            zip: None,
        };
        self.store.put_revision(self.project, rev).await.unwrap().id
    }

    pub async fn queue(&self, code: &str, priority: i32, delay: i32) -> Id {
        let t = task(code, priority, delay);
        self.store.enqueue(self.project, vec![t]).await.unwrap()[0]
    }

    pub async fn lease(&self, max: u32) -> Vec<ferrum_store::LeasedTask> {
        self.store
            .lease(&spec(max, Duration::from_secs(30)))
            .await
            .unwrap()
    }
}

pub fn task(code: &str, priority: i32, delay: i32) -> NewTask {
    NewTask {
        code_name: code.into(),
        payload: b"{}".to_vec(),
        priority: Some(priority),
        timeout: 3600,
        delay,
        cluster: "default".into(),
        ..NewTask::default()
    }
}

/// The runner the contract tests lease for, unless a test names another.
pub fn runner() -> Id {
    "00000000000000000000a11e".parse().unwrap()
}

pub fn spec(max: u32, lease_for: Duration) -> LeaseSpec {
    LeaseSpec {
        runner_id: runner(),
        cluster: "default".into(),
        max_tasks: max,
        lease_for,
    }
}

pub fn outcome(status: TaskStatus) -> Outcome {
    Outcome {
        status,
        exit_code: None,
        msg: None,
    }
}
