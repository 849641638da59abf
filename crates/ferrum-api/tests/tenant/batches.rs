//! Batch routes: the shapes of issue 17, bad input refused with a `msg` naming the field and
//! nothing written.

use serde_json::json;

use crate::common::TestApp;

#[tokio::test]
async fn a_batch_is_queued_read_listed_and_cancelled() {
    let app = TestApp::start().await;
    let a = app.tenant("alpha").await;
    app.hello_code(&a, "hello").await;
    app.hello_code(&a, "sum").await;
    let base = format!("/2/projects/{}/batches", a.project);
    let created = app
        .post(
            &a,
            &base,
            json!({"code_name": "hello", "payloads": ["a", {"n": 2}, 3],
                   "reduce": {"code_name": "sum", "payload": {"k": 1}},
                   "tolerated_failure_percent": 50, "retries": 2, "label": "l"}),
        )
        .await
        .expect(200)
        .json();
    assert_eq!(
        (created["total"].as_i64(), created["status"].as_str()),
        (Some(3), Some("running"))
    );
    let id = created["id"].as_str().unwrap();

    let got = app
        .get(&a, &format!("{base}/{id}"))
        .await
        .expect(200)
        .json();
    assert_eq!(got["code_name"], "hello");
    assert_eq!(got["status"], "running");
    assert_eq!(got["counts"], json!({"queued": 3}));
    assert!(got["created_at"].is_string() && got["updated_at"].is_string());
    assert!(got.get("reduce_task_id").is_none());

    let results = app
        .get(&a, &format!("{base}/{id}/results?after=0&per_page=5"))
        .await
        .expect(200)
        .json();
    let items = results["results"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(
        (items[0]["index"].as_i64(), items[0]["status"].as_str()),
        (Some(1), Some("queued"))
    );
    // Each item is an ordinary task: its payload is the item, JSON serialised.
    let task_id = items[0]["task_id"].as_str().unwrap();
    let task = app
        .get(&a, &format!("/2/projects/{}/tasks/{task_id}", a.project))
        .await
        .expect(200)
        .json();
    assert_eq!(task["payload"], "{\"n\":2}");
    assert_eq!(
        (task["batch_id"].as_str(), task["batch_index"].as_i64()),
        (Some(id), Some(1))
    );
    assert_eq!(task["label"], "l");

    let missing = app
        .get(&a, &format!("{base}/{id}/result"))
        .await
        .expect(404);
    assert!(!missing.msg().is_empty());
    let listed = app.get(&a, &base).await.expect(200).json();
    assert_eq!(listed["batches"][0]["id"], id);

    let cancelled = app
        .post(&a, &format!("{base}/{id}/cancel"), json!({}))
        .await
        .expect(200);
    assert_eq!(cancelled.msg(), "Cancelled");
    let got = app
        .get(&a, &format!("{base}/{id}"))
        .await
        .expect(200)
        .json();
    assert_eq!(
        (got["status"].as_str(), &got["counts"]),
        (Some("cancelled"), &json!({"cancelled": 3}))
    );
}

#[tokio::test]
async fn bad_batches_are_refused_naming_the_field_and_write_nothing() {
    let app = TestApp::start().await;
    let a = app.tenant("alpha").await;
    app.hello_code(&a, "hello").await;
    let base = format!("/2/projects/{}/batches", a.project);
    let before = app.counts().await;
    let big = "x".repeat(64 * 1024 + 1);
    for (body, status, field) in [
        (json!({"payloads": [1]}), 400, "code_name"),
        (json!({"code_name": "hello"}), 400, "payloads"),
        (
            json!({"code_name": "hello", "payloads": []}),
            400,
            "payloads",
        ),
        (
            json!({"code_name": "hello", "payloads": [1, big]}),
            400,
            "payloads[1]",
        ),
        (
            json!({"code_name": "hello", "payloads": [1], "max_concurrency": 0}),
            400,
            "max_concurrency",
        ),
        (
            json!({"code_name": "hello", "payloads": [1], "tolerated_failure_percent": 101}),
            400,
            "tolerated_failure_percent",
        ),
        (
            json!({"code_name": "hello", "payloads": [1], "retries": 99}),
            400,
            "retries",
        ),
        (
            json!({"code_name": "hello", "payloads": [1], "reduce": {}}),
            400,
            "reduce",
        ),
        (
            json!({"code_name": "hello", "payloads": [1], "label": "a".repeat(300)}),
            400,
            "label",
        ),
        (json!({"code_name": "nope", "payloads": [1]}), 404, "nope"),
        (
            json!({"code_name": "hello", "payloads": [1], "reduce": {"code_name": "nope"}}),
            404,
            "nope",
        ),
    ] {
        let resp = app.post(&a, &base, body.clone()).await;
        assert_eq!(resp.status, status, "{body}: {}", resp.msg());
        assert!(resp.msg().contains(field), "{body}: {}", resp.msg());
    }
    let too_many: Vec<i32> = (0..100_001).collect();
    let resp = app
        .post(
            &a,
            &base,
            json!({"code_name": "hello", "payloads": too_many}),
        )
        .await;
    assert_eq!(resp.status, 400, "{}", resp.msg());
    assert_eq!(app.counts().await, before);
    let listed = app.get(&a, &base).await.expect(200).json();
    assert_eq!(listed["batches"], json!([]));
}
