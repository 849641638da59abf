//! Batches: progress (done / total / failed), each item's status and result, the reduce task
//! and its result, cancel.

use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use ferrum_model::{Batch, Page};
use maud::{html, Markup};

use super::extract::{Button, Found, ProjectPage};
use super::layout::{page, status, when};
use super::session::internal;
use crate::routes::{Auth, Route};
use crate::AppState;

/// Items a batch's page lists.
const ITEMS: i64 = 500;

pub fn routes() -> Vec<Route> {
    vec![
        Route::get("/projects/{project_id}/batches", "Dashboard: batches", list)
            .auth(Auth::Session),
        Route::get(
            "/projects/{project_id}/batches/{batch_id}",
            "Dashboard: a batch",
            detail,
        )
        .auth(Auth::Session),
        Route::post(
            "/projects/{project_id}/batches/{batch_id}/cancel",
            "Dashboard: cancel a batch",
            cancel,
        )
        .auth(Auth::Session),
    ]
}

fn progress(b: &Batch) -> Markup {
    let pct = if b.total > 0 {
        b.done * 100 / b.total
    } else {
        0
    };
    html! {
        div.bar role="progressbar" aria-valuemin="0" aria-valuemax=(b.total) aria-valuenow=(b.done) aria-label="Items done" {
            div style=(format!("width:{pct}%")) {}
        }
        span.progress { (b.done) " / " (b.total) " done, " (b.failed) " failed" }
    }
}

async fn list(ctx: ProjectPage, State(state): State<AppState>) -> Response {
    let batches = match state
        .store
        .batches(ctx.project, Page::new(Some(0), Some(100)))
        .await
    {
        Ok(b) => b,
        Err(e) => return internal(e),
    };
    let body = html! {
        table {
            thead { tr { th { "Batch" } th { "Code" } th { "Status" } th { "Progress" } th { "Created" } } }
            tbody {
                @for b in &batches {
                    tr {
                        td { a href=(ctx.path(&format!("/batches/{}", b.id))) { (b.id) } }
                        td { (b.code_name) }
                        td { (status(b.status.as_str())) }
                        td { (progress(b)) }
                        td { (when(Some(b.created_at))) }
                    }
                }
            }
        }
    };
    page(&ctx, "Batches", body)
}

async fn detail(Found(ctx, b): Found<Batch>, State(state): State<AppState>) -> Response {
    let items = match state
        .store
        .batch_items(b.project_id, b.id, None, ITEMS)
        .await
    {
        Ok(items) => items.unwrap_or_default(),
        Err(e) => return internal(e),
    };
    let reduce_result = match b.reduce_task_id {
        Some(task) => crate::results::load(&state, b.project_id, task)
            .await
            .ok()
            .flatten()
            .map(|(_, bytes)| String::from_utf8_lossy(&bytes).into_owned()),
        None => None,
    };
    let body = html! {
        p { "Status: " span id="batch-status" { (status(b.status.as_str())) } @if let Some(m) = &b.msg { " — " (m) } }
        (progress(&b))
        @if !b.status.is_final() {
            form method="post" action=(ctx.path(&format!("/batches/{}/cancel", b.id))) {
                (ctx.csrf_field())
                button type="submit" { "Cancel" }
            }
        }
        @if let Some(r) = b.reduce_task_id {
            h2 { "Reduce" }
            p { "Task " a href=(ctx.path(&format!("/tasks/{r}"))) { (r) } }
            h3 { "Result" }
            pre id="batch-result" { (reduce_result.unwrap_or_else(|| "(none yet)".into())) }
        }
        h2 { "Items" }
        p { a href=(ctx.path(&format!("/tasks?batch={}", b.id))) { "Every task of this batch" } }
        table {
            thead { tr { th { "Index" } th { "Task" } th { "Status" } th { "Result" } th { "Message" } } }
            tbody {
                @for i in &items {
                    tr {
                        td { (i.index) }
                        td { a href=(ctx.path(&format!("/tasks/{}", i.task_id))) { (i.task_id) } }
                        td { (status(i.status.as_str())) }
                        td { code { (i.result.as_deref().map(String::from_utf8_lossy).unwrap_or_default()) } }
                        td { (i.msg.clone().unwrap_or_default()) }
                    }
                }
            }
        }
    };
    page(&ctx, &format!("Batch {}", b.id), body)
}

async fn cancel(Found(ctx, b): Found<Batch>, State(state): State<AppState>, _: Button) -> Response {
    match state.store.cancel_batch(b.project_id, b.id).await {
        Ok(_) => Redirect::to(&ctx.path(&format!("/batches/{}", b.id))).into_response(),
        Err(e) => internal(e),
    }
}
