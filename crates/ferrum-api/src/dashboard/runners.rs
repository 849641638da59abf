//! Runners (admins only): the runner tokens by cluster, and when each last registered a runner.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use maud::html;

use super::layout::{message_page, page, when, Ctx};
use super::session::internal;
use super::Session;
use crate::routes::{Auth, Route};
use crate::AppState;

pub fn routes() -> Vec<Route> {
    vec![Route::get("/runners", "Dashboard: the fleet (admins)", list).auth(Auth::Session)]
}

async fn list(session: Session, State(state): State<AppState>) -> Response {
    if !session.who.is_admin {
        return message_page(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "Only admins see the fleet.",
        );
    }
    let tokens = match state.store.runner_tokens().await {
        Ok(t) => t,
        Err(e) => return internal(e),
    };
    let projects = state.store.projects(&session.who).await.unwrap_or_default();
    let ctx = Ctx::new(&session, projects.first().cloned());
    let body = html! {
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
