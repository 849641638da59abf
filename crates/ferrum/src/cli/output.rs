//! How commands print: aligned tables for people by default, JSON with `--output json` for
//! scripts (the API's own objects, unchanged).

use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
}

impl Format {
    pub fn is_json(self) -> bool {
        self == Format::Json
    }
}

/// Prints JSON, pretty.
pub fn json(value: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
    );
}

/// A field of an API object as table text: strings bare, nothing for null, JSON otherwise.
pub fn field(obj: &Value, key: &str) -> String {
    match obj.get(key) {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
    }
}

/// Prints `rows` under `headers` with each column as wide as its widest cell.
pub fn table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(headers.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

/// Prints one object's chosen fields as `key  value` lines.
pub fn record(obj: &Value, keys: &[&str]) {
    let rows: Vec<Vec<String>> = keys
        .iter()
        .map(|k| vec![(*k).to_owned(), field(obj, k)])
        .collect();
    let width = keys.iter().map(|k| k.len()).max().unwrap_or(0);
    for row in rows {
        println!("{:<width$}  {}", row[0], row[1]);
    }
}

/// Prints the objects under `key` of a list answer.
pub fn list(format: Format, answer: &Value, key: &str, columns: &[&str]) {
    if format.is_json() {
        return json(answer);
    }
    let items = answer.get(key).and_then(Value::as_array);
    let rows: Vec<Vec<String>> = items
        .into_iter()
        .flatten()
        .map(|item| columns.iter().map(|c| field(item, c)).collect())
        .collect();
    table(columns, &rows);
}
