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

/// Splits `--host`: a URL (`http://127.0.0.1:8080`) sets protocol, host and port; a bare
/// name sets the host only.
pub fn host_settings(host: &str) -> anyhow::Result<Vec<(&'static str, Value)>> {
    let Some((protocol, rest)) = host.split_once("://") else {
        return Ok(vec![("host", Value::String(host.to_owned()))]);
    };
    if protocol != "http" && protocol != "https" {
        bail!("--host {host:?}: the protocol must be http or https");
    }
    let authority = rest.trim_end_matches('/');
    if authority.is_empty() || authority.contains('/') {
        bail!("--host {host:?}: give the server only, e.g. http://127.0.0.1:8080");
    }
    let (name, port) = match authority.rsplit_once(':') {
        Some((name, port)) => (
            name,
            port.parse::<u16>()
                .with_context(|| format!("--host {host:?}: bad port"))?,
        ),
        None => (authority, if protocol == "https" { 443 } else { 80 }),
    };
    Ok(vec![
        ("protocol", Value::String(protocol.to_owned())),
        ("host", Value::String(name.to_owned())),
        ("port", Value::from(port)),
    ])
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
    fn host_urls_split_like_iron_json() {
        let s = host_settings("https://api.example.com/").unwrap();
        assert_eq!(s[2].1, Value::from(443));
        let s = host_settings("http://127.0.0.1:9000").unwrap();
        assert_eq!(s[1].1, Value::String("127.0.0.1".into()));
        assert!(host_settings("ftp://x").is_err());
        assert_eq!(host_settings("example.com").unwrap().len(), 1);
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
