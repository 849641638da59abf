//! Where the CLI finds its API, project and token: the same places, in the same order, as the
//! official IronWorker clients (contract §1.1), so one `iron.json` serves both:
//!
//! 1. defaults (`http://127.0.0.1:8080`, what `ferrum dev` listens on);
//! 2. `~/.iron.json` (known top-level keys, then everything in its `iron_worker` object);
//! 3. `IRON_<KEY>`, then 4. `IRON_WORKER_<KEY>` environment variables (`HOST`, `PROTOCOL` or
//!    Go/Ruby's `SCHEME`, `PORT`, `PROJECT_ID`, `TOKEN`);
//! 5. `./iron.json` in the working directory.
//!
//! `ferrum configure` writes `~/.iron.json`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde_json::{Map, Value};

/// The settings a command runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub protocol: String,
    pub host: String,
    pub port: u16,
    pub project_id: Option<String>,
    pub token: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            protocol: "http".into(),
            host: "127.0.0.1".into(),
            port: 8080,
            project_id: None,
            token: None,
        }
    }
}

impl Settings {
    /// `protocol://host[:port]`, without the port when it is the protocol's default.
    pub fn base_url(&self) -> String {
        match (self.protocol.as_str(), self.port) {
            ("https", 443) | ("http", 80) => format!("{}://{}", self.protocol, self.host),
            _ => format!("{}://{}:{}", self.protocol, self.host, self.port),
        }
    }

    /// Applies one setting by its iron.json / environment name; unknown names are ignored.
    fn set(&mut self, key: &str, value: &Value) -> anyhow::Result<()> {
        let text = match value {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => return Ok(()),
        };
        match key {
            "host" => self.host = text,
            "protocol" | "scheme" => self.protocol = text,
            "port" => {
                self.port = text
                    .parse()
                    .with_context(|| format!("port {text:?} is not a port number"))?
            }
            "project_id" => self.project_id = Some(text),
            "token" => self.token = Some(text),
            _ => {}
        }
        Ok(())
    }

    fn merge_file(&mut self, path: &Path) -> anyhow::Result<()> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let doc: Map<String, Value> = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a JSON object", path.display()))?;
        for (k, v) in &doc {
            self.set(k, v)?;
        }
        if let Some(Value::Object(product)) = doc.get("iron_worker") {
            for (k, v) in product {
                self.set(k, v)?;
            }
        }
        Ok(())
    }

    fn merge_env(&mut self, prefix: &str) -> anyhow::Result<()> {
        for key in ["host", "protocol", "scheme", "port", "project_id", "token"] {
            let name = format!("{prefix}{}", key.to_ascii_uppercase());
            if let Ok(v) = std::env::var(&name) {
                self.set(key, &Value::String(v))
                    .with_context(|| format!("in {name}"))?;
            }
        }
        Ok(())
    }
}

/// `~/.iron.json`, the file `ferrum configure` writes.
pub fn home_file() -> anyhow::Result<PathBuf> {
    match std::env::var_os("HOME") {
        Some(home) => Ok(PathBuf::from(home).join(".iron.json")),
        None => bail!("HOME is not set, so there is no ~/.iron.json"),
    }
}

/// The merged settings (see the module docs for the order).
pub fn load() -> anyhow::Result<Settings> {
    let mut s = Settings::default();
    if let Ok(home) = home_file() {
        s.merge_file(&home)?;
    }
    s.merge_env("IRON_")?;
    s.merge_env("IRON_WORKER_")?;
    s.merge_file(Path::new("iron.json"))?;
    Ok(s)
}

/// Splits `--host` the ways users type it: a URL (`http://127.0.0.1:8080`) sets protocol,
/// host and port; `host:port` sets host and port; a bare `host` sets the host only.
pub fn host_settings(host: &str) -> anyhow::Result<Vec<(&'static str, Value)>> {
    let (protocol, rest) = match host.split_once("://") {
        Some((p, _)) if p != "http" && p != "https" => {
            bail!("--host {host:?}: the protocol must be http or https")
        }
        Some((p, rest)) => (Some(p), rest),
        None => (None, host),
    };
    let authority = rest.trim_end_matches('/');
    if authority.is_empty() || authority.contains('/') {
        bail!(
            "--host {host:?}: give the server only, e.g. 127.0.0.1:8080 or https://api.example.com"
        );
    }
    // `[::1]:8080` keeps its brackets off the port split; a bare IPv6 address has no port.
    let split = match authority.rfind(']') {
        Some(end) => authority[end..].rfind(':').map(|i| end + i),
        None if authority.matches(':').count() == 1 => authority.rfind(':'),
        None => None,
    };
    let (name, port) = match split {
        Some(i) => {
            let port = &authority[i + 1..];
            let port = port
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .with_context(|| format!("--host {host:?}: {port:?} is not a port number"))?;
            (&authority[..i], Some(port))
        }
        None => (authority, None),
    };
    if name.is_empty() {
        bail!("--host {host:?}: the host name is missing");
    }
    let mut out = Vec::new();
    if let Some(p) = protocol {
        out.push(("protocol", Value::String(p.to_owned())));
    }
    out.push(("host", Value::String(name.to_owned())));
    match (port, protocol) {
        (Some(port), _) => out.push(("port", Value::from(port))),
        (None, Some("https")) => out.push(("port", Value::from(443))),
        (None, Some(_)) => out.push(("port", Value::from(80))),
        (None, None) => {}
    }
    Ok(out)
}

/// Sets `updates` in `~/.iron.json`, keeping whatever else it holds; returns its path.
pub fn write_home(updates: Vec<(&'static str, Value)>) -> anyhow::Result<PathBuf> {
    let path = home_file()?;
    let mut doc: Map<String, Value> = match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text)
            .with_context(|| format!("{} is not a JSON object", path.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Map::new(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    for (k, v) in updates {
        doc.insert(k.to_owned(), v);
    }
    let text = serde_json::to_string_pretty(&doc)?;
    std::fs::write(&path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_taken_the_ways_users_type_them() {
        let url = |h: &str| {
            let mut s = Settings::default();
            for (k, v) in host_settings(h).unwrap() {
                s.set(k, &v).unwrap();
            }
            s.base_url()
        };
        assert_eq!(url("127.0.0.1:8080"), "http://127.0.0.1:8080");
        assert_eq!(url("http://127.0.0.1:9000"), "http://127.0.0.1:9000");
        assert_eq!(url("https://api.example.com/"), "https://api.example.com");
        assert_eq!(url("http://example.com"), "http://example.com");
        assert_eq!(url("example.com"), "http://example.com:8080");
        assert_eq!(url("[::1]:8081"), "http://[::1]:8081");
        assert!(host_settings("ftp://x").is_err());
        assert!(host_settings("x:notaport").is_err());
        assert!(host_settings("http://x/path").is_err());
        assert!(host_settings(":8080").is_err());
    }

    #[test]
    fn the_product_object_overrides_top_level_keys() {
        let dir = std::env::temp_dir().join(format!("ferrum-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("iron.json");
        std::fs::write(
            &file,
            r#"{"host":"a","port":"9","token":"t","iron_worker":{"host":"b"}}"#,
        )
        .unwrap();
        let mut s = Settings::default();
        s.merge_file(&file).unwrap();
        assert_eq!((s.host.as_str(), s.port), ("b", 9));
        assert_eq!(s.base_url(), "http://b:9");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
