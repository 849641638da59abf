//! The isolation sweep, generated from the route registry (`ferrum_api::routes::registry`):
//! every route the API serves is called with another tenant's token, naming the victim's
//! project and objects, and must answer as its auth kind says (404 for tenant routes, 403 for
//! admin routes, 401 for runner routes, 404 for a wrong webhook secret) and change nothing.
//! A route added to any table is swept without anyone editing this file; one with a path
//! parameter the sweep cannot fill fails it until the sweep learns the parameter.

use ferrum_api::routes::{registry, Auth};
use ferrum_api::ApiConfig;
use reqwest::Method;
use serde_json::{json, Value};

use crate::common::{Body, Resp, Tenant, TestApp};

/// What the victim owns, by path parameter name.
struct Victim {
    tenant: Tenant,
    code: String,
    task: String,
    schedule: String,
    webhook: String,
    batch: String,
}

impl Victim {
    /// The value of `{name}` naming the victim's object; `project` fills `{project_id}`.
    fn fill(&self, path: &str, project: &str) -> String {
        let mut out = String::new();
        for seg in path.split('/').skip(1) {
            out.push('/');
            let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) else {
                out.push_str(seg);
                continue;
            };
            out.push_str(match name {
                "project_id" => project,
                "code_id" => &self.code,
                "task_id" => &self.task,
                "schedule_id" => &self.schedule,
                "webhook_id" => &self.webhook,
                "batch_id" => &self.batch,
                // A runner (admins only): no tenant reaches one, whatever its id.
                "runner_id" => &self.task,
                // Runner routes name a task or a revision; the victim's task id serves both.
                "id" => &self.task,
                // A webhook's secret is its credential: the sweep's caller does not know it.
                "token" => "0123456789abcdef0123456789abcdef",
                other => panic!("the sweep cannot fill {{{other}}} in {path}: teach it"),
            });
        }
        out
    }

    async fn snapshot(&self, app: &TestApp) -> Vec<Value> {
        let p = self.tenant.project;
        let mut seen = Vec::new();
        for path in [
            format!("/2/projects/{p}"),
            format!("/2/projects/{p}/codes/{}", self.code),
            format!("/2/projects/{p}/tasks/{}", self.task),
            format!("/2/projects/{p}/schedules/{}", self.schedule),
            format!("/2/projects/{p}/codes/{}/webhooks", self.code),
            format!("/2/projects/{p}/tasks"),
            format!("/2/projects/{p}/schedules"),
            format!("/2/projects/{p}/codes"),
            format!("/2/projects/{p}/batches/{}", self.batch),
            format!("/2/projects/{p}/batches"),
        ] {
            seen.push(app.get(&self.tenant, &path).await.expect(200).json());
        }
        seen
    }
}

/// A body that gets every route past its own parsing, so that what answers is the check of
/// who may see the object: `{}` for JSON routes, one byte for raw ones.
fn body_for(method: &Method) -> Body {
    match *method {
        Method::GET | Method::DELETE => Body::None,
        _ => Body::Json(json!({})),
    }
}

fn describe(resp: &Resp) -> String {
    String::from_utf8_lossy(&resp.body).into_owned()
}

#[tokio::test]
async fn every_registered_route_refuses_another_tenant_and_changes_nothing() {
    let app = TestApp::start().await;
    let victim = app.tenant("victim").await;
    let attacker = app.tenant("attacker").await;
    let code = app.hello_code(&victim, "hello").await;
    let task = app.queue(&victim, "hello", "{}").await;
    let schedule = app.schedule(&victim, "hello").await;
    let hooks = format!("/2/projects/{}/codes/{code}/webhooks", victim.project);
    let hook = app
        .post(&victim, &hooks, json!({}))
        .await
        .expect(200)
        .json();
    let batches = format!("/2/projects/{}/batches", victim.project);
    let batch = app
        .post(
            &victim,
            &batches,
            json!({"code_name": "hello", "payloads": ["x"]}),
        )
        .await
        .expect(200)
        .json();
    // The attacker has a code of the same name: "unknown code" cannot explain a 404.
    app.hello_code(&attacker, "hello").await;
    let victim = Victim {
        code,
        task,
        schedule,
        webhook: hook["id"].as_str().unwrap().to_owned(),
        batch: batch["id"].as_str().unwrap().to_owned(),
        tenant: victim,
    };
    let counts = app.counts().await;
    let before = victim.snapshot(&app).await;

    let routes = registry(&ApiConfig::default());
    assert!(routes.len() > 40, "the registry holds every route");
    let (victim_project, own_project) = (
        victim.tenant.project.to_string(),
        attacker.project.to_string(),
    );
    let session = crate::dashboard::login(&app, &attacker.token).await;
    let mut swept = 0;
    for route in &routes {
        let method = Method::from_bytes(route.method().as_str().as_bytes()).unwrap();
        let path = route.path();
        let names_objects = path.matches('{').count() > usize::from(path.contains("{project_id}"));
        // The victim's project, and the attacker's own project naming the victim's objects.
        let mut paths = vec![victim.fill(path, &victim_project)];
        if names_objects && path.contains("{project_id}") {
            paths.push(victim.fill(path, &own_project));
        }
        for filled in &paths {
            let token = Some(attacker.token.as_str());
            let resp = app
                .call(method.clone(), filled, token, body_for(&method))
                .await;
            let want = match route.auth_kind() {
                // `POST /login` reads a form, not this JSON: refused, nothing written.
                Auth::Public if method == Method::POST => resp.status,
                Auth::Public => 200,
                Auth::Tenant if path.contains('{') => 404,
                // Routes that name nothing (`/2/projects`, `/2/tokens`, `/2/stacks`) act on
                // the caller's own account: whatever they answer, the victim is unchanged.
                Auth::Tenant => resp.status,
                Auth::Admin => 403,
                Auth::Runner => 401,
                Auth::WebhookSecret => 404,
                // A token header is no session: the login page. `dashboard.rs` sweeps these
                // routes with a real session cookie.
                Auth::Session => resp.status,
            };
            assert_eq!(resp.status, want, "{method} {filled}: {}", describe(&resp));
            // The API answers JSON with a `msg`; the dashboard's pages are HTML.
            let api = !matches!(route.auth_kind(), Auth::Session | Auth::Public);
            if resp.status >= 400 && api {
                assert!(!resp.msg().is_empty(), "{method} {filled}: no msg");
            }
            swept += 1;
        }
        // The dashboard, with the attacker's own session and a valid CSRF token: every page and
        // form about the victim's project or objects is "Not found", even one that would change
        // it (an edit, "cancel everything matching"). (`/logout` would end the session;
        // `dashboard.rs` tests it, and the multipart uploads with a real zip.)
        if route.auth_kind() == Auth::Session && path != "/logout" {
            let form = [
                ("csrf", session.csrf.as_str()),
                ("run_every", "7200"),
                ("payload", "swept"),
                ("label", "swept"),
                ("scope", "matching"),
                ("query", ""),
                ("action", "cancel"),
            ];
            for filled in &paths {
                let status = session.send(&app, method.clone(), filled, &form).await.0;
                if path.contains("{project_id}") {
                    assert_eq!(status, 404, "{method} {filled} with the attacker's session");
                } else {
                    assert!(status < 500, "{method} {filled}: {status}");
                }
            }
        }
        // Without a token: 401 wherever a credential is needed.
        if matches!(route.auth_kind(), Auth::Tenant | Auth::Admin | Auth::Runner) {
            let resp = app
                .call(method.clone(), &paths[0], None, body_for(&method))
                .await;
            assert_eq!(resp.status, 401, "{method} {} without a token", paths[0]);
            let bad = Some("not-a-token");
            let resp = app
                .call(method.clone(), &paths[0], bad, body_for(&method))
                .await;
            assert_eq!(resp.status, 401, "{method} {} with a bad token", paths[0]);
        }
    }
    assert!(swept >= routes.len());
    assert_eq!(app.counts().await, counts, "a foreign call wrote something");
    assert_eq!(
        victim.snapshot(&app).await,
        before,
        "a foreign call changed the victim"
    );
}
