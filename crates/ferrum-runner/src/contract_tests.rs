use super::*;

fn spec() -> RunSpec {
    RunSpec {
        code_id: "5f0c00000000000000000001".parse().unwrap(),
        code_name: "hello".into(),
        revision_id: "5f0c00000000000000000002".parse().unwrap(),
        rev: 1,
        image: "ferrum/stack-python:1".into(),
        docker_style: false,
        runtime: Some("python".into()),
        file_name: Some("testDir/hello.py".into()),
        command: None,
        config: None,
        env_vars: BTreeMap::new(),
        has_zip: true,
        memory_mb: None,
        cpus: None,
        pids: None,
        disk_mb: None,
    }
}

fn task() -> TaskIdentity {
    TaskIdentity {
        task_id: "5f0c000000000000000000aa".into(),
        schedule_id: None,
        iron: None,
        batch_id: None,
    }
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn python_example_matches_section_6_5() {
    let inv = invocation(&spec(), &task()).unwrap();
    assert_eq!(
        inv.entrypoint.unwrap(),
        strings(&[
            "python",
            "-u",
            "testDir/hello.py",
            "-d",
            "/mnt/task",
            "-payload",
            "/mnt/task/__payload__",
            "-id",
            "5f0c000000000000000000aa",
        ])
    );
    assert_eq!(inv.cmd, None);
    assert_eq!(inv.working_dir.as_deref(), Some("/mnt/task"));
    assert_eq!(
        inv.env,
        strings(&[
            "HOME=/home/ferrum",
            "PAYLOAD_FILE=/mnt/task/__payload__",
            "RESULT_FILE=/mnt/task/__result__",
            "TASK_DIR=/mnt/task",
            "TASK_ID=5f0c000000000000000000aa",
        ])
    );
}

/// The task's project and token reach the official clients; a code cannot spoof them, and a
/// task without a token has none rather than one from its code's env_vars.
#[test]
fn iron_identity_wins_over_env_vars() {
    let mut s = spec();
    s.env_vars.insert("IRON_TOKEN".into(), "spoofed".into());
    s.env_vars
        .insert("IRON_PROJECT_ID".into(), "spoofed".into());
    let mut t = task();
    let env = environment(&s, &t);
    assert!(!env.iter().any(|e| e.starts_with("IRON_TOKEN=")));
    assert!(!env.iter().any(|e| e.starts_with("IRON_PROJECT_ID=")));
    t.iron = Some(IronIdentity {
        project_id: "p1".into(),
        token: "ftt_x".into(),
    });
    let env = environment(&s, &t);
    assert!(env.contains(&"IRON_TOKEN=ftt_x".to_string()));
    assert!(env.contains(&"IRON_PROJECT_ID=p1".to_string()));
    assert!(!format!("{t:?}").contains("ftt_x"), "Debug hides the token");
}

#[test]
fn config_adds_flag_before_id_and_env() {
    let mut s = spec();
    s.config = Some("{\"k\":1}".into());
    let inv = invocation(&s, &task()).unwrap();
    let argv = inv.entrypoint.unwrap();
    assert_eq!(
        argv[3..],
        strings(&[
            "-d",
            "/mnt/task",
            "-payload",
            "/mnt/task/__payload__",
            "-config",
            "/mnt/task/__config__",
            "-id",
            "5f0c000000000000000000aa",
        ])[..]
    );
    assert!(inv
        .env
        .contains(&"CONFIG_FILE=/mnt/task/__config__".to_string()));
}

#[test]
fn empty_config_counts_as_none() {
    let mut s = spec();
    s.config = Some(String::new());
    let inv = invocation(&s, &task()).unwrap();
    assert!(!inv.entrypoint.unwrap().contains(&"-config".to_string()));
    assert!(!inv.env.iter().any(|e| e.starts_with("CONFIG_FILE=")));
}

#[test]
fn runtime_commands() {
    let cases: &[(&str, &[&str])] = &[
        ("sh", &["sh", "run.sh"]),
        ("python", &["python", "-u", "run.sh"]),
        ("python-3.11", &["python", "-u", "run.sh"]),
        ("python3", &["python", "-u", "run.sh"]),
        ("ruby", &["ruby", "run.sh"]),
        ("php", &["php", "run.sh"]),
        ("node", &["node", "run.sh"]),
        ("node-18", &["node", "run.sh"]),
    ];
    for (runtime, want) in cases {
        assert_eq!(runtime_command(runtime, "run.sh").unwrap(), strings(want));
    }
    let binary = runtime_command("binary", "bin/tool").unwrap();
    assert_eq!(binary[0], "sh");
    assert_eq!(binary[3], "bin/tool");
    assert!(binary[2].contains("chmod +x"));
}

#[test]
fn flags_are_never_last_and_d_comes_first() {
    for with_config in [false, true] {
        let args = worker_args("abc", with_config);
        assert_eq!(args[0], "-d");
        assert!(!args.last().unwrap().starts_with('-'));
        assert!(!args.iter().any(|a| a == "-e" || a == "-schedule_id"));
    }
}

#[test]
fn rejects_bad_specs() {
    let mut s = spec();
    s.runtime = Some("cobol".into());
    assert_eq!(
        invocation(&s, &task()),
        Err(ContractError::UnknownRuntime("cobol".into()))
    );
    s.runtime = None;
    assert_eq!(invocation(&s, &task()), Err(ContractError::MissingRuntime));
    let mut s = spec();
    s.file_name = None;
    assert_eq!(invocation(&s, &task()), Err(ContractError::MissingFileName));
    for bad in ["/etc/passwd", "../x.py", "a/../../x", "-c"] {
        s.file_name = Some(bad.into());
        assert!(matches!(
            invocation(&s, &task()),
            Err(ContractError::BadFileName(_))
        ));
    }
}

#[test]
fn env_vars_schedule_and_precedence() {
    let mut s = spec();
    s.env_vars.insert("FOO".into(), "bar".into());
    s.env_vars.insert("TASK_ID".into(), "spoofed".into());
    s.env_vars.insert("CONFIG_FILE".into(), "/etc/x".into());
    s.env_vars.insert("BAD=NAME".into(), "x".into());
    let mut t = task();
    t.schedule_id = Some("5f0c000000000000000000bb".into());
    let env = environment(&s, &t);
    assert!(env.contains(&"FOO=bar".to_string()));
    assert!(env.contains(&"TASK_ID=5f0c000000000000000000aa".to_string()));
    assert!(env.contains(&"SCHEDULE_ID=5f0c000000000000000000bb".to_string()));
    assert!(!env.iter().any(|e| e.starts_with("CONFIG_FILE=")));
    assert!(!env.iter().any(|e| e.starts_with("BAD")));
    assert!(env.contains(&"HOME=/home/ferrum".to_string()));
    s.env_vars.insert("HOME".into(), "/mnt/task".into());
    assert!(environment(&s, &t).contains(&"HOME=/mnt/task".to_string()));
}

#[test]
fn docker_style_with_zip_runs_command_in_task_dir() {
    let mut s = spec();
    s.docker_style = true;
    s.runtime = None;
    s.file_name = None;
    s.command = Some("python hello.py --x".into());
    let inv = invocation(&s, &task()).unwrap();
    assert_eq!(
        inv.entrypoint.unwrap(),
        strings(&["sh", "-c", "python hello.py --x"])
    );
    assert_eq!(inv.cmd, Some(vec![]));
    assert_eq!(inv.working_dir.as_deref(), Some("/mnt/task"));
    assert!(inv
        .env
        .contains(&"PAYLOAD_FILE=/mnt/task/__payload__".to_string()));
}

#[test]
fn docker_style_without_zip_keeps_image_settings() {
    let mut s = spec();
    s.docker_style = true;
    s.has_zip = false;
    s.runtime = None;
    s.file_name = None;
    let inv = invocation(&s, &task()).unwrap();
    assert_eq!(inv.entrypoint, None);
    assert_eq!(inv.cmd, None);
    assert_eq!(inv.working_dir, None);

    s.command = Some("  node  app.js   --fast ".into());
    let inv = invocation(&s, &task()).unwrap();
    assert_eq!(inv.entrypoint, None);
    assert_eq!(inv.cmd, Some(strings(&["node", "app.js", "--fast"])));
    assert_eq!(inv.working_dir, None);
}
