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

/// A field as a person reads it in a table: `-` for what is unset (null, absent, and the
/// `0001-01-01T00:00:00Z` IronWorker clients need for an unset time), `duration` with a unit.
pub fn cell(obj: &Value, key: &str) -> String {
    let text = field(obj, key);
    if text.is_empty() || text.starts_with("0001-01-01") {
        return "-".to_owned();
    }
    if key == "duration" {
        // A task that has not ended has no duration yet (the API says 0).
        if cell(obj, "end_time") == "-" {
            return "-".to_owned();
        }
        if let Some(ms) = obj.get(key).and_then(Value::as_i64) {
            return duration(ms);
        }
    }
    text
}

/// Milliseconds as `850ms`, `12.3s`, `4m05s` or `2h03m`.
pub fn duration(ms: i64) -> String {
    match ms {
        ..=999 => format!("{ms}ms"),
        1_000..=59_999 => format!("{:.1}s", ms as f64 / 1000.0),
        60_000..=3_599_999 => format!("{}m{:02}s", ms / 60_000, ms % 60_000 / 1000),
        _ => format!("{}h{:02}m", ms / 3_600_000, ms % 3_600_000 / 60_000),
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
        .map(|k| vec![(*k).to_owned(), cell(obj, k)])
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
        .map(|item| columns.iter().map(|c| cell(item, c)).collect())
        .collect();
    table(columns, &rows);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unset_times_and_durations_read_well() {
        let t = json!({"start_time": "0001-01-01T00:00:00Z", "end_time": null, "duration": 0});
        assert_eq!(cell(&t, "start_time"), "-");
        assert_eq!(cell(&t, "end_time"), "-");
        assert_eq!(cell(&t, "label"), "-");
        assert_eq!(cell(&t, "duration"), "-");
        let t = json!({"end_time": "2026-01-01T00:00:00Z", "duration": 1234});
        assert_eq!(cell(&t, "duration"), "1.2s");
        assert_eq!(duration(850), "850ms");
        assert_eq!(duration(245_000), "4m05s");
        assert_eq!(duration(7_380_000), "2h03m");
    }
}
