//! Batch routes: fan-out of one task per item, fan-in to a reduce task (`ferrum_store::batches`
//! holds the rules; [`FanIn`] is the task-event handler that drives them).

use std::collections::BTreeMap;

use async_trait::async_trait;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::Json;
use ferrum_model::batch::{MAX_BATCH_BODY_BYTES, MAX_BATCH_ITEMS, MAX_RESULTS_PER_PAGE};
use ferrum_model::limits::MAX_PAYLOAD_BYTES;
use ferrum_model::protocol::BatchInput as ReduceInputFile;
use ferrum_model::time::format;
use ferrum_model::validation::{new_task, TaskOptions};
use ferrum_model::{Batch, BatchItem, Id, NewBatch, NewReduce};
use ferrum_store::TaskEvent;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::auth::ProjectScope;
use super::extract::{payload_bytes, whole, BatchId, LenientJson, PageArgs, QueryArgs};
use super::render::Msg;
use super::task_auth::MaybeTaskCaller;
use super::tasks::TaskFields;
use super::Route;
use crate::openapi::bodies;
use crate::task_events::TaskEventHandler;
use crate::{ApiError, AppState};

pub fn routes() -> Vec<Route> {
    vec![
        Route::post(
            "/2/projects/{project_id}/batches",
            "Queue a batch: one task per item of {\"payloads\"}, then an optional reduce task",
            create,
        )
        .body(bodies::batch())
        .with_body_limit(MAX_BATCH_BODY_BYTES),
        Route::get(
            "/2/projects/{project_id}/batches",
            "List batches, newest first",
            list,
        ),
        Route::get(
            "/2/projects/{project_id}/batches/{batch_id}",
            "Get a batch with its counts",
            get_batch,
        ),
        Route::get(
            "/2/projects/{project_id}/batches/{batch_id}/results",
            "A batch's items in index order (after=INDEX, per_page=N): status and result",
            results,
        ),
        Route::get(
            "/2/projects/{project_id}/batches/{batch_id}/result",
            "The result of a batch's reduce task",
            result,
        ),
        Route::post(
            "/2/projects/{project_id}/batches/{batch_id}/cancel",
            "Cancel what has not finished of a batch",
            cancel,
        ),
    ]
}

#[derive(Deserialize)]
struct ReduceInput {
    code_name: Option<String>,
    payload: Option<Value>,
    timeout: Option<f64>,
    priority: Option<f64>,
}

#[derive(Deserialize)]
struct BatchInput {
    code_name: Option<String>,
    payloads: Option<Vec<Value>>,
    reduce: Option<ReduceInput>,
    max_concurrency: Option<f64>,
    tolerated_failure_count: Option<f64>,
    tolerated_failure_percent: Option<f64>,
    retries: Option<f64>,
    retries_delay: Option<f64>,
    #[serde(flatten)]
    fields: TaskFields,
}

/// An item's payload: a string as it is, any other JSON value as its text.
fn item_payload(v: Value) -> Vec<u8> {
    payload_bytes(Some(v))
}

fn bounded(name: &str, v: Option<f64>, min: i32, max: i32) -> Result<Option<i32>, ApiError> {
    match whole(v) {
        Some(n) if !(min..=max).contains(&n) => Err(ApiError::bad_request(format!(
            "{name} must be between {min} and {max}"
        ))),
        n => Ok(n),
    }
}

/// Validates a batch; the first bad field is named and nothing is written.
fn validate(b: BatchInput) -> Result<NewBatch, ApiError> {
    let code_name = b.code_name.unwrap_or_default();
    let payloads = b.payloads.unwrap_or_default();
    if payloads.is_empty() {
        return Err(ApiError::bad_request(
            "payloads must hold at least one item",
        ));
    }
    if payloads.len() > MAX_BATCH_ITEMS {
        return Err(ApiError::bad_request(format!(
            "payloads may hold at most {MAX_BATCH_ITEMS} items"
        )));
    }
    let opts: TaskOptions = b.fields.into();
    if opts.delay.is_some_and(|d| d != 0.0) {
        return Err(ApiError::bad_request("delay is not supported for batches"));
    }
    // The options apply to every item: validate them once, then each item's payload size.
    let template = new_task(&code_name, Vec::new(), opts)?;
    let mut items = Vec::with_capacity(payloads.len());
    for (i, p) in payloads.into_iter().enumerate() {
        let bytes = item_payload(p);
        if bytes.len() > MAX_PAYLOAD_BYTES {
            return Err(ApiError::bad_request(format!(
                "payloads[{i}]: an item may be at most {MAX_PAYLOAD_BYTES} bytes"
            )));
        }
        items.push(bytes);
    }
    let reduce = b
        .reduce
        .map(|r| {
            let t = new_task(
                &r.code_name.unwrap_or_default(),
                payload_bytes(r.payload),
                TaskOptions {
                    priority: r.priority,
                    timeout: r.timeout,
                    ..TaskOptions::default()
                },
            )
            .map_err(|e| {
                let mut e = ApiError::from(e);
                e.msg = format!("reduce: {}", e.msg);
                e
            })?;
            Ok::<_, ApiError>(NewReduce {
                code_name: t.code_name,
                payload: t.payload,
                timeout: t.timeout,
                priority: t.priority,
            })
        })
        .transpose()?;
    Ok(NewBatch {
        code_name: template.code_name,
        payloads: items,
        reduce,
        max_concurrency: bounded("max_concurrency", b.max_concurrency, 1, 100_000)?,
        tolerated_failure_count: bounded(
            "tolerated_failure_count",
            b.tolerated_failure_count,
            0,
            MAX_BATCH_ITEMS as i32,
        )?,
        tolerated_failure_percent: bounded(
            "tolerated_failure_percent",
            b.tolerated_failure_percent,
            0,
            100,
        )?,
        priority: template.priority,
        timeout: template.timeout,
        retries: bounded("retries", b.retries, 0, ferrum_model::limits::MAX_RETRIES)?,
        retries_delay: bounded(
            "retries_delay",
            b.retries_delay,
            0,
            ferrum_model::limits::MAX_DELAY_SECS,
        )?,
        cluster: template.cluster,
        label: template.label,
        parent_id: None,
    })
}

#[derive(Serialize)]
struct Created {
    id: Id,
    total: i32,
    status: &'static str,
}

async fn create(
    ProjectScope(project): ProjectScope,
    MaybeTaskCaller(task_caller): MaybeTaskCaller,
    State(state): State<AppState>,
    LenientJson(body): LenientJson<BatchInput>,
) -> Result<Json<Created>, ApiError> {
    let mut batch = validate(body)?;
    // Queued from inside a task (its task token): the items and the reduce are its children,
    // within the same runaway guard as tasks it queues one by one.
    if let Some(caller) = task_caller {
        let children = batch.payloads.len() + usize::from(batch.reduce.is_some());
        batch.parent_id = Some(super::tasks::spawn(&state, &caller, children).await?);
    }
    let created = state.store.create_batch(project.id, batch).await?;
    state.queue.wake();
    Ok(Json(Created {
        id: created.id,
        total: created.total,
        status: created.status.as_str(),
    }))
}

/// A batch as `GET …/batches/{id}` answers it.
#[derive(Serialize)]
struct BatchJson {
    id: Id,
    project_id: Id,
    code_name: String,
    status: &'static str,
    total: i32,
    done: i32,
    failed: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    counts: Option<BTreeMap<&'static str, i64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reduce_code_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reduce_task_id: Option<Id>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_concurrency: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tolerated_failure_count: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tolerated_failure_percent: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    label: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    msg: Option<String>,
    /// The task that queued the batch (with its task token).
    #[serde(skip_serializing_if = "Option::is_none")]
    parent_id: Option<Id>,
    created_at: String,
    updated_at: String,
}

impl BatchJson {
    fn new(b: &Batch, with_counts: bool) -> Self {
        BatchJson {
            id: b.id,
            project_id: b.project_id,
            code_name: b.code_name.clone(),
            status: b.status.as_str(),
            total: b.total,
            done: b.done,
            failed: b.failed,
            counts: with_counts.then(|| b.counts.iter().map(|(s, n)| (s.as_str(), *n)).collect()),
            reduce_code_name: b.reduce_code_name.clone(),
            reduce_task_id: b.reduce_task_id,
            max_concurrency: b.max_concurrency,
            tolerated_failure_count: b.tolerated_failure_count,
            tolerated_failure_percent: b.tolerated_failure_percent,
            parent_id: b.parent_id,
            label: b.label.clone(),
            msg: b.msg.clone(),
            created_at: format(b.created_at),
            updated_at: format(b.updated_at),
        }
    }
}

async fn find(state: &AppState, project: Id, id: Id) -> Result<Batch, ApiError> {
    state
        .store
        .batch(project, id)
        .await?
        .ok_or_else(|| ApiError::not_found("Batch not found"))
}

async fn get_batch(
    ProjectScope(project): ProjectScope,
    BatchId(id): BatchId,
    State(state): State<AppState>,
) -> Result<Json<BatchJson>, ApiError> {
    Ok(Json(BatchJson::new(
        &find(&state, project.id, id).await?,
        true,
    )))
}

#[derive(Serialize)]
struct BatchList {
    batches: Vec<BatchJson>,
}

async fn list(
    ProjectScope(project): ProjectScope,
    State(state): State<AppState>,
    QueryArgs(page): QueryArgs<PageArgs>,
) -> Result<Json<BatchList>, ApiError> {
    let batches = state.store.batches(project.id, page.page()).await?;
    Ok(Json(BatchList {
        batches: batches.iter().map(|b| BatchJson::new(b, false)).collect(),
    }))
}

#[derive(Deserialize)]
struct ResultsArgs {
    after: Option<i32>,
    per_page: Option<i64>,
}

/// A result as JSON when it parses, else as a string.
pub(crate) fn result_value(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
}

/// One element of the results route, and one line of a reduce task's `BATCH_RESULTS_FILE`.
pub(crate) async fn item_json(state: &AppState, item: &BatchItem) -> Result<Value, ApiError> {
    let mut v = json!({"index": item.index, "task_id": item.task_id, "status": item.status});
    let bytes = match (&item.result, &item.result_blob_key) {
        (Some(data), _) => Some(data.to_vec()),
        (None, Some(key)) => state.blobs.get(key).await?.map(|b| b.to_vec()),
        (None, None) => None,
    };
    if let Some(bytes) = bytes {
        v["result"] = result_value(&bytes);
    }
    if let Some(msg) = &item.msg {
        v["msg"] = json!(msg);
    }
    Ok(v)
}

async fn results(
    ProjectScope(project): ProjectScope,
    BatchId(id): BatchId,
    State(state): State<AppState>,
    QueryArgs(args): QueryArgs<ResultsArgs>,
) -> Result<Json<Value>, ApiError> {
    let limit = args.per_page.unwrap_or(100).clamp(1, MAX_RESULTS_PER_PAGE);
    let items = state
        .store
        .batch_items(project.id, id, args.after, limit)
        .await?
        .ok_or_else(|| ApiError::not_found("Batch not found"))?;
    let mut out = Vec::with_capacity(items.len());
    for item in &items {
        out.push(item_json(&state, item).await?);
    }
    Ok(Json(json!({ "results": out })))
}

/// A reduce task's input: every item of the batch as one JSON line, in index order.
pub(crate) async fn reduce_input(
    state: &AppState,
    project: Id,
    batch: Id,
) -> Result<ReduceInputFile, ApiError> {
    let mut lines = String::new();
    let mut after = None;
    loop {
        let items = state
            .store
            .batch_items(project, batch, after, MAX_RESULTS_PER_PAGE)
            .await?
            .unwrap_or_default();
        for item in &items {
            lines.push_str(&item_json(state, item).await?.to_string());
            lines.push('\n');
        }
        match items.last() {
            Some(last) if items.len() as i64 == MAX_RESULTS_PER_PAGE => after = Some(last.index),
            _ => break,
        }
    }
    Ok(ReduceInputFile {
        batch_id: batch,
        results_jsonl: lines,
    })
}

/// The reduce task's result, as `GET …/tasks/{id}/result` answers it.
async fn result(
    ProjectScope(project): ProjectScope,
    BatchId(id): BatchId,
    State(state): State<AppState>,
) -> Result<Response, ApiError> {
    let batch = find(&state, project.id, id).await?;
    let none = || ApiError::not_found("The batch has no result yet");
    let task = batch.reduce_task_id.ok_or_else(none)?;
    let _ = task;
    let (data, key) = state
        .store
        .batch_result(project.id, id)
        .await?
        .ok_or_else(none)?;
    let bytes = match (data, key) {
        (Some(d), _) => d,
        (None, Some(k)) => state.blobs.get(&k).await?.ok_or_else(none)?.to_vec(),
        (None, None) => return Err(none()),
    };
    let content_type = if serde_json::from_slice::<Value>(&bytes).is_ok() {
        "application/json"
    } else {
        "application/octet-stream"
    };
    Ok(([(CONTENT_TYPE, content_type)], bytes).into_response())
}

async fn cancel(
    ProjectScope(project): ProjectScope,
    BatchId(id): BatchId,
    State(state): State<AppState>,
) -> Result<Json<Msg>, ApiError> {
    let status = state
        .store
        .cancel_batch(project.id, id)
        .await?
        .ok_or_else(|| ApiError::not_found("Batch not found"))?;
    Ok(Json(Msg::new(match status {
        ferrum_model::BatchStatus::Cancelled => "Cancelled".to_owned(),
        s => format!("Batch already finished: {s}"),
    })))
}

/// The fan-in: counts batch items' final states and queues reduce tasks (once each).
pub struct FanIn;

#[async_trait]
impl TaskEventHandler for FanIn {
    fn name(&self) -> &'static str {
        "batch fan-in"
    }

    async fn handle(&self, state: &AppState, events: &[TaskEvent]) -> Result<(), String> {
        if events.iter().all(|e| e.batch_id.is_none()) {
            return Ok(());
        }
        let report = state
            .store
            .fan_in(events)
            .await
            .map_err(|e| e.to_string())?;
        if report.queued_any() {
            state.queue.wake();
        }
        Ok(())
    }
}
