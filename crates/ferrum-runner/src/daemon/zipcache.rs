//! On-disk cache of code zips keyed by revision id. Revisions are immutable, so a cached zip
//! never goes stale; downloads land in a unique temporary file and are renamed into place,
//! so concurrent tasks of one revision never see a partial zip.

use std::path::PathBuf;

use ferrum_model::Id;

use super::client::{ApiClient, ApiError};

#[derive(Clone)]
pub(crate) struct ZipCache {
    dir: PathBuf,
}

impl ZipCache {
    pub fn new(dir: PathBuf) -> std::io::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        Ok(ZipCache { dir })
    }

    /// The local path of the revision's zip, downloading it on first use.
    pub async fn get(&self, client: &ApiClient, revision: Id) -> Result<PathBuf, ApiError> {
        let path = self.dir.join(format!("{revision}.zip"));
        if tokio::fs::try_exists(&path).await? {
            return Ok(path);
        }
        let partial = self.dir.join(format!("{revision}.{}.part", Id::generate()));
        let result = client.download_zip(revision, &partial).await;
        if let Err(e) = result {
            // Best effort: a leftover .part file is harmless and overwritten by nobody.
            let _ = tokio::fs::remove_file(&partial).await;
            return Err(e);
        }
        tokio::fs::rename(&partial, &path).await?;
        Ok(path)
    }
}
