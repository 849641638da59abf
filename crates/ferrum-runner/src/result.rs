//! Reading a task's result: the file a worker wrote at `RESULT_FILE` (`__result__` in the
//! task directory), read on the host after the container has ended.
//!
//! The task directory belongs to untrusted code, so the file is read with care: only a
//! regular file counts (a symlink could point at any host file, a FIFO would block), and never
//! more than the cap and one byte are read, whatever size the file claims. The container has
//! ended (its processes are dead) before this runs, so the file cannot change in between.

use std::io::{self, Read};
use std::path::Path;

use crate::contract::RESULT_NAME;

/// What a task left at `RESULT_FILE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskResult {
    /// No result file: the task returned nothing.
    None,
    Bytes(Vec<u8>),
    /// Larger than the cap: `size` is the file's size (at least the cap and one byte).
    TooLarge {
        size: u64,
    },
    /// Something other than a regular file (a symlink, a directory, a FIFO).
    NotAFile,
}

/// Reads the result in the task directory `dir`, at most `cap` + 1 bytes. Blocking.
pub fn read(dir: &Path, cap: u64) -> io::Result<TaskResult> {
    let path = dir.join(RESULT_NAME);
    let meta = match std::fs::symlink_metadata(&path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(TaskResult::None),
        Err(e) => return Err(e),
    };
    if !meta.file_type().is_file() {
        return Ok(TaskResult::NotAFile);
    }
    if meta.len() > cap {
        return Ok(TaskResult::TooLarge { size: meta.len() });
    }
    let mut data = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    std::fs::File::open(&path)?
        .take(cap.saturating_add(1))
        .read_to_end(&mut data)?;
    if data.len() as u64 > cap {
        return Ok(TaskResult::TooLarge {
            size: data.len() as u64,
        });
    }
    Ok(TaskResult::Bytes(data))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("ferrum-result-{}", rand_suffix()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn rand_suffix() -> String {
        ferrum_model::Id::generate().to_string()
    }

    #[test]
    fn results_are_read_up_to_the_cap_and_only_from_regular_files() {
        let d = dir();
        assert_eq!(read(&d, 10).unwrap(), TaskResult::None);
        std::fs::write(d.join(RESULT_NAME), b"0123456789").unwrap();
        assert_eq!(
            read(&d, 10).unwrap(),
            TaskResult::Bytes(b"0123456789".to_vec())
        );
        assert_eq!(read(&d, 9).unwrap(), TaskResult::TooLarge { size: 10 });
        std::fs::remove_file(d.join(RESULT_NAME)).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", d.join(RESULT_NAME)).unwrap();
        assert_eq!(read(&d, 1 << 20).unwrap(), TaskResult::NotAFile);
        std::fs::remove_dir_all(&d).unwrap();
    }
}
