//! Queue-to-running latency of the executor compared with a bare `create` + `start` of the
//! same image through the same engine. Ignored by default (timing on shared CI is noisy):
//! `cargo test -p ferrum-runner --test latency -- --ignored --nocapture`.

mod common;

use std::time::{Duration, Instant};

use bollard::container::{Config, RemoveContainerOptions};
use common::*;
use ferrum_runner::executor::TaskEvent;
use tokio_util::sync::CancellationToken;

const ROUNDS: usize = 15;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::test]
#[ignore]
async fn executor_start_latency_close_to_raw_docker() {
    // The production default: the isolated bridge network (the raw baseline uses the
    // engine's default bridge).
    let exec = executor("latency", |c| {
        c.network = ferrum_runner::executor::NetworkMode::Isolated
    })
    .await;
    let docker = exec.docker().clone();
    let mut raw = Vec::new();
    for _ in 0..ROUNDS {
        let config = Config {
            image: Some(ferrum_runner::stacks::IMAGE_SH.to_owned()),
            cmd: Some(vec!["true".to_owned()]),
            ..Default::default()
        };
        let t0 = Instant::now();
        let id = docker
            .create_container::<String, _>(None, config)
            .await
            .unwrap()
            .id;
        docker.start_container::<String>(&id, None).await.unwrap();
        raw.push(t0.elapsed());
        let options = RemoveContainerOptions {
            force: true,
            ..Default::default()
        };
        docker.remove_container(&id, Some(options)).await.unwrap();
    }
    let mut ours = Vec::new();
    for _ in 0..ROUNDS {
        let task = sh_task(&exec, "true");
        let (tx, mut rx) = tokio::sync::mpsc::channel(8);
        let t0 = Instant::now();
        let runner = exec.clone();
        let handle =
            tokio::spawn(async move { runner.run(task, tx, CancellationToken::new()).await });
        assert!(matches!(rx.recv().await, Some(TaskEvent::Started)));
        ours.push(t0.elapsed());
        while rx.recv().await.is_some() {}
        handle.await.unwrap().unwrap();
    }
    let (raw, ours) = (median(raw), median(ours));
    println!("median raw create+start {raw:?}, executor run->started {ours:?}");
    assert!(
        ours.as_secs_f64() <= raw.as_secs_f64() * 1.25,
        "{ours:?} vs {raw:?}"
    );
}
