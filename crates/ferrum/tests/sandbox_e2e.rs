//! Issue 15, task sandbox, end to end: a real `ferrum serve` bound to loopback and a real
//! `ferrum runner` in its default `isolated` network mode. A task reaches the API through
//! the runner's door (`IRON_PROTOCOL`/`IRON_HOST`/`IRON_PORT`) and nothing else on the host.

mod support;

use std::time::Duration;

use serde_json::json;
use support::{Ferrum, ADMIN, RUNNER};

const WAIT: Duration = Duration::from_secs(60);

#[tokio::test]
async fn a_task_reaches_the_api_through_the_door_and_no_other_host_port() {
    let mut f = Ferrum::start(&[]).await;
    f.start_runner(RUNNER, 1, &[]);
    let api_port = f.api.rsplit(':').next().unwrap().to_owned();
    let script = format!(
        "echo \"door=$IRON_PROTOCOL $IRON_HOST\"\n\
         auth=\"Authorization: OAuth $(cat \"$PAYLOAD_FILE\")\"\n\
         echo \"stacks=$(wget -qO- --header \"$auth\" \"$IRON_PROTOCOL://$IRON_HOST:$IRON_PORT/2/stacks\")\"\n\
         if nc -w 2 \"$IRON_HOST\" {api_port} </dev/null; then echo api-port=open; \
         else echo api-port=closed; fi\n"
    );
    f.upload_sh("door", &script, json!({})).await;
    // The token travels in the payload here; issue 17 gives tasks their own (IRON_TOKEN).
    let id = f
        .queue(json!({"code_name": "door", "payload": ADMIN}))
        .await;
    let t = f.wait_for(&id, None, WAIT).await;
    assert_eq!(t["status"], "complete", "{t}");
    let log = f.log(&id).await;
    let stacks = f.text("/2/stacks").await;
    assert!(
        log.starts_with("door=http ") && !log.starts_with("door=http 127."),
        "{log}"
    );
    assert!(
        log.contains(&format!("stacks={}\n", stacks.trim_end())),
        "{log}"
    );
    assert!(log.contains("api-port=closed\n"), "{log}");
}

/// A task that keeps writing past its disk limit ends as `error` with a clear `msg`; the
/// runner's `--disk-mb` is the default and `--max-disk-mb` caps what a code's `disk_mb` asks.
#[tokio::test]
async fn a_task_is_stopped_at_its_disk_limit() {
    let mut f = Ferrum::start(&[]).await;
    f.start_runner(RUNNER, 2, &["--disk-mb", "20", "--max-disk-mb", "24"]);
    let script = "dd if=/dev/zero of=/tmp/fill bs=1M count=100; sleep 600";
    f.upload_sh("default-disk", script, json!({})).await;
    f.upload_sh("asks-more", script, json!({"disk_mb": 32}))
        .await;
    f.upload_sh("asks-less", script, json!({"disk_mb": 16}))
        .await;
    for (code, mib) in [("default-disk", 20), ("asks-more", 24), ("asks-less", 16)] {
        let id = f.queue(json!({"code_name": code})).await;
        let t = f.wait_for(&id, None, WAIT).await;
        assert_eq!(t["status"], "error", "{code}: {t}");
        let msg = format!("the task used its whole disk limit of {mib} MiB");
        assert_eq!(t["msg"], msg.as_str(), "{code}: {t}");
    }
}
