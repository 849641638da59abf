//! Per-code resource settings (`memory_mb`, `cpus`, `pids`): Ferrum's additions to the upload's
//! `data` JSON, refused when nonsensical, kept by options-only uploads, echoed only when set.

use serde_json::{json, Value};

use crate::bad_input::refused;
use crate::common::{zip_of, Tenant, TestApp};

fn hello(options: Value) -> Value {
    let mut data = json!({"name": "hello", "runtime": "python", "file_name": "hello.py"});
    data.as_object_mut()
        .unwrap()
        .extend(options.as_object().unwrap().clone());
    data
}

async fn code(app: &TestApp, t: &Tenant, id: &str) -> Value {
    let path = format!("/2/projects/{}/codes/{id}", t.project);
    app.get(t, &path).await.expect(200).json()
}

async fn revisions(app: &TestApp, t: &Tenant, id: &str) -> Vec<Value> {
    let path = format!("/2/projects/{}/codes/{id}/revisions", t.project);
    let revs = app.get(t, &path).await.expect(200).json();
    revs["revisions"].as_array().unwrap().clone()
}

const UNSET: [Value; 4] = [Value::Null, Value::Null, Value::Null, Value::Null];

/// The four settings of a code or revision object, `null` where absent.
fn limits(object: &Value) -> [Value; 4] {
    ["memory_mb", "cpus", "pids", "disk_mb"].map(|k| object.get(k).cloned().unwrap_or(Value::Null))
}

#[tokio::test]
async fn bad_limits_are_400_and_write_nothing() {
    let app = TestApp::start().await;
    let t = app.tenant("alpha").await;
    let zip = zip_of(&[("hello.py", b"print('hello')\n")]);
    let cases = [
        (json!({"memory_mb": 0}), "memory_mb must be"),
        (json!({"memory_mb": -5}), "memory_mb must be"),
        (json!({"memory_mb": 5}), "at least 6"),
        (json!({"cpus": 0}), "cpus must be"),
        (json!({"cpus": -0.5}), "cpus must be"),
        (json!({"cpus": "x"}), "cpus: invalid type"),
        (json!({"pids": 0}), "pids must be"),
        (json!({"pids": [64]}), "pids: invalid type"),
        (
            json!({"disk_mb": 15}),
            "disk_mb must be a whole number of MiB, at least 16",
        ),
        (json!({"disk_mb": "big"}), "disk_mb: invalid type"),
    ];
    for (options, needle) in cases {
        let data = hello(options);
        refused(&app, 400, needle, || app.upload(&t, data, Some(&zip))).await;
    }
    // An options-only update of an existing code is held to the same rules.
    app.hello_code(&t, "hello").await;
    let data = json!({"name": "hello", "memory_mb": 0});
    refused(&app, 400, "memory_mb", || app.upload(&t, data, None)).await;
}

#[tokio::test]
async fn limits_round_trip_and_are_kept_by_options_only_uploads() {
    let app = TestApp::start().await;
    let t = app.tenant("alpha").await;
    let zip = zip_of(&[("hello.py", b"print('hello')\n")]);
    let plain = app.upload(&t, hello(json!({})), Some(&zip)).await;
    let id = plain.expect(200).json()["id"].as_str().unwrap().to_owned();
    assert_eq!(limits(&code(&app, &t, &id).await), UNSET);

    let set = hello(json!({"memory_mb": 128, "cpus": 0.5, "pids": 64, "disk_mb": 100}));
    app.upload(&t, set, Some(&zip)).await.expect(200);
    let all = [json!(128), json!(0.5), json!(64), json!(100)];
    assert_eq!(limits(&code(&app, &t, &id).await), all);

    // Options only, one setting changed: the others keep their values.
    let one = json!({"name": "hello", "pids": 32});
    app.upload(&t, one, None).await.expect(200);
    let changed = [json!(128), json!(0.5), json!(32), json!(100)];
    assert_eq!(limits(&code(&app, &t, &id).await), changed);
    // A client that knows nothing of them (new zip, no settings) keeps them too.
    app.upload(&t, hello(json!({})), Some(&zip))
        .await
        .expect(200);
    assert_eq!(limits(&code(&app, &t, &id).await), changed);

    let revs: Vec<[Value; 4]> = revisions(&app, &t, &id).await.iter().map(limits).collect();
    assert_eq!(revs, [changed.clone(), changed, all, UNSET]);
}
