//! `ferrum queue --jsonl FILE`: many tasks from a JSON-lines file, sent in requests of at
//! most [`PER_REQUEST`] tasks (and about [`REQUEST_BYTES`] of JSON, under the API's request
//! limit). Every line is parsed before anything is sent, so a typo queues nothing; a request
//! the API refuses stops the run, and the error says which lines were queued and which not.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use anyhow::{anyhow, bail, Context};
use serde_json::{json, Map, Value};

use super::client::Api;
use super::output::{self, Format};
use super::tasks::QueueArgs;

/// Tasks per request.
const PER_REQUEST: usize = 100;
/// A request is sent once its JSON reaches this size (payloads are at most 64 KiB each).
const REQUEST_BYTES: usize = 512 * 1024;

pub async fn queue_lines(
    api: &Api,
    args: &QueueArgs,
    file: &Path,
    format: Format,
) -> anyhow::Result<()> {
    let tasks = read_tasks(file, args)?;
    if tasks.is_empty() {
        bail!("{} holds no tasks", file.display());
    }
    let path = api.project_path("tasks")?;
    let mut ids: Vec<String> = Vec::with_capacity(tasks.len());
    for (first, batch) in batches(&tasks) {
        let body: Vec<&Value> = batch.iter().map(|(_, t)| t).collect();
        let answer = api
            .post_json(&path, &json!({ "tasks": body }))
            .await
            .map_err(|e| {
                let last = batch.last().map(|(n, _)| *n).unwrap_or(first);
                anyhow!(
                    "lines {first}–{last} were not queued ({e:#}); {} tasks before them were",
                    ids.len()
                )
            })?;
        for t in answer["tasks"].as_array().into_iter().flatten() {
            let id = output::field(t, "id");
            if !format.is_json() {
                println!("{id}");
            }
            ids.push(id);
        }
    }
    if format.is_json() {
        output::json(&json!({ "ids": ids }));
    }
    Ok(())
}

/// Every non-blank line as a task object, with its line number (from 1).
fn read_tasks(file: &Path, args: &QueueArgs) -> anyhow::Result<Vec<(usize, Value)>> {
    let reader: Box<dyn Read> = if file == Path::new("-") {
        Box::new(std::io::stdin())
    } else {
        Box::new(
            std::fs::File::open(file).with_context(|| format!("cannot read {}", file.display()))?,
        )
    };
    let mut tasks = Vec::new();
    for (i, line) in BufReader::new(reader).lines().enumerate() {
        let n = i + 1;
        let line = line.with_context(|| format!("reading {}", file.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let value: Value = serde_json::from_str(&line)
            .with_context(|| format!("{} line {n} is not JSON", file.display()))?;
        tasks.push((
            n,
            task_of(value, args).map_err(|e| anyhow!("line {n}: {e}"))?,
        ));
    }
    Ok(tasks)
}

/// One line as the API's task object. A line with `code_name` is a task (a non-string
/// `payload` is sent as its JSON text); any other line is the payload of a task of CODE. The
/// command's options fill in what a line leaves out.
fn task_of(line: Value, args: &QueueArgs) -> anyhow::Result<Value> {
    let mut task = match line {
        Value::Object(obj) if obj.contains_key("code_name") => obj,
        payload => {
            let mut obj = Map::new();
            obj.insert("payload".into(), payload);
            obj
        }
    };
    if !task.contains_key("code_name") {
        let code = args
            .code
            .as_ref()
            .context("the line names no code_name and the command no CODE")?;
        task.insert("code_name".into(), json!(code));
    }
    match task.get("payload") {
        None | Some(Value::Null) => {
            task.insert("payload".into(), json!("{}"));
        }
        Some(Value::String(_)) => {}
        Some(other) => {
            let text = other.to_string();
            task.insert("payload".into(), json!(text));
        }
    }
    let mut defaults = Map::new();
    args.options.insert_into(&mut defaults);
    if let Some(d) = args.delay.delay {
        defaults.insert("delay".into(), json!(d));
    }
    for (k, v) in defaults {
        task.entry(k).or_insert(v);
    }
    Ok(Value::Object(task))
}

/// The tasks cut into requests; each with the line number of its first task.
fn batches(tasks: &[(usize, Value)]) -> Vec<(usize, &[(usize, Value)])> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (i, (_, t)) in tasks.iter().enumerate() {
        let size = t.to_string().len();
        if i > start && (i - start >= PER_REQUEST || bytes + size > REQUEST_BYTES) {
            out.push((tasks[start].0, &tasks[start..i]));
            start = i;
            bytes = 0;
        }
        bytes += size;
    }
    out.push((tasks[start].0, &tasks[start..]));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_hold_at_most_a_hundred_tasks_in_order() {
        let tasks: Vec<(usize, Value)> = (1..=250).map(|n| (n, json!({"n": n}))).collect();
        let b = batches(&tasks);
        let sizes: Vec<usize> = b.iter().map(|(_, t)| t.len()).collect();
        assert_eq!(sizes, vec![100, 100, 50]);
        assert_eq!(b[1].0, 101);
    }
}
