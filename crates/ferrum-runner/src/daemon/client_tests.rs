//! Replica failover against real HTTP servers on loopback.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use ferrum_model::protocol::{RunnerHeartbeat, RunnerHeartbeatResponse};

use super::{ApiClient, ApiError};

/// A replica that answers every heartbeat with `status` (a drained runner's answer when 200),
/// counting the calls it gets. Answers its base URL and its call counter.
async fn replica(status: StatusCode) -> (String, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let app = Router::new().route(
        "/runner/v1/heartbeat",
        post(move || async move {
            counted.fetch_add(1, Ordering::SeqCst);
            let answer = RunnerHeartbeatResponse {
                draining: true,
                drained: true,
            };
            (status, Json(answer))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, calls)
}

const BEAT: RunnerHeartbeat = RunnerHeartbeat { running: 0 };

#[tokio::test]
async fn a_replica_that_cannot_serve_hands_the_call_to_the_next() {
    for status in [
        StatusCode::BAD_GATEWAY,
        StatusCode::SERVICE_UNAVAILABLE,
        StatusCode::GATEWAY_TIMEOUT,
    ] {
        let (down, down_calls) = replica(status).await;
        let (up, up_calls) = replica(StatusCode::OK).await;
        let client = ApiClient::new(&[down, up], "t").unwrap();
        let answer = client.runner_heartbeat(&BEAT).await.unwrap();
        assert!(answer.drained, "{status}: the second replica answered");
        // The switch holds: the next call goes straight to the replica that served.
        client.runner_heartbeat(&BEAT).await.unwrap();
        assert_eq!(down_calls.load(Ordering::SeqCst), 1, "{status}");
        assert_eq!(up_calls.load(Ordering::SeqCst), 2, "{status}");
    }
}

#[tokio::test]
async fn an_error_of_the_call_itself_is_answered_not_retried_elsewhere() {
    let (first, first_calls) = replica(StatusCode::INTERNAL_SERVER_ERROR).await;
    let (second, second_calls) = replica(StatusCode::OK).await;
    let client = ApiClient::new(&[first, second], "t").unwrap();
    let err = client.runner_heartbeat(&BEAT).await.unwrap_err();
    assert!(matches!(err, ApiError::Status { status: 500, .. }), "{err}");
    assert_eq!(first_calls.load(Ordering::SeqCst), 1);
    assert_eq!(second_calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn when_every_replica_cannot_serve_the_last_answer_is_the_error() {
    let (a, _) = replica(StatusCode::SERVICE_UNAVAILABLE).await;
    let (b, _) = replica(StatusCode::SERVICE_UNAVAILABLE).await;
    let client = ApiClient::new(&[a, b], "t").unwrap();
    let err = client.runner_heartbeat(&BEAT).await.unwrap_err();
    assert!(matches!(err, ApiError::Status { status: 503, .. }), "{err}");
    assert!(err.is_transient(), "the caller retries it later");
}
