//! Safe extraction of a code zip into a task directory on the runner host.
//!
//! The zip is tenant input and the runner usually runs as root, so extraction must never write
//! outside the task directory: entries with absolute paths, drive prefixes or `..` components
//! are rejected, and so are symlinks whose target is absolute or climbs out of the directory.
//! Symlinks are created only after every regular file and directory, so no write ever passes
//! through one, and the unpacked size is counted from the bytes actually written (headers
//! can lie), which stops zip bombs.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{symlink, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

/// Limits applied while unpacking.
#[derive(Debug, Clone, Copy)]
pub struct UnpackLimits {
    /// Most bytes all entries may expand to.
    pub max_bytes: u64,
    /// Most entries a zip may hold.
    pub max_entries: usize,
}

impl Default for UnpackLimits {
    fn default() -> Self {
        UnpackLimits {
            max_bytes: 1 << 30,
            max_entries: 100_000,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("zip entry {0:?} has an unsafe path")]
    UnsafePath(String),
    #[error("zip entry {0:?} is a symlink pointing outside the task directory")]
    UnsafeSymlink(String),
    #[error("zip expands to more than {0} bytes")]
    TooLarge(u64),
    #[error("zip has more than {0} entries")]
    TooManyEntries(usize),
    #[error("invalid zip: {0}")]
    Zip(#[from] zip::result::ZipError),
    #[error("unpacking zip: {0}")]
    Io(#[from] io::Error),
}

/// Unpacks `zip_path` into `dest` (which must exist). Blocking: call it from
/// `spawn_blocking`. Returns the number of bytes written.
pub fn unpack_zip(zip_path: &Path, dest: &Path, limits: UnpackLimits) -> Result<u64, UnpackError> {
    let mut archive = zip::ZipArchive::new(File::open(zip_path)?)?;
    if archive.len() > limits.max_entries {
        return Err(UnpackError::TooManyEntries(limits.max_entries));
    }
    let mut written = 0u64;
    let mut links: Vec<(PathBuf, String)> = Vec::new();
    for index in 0..archive.len() {
        let mut entry = archive.by_index(index)?;
        let name = entry.name().to_owned();
        let Some(relative) = safe_relative_path(&name) else {
            return Err(UnpackError::UnsafePath(name));
        };
        if relative.as_os_str().is_empty() {
            continue;
        }
        let target = dest.join(&relative);
        if entry.is_symlink() {
            let mut link = String::new();
            entry.by_ref().take(4096).read_to_string(&mut link)?;
            if !symlink_stays_inside(&relative, &link) {
                return Err(UnpackError::UnsafeSymlink(name));
            }
            links.push((target, link));
            continue;
        }
        if entry.is_dir() {
            fs::create_dir_all(&target)?;
            continue;
        }
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent)?;
        }
        let executable = entry.unix_mode().is_some_and(|m| m & 0o111 != 0);
        let mut out = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(if executable { 0o755 } else { 0o644 })
            .open(&target)?;
        let budget = limits.max_bytes - written;
        let copied = io::copy(&mut entry.by_ref().take(budget + 1), &mut out)?;
        if copied > budget {
            return Err(UnpackError::TooLarge(limits.max_bytes));
        }
        out.flush()?;
        written += copied;
    }
    for (path, link) in links {
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        symlink(&link, &path)?;
    }
    Ok(written)
}

/// The entry name as a clean relative path, or `None` when it is absolute, has a Windows
/// drive or backslash-rooted prefix, a NUL byte, or any `..` component. `.` and empty
/// components are dropped.
pub fn safe_relative_path(name: &str) -> Option<PathBuf> {
    if name.contains('\0') || name.starts_with('/') || name.starts_with('\\') {
        return None;
    }
    let mut out = PathBuf::new();
    for part in name.split(['/', '\\']) {
        match part {
            "" | "." => {}
            ".." => return None,
            p if p.len() >= 2 && p.as_bytes()[1] == b':' && out.as_os_str().is_empty() => {
                return None
            }
            p => out.push(p),
        }
    }
    Some(out)
}

/// True when a symlink at `link_path` (relative to the task directory) pointing at `target`
/// resolves, lexically, inside the task directory.
pub fn symlink_stays_inside(link_path: &Path, target: &str) -> bool {
    if target.is_empty() || target.contains('\0') || target.starts_with('/') {
        return false;
    }
    let mut depth: i64 = link_path.components().count() as i64 - 1;
    for component in Path::new(target).components() {
        match component {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir => {
                depth -= 1;
                if depth < 0 {
                    return false;
                }
            }
            Component::RootDir | Component::Prefix(_) => return false,
        }
    }
    true
}

/// Makes the whole tree owned by the task user so the unprivileged container can write its
/// scratch files. Never follows symlinks (`lchown`, no traversal into links). When the runner
/// is not root, ownership cannot change: directories are made world-writable instead.
pub fn hand_over(dir: &Path, uid: u32, gid: u32) -> io::Result<()> {
    match std::os::unix::fs::lchown(dir, Some(uid), Some(gid)) {
        Ok(()) => walk(dir, &mut |p| {
            std::os::unix::fs::lchown(p, Some(uid), Some(gid))
        }),
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            fs::set_permissions(dir, fs::Permissions::from_mode(0o777))?;
            walk(dir, &mut |p| {
                if fs::symlink_metadata(p)?.is_dir() {
                    fs::set_permissions(p, fs::Permissions::from_mode(0o777))?;
                }
                Ok(())
            })
        }
        Err(e) => Err(e),
    }
}

fn walk(dir: &Path, f: &mut dyn FnMut(&Path) -> io::Result<()>) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        f(&path)?;
        if entry.file_type()?.is_dir() {
            walk(&path, f)?;
        }
    }
    Ok(())
}

/// Writes a file the zip may already have claimed (e.g. `__payload__`): whatever is there,
/// including a symlink planted to redirect the write, is removed first and the new file is
/// created exclusively, so the write can only land in the task directory.
pub fn write_fresh(path: &Path, contents: &[u8]) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(path)?,
        Ok(_) => fs::remove_file(path)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(path)?;
    file.write_all(contents)
}

#[cfg(test)]
#[path = "unpack_tests.rs"]
mod tests;
