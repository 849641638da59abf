//! The runner protocol, server side (messages in `ferrum_model::protocol`).
//!
//! The trust model (docs/ARCHITECTURE.md): a runner token, bound to one cluster, may only
//! register runners of that cluster. Registering answers the runner's own credential; every
//! later call authenticates with it ([`RunnerAuth`]), so the API knows which runner calls, not
//! just which cluster. A runner leases only tasks of its token's cluster, and every per-task
//! call is fenced in the store by the lease it holds: this task, this runner, this attempt.
//! A task that is not the caller's gets 404 and a stale attempt of its own 409; neither
//! changes anything. A revision's zip is served only to a runner holding a lease on a task of
//! that revision. Revoking the token takes the authority of every runner it registered.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use ferrum_model::limits::{self, MAX_RUNNER_CONCURRENCY};
use ferrum_model::protocol::{
    AttemptRef, CompleteRequest, CompleteResponse, HeartbeatResponse, Lease, LeaseRequest,
    LeaseResponse, LogAck, LogStream, RegisterRequest, RegisterResponse, RunSpec, RunnerHeartbeat,
    RunnerHeartbeatResponse,
};
use ferrum_model::{Id, TaskStatus};
use ferrum_store::{Fenced, LeaseSpec, LeasedTask, Outcome, RunnerIdentity};
use serde::Deserialize;

use crate::openapi::bodies;
use crate::routes::Route;
use crate::{ApiError, AppState};

/// Longest hostname a runner's registration keeps.
const MAX_HOSTNAME_CHARS: usize = 255;
/// Longest a lease request is held open.
const MAX_WAIT: Duration = Duration::from_secs(30);
/// How often a held lease request looks at the queue even without a wake-up: covers delayed
/// tasks becoming due and notifications from other replicas that were missed.
const RECHECK: Duration = Duration::from_millis(500);

/// The runner protocol's routes, for the router and the OpenAPI document. Every one takes a
/// runner token (`Authorization: Bearer …`), not a tenant token.
pub(crate) fn routes() -> Vec<Route> {
    vec![
        Route::post(
            "/runner/v1/register",
            "Runner protocol: register a runner daemon with a runner token; answers the \
             runner's own credential (`runner_secret`) for every later call",
            register,
        )
        .body(bodies::runner::register()),
        Route::post(
            "/runner/v1/heartbeat",
            "Runner protocol: the runner's own heartbeat (tasks running); answers whether it \
             is asked to drain and whether it counts as drained",
            runner_heartbeat,
        )
        .body(bodies::runner::runner_heartbeat()),
        Route::post(
            "/runner/v1/lease",
            "Runner protocol: lease runnable tasks of the runner's cluster (long-poll); a \
             runner asked to drain gets none and `draining: true`",
            lease,
        )
        .body(bodies::runner::lease()),
        Route::post(
            "/runner/v1/tasks/{id}/started",
            "Runner protocol: the task's container started",
            started,
        )
        .body(bodies::runner::attempt()),
        Route::post(
            "/runner/v1/tasks/{id}/heartbeat",
            "Runner protocol: renew a lease; answers whether a cancel was requested",
            heartbeat,
        )
        .body(bodies::runner::attempt()),
        Route::put(
            "/runner/v1/tasks/{id}/log",
            "Runner protocol: one log chunk (?attempt=&seq=&stream=), raw body",
            append_log,
        ),
        Route::post(
            "/runner/v1/tasks/{id}/complete",
            "Runner protocol: how the attempt ended",
            complete,
        )
        .body(bodies::runner::complete()),
        Route::get(
            "/runner/v1/revisions/{id}/zip",
            "Runner protocol: a code revision's zip",
            revision_zip,
        ),
    ]
}

/// The bearer credential of a runner call.
fn bearer(parts: &Parts) -> Result<&str, ApiError> {
    parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(ApiError::unauthorized)
}

/// A runner token, as `register` takes it; checked by the store when it registers.
pub struct RunnerToken(String);

impl FromRequestParts<AppState> for RunnerToken {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, ApiError> {
        Ok(RunnerToken(bearer(parts)?.to_owned()))
    }
}

/// A registered runner, authenticated by its own credential: which runner calls, and the
/// cluster of the token it registered with. Anything else (a runner token, a revoked token's
/// runner, a tenant token) gets 401.
pub struct RunnerAuth(pub RunnerIdentity);

impl FromRequestParts<AppState> for RunnerAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let identity = state
            .store
            .authenticate_runner_secret(bearer(parts)?)
            .await?
            .ok_or_else(ApiError::unauthorized)?;
        Ok(RunnerAuth(identity))
    }
}

fn task_id(raw: &str) -> Result<Id, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::not_found("Task not found"))
}

/// The value of a fenced call; 409 when the runner's attempt is stale, 404 when the task is
/// not the runner's (the same answer as for a task that does not exist).
pub(crate) fn current<T>(fenced: Fenced<T>) -> Result<T, ApiError> {
    match fenced {
        Fenced::Current(value) => Ok(value),
        Fenced::Stale => Err(ApiError::conflict(
            "Lease lost: this attempt is no longer the task's current one",
        )),
        Fenced::NotHeld => Err(ApiError::not_found("Task not found")),
    }
}

async fn register(
    State(state): State<AppState>,
    RunnerToken(token): RunnerToken,
    Json(req): Json<RegisterRequest>,
) -> Result<Json<RegisterResponse>, ApiError> {
    limits::HOSTNAME.check(&req.hostname)?;
    limits::RUNNER_VERSION.check(&req.version)?;
    if !(1..=MAX_RUNNER_CONCURRENCY).contains(&req.concurrency) {
        return Err(ApiError::bad_request(format!(
            "concurrency must be between 1 and {MAX_RUNNER_CONCURRENCY}"
        )));
    }
    let concurrency = req.concurrency as i32;
    let secret = ferrum_model::token::generate();
    let hostname: String = req.hostname.chars().take(MAX_HOSTNAME_CHARS).collect();
    let RunnerIdentity {
        runner_id, cluster, ..
    } = state
        .store
        .register_runner(&token, &secret, &hostname, concurrency, &req.version)
        .await?
        .ok_or_else(ApiError::unauthorized)?;
    tracing::info!(%runner_id, %cluster, host = %hostname, "runner registered");
    Ok(Json(RegisterResponse {
        runner_id,
        runner_secret: secret,
        cluster,
        lease_secs: state.config.lease_for.as_secs() as u32,
        heartbeat_secs: state.config.heartbeat_every.as_secs().max(1) as u32,
    }))
}

/// The runner's own heartbeat: records it (`last_seen_at`, `running`) and answers its drain
/// state, so a runner asked to drain learns it even while it leases nothing.
async fn runner_heartbeat(
    State(state): State<AppState>,
    RunnerAuth(runner): RunnerAuth,
    Json(req): Json<RunnerHeartbeat>,
) -> Result<Json<RunnerHeartbeatResponse>, ApiError> {
    if req.running > MAX_RUNNER_CONCURRENCY {
        return Err(ApiError::bad_request(format!(
            "running must be at most {MAX_RUNNER_CONCURRENCY}"
        )));
    }
    let recorded = state
        .store
        .runner_heartbeat(runner.runner_id, req.running as i32)
        .await?;
    // The runner authenticated, so its row exists; gone since means it was deleted.
    let s = recorded.ok_or_else(ApiError::unauthorized)?;
    if s.drained {
        tracing::info!(runner = %runner.runner_id, "runner drained");
    }
    Ok(Json(RunnerHeartbeatResponse {
        draining: s.draining,
        drained: s.drained,
    }))
}

/// Long-polls: answers as soon as something is leased, or empty after `wait_ms`. The runner
/// and its cluster come from its credential, never from the request. A runner asked to
/// drain is answered at once with no tasks and `draining`; the flag is read with the
/// credential and again before every later look at the queue, so a held poll stops leasing
/// within one look of the drain request (a
/// lease already being taken in that instant still reaches the runner, which runs it: the
/// runner counts as drained only once no lease of it is left).
async fn lease(
    State(state): State<AppState>,
    RunnerAuth(runner): RunnerAuth,
    Json(req): Json<LeaseRequest>,
) -> Result<Json<LeaseResponse>, ApiError> {
    let deadline = tokio::time::Instant::now() + Duration::from_millis(req.wait_ms).min(MAX_WAIT);
    // The first look uses the flag read with the credential: a lease call costs no extra query.
    let mut known_draining = Some(runner.draining);
    let spec = LeaseSpec {
        runner_id: runner.runner_id,
        cluster: runner.cluster,
        max_tasks: req.max_tasks.clamp(1, 100),
        lease_for: state.config.lease_for,
    };
    loop {
        // Registered before looking, so a wake between the look and the wait is kept.
        let woken = state.queue.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        let draining = match known_draining.take() {
            Some(draining) => draining,
            None => state.store.runner_draining(spec.runner_id).await?,
        };
        if draining {
            return Ok(Json(LeaseResponse {
                leases: Vec::new(),
                draining: true,
            }));
        }
        let leased = state.store.lease(&spec).await?;
        let mut leases = Vec::with_capacity(leased.len());
        for l in leased {
            if let Some(lease) = to_lease(&state, spec.runner_id, l).await? {
                leases.push(lease);
            }
        }
        crate::task_tokens::issue(&state, &mut leases).await?;
        let now = tokio::time::Instant::now();
        if !leases.is_empty() || now >= deadline {
            let draining = false;
            return Ok(Json(LeaseResponse { leases, draining }));
        }
        tokio::select! {
            _ = &mut woken => {}
            _ = tokio::time::sleep(RECHECK.min(deadline - now)) => {}
        }
    }
}

/// Describes a leased task to its runner. A task whose stack has no image cannot run
/// anywhere: it ends as `error` here instead of failing on every runner.
async fn to_lease(
    state: &AppState,
    runner: Id,
    leased: LeasedTask,
) -> Result<Option<Lease>, ApiError> {
    let LeasedTask {
        id,
        project_id,
        attempt,
        timeout,
        payload,
        schedule_id,
        revision,
        batch_id,
        batch_index,
        ..
    } = leased;
    let spec = &revision.spec;
    let docker_style = spec.image.is_some();
    let image = match &spec.image {
        Some(image) => Some(image.clone()),
        None => state
            .config
            .stacks
            .image_for(spec.stack.as_deref(), spec.runtime.as_deref())
            .map(str::to_owned),
    };
    let Some(image) = image else {
        let msg = format!(
            "No stack image for stack {:?} / runtime {:?}",
            spec.stack, spec.runtime
        );
        let outcome = Outcome {
            status: TaskStatus::Error,
            exit_code: None,
            msg: Some(msg),
        };
        state.store.complete(id, runner, attempt, outcome).await?;
        return Ok(None);
    };
    // A batch's reduce task reads every item's result: they travel with its lease.
    let batch = match (batch_id, batch_index) {
        (Some(batch), None) => {
            Some(crate::tenant::batches::reduce_input(state, project_id, batch).await?)
        }
        _ => None,
    };
    Ok(Some(Lease {
        batch,
        task_id: id,
        project_id,
        attempt,
        timeout_secs: timeout,
        payload_base64: base64::engine::general_purpose::STANDARD.encode(&payload),
        schedule_id,
        code: RunSpec {
            code_id: revision.code_id,
            code_name: revision.name.clone(),
            revision_id: revision.id,
            rev: revision.rev,
            image,
            docker_style,
            runtime: spec.runtime.clone(),
            file_name: spec.file_name.clone(),
            command: spec.command.clone(),
            config: spec.config.clone(),
            env_vars: spec.env_vars.clone(),
            has_zip: revision.zip.is_some(),
            memory_mb: spec.memory_mb,
            cpus: spec.cpus,
            pids: spec.pids,
            disk_mb: spec.disk_mb,
        },
        task_token: None,
        max_result_bytes: state.config.max_result_bytes,
    }))
}

async fn started(
    State(state): State<AppState>,
    RunnerAuth(runner): RunnerAuth,
    Path(id): Path<String>,
    Json(req): Json<AttemptRef>,
) -> Result<Json<HeartbeatResponse>, ApiError> {
    let lease_for = state.config.lease_for;
    let renewed = state
        .store
        .mark_running(task_id(&id)?, runner.runner_id, req.attempt, lease_for);
    let cancel_requested = current(renewed.await?)?;
    Ok(Json(HeartbeatResponse { cancel_requested }))
}

async fn heartbeat(
    State(state): State<AppState>,
    RunnerAuth(runner): RunnerAuth,
    Path(id): Path<String>,
    Json(req): Json<AttemptRef>,
) -> Result<Json<HeartbeatResponse>, ApiError> {
    let lease_for = state.config.lease_for;
    let renewed = state
        .store
        .heartbeat(task_id(&id)?, runner.runner_id, req.attempt, lease_for);
    let cancel_requested = current(renewed.await?)?;
    Ok(Json(HeartbeatResponse { cancel_requested }))
}

#[derive(Deserialize)]
struct ChunkRef {
    attempt: i32,
    seq: i64,
    stream: LogStream,
}

async fn append_log(
    State(state): State<AppState>,
    RunnerAuth(runner): RunnerAuth,
    Path(id): Path<String>,
    Query(chunk): Query<ChunkRef>,
    body: Bytes,
) -> Result<Json<LogAck>, ApiError> {
    let max = state.config.max_log_bytes;
    let id = task_id(&id)?;
    let (attempt, seq, stream) = (chunk.attempt, chunk.seq, chunk.stream);
    let appended = state
        .store
        .append_log(id, runner.runner_id, attempt, seq, stream, &body, max);
    let stored = current(appended.await?)?;
    Ok(Json(LogAck { stored }))
}

async fn complete(
    State(state): State<AppState>,
    RunnerAuth(runner): RunnerAuth,
    Path(id): Path<String>,
    Json(req): Json<CompleteRequest>,
) -> Result<Json<CompleteResponse>, ApiError> {
    if !req.status.is_terminal() {
        return Err(ApiError::bad_request(format!(
            "{} is not a final status",
            req.status
        )));
    }
    if let Some(msg) = &req.msg {
        ferrum_model::limits::COMPLETE_MSG.check(msg)?;
    }
    let outcome = Outcome {
        status: req.status,
        exit_code: req.exit_code,
        msg: req.msg,
    };
    let completed = state
        .store
        .complete(task_id(&id)?, runner.runner_id, req.attempt, outcome);
    let retry_task_id = current(completed.await?)?;
    // A finished task frees a concurrency slot, and a retry may be runnable.
    state.queue.wake();
    Ok(Json(CompleteResponse { retry_task_id }))
}

/// Serves a revision's zip only to a runner holding a lease on a task of that revision; to
/// any other runner the revision does not exist.
async fn revision_zip(
    State(state): State<AppState>,
    RunnerAuth(runner): RunnerAuth,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let not_found = || ApiError::not_found("Revision has no zip");
    let id: Id = id.parse().map_err(|_| not_found())?;
    if !state.store.holds_revision(runner.runner_id, id).await? {
        return Err(not_found());
    }
    let revision = state.store.revision(id).await?.ok_or_else(not_found)?;
    let zip = revision.zip.ok_or_else(not_found)?;
    let data = state.blobs.get(&zip.key).await?.ok_or_else(not_found)?;
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/zip")],
        data,
    )
        .into_response())
}
