//! Runner authority: a lease is its runner's alone, runner tokens are revocable, and a
//! requeued task keeps its place in line.

use std::time::Duration;

use ferrum_model::protocol::LogStream;
use ferrum_model::{CodeSpec, Id, TaskStatus};
use ferrum_store::Fenced;

use super::world::{outcome, runner, spec, world, Backend};

/// A runner other than [`runner`], of the same cluster.
fn other_runner() -> Id {
    "00000000000000000000b0b0".parse().unwrap()
}

pub async fn only_the_runner_holding_a_lease_may_act_on_it(backend: Backend) {
    let w = world(backend).await;
    w.code("c", CodeSpec::default()).await;
    let id = w.queue("c", 0, 0).await;
    let leased = w.lease(1).await;
    let (attempt, revision) = (leased[0].attempt, leased[0].revision.id);
    let (s, other, lease_for) = (&*w.store, other_runner(), Duration::from_secs(30));

    // Another runner quoting the right attempt changes nothing.
    assert_eq!(
        s.mark_running(id, other, attempt, lease_for).await.unwrap(),
        Fenced::NotHeld
    );
    assert_eq!(
        s.heartbeat(id, other, attempt, lease_for).await.unwrap(),
        Fenced::NotHeld
    );
    let forged = s.append_log(id, other, attempt, 0, LogStream::Stdout, b"forged", 1 << 20);
    assert_eq!(forged.await.unwrap(), Fenced::NotHeld);
    for status in [TaskStatus::Complete, TaskStatus::Error] {
        let forged = s.complete(id, other, attempt, outcome(status)).await;
        assert_eq!(forged.unwrap(), Fenced::NotHeld, "{status}");
    }
    assert!(!s.holds_revision(other, revision).await.unwrap());
    let t = s.task(w.project, id).await.unwrap().unwrap();
    assert_eq!((t.status, t.attempt), (TaskStatus::Preparing, attempt));
    let log = s.read_log(w.project, id, false).await.unwrap();
    assert!(log.unwrap_or_default().is_empty(), "no forged log");

    // The holder's calls still work, and its stale attempt is told so.
    assert!(s.holds_revision(runner(), revision).await.unwrap());
    let started = s.mark_running(id, runner(), attempt, lease_for).await;
    assert_eq!(started.unwrap(), Fenced::Current(false));
    let logged = s.append_log(
        id,
        runner(),
        attempt,
        0,
        LogStream::Stdout,
        b"mine",
        1 << 20,
    );
    assert_eq!(logged.await.unwrap(), Fenced::Current(true));
    assert_eq!(
        s.heartbeat(id, runner(), attempt - 1, lease_for)
            .await
            .unwrap(),
        Fenced::Stale
    );
    let done = s.complete(id, runner(), attempt, outcome(TaskStatus::Complete));
    assert_eq!(done.await.unwrap(), Fenced::Current(None));
    assert!(!s.holds_revision(runner(), revision).await.unwrap());
    let again = s.complete(id, runner(), attempt, outcome(TaskStatus::Error));
    assert_eq!(again.await.unwrap(), Fenced::Stale);
    let forged = s.complete(id, other, attempt, outcome(TaskStatus::Error));
    assert_eq!(forged.await.unwrap(), Fenced::NotHeld);
    let t = s.task(w.project, id).await.unwrap().unwrap();
    assert_eq!(t.status, TaskStatus::Complete);
    let log = s.read_log(w.project, id, false).await.unwrap().unwrap();
    assert_eq!(log, b"mine");
    // A task that does not exist is nobody's.
    let nothing = s.heartbeat(Id::generate(), runner(), 1, lease_for).await;
    assert_eq!(nothing.unwrap(), Fenced::NotHeld);
}

pub async fn a_requeued_task_runs_before_a_backlog_queued_after_it(backend: Backend) {
    let w = world(backend).await;
    w.code("c", CodeSpec::default()).await;
    let first = w.queue("c", 1, 0).await;
    let lost = w
        .store
        .lease(&spec(1, Duration::from_millis(1)))
        .await
        .unwrap();
    assert_eq!(lost[0].id, first);
    let mut backlog = Vec::new();
    for _ in 0..20 {
        backlog.push(w.queue("c", 1, 0).await);
    }
    // The lease ran out: its runner is gone.
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(w.store.reap_expired(3).await.unwrap().requeued, 1);
    let next = w.lease(1).await;
    assert_eq!(
        next[0].id, first,
        "the requeued task goes before the backlog"
    );
    assert_eq!(next[0].priority, 1);
    assert_eq!(next[0].run_at, lost[0].run_at, "it keeps its run_at");
    let rest: Vec<Id> = w.lease(100).await.iter().map(|l| l.id).collect();
    assert_eq!(rest, backlog);
}

pub async fn runner_tokens_register_runners_and_revoking_ends_their_authority(backend: Backend) {
    let w = world(backend).await;
    let s = &*w.store;
    let gpu = s.add_runner_token("gpu", "token-gpu").await.unwrap();
    let cpu = s.add_runner_token("default", "token-cpu").await.unwrap();
    assert!(s
        .register_runner("nope", "s0", "h", 1, "1.0")
        .await
        .unwrap()
        .is_none());
    let a = s
        .register_runner("token-gpu", "secret-a", "h", 2, "1.0")
        .await
        .unwrap();
    let a = a.expect("a valid token registers");
    assert_eq!(a.cluster, "gpu");
    let b = s
        .register_runner("token-gpu", "secret-b", "h", 2, "1.0")
        .await
        .unwrap();
    assert_ne!(
        b.unwrap().runner_id,
        a.runner_id,
        "each registration is its own runner"
    );
    let found = s.authenticate_runner_secret("secret-a").await.unwrap();
    assert_eq!(found.as_ref(), Some(&a));
    // The token is not a runner's credential, nor is a runner's credential a token.
    assert!(s
        .authenticate_runner_secret("token-gpu")
        .await
        .unwrap()
        .is_none());
    assert!(s.authenticate_runner("secret-a").await.unwrap().is_none());

    let listed = s.runner_tokens().await.unwrap();
    let ids: Vec<Id> = listed.iter().map(|t| t.id).collect();
    assert_eq!(ids, vec![gpu, cpu]);
    assert_eq!(listed[0].cluster, "gpu");
    assert!(listed[0].last_used_at.is_some() && listed[1].last_used_at.is_none());
    assert!(listed.iter().all(|t| t.revoked_at.is_none()));

    assert!(s.revoke_runner_token(gpu).await.unwrap());
    assert!(
        !s.revoke_runner_token(gpu).await.unwrap(),
        "already revoked"
    );
    assert!(!s.revoke_runner_token(Id::generate()).await.unwrap());
    assert!(s
        .authenticate_runner_secret("secret-a")
        .await
        .unwrap()
        .is_none());
    assert!(s.authenticate_runner("token-gpu").await.unwrap().is_none());
    assert!(s
        .register_runner("token-gpu", "s2", "h", 1, "1.0")
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        s.authenticate_runner("token-cpu").await.unwrap().as_deref(),
        Some("default"),
        "other tokens keep working"
    );
    let listed = s.runner_tokens().await.unwrap();
    assert!(listed[0].revoked_at.is_some() && listed[1].revoked_at.is_none());
}
