//! What a dashboard handler is given, already checked, so that it says only what it does:
//! - [`ProjectPage`]: the session's view of the project named by `{project_id}`;
//! - [`Found<T>`]: that, and the task, code, batch or schedule its path names;
//! - [`Checked<F>`], [`Button`], [`CheckedMultipart`]: a state-changing form whose CSRF token
//!   is the session's.
//!
//! Any other project or object is the "Not found" page (404), whatever the URL says: the
//! object is looked up only inside the project the session may use, as the API does. A form
//! without the session's CSRF token is the "Forbidden" page (403). Both are answered before
//! the handler runs, so nothing is written. Path extractors run before the body's, so a
//! foreign project is "Not found" even to a form without its token.

use std::future::Future;
use std::ops::Deref;

use axum::body::Bytes;
use axum::extract::multipart::Multipart;
use axum::extract::{FromRequest, FromRequestParts, RawPathParams, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ferrum_model::{Batch, Code, Id, Schedule, Task};
use ferrum_store::StoreResult;
use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::layout::{message_page, Ctx};
use super::session::internal;
use super::Session;
use crate::AppState;

/// A page of the project `{project_id}`, which the session may use.
pub struct ProjectPage {
    pub ctx: Ctx,
    /// The project's id.
    pub project: Id,
}

impl Deref for ProjectPage {
    type Target = Ctx;

    fn deref(&self) -> &Ctx {
        &self.ctx
    }
}

/// The value of path parameter `name`.
async fn path_param(parts: &mut Parts, state: &AppState, name: &str) -> Option<String> {
    let params = RawPathParams::from_request_parts(parts, state).await.ok()?;
    params
        .iter()
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

impl FromRequestParts<AppState> for ProjectPage {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let session = Session::from_request_parts(parts, state).await?;
        let pid = path_param(parts, state, "project_id")
            .await
            .unwrap_or_default();
        let project = session.project(state, &pid).await?;
        Ok(ProjectPage {
            project: project.id,
            ctx: Ctx::new(&session, Some(project)),
        })
    }
}

/// An object a dashboard path names, looked up inside the project in view.
pub trait Object: Sized + Send {
    /// The path parameter holding its id.
    const PARAM: &'static str;
    /// What the "Not found" page calls it.
    const WHAT: &'static str;

    fn find(
        state: &AppState,
        project: Id,
        id: Id,
    ) -> impl Future<Output = StoreResult<Option<Self>>> + Send;
}

/// `Object` for a kind read by the store method `$find(project, id)`.
macro_rules! object {
    ($kind:ty, $param:literal, $what:literal, $find:ident) => {
        impl Object for $kind {
            const PARAM: &'static str = $param;
            const WHAT: &'static str = $what;

            fn find(
                state: &AppState,
                project: Id,
                id: Id,
            ) -> impl Future<Output = StoreResult<Option<Self>>> + Send {
                state.store.$find(project, id)
            }
        }
    };
}

object!(Task, "task_id", "task", task);
object!(Code, "code_id", "code", code);
object!(Batch, "batch_id", "batch", batch);
object!(Schedule, "schedule_id", "schedule", schedule);

/// The project page and the object of kind `T` its path names.
pub struct Found<T>(pub ProjectPage, pub T);

impl<T: Object> FromRequestParts<AppState> for Found<T> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let page = ProjectPage::from_request_parts(parts, state).await?;
        let not_found = || {
            message_page(
                StatusCode::NOT_FOUND,
                "Not found",
                &format!("No such {}.", T::WHAT),
            )
        };
        let id: Id = path_param(parts, state, T::PARAM)
            .await
            .and_then(|v| v.parse().ok())
            .ok_or_else(not_found)?;
        let object = T::find(state, page.project, id)
            .await
            .map_err(internal)?
            .ok_or_else(not_found)?;
        Ok(Found(page, object))
    }
}

/// A urlencoded form of type `F`, posted with this session's CSRF token. `F` reads the fields
/// it names (`Vec<(String, String)>` reads them all, repeated names kept).
pub struct Checked<F>(pub F);

impl<F: DeserializeOwned> FromRequest<AppState> for Checked<F> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let session = Session::from_request_parts(&mut parts, state).await?;
        let body = Bytes::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(IntoResponse::into_response)?;
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
        let csrf = pairs
            .iter()
            .find(|(name, _)| name == "csrf")
            .map_or("", |(_, v)| v.as_str());
        session.check_csrf(csrf)?;
        let form = serde_urlencoded::from_bytes(&body)
            .map_err(|e| message_page(StatusCode::BAD_REQUEST, "Bad request", &e.to_string()))?;
        Ok(Checked(form))
    }
}

/// A button: a form of nothing but the CSRF token.
pub struct Button;

#[derive(Deserialize)]
struct NoFields {}

impl FromRequest<AppState> for Button {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Response> {
        Checked::<NoFields>::from_request(req, state).await?;
        Ok(Button)
    }
}

/// A `multipart/form-data` form (a file upload), read whole (within the route's body limit)
/// and posted with this session's CSRF token: each part's name and bytes, in order.
pub struct CheckedMultipart(pub Vec<(String, Bytes)>);

impl CheckedMultipart {
    /// The text of part `name`, trimmed; empty when absent.
    pub fn text(&self, name: &str) -> String {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| String::from_utf8_lossy(v).trim().to_owned())
            .unwrap_or_default()
    }

    /// The bytes of part `name`, if it holds any (an empty file input sends an empty part).
    pub fn bytes(&self, name: &str) -> Option<Bytes> {
        self.0
            .iter()
            .find(|(n, v)| n == name && !v.is_empty())
            .map(|(_, v)| v.clone())
    }
}

impl FromRequest<AppState> for CheckedMultipart {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let session = Session::from_request_parts(&mut parts, state).await?;
        let bad = |status: StatusCode, text: String| message_page(status, "Bad request", &text);
        let mut form = Multipart::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(|r| bad(r.status(), r.body_text()))?;
        let mut fields = Vec::new();
        loop {
            let field = form.next_field().await;
            let Some(field) = field.map_err(|e| bad(e.status(), e.body_text()))? else {
                break;
            };
            let name = field.name().unwrap_or_default().to_owned();
            let bytes = field.bytes().await;
            fields.push((name, bytes.map_err(|e| bad(e.status(), e.body_text()))?));
        }
        let form = CheckedMultipart(fields);
        session.check_csrf(&form.text("csrf"))?;
        Ok(form)
    }
}

#[cfg(test)]
mod tests {
    /// Forms are read with `serde_urlencoded`: a `%` before a multi-byte character, a sign
    /// after `%` or a trailing `%` are kept as text (never a panic), and a repeated name keeps
    /// every value (the task list's `ids`).
    #[test]
    fn a_form_reads_odd_escapes_as_text_and_keeps_repeated_names() {
        let body = "a=%a%C3%A9&b=%+1&c=100%&d=%C3%A9+x&ids=1&ids=2";
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(body).unwrap();
        let got: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("a", "%aé"),
                ("b", "% 1"),
                ("c", "100%"),
                ("d", "é x"),
                ("ids", "1"),
                ("ids", "2")
            ]
        );
    }
}
