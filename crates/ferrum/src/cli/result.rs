//! `ferrum result ID`: a task's result (what it wrote to `RESULT_FILE`), as the bytes it
//! returned; with `--output json`, parsed when it is JSON.

use std::io::Write;

use anyhow::bail;
use serde_json::{json, Value};

use super::client::Api;
use super::output::{self, Format};

pub async fn result(api: &Api, id: &str, format: Format) -> anyhow::Result<()> {
    let path = api.project_path(&format!("tasks/{id}/result"))?;
    let Some(data) = api.get_bytes_if_any(&path).await? else {
        let task = api
            .get_json(&api.project_path(&format!("tasks/{id}"))?)
            .await?;
        let status = output::field(&task, "status");
        bail!("task {id} ({status}) has no result");
    };
    print(id, &data, format)
}

/// Prints a result: its bytes as they are, or with `--output json` as `{"id", "result"}`
/// (parsed when it is JSON, else the text).
pub fn print(id: &str, data: &[u8], format: Format) -> anyhow::Result<()> {
    if format.is_json() {
        let result = serde_json::from_slice::<Value>(data)
            .unwrap_or_else(|_| String::from_utf8_lossy(data).into_owned().into());
        output::json(&json!({ "id": id, "result": result }));
    } else {
        let mut out = std::io::stdout();
        out.write_all(data)?;
        out.flush()?;
    }
    Ok(())
}
