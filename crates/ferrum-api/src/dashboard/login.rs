//! Logging in and out, the front page, and the dashboard's script.

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use maud::html;
use serde::Deserialize;

use super::extract::Button;
use super::layout::document;
use super::session::{internal, over_tls, set_cookie, SESSION_SECS};
use super::Session;
use crate::routes::{Auth, Route};
use crate::AppState;

pub fn routes() -> Vec<Route> {
    vec![
        Route::get("/", "Dashboard: the projects, or the login form", front).auth(Auth::Session),
        Route::get("/login", "Dashboard: the login form", login_form).auth(Auth::Public),
        Route::post("/login", "Dashboard: log in with an API token", login).auth(Auth::Public),
        Route::post("/logout", "Dashboard: end the session", logout).auth(Auth::Session),
        Route::get("/dashboard.js", "Dashboard: its script", script).auth(Auth::Public),
    ]
}

async fn front(_: Session) -> Redirect {
    Redirect::to("/projects")
}

const LOGIN_STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:30rem;margin:3rem auto;padding:1rem}input{width:100%;padding:.4rem;margin:.3rem 0 1rem}";

fn form_page(status: StatusCode, error: Option<&str>) -> Response {
    let markup = html! {
        main {
            h1 { "Ferrum" }
            @if let Some(e) = error { p role="alert" { (e) } }
            form method="post" action="/login" {
                label for="token" { "Token" }
                input id="token" name="token" type="password" autocomplete="current-password" required;
                button type="submit" { "Log in" }
            }
        }
    };
    (status, document("Log in", LOGIN_STYLE, false, markup)).into_response()
}

async fn login_form() -> Response {
    form_page(StatusCode::OK, None)
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    token: String,
}

async fn login(
    State(state): State<AppState>,
    parts: Parts,
    Form(form): Form<LoginForm>,
) -> Response {
    let token = form.token.trim();
    let who = match state.store.authenticate(token).await {
        Ok(Some(who)) if !token.is_empty() => who,
        Ok(_) => return form_page(StatusCode::UNAUTHORIZED, Some("That token is not valid.")),
        Err(e) => return internal(e),
    };
    let session = ferrum_model::token::generate();
    let expires = chrono::Utc::now() + chrono::Duration::seconds(i64::from(SESSION_SECS));
    if let Err(e) = state
        .store
        .start_session(who.user_id, &session, expires)
        .await
    {
        return internal(e);
    }
    (
        [set_cookie(Some(&session), over_tls(&parts))],
        Redirect::to("/projects"),
    )
        .into_response()
}

async fn logout(
    session: Session,
    State(state): State<AppState>,
    parts: Parts,
    _: Button,
) -> Response {
    if let Err(e) = state.store.end_session(&session.token).await {
        return internal(e);
    }
    ([set_cookie(None, over_tls(&parts))], Redirect::to("/login")).into_response()
}

/// Live logs (server-sent events, paused while the tab is hidden) and the cron preview.
const SCRIPT: &str = include_str!("dashboard.js");

async fn script() -> Response {
    ([(CONTENT_TYPE, "text/javascript; charset=utf-8")], SCRIPT).into_response()
}
