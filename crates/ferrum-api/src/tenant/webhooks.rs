//! Webhooks: IronWorker's T3 route (project token in `?oauth=`) and Ferrum's per-code webhook
//! URLs, whose path holds a secret so that a third party never holds a project token.
//!
//! Both store the raw request body byte for byte as the payload, whatever its content type
//! (contract §5.8), and answer as soon as the task is committed. Retried deliveries
//! (`Idempotency-Key`, `X-GitHub-Delivery`, Slack retries) make one task: see
//! [`webhooks_sig::delivery_key`]. A Ferrum webhook may also check the sender's signature and
//! wait up to `sync_timeout` seconds for the task, answering with its result (`RESULT_FILE`)
//! when it returned one, else its stdout, so that a Slack bot can reply inline.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::header::{CONTENT_TYPE, HOST};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use ferrum_model::time::format;
use ferrum_model::validation::{new_task, TaskOptions};
use ferrum_model::{Id, NewTask, NewWebhook, SignatureScheme, Task, Webhook};
use ferrum_store::Delivery;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::auth::ProjectScope;
use super::extract::{whole, CodeId, LenientJson, QueryArgs, RawBody, WebhookId};
use super::render::Msg;
use super::tasks::TaskFields;
use super::webhooks_sig::{delivery_key, verify};
use super::Route;
use crate::openapi::bodies;
use crate::routes::Auth;
use crate::{ApiError, AppState};

const CODE_WEBHOOKS: &str = "/2/projects/{project_id}/codes/{code_id}/webhooks";
/// The public route: no token, the secret is the path.
pub const PUBLIC: &str = "/webhooks/{token}";
/// How often a synchronous delivery looks at its task.
const SYNC_POLL: Duration = Duration::from_millis(50);

pub fn routes() -> Vec<Route> {
    vec![
        Route::post(
            "/2/projects/{project_id}/tasks/webhook",
            "Queue one task whose payload is the raw request body (?code_name=, ?oauth=; \
             Idempotency-Key deduplicates retries)",
            ironworker,
        )
        .body(bodies::raw_payload())
        .query(bodies::webhook_query())
        .errors(&[429]),
        Route::post(
            CODE_WEBHOOKS,
            "Ferrum: create a webhook URL for a code: {\"signature\": \"slack\"|\"github\"|\
             \"hmac\"|null, \"secret\", \"sync_timeout\", task options} → {\"id\", \"url\"}; \
             the URL is shown only once",
            create,
        )
        .body(bodies::webhook()),
        Route::get(CODE_WEBHOOKS, "Ferrum: list a code's webhooks", list),
        Route::delete(
            "/2/projects/{project_id}/codes/{code_id}/webhooks/{webhook_id}",
            "Ferrum: delete a webhook; its URL stops working",
            delete,
        ),
        Route::post(
            PUBLIC,
            "Ferrum: deliver to a webhook (no token; the body becomes the payload). Answers \
             {\"id\"}, or with a sync_timeout the task's stdout once it ends",
            deliver,
        )
        .body(bodies::raw_payload())
        .errors(&[429])
        .auth(Auth::WebhookSecret),
    ]
}

/// Queues `task`, once per delivery key when the request carries one; wakes runners.
async fn enqueue(
    state: &AppState,
    project: Id,
    scope: &str,
    headers: &HeaderMap,
    task: NewTask,
) -> Result<Delivery, ApiError> {
    let delivery = match delivery_key(headers, &task.payload) {
        Some(key) => state.store.enqueue_once(project, scope, &key, task).await?,
        None => Delivery {
            task_id: state.store.enqueue(project, vec![task]).await?[0],
            duplicate: false,
        },
    };
    if !delivery.duplicate {
        crate::ops::count_created(state, crate::ops::metrics::Source::webhook, project, 1);
        state.queue.wake();
    }
    Ok(delivery)
}

#[derive(Serialize)]
struct Queued {
    id: Id,
    msg: &'static str,
}

impl From<Delivery> for Queued {
    fn from(d: Delivery) -> Self {
        Queued {
            id: d.task_id,
            msg: if d.duplicate {
                "Already queued."
            } else {
                "Queued up."
            },
        }
    }
}

/// The query of T3. Not [`TaskFields`] flattened: query values are strings, which a flattened
/// struct cannot turn into numbers.
#[derive(Deserialize)]
struct IronWorkerArgs {
    code_name: Option<String>,
    priority: Option<f64>,
    timeout: Option<f64>,
    delay: Option<f64>,
    cluster: Option<String>,
    label: Option<String>,
}

/// T3: the raw body becomes the payload byte for byte (contract §3.3, §5.8).
async fn ironworker(
    ProjectScope(project): ProjectScope,
    State(state): State<AppState>,
    QueryArgs(args): QueryArgs<IronWorkerArgs>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Json<Queued>, ApiError> {
    let options = TaskOptions {
        priority: args.priority,
        timeout: args.timeout,
        delay: args.delay,
        cluster: args.cluster,
        label: args.label,
    };
    let code_name = args.code_name.unwrap_or_default();
    let task = new_task(&code_name, body.to_vec(), options)?;
    let scope = format!("code:{code_name}");
    let delivery = enqueue(&state, project.id, &scope, &headers, task).await?;
    Ok(Json(delivery.into()))
}

/// A webhook as the API shows it; the URL secret and the signing secret are never shown.
#[derive(Serialize)]
struct WebhookJson {
    id: Id,
    project_id: Id,
    code_id: Id,
    code_name: String,
    signature: Option<&'static str>,
    sync_timeout: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    priority: Option<i32>,
    timeout: i32,
    delay: i32,
    cluster: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    label: Option<String>,
    created_at: String,
}

impl From<&Webhook> for WebhookJson {
    fn from(w: &Webhook) -> Self {
        WebhookJson {
            id: w.id,
            project_id: w.project_id,
            code_id: w.code_id,
            code_name: w.code_name.clone(),
            signature: w.signature.map(SignatureScheme::as_str),
            sync_timeout: w.sync_timeout,
            priority: w.task.priority,
            timeout: w.task.timeout,
            delay: w.task.delay,
            cluster: w.task.cluster.clone(),
            label: w.task.label.clone(),
            created_at: format(w.created_at),
        }
    }
}

#[derive(Deserialize)]
struct WebhookInput {
    signature: Option<String>,
    secret: Option<String>,
    sync_timeout: Option<f64>,
    #[serde(flatten)]
    fields: TaskFields,
}

#[derive(Serialize)]
struct CreatedWebhook {
    msg: &'static str,
    /// The URL to give the third party; it holds the secret and is not shown again.
    url: String,
    path: String,
    #[serde(flatten)]
    webhook: WebhookJson,
}

/// Where this API is reachable, as the caller reached it (`X-Forwarded-Proto` behind a proxy).
pub(crate) fn base_url(headers: &HeaderMap) -> String {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let host = text(HOST.as_str()).unwrap_or("localhost");
    let scheme = text("x-forwarded-proto").unwrap_or("http");
    format!("{scheme}://{host}")
}

async fn create(
    ProjectScope(project): ProjectScope,
    CodeId(code_id): CodeId,
    State(state): State<AppState>,
    headers: HeaderMap,
    LenientJson(body): LenientJson<WebhookInput>,
) -> Result<Json<CreatedWebhook>, ApiError> {
    let code = state
        .store
        .code(project.id, code_id)
        .await?
        .ok_or_else(|| ApiError::not_found("Code not found"))?;
    let task = new_task(&code.name, Vec::new(), body.fields.into())?;
    let sync_timeout = whole(body.sync_timeout).unwrap_or(0);
    let hook = NewWebhook::new(
        code_id,
        body.signature.as_deref(),
        body.secret,
        sync_timeout,
        task,
    )?;
    let token = ferrum_model::token::generate();
    let webhook = state
        .store
        .create_webhook(project.id, &token, hook)
        .await?
        .ok_or_else(|| ApiError::not_found("Code not found"))?;
    let path = PUBLIC.replace("{token}", &token);
    Ok(Json(CreatedWebhook {
        msg: "Created",
        url: format!("{}{path}", base_url(&headers)),
        path,
        webhook: WebhookJson::from(&webhook),
    }))
}

#[derive(Serialize)]
struct WebhookList {
    webhooks: Vec<WebhookJson>,
}

async fn list(
    ProjectScope(project): ProjectScope,
    CodeId(code_id): CodeId,
    State(state): State<AppState>,
) -> Result<Json<WebhookList>, ApiError> {
    // 404 for a code the project does not have, like every route naming one: an empty
    // list would tell another tenant nothing, but the answer must not differ by owner.
    state
        .store
        .code(project.id, code_id)
        .await?
        .ok_or_else(|| ApiError::not_found("Code not found"))?;
    let hooks = state.store.webhooks(project.id, code_id).await?;
    Ok(Json(WebhookList {
        webhooks: hooks.iter().map(WebhookJson::from).collect(),
    }))
}

async fn delete(
    ProjectScope(project): ProjectScope,
    CodeId(code_id): CodeId,
    WebhookId(id): WebhookId,
    State(state): State<AppState>,
) -> Result<Json<Msg>, ApiError> {
    if !state.store.delete_webhook(project.id, code_id, id).await? {
        return Err(ApiError::not_found("Webhook not found"));
    }
    Ok(Json(Msg::new("Deleted")))
}

/// A Slack Events API endpoint must echo `challenge` once when it is set up.
fn slack_challenge(hook: &Webhook, body: &[u8]) -> Option<Value> {
    if hook.signature != Some(SignatureScheme::Slack) {
        return None;
    }
    let v: Value = serde_json::from_slice(body).ok()?;
    (v.get("type")?.as_str()? == "url_verification").then(|| json!({"challenge": v["challenge"]}))
}

/// The public delivery route. An unknown URL is 404 and a bad signature 401; neither writes
/// anything.
async fn deliver(
    State(state): State<AppState>,
    Path(token): Path<String>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let hook = state
        .store
        .webhook_by_token(&token)
        .await?
        .ok_or_else(|| ApiError::not_found("Webhook not found"))?;
    if let (Some(scheme), Some(secret)) = (hook.signature, &hook.secret) {
        verify(scheme, secret, &headers, &body)
            .map_err(|e| ApiError::new(StatusCode::UNAUTHORIZED, e.to_string()))?;
    }
    if let Some(answer) = slack_challenge(&hook, &body) {
        return Ok(Json(answer).into_response());
    }
    let task = hook.task_for(body.to_vec());
    ferrum_model::validation::check_size("payload", task.payload.len())?;
    let scope = format!("webhook:{}", hook.id);
    let delivery = enqueue(&state, hook.project_id, &scope, &headers, task).await?;
    if hook.sync_timeout == 0 {
        return Ok(Json(Queued::from(delivery)).into_response());
    }
    let limit = Duration::from_secs(hook.sync_timeout.unsigned_abs().into());
    match wait_for_end(&state, hook.project_id, delivery.task_id, limit).await? {
        Some(task) => result_of(&state, &task).await,
        None => Ok(Json(Queued::from(delivery)).into_response()),
    }
}

/// The task once it has ended, or `None` when `limit` passes first.
async fn wait_for_end(
    state: &AppState,
    project: Id,
    id: Id,
    limit: Duration,
) -> Result<Option<Task>, ApiError> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let task = state
            .store
            .task(project, id)
            .await?
            .ok_or_else(|| ApiError::not_found("Task not found"))?;
        if task.status.is_terminal() {
            return Ok(Some(task));
        }
        if tokio::time::Instant::now() + SYNC_POLL > deadline {
            return Ok(None);
        }
        tokio::time::sleep(SYNC_POLL).await;
    }
}

/// The synchronous answer: the task's stdout as the body (JSON when it parses as JSON, text
/// otherwise), with the task's id and status in `X-Ferrum-Task-Id` / `X-Ferrum-Task-Status`.
async fn result_of(state: &AppState, task: &Task) -> Result<Response, ApiError> {
    let (body, content_type) = match crate::results::load(state, task.project_id, task.id).await? {
        Some((content_type, bytes)) => (bytes, HeaderValue::from_str(&content_type).ok()),
        None => {
            let stdout = state
                .store
                .read_log(task.project_id, task.id, true)
                .await?
                .unwrap_or_default();
            let content_type = if serde_json::from_slice::<Value>(&stdout).is_ok() {
                "application/json"
            } else {
                "text/plain; charset=utf-8"
            };
            (stdout.into(), Some(HeaderValue::from_static(content_type)))
        }
    };
    let mut resp = (StatusCode::OK, body).into_response();
    let h = resp.headers_mut();
    if let Some(content_type) = content_type {
        h.insert(CONTENT_TYPE, content_type);
    }
    h.insert(
        "x-ferrum-task-status",
        HeaderValue::from_static(task.status.as_str()),
    );
    if let Ok(id) = HeaderValue::from_str(&task.id.to_string()) {
        h.insert("x-ferrum-task-id", id);
    }
    Ok(resp)
}
