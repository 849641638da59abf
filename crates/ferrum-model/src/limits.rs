//! Limits from the IronWorker contract (§2, §3.3, §3.4) and Ferrum's bounds on every string and
//! map a route stores, in one place so that the API, the store, the runner, the OpenAPI document
//! and `docs/LIMITS.md` agree on them.
//!
//! Why every stored string is bounded: Ferrum is multi-tenant, and an unbounded value a tenant
//! stores ends up where other tenants pay for it (a `NOTIFY` every replica must send, the argv
//! and environment of a container, the rows every list reads). [`ALL`] is the table the docs
//! and the OpenAPI document are generated from; [`Limit::check`] is what validation applies.

use crate::ValidationError;

/// Largest task payload and code config, in bytes (contract §2).
pub const MAX_PAYLOAD_BYTES: usize = 64 * 1024;
/// Task timeout used when a task gives none, or 0 (contract §5.3).
pub const DEFAULT_TIMEOUT_SECS: i32 = 3600;
/// Longest timeout any plan allows (24 h, brief §1).
pub const MAX_TIMEOUT_SECS: i32 = 86_400;
/// Longest task delay (7 days, contract §3.3 T2).
pub const MAX_DELAY_SECS: i32 = 604_800;
/// Shortest schedule interval `ferrum serve` allows by default (contract §3.4 S2: 60 s); the
/// operator's setting is `ApiConfig::min_schedule_interval`.
pub const MIN_RUN_EVERY_SECS: i32 = 60;
/// Most automatic retries a code may ask for (contract §3.2 C2).
pub const MAX_RETRIES: i32 = 10;
/// Largest page a list endpoint returns (contract §2).
pub const MAX_PER_PAGE: u32 = 100;
/// Most tasks one runner may run at once (its registered `concurrency`, and so the `running`
/// its heartbeat reports): far above what one host runs, low enough to sum without care.
pub const MAX_RUNNER_CONCURRENCY: u32 = 1024;
/// Page size when the client gives none (contract §2).
pub const DEFAULT_PER_PAGE: u32 = 30;
/// The cluster a task runs on when it names none.
pub const DEFAULT_CLUSTER: &str = "default";
/// Smallest memory limit a code may ask for, in MiB: Docker refuses a container under 6 MB.
pub const MIN_MEMORY_MB: i32 = 6;
/// Smallest CPU quota a code may ask for: Docker refuses a container under 0.01 CPUs.
pub const MIN_CPUS: f64 = 0.01;
/// The smallest task disk in MiB: room for a small code and its files (and ext4's own
/// bookkeeping).
pub const MIN_DISK_MB: i32 = 16;

/// What a limit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Unicode characters of a string (what OpenAPI's `maxLength` counts).
    Chars,
    /// UTF-8 bytes of a string or body.
    Bytes,
    /// Entries of a map or list.
    Entries,
}

impl Unit {
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Chars => "characters",
            Unit::Bytes => "bytes",
            Unit::Entries => "entries",
        }
    }
}

/// Which characters a string may hold, beyond its length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Charset {
    /// Any text but NUL (which no database text column can hold).
    Text,
    /// Any text but control characters: names and labels show up in lists, logs and headers.
    Printable,
    /// `[A-Za-z0-9_.-]`: cluster names travel in `NOTIFY`s, runner settings and URLs.
    ClusterName,
    /// `[A-Za-z_][A-Za-z0-9_.-]*`: an environment variable name every shell and Docker accepts.
    EnvName,
}

impl Charset {
    /// The OpenAPI `pattern` of the charset.
    pub fn pattern(self, max: usize) -> String {
        match self {
            // ECMA-262 patterns, as JSON Schema reads them: no NUL; no Unicode control
            // character (`char::is_control`: U+0000–U+001F, U+007F–U+009F).
            Charset::Text => "^[^\\u0000]*$".to_owned(),
            Charset::Printable => "^[^\\u0000-\\u001f\\u007f-\\u009f]*$".to_owned(),
            // Empty means "the default cluster", so the pattern admits it.
            Charset::ClusterName => format!("^[A-Za-z0-9_.-]{{0,{max}}}$"),
            Charset::EnvName => format!("^[A-Za-z_][A-Za-z0-9_.-]{{0,{}}}$", max.saturating_sub(1)),
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Charset::Text => "no NUL",
            Charset::Printable => "no control characters",
            Charset::ClusterName => "letters, digits, `_`, `.`, `-`",
            Charset::EnvName => "a letter or `_`, then letters, digits, `_`, `.`, `-`",
        }
    }

    fn admits(self, value: &str) -> bool {
        let cluster = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
        match self {
            Charset::Text => !value.contains('\0'),
            Charset::Printable => !value.chars().any(char::is_control),
            Charset::ClusterName => value.chars().all(cluster),
            Charset::EnvName => {
                let mut chars = value.chars();
                chars
                    .next()
                    .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                    && chars.all(cluster)
            }
        }
    }
}

/// One bound: the field it applies to, where, and how much.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// The field's name in request bodies (and in the `msg` of a refusal).
    pub field: &'static str,
    /// Where the field is sent, for the docs table.
    pub used_in: &'static str,
    pub max: usize,
    pub unit: Unit,
    pub charset: Charset,
}

impl Limit {
    const fn new(
        field: &'static str,
        used_in: &'static str,
        max: usize,
        unit: Unit,
        charset: Charset,
    ) -> Self {
        Limit {
            field,
            used_in,
            max,
            unit,
            charset,
        }
    }

    /// Refuses `value` past the limit or outside the charset, naming the field and the limit.
    pub fn check(&self, value: &str) -> Result<(), ValidationError> {
        self.check_as(self.field, value)
    }

    /// [`Limit::check`] for a field the request names differently (an upload's `name` is a
    /// code name).
    pub fn check_as(&self, field: &str, value: &str) -> Result<(), ValidationError> {
        let size = match self.unit {
            Unit::Chars => value.chars().count(),
            Unit::Bytes | Unit::Entries => value.len(),
        };
        if size > self.max {
            return Err(ValidationError::Invalid(format!(
                "{field} is {size} {unit}; the limit is {max} {unit}",
                unit = self.unit.as_str(),
                max = self.max
            )));
        }
        if !self.charset.admits(value) {
            return Err(ValidationError::Invalid(format!(
                "{field} may hold only {}",
                self.charset.describe()
            )));
        }
        Ok(())
    }

    /// Refuses more than `max` entries.
    pub fn check_count(&self, count: usize) -> Result<(), ValidationError> {
        if count > self.max {
            return Err(ValidationError::Invalid(format!(
                "{} has {count} entries; the limit is {} entries",
                self.field, self.max
            )));
        }
        Ok(())
    }
}

use Charset::{ClusterName, EnvName, Printable, Text};
use Unit::{Bytes, Chars, Entries};

pub const CODE_NAME: Limit = Limit::new(
    "code_name",
    "tasks, schedules, webhooks, code uploads (`name`)",
    255,
    Chars,
    Printable,
);
pub const PAYLOAD: Limit = Limit::new(
    "payload",
    "tasks, schedules, webhook deliveries (413 past it)",
    MAX_PAYLOAD_BYTES,
    Bytes,
    Text,
);
pub const CLUSTER: Limit = Limit::new(
    "cluster",
    "tasks, schedules, webhooks, runner tokens",
    64,
    Chars,
    ClusterName,
);
pub const LABEL: Limit = Limit::new("label", "tasks, schedules, webhooks", 255, Chars, Printable);
pub const CRON: Limit = Limit::new("cron", "schedules", 255, Chars, Printable);
pub const TIMEZONE: Limit = Limit::new("timezone", "schedules", 64, Chars, Printable);
pub const MISFIRE: Limit = Limit::new("misfire", "schedules", 32, Chars, Printable);
pub const RUNTIME: Limit = Limit::new("runtime", "code uploads", 64, Chars, Printable);
pub const STACK: Limit = Limit::new("stack", "code uploads", 64, Chars, Printable);
pub const FILE_NAME: Limit = Limit::new("file_name", "code uploads", 255, Chars, Printable);
pub const IMAGE: Limit = Limit::new("image", "code uploads", 512, Chars, Printable);
pub const COMMAND: Limit = Limit::new("command", "code uploads", 4096, Chars, Text);
pub const CONFIG: Limit = Limit::new(
    "config",
    "code uploads (413 past it)",
    MAX_PAYLOAD_BYTES,
    Bytes,
    Text,
);
pub const ENV_VARS: Limit = Limit::new("env_vars", "code uploads", 100, Entries, Text);
pub const ENV_NAME: Limit = Limit::new(
    "env_vars name",
    "code uploads (each key of `env_vars`)",
    128,
    Bytes,
    EnvName,
);
pub const ENV_VALUE: Limit = Limit::new(
    "env_vars value",
    "code uploads (each value of `env_vars`)",
    8 * 1024,
    Bytes,
    Text,
);
/// All names and values of a code's `env_vars` together: far below the 128 KiB Linux allows
/// one argument or variable and the 2 MiB of a whole `execve`, so no code's environment can
/// make its container fail with `argument list too long`.
pub const ENV_TOTAL: Limit = Limit::new(
    "env_vars total",
    "code uploads (every name and value of `env_vars`)",
    32 * 1024,
    Bytes,
    Text,
);
pub const WEBHOOK_SECRET: Limit = Limit::new("secret", "webhooks", 256, Chars, Printable);
pub const SIGNATURE: Limit = Limit::new("signature", "webhooks", 16, Chars, Printable);
pub const PROGRESS_MSG: Limit = Limit::new("msg", "task progress", 1024, Chars, Text);
/// A task's final `msg` as its runner reports it (runners cut a worker's last stderr line to
/// 1000 characters, so a genuine runner never meets it).
pub const COMPLETE_MSG: Limit = Limit::new("msg", "runner completions", 4096, Chars, Text);
pub const PROJECT_NAME: Limit = Limit::new("name", "projects", 200, Chars, Printable);
pub const EMAIL: Limit = Limit::new("email", "users", 254, Chars, Printable);
/// Delivery keys (`Idempotency-Key`, `X-GitHub-Delivery`, Slack's `event_id`) longer than this
/// are stored as their SHA-256 instead, so a third party's header never grows a row.
pub const DELIVERY_KEY: Limit = Limit::new(
    "Idempotency-Key",
    "webhook deliveries (longer keys are hashed)",
    255,
    Chars,
    Text,
);
pub const HOSTNAME: Limit = Limit::new("hostname", "runner registration", 255, Chars, Printable);
pub const RUNNER_VERSION: Limit =
    Limit::new("version", "runner registration", 64, Chars, Printable);

/// Every bound, in the order `docs/LIMITS.md` lists them.
pub const ALL: &[Limit] = &[
    CODE_NAME,
    PAYLOAD,
    CLUSTER,
    LABEL,
    CRON,
    TIMEZONE,
    MISFIRE,
    RUNTIME,
    STACK,
    FILE_NAME,
    IMAGE,
    COMMAND,
    CONFIG,
    ENV_VARS,
    ENV_NAME,
    ENV_VALUE,
    ENV_TOTAL,
    WEBHOOK_SECRET,
    SIGNATURE,
    PROGRESS_MSG,
    COMPLETE_MSG,
    PROJECT_NAME,
    EMAIL,
    DELIVERY_KEY,
    HOSTNAME,
    RUNNER_VERSION,
];

/// Numeric bounds the docs table lists beside the string limits: (field, where, bound).
pub fn numeric() -> Vec<(&'static str, &'static str, String)> {
    vec![
        (
            "timeout",
            "tasks, schedules, webhooks",
            format!("at most {MAX_TIMEOUT_SECS} seconds (larger is clamped); default {DEFAULT_TIMEOUT_SECS}"),
        ),
        (
            "delay",
            "tasks, schedules, webhooks, retries",
            format!("at most {MAX_DELAY_SECS} seconds"),
        ),
        ("priority", "tasks, schedules, webhooks", "0, 1 or 2".into()),
        (
            "run_every, cron",
            "schedules",
            format!("runs at least the operator's minimum interval apart (`ferrum serve --min-schedule-interval`, default {MIN_RUN_EVERY_SECS} seconds; `ferrum dev`: 1); a cron's slots are checked over {} consecutive runs", crate::recurrence::GAP_WINDOW_SLOTS),
        ),
        ("retries", "code uploads", format!("0 to {MAX_RETRIES}")),
        (
            "sync_timeout",
            "webhooks",
            format!(
                "at most {} seconds",
                crate::webhook::MAX_SYNC_TIMEOUT_SECS
            ),
        ),
        ("percent", "task progress", "0 to 100".into()),
        ("per_page", "every list", format!("at most {MAX_PER_PAGE}; default {DEFAULT_PER_PAGE}")),
        ("concurrency", "runner registration", format!("1 to {MAX_RUNNER_CONCURRENCY}")),
        ("running", "runner heartbeat", format!("0 to {MAX_RUNNER_CONCURRENCY}")),
    ]
}

/// The Markdown table of `docs/LIMITS.md`, generated from [`ALL`] and [`numeric`].
pub fn markdown_table() -> String {
    let mut out =
        String::from("| field | sent in | limit | characters allowed |\n|---|---|---|---|\n");
    for l in ALL {
        out.push_str(&format!(
            "| `{}` | {} | {} {} | {} |\n",
            l.field,
            l.used_in,
            l.max,
            l.unit.as_str(),
            l.charset.describe()
        ));
    }
    for (field, used_in, bound) in numeric() {
        out.push_str(&format!("| `{field}` | {used_in} | {bound} | — |\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_name_the_field_and_the_limit() {
        let err = LABEL.check(&"x".repeat(256)).unwrap_err().to_string();
        assert_eq!(err, "label is 256 characters; the limit is 255 characters");
        assert!(LABEL.check(&"é".repeat(255)).is_ok());
        assert!(LABEL.check("a\nb").is_err());
        assert!(CLUSTER.check("gpu-eu.1_a").is_ok());
        let err = CLUSTER.check("a b").unwrap_err().to_string();
        assert!(err.starts_with("cluster may hold only letters"), "{err}");
        assert!(CLUSTER.check(&"c".repeat(10_000)).is_err());
        assert!(ENV_NAME.check("_PATH.x-1").is_ok());
        assert!(ENV_NAME.check("1A").is_err() && ENV_NAME.check("A=B").is_err());
        assert!(COMMAND.check("a\tb\nc").is_ok() && COMMAND.check("a\0").is_err());
        let err = ENV_VARS.check_count(101).unwrap_err().to_string();
        assert_eq!(err, "env_vars has 101 entries; the limit is 100 entries");
    }

    #[test]
    fn fields_are_listed_once() {
        let mut fields: Vec<_> = ALL.iter().map(|l| (l.field, l.used_in)).collect();
        fields.sort();
        fields.dedup();
        assert_eq!(fields.len(), ALL.len());
    }

    /// `docs/LIMITS.md` holds the generated table. `FERRUM_BLESS=1 cargo test -p ferrum-model
    /// limits` rewrites it after a limit changes.
    #[test]
    fn the_docs_table_is_generated_from_the_constants() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/LIMITS.md");
        let doc = std::fs::read_to_string(path).expect("docs/LIMITS.md");
        let (begin, end) = ("<!-- limits:begin -->\n", "<!-- limits:end -->");
        let start = doc.find(begin).expect("begin marker") + begin.len();
        let stop = doc.find(end).expect("end marker");
        let table = markdown_table();
        if std::env::var_os("FERRUM_BLESS").is_some() {
            let fresh = format!("{}{table}{}", &doc[..start], &doc[stop..]);
            std::fs::write(path, fresh).unwrap();
            return;
        }
        assert_eq!(
            doc[start..stop],
            table,
            "docs/LIMITS.md is stale: FERRUM_BLESS=1 cargo test -p ferrum-model limits"
        );
    }
}
