//! The stack catalog (stack or runtime name → image) and a local, registry-free build of the
//! stack images. The build recipes live in `docker/stacks/<stack>/`: a Dockerfile for hosts
//! with a registry, and `build-local.sh`, which this module embeds and runs so that
//! `ferrum stacks build` works from an installed binary without the source tree.

use std::path::{Path, PathBuf};

use bollard::Docker;

pub use ferrum_model::stacks::{image_for, CATALOG, IMAGE_NODE, IMAGE_PYTHON, IMAGE_SH};

/// The recipe (build script) of each image, embedded at compile time.
const RECIPES: &[(&str, &str, &str)] = &[
    (
        IMAGE_SH,
        "sh",
        include_str!("../../../docker/stacks/sh/build-local.sh"),
    ),
    (
        IMAGE_PYTHON,
        "python",
        include_str!("../../../docker/stacks/python/build-local.sh"),
    ),
    (
        IMAGE_NODE,
        "node",
        include_str!("../../../docker/stacks/node/build-local.sh"),
    ),
];
const DEBIAN_HELPER: &str = include_str!("../../../docker/stacks/debian-local.sh");

/// Every distinct stack image, in catalog order.
pub fn images() -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for (_, image) in CATALOG {
        if !out.contains(image) {
            out.push(image);
        }
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildStatus {
    Built,
    /// The image already existed and `force` was false.
    Skipped,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildResult {
    pub image: String,
    pub status: BuildStatus,
}

#[derive(Debug, thiserror::Error)]
pub enum StackError {
    #[error("unknown stack {0:?} (known: sh, binary, python, python-3, python-3.11, node)")]
    Unknown(String),
    #[error("docker: {0}")]
    Docker(#[from] bollard::errors::Error),
    #[error("writing build recipe: {0}")]
    Io(#[from] std::io::Error),
    #[error("building {image} failed ({status}); its output is in {log}:\n{tail}")]
    BuildFailed {
        image: String,
        status: String,
        log: String,
        tail: String,
    },
}

/// [`build_logged`] with the build output in `$TMPDIR/ferrum-stack-build.log`.
pub async fn build(names: &[String], force: bool) -> Result<Vec<BuildResult>, StackError> {
    build_logged(
        names,
        force,
        &std::env::temp_dir().join("ferrum-stack-build.log"),
    )
    .await
}

/// Builds the images of the named stacks (all when `names` is empty), skipping images that
/// already exist unless `force`. Each image takes a minute or two (debootstrap); the build's
/// output (hundreds of debootstrap lines) goes to the file `log`, appended, and stderr says
/// only which image is being built and where its output is — a failure quotes the log's end.
pub async fn build_logged(
    names: &[String],
    force: bool,
    log: &Path,
) -> Result<Vec<BuildResult>, StackError> {
    let mut wanted: Vec<&'static str> = Vec::new();
    if names.is_empty() {
        wanted = images();
    }
    for name in names {
        let image = image_for(name).ok_or_else(|| StackError::Unknown(name.clone()))?;
        if !wanted.contains(&image) {
            wanted.push(image);
        }
    }
    let docker = Docker::connect_with_local_defaults()?
        .negotiate_version()
        .await?;
    let mut results = Vec::new();
    for image in wanted {
        let previous = image_id(&docker, image).await?;
        let status = if !force && previous.is_some() {
            BuildStatus::Skipped
        } else {
            eprintln!(
                "building stack image {image} (a minute or two; output in {})",
                log.display()
            );
            run_recipe(image, log).await?;
            if let Some(old) = previous {
                remove_untagged(&docker, &old).await;
            }
            BuildStatus::Built
        };
        results.push(BuildResult {
            image: image.to_owned(),
            status,
        });
    }
    Ok(results)
}

/// True when the engine has the image locally.
pub async fn image_exists(docker: &Docker, image: &str) -> Result<bool, bollard::errors::Error> {
    Ok(image_id(docker, image).await?.is_some())
}

async fn image_id(docker: &Docker, image: &str) -> Result<Option<String>, bollard::errors::Error> {
    match docker.inspect_image(image).await {
        Ok(found) => Ok(found.id),
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Removes the image a rebuild replaced, if nothing uses it any more (a running task's
/// container keeps it alive, and then it stays: no force).
async fn remove_untagged(docker: &Docker, id: &str) {
    match docker.inspect_image(id).await {
        Ok(old) if old.repo_tags.as_ref().is_none_or(|t| t.is_empty()) => {
            if let Err(e) = docker.remove_image(id, None, None).await {
                tracing::debug!(image = id, error = %e, "old stack image kept");
            }
        }
        _ => {}
    }
}

async fn run_recipe(image: &str, log: &Path) -> Result<(), StackError> {
    let (_, dir, script) = RECIPES
        .iter()
        .find(|(i, _, _)| *i == image)
        .ok_or_else(|| StackError::Unknown(image.to_owned()))?;
    let root = std::env::temp_dir().join(format!("ferrum-stacks-{}", std::process::id()));
    let result = async {
        let script_path = write_recipe(&root, dir, script)?;
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)?;
        let status = tokio::process::Command::new("sh")
            .arg(&script_path)
            .arg(image)
            .stdin(std::process::Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .status()
            .await?;
        if status.success() {
            Ok(())
        } else {
            Err(StackError::BuildFailed {
                image: image.to_owned(),
                status: status.to_string(),
                log: log.display().to_string(),
                tail: log_tail(log, 15),
            })
        }
    }
    .await;
    // Best effort: a leftover temp dir holds only the two small scripts.
    let _ = std::fs::remove_dir_all(&root);
    result
}

/// The last `lines` lines of the build log, for the error a user sees first.
fn log_tail(log: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Lays the scripts out as in the source tree (`<root>/<stack>/build-local.sh` next to
/// `<root>/debian-local.sh`), since the stack scripts find the helper relative to themselves.
fn write_recipe(root: &Path, dir: &str, script: &str) -> std::io::Result<PathBuf> {
    let stack_dir = root.join(dir);
    std::fs::create_dir_all(&stack_dir)?;
    std::fs::write(root.join("debian-local.sh"), DEBIAN_HELPER)?;
    let path = stack_dir.join("build-local.sh");
    std::fs::write(&path, script)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_matches_api_defaults() {
        assert_eq!(image_for("sh"), Some(IMAGE_SH));
        assert_eq!(image_for("binary"), Some(IMAGE_SH));
        for n in ["python", "python-3", "python-3.11"] {
            assert_eq!(image_for(n), Some(IMAGE_PYTHON));
        }
        assert_eq!(image_for("cobol"), None);
        assert_eq!(images(), vec![IMAGE_SH, IMAGE_PYTHON, IMAGE_NODE]);
        for image in images() {
            assert!(RECIPES.iter().any(|(i, _, _)| *i == image));
        }
    }
}
