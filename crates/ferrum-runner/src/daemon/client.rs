//! The runner side of the runner protocol: one method per call of
//! [`ferrum_model::protocol`], with the bearer credential (the runner token to register, the
//! runner's own credential after that), sensible timeouts, and 409 or 404 surfaced as
//! [`ApiError::LeaseLost`] so callers can drop the task.
//!
//! A runner may be given several API replicas (`ferrum runner --api URL,URL`): they share one
//! database, so any of them answers any call, a runner's credential included. The client
//! calls one until it cannot reach it, or until it (or a proxy in front of it) answers that
//! it cannot serve (502, 503, 504), then the next at once, in the same call; so a runner
//! follows the replicas that are up with no load balancer in front of them. Sending a call
//! twice is safe: each per-task call is fenced by the attempt (or log sequence) it carries,
//! and a lease whose answer was lost runs out and its task is leased again.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
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
    #[error("no API URL given")]
    NoApi,
}

impl ApiError {
    /// True for failures worth retrying: network trouble, 5xx, 429.
    pub fn is_transient(&self) -> bool {
        match self {
            ApiError::Network(_) => true,
            ApiError::Status { status, .. } => *status >= 500 || *status == 429,
            ApiError::LeaseLost(_) | ApiError::Io(_) | ApiError::NoApi => false,
        }
    }
}

/// HTTP client for `/runner/v1` of one or several API replicas.
#[derive(Clone)]
pub struct ApiClient {
    http: reqwest::Client,
    apis: Arc<Replicas>,
    token: String,
}

/// The replicas' `/runner/v1` bases and the one calls go to first; shared by every clone, so
/// a switch made by one call holds for the next.
struct Replicas {
    bases: Vec<String>,
    current: AtomicUsize,
}

impl ApiClient {
    /// A client of the API replicas at `apis` (base URLs, at least one).
    pub fn new(apis: &[String], token: &str) -> Result<Self, ApiError> {
        if apis.is_empty() {
            return Err(ApiError::NoApi);
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()?;
        let bases = apis
            .iter()
            .map(|api| format!("{}/runner/v1", api.trim_end_matches('/')))
            .collect();
        Ok(ApiClient {
            http,
            apis: Arc::new(Replicas {
                bases,
                current: AtomicUsize::new(0),
            }),
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

    /// Sends the request `build` makes (given `method`, the URL and the timeout) to the
    /// current replica; when that one cannot be reached (no connection, or none that lasted
    /// until its answer) or answers that it cannot serve, to each other in turn. Answers the
    /// first other answer, checked, or the last failure.
    async fn send(
        &self,
        method: Method,
        path: &str,
        timeout: Duration,
        build: impl Fn(RequestBuilder) -> RequestBuilder,
    ) -> Result<Response, ApiError> {
        let bases = &self.apis.bases;
        let first = self.apis.current.load(Ordering::Relaxed);
        let mut failure = ApiError::NoApi;
        for i in 0..bases.len() {
            let at = (first + i) % bases.len();
            let request = self
                .http
                .request(method.clone(), format!("{}{path}", bases[at]))
                .bearer_auth(&self.token)
                .timeout(timeout);
            match build(request).send().await {
                Ok(response) if unavailable(response.status()) => {
                    tracing::debug!(api = bases[at], status = %response.status(), "API replica cannot serve");
                    failure = check(response).await.err().unwrap_or(ApiError::NoApi);
                }
                Ok(response) => {
                    if at != first {
                        self.apis.current.store(at, Ordering::Relaxed);
                        tracing::info!(api = bases[at], "calling another API replica");
                    }
                    return check(response).await;
                }
                Err(e) => {
                    tracing::debug!(api = bases[at], error = %e, "API replica unreachable");
                    failure = ApiError::Network(e);
                }
            }
        }
        Err(failure)
    }

    async fn post<B: Serialize, R: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
        timeout: Duration,
    ) -> Result<R, ApiError> {
        let response = self
            .send(Method::POST, path, timeout, |r| r.json(body))
            .await?;
        Ok(response.json().await?)
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
            .send(Method::PUT, &path, CALL_TIMEOUT, |r| octets(r, &data))
            .await?;
        Ok(response.json().await?)
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
            .send(Method::PUT, &path, ZIP_TIMEOUT, |r| octets(r, &data))
            .await?;
        Ok(response.json().await?)
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
        let mut response = self.send(Method::GET, &path, ZIP_TIMEOUT, |r| r).await?;
        let mut file = tokio::fs::File::create(dest).await?;
        while let Some(chunk) = response.chunk().await? {
            file.write_all(&chunk).await?;
        }
        file.flush().await?;
        Ok(())
    }
}

/// `request` with `data` as its octet-stream body.
fn octets(request: RequestBuilder, data: &Bytes) -> RequestBuilder {
    request
        .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
        .body(data.clone())
}

/// An answer that says this replica cannot serve now, where another may: its database is
/// unreachable (503), or the proxy in front of it found no one behind (502, 504).
fn unavailable(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::BAD_GATEWAY | StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT
    )
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

#[cfg(test)]
#[path = "client_tests.rs"]
mod tests;
