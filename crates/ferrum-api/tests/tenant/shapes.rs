//! What the clients read: object shapes (contract §4), content types, and the answers of the
//! routes the Python client does not cover.

use reqwest::Method;
use serde_json::{json, Value};

use crate::common::{zip_of, Body, TestApp};

const SCHEDULE_KEYS: [&str; 6] = [
    "start_at",
    "end_at",
    "next_start",
    "last_run_time",
    "run_count",
    "run_every",
];

fn is_time_string(v: &Value) -> bool {
    v.as_str()
        .is_some_and(|s| chrono::DateTime::parse_from_rfc3339(s).is_ok())
}

fn md5_hex(data: &[u8]) -> String {
    use md5::Digest;
    hex::encode(md5::Md5::digest(data))
}

#[tokio::test]
async fn tasks_have_no_schedule_keys_and_typed_fields() {
    let app = TestApp::start().await;
    let t = app.tenant("alpha").await;
    app.hello_code(&t, "hello").await;
    let id = app.queue(&t, "hello", "{\"a\": 1}").await;
    let resp = app
        .get(&t, &format!("/2/projects/{}/tasks/{id}", t.project))
        .await
        .expect(200);
    assert_eq!(resp.content_type.as_deref(), Some("application/json"));
    let task = resp.json();
    for key in SCHEDULE_KEYS
        .iter()
        .chain(&["scheduled", "repeating", "message"])
    {
        assert!(task.get(*key).is_none(), "task has {key}: {task}");
    }
    assert_eq!(task["id"], id);
    assert_eq!(task["status"], "queued");
    assert_eq!(task["code_rev"], "1");
    assert_eq!(task["payload"], "{\"a\": 1}");
    assert_eq!(task["timeout"], 3600);
    assert_eq!(task["duration"], 0);
    assert_eq!(task["cluster"], "default");
    assert_eq!(task["start_time"], "0001-01-01T00:00:00Z");
    assert_eq!(task["end_time"], "0001-01-01T00:00:00Z");
    for key in ["created_at", "updated_at"] {
        assert!(is_time_string(&task[key]), "{key}: {}", task[key]);
    }
    let list = app
        .get(&t, &format!("/2/projects/{}/tasks?per_page=30", t.project))
        .await
        .expect(200)
        .json();
    let listed = &list["tasks"][0];
    assert_eq!(listed, &task);
}

#[tokio::test]
async fn schedules_have_every_schedule_key() {
    let app = TestApp::start().await;
    let t = app.tenant("alpha").await;
    app.hello_code(&t, "hello").await;
    let body = json!({"schedules": [{
        "code_name": "hello", "payload": "{\"b\": 2}", "priority": 0, "delay": 0, "label": null,
        "cluster": null, "sync": false, "run_every": 60.0, "run_times": 3,
        "start_at": "2030-01-01T12:00:00+00:00", "timeout": 3600,
    }]});
    let path = format!("/2/projects/{}/schedules", t.project);
    let created = app.post(&t, &path, body).await.expect(200).json();
    assert_eq!(created["msg"], "Scheduled");
    let id = created["schedules"][0]["id"].as_str().unwrap().to_owned();
    let s = app
        .get(&t, &format!("{path}/{id}"))
        .await
        .expect(200)
        .json();
    for key in SCHEDULE_KEYS {
        assert!(s.get(key).is_some(), "schedule lacks {key}: {s}");
    }
    assert_eq!(s["status"], "scheduled");
    assert_eq!(s["start_at"], "2030-01-01T12:00:00.000Z");
    assert_eq!(s["end_at"], "0001-01-01T00:00:00Z");
    assert_eq!(s["last_run_time"], "0001-01-01T00:00:00Z");
    assert!(is_time_string(&s["next_start"]));
    assert_eq!(
        (
            s["run_every"].clone(),
            s["run_times"].clone(),
            s["run_count"].clone()
        ),
        (json!(60), json!(3), json!(0))
    );
    let list = app
        .get(&t, &format!("{path}?per_page=30"))
        .await
        .expect(200)
        .json();
    assert_eq!(list["schedules"][0], s);

    let put = Body::Json(json!({"label": "nightly", "run_every": 120}));
    let resp = app
        .call(Method::PUT, &format!("{path}/{id}"), Some(&t.token), put)
        .await
        .expect(200);
    assert_eq!(resp.msg(), "Updated");
    let s = app.get(&t, &format!("{path}/{id}")).await.json();
    assert_eq!(
        (s["label"].clone(), s["run_every"].clone()),
        (json!("nightly"), json!(120))
    );

    // The label and the limits can be removed: given as they read when unset.
    let one = format!("{path}/{id}");
    let put = |body: Value| app.call(Method::PUT, &one, Some(&t.token), Body::Json(body));
    put(json!({"end_at": "2031-01-01T00:00:00Z"}))
        .await
        .expect(200);
    put(json!({"payload": "kept"})).await.expect(200);
    let s = app.get(&t, &format!("{path}/{id}")).await.json();
    assert_eq!(
        (&s["label"], &s["run_times"], &s["end_at"]),
        (
            &json!("nightly"),
            &json!(3),
            &json!("2031-01-01T00:00:00.000Z")
        ),
        "what an update does not give stays"
    );
    put(json!({"label": "", "run_times": 0, "end_at": "0001-01-01T00:00:00Z"}))
        .await
        .expect(200);
    let s = app.get(&t, &format!("{path}/{id}")).await.json();
    assert!(s.get("label").is_none_or(Value::is_null), "{s}");
    assert_eq!(
        (&s["run_times"], &s["end_at"]),
        (&json!(0), &json!("0001-01-01T00:00:00Z"))
    );
    assert_eq!(s["status"], "scheduled");

    let cancel = app
        .call(
            Method::POST,
            &format!("{path}/{id}/cancel"),
            Some(&t.token),
            Body::None,
        )
        .await;
    assert_eq!(cancel.expect(200).msg(), "Cancelled");
    assert_eq!(
        app.get(&t, &format!("{path}/{id}")).await.json()["status"],
        "cancelled"
    );
}

#[tokio::test]
async fn codes_revisions_and_downloads() {
    let app = TestApp::start().await;
    let t = app.tenant("alpha").await;
    let p = t.project;
    let zip1 = zip_of(&[("hello.py", b"print(1)")]);
    let data = json!({"name": "user/hello:x", "runtime": "python", "file_name": "hello.py",
        "env_vars": {"A": "1"}, "max_concurrency": 2, "unknown": [1]});
    let up = app.upload(&t, data, Some(&zip1)).await.expect(200).json();
    assert_eq!(
        (up["msg"].clone(), up["rev"].clone()),
        (json!("Upload successful."), json!(1))
    );
    let id = up["id"].as_str().unwrap().to_owned();
    let zip2 = zip_of(&[("hello.py", b"print(2)")]);
    let again = json!({"name": "user/hello:x", "runtime": "python", "file_name": "hello.py"});
    let up2 = app.upload(&t, again, Some(&zip2)).await.expect(200).json();
    assert_eq!(
        (up2["id"].as_str(), up2["rev"].clone()),
        (Some(id.as_str()), json!(2))
    );
    // Options only: a third revision keeping the second zip.
    let opts = json!({"name": "user/hello:x", "retries": 2, "command": ""});
    assert_eq!(
        app.upload(&t, opts, None).await.expect(200).json()["rev"],
        3
    );

    let code = app
        .get(&t, &format!("/2/projects/{p}/codes/{id}"))
        .await
        .expect(200)
        .json();
    assert_eq!(code["rev"], 3);
    assert_eq!(code["latest_checksum"], md5_hex(&zip2));
    assert_eq!(
        code["env_vars"],
        json!({"A": "1"}),
        "options not given are kept"
    );
    assert_eq!(
        (code["max_concurrency"].clone(), code["retries"].clone()),
        (json!(2), json!(2))
    );
    assert!(is_time_string(&code["latest_change"]));
    assert!(code.get("command").is_none());
    let revs = app
        .get(&t, &format!("/2/projects/{p}/codes/{id}/revisions"))
        .await
        .expect(200)
        .json();
    let numbers: Vec<i64> = revs["revisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["rev"].as_i64().unwrap())
        .collect();
    assert_eq!(numbers, [3, 2, 1]);
    assert!(
        revs["revisions"][0].get("files").is_none()
            && revs["revisions"][0].get("zip_path").is_none()
    );
    assert_eq!(revs["revisions"][2]["code_size"], zip1.len());
    let codes = app
        .get(&t, &format!("/2/projects/{p}/codes"))
        .await
        .expect(200)
        .json();
    assert_eq!(codes["codes"][0]["id"], id.as_str());

    let dl = app
        .get(
            &t,
            &format!("/2/projects/{p}/codes/{id}/download?revision=1"),
        )
        .await
        .expect(200);
    assert_eq!(dl.content_type.as_deref(), Some("application/zip"));
    assert_eq!(
        dl.headers["content-disposition"],
        "filename=user_hello_x_1.zip"
    );
    assert_eq!(&dl.body[..], &zip1[..]);
    let latest = app
        .get(&t, &format!("/2/projects/{p}/codes/{id}/download"))
        .await
        .expect(200);
    assert_eq!(&latest.body[..], &zip2[..]);
}

#[tokio::test]
async fn image_codes_need_no_zip() {
    let app = TestApp::start().await;
    let t = app.tenant("alpha").await;
    let data = json!({"name": "img", "image": "alpine:3", "command": "echo hi"});
    let id = app.upload(&t, data, None).await.expect(200).json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let code = app
        .get(&t, &format!("/2/projects/{}/codes/{id}", t.project))
        .await
        .json();
    assert_eq!(
        (code["image"].clone(), code["command"].clone()),
        (json!("alpine:3"), json!("echo hi"))
    );
    assert!(code.get("latest_checksum").is_none());
    let dl = app
        .get(
            &t,
            &format!("/2/projects/{}/codes/{id}/download", t.project),
        )
        .await;
    assert!(dl.expect(404).msg().contains("no zip"));
}

#[tokio::test]
async fn task_actions_answer_the_documented_messages() {
    let app = TestApp::start().await;
    let t = app.tenant("alpha").await;
    let code = app.hello_code(&t, "hello").await;
    let p = t.project;
    let id = app.queue(&t, "hello", "{}").await;
    let task_path = format!("/2/projects/{p}/tasks/{id}");

    let resp = app
        .post(
            &t,
            &format!("{task_path}/progress"),
            json!({"percent": 50, "msg": "half"}),
        )
        .await;
    assert_eq!(resp.expect(200).msg(), "Progress set");
    let task = app.get(&t, &task_path).await.json();
    assert_eq!(
        (task["percent"].clone(), task["msg"].clone()),
        (json!(50), json!("half"))
    );

    let retry = app
        .post(&t, &format!("{task_path}/retry"), json!({"delay": 1.5}))
        .await
        .expect(200)
        .json();
    assert_eq!(retry["msg"], "Queued up");
    let new_id = retry["tasks"][0]["id"].as_str().unwrap();
    assert_ne!(new_id, id);
    let copy = app
        .get(&t, &format!("/2/projects/{p}/tasks/{new_id}"))
        .await
        .json();
    assert_eq!(
        (copy["original_task_id"].as_str(), copy["delay"].clone()),
        (Some(id.as_str()), json!(1))
    );

    let log = app.get(&t, &format!("{task_path}/log")).await.expect(404);
    assert_eq!(log.content_type.as_deref(), Some("application/json"));
    assert!(log.msg().contains("queued"));

    // Python's cancel: no body, no Content-Type.
    let cancel = app
        .call(
            Method::POST,
            &format!("{task_path}/cancel"),
            Some(&t.token),
            Body::None,
        )
        .await;
    assert_eq!(cancel.expect(200).msg(), "Cancelled");
    assert_eq!(app.get(&t, &task_path).await.json()["status"], "cancelled");

    let filtered = app
        .get(
            &t,
            &format!("/2/projects/{p}/tasks?cancelled=1&code_name=hello"),
        )
        .await
        .json();
    let ids: Vec<&str> = filtered["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [id.as_str()]);
    let queued = app
        .get(
            &t,
            &format!("/2/projects/{p}/tasks?queued=1&killed=1&per_page=1&page=0"),
        )
        .await
        .json();
    assert_eq!(queued["tasks"].as_array().unwrap().len(), 1);
    let none = app
        .get(&t, &format!("/2/projects/{p}/tasks?code_name=nope"))
        .await
        .json();
    assert_eq!(none["tasks"], json!([]));

    let code_path = format!("/2/projects/{p}/codes/{code}");
    let msg = |resp: crate::common::Resp| resp.expect(200).msg();
    assert_eq!(
        msg(app
            .post(&t, &format!("{code_path}/pause_task_queue"), json!({}))
            .await),
        "Paused"
    );
    assert_eq!(
        msg(app
            .post(&t, &format!("{code_path}/pause_task_queue"), json!({}))
            .await),
        "Already paused"
    );
    assert_eq!(
        msg(app
            .post(&t, &format!("{code_path}/resume_task_queue"), json!({}))
            .await),
        "Resumed"
    );
    assert_eq!(
        msg(app
            .post(&t, &format!("{code_path}/resume_task_queue"), json!({}))
            .await),
        "Already resumed"
    );
    let stats = app
        .get(&t, &format!("{code_path}/stats"))
        .await
        .expect(200)
        .json();
    for status in [
        "queued",
        "preparing",
        "running",
        "complete",
        "error",
        "cancelled",
        "killed",
        "timeout",
    ] {
        assert!(stats[status].is_i64(), "stats lacks {status}: {stats}");
    }
    assert_eq!(
        msg(app
            .post(&t, &format!("{code_path}/cancel_all"), json!({}))
            .await),
        "Cancelled 1 tasks"
    );
    let deleted = app
        .call(Method::DELETE, &code_path, Some(&t.token), Body::None)
        .await;
    assert_eq!(deleted.expect(200).msg(), "Deleted");
    let codes = app.get(&t, &format!("/2/projects/{p}/codes")).await.json();
    assert_eq!(codes["codes"], json!([]));
}

#[tokio::test]
async fn webhooks_keep_the_body_byte_for_byte() {
    let app = TestApp::start().await;
    let t = app.tenant("alpha").await;
    app.hello_code(&t, "hello").await;
    let body = b"{\"text\": \"h\xc3\xa9llo\"}\r\n\x00tail".to_vec();
    let path = format!(
        "/2/projects/{}/tasks/webhook?code_name=hello&priority=2&label=gh&oauth={}",
        t.project, t.token
    );
    let resp = app
        .call(Method::POST, &path, None, Body::Raw(body.clone()))
        .await
        .expect(200)
        .json();
    assert_eq!(resp["msg"], "Queued up.");
    let id: ferrum_model::Id = resp["id"].as_str().unwrap().parse().unwrap();
    use ferrum_store::TaskStore;
    let task = app.store.task(t.project, id).await.unwrap().unwrap();
    assert_eq!(task.payload, body);
    assert_eq!((task.priority, task.label.as_deref()), (2, Some("gh")));
}

#[tokio::test]
async fn projects_stacks_openapi_and_unknown_routes() {
    let app = TestApp::start().await;
    let t = app.tenant("alpha").await;
    let project = app
        .get(&t, &format!("/2/projects/{}?oauth={}", t.project, t.token))
        .await
        .expect(200)
        .json();
    assert_eq!(project["name"], "alpha");
    let created = app
        .post(&t, "/2/projects", json!({"name": "second"}))
        .await
        .expect(200)
        .json();
    assert_eq!(created["name"], "second");
    let list = app.get(&t, "/2/projects").await.json();
    assert_eq!(list["projects"].as_array().unwrap().len(), 2);
    let resp = app
        .post(&t, "/2/projects", json!({"name": " "}))
        .await
        .expect(400);
    assert!(resp.msg().contains("name is required"));
    let creds = app
        .post(
            &t,
            &format!("/2/projects/{}/credentials", t.project),
            json!({"password": "x"}),
        )
        .await;
    assert!(creds.expect(501).msg().contains("not supported"));

    let stacks = app.get(&t, "/2/stacks").await.expect(200).json();
    assert!(stacks.as_array().unwrap().contains(&json!("python")));

    let doc = app
        .call(Method::GET, "/openapi.json", None, Body::None)
        .await
        .expect(200)
        .json();
    assert_eq!(doc["openapi"], "3.0.3");
    let tasks = &doc["paths"]["/2/projects/{project_id}/tasks"];
    assert!(tasks["get"]["summary"].is_string() && tasks["post"]["summary"].is_string());
    assert_eq!(tasks["get"]["parameters"][0]["name"], "project_id");
    assert!(doc["paths"]["/2/projects/{project_id}/tasks/{task_id}/log"]["get"].is_object());

    let missing = app.get(&t, "/2/nothing/here").await.expect(404);
    assert_eq!(missing.content_type.as_deref(), Some("application/json"));
    let wrong = app
        .call(Method::PATCH, "/2/stacks", Some(&t.token), Body::None)
        .await;
    assert_eq!(wrong.expect(405).msg(), "Method not allowed");
}

/// `next_cursor` walks the list page by page (keyset), ends on the last page, and a cursor
/// that is not an id is a 400 naming it.
#[tokio::test]
async fn the_task_list_pages_by_cursor() {
    let app = TestApp::start().await;
    let t = app.tenant("alpha").await;
    app.hello_code(&t, "hello").await;
    let p = t.project;
    let mut queued = Vec::new();
    for _ in 0..5 {
        queued.push(app.queue(&t, "hello", "{}").await);
    }
    queued.reverse();
    let mut seen = Vec::new();
    let mut url = format!("/2/projects/{p}/tasks?per_page=2");
    loop {
        let page = app.get(&t, &url).await.expect(200).json();
        let ids = page["tasks"].as_array().unwrap();
        seen.extend(ids.iter().map(|t| t["id"].as_str().unwrap().to_owned()));
        match page["next_cursor"].as_str() {
            Some(c) => url = format!("/2/projects/{p}/tasks?per_page=2&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen, queued);
    let bad = app
        .get(&t, &format!("/2/projects/{p}/tasks?cursor=zzz"))
        .await
        .expect(400);
    assert!(bad.msg().starts_with("cursor"), "{}", bad.msg());
}
