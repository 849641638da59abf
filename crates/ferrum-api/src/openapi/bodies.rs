//! JSON schemas of the request bodies, with the bounds of `ferrum_model::limits` as
//! `maxLength`/`maxProperties`/`maximum`. Built from the same constants validation applies, so
//! the document and the answers agree (`tests/tenant/registry.rs` checks every limit appears).

use ferrum_model::limits::{self, Limit, Unit};
use ferrum_model::webhook::MAX_SYNC_TIMEOUT_SECS;
use serde_json::{json, Map, Value};

use super::Body;

/// A string within `limit`, with its charset as a `pattern` where it has one.
pub fn string(limit: &Limit) -> Value {
    let mut schema = json!({"type": "string", "maxLength": limit.max});
    if limit.unit == Unit::Bytes {
        schema["description"] = json!(format!("at most {} bytes of UTF-8", limit.max));
    }
    schema["pattern"] = json!(limit.charset.pattern(limit.max));
    schema
}

/// [`string`] that must hold at least one character.
fn nonempty(limit: &Limit) -> Value {
    let mut schema = string(limit);
    schema["minLength"] = json!(1);
    schema
}

/// [`nonempty`] that may also be `null` (the field's default then applies).
fn nullable(limit: &Limit) -> Value {
    let mut schema = nonempty(limit);
    schema["nullable"] = json!(true);
    schema
}

fn seconds(max: Option<i32>) -> Value {
    let mut schema = json!({"type": "number", "minimum": 0});
    if let Some(max) = max {
        schema["maximum"] = json!(max);
    }
    schema
}

fn object(properties: Value, required: &[&str]) -> Value {
    let mut schema = json!({"type": "object", "properties": properties});
    if !required.is_empty() {
        schema["required"] = json!(required);
    }
    schema
}

/// `schema` that refuses unknown fields (400), as Ferrum's own admin routes do.
fn closed(mut schema: Value) -> Value {
    schema["additionalProperties"] = json!(false);
    schema
}

fn json_body(schema: Value) -> Body {
    Body {
        content_type: "application/json",
        schema,
    }
}

/// The options every task takes (T2 elements, schedules, webhooks).
fn task_options() -> Map<String, Value> {
    let props = json!({
        "priority": {"type": "number", "description": "0, 1 or 2; others mean the code's default"},
        "timeout": seconds(None),
        "delay": seconds(Some(limits::MAX_DELAY_SECS)),
        "cluster": string(&limits::CLUSTER),
        "label": string(&limits::LABEL),
    });
    props.as_object().cloned().unwrap_or_default()
}

/// A payload: a string sent as is, or any JSON value sent as its text.
fn payload() -> Value {
    string(&limits::PAYLOAD)
}

/// `POST …/batches`.
pub fn batch() -> Body {
    use ferrum_model::batch::MAX_BATCH_ITEMS;
    let mut props = task_options();
    props.remove("delay");
    let count = |max: usize| json!({"type": "number", "minimum": 0, "maximum": max});
    for (name, schema) in [
        ("code_name", string(&limits::CODE_NAME)),
        (
            "payloads",
            json!({"type": "array", "minItems": 1, "maxItems": MAX_BATCH_ITEMS,
                   "items": {"description": format!(
                       "a string as it is, any other JSON value as its text; at most {} bytes",
                       limits::MAX_PAYLOAD_BYTES)}}),
        ),
        ("max_concurrency", count(100_000)),
        ("tolerated_failure_count", count(MAX_BATCH_ITEMS)),
        ("tolerated_failure_percent", count(100)),
        ("retries", count(limits::MAX_RETRIES as usize)),
        ("retries_delay", seconds(Some(limits::MAX_DELAY_SECS))),
        (
            "reduce",
            object(
                json!({"code_name": string(&limits::CODE_NAME), "payload": payload(),
                       "timeout": seconds(None),
                       "priority": {"type": "number"}}),
                &["code_name"],
            ),
        ),
    ] {
        props.insert(name.into(), schema);
    }
    json_body(object(Value::Object(props), &["code_name", "payloads"]))
}

/// `POST …/tasks`.
pub fn tasks() -> Body {
    let mut task = task_options();
    task.insert("code_name".into(), string(&limits::CODE_NAME));
    task.insert("payload".into(), payload());
    let element = object(Value::Object(task), &["code_name"]);
    json_body(object(
        json!({"tasks": {"type": "array", "minItems": 1, "items": element}}),
        &["tasks"],
    ))
}

fn schedule(required: &[&str]) -> Value {
    let mut props = task_options();
    for (name, schema) in [
        ("code_name", string(&limits::CODE_NAME)),
        ("payload", payload()),
        ("start_at", json!({"type": "string", "format": "date-time"})),
        ("end_at", json!({"type": "string", "format": "date-time"})),
        ("run_every", seconds(None)),
        ("run_times", json!({"type": "number", "minimum": 0})),
        ("task_delay", seconds(Some(limits::MAX_DELAY_SECS))),
        ("cron", string(&limits::CRON)),
        ("timezone", string(&limits::TIMEZONE)),
        (
            "misfire",
            json!({"type": "string", "enum": ["run_once", "skip", "catch_up"]}),
        ),
    ] {
        props.insert(name.into(), schema);
    }
    object(Value::Object(props), required)
}

/// `POST …/schedules`.
pub fn schedules() -> Body {
    json_body(object(
        json!({"schedules": {"type": "array", "minItems": 1, "items": schedule(&["code_name"])}}),
        &["schedules"],
    ))
}

/// `PUT …/schedules/{id}`: the fields to change.
pub fn schedule_update() -> Body {
    json_body(schedule(&[]))
}

/// `POST …/tasks/{id}/progress`.
pub fn progress() -> Body {
    json_body(object(
        json!({
            "percent": {"type": "number", "minimum": 0, "maximum": 100},
            "msg": string(&limits::PROGRESS_MSG),
        }),
        &[],
    ))
}

/// `POST …/tasks/{id}/retry`.
pub fn retry() -> Body {
    json_body(object(
        json!({"delay": seconds(Some(limits::MAX_DELAY_SECS))}),
        &[],
    ))
}

/// `POST …/codes/{id}/webhooks`.
pub fn webhook() -> Body {
    let mut props = task_options();
    props.insert(
        "signature".into(),
        json!({"type": "string", "enum": ["slack", "github", "hmac"], "nullable": true}),
    );
    props.insert("secret".into(), string(&limits::WEBHOOK_SECRET));
    props.insert("sync_timeout".into(), seconds(Some(MAX_SYNC_TIMEOUT_SECS)));
    json_body(object(Value::Object(props), &[]))
}

/// A raw body that becomes a task's payload byte for byte.
pub fn raw_payload() -> Body {
    Body {
        content_type: "*/*",
        schema: json!({
            "type": "string",
            "format": "binary",
            "maxLength": limits::PAYLOAD.max,
        }),
    }
}

/// `POST …/codes`: multipart with a `data` part (JSON text) and an optional `file` (a zip).
pub fn upload() -> Body {
    let data = object(
        json!({
            "name": string(&limits::CODE_NAME),
            "runtime": string(&limits::RUNTIME),
            "stack": string(&limits::STACK),
            "file_name": string(&limits::FILE_NAME),
            "image": string(&limits::IMAGE),
            "command": string(&limits::COMMAND),
            "config": string(&limits::CONFIG),
            "env_vars": {
                "type": "object",
                "maxProperties": limits::ENV_VARS.max,
                "propertyNames": string(&limits::ENV_NAME),
                "additionalProperties": string(&limits::ENV_VALUE),
                "description": format!(
                    "all names and values together at most {} bytes",
                    limits::ENV_TOTAL.max
                ),
            },
            "max_concurrency": {"type": "number"},
            "retries": {"type": "number", "minimum": 0, "maximum": limits::MAX_RETRIES},
            "retries_delay": {"type": "number", "minimum": 0},
            "default_priority": {"type": "number"},
            "memory_mb": {"type": "number", "minimum": limits::MIN_MEMORY_MB},
            "cpus": {"type": "number", "minimum": limits::MIN_CPUS},
            "pids": {"type": "number", "minimum": 1},
            "disk_mb": {"type": "number", "minimum": limits::MIN_DISK_MB},
        }),
        &["name"],
    );
    Body {
        content_type: "multipart/form-data",
        schema: object(
            json!({
                "data": {
                    "type": "string",
                    "description": "JSON text of this object",
                    "contentMediaType": "application/json",
                    "x-json": data,
                },
                "file": {"type": "string", "format": "binary"},
            }),
            &["data"],
        ),
    }
}

/// `POST /2/projects`.
pub fn project() -> Body {
    json_body(closed(object(
        json!({"name": nonempty(&limits::PROJECT_NAME)}),
        &["name"],
    )))
}

/// `POST /2/users`.
pub fn user() -> Body {
    json_body(closed(object(
        json!({"email": nonempty(&limits::EMAIL)}),
        &["email"],
    )))
}

/// `POST /2/runner_tokens`.
pub fn runner_token() -> Body {
    json_body(closed(object(
        json!({"cluster": nullable(&limits::CLUSTER)}),
        &[],
    )))
}

/// A body the route reads but whose fields it ignores or does not describe.
pub fn any_object() -> Body {
    json_body(json!({"type": "object"}))
}

/// One query parameter.
pub fn query(name: &str, schema: Value, required: bool) -> Value {
    json!({"name": name, "in": "query", "required": required, "schema": schema})
}

/// `page` and `per_page` of every list.
pub fn paging() -> Vec<Value> {
    vec![
        query("page", json!({"type": "integer", "minimum": 0}), false),
        query(
            "per_page",
            json!({"type": "integer", "minimum": 1, "maximum": limits::MAX_PER_PAGE}),
            false,
        ),
    ]
}

/// The filters of `GET …/tasks` (status flags such as `queued=1` are further parameters).
pub fn task_filters() -> Vec<Value> {
    let mut params = paging();
    params.extend([
        query("code_name", string(&limits::CODE_NAME), false),
        query(
            "from_time",
            json!({"type": "integer", "description": "Unix seconds"}),
            false,
        ),
        query(
            "to_time",
            json!({"type": "integer", "description": "Unix seconds"}),
            false,
        ),
        query("cluster", string(&limits::CLUSTER), false),
        query("label", string(&limits::LABEL), false),
        query(
            "schedule_id",
            json!({"type": "string", "pattern": "^[0-9a-f]{24}$"}),
            false,
        ),
        query(
            "parent_id",
            json!({"type": "string", "pattern": "^[0-9a-f]{24}$"}),
            false,
        ),
        query(
            "batch_id",
            json!({"type": "string", "pattern": "^[0-9a-f]{24}$"}),
            false,
        ),
        query(
            "cursor",
            json!({"type": "string", "pattern": "^[0-9a-f]{24}$",
                   "description": "The next_cursor of the previous page"}),
            false,
        ),
    ]);
    for status in ferrum_model::TaskStatus::ALL {
        params.push(query(
            status.as_str(),
            json!({"type": "string", "enum": ["1", "true", "0"]}),
            false,
        ));
    }
    params
}

/// The query of `POST …/tasks/webhook`: the code, and the task's options as strings.
pub fn webhook_query() -> Vec<Value> {
    let mut params = vec![query("code_name", string(&limits::CODE_NAME), true)];
    for (name, schema) in task_options() {
        params.push(query(&name, schema, false));
    }
    params
}

/// `?start_date=&end_date=` of a code's stats, in Unix seconds.
pub fn stats_query() -> Vec<Value> {
    ["start_date", "end_date"]
        .into_iter()
        .map(|n| {
            query(
                n,
                json!({"type": "integer", "description": "Unix seconds"}),
                false,
            )
        })
        .collect()
}

/// `?revision=N` of a download.
pub fn download_query() -> Vec<Value> {
    vec![query(
        "revision",
        json!({"type": "integer", "minimum": 1}),
        false,
    )]
}

/// `PUT /2/projects/{project_id}/quotas`.
pub fn quotas() -> Body {
    let bound = |what: &str| json!({"type": ["integer", "null"], "minimum": 1, "maximum": i32::MAX, "description": what});
    let schema = object(
        json!({
            "max_concurrency": bound("most tasks running at once"),
            "max_queued": bound("most tasks waiting in the queue"),
            "tasks_per_minute": bound("most tasks queued per minute (API and webhooks)"),
            "retention_days": bound("days finished tasks are kept, then deleted with their logs and results; null: the operator's default"),
        }),
        &[],
    );
    // Unknown fields are refused (400), not ignored: a typo must not look applied.
    json_body(closed(schema))
}

/// The runner protocol's bodies (`ferrum_model::protocol`).
pub mod runner {
    use ferrum_model::limits;
    use serde_json::json;

    use super::{json_body, object, string, Body};

    /// `POST /runner/v1/register`.
    pub fn register() -> Body {
        json_body(object(
            json!({
                "hostname": string(&limits::HOSTNAME),
                "concurrency": {
                    "type": "integer", "minimum": 1, "maximum": limits::MAX_RUNNER_CONCURRENCY,
                },
                "version": string(&limits::RUNNER_VERSION),
            }),
            &["hostname", "concurrency", "version"],
        ))
    }

    /// `POST /runner/v1/lease`.
    pub fn lease() -> Body {
        json_body(object(
            json!({
                "max_tasks": {"type": "integer", "minimum": 0},
                "wait_ms": {"type": "integer", "minimum": 0},
            }),
            &["max_tasks", "wait_ms"],
        ))
    }

    /// `POST /runner/v1/heartbeat`: the runner's own.
    pub fn runner_heartbeat() -> Body {
        json_body(object(
            json!({
                "running": {
                    "type": "integer", "minimum": 0, "maximum": limits::MAX_RUNNER_CONCURRENCY,
                    "description": "tasks in progress",
                },
            }),
            &["running"],
        ))
    }

    /// `POST …/started` and `…/heartbeat`: the lease's attempt.
    pub fn attempt() -> Body {
        json_body(object(
            json!({"attempt": {"type": "integer"}}),
            &["attempt"],
        ))
    }

    /// `POST …/complete`.
    pub fn complete() -> Body {
        json_body(object(
            json!({
                "attempt": {"type": "integer"},
                "status": {
                    "type": "string",
                    "enum": ["complete", "error", "timeout", "cancelled", "killed"],
                },
                "exit_code": {"type": "integer", "nullable": true},
                "msg": string(&limits::COMPLETE_MSG),
            }),
            &["attempt", "status"],
        ))
    }
}
