//! `ferrum webhook`: Ferrum's per-code webhook URLs. `ferrum webhook CODE` mints a URL (each
//! call a new one; the secret in it is shown once), `list` shows a code's webhooks and
//! `revoke` deletes them, which stops their URLs working.

use anyhow::bail;
use serde_json::{json, Map, Value};

use super::client::Api;
use super::code::find_by_name;
use super::output::{self, Format};
use super::tasks::TaskOptions;

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct WebhookCommand {
    #[command(subcommand)]
    pub action: Option<WebhookAction>,
    #[command(flatten)]
    pub create: WebhookArgs,
}

#[derive(Debug, clap::Subcommand)]
pub enum WebhookAction {
    /// Lists a code's webhooks (their URLs' secrets are not shown again).
    List { code: String },
    /// Deletes webhooks of a code: their URLs stop working at once.
    Revoke {
        code: String,
        /// Webhook ids (see `ferrum webhook list CODE`).
        #[arg(required_unless_present = "all")]
        ids: Vec<String>,
        /// Every webhook of the code.
        #[arg(long, conflicts_with = "ids")]
        all: bool,
    },
}

#[derive(Debug, clap::Args)]
pub struct WebhookArgs {
    /// The code's name.
    #[arg(required = true)]
    pub code: Option<String>,
    /// Check the sender's signature: slack, github or hmac (needs --secret).
    #[arg(long, value_parser = ["slack", "github", "hmac"])]
    pub signature: Option<String>,
    /// The signing secret shared with the sender.
    #[arg(long)]
    pub secret: Option<String>,
    /// Seconds the sender's request waits for the task, answering with its output (0: answer
    /// at once with the task id).
    #[arg(long)]
    pub sync_timeout: Option<i32>,
    #[command(flatten)]
    pub options: TaskOptions,
    /// Seconds each queued task waits before it may run.
    #[arg(long)]
    pub delay: Option<i32>,
}

/// Creates a webhook for the code and prints its URL: a third party POSTs to it, without a
/// token, and the request body becomes a task's payload. The URL holds a secret and cannot be
/// shown again.
pub async fn webhook(api: &Api, args: WebhookArgs, format: Format) -> anyhow::Result<()> {
    let Some(name) = &args.code else {
        bail!("name the code: ferrum webhook CODE");
    };
    let code = find_by_name(api, name).await?;
    let code_id = output::field(&code, "id");
    let mut body = Map::new();
    args.options.insert_into(&mut body);
    let fields = [
        ("signature", args.signature.map(Value::from)),
        ("secret", args.secret.map(Value::from)),
        ("sync_timeout", args.sync_timeout.map(Value::from)),
        ("delay", args.delay.map(Value::from)),
    ];
    for (k, v) in fields {
        if let Some(v) = v {
            body.insert(k.into(), v);
        }
    }
    let path = api.project_path(&format!("codes/{code_id}/webhooks"))?;
    let answer = api.post_json(&path, &Value::Object(body)).await?;
    if format.is_json() {
        output::json(&answer);
    } else {
        println!("{}", output::field(&answer, "url"));
    }
    Ok(())
}

pub async fn command(api: &Api, cmd: WebhookCommand, format: Format) -> anyhow::Result<()> {
    match cmd.action {
        None => webhook(api, cmd.create, format).await,
        Some(WebhookAction::List { code }) => list(api, &code, format).await,
        Some(WebhookAction::Revoke { code, ids, all }) => {
            revoke(api, &code, ids, all, format).await
        }
    }
}

async fn hooks_of(api: &Api, code_id: &str) -> anyhow::Result<Value> {
    api.get_json(&api.project_path(&format!("codes/{code_id}/webhooks"))?)
        .await
}

async fn list(api: &Api, code: &str, format: Format) -> anyhow::Result<()> {
    let code = find_by_name(api, code).await?;
    let answer = hooks_of(api, &output::field(&code, "id")).await?;
    output::list(
        format,
        &answer,
        "webhooks",
        &[
            "id",
            "created_at",
            "signature",
            "sync_timeout",
            "priority",
            "cluster",
            "label",
        ],
    );
    Ok(())
}

async fn revoke(
    api: &Api,
    code: &str,
    mut ids: Vec<String>,
    all: bool,
    format: Format,
) -> anyhow::Result<()> {
    let code = find_by_name(api, code).await?;
    let code_id = output::field(&code, "id");
    if all {
        let answer = hooks_of(api, &code_id).await?;
        ids = answer["webhooks"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|h| output::field(h, "id"))
            .collect();
    }
    for id in &ids {
        let path = api.project_path(&format!("codes/{code_id}/webhooks/{id}"))?;
        api.send(api.delete(&path)).await?;
        if !format.is_json() {
            println!("Revoked webhook {id}");
        }
    }
    if format.is_json() {
        output::json(&json!({ "revoked": ids }));
    } else if ids.is_empty() {
        println!("No webhooks to revoke");
    }
    Ok(())
}
