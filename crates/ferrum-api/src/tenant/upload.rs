//! C2 `POST /2/projects/{project_id}/codes`: upload a code, register an image, or update the
//! options of an existing code (contract §3.2, §8.2).
//!
//! The request is multipart: a `data` part holding JSON (whatever its content type) and an
//! optional `file` part holding the zip, possibly as a Python bytes literal ([`pyrepr`]).
//! An upload is accepted with a zip and `file_name` (old-style), with an `image` (Docker-style,
//! zip optional), or with neither when the code exists: then only the options change and the
//! new revision keeps the previous package. Options an upload leaves out keep their previous
//! values, so re-uploading from a client that knows only `runtime` and `file_name` (Python)
//! does not reset `env_vars`, `max_concurrency` or the resource settings (`memory_mb`, `cpus`,
//! `pids`, `disk_mb`: Ferrum's additions) set by another client.
//!
//! Nothing is half-written: the zip is checked first ([`zipcheck`]), then stored in the blob
//! store, and deleted again if the revision cannot be recorded.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::multipart::{Multipart, MultipartRejection};
use axum::extract::State;
use axum::Json;
use ferrum_model::code::ZipInfo;
use ferrum_model::limits::{self, Limit};
use ferrum_model::validation::{check_size, code_limits, code_retries, env_vars};
use ferrum_model::{Code, CodeSpec, Id, NewRevision};
use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};

use super::auth::ProjectScope;
use super::extract::{parse_json, whole};
use super::zipcheck::{self, CheckedZip};
use super::{pyrepr, Route};
use crate::openapi::bodies;
use crate::{ApiError, AppState};

pub fn route() -> Route {
    Route::post(
        "/2/projects/{project_id}/codes",
        "Upload a code zip, register an image, or update a code's options (multipart)",
        upload,
    )
    .body(bodies::upload())
}

/// The `data` part. Every field but `name` is optional; unknown fields are ignored. The
/// dashboard's upload forms fill one from their fields and go through [`put_revision`] too.
#[derive(Deserialize, Default)]
pub(crate) struct UploadData {
    pub name: Option<String>,
    pub runtime: Option<String>,
    pub stack: Option<String>,
    pub file_name: Option<String>,
    pub image: Option<String>,
    pub command: Option<String>,
    pub config: Option<String>,
    pub env_vars: Option<BTreeMap<String, String>>,
    pub max_concurrency: Option<f64>,
    pub retries: Option<f64>,
    pub retries_delay: Option<f64>,
    pub default_priority: Option<f64>,
    pub memory_mb: Option<f64>,
    pub cpus: Option<f64>,
    pub pids: Option<f64>,
    pub disk_mb: Option<f64>,
}

#[derive(Serialize)]
pub(crate) struct Uploaded {
    pub id: Id,
    pub rev: i32,
    msg: &'static str,
}

async fn upload(
    ProjectScope(project): ProjectScope,
    State(state): State<AppState>,
    form: Result<Multipart, MultipartRejection>,
) -> Result<Json<Uploaded>, ApiError> {
    let (data, file) = read_form(form.map_err(|r| ApiError::bad_request(r.body_text()))?).await?;
    let data: UploadData = parse_json(&data)?;
    Ok(Json(put_revision(&state, project.id, data, file).await?))
}

/// Records the next revision of the code `data.name` (creating the code at its first): the
/// zip checked, stored, and deleted again if the revision cannot be recorded; revisions past
/// the operator's `keep_revisions` handed to the zip GC. The API's upload and the
/// dashboard's both.
pub(crate) async fn put_revision(
    state: &AppState,
    project: Id,
    data: UploadData,
    file: Option<Bytes>,
) -> Result<Uploaded, ApiError> {
    let name = data
        .name
        .clone()
        .filter(|n| !n.trim().is_empty())
        .ok_or_else(|| ApiError::bad_request("name is required"))?;
    limits::CODE_NAME.check_as("name", &name)?;
    let zip = match file.filter(|f| !f.is_empty()) {
        Some(part) => Some(decode_zip(&part, state.config.max_zip_unpacked_bytes).await?),
        None => None,
    };
    let previous = state.store.code_by_name(project, &name).await?;
    let new_package = zip.is_some() || non_empty(&data.image).is_some();
    if !new_package && previous.is_none() {
        return Err(ApiError::bad_request(
            "A new code needs a zip (file part) with file_name, or an image",
        ));
    }
    let spec = data.into_spec(previous.as_ref(), new_package)?;
    check_package(&spec, zip.as_ref().map(|(_, checked)| checked))?;

    let (zip_info, stored_key) = match zip {
        Some((bytes, _)) => {
            let info = store_zip(state, project, bytes).await?;
            let key = info.key.clone();
            (Some(info), Some(key))
        }
        None if new_package => (None, None),
        None => (previous.and_then(|c| c.latest.zip), None),
    };
    let revision = NewRevision {
        name,
        spec,
        zip: zip_info,
    };
    match state.store.put_revision(project, revision).await {
        Ok(code) => {
            if state.config.keep_revisions.is_some() {
                // The new revision may push an old one out of the kept window.
                crate::zip_gc::kick(state);
            }
            Ok(Uploaded {
                id: code.id,
                rev: code.latest.rev,
                msg: "Upload successful.",
            })
        }
        Err(e) => {
            if let Some(key) = stored_key {
                if let Err(cleanup) = state.blobs.delete(&key).await {
                    tracing::warn!(%key, error = %cleanup, "could not delete an orphaned code zip");
                }
            }
            Err(e.into())
        }
    }
}

/// The `data` and `file` parts; other parts are ignored.
async fn read_form(mut form: Multipart) -> Result<(Bytes, Option<Bytes>), ApiError> {
    let multipart_error = |e: axum::extract::multipart::MultipartError| {
        ApiError::new(
            e.status(),
            format!("Malformed multipart body: {}", e.body_text()),
        )
    };
    let (mut data, mut file) = (None, None);
    while let Some(field) = form.next_field().await.map_err(multipart_error)? {
        match field.name() {
            Some("data") => data = Some(field.bytes().await.map_err(multipart_error)?),
            Some("file") => file = Some(field.bytes().await.map_err(multipart_error)?),
            _ => {}
        }
    }
    let data = data.ok_or_else(|| ApiError::bad_request("The multipart data part is required"))?;
    Ok((data, file.filter(|f| !f.is_empty())))
}

/// Decodes the `file` part and checks the zip on a blocking thread (inflating is CPU work).
async fn decode_zip(part: &[u8], max_unpacked: u64) -> Result<(Bytes, CheckedZip), ApiError> {
    let zip = Bytes::from(pyrepr::decode_file_part(part).map_err(|e| {
        ApiError::bad_request(format!(
            "The file part is a malformed Python bytes literal: {e}"
        ))
    })?);
    let to_check = zip.clone();
    let checked = tokio::task::spawn_blocking(move || zipcheck::check(&to_check, max_unpacked))
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "zip check panicked");
            ApiError::new(
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                "Internal error",
            )
        })?
        .map_err(ApiError::bad_request)?;
    Ok((zip, checked))
}

/// Stores the zip under a fresh key. The key is not derived from the code id because a new
/// code has none until its first revision is recorded, and a fresh key per upload means a
/// failed upload never overwrites the zip of a live revision.
async fn store_zip(state: &AppState, project: Id, zip: Bytes) -> Result<ZipInfo, ApiError> {
    let info = ZipInfo {
        key: format!("codes/{project}/{}.zip", Id::generate()),
        checksum: hex::encode(Md5::digest(&zip)),
        size: zip.len() as i64,
    };
    state.blobs.put(&info.key, zip).await?;
    Ok(info)
}

/// An old-style package must name the file to run, and that file must be in the zip.
fn check_package(spec: &CodeSpec, zip: Option<&CheckedZip>) -> Result<(), ApiError> {
    let Some(zip) = zip else { return Ok(()) };
    if spec.image.is_some() {
        return Ok(());
    }
    let file_name = spec
        .file_name
        .as_deref()
        .ok_or_else(|| ApiError::bad_request("file_name is required with a zip (or an image)"))?;
    let wanted = file_name.trim_start_matches("./");
    if !zip.files.iter().any(|f| f == wanted) {
        return Err(ApiError::bad_request(format!(
            "file_name {file_name:?} is not in the zip{}",
            zipcheck::hint_for_missing(&zip.files, wanted)
        )));
    }
    Ok(())
}

/// `""` means unset: Go sends `"command": ""` when there is none.
fn non_empty(value: &Option<String>) -> Option<String> {
    value.clone().filter(|v| !v.is_empty())
}

impl UploadData {
    /// The next revision's spec: the previous one, with the package replaced when this upload
    /// brings one, and every option given here laid over it.
    fn into_spec(self, previous: Option<&Code>, new_package: bool) -> Result<CodeSpec, ApiError> {
        let mut spec = previous.map(|c| c.latest.spec.clone()).unwrap_or_default();
        if new_package {
            spec.runtime = None;
            spec.stack = None;
            spec.file_name = None;
            spec.image = None;
            spec.command = None;
        }
        // Only what this upload brings is checked: a revision stored before a limit existed
        // keeps its values until they are replaced.
        let package: [(&mut Option<String>, &Option<String>, &Limit); 5] = [
            (&mut spec.runtime, &self.runtime, &limits::RUNTIME),
            (&mut spec.stack, &self.stack, &limits::STACK),
            (&mut spec.file_name, &self.file_name, &limits::FILE_NAME),
            (&mut spec.image, &self.image, &limits::IMAGE),
            (&mut spec.command, &self.command, &limits::COMMAND),
        ];
        for (field, given, limit) in package {
            if let Some(value) = non_empty(given) {
                limit.check(&value)?;
                *field = Some(value);
            }
        }
        if let Some(config) = self.config {
            check_size("config", config.len())?;
            limits::CONFIG.check(&config)?;
            spec.config = Some(config).filter(|c| !c.is_empty());
        }
        if let Some(vars) = self.env_vars {
            env_vars(&vars)?;
            spec.env_vars = vars;
        }
        if let Some(max) = whole(self.max_concurrency) {
            spec.max_concurrency = Some(max).filter(|m| *m > 0);
        }
        spec.retries = whole(self.retries).unwrap_or(spec.retries);
        spec.retries_delay = whole(self.retries_delay).unwrap_or(spec.retries_delay);
        code_retries(spec.retries, spec.retries_delay)?;
        if let Some(priority) = whole(self.default_priority).filter(|p| (0..=2).contains(p)) {
            spec.default_priority = priority;
        }
        spec.memory_mb = whole(self.memory_mb).or(spec.memory_mb);
        spec.cpus = self.cpus.or(spec.cpus);
        spec.pids = whole(self.pids).or(spec.pids);
        spec.disk_mb = whole(self.disk_mb).or(spec.disk_mb);
        code_limits(&spec)?;
        Ok(spec)
    }
}
