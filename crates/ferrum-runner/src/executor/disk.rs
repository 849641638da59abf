//! The per-task disk: a sparse file formatted as ext4 and loop-mounted at the task's
//! directory, holding `/mnt/task` (`task/`), `/tmp` (`tmp/`) and `$HOME` (`home/`). The
//! container's root filesystem is read-only, so these are all a task can write, and together
//! they cannot grow past the image's size. Workers expect a writable home (pip, npm and
//! language caches write there), so it gets one, fresh per task.
//!
//! Why a loop-mounted image: Docker's `--storage-opt size` needs overlay2 on XFS with project
//! quotas, which ordinary hosts (ext4) lack; a tmpfs would count against the task's memory;
//! an image file works on any filesystem, bounds every write including metadata, and costs
//! one `mkfs` (milliseconds: no journal, lazy inode tables) and one mount per task. The image
//! is sparse, so the host pays only for what the task writes.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use rustix::mount::UnmountFlags;

/// Space left below which the disk counts as full. ext4 starts refusing a task's writes
/// while a little space still shows as available (measured: up to about 600 KiB, whatever
/// the disk's size or the write's), so "full" has to allow for that.
const FULL_SLACK_BYTES: u64 = 1024 * 1024;

/// The subdirectory bind-mounted at `/mnt/task`.
pub(crate) const TASK_SUBDIR: &str = "task";
/// The subdirectory bind-mounted at `/tmp`.
pub(crate) const TMP_SUBDIR: &str = "tmp";
/// The subdirectory bind-mounted at the task user's home (`contract::HOME_DIR`).
pub(crate) const HOME_SUBDIR: &str = "home";

/// Where a task's disk lives: the image file and the mount point (the task's directory).
#[derive(Debug, Clone)]
pub(crate) struct TaskDisk {
    pub image: PathBuf,
    pub mount: PathBuf,
}

impl TaskDisk {
    /// Creates the image of `bytes`, formats it, mounts it and makes `task/`, `tmp/` and
    /// `home/` (owned by the task user `uid:gid`), first clearing what a crashed attempt may
    /// have left. Blocking.
    pub fn create(&self, bytes: u64, uid: u32, gid: u32) -> io::Result<()> {
        self.release()?;
        if let Some(parent) = self.image.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::File::create_new(&self.image)?.set_len(bytes)?;
        run(Command::new("mkfs.ext4")
            .args(["-q", "-F", "-b", "4096", "-m", "0", "-O", "^has_journal"])
            .args(["-E", "lazy_itable_init=1,nodiscard"])
            .arg(&self.image))?;
        std::fs::create_dir_all(&self.mount)?;
        // nosuid/nodev: nothing on the task's disk gains privileges. Not noexec: the
        // `binary` runtime executes the code it unpacked.
        run(Command::new("mount")
            .args(["-t", "ext4", "-o", "loop,nosuid,nodev"])
            .arg(&self.image)
            .arg(&self.mount))?;
        std::fs::create_dir(self.mount.join(TASK_SUBDIR))?;
        let tmp = self.mount.join(TMP_SUBDIR);
        std::fs::create_dir(&tmp)?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o1777))?;
        let home = self.mount.join(HOME_SUBDIR);
        std::fs::create_dir(&home)?;
        std::os::unix::fs::chown(&home, Some(uid), Some(gid))?;
        std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700))?;
        Ok(())
    }

    /// Unmounts (detaching the loop device), removes the image and then the mount point; what is
    /// already gone is fine. Blocking.
    pub fn release(&self) -> io::Result<()> {
        unmount_if_mounted(&self.mount)?;
        // The image goes before the mount point: a task dir that is gone then means the
        // whole disk is, for whoever waits on it.
        match std::fs::remove_file(&self.image) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            other => other?,
        }
        super::taskdir::remove_dir_if_present(&self.mount)
    }
}

/// True when the filesystem at `mount` has (practically) no space or no inodes left.
pub(crate) fn is_full(mount: &Path) -> bool {
    match rustix::fs::statvfs(mount) {
        Ok(s) => s.f_bavail.saturating_mul(s.f_frsize) < FULL_SLACK_BYTES || s.f_favail == 0,
        Err(_) => false,
    }
}

/// Unmounts every mount at or below `dir` (a runner crash leaves task disks mounted).
/// Blocking.
pub(crate) fn unmount_all_under(dir: &Path) -> io::Result<()> {
    let mut points: Vec<PathBuf> = mount_points()?
        .into_iter()
        .filter(|p| p.starts_with(dir))
        .collect();
    // Deepest first.
    points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for point in points {
        unmount(&point)?;
    }
    Ok(())
}

fn unmount_if_mounted(path: &Path) -> io::Result<()> {
    if mount_points()?.iter().any(|p| p == path) {
        unmount(path)?;
    }
    Ok(())
}

/// A plain unmount; if something still holds the filesystem (it should not: the container
/// is gone), a lazy one, so the mount point is free and the loop device detaches when the
/// last user lets go.
fn unmount(path: &Path) -> io::Result<()> {
    match rustix::mount::unmount(path, UnmountFlags::empty()) {
        Ok(()) => Ok(()),
        Err(rustix::io::Errno::BUSY) => {
            tracing::warn!(path = %path.display(), "task disk busy; detaching lazily");
            rustix::mount::unmount(path, UnmountFlags::DETACH).map_err(io::Error::from)
        }
        Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOENT) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Mount points of this process's mount namespace (`/proc/self/mountinfo`, field 5, with
/// its octal escapes undone).
fn mount_points() -> io::Result<Vec<PathBuf>> {
    let info = std::fs::read_to_string("/proc/self/mountinfo")?;
    Ok(info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(unescape(p)))
        .collect())
}

fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match octal {
            Some(d) => {
                let v = d.iter().fold(0u32, |acc, c| acc * 8 + u32::from(c - b'0'));
                out.push(v as u8);
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn run(command: &mut Command) -> io::Result<()> {
    let out = command.output().map_err(|e| {
        io::Error::new(
            e.kind(),
            format!(
                "running {:?} (task disks need root, mkfs.ext4 and mount): {e}",
                command.get_program()
            ),
        )
    })?;
    if out.status.success() {
        return Ok(());
    }
    Err(io::Error::other(format!(
        "{:?} failed: {}",
        command.get_program(),
        String::from_utf8_lossy(&out.stderr).trim()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes_are_undone() {
        assert_eq!(unescape("/a\\040b"), "/a b");
        assert_eq!(unescape("/plain"), "/plain");
        assert_eq!(unescape("/end\\"), "/end\\");
    }
}
