//! Bad input gets a 4xx with a clear `msg` and changes nothing (brief §5).

use reqwest::Method;
use serde_json::json;

use crate::common::{zip_of, zip_with_symlink, Body, Resp, Tenant, TestApp, MAX_UNPACKED};

/// Runs `request`, checks the status and that `msg` mentions `needle`, and that nothing was
/// written anywhere.
pub async fn refused<F, Fut>(app: &TestApp, status: u16, needle: &str, request: F)
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Resp>,
{
    let before = app.counts().await;
    let resp = request().await.expect(status);
    assert_eq!(resp.content_type.as_deref(), Some("application/json"));
    let msg = resp.msg();
    assert!(
        msg.contains(needle),
        "msg {msg:?} should mention {needle:?}"
    );
    assert_eq!(
        app.counts().await,
        before,
        "a refused request wrote something"
    );
}

async fn setup() -> (TestApp, Tenant) {
    let app = TestApp::start().await;
    let t = app.tenant("alpha").await;
    app.hello_code(&t, "hello").await;
    (app, t)
}

fn hello_data() -> serde_json::Value {
    json!({"name": "hello", "runtime": "python", "file_name": "hello.py"})
}

#[tokio::test]
async fn oversized_payloads_are_413() {
    let (app, t) = setup().await;
    let big = "x".repeat(64 * 1024 + 1);
    let tasks = format!("/2/projects/{}/tasks", t.project);
    let body = json!({"tasks": [{"code_name": "hello", "payload": big}]});
    refused(&app, 413, "payload", || app.post(&t, &tasks, body)).await;
    let hook = format!("/2/projects/{}/tasks/webhook?code_name=hello", t.project);
    let raw = Body::Raw(big.clone().into_bytes());
    refused(&app, 413, "payload", || {
        app.call(Method::POST, &hook, Some(&t.token), raw)
    })
    .await;
    let sched = format!("/2/projects/{}/schedules", t.project);
    let body = json!({"schedules": [{"code_name": "hello", "payload": big, "run_every": 60}]});
    refused(&app, 413, "payload", || app.post(&t, &sched, body)).await;
}

#[tokio::test]
async fn request_bodies_past_the_limit_are_413() {
    let (app, t) = setup().await;
    let tasks: Vec<_> = (0..20)
        .map(|_| json!({"code_name": "hello", "payload": "y".repeat(60 * 1024)}))
        .collect();
    let path = format!("/2/projects/{}/tasks", t.project);
    refused(&app, 413, "length limit", || {
        app.post(&t, &path, json!({"tasks": tasks}))
    })
    .await;
}

#[tokio::test]
async fn zips_with_escaping_paths_are_400() {
    let (app, t) = setup().await;
    for name in ["../evil.py", "a/../../evil.py", "/etc/cron.d/evil"] {
        let zip = zip_of(&[("hello.py", b"ok"), (name, b"evil")]);
        refused(&app, 400, "\"..\"", || {
            app.upload(&t, hello_data(), Some(&zip))
        })
        .await;
    }
    let zip = zip_with_symlink("hello.py", "../../etc/passwd");
    refused(&app, 400, "outside", || {
        app.upload(&t, hello_data(), Some(&zip))
    })
    .await;
    let zip = zip_with_symlink("hello.py", "/etc/passwd");
    refused(&app, 400, "outside", || {
        app.upload(&t, hello_data(), Some(&zip))
    })
    .await;
}

#[tokio::test]
async fn zips_that_expand_past_the_limit_are_400() {
    let (app, t) = setup().await;
    let zeros = vec![0u8; MAX_UNPACKED as usize + 1];
    let zip = zip_of(&[("hello.py", b"ok"), ("bomb", &zeros)]);
    assert!(zip.len() < 64 * 1024, "the bomb should compress well");
    refused(&app, 400, "more than", || {
        app.upload(&t, hello_data(), Some(&zip))
    })
    .await;
}

#[tokio::test]
async fn uploads_that_are_not_zips_or_lack_parts_are_400() {
    let (app, t) = setup().await;
    refused(&app, 400, "not a zip", || {
        app.upload(&t, hello_data(), Some(b"hello"))
    })
    .await;
    refused(&app, 400, "malformed Python bytes literal", || {
        app.upload(&t, hello_data(), Some(br"b'PK\q'"))
    })
    .await;
    let zip = zip_of(&[("other.py", b"ok")]);
    refused(&app, 400, "not in the zip", || {
        app.upload(&t, hello_data(), Some(&zip))
    })
    .await;
    // What the official Python client sends for upload("pkg", executable="hello.py").
    let prefixed = zip_of(&[("pkg/hello.py", b"ok")]);
    refused(
        &app,
        400,
        r#"file_name "hello.py" is not in the zip; did you mean "pkg/hello.py"?"#,
        || app.upload(&t, hello_data(), Some(&prefixed)),
    )
    .await;
    refused(&app, 400, "name is required", || {
        app.upload(&t, json!({"runtime": "python"}), Some(&zip))
    })
    .await;
    refused(&app, 400, "needs a zip", || {
        app.upload(&t, json!({"name": "fresh"}), None)
    })
    .await;
    let path = format!("/2/projects/{}/codes", t.project);
    refused(&app, 400, "Malformed JSON", || {
        let body = Body::Multipart(crate::common::multipart("{not json", Some(&zip)));
        app.call(Method::POST, &path, Some(&t.token), body)
    })
    .await;
}

#[tokio::test]
async fn a_revision_that_cannot_be_recorded_leaves_no_zip_behind() {
    let (app, t) = setup().await;
    sqlx::query("ALTER TABLE code_revisions ADD CONSTRAINT test_refuse CHECK (rev < 0) NOT VALID")
        .execute(app.store.pool())
        .await
        .unwrap();
    let before = app.counts().await;
    let zip = zip_of(&[("hello.py", b"print(3)")]);
    let resp = app.upload(&t, hello_data(), Some(&zip)).await;
    assert_eq!(resp.status, 500);
    assert_eq!(app.counts().await, before);
}

#[tokio::test]
async fn unknown_codes_are_404() {
    let (app, t) = setup().await;
    let tasks = format!("/2/projects/{}/tasks", t.project);
    let two = json!({"tasks": [
        {"code_name": "hello", "payload": "{}"},
        {"code_name": "nope", "payload": "{}"},
    ]});
    refused(&app, 404, "\"nope\" not found", || {
        app.post(&t, &tasks, two)
    })
    .await;
    let sched = format!("/2/projects/{}/schedules", t.project);
    let body = json!({"schedules": [{"code_name": "nope", "payload": "{}"}]});
    refused(&app, 404, "\"nope\" not found", || {
        app.post(&t, &sched, body)
    })
    .await;
    let hook = format!("/2/projects/{}/tasks/webhook?code_name=nope", t.project);
    refused(&app, 404, "\"nope\" not found", || {
        app.call(
            Method::POST,
            &hook,
            Some(&t.token),
            Body::Raw(b"{}".to_vec()),
        )
    })
    .await;
}

#[tokio::test]
async fn malformed_json_is_400() {
    let (app, t) = setup().await;
    let task = app.queue(&t, "hello", "{}").await;
    let before = app.counts().await;
    for path in [
        format!("/2/projects/{}/tasks", t.project),
        format!("/2/projects/{}/schedules", t.project),
        format!("/2/projects/{}/tasks/{task}/progress", t.project),
        format!("/2/projects/{}/tasks/{task}/retry", t.project),
    ] {
        refused(&app, 400, "Malformed JSON", || {
            app.call(
                Method::POST,
                &path,
                Some(&t.token),
                Body::Raw(b"{\"tasks\": [".to_vec()),
            )
        })
        .await;
    }
    let tasks = format!("/2/projects/{}/tasks", t.project);
    let wrong_type = json!({"tasks": [{"code_name": "hello", "priority": "high"}]});
    refused(&app, 400, "Malformed JSON", || {
        app.post(&t, &tasks, wrong_type)
    })
    .await;
    assert_eq!(app.counts().await, before);
}

#[tokio::test]
async fn bad_schedule_fields_are_400() {
    let (app, t) = setup().await;
    let path = format!("/2/projects/{}/schedules", t.project);
    let s = |extra: serde_json::Value| {
        let mut one = json!({"code_name": "hello", "payload": "{}"});
        one.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        json!({"schedules": [one]})
    };
    refused(&app, 400, "run_every must be at least 60", || {
        app.post(&t, &path, s(json!({"run_every": 59})))
    })
    .await;
    refused(&app, 400, "start_at must be an RFC 3339 time", || {
        app.post(&t, &path, s(json!({"start_at": "tomorrow"})))
    })
    .await;
    refused(&app, 400, "schedules must hold", || {
        app.post(&t, &path, json!({}))
    })
    .await;
    let sched = app.schedule(&t, "hello").await;
    let one = format!("{path}/{sched}");
    refused(&app, 400, "run_every must be at least 60", || {
        app.call(
            Method::PUT,
            &one,
            Some(&t.token),
            Body::Json(json!({"run_every": 10})),
        )
    })
    .await;
}

#[tokio::test]
async fn a_project_past_100_active_schedules_gets_403() {
    let (app, t) = setup().await;
    let path = format!("/2/projects/{}/schedules", t.project);
    let batch = |n: usize| {
        let one = json!({"code_name": "hello", "payload": "{}", "run_every": 3600});
        json!({ "schedules": vec![one; n] })
    };
    refused(&app, 403, "at most 100 active schedules", || {
        app.post(&t, &path, batch(101))
    })
    .await;
    app.post(&t, &path, batch(100)).await.expect(200);
    refused(&app, 403, "at most 100 active schedules", || {
        app.post(&t, &path, batch(1))
    })
    .await;
}

#[tokio::test]
async fn bad_task_fields_are_400() {
    let (app, t) = setup().await;
    let path = format!("/2/projects/{}/tasks", t.project);
    refused(&app, 400, "tasks must hold", || {
        app.post(&t, &path, json!({"tasks": []}))
    })
    .await;
    refused(&app, 400, "tasks[0]: code_name is required", || {
        app.post(&t, &path, json!({"tasks": [{"payload": "{}"}]}))
    })
    .await;
    refused(&app, 400, "delay must be", || {
        app.post(
            &t,
            &path,
            json!({"tasks": [{"code_name": "hello", "delay": 1e9}]}),
        )
    })
    .await;
    refused(&app, 400, "NUL", || {
        app.post(
            &t,
            &path,
            json!({"tasks": [{"code_name": "hello", "label": "a\u{0}b"}]}),
        )
    })
    .await;
    let hook = format!(
        "/2/projects/{}/tasks/webhook?code_name=hello&label=a%00b",
        t.project
    );
    refused(&app, 400, "NUL", || {
        app.call(
            Method::POST,
            &hook,
            Some(&t.token),
            Body::Raw(b"{}".to_vec()),
        )
    })
    .await;
    let task = app.queue(&t, "hello", "{}").await;
    let progress = format!("{path}/{task}/progress");
    refused(&app, 400, "percent", || {
        app.post(&t, &progress, json!({"percent": 101}))
    })
    .await;
}

#[tokio::test]
async fn unknown_and_ill_formed_ids_are_404() {
    let (app, t) = setup().await;
    let p = t.project;
    let unknown = "0123456789abcdef01234567";
    for id in [unknown, "abc", "ZZZZZZZZZZZZZZZZZZZZZZZZ"] {
        for path in [
            format!("/2/projects/{p}/tasks/{id}"),
            format!("/2/projects/{p}/tasks/{id}/log"),
            format!("/2/projects/{p}/codes/{id}"),
            format!("/2/projects/{p}/codes/{id}/revisions"),
            format!("/2/projects/{p}/schedules/{id}"),
            format!("/2/projects/{id}"),
            format!("/2/projects/{id}/codes"),
        ] {
            let resp = app.get(&t, &path).await.expect(404);
            assert!(resp.msg().contains("not found"), "{path}: {}", resp.msg());
        }
        for path in [
            format!("/2/projects/{p}/tasks/{id}/cancel"),
            format!("/2/projects/{p}/tasks/{id}/retry"),
            format!("/2/projects/{p}/schedules/{id}/cancel"),
        ] {
            refused(&app, 404, "not found", || app.post(&t, &path, json!({}))).await;
        }
    }
}
