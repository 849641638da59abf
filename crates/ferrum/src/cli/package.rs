//! A worker directory as a code package: the options that say how to run it, and its zip.
//! Shared by `ferrum upload` (which sends both to the API) and `ferrum run-local` (which runs
//! them in the same stack image, under the same contract, without an API).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde_json::{json, Map, Value};

/// How to run the code in a directory (contract §3.2 upload fields).
#[derive(Debug, clap::Args)]
pub struct CodeArgs {
    /// The directory holding the worker's files.
    pub dir: PathBuf,
    /// Runtime: sh, python, node or binary (default: guessed from --file-name's extension).
    #[arg(long)]
    pub runtime: Option<String>,
    /// The file to run, relative to the directory (e.g. hello.py).
    #[arg(long)]
    pub file_name: Option<String>,
    /// Stack (image family) to run in, when it differs from the runtime (see `ferrum stacks list`).
    #[arg(long)]
    pub stack: Option<String>,
    /// A Docker image to run instead of a stack; the directory is unpacked into its task dir.
    #[arg(long)]
    pub image: Option<String>,
    /// The command to run in --image.
    #[arg(long)]
    pub command: Option<String>,
    /// A file whose contents become the code's config (handed to tasks as CONFIG_FILE).
    #[arg(long)]
    pub config_file: Option<PathBuf>,
    /// An environment variable for the worker, KEY=VALUE (repeatable).
    #[arg(long = "env", value_name = "KEY=VALUE", value_parser = parse_env)]
    pub env: Vec<(String, String)>,
}

fn parse_env(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("{s:?} is not KEY=VALUE")),
    }
}

impl CodeArgs {
    /// The runtime given, else the one the file name's extension implies.
    pub fn runtime(&self) -> Option<String> {
        if self.runtime.is_some() || self.image.is_some() {
            return self.runtime.clone();
        }
        let ext = Path::new(self.file_name.as_deref()?)
            .extension()?
            .to_str()?;
        let runtime = match ext {
            "sh" => "sh",
            "py" => "python",
            "js" => "node",
            _ => return None,
        };
        Some(runtime.to_owned())
    }

    pub fn config(&self) -> anyhow::Result<Option<String>> {
        self.config_file
            .as_ref()
            .map(|p| {
                std::fs::read_to_string(p)
                    .with_context(|| format!("cannot read config file {}", p.display()))
            })
            .transpose()
    }

    /// Checks what can be checked before talking to anyone: the directory exists, a
    /// stack-style code names a file in it.
    pub fn check(&self) -> anyhow::Result<()> {
        if !self.dir.is_dir() {
            bail!("{} is not a directory", self.dir.display());
        }
        if self.image.is_none() {
            let Some(file) = &self.file_name else {
                bail!("--file-name is required (the file to run, e.g. --file-name hello.sh), or use --image");
            };
            if !self.dir.join(file).is_file() {
                bail!("{} has no file {file}", self.dir.display());
            }
            if self.runtime().is_none() {
                bail!("cannot tell the runtime from {file:?}: add --runtime (sh, python, node, binary)");
            }
        }
        Ok(())
    }

    /// The upload's `data` fields this describes.
    pub fn upload_fields(&self) -> anyhow::Result<Map<String, Value>> {
        let mut data = Map::new();
        let mut put = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                data.insert(k.to_owned(), Value::String(v));
            }
        };
        put("runtime", self.runtime());
        put("file_name", self.file_name.clone());
        put("stack", self.stack.clone());
        put("image", self.image.clone());
        put("command", self.command.clone());
        put("config", self.config()?);
        if !self.env.is_empty() {
            let env: Map<String, Value> = self
                .env
                .iter()
                .map(|(k, v)| (k.clone(), json!(v)))
                .collect();
            data.insert("env_vars".into(), Value::Object(env));
        }
        Ok(data)
    }
}

/// Directories smaller than this are zipped without a progress bar.
const PROGRESS_FROM: u64 = 1 << 20;

/// Zips a directory (recursively, keeping Unix permissions so executables stay executable),
/// with a progress bar on a terminal for large ones (100 MB take seconds).
pub fn zip_dir(dir: &Path) -> anyhow::Result<Vec<u8>> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let mut files = Vec::new();
    collect(dir, dir, &mut files)?;
    files.sort();
    let mut total = 0u64;
    for (_, path) in &files {
        total += std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    }
    let bar = super::progress::bar("zipping", total, total >= PROGRESS_FROM);
    for (name, path) in files {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path)?.permissions().mode();
        let options = zip::write::SimpleFileOptions::default().unix_permissions(mode & 0o777);
        zip.start_file(name, options)?;
        let data =
            std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        zip.write_all(&data)?;
        bar.inc(data.len() as u64);
    }
    bar.finish_and_clear();
    Ok(zip.finish()?.into_inner())
}

/// Regular files under `dir`, named by their path relative to `root` with `/` separators.
fn collect(root: &Path, dir: &Path, out: &mut Vec<(String, PathBuf)>) -> anyhow::Result<()> {
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))?;
    for entry in entries {
        let entry = entry?;
        let path = entry.path();
        let kind = entry.file_type()?;
        if kind.is_dir() {
            collect(root, &path, out)?;
        } else if kind.is_file() {
            let rel = path.strip_prefix(root)?;
            let name: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            out.push((name.join("/"), path));
        }
    }
    Ok(())
}
