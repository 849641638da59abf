//! The daemon loop against a tiny in-process fake of the runner API and the real Docker
//! engine: leasing, started, ordered log chunks, completion, cancel via heartbeat, lost lease
//! (409), the runner's own credential on every call after registering, and drain on shutdown;
//! on the cold and the pooled executor.

#[macro_use]
mod common;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use base64::Engine;
use common::*;
use ferrum_model::protocol::*;
use ferrum_model::{Id, TaskStatus};
use ferrum_runner::daemon::{run, RunnerConfig};

#[derive(Default)]
struct Fake {
    queue: VecDeque<Lease>,
    zips: HashMap<Id, Vec<u8>>,
    started: HashSet<Id>,
    cancel: HashSet<Id>,
    lost: HashSet<Id>,
    logs: BTreeMap<(Id, u64), (LogStream, Vec<u8>)>,
    completed: HashMap<Id, CompleteRequest>,
    /// The runner's credential is refused from now on (revoked, or the runner forgotten).
    refused: bool,
}

type Shared = Arc<Mutex<Fake>>;

/// The runner token the daemon registers with, and the credential registering answers.
const RUNNER_TOKEN: &str = "runner-token";
const RUNNER_SECRET: &str = "fake-runner-secret";

/// Like the real API: registering takes the runner token, every other call the runner's own
/// credential; anything else is 401.
async fn authorise(req: Request, next: Next) -> Result<Response, StatusCode> {
    let expected = if req.uri().path() == "/runner/v1/register" {
        RUNNER_TOKEN
    } else {
        RUNNER_SECRET
    };
    let sent = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok());
    if sent != Some(format!("Bearer {expected}").as_str()) {
        return Err(StatusCode::UNAUTHORIZED);
    }
    Ok(next.run(req).await)
}

async fn register(Json(_): Json<RegisterRequest>) -> Json<RegisterResponse> {
    Json(RegisterResponse {
        runner_id: Id::generate(),
        runner_secret: RUNNER_SECRET.into(),
        cluster: "default".into(),
        lease_secs: 30,
        heartbeat_secs: 1,
    })
}

async fn lease(
    State(s): State<Shared>,
    Json(req): Json<LeaseRequest>,
) -> Result<Json<LeaseResponse>, StatusCode> {
    let until = Instant::now() + Duration::from_millis(req.wait_ms);
    loop {
        let leases: Vec<Lease> = {
            let mut fake = s.lock().unwrap();
            if fake.refused {
                return Err(StatusCode::UNAUTHORIZED);
            }
            let n = fake.queue.len().min(req.max_tasks as usize);
            fake.queue.drain(..n).collect()
        };
        if !leases.is_empty() || Instant::now() >= until {
            return Ok(Json(LeaseResponse {
                leases,
                draining: false,
            }));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn beat(s: &Shared, id: Id) -> Result<Json<HeartbeatResponse>, StatusCode> {
    let fake = s.lock().unwrap();
    if fake.lost.contains(&id) {
        return Err(StatusCode::CONFLICT);
    }
    Ok(Json(HeartbeatResponse {
        cancel_requested: fake.cancel.contains(&id),
    }))
}

async fn started(
    State(s): State<Shared>,
    Path(id): Path<Id>,
) -> Result<Json<HeartbeatResponse>, StatusCode> {
    s.lock().unwrap().started.insert(id);
    beat(&s, id)
}

async fn heartbeat(
    State(s): State<Shared>,
    Path(id): Path<Id>,
) -> Result<Json<HeartbeatResponse>, StatusCode> {
    beat(&s, id)
}

async fn log(
    State(s): State<Shared>,
    Path(id): Path<Id>,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> Json<LogAck> {
    let seq: u64 = q["seq"].parse().unwrap();
    let stream = if q["stream"] == "stderr" {
        LogStream::Stderr
    } else {
        LogStream::Stdout
    };
    let stored = s
        .lock()
        .unwrap()
        .logs
        .insert((id, seq), (stream, body.to_vec()))
        .is_none();
    Json(LogAck { stored })
}

async fn complete(
    State(s): State<Shared>,
    Path(id): Path<Id>,
    Json(req): Json<CompleteRequest>,
) -> Json<CompleteResponse> {
    s.lock().unwrap().completed.insert(id, req);
    Json(CompleteResponse {
        retry_task_id: None,
    })
}

async fn zip(State(s): State<Shared>, Path(rev): Path<Id>) -> Result<Vec<u8>, StatusCode> {
    s.lock()
        .unwrap()
        .zips
        .get(&rev)
        .cloned()
        .ok_or(StatusCode::NOT_FOUND)
}

async fn serve(state: Shared) -> String {
    let app = Router::new()
        .route("/runner/v1/register", post(register))
        .route("/runner/v1/lease", post(lease))
        .route("/runner/v1/tasks/{id}/started", post(started))
        .route("/runner/v1/tasks/{id}/heartbeat", post(heartbeat))
        .route("/runner/v1/tasks/{id}/log", put(log))
        .route("/runner/v1/tasks/{id}/complete", post(complete))
        .route("/runner/v1/revisions/{rev}/zip", get(zip))
        .layer(axum::middleware::from_fn(authorise))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

fn queue(state: &Shared, script: &str, payload: &[u8]) -> Id {
    let dir = scratch("daemon-zip");
    let zip = std::fs::read(make_zip(&dir, &[("run.sh", script.as_bytes())])).unwrap();
    std::fs::remove_dir_all(dir).unwrap();
    let spec = sh_spec("run.sh");
    let task_id = Id::generate();
    let mut fake = state.lock().unwrap();
    fake.zips.insert(spec.revision_id, zip);
    fake.queue.push_back(Lease {
        task_id,
        project_id: Id::generate(),
        attempt: 1,
        timeout_secs: 60,
        payload_base64: base64::engine::general_purpose::STANDARD.encode(payload),
        schedule_id: None,
        code: spec,
        task_token: None,
        max_result_bytes: ferrum_model::protocol::default_max_result_bytes(),
        batch: None,
    });
    task_id
}

async fn until<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn log_of(state: &Shared, id: Id) -> Vec<(u64, LogStream, Vec<u8>)> {
    let fake = state.lock().unwrap();
    fake.logs
        .iter()
        .filter(|((t, _), _)| *t == id)
        .map(|((_, seq), (stream, data))| (*seq, *stream, data.clone()))
        .collect()
}

/// The runner's containers that run (or ran) a task; parked ones are not counted.
fn task_containers(host: &str) -> usize {
    let out = std::process::Command::new("docker")
        .args(["ps", "-a", "--format", "{{.Names}}", "--filter"])
        .arg(format!("label=ferrum.runner={host}"))
        .output()
        .unwrap();
    let names = String::from_utf8_lossy(&out.stdout).into_owned();
    names
        .lines()
        .filter(|n| !n.starts_with("ferrum-pool-"))
        .count()
}

/// Every container of the runner, parked ones included.
fn all_containers(host: &str) -> usize {
    let out = std::process::Command::new("docker")
        .args(["ps", "-aq", "--filter"])
        .arg(format!("label=ferrum.runner={host}"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).lines().count()
}

async fn daemon_runs_reports_cancels_and_drains(kind: Kind) {
    ensure_sh_image().await;
    let state: Shared = Arc::default();
    let api = serve(state.clone()).await;
    let work = scratch("daemon");
    let mut config = RunnerConfig::new(vec![api], RUNNER_TOKEN, &work);
    config.executor.host_id = format!("test-daemon-{}", Id::generate());
    config.executor.network = ferrum_runner::executor::NetworkMode::None;
    config.concurrency = 4;
    config.drain_timeout = Duration::from_secs(1);
    config.lease_wait = Duration::from_secs(2);
    config.pool = match kind {
        Kind::Cold => None,
        Kind::Pooled => Some(ferrum_runner::PoolConfig {
            sizes: [(ferrum_runner::stacks::IMAGE_SH.to_owned(), POOL)].into(),
        }),
    };
    let host = config.executor.host_id.clone();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let daemon = tokio::spawn(run(config, async {
        let _ = stop_rx.await;
    }));

    let ok = queue(
        &state,
        "echo out; echo err >&2; cat \"$PAYLOAD_FILE\"; echo; seq 1 20000",
        b"{\"p\":1}",
    );
    let bad = queue(&state, "echo failing >&2; exit 2", b"");
    let cancelled = queue(&state, "sleep 60", b"");
    let lost = queue(&state, "sleep 60", b"");

    // Cancel and lose the lease once the two sleepers run.
    until("sleepers to start", Duration::from_secs(20), || {
        let fake = state.lock().unwrap();
        (fake.started.contains(&cancelled) && fake.started.contains(&lost)).then_some(())
    })
    .await;
    state.lock().unwrap().cancel.insert(cancelled);
    state.lock().unwrap().lost.insert(lost);

    let done = |id: Id| {
        let state = state.clone();
        move || state.lock().unwrap().completed.get(&id).cloned()
    };
    let ok_done = until("ok task", Duration::from_secs(20), done(ok)).await;
    assert_eq!(ok_done.status, TaskStatus::Complete);
    assert_eq!(ok_done.exit_code, Some(0));
    let bad_done = until("bad task", Duration::from_secs(20), done(bad)).await;
    assert_eq!(bad_done.status, TaskStatus::Error);
    assert_eq!(bad_done.exit_code, Some(2));
    assert_eq!(
        bad_done.msg.as_deref(),
        Some("Process exited with code 2: failing")
    );
    let cancel_done = until("cancel", Duration::from_secs(5), done(cancelled)).await;
    assert_eq!(cancel_done.status, TaskStatus::Cancelled);

    // Chunks: seq 0.. without gaps, streams kept apart, content in order.
    let chunks = log_of(&state, ok);
    let seqs: Vec<u64> = chunks.iter().map(|c| c.0).collect();
    assert_eq!(seqs, (0..chunks.len() as u64).collect::<Vec<_>>());
    let stdout: Vec<u8> = chunks
        .iter()
        .filter(|c| c.1 == LogStream::Stdout)
        .flat_map(|c| c.2.clone())
        .collect();
    let mut expected = String::from("out\n{\"p\":1}\n");
    for i in 1..=20000 {
        expected.push_str(&format!("{i}\n"));
    }
    assert_eq!(String::from_utf8(stdout).unwrap(), expected);
    assert!(chunks
        .iter()
        .any(|c| c.1 == LogStream::Stderr && c.2 == b"err\n"));
    assert!(
        chunks.len() < 10,
        "small writes were not coalesced: {}",
        chunks.len()
    );

    // The lost lease is killed and never reported.
    until(
        "lost task container removal",
        Duration::from_secs(5),
        || (task_containers(&host) == 0).then_some(()),
    )
    .await;
    assert!(!state.lock().unwrap().completed.contains_key(&lost));

    // Shutdown with a task still running: killed after the drain timeout, not reported.
    let sleeper = queue(&state, "sleep 60", b"");
    until("sleeper to start", Duration::from_secs(20), || {
        state
            .lock()
            .unwrap()
            .started
            .contains(&sleeper)
            .then_some(())
    })
    .await;
    let t1 = Instant::now();
    stop_tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(15), daemon)
        .await
        .expect("daemon did not stop")
        .unwrap()
        .unwrap();
    assert!(t1.elapsed() >= Duration::from_secs(1));
    assert!(!state.lock().unwrap().completed.contains_key(&sleeper));
    // Stopping also removed the parked containers and every disk.
    assert_eq!(all_containers(&host), 0);
    assert!(mounts_under(&work).is_empty(), "{:?}", mounts_under(&work));
    let leftovers = std::fs::read_dir(work.join("tasks")).unwrap().count();
    assert_eq!(leftovers, 0);
}

suite!(daemon_runs_reports_cancels_and_drains);

/// A runner whose credential is refused (its token revoked, or the runner forgotten) stops
/// with an error a supervisor sees, its running task killed and nothing left behind.
#[tokio::test]
async fn a_refused_credential_stops_the_runner_with_an_error() {
    ensure_sh_image().await;
    let state: Shared = Arc::default();
    let api = serve(state.clone()).await;
    let work = scratch("daemon-refused");
    let mut config = RunnerConfig::new(vec![api], RUNNER_TOKEN, &work);
    config.executor.host_id = format!("test-daemon-{}", Id::generate());
    config.executor.network = ferrum_runner::executor::NetworkMode::None;
    config.pool = None;
    config.lease_wait = Duration::from_millis(200);
    let host = config.executor.host_id.clone();
    let daemon = tokio::spawn(run(config, std::future::pending()));
    let sleeper = queue(&state, "sleep 60", b"");
    until("sleeper to start", Duration::from_secs(20), || {
        let fake = state.lock().unwrap();
        fake.started.contains(&sleeper).then_some(())
    })
    .await;
    state.lock().unwrap().refused = true;
    let ended = tokio::time::timeout(Duration::from_secs(30), daemon)
        .await
        .expect("the runner stops")
        .unwrap();
    assert!(
        matches!(ended, Err(ferrum_runner::daemon::RunnerError::Refused)),
        "{ended:?}"
    );
    assert!(!state.lock().unwrap().completed.contains_key(&sleeper));
    assert_eq!(all_containers(&host), 0);
    assert!(mounts_under(&work).is_empty(), "{:?}", mounts_under(&work));
}
