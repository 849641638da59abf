//! Tenant isolation (brief §5): on every route, a token of project B gets 404 for anything of
//! project A and changes nothing; no token, or an unknown one, gets 401.

use reqwest::Method;
use serde_json::json;

use crate::common::{multipart, zip_of, Body, TestApp};

/// Every project-scoped route, with `{pid}`, `{code}`, `{task}` and `{sched}` to fill in.
fn project_routes() -> Vec<(Method, &'static str, Body)> {
    let upload = || {
        let data = r#"{"name": "hello", "runtime": "python", "file_name": "hello.py"}"#;
        Body::Multipart(multipart(data, Some(&zip_of(&[("hello.py", b"print(2)")]))))
    };
    let task = || Body::Json(json!({"tasks": [{"code_name": "hello", "payload": "{}"}]}));
    let schedule = || {
        Body::Json(json!({"schedules": [{"code_name": "hello", "payload": "{}", "run_every": 60}]}))
    };
    vec![
        (Method::GET, "/2/projects/{pid}", Body::None),
        (
            Method::POST,
            "/2/projects/{pid}/credentials",
            Body::Json(json!({"username": "u"})),
        ),
        (Method::GET, "/2/projects/{pid}/codes", Body::None),
        (Method::POST, "/2/projects/{pid}/codes", upload()),
        (Method::GET, "/2/projects/{pid}/codes/{code}", Body::None),
        (
            Method::GET,
            "/2/projects/{pid}/codes/{code}/revisions",
            Body::None,
        ),
        (
            Method::GET,
            "/2/projects/{pid}/codes/{code}/download",
            Body::None,
        ),
        (
            Method::GET,
            "/2/projects/{pid}/codes/{code}/stats",
            Body::None,
        ),
        (
            Method::POST,
            "/2/projects/{pid}/codes/{code}/pause_task_queue",
            Body::None,
        ),
        (
            Method::POST,
            "/2/projects/{pid}/codes/{code}/resume_task_queue",
            Body::None,
        ),
        (
            Method::POST,
            "/2/projects/{pid}/codes/{code}/cancel_all",
            Body::None,
        ),
        (Method::GET, "/2/projects/{pid}/tasks", Body::None),
        (Method::POST, "/2/projects/{pid}/tasks", task()),
        (
            Method::POST,
            "/2/projects/{pid}/tasks/webhook?code_name=hello",
            Body::Raw(b"x".to_vec()),
        ),
        (Method::GET, "/2/projects/{pid}/tasks/{task}", Body::None),
        (
            Method::GET,
            "/2/projects/{pid}/tasks/{task}/log",
            Body::None,
        ),
        (
            Method::GET,
            "/2/projects/{pid}/tasks/{task}/outlog",
            Body::None,
        ),
        (
            Method::POST,
            "/2/projects/{pid}/tasks/{task}/cancel",
            Body::None,
        ),
        (
            Method::POST,
            "/2/projects/{pid}/tasks/{task}/progress",
            Body::Json(json!({"percent": 9, "msg": "b"})),
        ),
        (
            Method::POST,
            "/2/projects/{pid}/tasks/{task}/retry",
            Body::Json(json!({"delay": 0})),
        ),
        (Method::GET, "/2/projects/{pid}/schedules", Body::None),
        (Method::POST, "/2/projects/{pid}/schedules", schedule()),
        (
            Method::GET,
            "/2/projects/{pid}/schedules/{sched}",
            Body::None,
        ),
        (
            Method::PUT,
            "/2/projects/{pid}/schedules/{sched}",
            Body::Json(json!({"label": "b"})),
        ),
        (
            Method::POST,
            "/2/projects/{pid}/schedules/{sched}/cancel",
            Body::None,
        ),
        // Deleting last, so that a leak would show in every route above.
        (Method::DELETE, "/2/projects/{pid}/codes/{code}", Body::None),
    ]
}

fn clone_body(b: &Body) -> Body {
    match b {
        Body::None => Body::None,
        Body::Json(v) => Body::Json(v.clone()),
        Body::Raw(r) => Body::Raw(r.clone()),
        Body::Multipart(m) => Body::Multipart(m.clone()),
    }
}

#[tokio::test]
async fn another_projects_token_gets_404_everywhere_and_changes_nothing() {
    let app = TestApp::start().await;
    let a = app.tenant("alpha").await;
    let b = app.tenant("beta").await;
    let code = app.hello_code(&a, "hello").await;
    let task = app.queue(&a, "hello", "{\"a\":1}").await;
    let sched = app.schedule(&a, "hello").await;
    // B has its own code of the same name, so "unknown code" cannot explain a 404.
    app.hello_code(&b, "hello").await;
    let before = app.counts().await;
    let task_before = app
        .get(&a, &format!("/2/projects/{}/tasks/{task}", a.project))
        .await
        .json();
    let sched_before = app
        .get(&a, &format!("/2/projects/{}/schedules/{sched}", a.project))
        .await
        .json();
    let code_before = app
        .get(&a, &format!("/2/projects/{}/codes/{code}", a.project))
        .await
        .json();

    for (method, template, body) in project_routes() {
        let fill = |pid: &str| {
            template
                .replace("{pid}", pid)
                .replace("{code}", &code)
                .replace("{task}", &task)
                .replace("{sched}", &sched)
        };
        // B's token on A's project, and on B's own project naming A's resources.
        let paths = [fill(&a.project.to_string()), fill(&b.project.to_string())];
        for path in paths.iter().filter(|p| {
            p.contains(&a.project.to_string())
                || p.contains(&code)
                || p.contains(&task)
                || p.contains(&sched)
        }) {
            let resp = app
                .call(method.clone(), path, Some(&b.token), clone_body(&body))
                .await;
            assert_eq!(
                resp.status,
                404,
                "{method} {path}: {}",
                String::from_utf8_lossy(&resp.body)
            );
            assert!(!resp.msg().is_empty(), "{method} {path}: no msg");
        }
        let resp = app
            .call(method.clone(), &paths[0], None, clone_body(&body))
            .await;
        assert_eq!(resp.status, 401, "{method} {} without a token", paths[0]);
        assert_eq!(resp.content_type.as_deref(), Some("application/json"));
        let resp = app
            .call(
                method.clone(),
                &paths[0],
                Some("not-a-token"),
                clone_body(&body),
            )
            .await;
        assert_eq!(resp.status, 401, "{method} {} with a bad token", paths[0]);
    }

    assert_eq!(app.counts().await, before);
    let task_after = app
        .get(&a, &format!("/2/projects/{}/tasks/{task}", a.project))
        .await
        .json();
    let sched_after = app
        .get(&a, &format!("/2/projects/{}/schedules/{sched}", a.project))
        .await
        .json();
    let code_after = app
        .get(&a, &format!("/2/projects/{}/codes/{code}", a.project))
        .await
        .json();
    assert_eq!(task_after, task_before);
    assert_eq!(sched_after, sched_before);
    assert_eq!(code_after, code_before);
}

#[tokio::test]
async fn the_query_token_is_checked_like_the_header() {
    let app = TestApp::start().await;
    let a = app.tenant("alpha").await;
    let b = app.tenant("beta").await;
    app.hello_code(&a, "hello").await;
    let path = |token: &str| {
        format!(
            "/2/projects/{}/tasks/webhook?code_name=hello&oauth={token}",
            a.project
        )
    };
    let before = app.counts().await;
    let resp = app
        .call(
            Method::POST,
            &path(&b.token),
            None,
            Body::Raw(b"x".to_vec()),
        )
        .await;
    assert_eq!(resp.status, 404);
    let resp = app
        .call(Method::POST, &path("nope"), None, Body::Raw(b"x".to_vec()))
        .await;
    assert_eq!(resp.status, 401);
    assert_eq!(app.counts().await, before);
    let resp = app
        .call(
            Method::POST,
            &path(&a.token),
            None,
            Body::Raw(b"x".to_vec()),
        )
        .await;
    assert_eq!(resp.status, 200);
}

#[tokio::test]
async fn routes_outside_projects_need_a_token_and_show_only_the_callers_projects() {
    let app = TestApp::start().await;
    let a = app.tenant("alpha").await;
    let b = app.tenant("beta").await;
    for (method, path) in [
        (Method::GET, "/2/projects"),
        (Method::POST, "/2/projects"),
        (Method::GET, "/2/stacks"),
    ] {
        let resp = app
            .call(method.clone(), path, None, Body::Json(json!({"name": "x"})))
            .await;
        assert_eq!(resp.status, 401, "{method} {path}");
    }
    let listed = app.get(&b, "/2/projects").await.expect(200).json();
    let ids: Vec<&str> = listed["projects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [b.project.to_string()]);
    assert!(!ids.contains(&a.project.to_string().as_str()));
}
