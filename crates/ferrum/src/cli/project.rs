//! `ferrum configure` and `ferrum project create|list`.

use serde_json::{json, Value};

use super::client::Api;
use super::config::{self, Settings};
use super::output::{self, Format};

#[derive(Debug, clap::Args)]
pub struct ConfigureArgs {
    /// The API: 127.0.0.1:8080, a host name, or a URL such as https://api.example.com.
    #[arg(long)]
    pub host: Option<String>,
    /// Your token (for `ferrum dev`, the admin token it printed).
    #[arg(long)]
    pub token: Option<String>,
    /// The project commands act on.
    #[arg(long, conflicts_with = "project")]
    pub project_id: Option<String>,
    /// The project commands act on, by name (looked up with the token).
    #[arg(long)]
    pub project: Option<String>,
}

/// Saves the given settings to `~/.iron.json`, then shows what commands will use (which may
/// differ: `IRON_*` variables and `./iron.json` override the home file).
pub async fn configure(args: ConfigureArgs, format: Format) -> anyhow::Result<()> {
    let mut updates = Vec::new();
    if let Some(host) = &args.host {
        updates.extend(config::host_settings(host)?);
    }
    if let Some(t) = args.token {
        updates.push(("token", Value::String(t)));
    }
    if let Some(p) = args.project_id {
        updates.push(("project_id", Value::String(p)));
    }
    let mut path = if updates.is_empty() {
        config::home_file()?
    } else {
        config::write_home(updates)?
    };
    if let Some(name) = &args.project {
        let id = project_named(&Api::new(&config::load()?)?, name).await?;
        path = config::write_home(vec![("project_id", Value::String(id))])?;
    }
    show(&config::load()?, &path.display().to_string(), format);
    Ok(())
}

fn show(s: &Settings, file: &str, format: Format) {
    let token = s.token.as_deref().map(|t| {
        let tail: String = t
            .chars()
            .skip(t.chars().count().saturating_sub(4))
            .collect();
        format!("…{tail}")
    });
    let shown = json!({
        "file": file,
        "api": s.base_url(),
        "project_id": s.project_id,
        "token": token,
    });
    if format.is_json() {
        output::json(&shown);
    } else {
        output::record(&shown, &["file", "api", "project_id", "token"]);
    }
}

/// The id of the project called `name` (or with that id) among those the token may use.
async fn project_named(api: &Api, name: &str) -> anyhow::Result<String> {
    let answer = api.get_json("/2/projects").await?;
    let projects = answer["projects"].as_array().cloned().unwrap_or_default();
    projects
        .iter()
        .find(|p| p["name"] == name || p["id"] == name)
        .map(|p| output::field(p, "id"))
        .ok_or_else(|| {
            let names: Vec<String> = projects.iter().map(|p| output::field(p, "name")).collect();
            anyhow::anyhow!(
                "no project {name:?} for this token (it may use: {})",
                if names.is_empty() {
                    "none".to_owned()
                } else {
                    names.join(", ")
                }
            )
        })
}

pub async fn create(api: &Api, name: &str, format: Format) -> anyhow::Result<()> {
    let answer = api
        .post_json("/2/projects", &json!({ "name": name }))
        .await?;
    if format.is_json() {
        output::json(&answer);
    } else {
        println!("{}", output::field(&answer, "id"));
    }
    Ok(())
}

pub async fn list(api: &Api, format: Format) -> anyhow::Result<()> {
    let answer = api.get_json("/2/projects").await?;
    output::list(format, &answer, "projects", &["id", "name"]);
    Ok(())
}
