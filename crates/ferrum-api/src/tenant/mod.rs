//! The IronWorker v2 tenant API (contract §3), plus Ferrum's `POST /2/projects` and the
//! OpenAPI document at `GET /openapi.json`.
//!
//! Conventions every handler follows (contract §2, §7):
//! - the caller and the project come from the [`auth`] extractors, which answer 401 without a
//!   valid token and 404 for a project the caller may not use, so a token of project A never
//!   learns whether anything of project B exists;
//! - request bodies are parsed leniently by [`extract`], never with `axum::Json`, because the
//!   official clients send bodies without a JSON content type, or none at all;
//! - every answer is 200 with a JSON object (logs and downloads excepted), and every failure an
//!   [`crate::ApiError`].
//!
//! Each module declares its routes in a [`Route`] table. The same tables build the router and
//! the OpenAPI document, so the document lists exactly what is served.

mod accounts;
mod auth;
mod codes;
mod extract;
mod logs;
mod openapi;
mod projects;
mod pyrepr;
mod render;
mod schedules;
mod stacks;
mod tasks;
mod upload;
mod webhooks;
mod webhooks_sig;
mod zipcheck;

use axum::extract::DefaultBodyLimit;
use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{MethodFilter, MethodRouter};
use axum::Router;

use crate::{ApiConfig, AppState};

/// One documented route: what the router serves and what the OpenAPI document says about it.
pub(crate) struct Route {
    method: Method,
    path: &'static str,
    summary: &'static str,
    handler: MethodRouter<AppState>,
}

impl Route {
    fn new<H, T>(method: Method, path: &'static str, summary: &'static str, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        let filter = MethodFilter::try_from(method.clone()).expect("a standard HTTP method");
        Route {
            method,
            path,
            summary,
            handler: axum::routing::on(filter, handler),
        }
    }

    pub(crate) fn get<H: Handler<T, AppState>, T: 'static>(
        path: &'static str,
        summary: &'static str,
        handler: H,
    ) -> Self {
        Self::new(Method::GET, path, summary, handler)
    }

    pub(crate) fn post<H: Handler<T, AppState>, T: 'static>(
        path: &'static str,
        summary: &'static str,
        handler: H,
    ) -> Self {
        Self::new(Method::POST, path, summary, handler)
    }

    pub(crate) fn put<H: Handler<T, AppState>, T: 'static>(
        path: &'static str,
        summary: &'static str,
        handler: H,
    ) -> Self {
        Self::new(Method::PUT, path, summary, handler)
    }

    pub(crate) fn delete<H: Handler<T, AppState>, T: 'static>(
        path: &'static str,
        summary: &'static str,
        handler: H,
    ) -> Self {
        Self::new(Method::DELETE, path, summary, handler)
    }

    /// Gives this route its own body limit instead of the tenant API's default.
    fn with_body_limit(mut self, bytes: usize) -> Self {
        self.handler = self.handler.layer(DefaultBodyLimit::max(bytes));
        self
    }
}

/// Every tenant route, in the order the OpenAPI document lists them.
fn routes(config: &ApiConfig) -> Vec<Route> {
    let mut all = vec![upload::route().with_body_limit(config.max_upload_bytes)];
    all.extend(codes::routes());
    all.extend(tasks::routes());
    all.extend(logs::routes());
    all.extend(schedules::routes());
    all.extend(webhooks::routes());
    all.extend(projects::routes());
    all.extend(accounts::routes());
    all.extend(stacks::routes());
    all
}

/// The tenant API, plus `more` routes served and documented beside it (the runner protocol).
/// Request bodies are limited to `config.max_request_bytes`, code uploads to
/// `config.max_upload_bytes`.
pub(crate) fn router(config: &ApiConfig, more: Vec<Route>) -> Router<AppState> {
    let mut routes = routes(config);
    routes.extend(more);
    let doc = openapi::document(&routes);
    routes
        .into_iter()
        .fold(Router::new(), |router, r| router.route(r.path, r.handler))
        .route("/openapi.json", openapi::route(doc))
        .layer(DefaultBodyLimit::max(config.max_request_bytes))
}
