//! Codes: the list, with a form to upload a new code; each code's revisions, a form to upload
//! its next revision, its webhook URLs (create, revoke) and its queue (pause, resume).
//!
//! Both upload forms go through the API's upload ([`put_revision`]): the same zip checks
//! (with the "did you mean" hint for a `file_name` not in the zip), bounds, revision
//! numbering and zip GC, under the same body limit (`ApiConfig::max_upload_bytes`).

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use ferrum_model::validation::{new_task, TaskOptions};
use ferrum_model::webhook::NewWebhook;
use ferrum_model::{Code, CodeSpec, Id, Page};
use maud::{html, Markup};
use serde::Deserialize;

use super::extract::{Button, CheckedMultipart, Found, ProjectPage};
use super::layout::{message_page, page, when};
use super::session::internal;
use crate::routes::{Auth, Route};
use crate::tenant::upload::{put_revision, UploadData};
use crate::tenant::webhooks::{base_url, PUBLIC};
use crate::{ApiConfig, ApiError, AppState};

pub fn routes(config: &ApiConfig) -> Vec<Route> {
    vec![
        Route::get("/projects/{project_id}/codes", "Dashboard: codes", list).auth(Auth::Session),
        Route::post(
            "/projects/{project_id}/codes",
            "Dashboard: upload a code (multipart, as the API's upload)",
            create,
        )
        .with_body_limit(config.max_upload_bytes)
        .auth(Auth::Session),
        Route::get(
            "/projects/{project_id}/codes/{code_id}",
            "Dashboard: a code",
            detail,
        )
        .auth(Auth::Session),
        Route::post(
            "/projects/{project_id}/codes/{code_id}/upload",
            "Dashboard: upload a code's next revision (multipart, as the API's upload)",
            upload,
        )
        .with_body_limit(config.max_upload_bytes)
        .auth(Auth::Session),
        Route::post(
            "/projects/{project_id}/codes/{code_id}/pause",
            "Dashboard: pause a code's queue",
            pause,
        )
        .auth(Auth::Session),
        Route::post(
            "/projects/{project_id}/codes/{code_id}/resume",
            "Dashboard: resume a code's queue",
            resume,
        )
        .auth(Auth::Session),
        Route::post(
            "/projects/{project_id}/codes/{code_id}/webhooks",
            "Dashboard: create a webhook URL",
            create_webhook,
        )
        .auth(Auth::Session),
        Route::post(
            "/projects/{project_id}/codes/{code_id}/webhooks/{webhook_id}/revoke",
            "Dashboard: revoke a webhook URL",
            revoke,
        )
        .auth(Auth::Session),
    ]
}

async fn list(ctx: ProjectPage, State(state): State<AppState>) -> Response {
    list_page(&ctx, &state, None, None).await
}

/// The codes, and the new-code form (holding what was `typed`, with `refused`'s message,
/// after a refused upload).
async fn list_page(
    ctx: &ProjectPage,
    state: &AppState,
    typed: Option<&Typed>,
    refused: Option<&ApiError>,
) -> Response {
    let codes = match state
        .store
        .codes(ctx.project, Page::new(Some(0), Some(100)))
        .await
    {
        Ok(c) => c,
        Err(e) => return internal(e),
    };
    let body = html! {
        table {
            thead { tr { th { "Code" } th { "Revision" } th { "Runs" } th { "Queue" } th { "Updated" } } }
            tbody {
                @for c in &codes {
                    tr {
                        td { a href=(ctx.path(&format!("/codes/{}", c.id))) { (c.name) } }
                        td { (c.latest.rev) }
                        td { (runs(&c.latest.spec)) }
                        td { @if c.paused { "paused" } @else { "running" } }
                        td { (when(Some(c.updated_at))) }
                    }
                }
            }
        }
        h2 { "Upload a new code" }
        p { "Or with the CLI: " code { "ferrum upload NAME DIR" } "." }
        (upload_form(ctx, state, &ctx.path("/codes"), None, typed, refused))
    };
    with_status(refused, page(ctx, "Codes", body))
}

/// A refused form's page answers the refusal's status.
fn with_status(refused: Option<&ApiError>, page: Response) -> Response {
    match refused {
        Some(e) => (e.status, page).into_response(),
        None => page,
    }
}

fn runs(spec: &CodeSpec) -> String {
    match (&spec.image, &spec.runtime, &spec.file_name) {
        (Some(image), _, _) => format!("image {image}"),
        (None, Some(rt), Some(f)) => format!("{rt} {f}"),
        (None, Some(rt), None) => rt.clone(),
        _ => "–".into(),
    }
}

/// What an upload form held when it was refused, to show it again (a file input cannot be
/// refilled).
struct Typed(Vec<(String, String)>);

impl Typed {
    fn of(form: &CheckedMultipart) -> Typed {
        let text = form
            .0
            .iter()
            .filter(|(name, _)| name != "file" && name != "csrf")
            .map(|(name, v)| (name.clone(), String::from_utf8_lossy(v).into_owned()));
        Typed(text.collect())
    }

    fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map_or("", |(_, v)| v.as_str())
    }
}

/// The upload settings the forms offer, as `(field, label, kind)`: the options of the API's
/// `data` part (`UploadData`) that a person sets by hand.
const SETTINGS: [(&str, &str, Kind); 11] = [
    ("max_concurrency", "Most tasks at once", Kind::Number),
    ("retries", "Retries", Kind::Number),
    ("retries_delay", "Seconds between retries", Kind::Number),
    ("default_priority", "Default priority (0-2)", Kind::Number),
    ("memory_mb", "Memory (MiB)", Kind::Number),
    ("cpus", "CPUs", Kind::Number),
    ("pids", "Most processes", Kind::Number),
    ("disk_mb", "Disk (MiB)", Kind::Number),
    ("command", "Command (with an image)", Kind::Text),
    ("env_vars", "Environment, NAME=value a line", Kind::Lines),
    ("config", "Config file", Kind::Lines),
];

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Text,
    Number,
    Lines,
}

/// The multipart upload form posting to `action`, holding what was `typed` when it was
/// refused: for a new code, or for the code `code`, its name fixed, its package (file, runtime,
/// stack, image) filled in (a new zip replaces them, as in the API) and its other settings as
/// placeholders (a field left empty keeps them).
fn upload_form(
    ctx: &ProjectPage,
    state: &AppState,
    action: &str,
    code: Option<&Code>,
    typed: Option<&Typed>,
    refused: Option<&ApiError>,
) -> Markup {
    let spec = code.map(|c| c.latest.spec.clone()).unwrap_or_default();
    let current = |field: &str| -> String {
        match field {
            "file_name" => spec.file_name.clone(),
            "runtime" => spec.runtime.clone(),
            "stack" => spec.stack.clone(),
            "image" => spec.image.clone(),
            "command" => spec.command.clone(),
            "max_concurrency" => spec.max_concurrency.map(|v| v.to_string()),
            "retries" => Some(spec.retries.to_string()),
            "retries_delay" => Some(spec.retries_delay.to_string()),
            "default_priority" => Some(spec.default_priority.to_string()),
            "memory_mb" => spec.memory_mb.map(|v| v.to_string()),
            "cpus" => spec.cpus.map(|v| v.to_string()),
            "pids" => spec.pids.map(|v| v.to_string()),
            "disk_mb" => spec.disk_mb.map(|v| v.to_string()),
            "env_vars" => Some(
                spec.env_vars
                    .keys()
                    .map(|k| format!("{k}=…"))
                    .collect::<Vec<_>>()
                    .join("\n"),
            ),
            _ => None,
        }
        .filter(|_| code.is_some())
        .unwrap_or_default()
    };
    let id = |field: &str| format!("upload-{field}");
    let value = |field: &str| typed.map_or("", |t| t.get(field)).to_owned();
    let package = |field: &'static str, label: &'static str| {
        let value = typed.map_or_else(|| current(field), |t| t.get(field).to_owned());
        html! {
            label for=(id(field)) { (label) }
            input id=(id(field)) type="text" name=(field) value=(value) list=[(matches!(field, "runtime" | "stack")).then_some("stacks")];
        }
    };
    html! {
        form id="upload-form" class="grid" method="post" action=(action) enctype="multipart/form-data" {
            (ctx.csrf_field())
            @if let Some(e) = refused { p role="alert" class="refused" { (e.msg) } }
            @if let Some(c) = code {
                p { "Name: " strong { (c.name) } ". A new zip or image comes with the file, runtime and stack given here; the settings left empty keep those of revision " (c.latest.rev) " (shown greyed)." }
            } @else {
                label for="upload-name" { "Name" }
                input id="upload-name" type="text" name="name" required value=(value("name"));
            }
            label for="upload-file" { "Zip" }
            input id="upload-file" type="file" name="file" accept=".zip,application/zip";
            (package("file_name", "File to run"))
            (package("runtime", "Runtime"))
            (package("stack", "Stack"))
            (package("image", "Or a Docker image"))
            datalist id="stacks" { @for s in state.config.stacks.names() { option value=(s) {} } }
            details {
                summary { "More settings" }
                div class="grid" {
                    @for (field, label, kind) in SETTINGS {
                        label for=(id(field)) { (label) }
                        @match kind {
                            Kind::Lines => {
                                textarea id=(id(field)) name=(field) rows="3" placeholder=(current(field)) { (value(field)) }
                            }
                            Kind::Number => {
                                input id=(id(field)) type="number" step="any" name=(field) value=(value(field)) placeholder=(current(field));
                            }
                            Kind::Text => {
                                input id=(id(field)) type="text" name=(field) value=(value(field)) placeholder=(current(field));
                            }
                        }
                    }
                }
            }
            button type="submit" { @if code.is_some() { "Upload revision" } @else { "Upload code" } }
        }
    }
}

/// The API's `data` part for the form's fields: empty ones are left out, so they keep the
/// previous revision's values, as in an API upload that does not name them.
fn upload_data(name: String, form: &CheckedMultipart) -> Result<UploadData, ApiError> {
    let text = |field: &str| Some(form.text(field)).filter(|v| !v.is_empty());
    let number = |field: &str| {
        text(field)
            .map(|v| v.parse::<f64>())
            .transpose()
            .map_err(|_| ApiError::bad_request(format!("{field} must be a number")))
    };
    let env_vars = text("env_vars")
        .map(|lines| {
            lines
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| match l.split_once('=') {
                    Some((k, v)) => Ok((k.trim().to_owned(), v.to_owned())),
                    None => Err(ApiError::bad_request(format!(
                        "env_vars: {l:?} is not NAME=value"
                    ))),
                })
                .collect::<Result<BTreeMap<_, _>, _>>()
        })
        .transpose()?;
    Ok(UploadData {
        name: Some(name),
        runtime: text("runtime"),
        stack: text("stack"),
        file_name: text("file_name"),
        image: text("image"),
        command: text("command"),
        config: text("config"),
        env_vars,
        max_concurrency: number("max_concurrency")?,
        retries: number("retries")?,
        retries_delay: number("retries_delay")?,
        default_priority: number("default_priority")?,
        memory_mb: number("memory_mb")?,
        cpus: number("cpus")?,
        pids: number("pids")?,
        disk_mb: number("disk_mb")?,
    })
}

/// Uploads the form's zip and settings as the next revision of `name`; the id of the code.
async fn put(
    state: &AppState,
    project: Id,
    name: String,
    form: &CheckedMultipart,
) -> Result<Id, ApiError> {
    let data = upload_data(name, form)?;
    Ok(put_revision(state, project, data, form.bytes("file"))
        .await?
        .id)
}

async fn create(
    ctx: ProjectPage,
    State(state): State<AppState>,
    form: CheckedMultipart,
) -> Response {
    match put(&state, ctx.project, form.text("name"), &form).await {
        Ok(id) => Redirect::to(&ctx.path(&format!("/codes/{id}"))).into_response(),
        Err(e) => list_page(&ctx, &state, Some(&Typed::of(&form)), Some(&e)).await,
    }
}

async fn upload(
    Found(ctx, code): Found<Code>,
    State(state): State<AppState>,
    form: CheckedMultipart,
) -> Response {
    match put(&state, ctx.project, code.name.clone(), &form).await {
        Ok(id) => Redirect::to(&ctx.path(&format!("/codes/{id}"))).into_response(),
        Err(e) => code_page(&ctx, &state, &code, Some(&Typed::of(&form)), Some(&e)).await,
    }
}

async fn detail(Found(ctx, code): Found<Code>, State(state): State<AppState>) -> Response {
    code_page(&ctx, &state, &code, None, None).await
}

/// A code's page, with its upload form (holding what was `typed`, with `refused`'s message,
/// after a refused upload).
async fn code_page(
    ctx: &ProjectPage,
    state: &AppState,
    code: &Code,
    typed: Option<&Typed>,
    refused: Option<&ApiError>,
) -> Response {
    let (revisions, hooks) = match tokio::try_join!(
        state
            .store
            .revisions(code.project_id, code.id, Page::new(Some(0), Some(50))),
        state.store.webhooks(code.project_id, code.id)
    ) {
        Ok(x) => x,
        Err(e) => return internal(e),
    };
    let button = |action: &str, label: &str| {
        html! {
            form.inline method="post" action=(ctx.path(&format!("/codes/{}/{action}", code.id))) {
                (ctx.csrf_field())
                button type="submit" { (label) }
            }
        }
    };
    let upload_to = ctx.path(&format!("/codes/{}/upload", code.id));
    let body = html! {
        p {
            "Queue: " @if code.paused { "paused " (button("resume", "Resume queue")) } @else { "running " (button("pause", "Pause queue")) }
            " " a href=(ctx.path(&format!("/tasks?code={}", code.name))) { "Its tasks" }
        }
        h2 { "Revisions" }
        table id="revisions" {
            thead { tr { th { "Revision" } th { "Runs" } th { "Zip" } th { "Uploaded" } } }
            tbody {
                @for r in &revisions {
                    tr {
                        td { (r.rev) }
                        td { (runs(&r.spec)) }
                        td { (r.zip.as_ref().map(|z| format!("{} bytes", z.size)).unwrap_or_else(|| "–".into())) }
                        td { (when(Some(r.created_at))) }
                    }
                }
            }
        }
        h2 { "Upload a new revision" }
        (upload_form(ctx, state, &upload_to, Some(code), typed, refused))
        h2 { "Webhook URLs" }
        p { "A URL is shown once, when it is created." (button("webhooks", "Create a webhook URL")) }
        table {
            thead { tr { th { "Webhook" } th { "Created" } th {} } }
            tbody {
                @for h in &hooks {
                    tr {
                        td { (h.id) }
                        td { (when(Some(h.created_at))) }
                        td {
                            form.inline method="post" action=(ctx.path(&format!("/codes/{}/webhooks/{}/revoke", code.id, h.id))) {
                                (ctx.csrf_field())
                                button type="submit" { "Revoke" }
                            }
                        }
                    }
                }
            }
        }
    };
    with_status(refused, page(ctx, &format!("Code {}", code.name), body))
}

async fn set_paused(state: &AppState, ctx: &ProjectPage, code: &Code, paused: bool) -> Response {
    if let Err(e) = state
        .store
        .set_paused(code.project_id, code.id, paused)
        .await
    {
        return internal(e);
    }
    if !paused {
        state.queue.wake();
    }
    Redirect::to(&ctx.path(&format!("/codes/{}", code.id))).into_response()
}

async fn pause(
    Found(ctx, code): Found<Code>,
    State(state): State<AppState>,
    _: Button,
) -> Response {
    set_paused(&state, &ctx, &code, true).await
}

async fn resume(
    Found(ctx, code): Found<Code>,
    State(state): State<AppState>,
    _: Button,
) -> Response {
    set_paused(&state, &ctx, &code, false).await
}

/// Creates a webhook URL queueing a task of the code, and shows it once.
async fn create_webhook(
    Found(ctx, code): Found<Code>,
    State(state): State<AppState>,
    headers: HeaderMap,
    _: Button,
) -> Response {
    let made = new_task(&code.name, Vec::new(), TaskOptions::default())
        .map_err(|e| e.to_string())
        .and_then(|task| NewWebhook::new(code.id, None, None, 0, task).map_err(|e| e.to_string()));
    let hook = match made {
        Ok(h) => h,
        Err(msg) => return message_page(StatusCode::BAD_REQUEST, "Bad request", &msg),
    };
    let token = ferrum_model::token::generate();
    match state
        .store
        .create_webhook(code.project_id, &token, hook)
        .await
    {
        Ok(Some(_)) => {
            let url = format!(
                "{}{}",
                base_url(&headers),
                PUBLIC.replace("{token}", &token)
            );
            let back = ctx.path(&format!("/codes/{}", code.id));
            let body = html! {
                p { "POST to this URL queues a task of " (code.name) ". It is shown only now:" }
                pre id="webhook-url" { (url) }
                p { a href=(back) { "Back to the code" } }
            };
            page(&ctx, "Webhook URL created", body)
        }
        Ok(None) => message_page(StatusCode::NOT_FOUND, "Not found", "No such code."),
        Err(e) => internal(e),
    }
}

#[derive(Deserialize)]
struct WebhookPath {
    webhook_id: String,
}

async fn revoke(
    Found(ctx, code): Found<Code>,
    State(state): State<AppState>,
    Path(p): Path<WebhookPath>,
    _: Button,
) -> Response {
    let Ok(wid) = p.webhook_id.parse::<Id>() else {
        return message_page(StatusCode::NOT_FOUND, "Not found", "No such webhook.");
    };
    match state
        .store
        .delete_webhook(code.project_id, code.id, wid)
        .await
    {
        Ok(_) => Redirect::to(&ctx.path(&format!("/codes/{}", code.id))).into_response(),
        Err(e) => internal(e),
    }
}
