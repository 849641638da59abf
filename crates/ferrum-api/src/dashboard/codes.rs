//! Codes: each code's revisions, its webhook URLs (create, revoke) and its queue (pause,
//! resume). New revisions are uploaded with the CLI or the API (`ferrum upload`).

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use ferrum_model::validation::{new_task, TaskOptions};
use ferrum_model::webhook::NewWebhook;
use ferrum_model::{Code, Id, Page};
use maud::html;

use super::layout::{message_page, page, when, Ctx};
use super::session::{internal, CsrfForm};
use super::Session;
use crate::routes::{Auth, Route};
use crate::tenant::webhooks::{base_url, PUBLIC};
use crate::AppState;

pub fn routes() -> Vec<Route> {
    vec![
        Route::get("/projects/{project_id}/codes", "Dashboard: codes", list).auth(Auth::Session),
        Route::get(
            "/projects/{project_id}/codes/{code_id}",
            "Dashboard: a code",
            detail,
        )
        .auth(Auth::Session),
        Route::post(
            "/projects/{project_id}/codes/{code_id}/{action}",
            "Dashboard: pause or resume a code's queue, create a webhook URL",
            act,
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

async fn list(
    session: Session,
    State(state): State<AppState>,
    Path(pid): Path<String>,
) -> Response {
    let ctx = match session.ctx(&state, &pid).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let project = ctx.project.as_ref().expect("a project page").id;
    let codes = match state
        .store
        .codes(project, Page::new(Some(0), Some(100)))
        .await
    {
        Ok(c) => c,
        Err(e) => return internal(e),
    };
    let body = html! {
        p { "Upload a new revision with " code { "ferrum upload NAME DIR" } "." }
        table {
            thead { tr { th { "Code" } th { "Revision" } th { "Runs" } th { "Queue" } th { "Updated" } } }
            tbody {
                @for c in &codes {
                    tr {
                        td { a href=(ctx.path(&format!("/codes/{}", c.id))) { (c.name) } }
                        td { (c.latest.rev) }
                        td { (runs(c)) }
                        td { @if c.paused { "paused" } @else { "running" } }
                        td { (when(Some(c.updated_at))) }
                    }
                }
            }
        }
    };
    page(&ctx, "Codes", body)
}

fn runs(c: &Code) -> String {
    let spec = &c.latest.spec;
    match (&spec.image, &spec.runtime, &spec.file_name) {
        (Some(image), _, _) => format!("image {image}"),
        (None, Some(rt), Some(f)) => format!("{rt} {f}"),
        (None, Some(rt), None) => rt.clone(),
        _ => "–".into(),
    }
}

async fn find(state: &AppState, ctx: &Ctx, id: &str) -> Result<Code, Response> {
    let project = ctx.project.as_ref().expect("a project page").id;
    let not_found = || message_page(StatusCode::NOT_FOUND, "Not found", "No such code.");
    let id: Id = id.parse().map_err(|_| not_found())?;
    state
        .store
        .code(project, id)
        .await
        .map_err(internal)?
        .ok_or_else(not_found)
}

async fn detail(
    session: Session,
    State(state): State<AppState>,
    Path((pid, cid)): Path<(String, String)>,
) -> Response {
    let ctx = match session.ctx(&state, &pid).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let code = match find(&state, &ctx, &cid).await {
        Ok(c) => c,
        Err(r) => return r,
    };
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
    let body = html! {
        p {
            "Queue: " @if code.paused { "paused " (button("resume", "Resume queue")) } @else { "running " (button("pause", "Pause queue")) }
            " " a href=(ctx.path(&format!("/tasks?code={}", code.name))) { "Its tasks" }
        }
        h2 { "Revisions" }
        table {
            thead { tr { th { "Revision" } th { "Runs" } th { "Uploaded" } } }
            tbody { @for r in &revisions { tr { td { (r.rev) } td { (r.spec.runtime.clone().unwrap_or_default()) " " (r.spec.file_name.clone().unwrap_or_default()) } td { (when(Some(r.created_at))) } } } }
        }
        h2 { "Webhook URLs" }
        p { "A URL is shown once, when it is created." (button("webhook", "Create a webhook URL")) }
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
    page(&ctx, &format!("Code {}", code.name), body)
}

async fn act(
    session: Session,
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((pid, cid, action)): Path<(String, String, String)>,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Err(refused) = session.check_csrf(&form.csrf) {
        return refused;
    }
    let ctx = match session.ctx(&state, &pid).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let code = match find(&state, &ctx, &cid).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let back = ctx.path(&format!("/codes/{}", code.id));
    match action.as_str() {
        "pause" | "resume" => {
            let paused = action == "pause";
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
            Redirect::to(&back).into_response()
        }
        "webhook" => {
            let made = new_task(&code.name, Vec::new(), TaskOptions::default())
                .map_err(|e| e.to_string())
                .and_then(|task| {
                    NewWebhook::new(code.id, None, None, 0, task).map_err(|e| e.to_string())
                });
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
        _ => message_page(StatusCode::NOT_FOUND, "Not found", "No such action."),
    }
}

async fn revoke(
    session: Session,
    State(state): State<AppState>,
    Path((pid, cid, wid)): Path<(String, String, String)>,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Err(refused) = session.check_csrf(&form.csrf) {
        return refused;
    }
    let ctx = match session.ctx(&state, &pid).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let code = match find(&state, &ctx, &cid).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let Ok(wid) = wid.parse::<Id>() else {
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
