//! The one route registry: every route the API serves, with who may call it.
//!
//! Each part of the API (the tenant API in [`crate::tenant`], the runner protocol in
//! [`crate::runner_api`], and whatever comes next: a dashboard, `/metrics`) contributes a table
//! of [`Route`]s as an equal. The router and the OpenAPI document are both built from
//! [`registry`], so the document lists exactly what is served, and tests that must cover every
//! route (the isolation sweeps) walk the same list: a new route cannot be served without being
//! documented and swept.

use std::sync::{Arc, OnceLock};

use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{MethodFilter, MethodRouter};
use axum::Router;

use crate::{openapi, ops, runner_api, tenant, ApiConfig, AppState};

/// Who may call a route, and so what a caller without that right is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Auth {
    /// Anyone, no credential.
    Public,
    /// A tenant's token (`Authorization: OAuth …`, `Bearer …` or `?oauth=`). No token: 401;
    /// another tenant's project or object: 404.
    Tenant,
    /// An admin's token. No token: 401; a tenant's token: 403.
    Admin,
    /// A runner token (`Authorization: Bearer …`), bound to one cluster. Anything else: 401.
    Runner,
    /// The secret in the path is the credential (webhook deliveries). A wrong secret: 404.
    WebhookSecret,
    /// The dashboard's session cookie (`dashboard::Session`). No session: a redirect to
    /// `/login`; another tenant's project or object: "Not found". HTML, so not in the
    /// OpenAPI document.
    Session,
}

impl Auth {
    /// The name the OpenAPI document gives this kind (`x-ferrum-auth`).
    pub fn as_str(self) -> &'static str {
        match self {
            Auth::Public => "public",
            Auth::Tenant => "tenant",
            Auth::Admin => "admin",
            Auth::Runner => "runner",
            Auth::WebhookSecret => "webhook-secret",
            Auth::Session => "session",
        }
    }
}

/// One route: what the router serves and what the OpenAPI document says about it.
pub struct Route {
    method: Method,
    path: &'static str,
    summary: &'static str,
    /// `None` until the table it belongs to gives its default ([`registry`]).
    auth: Option<Auth>,
    /// The request body, for the OpenAPI document; `None` for routes that read none.
    body: Option<openapi::Body>,
    /// Failures this route answers beyond those every route of its auth kind and method
    /// answers (`openapi::responses`), e.g. 403 at a project's schedule limit.
    errors: &'static [u16],
    /// Query parameters, for the OpenAPI document (OpenAPI parameter objects).
    query: Vec<serde_json::Value>,
    /// False for the dashboard's pages and script: for browsers, not API operations, so not
    /// in the OpenAPI document.
    api: bool,
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
            auth: None,
            body: None,
            errors: &[],
            query: Vec::new(),
            api: true,
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

    /// Who may call this route, when it differs from its table's default.
    pub(crate) fn auth(mut self, auth: Auth) -> Self {
        self.auth = Some(auth);
        self
    }

    /// Describes the request body in the OpenAPI document.
    pub(crate) fn body(mut self, body: openapi::Body) -> Self {
        self.body = Some(body);
        self
    }

    /// Describes the query parameters this route reads.
    pub(crate) fn query(mut self, params: Vec<serde_json::Value>) -> Self {
        self.query = params;
        self
    }

    /// Documents failures this route answers beyond its kind's usual ones.
    pub(crate) fn errors(mut self, statuses: &'static [u16]) -> Self {
        self.errors = statuses;
        self
    }

    /// Gives this route its own body limit instead of the API's default.
    pub(crate) fn with_body_limit(mut self, bytes: usize) -> Self {
        self.handler = self.handler.layer(DefaultBodyLimit::max(bytes));
        self
    }

    pub fn method(&self) -> &Method {
        &self.method
    }

    /// The path as axum matches it, with `{name}` parameters.
    pub fn path(&self) -> &'static str {
        self.path
    }

    pub fn summary(&self) -> &'static str {
        self.summary
    }

    pub fn auth_kind(&self) -> Auth {
        self.auth.expect("every registered route has an auth kind")
    }

    pub(crate) fn request_body(&self) -> Option<&openapi::Body> {
        self.body.as_ref()
    }

    pub(crate) fn query_parameters(&self) -> &[serde_json::Value] {
        &self.query
    }

    pub(crate) fn extra_errors(&self) -> &'static [u16] {
        self.errors
    }

    /// Marks a route as a page for browsers, kept out of the OpenAPI document.
    pub(crate) fn page(mut self) -> Self {
        self.api = false;
        self
    }

    /// Whether the OpenAPI document lists this route.
    pub fn is_api(&self) -> bool {
        self.api
    }
}

/// A table's routes, each given `default` unless it named its own auth kind.
fn table(default: Auth, routes: Vec<Route>) -> impl Iterator<Item = Route> {
    routes.into_iter().map(move |mut r| {
        r.auth.get_or_insert(default);
        r
    })
}

/// Every route the API serves, in the order the OpenAPI document lists them.
pub fn registry(config: &ApiConfig) -> Vec<Route> {
    registry_with(config, Arc::default())
}

fn registry_with(config: &ApiConfig, document: Arc<OnceLock<Bytes>>) -> Vec<Route> {
    table(Auth::Tenant, tenant::routes(config))
        .chain(table(Auth::Runner, runner_api::routes()))
        .chain(table(Auth::Runner, crate::results::runner_routes(config)))
        .chain(table(Auth::Public, vec![openapi::route(document)]))
        .chain(table(Auth::Public, ops::routes()))
        .chain(table(Auth::Session, crate::dashboard::routes(config)).map(Route::page))
        .collect()
}

/// The router of every registered route. Request bodies are limited to
/// `config.max_request_bytes` unless a route sets its own limit.
pub(crate) fn router(config: &ApiConfig) -> Router<AppState> {
    let document = Arc::new(OnceLock::new());
    let routes = registry_with(config, document.clone());
    let _ = document.set(Bytes::from(openapi::document(&routes).to_string()));
    routes
        .into_iter()
        .fold(Router::new(), |router, r| router.route(r.path, r.handler))
        .layer(DefaultBodyLimit::max(config.max_request_bytes))
}
