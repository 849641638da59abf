//! The page frame every dashboard page shares: navigation, the logout form, styles.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use chrono::{DateTime, Utc};
use ferrum_model::Project;
use maud::{html, Markup, PreEscaped, DOCTYPE};

use super::Session;

/// What the frame needs to know about the viewer and the project in view.
pub struct Ctx {
    pub csrf: String,
    pub is_admin: bool,
    pub project: Option<Project>,
}

impl Ctx {
    pub fn new(session: &Session, project: Option<Project>) -> Ctx {
        Ctx {
            csrf: session.csrf(),
            is_admin: session.who.is_admin,
            project,
        }
    }

    /// The path of project page `rest` (`""` for the overview).
    pub fn path(&self, rest: &str) -> String {
        match &self.project {
            Some(p) => format!("/projects/{}{rest}", p.id),
            None => "/projects".to_owned(),
        }
    }

    /// A hidden CSRF field for a state-changing form.
    pub fn csrf_field(&self) -> Markup {
        html! { input type="hidden" name="csrf" value=(self.csrf); }
    }
}

const STYLE: &str = "
body{font-family:system-ui,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
header{background:#1d2330;color:#fff;padding:.5rem 1rem;display:flex;flex-wrap:wrap;gap:1rem;align-items:center}
header a{color:#fff;text-decoration:none;padding:.25rem .5rem;border-radius:4px}
header a:hover,header a:focus{background:#3b4458}
header form{margin-left:auto}
main{padding:1rem;max-width:1200px;margin:auto}
table{border-collapse:collapse;width:100%;background:#fff}
th,td{border-bottom:1px solid #dde;padding:.35rem .5rem;text-align:left;font-size:.9rem;vertical-align:top}
pre{background:#fff;border:1px solid #dde;padding:.5rem;overflow:auto;max-height:32rem;white-space:pre-wrap}
.status-complete{color:#17733a}.status-error,.status-timeout,.status-killed,.status-failed{color:#b42318}
.status-running,.status-preparing,.status-reducing{color:#1f5fbf}
form.inline{display:inline}
fieldset{border:1px solid #dde;background:#fff;margin-bottom:1rem}
label{margin-right:.75rem}
.grid{display:grid;grid-template-columns:minmax(6rem,14rem) minmax(0,28rem);gap:.4rem .75rem;align-items:center}
.grid>p,.grid>details,.grid>button,.grid>datalist{grid-column:1/-1}.grid>button{justify-self:start}
.refused{color:#b42318;font-weight:600}.preview{color:#3b4458}
.bar{background:#dde;height:1rem;width:100%;max-width:30rem}.bar>div{background:#17733a;height:1rem}
@media (max-width:640px){th,td{font-size:.8rem}header{gap:.25rem}.grid{grid-template-columns:minmax(0,1fr)}}
";

/// An HTML document titled `title`, styled by `style`, with the dashboard's script when
/// `script`, showing `body`.
pub fn document(title: &str, style: &str, script: bool, body: Markup) -> Html<String> {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Ferrum" }
                style { (PreEscaped(style)) }
                @if script { script src="/dashboard.js" defer {} }
            }
            body { (body) }
        }
    };
    Html(markup.into_string())
}

/// A full page with the navigation.
pub fn page(ctx: &Ctx, title: &str, body: Markup) -> Response {
    let nav_target = |rest: &str| ctx.path(rest);
    let markup = html! {
                header {
                    strong { "Ferrum" }
                    nav aria-label="Main" {
                        a href="/projects" { "Projects" }
                        a href=(nav_target("/tasks")) { "Tasks" }
                        a href=(nav_target("/codes")) { "Codes" }
                        a href=(nav_target("/schedules")) { "Schedules" }
                        a href=(nav_target("/batches")) { "Batches" }
                        @if ctx.is_admin { a href="/runners" { "Runners" } }
                    }
                    @if let Some(p) = &ctx.project {
                        span { "Project: " (p.name) }
                    }
                    form method="post" action="/logout" {
                        (ctx.csrf_field())
                        button type="submit" { "Log out" }
                    }
                }
                main { h1 { (title) } (body) }
    };
    document(title, STYLE, true, markup).into_response()
}

/// A page with only a message (errors, refusals), without the navigation.
pub fn message_page(status: StatusCode, title: &str, text: &str) -> Response {
    let markup = html! {
        main { h1 { (title) } p { (text) } p { a href="/projects" { "Back to the projects" } } }
    };
    (status, document(title, STYLE, false, markup)).into_response()
}

/// A time as the dashboard shows it; "–" for none.
pub fn when(t: Option<DateTime<Utc>>) -> String {
    t.map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| "–".into())
}

/// A status with its colour class.
pub fn status(s: &str) -> Markup {
    html! { span class=(format!("status-{s}")) { (s) } }
}
