//! The dashboard's session cookie and CSRF tokens.

use axum::extract::FromRequestParts;
use axum::http::header::{COOKIE, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use ferrum_model::{Id, Principal, Project};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::layout::message_page;
use crate::AppState;

/// The cookie that holds the session token.
pub const COOKIE_NAME: &str = "ferrum_session";
/// How long a session lasts: the server refuses it after this (its row's `expires_at`), and
/// the browser drops the cookie then too. Logout ends it sooner.
pub const SESSION_SECS: u32 = 12 * 3600;

/// A logged-in browser: who it is and its session token.
#[derive(Clone)]
pub struct Session {
    pub who: Principal,
    pub token: String,
}

impl Session {
    /// The CSRF token every form of this session carries.
    pub fn csrf(&self) -> String {
        csrf_of(&self.token)
    }

    /// Refuses a form whose CSRF token is not this session's (403, nothing written).
    pub fn check_csrf(&self, sent: &str) -> Result<(), Response> {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.token.as_bytes()).expect("any key");
        mac.update(b"ferrum-dashboard-csrf");
        let sent = hex::decode(sent).unwrap_or_default();
        mac.verify_slice(&sent).map_err(|_| {
            message_page(
                StatusCode::FORBIDDEN,
                "Forbidden",
                "The form's CSRF token is missing or wrong; nothing was changed. Reload the page and try again.",
            )
        })
    }

    /// The project `id`, if this session may use it; else a "Not found" page.
    pub async fn project(&self, state: &AppState, id: &str) -> Result<Project, Response> {
        let not_found = || message_page(StatusCode::NOT_FOUND, "Not found", "No such project.");
        let id: Id = id.parse().map_err(|_| not_found())?;
        match state.store.project(&self.who, id).await {
            Ok(Some(p)) => Ok(p),
            Ok(None) => Err(not_found()),
            Err(e) => Err(internal(e)),
        }
    }
}

fn csrf_of(token: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(token.as_bytes()).expect("any key");
    mac.update(b"ferrum-dashboard-csrf");
    hex::encode(mac.finalize().into_bytes())
}

/// A failure of the store, as a page (the error is logged, not shown).
pub fn internal(e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "dashboard: store error");
    message_page(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong",
        "The server could not answer this page.",
    )
}

/// The session token in the request's cookies, if any.
fn cookie_token(parts: &Parts) -> Option<String> {
    parts
        .headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, value)| value.to_owned())
}

impl FromRequestParts<AppState> for Session {
    type Rejection = Response;

    /// The session of the request's cookie, looked up once per request (the page and form
    /// extractors all start here).
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        if let Some(known) = parts.extensions.get::<Session>() {
            return Ok(known.clone());
        }
        let to_login = || Redirect::to("/login").into_response();
        let token = cookie_token(parts).ok_or_else(to_login)?;
        let session = match state.store.session(&token).await {
            Ok(Some(who)) => Session { who, token },
            Ok(None) => return Err(to_login()),
            Err(e) => return Err(internal(e)),
        };
        parts.extensions.insert(session.clone());
        Ok(session)
    }
}

/// Whether the request came over TLS (directly or through a proxy that says so).
pub fn over_tls(parts: &Parts) -> bool {
    parts.uri.scheme_str() == Some("https")
        || parts
            .headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|p| p.eq_ignore_ascii_case("https"))
}

/// The `Set-Cookie` of a new session (or, with `None`, of its end).
pub fn set_cookie(token: Option<&str>, tls: bool) -> (axum::http::HeaderName, HeaderValue) {
    let secure = if tls { "; Secure" } else { "" };
    let value = match token {
        Some(t) => format!(
            "{COOKIE_NAME}={t}; Path=/; HttpOnly; SameSite=Lax; Max-Age={SESSION_SECS}{secure}"
        ),
        None => format!("{COOKIE_NAME}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{secure}"),
    };
    (
        SET_COOKIE,
        HeaderValue::from_str(&value).expect("a cookie of hex and ASCII"),
    )
}
