//! The dashboard over HTTP: logging in sets an `HttpOnly`, `SameSite` session cookie; a form
//! without the session's CSRF token changes nothing; logging out ends the session on the
//! server; another tenant's project is "Not found" (the registry sweep tries every page); the
//! task list pages both ways by cursor; a schedule's Edit form and the upload forms check as
//! the API does, show its message and write nothing when they refuse.

use ferrum_api::ApiConfig;
use hmac::{Hmac, Mac};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sha2::Sha256;

use crate::common::{multipart_of, zip_of, Body, TestApp};

const BOUNDARY: &str = "dashboard-test-boundary";

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

    /// Posts a `multipart/form-data` form as a browser does: text fields, then the zip as the
    /// `file` part (an empty one when `zip` is `None`, as an empty file input sends).
    pub async fn upload(
        &self,
        app: &TestApp,
        path: &str,
        fields: &[(&str, &str)],
        zip: Option<&[u8]>,
    ) -> (u16, String) {
        // An empty file input sends an empty part with an empty file name.
        let file = match zip {
            Some(z) => ("code.zip", z),
            None => ("", &[][..]),
        };
        let body = multipart_of(BOUNDARY, fields, Some(file));
        let resp = client()
            .post(format!("{}{path}", app.base))
            .header("Cookie", &self.cookie)
            .header(
                "Content-Type",
                format!("multipart/form-data; boundary={BOUNDARY}"),
            )
            .body(body)
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    }
}

/// Text as the pages show it (maud escapes these).
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
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

/// The link named `name` ("Older", "Newer") of a task list page, unescaped, if there is one.
fn link(body: &str, name: &str) -> Option<String> {
    let end = body.find(&format!("\">{name}</a>"))?;
    let start = body[..end].rfind("href=\"")? + "href=\"".len();
    Some(body[start..end].replace("&amp;", "&"))
}

fn older_link(body: &str) -> Option<String> {
    link(body, "Older")
}

/// The ids of the tasks a list page shows, in order.
fn ids(body: &str) -> Vec<String> {
    body.split("name=\"ids\" value=\"")
        .skip(1)
        .map(|rest| rest[..rest.find('"').unwrap()].to_owned())
        .collect()
}

#[tokio::test]
async fn the_task_list_pages_by_cursor_and_a_payload_field_bulk_action_takes_every_match() {
    let app = TestApp::start().await;
    let t = app.tenant("alpha").await;
    app.hello_code(&t, "hello").await;
    for i in 0..120 {
        let kind = if i % 3 == 0 { "x" } else { "y" };
        app.queue(&t, "hello", &format!(r#"{{"n":{i},"kind":"{kind}"}}"#))
            .await;
    }
    let session = login(&app, &t.token).await;
    let list = format!("/projects/{}/tasks", t.project);
    let get = |path: String| {
        let session = &session;
        let app = &app;
        async move { session.call(app, Method::GET, &path).await }
    };

    let (status, first) = get(list.clone()).await;
    assert_eq!(status, 200);
    assert_eq!(ids(&first).len(), 50);
    assert!(first.contains("&quot;n&quot;:119") || first.contains(r#""n":119"#));
    assert!(
        link(&first, "Newer").is_none(),
        "the first page has no Newer"
    );
    let older = older_link(&first).expect("an Older link on a full page");
    assert!(older.contains("cursor="), "{older}");
    let (_, second) = get(format!("{list}{older}")).await;
    assert_eq!(ids(&second).len(), 50);
    let (_, third) = get(format!("{list}{}", older_link(&second).unwrap())).await;
    assert_eq!(ids(&third).len(), 20);
    assert!(older_link(&third).is_none(), "the last page has no Older");

    // Newer goes back the way Older came, page by page, to the first.
    let (_, back2) = get(format!("{list}{}", link(&third, "Newer").unwrap())).await;
    assert_eq!(ids(&back2), ids(&second));
    let (_, back1) = get(format!("{list}{}", link(&back2, "Newer").unwrap())).await;
    assert_eq!(ids(&back1), ids(&first));
    assert!(link(&back1, "Newer").is_none());
    let mut all: Vec<String> = [&first, &second, &third]
        .iter()
        .flat_map(|p| ids(p))
        .collect();
    all.dedup();
    assert_eq!(all.len(), 120, "no task twice, none skipped");

    let filtered = format!("{list}?field=kind&value=x");
    let (_, only_x) = get(filtered).await;
    assert_eq!(ids(&only_x).len(), 40, "every match, across store pages");
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
    assert_eq!(cancelled.len(), 40);
    assert!(cancelled
        .iter()
        .all(|t| t["payload"].as_str().unwrap().contains(r#""kind":"x""#)));
}

#[tokio::test]
async fn a_schedule_is_edited_through_the_apis_checks_only_by_its_tenant_with_the_csrf_token() {
    let app = TestApp::start().await;
    let t = app.tenant("alpha").await;
    let other = app.tenant("beta").await;
    app.hello_code(&t, "hello").await;
    let made = json!({"schedules": [{"code_name": "hello", "payload": "{}", "run_every": 3600,
                                     "start_at": "2030-01-01T00:00:00Z"}]});
    let schedules = format!("/2/projects/{}/schedules", t.project);
    let sid = app.post(&t, &schedules, made).await.expect(200).json()["schedules"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let api = format!("{schedules}/{sid}");
    let before = app.get(&t, &api).await.expect(200).json();
    let session = login(&app, &t.token).await;
    let page = format!("/projects/{}/schedules/{sid}", t.project);

    let (status, shown) = session.call(&app, Method::GET, &page).await;
    assert_eq!(status, 200);
    assert!(shown.contains(r#"id="schedule-edit""#), "{shown}");
    assert!(
        shown.contains(r#"name="run_every" value="3600""#),
        "prefilled: {shown}"
    );
    assert!(shown.contains("2030-01-01 01:00:00 UTC"));

    // The preview runs the edit's checks and shows the fire times it would leave.
    let (status, preview) = session
        .call(
            &app,
            Method::GET,
            &format!("{page}/preview?run_every=7200&run_times=3"),
        )
        .await;
    assert_eq!(status, 200, "{preview}");
    let preview: Value = serde_json::from_str(&preview).unwrap();
    assert_eq!(
        preview["next"],
        json!([
            "2030-01-01 00:00:00 UTC",
            "2030-01-01 02:00:00 UTC",
            "2030-01-01 04:00:00 UTC"
        ])
    );

    // Bad input: the API's message, on the form and in the preview; nothing written.
    let put = Body::Json(json!({"run_every": 10}));
    let api_msg = app
        .call(Method::PUT, &api, Some(&t.token), put)
        .await
        .expect(400)
        .msg();
    assert!(api_msg.contains("run_every"), "{api_msg}");
    let bad = [("csrf", session.csrf.as_str()), ("run_every", "10")];
    let (status, refused) = session.send(&app, Method::POST, &page, &bad).await;
    assert_eq!(status, 400);
    assert!(refused.contains(&escape(&api_msg)), "{refused}");
    assert!(
        refused.contains(r#"name="run_every" value="10""#),
        "the form as typed"
    );
    let (status, preview) = session
        .call(&app, Method::GET, &format!("{page}/preview?run_every=10"))
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        serde_json::from_str::<Value>(&preview).unwrap()["msg"],
        api_msg
    );
    let both = [
        ("csrf", session.csrf.as_str()),
        ("cron", "0 9 * * *"),
        ("run_every", "7200"),
    ];
    let (status, refused) = session.send(&app, Method::POST, &page, &both).await;
    assert_eq!(status, 400);
    assert!(
        refused.contains("give run_every or cron, not both"),
        "{refused}"
    );

    // Without the CSRF token, or with another's, nothing changes.
    let edit = |csrf: &'static str| [("csrf", csrf), ("run_every", "7200")];
    assert_eq!(
        session.send(&app, Method::POST, &page, &edit("")).await.0,
        403
    );
    assert_eq!(
        session.send(&app, Method::POST, &page, &edit("00")).await.0,
        403
    );
    // Another tenant's session, by the victim's project or its own: "Not found".
    let intruder = login(&app, &other.token).await;
    let own = format!("/projects/{}/schedules/{sid}", other.project);
    for path in [&page, &own] {
        let form = [("csrf", intruder.csrf.as_str()), ("run_every", "7200")];
        assert_eq!(intruder.send(&app, Method::POST, path, &form).await.0, 404);
        let (status, _) = intruder
            .call(&app, Method::GET, &format!("{path}/preview?run_every=7200"))
            .await;
        assert_eq!(status, 404);
    }
    assert_eq!(app.get(&t, &api).await.expect(200).json(), before);

    // Saved: the API shows the change, the page the new next fire times.
    let form = [
        ("csrf", session.csrf.as_str()),
        ("run_every", "7200"),
        ("label", "nightly"),
        ("payload", "{}"),
    ];
    assert_eq!(session.send(&app, Method::POST, &page, &form).await.0, 303);
    let after = app.get(&t, &api).await.expect(200).json();
    assert_eq!(after["run_every"], 7200);
    assert_eq!(after["label"], "nightly");
    assert_eq!(after["payload"], before["payload"], "unchanged fields stay");
    let (_, shown) = session.call(&app, Method::GET, &page).await;
    assert!(shown.contains("2030-01-01 02:00:00 UTC"), "{shown}");
    assert!(!shown.contains("2030-01-01 01:00:00 UTC"));

    // How it repeats changes too: a cron typed over run_every replaces it, in its zone.
    let form = [
        ("csrf", session.csrf.as_str()),
        ("cron", "0 9 * * *"),
        ("timezone", "Europe/Paris"),
        ("run_every", ""),
    ];
    assert_eq!(session.send(&app, Method::POST, &page, &form).await.0, 303);
    let after = app.get(&t, &api).await.expect(200).json();
    assert_eq!(
        (&after["cron"], &after["timezone"], &after["run_every"]),
        (&json!("0 9 * * *"), &json!("Europe/Paris"), &json!(0)),
        "{after}"
    );
    let (_, shown) = session.call(&app, Method::GET, &page).await;
    assert!(
        shown.contains("2030-01-01 08:00:00 UTC"),
        "9:00 in Paris: {shown}"
    );
    assert!(shown.contains("2030-01-02 08:00:00 UTC"), "{shown}");
}

#[tokio::test]
async fn a_code_is_uploaded_from_the_dashboard_through_the_apis_checks_only_by_its_tenant() {
    let app = TestApp::start().await;
    let t = app.tenant("alpha").await;
    let other = app.tenant("beta").await;
    let code = app.hello_code(&t, "hello").await;
    let session = login(&app, &t.token).await;
    let upload = format!("/projects/{}/codes/{code}/upload", t.project);
    let zip = zip_of(&[("src/main.py", b"print('v2')\n")]);
    let counts = app.counts().await;

    // Without the CSRF token, or with another's, nothing is stored.
    for csrf in ["", "00"] {
        let fields = [("csrf", csrf), ("file_name", "src/main.py")];
        let (status, _) = session.upload(&app, &upload, &fields, Some(&zip)).await;
        assert_eq!(status, 403);
    }
    // Another tenant's session, by the victim's project or its own: "Not found".
    let intruder = login(&app, &other.token).await;
    let own = format!("/projects/{}/codes/{code}/upload", other.project);
    for path in [&upload, &own] {
        let fields = [
            ("csrf", intruder.csrf.as_str()),
            ("file_name", "src/main.py"),
        ];
        let (status, _) = intruder.upload(&app, path, &fields, Some(&zip)).await;
        assert_eq!(status, 404, "{path}");
    }
    assert_eq!(app.counts().await, counts);

    // Bad input: the API's message, with its hint; nothing stored.
    let data = json!({"name": "hello", "file_name": "main.py"});
    let api_msg = app.upload(&t, data, Some(&zip)).await.expect(400).msg();
    assert!(
        api_msg.contains(r#"did you mean "src/main.py""#),
        "{api_msg}"
    );
    let fields = [("csrf", session.csrf.as_str()), ("file_name", "main.py")];
    let (status, refused) = session.upload(&app, &upload, &fields, Some(&zip)).await;
    assert_eq!(status, 400);
    assert!(refused.contains(&escape(&api_msg)), "{refused}");
    assert!(refused.contains(r#"value="main.py""#), "the form as typed");
    let fields = [("csrf", session.csrf.as_str()), ("retries", "many")];
    let (status, refused) = session.upload(&app, &upload, &fields, None).await;
    assert_eq!(status, 400);
    assert!(refused.contains("retries must be a number"), "{refused}");
    assert_eq!(app.counts().await, counts);

    // Revision 2: the new zip and file; the form came with revision 1's runtime filled in.
    let code_page = format!("/projects/{}/codes/{code}", t.project);
    let (_, page) = session.call(&app, Method::GET, &code_page).await;
    assert!(page.contains(r#"name="runtime" value="python""#), "{page}");
    let fields = [
        ("csrf", session.csrf.as_str()),
        ("file_name", "src/main.py"),
        ("runtime", "python"),
        ("retries", ""),
    ];
    assert_eq!(
        session.upload(&app, &upload, &fields, Some(&zip)).await.0,
        303
    );
    let revisions = format!("/2/projects/{}/codes/{code}/revisions", t.project);
    let revisions = app.get(&t, &revisions).await.expect(200).json();
    let latest = &revisions["revisions"][0];
    assert_eq!(latest["rev"], 2);
    assert_eq!(latest["file_name"], "src/main.py");
    assert_eq!(latest["runtime"], "python");
    let (_, page) = session.call(&app, Method::GET, &code_page).await;
    assert!(page.contains("python src/main.py"), "{page}");

    // A new code, from the codes page.
    let new = format!("/projects/{}/codes", t.project);
    let fields = [
        ("csrf", session.csrf.as_str()),
        ("name", "fresh"),
        ("runtime", "python"),
        ("file_name", "src/main.py"),
    ];
    assert_eq!(session.upload(&app, &new, &fields, Some(&zip)).await.0, 303);
    let codes = app
        .get(&t, &format!("/2/projects/{}/codes", t.project))
        .await
        .expect(200)
        .json();
    assert!(codes["codes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["name"] == "fresh" && c["rev"] == 1));
}

#[tokio::test]
async fn a_dashboard_upload_has_the_apis_size_limit() {
    let config = ApiConfig {
        max_upload_bytes: 64 * 1024,
        ..ApiConfig::default()
    };
    let app = TestApp::start_with(config).await;
    let t = app.tenant("alpha").await;
    let code = app.hello_code(&t, "hello").await;
    let session = login(&app, &t.token).await;
    let counts = app.counts().await;
    let big = vec![7u8; 100 * 1024];
    let upload = format!("/projects/{}/codes/{code}/upload", t.project);
    let fields = [("csrf", session.csrf.as_str()), ("file_name", "hello.py")];
    let (status, _) = session.upload(&app, &upload, &fields, Some(&big)).await;
    assert_eq!(status, 413);
    assert_eq!(app.counts().await, counts);
}
