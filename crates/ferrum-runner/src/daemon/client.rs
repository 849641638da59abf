//! The runner side of the runner protocol: one method per call of
//! [`ferrum_model::protocol`], with the bearer credential (the runner token to register, the
//! runner's own credential after that), sensible timeouts, and 409 or 404 surfaced as
//! [`ApiError::LeaseLost`] so callers can drop the task.

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use ferrum_model::protocol::{
    AttemptRef, CompleteRequest, CompleteResponse, HeartbeatResponse, LeaseRequest, LeaseResponse,
    LogAck, LogStream, RegisterRequest, RegisterResponse, ResultAck, RunnerHeartbeat,
    RunnerHeartbeatResponse,
};
use ferrum_model::Id;
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::AsyncWriteExt;

/// Time allowed for ordinary calls.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Extra time on top of a lease's `wait_ms` before giving up on the long poll.
const LEASE_SLACK: Duration = Duration::from_secs(15);
/// Time allowed for downloading a code zip.
const ZIP_TIMEOUT: Duration = Duration::from_secs(600);

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 409 or 404: this runner's attempt no longer holds the task's lease (or, for a zip, no
    /// lease on a task of the revision).
    #[error("lease lost ({0})")]
    LeaseLost(u16),
    #[error("API answered {status}: {body}")]
    Status { status: u16, body: String },
    #[error("API unreachable: {0}")]
    Network(#[from] reqwest::Error),
    #[error("writing zip: {0}")]
    Io(#[from] std::io::Error),
}

impl ApiError {
    /// True for failures worth retrying: network trouble, 5xx, 429.
    pub fn is_transient(&self) -> bool {
        match self {
            ApiError::Network(_) => true,
            ApiError::Status { status, .. } => *status >= 500 || *status == 429,
            ApiError::LeaseLost(_) | ApiError::Io(_) => false,
        }
    }
}

/// HTTP client for `/runner/v1`.
#[derive(Clone)]
pub struct ApiClient {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl ApiClient {
    pub fn new(api: &str, token: &str) -> Result<Self, ApiError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()?;
        Ok(ApiClient {
            http,
            base: format!("{}/runner/v1", api.trim_end_matches('/')),
            token: token.to_owned(),
        })
    }

    /// The same client calling with `token`: the runner's own credential, once registered.
    pub fn with_token(&self, token: &str) -> Self {
        ApiClient {
            token: token.to_owned(),
            ..self.clone()
        }
    }

    fn request(&self, method: Method, path: &str, timeout: Duration) -> RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .timeout(timeout)
    }

    async fn post<B: Serialize, R: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
        timeout: Duration,
    ) -> Result<R, ApiError> {
        let response = self
            .request(Method::POST, path, timeout)
            .json(body)
            .send()
            .await?;
        Ok(check(response).await?.json().await?)
    }

    pub async fn register(&self, req: &RegisterRequest) -> Result<RegisterResponse, ApiError> {
        self.post("/register", req, CALL_TIMEOUT).await
    }

    /// The runner's own heartbeat: alive, running this many tasks; answers its drain state.
    pub async fn runner_heartbeat(
        &self,
        req: &RunnerHeartbeat,
    ) -> Result<RunnerHeartbeatResponse, ApiError> {
        self.post("/heartbeat", req, CALL_TIMEOUT).await
    }

    pub async fn lease(&self, req: &LeaseRequest) -> Result<LeaseResponse, ApiError> {
        let timeout = Duration::from_millis(req.wait_ms) + LEASE_SLACK;
        self.post("/lease", req, timeout).await
    }

    pub async fn started(&self, task: Id, attempt: i32) -> Result<HeartbeatResponse, ApiError> {
        let path = format!("/tasks/{task}/started");
        self.post(&path, &AttemptRef { attempt }, CALL_TIMEOUT)
            .await
    }

    pub async fn heartbeat(&self, task: Id, attempt: i32) -> Result<HeartbeatResponse, ApiError> {
        let path = format!("/tasks/{task}/heartbeat");
        self.post(&path, &AttemptRef { attempt }, CALL_TIMEOUT)
            .await
    }

    pub async fn log(
        &self,
        task: Id,
        attempt: i32,
        seq: u64,
        stream: LogStream,
        data: Bytes,
    ) -> Result<LogAck, ApiError> {
        let path = format!(
            "/tasks/{task}/log?attempt={attempt}&seq={seq}&stream={}",
            stream.as_str()
        );
        let response = self
            .request(Method::PUT, &path, CALL_TIMEOUT)
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(data)
            .send()
            .await?;
        Ok(check(response).await?.json().await?)
    }

    /// Sends the task's result (`RESULT_FILE`), before `complete`.
    pub async fn put_result(
        &self,
        task: Id,
        attempt: i32,
        data: Bytes,
    ) -> Result<ResultAck, ApiError> {
        let path = format!("/tasks/{task}/result?attempt={attempt}");
        let response = self
            .request(Method::PUT, &path, ZIP_TIMEOUT)
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(data)
            .send()
            .await?;
        Ok(check(response).await?.json().await?)
    }

    pub async fn complete(
        &self,
        task: Id,
        req: &CompleteRequest,
    ) -> Result<CompleteResponse, ApiError> {
        self.post(&format!("/tasks/{task}/complete"), req, CALL_TIMEOUT)
            .await
    }

    /// Streams a revision's zip into `dest`.
    pub async fn download_zip(&self, revision: Id, dest: &Path) -> Result<(), ApiError> {
        let path = format!("/revisions/{revision}/zip");
        let mut response =
            check(self.request(Method::GET, &path, ZIP_TIMEOUT).send().await?).await?;
        let mut file = tokio::fs::File::create(dest).await?;
        while let Some(chunk) = response.chunk().await? {
            file.write_all(&chunk).await?;
        }
        file.flush().await?;
        Ok(())
    }
}

async fn check(response: Response) -> Result<Response, ApiError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    // The runner API answers 404 for a task that is not (or no longer) this runner's.
    if status == StatusCode::CONFLICT || status == StatusCode::NOT_FOUND {
        return Err(ApiError::LeaseLost(status.as_u16()));
    }
    let body = response.text().await.unwrap_or_default();
    Err(ApiError::Status {
        status: status.as_u16(),
        body: body.chars().take(500).collect(),
    })
}
