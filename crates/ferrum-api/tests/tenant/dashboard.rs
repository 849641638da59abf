//! The dashboard over HTTP: logging in sets an `HttpOnly`, `SameSite` session cookie; a form
//! without the session's CSRF token changes nothing; logging out ends the session on the
//! server; another tenant's project is "Not found" (the registry sweep tries every page).

use hmac::{Hmac, Mac};
use reqwest::{Method, StatusCode};
use sha2::Sha256;

use crate::common::{Body, TestApp};

/// A logged-in browser: its session cookie and CSRF token.
pub struct Session {
    cookie: String,
    pub csrf: String,
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Logs in with `token` through the login form.
pub async fn login(app: &TestApp, token: &str) -> Session {
    let resp = client()
        .post(format!("{}/login", app.base))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let set = resp.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Lax"),
        "{set}"
    );
    let cookie = set.split(';').next().unwrap().to_owned();
    let value = cookie.split_once('=').unwrap().1.to_owned();
    let mut mac = Hmac::<Sha256>::new_from_slice(value.as_bytes()).unwrap();
    mac.update(b"ferrum-dashboard-csrf");
    let csrf = hex::encode(mac.finalize().into_bytes());
    Session { cookie, csrf }
}

impl Session {
    /// Calls `path` with this session; a POST carries the CSRF token. Status and body.
    pub async fn call(&self, app: &TestApp, method: Method, path: &str) -> (u16, String) {
        let form = [("csrf", self.csrf.as_str())];
        self.send(app, method, path, &form).await
    }

    pub async fn send(
        &self,
        app: &TestApp,
        method: Method,
        path: &str,
        form: &[(&str, &str)],
    ) -> (u16, String) {
        let mut req = client()
            .request(method.clone(), format!("{}{path}", app.base))
            .header("Cookie", &self.cookie);
        if method == Method::POST {
            req = req.form(form);
        }
        let resp = req.send().await.unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    }
}

#[tokio::test]
async fn a_form_without_the_csrf_token_changes_nothing_and_logout_ends_the_session() {
    let app = TestApp::start().await;
    let t = app.tenant("alpha").await;
    app.hello_code(&t, "hello").await;
    let task = app.queue(&t, "hello", "{}").await;
    let session = login(&app, &t.token).await;
    let page = format!("/projects/{}/tasks/{task}", t.project);
    let (status, body) = session.call(&app, Method::GET, &page).await;
    assert_eq!(status, 200);
    assert!(body.contains("queued") && body.contains("Cancel"), "{body}");

    let cancel = format!("{page}/cancel");
    let forged = [("csrf", "00")];
    assert_eq!(
        session.send(&app, Method::POST, &cancel, &forged).await.0,
        403
    );
    assert_eq!(session.send(&app, Method::POST, &cancel, &[]).await.0, 403);
    let api = format!("/2/projects/{}/tasks/{task}", t.project);
    assert_eq!(
        app.get(&t, &api).await.expect(200).json()["status"],
        "queued"
    );

    assert_eq!(session.call(&app, Method::POST, &cancel).await.0, 303);
    assert_eq!(
        app.get(&t, &api).await.expect(200).json()["status"],
        "cancelled"
    );

    // The session token is a cookie, not an API token; the API token is not a cookie.
    let value = session.cookie.split_once('=').unwrap().1;
    let (ok, _) = session.call(&app, Method::GET, &page).await;
    assert_eq!(ok, 200);
    app.call(Method::GET, &api, Some(value), Body::None)
        .await
        .expect(401);
    let api_as_cookie = Session {
        cookie: format!("ferrum_session={}", t.token),
        csrf: String::new(),
    };
    assert_eq!(api_as_cookie.call(&app, Method::GET, &page).await.0, 303);

    assert_eq!(session.call(&app, Method::POST, "/logout").await.0, 303);
    let (status, _) = session.call(&app, Method::GET, &page).await;
    assert_eq!(status, 303, "after logout the cookie is no session");
}

#[tokio::test]
async fn a_wrong_token_does_not_log_in_and_pages_need_a_session() {
    let app = TestApp::start().await;
    let resp = client()
        .post(format!("{}/login", app.base))
        .form(&[("token", "not-a-token")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(resp.headers().get("set-cookie").is_none());
    let resp = client()
        .get(format!("{}/projects", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(resp.headers()["location"], "/login");
    let form = client()
        .get(format!("{}/login", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        form.contains(r#"<label for="token">Token</label>"#),
        "{form}"
    );
    assert!(form.contains("Log in"), "{form}");
}

/// The "Older" link of a task list page, unescaped, if there is one.
fn older_link(body: &str) -> Option<String> {
    let end = body.find("\">Older</a>")?;
    let start = body[..end].rfind("href=\"")? + "href=\"".len();
    Some(body[start..end].replace("&amp;", "&"))
}

#[tokio::test]
async fn the_task_list_pages_by_cursor_and_a_payload_field_bulk_action_takes_every_match() {
    let app = TestApp::start().await;
    let t = app.tenant("alpha").await;
    app.hello_code(&t, "hello").await;
    for i in 0..70 {
        let kind = if i % 3 == 0 { "x" } else { "y" };
        app.queue(&t, "hello", &format!(r#"{{"n":{i},"kind":"{kind}"}}"#))
            .await;
    }
    let session = login(&app, &t.token).await;
    let list = format!("/projects/{}/tasks", t.project);
    let rows = |body: &str| body.matches("name=\"ids\"").count();

    let (status, first) = session.call(&app, Method::GET, &list).await;
    assert_eq!(status, 200);
    assert_eq!(rows(&first), 50);
    assert!(first.contains("&quot;n&quot;:69") || first.contains(r#""n":69"#));
    let older = older_link(&first).expect("an Older link on a full page");
    assert!(older.contains("cursor="), "{older}");
    let (_, second) = session
        .call(&app, Method::GET, &format!("{list}{older}"))
        .await;
    assert_eq!(rows(&second), 20);
    assert!(older_link(&second).is_none(), "the last page has no Older");

    let filtered = format!("{list}?field=kind&value=x");
    let (_, only_x) = session.call(&app, Method::GET, &filtered).await;
    assert_eq!(rows(&only_x), 24, "every match, across store pages");
    assert!(older_link(&only_x).is_none());

    let bulk = format!("{list}/bulk");
    let form = [
        ("csrf", session.csrf.as_str()),
        ("query", "field=kind&value=x"),
        ("scope", "matching"),
        ("action", "cancel"),
    ];
    assert_eq!(session.send(&app, Method::POST, &bulk, &form).await.0, 303);
    let api = format!("/2/projects/{}/tasks?cancelled=1&per_page=100", t.project);
    let cancelled = app.get(&t, &api).await.expect(200).json();
    let cancelled = cancelled["tasks"].as_array().unwrap();
    assert_eq!(cancelled.len(), 24);
    assert!(cancelled
        .iter()
        .all(|t| t["payload"].as_str().unwrap().contains(r#""kind":"x""#)));
}
