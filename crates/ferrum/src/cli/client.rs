//! The CLI's HTTP client for the tenant API (`/2/…`). Every failure becomes one sentence that
//! says what went wrong and what to do: no server, a rejected token, an unknown object.

use anyhow::{anyhow, bail, Context};
use reqwest::{RequestBuilder, Response, StatusCode};
use serde_json::Value;

use super::config::Settings;

pub struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
    project: Option<String>,
}

impl Api {
    /// A client for the configured API; fails when no token is configured.
    pub fn new(settings: &Settings) -> anyhow::Result<Self> {
        let token = settings.token.clone().ok_or_else(|| {
            anyhow!(
                "no token configured: run `ferrum configure --token TOKEN` (the admin token \
                 `ferrum dev` printed) or set IRON_TOKEN"
            )
        })?;
        Ok(Api {
            http: reqwest::Client::new(),
            base: settings.base_url(),
            token,
            project: settings.project_id.clone(),
        })
    }

    /// The configured project's id.
    pub fn project(&self) -> anyhow::Result<&str> {
        self.project.as_deref().ok_or_else(|| {
            anyhow!(
                "no project configured: run `ferrum configure --project-id ID` (see `ferrum \
                 project list`, or create one with `ferrum project create NAME`) or set \
                 IRON_PROJECT_ID"
            )
        })
    }

    /// `/2/projects/{project}/{rest}`.
    pub fn project_path(&self, rest: &str) -> anyhow::Result<String> {
        Ok(format!("/2/projects/{}/{rest}", self.project()?))
    }

    pub fn get(&self, path: &str) -> RequestBuilder {
        self.http.get(format!("{}{path}", self.base))
    }

    pub fn post(&self, path: &str) -> RequestBuilder {
        self.http.post(format!("{}{path}", self.base))
    }

    pub fn delete(&self, path: &str) -> RequestBuilder {
        self.http.delete(format!("{}{path}", self.base))
    }

    pub async fn get_json(&self, path: &str) -> anyhow::Result<Value> {
        json(self.send(self.get(path)).await?).await
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        let req = self
            .post(path)
            .header("Content-Type", "application/json")
            .body(body.to_string());
        json(self.send(req).await?).await
    }

    pub async fn put_json(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        let req = self
            .http
            .put(format!("{}{path}", self.base))
            .header("Content-Type", "application/json")
            .body(body.to_string());
        json(self.send(req).await?).await
    }

    /// A raw resource (a log); `None` when the API answers 404 (not there yet).
    pub async fn get_bytes_if_any(&self, path: &str) -> anyhow::Result<Option<Vec<u8>>> {
        let resp = self.authorized(self.get(path)).await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        Ok(Some(check(resp).await?.bytes().await?.to_vec()))
    }

    /// Sends with the token and turns every failure into a clear error.
    pub async fn send(&self, req: RequestBuilder) -> anyhow::Result<Response> {
        check(self.authorized(req).await?).await
    }

    async fn authorized(&self, req: RequestBuilder) -> anyhow::Result<Response> {
        req.header("Authorization", format!("OAuth {}", self.token))
            .header("Accept", "application/json")
            .send()
            .await
            .map_err(|e| {
                if e.is_connect() || e.is_timeout() {
                    anyhow!(
                        "cannot reach the Ferrum API at {}: is `ferrum dev` (or `ferrum serve`) \
                         running there? Change the address with `ferrum configure --host URL`",
                        self.base
                    )
                } else {
                    anyhow!("request to {} failed: {e}", self.base)
                }
            })
    }
}

/// Passes a 2xx answer through; turns any other into an error carrying the API's `msg`.
async fn check(resp: Response) -> anyhow::Result<Response> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let body = resp.text().await.unwrap_or_default();
    let msg = serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|v| v.get("msg").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_else(|| body.trim().chars().take(200).collect());
    let code = status.as_u16();
    match status {
        StatusCode::UNAUTHORIZED => bail!(
            "the API rejected the token ({msg}, HTTP {code}): check `ferrum configure --token` \
             or IRON_TOKEN"
        ),
        StatusCode::NOT_FOUND if msg.to_ascii_lowercase().contains("project") => {
            bail!("{msg} (HTTP {code}): check `ferrum configure --project-id` or IRON_PROJECT_ID")
        }
        _ => bail!("{msg} (HTTP {code})"),
    }
}

async fn json(resp: Response) -> anyhow::Result<Value> {
    resp.json()
        .await
        .context("the API answered with malformed JSON")
}
