//! A running API on a fresh database, tenants to call it with, and ways to see what it wrote.

use std::io::{Cursor, Write};
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use ferrum_api::queue_signal::QueueSignal;
use ferrum_api::{ApiConfig, AppState};
use ferrum_blob::LocalDir;
use ferrum_model::Id;
use ferrum_store::testing::fresh_store;
use ferrum_store::{AccountStore, PgStore};
use reqwest::Method;
use serde_json::Value;

/// Zips in tests may unpack to this much; the zip-bomb test goes past it.
pub const MAX_UNPACKED: u64 = 1024 * 1024;
/// The Python client's multipart boundary, `$` included (contract §3.2 C2).
const BOUNDARY: &str = "----------ThIs_Is_tHe_bouNdaRY_$";

pub struct TestApp {
    pub base: String,
    pub store: PgStore,
    pub blob_dir: PathBuf,
    http: reqwest::Client,
}

/// A user with a token and one project.
pub struct Tenant {
    pub token: String,
    pub project: Id,
}

/// An answer, read in full.
pub struct Resp {
    pub status: u16,
    pub content_type: Option<String>,
    pub headers: reqwest::header::HeaderMap,
    pub body: Bytes,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn msg(&self) -> String {
        self.json()["msg"].as_str().unwrap_or_default().to_owned()
    }

    /// Asserts the status and that every answer carries a content type (contract §1.3).
    pub fn expect(self, status: u16) -> Self {
        assert_eq!(
            self.status,
            status,
            "body: {}",
            String::from_utf8_lossy(&self.body)
        );
        assert!(self.content_type.is_some(), "no Content-Type");
        self
    }
}

/// What a request sends.
pub enum Body {
    None,
    Json(Value),
    Raw(Vec<u8>),
    Multipart(Vec<u8>),
}

/// Row and object counts, to show a refused request wrote nothing.
#[derive(Debug, PartialEq, Eq)]
pub struct Counts {
    pub codes: i64,
    pub revisions: i64,
    pub tasks: i64,
    pub schedules: i64,
    pub blobs: usize,
}

impl TestApp {
    pub async fn start() -> TestApp {
        Self::start_with(ApiConfig::default()).await
    }

    /// [`TestApp::start`] with the operator settings of `config` (zips still capped at
    /// [`MAX_UNPACKED`]).
    pub async fn start_with(config: ApiConfig) -> TestApp {
        let (store, _url) = fresh_store()
            .await
            .expect("a fresh test database: is Postgres running (FERRUM_TEST_DATABASE_URL)?");
        let blob_dir = std::env::temp_dir().join(format!("ferrum-api-test-{}", Id::generate()));
        let config = ApiConfig {
            max_zip_unpacked_bytes: MAX_UNPACKED,
            ..config
        };
        let state = AppState {
            store: Arc::new(store.clone()),
            blobs: Arc::new(LocalDir::new(&blob_dir).await.unwrap()),
            config: Arc::new(config),
            queue: QueueSignal::default(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(listener, ferrum_api::router(state))
                .await
                .unwrap();
        });
        TestApp {
            base: format!("http://{addr}"),
            store,
            blob_dir,
            http: reqwest::Client::new(),
        }
    }

    /// A new user owning a new project, with a token.
    pub async fn tenant(&self, name: &str) -> Tenant {
        let user = self
            .store
            .create_user(&format!("{name}@example.com"), false)
            .await
            .unwrap();
        let token = format!("tok-{name}-{}", Id::generate());
        self.store.add_user_token(user, &token).await.unwrap();
        let project = self.store.create_project(user, name).await.unwrap();
        Tenant {
            token,
            project: project.id,
        }
    }

    pub async fn call(&self, method: Method, path: &str, token: Option<&str>, body: Body) -> Resp {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            req = req.header("Authorization", format!("OAuth {token}"));
        }
        req = match body {
            Body::None => req,
            Body::Json(v) => req
                .header("Content-Type", "application/json")
                .body(v.to_string()),
            Body::Raw(bytes) => req.body(bytes),
            Body::Multipart(bytes) => req
                .header(
                    "Content-Type",
                    format!("multipart/form-data; boundary={BOUNDARY}"),
                )
                .body(bytes),
        };
        let resp = req.send().await.unwrap();
        Resp {
            status: resp.status().as_u16(),
            content_type: resp
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_owned()),
            headers: resp.headers().clone(),
            body: resp.bytes().await.unwrap(),
        }
    }

    pub async fn get(&self, t: &Tenant, path: &str) -> Resp {
        self.call(Method::GET, path, Some(&t.token), Body::None)
            .await
    }

    pub async fn post(&self, t: &Tenant, path: &str, body: Value) -> Resp {
        self.call(Method::POST, path, Some(&t.token), Body::Json(body))
            .await
    }

    /// Uploads a code the way the clients do: multipart `data` JSON plus an optional zip.
    pub async fn upload(&self, t: &Tenant, data: Value, zip: Option<&[u8]>) -> Resp {
        let path = format!("/2/projects/{}/codes", t.project);
        let body = Body::Multipart(multipart(&data.to_string(), zip));
        self.call(Method::POST, &path, Some(&t.token), body).await
    }

    /// Uploads the code `name` running `hello.py`; returns its id.
    pub async fn hello_code(&self, t: &Tenant, name: &str) -> String {
        let data = serde_json::json!({"name": name, "runtime": "python", "file_name": "hello.py"});
        let zip = zip_of(&[("hello.py", b"print('hello')\n")]);
        let resp = self.upload(t, data, Some(&zip)).await.expect(200);
        resp.json()["id"].as_str().unwrap().to_owned()
    }

    /// Queues one task of `code` with `payload`; returns its id.
    pub async fn queue(&self, t: &Tenant, code: &str, payload: &str) -> String {
        let body = serde_json::json!({"tasks": [{"code_name": code, "payload": payload}]});
        let resp = self
            .post(t, &format!("/2/projects/{}/tasks", t.project), body)
            .await
            .expect(200);
        resp.json()["tasks"][0]["id"].as_str().unwrap().to_owned()
    }

    /// Creates a schedule of `code` every 60 s; returns its id.
    pub async fn schedule(&self, t: &Tenant, code: &str) -> String {
        let body = serde_json::json!({"schedules": [{"code_name": code, "payload": "{}", "run_every": 60}]});
        let resp = self
            .post(t, &format!("/2/projects/{}/schedules", t.project), body)
            .await
            .expect(200);
        resp.json()["schedules"][0]["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    pub async fn counts(&self) -> Counts {
        let count = |table: &'static str| async move {
            sqlx::query_scalar::<_, i64>(&format!("SELECT count(*) FROM {table}"))
                .fetch_one(self.store.pool())
                .await
                .unwrap()
        };
        Counts {
            codes: count("codes").await,
            revisions: count("code_revisions").await,
            tasks: count("tasks").await,
            schedules: count("schedules").await,
            blobs: count_files(&self.blob_dir),
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.blob_dir);
    }
}

fn count_files(dir: &std::path::Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| {
            if e.file_type().unwrap().is_dir() {
                count_files(&e.path())
            } else {
                1
            }
        })
        .sum()
}

/// A multipart body as the Python client builds it.
pub fn multipart(data: &str, zip: Option<&[u8]>) -> Vec<u8> {
    multipart_of(BOUNDARY, &[("data", data)], zip.map(|z| ("code.zip", z)))
}

/// A multipart body with `boundary`: the text `fields`, then `file` (its file name and bytes)
/// as the `file` part when given.
pub fn multipart_of(
    boundary: &str,
    fields: &[(&str, &str)],
    file: Option<(&str, &[u8])>,
) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    if let Some((file_name, bytes)) = file {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; \
                 filename=\"{file_name}\"\r\nContent-Type: application/zip\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    body
}

/// A deflated zip of the given files.
pub fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for (name, data) in entries {
        w.start_file(*name, zip::write::SimpleFileOptions::default())
            .unwrap();
        w.write_all(data).unwrap();
    }
    w.finish().unwrap().into_inner()
}

/// A zip holding one symlink.
pub fn zip_with_symlink(name: &str, target: &str) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    w.add_symlink(name, target, zip::write::SimpleFileOptions::default())
        .unwrap();
    w.finish().unwrap().into_inner()
}
