//! Object storage for code zips (and, later, archived logs and large results).
//!
//! [`BlobStore`] is the one interface; [`open`] picks a backend from a URL:
//! `file:///path` for a local directory ([`LocalDir`]), `s3://bucket?endpoint=…&region=…` for
//! S3 or an S3-compatible server ([`S3Store`], whose docs give the full URL form and where
//! credentials come from). Keys are relative paths made of `[A-Za-z0-9._/-]`.

mod local;
mod s3;

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;

pub use local::LocalDir;
pub use s3::S3Store;

/// Why a blob operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("invalid blob key {0:?}")]
    InvalidKey(String),
    #[error("invalid blob url {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("blob io error: {0}")]
    Io(#[from] std::io::Error),
    #[error("blob backend error: {0}")]
    Backend(String),
}

/// A flat key → bytes store.
#[async_trait]
pub trait BlobStore: Send + Sync {
    /// Stores `data` under `key`, replacing what was there. Atomic: readers see the old or the
    /// new object, never a part.
    async fn put(&self, key: &str, data: Bytes) -> Result<(), BlobError>;
    /// The object, or `None` if there is none.
    async fn get(&self, key: &str) -> Result<Option<Bytes>, BlobError>;
    /// Removes the object; removing a missing one is not an error.
    async fn delete(&self, key: &str) -> Result<(), BlobError>;
}

/// Opens the backend a URL names.
pub async fn open(url: &str) -> Result<Arc<dyn BlobStore>, BlobError> {
    if let Some(path) = url.strip_prefix("file://") {
        return Ok(Arc::new(LocalDir::new(path).await?));
    }
    if url.starts_with("s3://") {
        return Ok(Arc::new(S3Store::from_env(url)?));
    }
    Err(BlobError::InvalidUrl {
        url: url.to_owned(),
        reason: "expected file:///path or s3://bucket?endpoint=…&region=…".into(),
    })
}

/// Refuses keys that could escape a directory or confuse a backend.
pub(crate) fn check_key(key: &str) -> Result<(), BlobError> {
    let ok = !key.is_empty()
        && !key.starts_with('/')
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._/-".contains(&b))
        && key
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..");
    if ok {
        Ok(())
    } else {
        Err(BlobError::InvalidKey(key.to_owned()))
    }
}
