//! Code packages: `ferrum upload`, `ferrum list codes`, `ferrum code delete|pause|resume`.

use anyhow::{bail, Context};
use futures_util::stream;
use serde_json::{json, Value};

use super::client::Api;
use super::output::{self, Format};
use super::package::{zip_dir, CodeArgs};
use super::progress;

/// Uploads smaller than this go without a progress bar.
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

/// The zip as a streamed multipart part, with a progress bar on stderr while it goes (only
/// when stderr is a terminal: a redirected stderr gets no `\r` updates).
fn zip_part(zip: Vec<u8>) -> anyhow::Result<reqwest::multipart::Part> {
    let total = zip.len();
    let bar = progress::bar("uploading", total as u64, total >= PROGRESS_FROM);
    let chunks: Vec<bytes::Bytes> = bytes::Bytes::from(zip)
        .chunks(CHUNK)
        .map(bytes::Bytes::copy_from_slice)
        .collect();
    let body = stream::iter(chunks.into_iter().map(move |chunk| {
        bar.inc(chunk.len() as u64);
        if bar.position() >= total as u64 {
            bar.finish();
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

/// `ferrum code …`: what a tenant does to a code after uploading it.
#[derive(Debug, clap::Subcommand)]
pub enum CodeCommand {
    /// Deletes a code: its unfinished tasks and its schedules are cancelled, its zips freed.
    Delete { name: String },
    /// Holds the code's queued tasks and schedules (running tasks go on).
    Pause { name: String },
    /// Releases a paused code's queued tasks and schedules.
    Resume { name: String },
}

pub async fn command(api: &Api, command: CodeCommand, format: Format) -> anyhow::Result<()> {
    let (name, verb) = match &command {
        CodeCommand::Delete { name } => (name, "delete"),
        CodeCommand::Pause { name } => (name, "pause"),
        CodeCommand::Resume { name } => (name, "resume"),
    };
    let code = find_by_name(api, name).await?;
    let id = output::field(&code, "id");
    let answer = match command {
        CodeCommand::Delete { .. } => {
            let path = api.project_path(&format!("codes/{id}"))?;
            let resp = api.send(api.delete(&path)).await?;
            resp.json::<Value>()
                .await
                .context("the API answered with malformed JSON")?
        }
        CodeCommand::Pause { .. } | CodeCommand::Resume { .. } => {
            let path = api.project_path(&format!("codes/{id}/{verb}_task_queue"))?;
            api.post_json(&path, &json!({})).await?
        }
    };
    if format.is_json() {
        output::json(&json!({ "id": id, "name": name, "msg": answer["msg"] }));
    } else {
        let done = match verb {
            "delete" => "deleted; its unfinished tasks and schedules are cancelled",
            "pause" => "paused; its queued tasks wait until `ferrum code resume`",
            _ => "resumed",
        };
        println!("Code {name} {done} ({})", output::field(&answer, "msg"));
    }
    Ok(())
}
