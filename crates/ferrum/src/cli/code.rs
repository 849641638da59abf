//! Code packages: `ferrum upload`, `ferrum list codes`, `ferrum webhook` (Ferrum's per-code
//! webhook URLs).

use std::io::Write;
use std::time::Instant;

use anyhow::{bail, Context};
use futures_util::stream;
use serde_json::{json, Map, Value};

use super::client::Api;
use super::output::{self, Format};
use super::package::{zip_dir, CodeArgs};
use super::tasks::TaskOptions;

/// Uploads smaller than this go without a progress line.
const PROGRESS_FROM: usize = 1 << 20;
const CHUNK: usize = 64 * 1024;

#[derive(Debug, clap::Args)]
pub struct UploadArgs {
    /// The code's name (tasks are queued by it).
    pub name: String,
    #[command(flatten)]
    pub code: CodeArgs,
    /// Most tasks of this code running at once.
    #[arg(long)]
    pub max_concurrency: Option<i32>,
    /// Automatic retries of a failed task (0–10).
    #[arg(long)]
    pub retries: Option<i32>,
    /// Seconds before an automatic retry.
    #[arg(long)]
    pub retries_delay: Option<i32>,
    /// Priority (0–2) of tasks queued without one.
    #[arg(long)]
    pub default_priority: Option<i32>,
}

pub async fn upload(api: &Api, args: UploadArgs, format: Format) -> anyhow::Result<()> {
    args.code.check()?;
    let mut data = args.code.upload_fields()?;
    data.insert("name".into(), json!(args.name));
    for (key, value) in [
        ("max_concurrency", args.max_concurrency),
        ("retries", args.retries),
        ("retries_delay", args.retries_delay),
        ("default_priority", args.default_priority),
    ] {
        if let Some(v) = value {
            data.insert(key.into(), json!(v));
        }
    }
    let zip = zip_dir(&args.code.dir)?;
    let form = reqwest::multipart::Form::new()
        .text("data", Value::Object(data).to_string())
        .part("file", zip_part(zip)?);
    let path = api.project_path("codes")?;
    let answer: Value = api
        .send(api.post(&path).multipart(form))
        .await?
        .json()
        .await
        .context("the API answered with malformed JSON")?;
    if format.is_json() {
        output::json(&answer);
    } else {
        println!(
            "Uploaded {} (code {}, revision {})",
            args.name,
            output::field(&answer, "id"),
            output::field(&answer, "rev")
        );
    }
    Ok(())
}

/// The zip as a streamed multipart part; large ones report progress on stderr as they go.
fn zip_part(zip: Vec<u8>) -> anyhow::Result<reqwest::multipart::Part> {
    let total = zip.len();
    let started = Instant::now();
    let chunks: Vec<bytes::Bytes> = bytes::Bytes::from(zip)
        .chunks(CHUNK)
        .map(bytes::Bytes::copy_from_slice)
        .collect();
    let mut sent = 0usize;
    let body = stream::iter(chunks.into_iter().map(move |chunk| {
        sent += chunk.len();
        if total >= PROGRESS_FROM {
            let mb = |n: usize| n as f64 / 1e6;
            let mut err = std::io::stderr();
            let _ = write!(
                err,
                "\ruploading {:.1}/{:.1} MB ({}%)",
                mb(sent),
                mb(total),
                sent * 100 / total
            );
            if sent == total {
                let _ = writeln!(err, " in {:.1}s", started.elapsed().as_secs_f64());
            }
        }
        Ok::<_, std::io::Error>(chunk)
    }));
    Ok(
        reqwest::multipart::Part::stream_with_length(
            reqwest::Body::wrap_stream(body),
            total as u64,
        )
        .file_name("code.zip")
        .mime_str("application/zip")?,
    )
}

pub async fn list(api: &Api, format: Format) -> anyhow::Result<()> {
    let answer = api
        .get_json(&api.project_path("codes?per_page=100")?)
        .await?;
    output::list(
        format,
        &answer,
        "codes",
        &[
            "id",
            "name",
            "rev",
            "runtime",
            "stack",
            "image",
            "latest_change",
        ],
    );
    Ok(())
}

/// The code called `name`, looked up page by page.
pub async fn find_by_name(api: &Api, name: &str) -> anyhow::Result<Value> {
    for page in 0.. {
        let path = api.project_path(&format!("codes?per_page=100&page={page}"))?;
        let answer = api.get_json(&path).await?;
        let codes = answer
            .get("codes")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if let Some(code) = codes.iter().find(|c| c["name"] == name) {
            return Ok(code.clone());
        }
        if codes.len() < 100 {
            break;
        }
    }
    bail!("no code named {name:?} in this project (see `ferrum list codes`)")
}

#[derive(Debug, clap::Args)]
pub struct WebhookArgs {
    /// The code's name.
    pub code: String,
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
    let code = find_by_name(api, &args.code).await?;
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
