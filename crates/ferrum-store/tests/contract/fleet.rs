//! The runner fleet: runners' own heartbeats, draining, and clusters summed from runners.

use std::time::Duration;

use chrono::Utc;
use ferrum_model::{CodeSpec, Id, Page, TaskStatus};
use ferrum_store::{LeaseSpec, RunnerState, RunnerStatus};

use super::world::{outcome, world, Backend};

pub async fn a_draining_runner_drains_once_its_last_lease_ends(backend: Backend) {
    let w = world(backend).await;
    let s = &*w.store;
    s.add_runner_token("default", "tok").await.unwrap();
    s.add_runner_token("gpu", "tok-gpu").await.unwrap();
    let reg = |secret, version| s.register_runner("tok", secret, "host-a", 2, version);
    let a = reg("sa", "1.2.3").await.unwrap().unwrap().runner_id;
    let b = reg("sb", "1.2.4").await.unwrap().unwrap().runner_id;
    let gpu = s.register_runner("tok-gpu", "sg", "host-g", 4, "1.0");
    gpu.await.unwrap().unwrap();

    let listed = s.runners(None, Page::default()).await.unwrap();
    assert_eq!(listed.len(), 3);
    let only_default = s.runners(Some("default"), Page::default()).await.unwrap();
    let ids: Vec<Id> = only_default.iter().map(|r| r.id).collect();
    assert_eq!(ids, [b, a], "newest first, one cluster");
    let ra = &only_default[1];
    assert_eq!((ra.version.as_str(), ra.concurrency), ("1.2.3", 2));
    let since = Utc::now() - chrono::Duration::seconds(60);
    assert_eq!(ra.status(since), RunnerStatus::Active);

    // a holds a lease when it is asked to drain.
    w.code("c", CodeSpec::default()).await;
    let task = w.queue("c", 0, 0).await;
    let spec = LeaseSpec {
        runner_id: a,
        cluster: "default".into(),
        max_tasks: 1,
        lease_for: Duration::from_secs(30),
    };
    let leased = s.lease(&spec).await.unwrap();
    assert_eq!(leased[0].id, task);
    assert!(!s.runner_draining(a).await.unwrap());
    let drained = s.drain_runner(a).await.unwrap().expect("a exists");
    assert_eq!(drained.status(since), RunnerStatus::Draining);
    assert!(s.runner_draining(a).await.unwrap());
    let identity = s.authenticate_runner_secret("sa").await.unwrap().unwrap();
    assert!(
        identity.draining,
        "the credential's check reads the flag too"
    );
    assert!(!s.runner_draining(b).await.unwrap(), "only a drains");

    // Reporting nothing running is not enough while the store holds a's lease (a lease
    // answer may be in flight): a stays draining until the task ends.
    let state = |draining, drained| Some(RunnerState { draining, drained });
    assert_eq!(s.runner_heartbeat(a, 0).await.unwrap(), state(true, false));
    assert_eq!(s.runner_heartbeat(a, 1).await.unwrap(), state(true, false));
    let done = s.complete(task, a, leased[0].attempt, outcome(TaskStatus::Complete));
    done.await.unwrap();
    assert_eq!(
        s.runner_heartbeat(a, 1).await.unwrap(),
        state(true, false),
        "drained only when it reports nothing running"
    );
    assert_eq!(s.runner_heartbeat(a, 0).await.unwrap(), state(true, true));
    assert_eq!(s.runner_heartbeat(a, 0).await.unwrap(), state(true, true));
    let again = s.drain_runner(a).await.unwrap().unwrap();
    assert_eq!(
        again.status(since),
        RunnerStatus::Drained,
        "drain is idempotent"
    );
    assert_eq!(again.drain_requested_at, drained.drain_requested_at);
    assert_eq!(s.runner_heartbeat(b, 2).await.unwrap(), state(false, false));

    let clusters = s.clusters(None, since).await.unwrap();
    let names: Vec<&str> = clusters.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["default", "gpu"]);
    let d = &clusters[0];
    assert_eq!(
        (d.active_runners, d.draining_runners, d.capacity, d.running),
        (1, 0, 2, 2),
        "the drained runner counts in no sum: {d:?}"
    );
    let gpu = s.clusters(Some("gpu"), since).await.unwrap();
    assert_eq!((gpu.len(), gpu[0].capacity), (1, 4));
    assert!(s.clusters(Some("nope"), since).await.unwrap().is_empty());
    let later = Utc::now() + chrono::Duration::seconds(60);
    let silent = s.clusters(Some("default"), later).await.unwrap();
    assert_eq!(
        (silent[0].active_runners, silent[0].capacity),
        (0, 0),
        "runners not heard from since count in no sum"
    );

    let nobody = Id::generate();
    assert_eq!(s.runner_heartbeat(nobody, 0).await.unwrap(), None);
    assert!(s.drain_runner(nobody).await.unwrap().is_none());
}

pub async fn runners_long_silent_and_idle_are_forgotten(backend: Backend) {
    let w = world(backend).await;
    let s = &*w.store;
    s.add_runner_token("default", "tok").await.unwrap();
    let reg = |secret| s.register_runner("tok", secret, "host", 1, "1.0");
    reg("s-idle").await.unwrap().unwrap();
    let busy = reg("s-busy").await.unwrap().unwrap().runner_id;
    w.code("c", CodeSpec::default()).await;
    let task = w.queue("c", 0, 0).await;
    let spec = LeaseSpec {
        runner_id: busy,
        cluster: "default".into(),
        max_tasks: 1,
        lease_for: Duration::from_secs(30),
    };
    assert_eq!(s.lease(&spec).await.unwrap()[0].id, task);

    let before_both = Utc::now() - chrono::Duration::seconds(60);
    assert_eq!(
        s.forget_runners(before_both).await.unwrap(),
        0,
        "both heard from since"
    );
    let after_both = Utc::now() + chrono::Duration::seconds(60);
    assert_eq!(s.forget_runners(after_both).await.unwrap(), 1);
    let left: Vec<Id> = s
        .runners(None, Page::default())
        .await
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(left, [busy], "a runner holding a lease is kept");
    assert!(s
        .authenticate_runner_secret("s-idle")
        .await
        .unwrap()
        .is_none());
    assert!(s
        .authenticate_runner_secret("s-busy")
        .await
        .unwrap()
        .is_some());
}
