//! Runners (admins only): clusters with their capacity and use, each runner with its last
//! heartbeat, and **Drain**; the runner tokens per cluster.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use ferrum_model::{Id, Page};
use maud::html;

use super::extract::Button;
use super::layout::{message_page, page, when, Ctx};
use super::session::internal;
use super::Session;
use crate::ops::fleet::seen_since;
use crate::routes::{Auth, Route};
use crate::AppState;

pub fn routes() -> Vec<Route> {
    vec![
        Route::get("/runners", "Dashboard: the fleet (admins)", list).auth(Auth::Session),
        Route::post(
            "/runners/{runner_id}/drain",
            "Dashboard: drain a runner (admins)",
            drain,
        )
        .auth(Auth::Session),
    ]
}

fn admins_only() -> Response {
    message_page(
        StatusCode::FORBIDDEN,
        "Forbidden",
        "Only admins see the fleet.",
    )
}

async fn list(session: Session, State(state): State<AppState>) -> Response {
    if !session.who.is_admin {
        return admins_only();
    }
    let since = seen_since(&state);
    let fleet = tokio::try_join!(
        state.store.clusters(None, since),
        state.store.runners(None, Page::new(Some(0), Some(100))),
        state.store.runner_tokens(),
    );
    let (clusters, runners, tokens) = match fleet {
        Ok(f) => f,
        Err(e) => return internal(e),
    };
    let projects = state.store.projects(&session.who).await.unwrap_or_default();
    let ctx = Ctx::new(&session, projects.first().cloned());
    let body = html! {
        h2 { "Clusters" }
        table {
            thead { tr { th { "Cluster" } th { "Active runners" } th { "Draining" } th { "Capacity" } th { "Running" } } }
            tbody {
                @for c in &clusters {
                    tr { td { (c.name) } td { (c.active_runners) } td { (c.draining_runners) } td { (c.capacity) } td { (c.running) } }
                }
            }
        }
        h2 { "Runners" }
        table {
            thead { tr { th { "Runner" } th { "Cluster" } th { "Host" } th { "Version" } th { "Status" } th { "Slots used" } th { "Last heartbeat" } th {} } }
            tbody {
                @for r in &runners {
                    @let status = r.status(since).as_str();
                    tr {
                        td { (r.id) }
                        td { (r.cluster) }
                        td { (r.hostname) }
                        td { (r.version) }
                        td class="runner-status" { (status) }
                        td { (r.running) " / " (r.concurrency) }
                        td { (when(Some(r.last_seen_at))) }
                        td {
                            @if status == "active" {
                                form.inline method="post" action=(format!("/runners/{}/drain", r.id)) {
                                    (ctx.csrf_field())
                                    button type="submit" { "Drain" }
                                }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Runner tokens" }
        table {
            thead { tr { th { "Token" } th { "Cluster" } th { "Created" } th { "Last registered a runner" } th { "Revoked" } } }
            tbody {
                @for t in &tokens {
                    tr {
                        td { (t.id) }
                        td { (t.cluster) }
                        td { (when(Some(t.created_at))) }
                        td { (when(t.last_used_at)) }
                        td { (when(t.revoked_at)) }
                    }
                }
            }
        }
    };
    page(&ctx, "Runners", body)
}

async fn drain(
    session: Session,
    State(state): State<AppState>,
    Path(rid): Path<String>,
    _: Button,
) -> Response {
    if !session.who.is_admin {
        return admins_only();
    }
    let not_found = || message_page(StatusCode::NOT_FOUND, "Not found", "No such runner.");
    let Ok(id) = rid.parse::<Id>() else {
        return not_found();
    };
    match state.store.drain_runner(id).await {
        Ok(Some(_)) => Redirect::to("/runners").into_response(),
        Ok(None) => not_found(),
        Err(e) => internal(e),
    }
}
