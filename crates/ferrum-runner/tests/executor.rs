//! The executors against the real engine, each test on the cold and the pooled one:
//! outcomes, contract, hardening, output and cleanup. Every run also checks that its container
//! and task dir were removed, and every test that its executor left nothing behind.

#[macro_use]
mod common;

use std::time::Duration;

use common::*;
use ferrum_model::protocol::LogStream;
use ferrum_runner::executor::{ExecError, Outcome};
use ferrum_runner::unpack::UnpackError;
use tokio_util::sync::CancellationToken;

async fn success_and_exit_codes(kind: Kind) {
    let exec = executor(kind, "exit", |_| {}).await;
    let ok = run(
        &exec,
        sh_task(&exec, "echo hello"),
        CancellationToken::new(),
    )
    .await;
    assert!(ok.started);
    assert_eq!(ok.report().outcome, Outcome::Complete);
    assert_eq!(ok.stdout(), "hello\n");

    let task = sh_task(&exec, "echo first >&2; echo 'it broke' >&2; exit 3");
    let failed = run(&exec, task, CancellationToken::new()).await;
    assert_eq!(
        failed.report().outcome,
        Outcome::Error {
            exit_code: 3,
            msg: "Process exited with code 3: it broke".into()
        }
    );
    assert_eq!(
        failed.stream(LogStream::Stderr),
        bytes::Bytes::from("first\nit broke\n")
    );
}

async fn timeout_kills_the_container(kind: Kind) {
    let exec = executor(kind, "timeout", |_| {}).await;
    let mut task = sh_task(&exec, "echo before; sleep 60; echo after");
    task.timeout = Duration::from_secs(1);
    exec.until_full().await;
    let got = run(&exec, task, CancellationToken::new()).await;
    assert_eq!(got.report().outcome, Outcome::Timeout);
    // Killed in its sleep: it never printed "after".
    assert_eq!(got.stdout(), "before\n");
}

async fn cancel_kills_a_task_that_ignores_sigterm(kind: Kind) {
    let exec = executor(kind, "cancel", |_| {}).await;
    let task = sh_task(&exec, "trap '' TERM; sleep 60");
    let cancel = CancellationToken::new();
    let (tx, mut rx) = tokio::sync::mpsc::channel(8);
    let runner = exec.clone();
    let stop = cancel.clone();
    let handle = tokio::spawn(async move { runner.run(task, tx, stop).await });
    assert!(matches!(
        rx.recv().await,
        Some(ferrum_runner::executor::TaskEvent::Started)
    ));
    cancel.cancel();
    let report = handle.await.unwrap().unwrap();
    assert_eq!(report.outcome, Outcome::Cancelled);
    // Killed though it ignores SIGTERM: the run did not last its 60 s sleep.
    assert!(
        report.duration < Duration::from_secs(60),
        "{:?}",
        report.duration
    );
}

const CONTRACT_SCRIPT: &str = r#"
echo "argv: $0 $*"
echo "cwd: $(pwd)"
echo "TASK_ID=$TASK_ID"
echo "TASK_DIR=$TASK_DIR"
echo "PAYLOAD_FILE=$PAYLOAD_FILE"
echo "CONFIG_FILE=${CONFIG_FILE-unset}"
echo "SCHEDULE_ID=${SCHEDULE_ID-unset}"
echo "GREETING=$GREETING"
echo "payload: $(cat "$PAYLOAD_FILE")"
echo "config: $(cat "$CONFIG_FILE")"
echo "files: $(ls /mnt/task | tr '\n' ' ')"
touch /mnt/task/scratch && echo writable
"#;

async fn contract_is_visible_inside(kind: Kind) {
    let exec = executor(kind, "contract", |_| {}).await;
    let mut task = sh_task(&exec, CONTRACT_SCRIPT);
    task.payload = br#"{"a":1}"#.to_vec();
    task.spec.config = Some("k: v".into());
    task.spec
        .env_vars
        .insert("GREETING".into(), "hi there".into());
    task.schedule_id = Some("5f0c000000000000000000bb".into());
    let id = task.task_id.clone();
    let got = run(&exec, task, CancellationToken::new()).await;
    assert_eq!(got.report().outcome, Outcome::Complete);
    let expected = format!(
        "argv: run.sh -d /mnt/task -payload /mnt/task/__payload__ -config /mnt/task/__config__ -id {id}\n\
         cwd: /mnt/task\nTASK_ID={id}\nTASK_DIR=/mnt/task\nPAYLOAD_FILE=/mnt/task/__payload__\n\
         CONFIG_FILE=/mnt/task/__config__\nSCHEDULE_ID=5f0c000000000000000000bb\nGREETING=hi there\n\
         payload: {{\"a\":1}}\nconfig: k: v\nfiles: __config__ __payload__ run.sh \nwritable\n"
    );
    assert_eq!(got.stdout(), expected);
}

/// What the worker process was started with (pid 1 is the worker itself): exactly the image's
/// environment, Docker's `HOSTNAME` and the contract's variables, whichever executor started it.
async fn the_worker_gets_exactly_the_contracts_environment(kind: Kind) {
    let exec = executor(kind, "environ", |_| {}).await;
    let script = "tr '\\0' '\\n' < /proc/1/environ | cut -d= -f1 | sort | tr '\\n' ' '";
    let got = run(&exec, sh_task(&exec, script), CancellationToken::new()).await;
    assert_eq!(
        got.stdout(),
        "HOME HOSTNAME LANG PATH PAYLOAD_FILE RESULT_FILE TASK_DIR TASK_ID "
    );
}

/// The file a worker leaves at `RESULT_FILE` comes back in the report.
async fn a_workers_result_file_comes_back(kind: Kind) {
    let exec = executor(kind, "result", |_| {}).await;
    let task = sh_task(&exec, "printf '{\"n\": 42}' > \"$RESULT_FILE\"");
    let got = run(&exec, task, CancellationToken::new()).await;
    assert_eq!(
        got.report().result,
        ferrum_runner::result::TaskResult::Bytes(br#"{"n": 42}"#.to_vec())
    );
}

async fn empty_payload_is_written_and_no_config_means_no_file(kind: Kind) {
    let exec = executor(kind, "noconfig", |_| {}).await;
    let script = "test -f \"$PAYLOAD_FILE\" && wc -c < \"$PAYLOAD_FILE\"; echo \"${CONFIG_FILE-unset}\"; echo $*";
    let task = sh_task(&exec, script);
    let id = task.task_id.clone();
    let got = run(&exec, task, CancellationToken::new()).await;
    assert_eq!(
        got.stdout(),
        format!("0\nunset\n-d /mnt/task -payload /mnt/task/__payload__ -id {id}\n")
    );
}

async fn binary_runtime_and_docker_style_codes(kind: Kind) {
    let exec = executor(kind, "styles", |_| {}).await;
    let mut task = sh_task(&exec, "#!/bin/sh\necho binary \"$1\"\n");
    task.spec.runtime = Some("binary".into());
    let got = run(&exec, task, CancellationToken::new()).await;
    assert_eq!(got.stdout(), "binary -d\n");

    let mut task = sh_task(&exec, "echo from zip");
    task.spec.docker_style = true;
    task.spec.command = Some("sh run.sh; echo \"$TASK_DIR\"; echo $#".into());
    let got = run(&exec, task, CancellationToken::new()).await;
    assert_eq!(got.stdout(), "from zip\n/mnt/task\n0\n");

    let mut task = sh_task(&exec, "");
    task.zip = None;
    task.spec.has_zip = false;
    task.spec.docker_style = true;
    task.spec.command = Some("echo  split   words".into());
    let got = run(&exec, task, CancellationToken::new()).await;
    assert_eq!(got.stdout(), "split words\n");
}

const HARDENING_SCRIPT: &str = r#"
echo "uid=$(id -u)"
grep -E '^(CapEff|CapPrm|NoNewPrivs):' /proc/self/status
echo "pids=$(cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max)"
echo "mem=$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max)"
test -e /var/run/docker.sock && echo "sock=present" || echo "sock=absent"
test -e /run/docker.sock && echo "sock2=present" || echo "sock2=absent"
"#;

async fn hardening_is_visible_inside(kind: Kind) {
    // The limits are the executor's defaults, so a pool serves them.
    let exec = executor(kind, "harden", |c| {
        c.limits = ferrum_runner::executor::Limits {
            memory_bytes: 128 * 1024 * 1024,
            nano_cpus: 500_000_000,
            pids: 64,
            disk_bytes: 64 * 1024 * 1024,
        }
    })
    .await;
    let task = sh_task(&exec, HARDENING_SCRIPT);
    let got = run(&exec, task, CancellationToken::new()).await;
    let out = got.stdout();
    assert!(out.contains("uid=1000\n"), "{out}");
    assert!(out.contains("CapEff:\t0000000000000000\n"), "{out}");
    assert!(out.contains("CapPrm:\t0000000000000000\n"), "{out}");
    assert!(out.contains("NoNewPrivs:\t1\n"), "{out}");
    assert!(out.contains("pids=64\n"), "{out}");
    assert!(
        out.contains(&format!("mem={}\n", 128 * 1024 * 1024)),
        "{out}"
    );
    assert!(out.contains("sock=absent\nsock2=absent\n"), "{out}");
}

async fn fifty_megabytes_arrive_complete_and_in_order(kind: Kind) {
    let exec = executor(kind, "bigout", |c| c.log_cap_bytes = 128 * 1024 * 1024).await;
    let task = sh_task(&exec, "seq 1 6000000; echo done >&2");
    let got = run(&exec, task, CancellationToken::new()).await;
    assert_eq!(got.report().outcome, Outcome::Complete);
    let mut expected = String::with_capacity(50 * 1024 * 1024);
    for i in 1..=6_000_000u32 {
        expected.push_str(&i.to_string());
        expected.push('\n');
    }
    assert!(expected.len() > 45_000_000);
    let stdout = got.stream(LogStream::Stdout);
    assert_eq!(stdout.len(), expected.len());
    assert!(
        stdout == expected.as_bytes(),
        "stdout differs from seq output"
    );
    assert_eq!(got.report().log_bytes as usize, expected.len() + 5);
    assert!(!got.report().truncated);
}

async fn log_cap_truncates_with_one_note(kind: Kind) {
    let exec = executor(kind, "cap", |c| c.log_cap_bytes = 1000).await;
    let task = sh_task(&exec, "seq 1 10000; echo tail >&2");
    let got = run(&exec, task, CancellationToken::new()).await;
    assert_eq!(got.report().outcome, Outcome::Complete);
    assert!(got.report().truncated);
    // The cap counts both streams, whose interleaving the pipes do not define: stderr's
    // "tail" may land before the cap or after it.
    let note = ferrum_runner::executor::truncation_note(1000);
    let stderr = got.stream(LogStream::Stderr);
    assert!(stderr.ends_with(&note), "one note, last");
    let stdout = got.stream(LogStream::Stdout).len();
    assert_eq!(stdout + stderr.len() - note.len(), 1000);
}

async fn traversal_zip_is_rejected_and_cleaned_up(kind: Kind) {
    let exec = executor(kind, "evil", |_| {}).await;
    let mut task = sh_task(&exec, "");
    task.zip = Some(make_zip(
        &exec.config().work_dir,
        &[("run.sh", b"echo hi"), ("../../escaped", b"x")],
    ));
    let got = run(&exec, task, CancellationToken::new()).await;
    assert!(matches!(
        got.result,
        Err(ExecError::Unpack(UnpackError::UnsafePath(_)))
    ));
    assert!(!got.started);
    assert!(!exec.config().work_dir.join("escaped").exists());
}

async fn missing_image_is_an_error_and_cleaned_up(kind: Kind) {
    let exec = executor(kind, "noimage", |_| {}).await;
    let mut task = sh_task(&exec, "echo hi");
    task.spec.image = "ferrum/does-not-exist:0".into();
    let got = run(&exec, task, CancellationToken::new()).await;
    assert!(matches!(got.result, Err(ExecError::ImageMissing(_))));
}

async fn dropped_run_still_cleans_up(kind: Kind) {
    let exec = executor(kind, "drop", |_| {}).await;
    let task = sh_task(&exec, "sleep 60");
    let name = format!("ferrum-{}-{}", task.task_id, task.attempt);
    let dir = exec
        .config()
        .work_dir
        .join("tasks")
        .join(format!("{}-1", task.task_id));
    let (tx, mut rx) = tokio::sync::mpsc::channel(8);
    let runner = exec.clone();
    let handle = tokio::spawn(async move { runner.run(task, tx, CancellationToken::new()).await });
    assert!(matches!(
        rx.recv().await,
        Some(ferrum_runner::executor::TaskEvent::Started)
    ));
    handle.abort();
    let _ = handle.await;
    // The cleanup runs on its own now; wait for it (and for a pool to be full again, so the
    // only disks left mounted are the parked containers').
    exec.until_full().await;
    let tasks = exec.config().work_dir.join("tasks");
    for _ in 0..50 {
        let gone = exec.docker().inspect_container(&name, None).await.is_err();
        if gone && !dir.exists() && mounts_under(&tasks).len() == exec.parked() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_gone(&exec, &name, &dir).await;
    assert_eq!(mounts_under(&tasks).len(), exec.parked());
}

/// A parked container that died while it waited (here: killed) is found out when its task
/// is handed over; the task then runs in a container created for it.
async fn a_task_whose_parked_container_died_runs_cold(kind: Kind) {
    use bollard::container::ListContainersOptions;
    use std::collections::HashMap;

    let exec = executor(kind, "dead-init", |_| {}).await;
    exec.until_full().await;
    let filters = HashMap::from([(
        "label".to_owned(),
        vec![format!("ferrum.runner={}", exec.config().host_id)],
    )]);
    let options = ListContainersOptions {
        filters,
        ..Default::default()
    };
    let parked = exec.docker().list_containers(Some(options)).await.unwrap();
    assert_eq!(parked.len(), exec.parked());
    for container in parked {
        let id = container.id.unwrap();
        exec.docker()
            .kill_container::<String>(&id, None)
            .await
            .unwrap();
    }
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    let collect = tokio::spawn(async move {
        let mut out = Vec::new();
        while let Some(event) = rx.recv().await {
            if let ferrum_runner::executor::TaskEvent::Output { data, .. } = event {
                out.extend_from_slice(&data);
            }
        }
        out
    });
    let task = sh_task(&exec, "echo ran");
    let report = exec.run(task, tx, CancellationToken::new()).await.unwrap();
    assert_eq!(report.outcome, Outcome::Complete);
    assert!(!report.pooled, "ran in a dead parked container");
    assert_eq!(collect.await.unwrap(), b"ran\n");
}

async fn cleanup_orphans_removes_only_this_hosts_leftovers(kind: Kind) {
    use bollard::container::{Config, CreateContainerOptions};
    use std::collections::HashMap;

    let exec = executor(kind, "orphans", |_| {}).await;
    let create = |name: String, host: String| {
        let docker = exec.docker().clone();
        async move {
            let labels = HashMap::from([("ferrum.runner".to_owned(), host)]);
            let config = Config {
                image: Some(ferrum_runner::stacks::IMAGE_SH.to_owned()),
                cmd: Some(vec!["sleep".to_owned(), "60".to_owned()]),
                labels: Some(labels),
                ..Default::default()
            };
            let options = CreateContainerOptions {
                name: name.clone(),
                platform: None,
            };
            docker
                .create_container(Some(options), config)
                .await
                .unwrap();
            docker.start_container::<String>(&name, None).await.unwrap();
            name
        }
    };
    let id = ferrum_model::Id::generate();
    let mine = create(format!("ferrum-orphan-{id}"), exec.config().host_id.clone()).await;
    let other = create(
        format!("ferrum-other-{id}"),
        format!("{}-other", exec.config().host_id),
    )
    .await;
    let stale_dir = exec.config().work_dir.join("tasks").join(format!("{id}-1"));
    std::fs::create_dir_all(stale_dir.join("sub")).unwrap();

    // A restarted runner also removes the containers its pools had parked.
    exec.until_full().await;
    assert_eq!(exec.cleanup_orphans().await, 1 + exec.parked());
    assert_gone(&exec, &mine, &stale_dir).await;
    assert!(exec.docker().inspect_container(&other, None).await.is_ok());
    let options = bollard::container::RemoveContainerOptions {
        force: true,
        ..Default::default()
    };
    exec.docker()
        .remove_container(&other, Some(options))
        .await
        .unwrap();
}

const PY_WORKER: &str = r#"
import json, os, sys
args = sys.argv
def flag(name):
    i = args.index(name)
    return args[i + 1]
payload = json.load(open(os.environ.get("PAYLOAD_FILE") or flag("-payload")))
print(json.dumps({
    "argv": args,
    "cwd": os.getcwd(),
    "payload": payload,
    "task_id": os.environ["TASK_ID"],
    "config": os.environ.get("CONFIG_FILE"),
    "version": sys.version_info[0],
    "write_through": sys.stdout.write_through,
}))
"#;

/// Contract §6.5's example, in the real Python stack (built here if missing: ~1-2 minutes).
async fn python_example_from_section_6_5(kind: Kind) {
    ferrum_runner::stacks::build(&["python".to_owned()], false)
        .await
        .unwrap();
    let exec = executor_for(kind, "python", &[ferrum_runner::stacks::IMAGE_PYTHON]).await;
    let mut task = sh_task(&exec, "");
    task.zip = Some(make_zip(
        &exec.config().work_dir,
        &[("testDir/hello.py", PY_WORKER.as_bytes())],
    ));
    task.spec.runtime = Some("python".into());
    task.spec.file_name = Some("testDir/hello.py".into());
    task.spec.image = ferrum_runner::stacks::IMAGE_PYTHON.into();
    task.payload = br#"{"a": 1}"#.to_vec();
    let id = task.task_id.clone();
    let got = run(&exec, task, CancellationToken::new()).await;
    assert_eq!(got.report().outcome, Outcome::Complete, "{}", got.stdout());
    let seen: serde_json::Value = serde_json::from_str(&got.stdout()).unwrap();
    assert_eq!(
        seen["argv"],
        serde_json::json!([
            "testDir/hello.py",
            "-d",
            "/mnt/task",
            "-payload",
            "/mnt/task/__payload__",
            "-id",
            id
        ])
    );
    assert_eq!(seen["cwd"], "/mnt/task");
    assert_eq!(seen["payload"], serde_json::json!({"a": 1}));
    assert_eq!(seen["task_id"], id.as_str());
    assert_eq!(seen["config"], serde_json::Value::Null);
    assert_eq!(seen["version"], 3);
    assert_eq!(seen["write_through"], true, "python -u");
}

suite!(
    success_and_exit_codes,
    timeout_kills_the_container,
    cancel_kills_a_task_that_ignores_sigterm,
    contract_is_visible_inside,
    the_worker_gets_exactly_the_contracts_environment,
    a_workers_result_file_comes_back,
    empty_payload_is_written_and_no_config_means_no_file,
    binary_runtime_and_docker_style_codes,
    hardening_is_visible_inside,
    fifty_megabytes_arrive_complete_and_in_order,
    log_cap_truncates_with_one_note,
    traversal_zip_is_rejected_and_cleaned_up,
    missing_image_is_an_error_and_cleaned_up,
    dropped_run_still_cleans_up,
    a_task_whose_parked_container_died_runs_cold,
    cleanup_orphans_removes_only_this_hosts_leftovers,
    python_example_from_section_6_5,
);
