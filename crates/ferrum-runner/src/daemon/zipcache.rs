//! On-disk cache of code zips keyed by revision id. Revisions are immutable, so a cached zip
//! never goes stale; downloads land in a unique temporary file and are renamed into place,
//! so concurrent tasks of one revision never see a partial zip.
//!
//! The cache is bounded: after each download, the least recently used zips go until the rest
//! fit in the byte budget. A zip used in the last [`IN_USE`] is never removed, because a task
//! may be about to unpack it.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use ferrum_model::Id;

use super::client::{ApiClient, ApiError};

/// How recently a zip must have been handed out to be safe from eviction.
const IN_USE: Duration = Duration::from_secs(600);

#[derive(Clone)]
pub(crate) struct ZipCache {
    dir: PathBuf,
    max_bytes: u64,
}

impl ZipCache {
    pub fn new(dir: PathBuf, max_bytes: u64) -> std::io::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        Ok(ZipCache { dir, max_bytes })
    }

    /// The local path of the revision's zip, downloading it on first use.
    pub async fn get(&self, client: &ApiClient, revision: Id) -> Result<PathBuf, ApiError> {
        let path = self.dir.join(format!("{revision}.zip"));
        if tokio::fs::try_exists(&path).await? {
            mark_used(&path);
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
        let (dir, max) = (self.dir.clone(), self.max_bytes);
        let evicted = tokio::task::spawn_blocking(move || evict(&dir, max, SystemTime::now()))
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)));
        if let Err(e) = evicted {
            tracing::warn!(error = %e, "zip cache eviction failed");
        }
        Ok(path)
    }
}

/// Records a cache hit in the file's modification time, the eviction order.
fn mark_used(path: &Path) {
    let touched = std::fs::File::options()
        .write(true)
        .open(path)
        .and_then(|f| f.set_modified(SystemTime::now()));
    if let Err(e) = touched {
        tracing::debug!(path = %path.display(), error = %e, "could not mark zip as used");
    }
}

/// Removes the least recently used zips until the rest fit in `max_bytes`, sparing those used
/// within [`IN_USE`] of `now`. Returns how many were removed.
fn evict(dir: &Path, max_bytes: u64, now: SystemTime) -> std::io::Result<usize> {
    let mut zips = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.path().extension().is_some_and(|e| e == "zip") {
            let meta = entry.metadata()?;
            zips.push((meta.modified()?, meta.len(), entry.path()));
        }
    }
    let mut total: u64 = zips.iter().map(|(_, len, _)| len).sum();
    zips.sort();
    let mut removed = 0;
    for (used, len, path) in zips {
        if total <= max_bytes {
            break;
        }
        let recent = now.duration_since(used).map_or(true, |age| age < IN_USE);
        if !recent && std::fs::remove_file(&path).is_ok() {
            total -= len;
            removed += 1;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zip(dir: &Path, name: &str, len: usize, age: Duration) -> PathBuf {
        let path = dir.join(format!("{name}.zip"));
        std::fs::write(&path, vec![0u8; len]).unwrap();
        let file = std::fs::File::options().write(true).open(&path).unwrap();
        file.set_modified(SystemTime::now() - age).unwrap();
        path
    }

    #[test]
    fn least_recently_used_zips_go_first_and_recent_ones_stay() {
        let dir = std::env::temp_dir().join(format!("ferrum-zipcache-{}", Id::generate()));
        std::fs::create_dir_all(&dir).unwrap();
        let hour = Duration::from_secs(3600);
        let oldest = zip(&dir, "a", 100, 3 * hour);
        let older = zip(&dir, "b", 100, 2 * hour);
        let old = zip(&dir, "c", 100, hour);
        let fresh = zip(&dir, "d", 100, Duration::ZERO);
        assert_eq!(evict(&dir, 250, SystemTime::now()).unwrap(), 2);
        assert!(!oldest.exists() && !older.exists());
        assert!(old.exists() && fresh.exists());
        // A zip used moments ago stays even when the budget is exceeded.
        assert_eq!(evict(&dir, 0, SystemTime::now()).unwrap(), 1);
        assert!(fresh.exists() && !old.exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
