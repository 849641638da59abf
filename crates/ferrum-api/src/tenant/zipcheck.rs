//! Checks an uploaded code zip before anything is stored (brief §5).
//!
//! Runners unpack zips into the task directory, so a zip is refused when unpacking it could
//! write outside that directory (`..` components, absolute paths, symlinks pointing out) or
//! could fill the disk: the sizes the zip declares and the bytes it really inflates to are
//! both held to the limit, because a crafted zip can lie about the former.

use std::io::{self, Cursor, Read};

use zip::ZipArchive;

/// Why a zip was refused, as a message for the uploader.
pub type ZipProblem = String;

/// The file names in a zip that passed every check.
#[derive(Debug)]
pub struct CheckedZip {
    pub files: Vec<String>,
}

/// Checks `data` against the rules above; unpacks nothing to disk. CPU-bound: run it on a
/// blocking thread.
pub fn check(data: &[u8], max_unpacked: u64) -> Result<CheckedZip, ZipProblem> {
    if !data.starts_with(b"PK") {
        return Err("The file is not a zip archive".into());
    }
    let mut archive = ZipArchive::new(Cursor::new(data))
        .map_err(|e| format!("The file is not a readable zip archive: {e}"))?;
    let declared: u64 = (0..archive.len())
        .filter_map(|i| archive.by_index_raw(i).ok().map(|f| f.size()))
        .fold(0, u64::saturating_add);
    if declared > max_unpacked {
        return Err(too_big(max_unpacked));
    }
    let mut files = Vec::with_capacity(archive.len());
    let mut unpacked = 0u64;
    for i in 0..archive.len() {
        let mut entry = archive
            .by_index(i)
            .map_err(|e| format!("Zip entry {i} is unreadable: {e}"))?;
        let name = entry.name().to_owned();
        check_name(&name)?;
        if entry.is_symlink() {
            let mut target = String::new();
            entry
                .read_to_string(&mut target)
                .map_err(|e| format!("Symlink {name:?} is unreadable: {e}"))?;
            check_symlink(&name, &target)?;
            continue;
        }
        let budget = max_unpacked - unpacked;
        let read = io::copy(&mut (&mut entry).take(budget + 1), &mut io::sink())
            .map_err(|e| format!("Zip entry {name:?} is corrupt: {e}"))?;
        if read > budget {
            return Err(too_big(max_unpacked));
        }
        unpacked += read;
        if !entry.is_dir() {
            files.push(name);
        }
    }
    Ok(CheckedZip { files })
}

/// What to tell an uploader whose `file_name` is not among `files`: the entry it most likely
/// means, or else a few of the entries there are. The official Python client zips a directory
/// with the directory's name as a prefix (`pkg/worker.py`), so `executable="worker.py"` misses
/// by exactly that prefix; the suggestion names the path to use.
pub fn hint_for_missing(files: &[String], wanted: &str) -> String {
    let base = wanted.rsplit('/').next().unwrap_or(wanted);
    let suffix = format!("/{wanted}");
    let same_tail = files.iter().filter(|f| f.ends_with(&suffix));
    let same_base = files
        .iter()
        .filter(|f| f.rsplit('/').next() == Some(base) && !f.ends_with(&suffix));
    // The shortest path that ends with the whole name wins, then one with the same base name.
    let best = same_tail
        .min_by_key(|f| f.len())
        .or_else(|| same_base.min_by_key(|f| f.len()));
    if let Some(best) = best {
        return format!("; did you mean {best:?}?");
    }
    const SHOWN: usize = 5;
    let shown: Vec<String> = files.iter().take(SHOWN).map(|f| format!("{f:?}")).collect();
    match files.len() {
        0 => "; the zip holds no files".to_owned(),
        n if n <= SHOWN => format!("; the zip holds {}", shown.join(", ")),
        n => format!("; the zip holds {}, … ({n} files)", shown.join(", ")),
    }
}

fn too_big(max: u64) -> ZipProblem {
    format!("The zip unpacks to more than {max} bytes")
}

/// The path components of a zip entry name; both separators count, since unpackers on some
/// systems honour backslashes.
fn components(path: &str) -> impl Iterator<Item = &str> {
    path.split(['/', '\\'])
        .filter(|c| !c.is_empty() && *c != ".")
}

fn is_absolute(path: &str) -> bool {
    let bytes = path.as_bytes();
    path.starts_with(['/', '\\']) || (bytes.len() >= 2 && bytes[1] == b':')
}

fn check_name(name: &str) -> Result<(), ZipProblem> {
    if name.contains('\0') || is_absolute(name) || components(name).any(|c| c == "..") {
        return Err(format!(
            "Zip entry {name:?} has an absolute path or a \"..\" component"
        ));
    }
    Ok(())
}

/// A symlink may point anywhere inside the unpacked tree, never out of it.
fn check_symlink(name: &str, target: &str) -> Result<(), ZipProblem> {
    let escapes = || format!("Symlink {name:?} points outside the code directory: {target:?}");
    if is_absolute(target) {
        return Err(escapes());
    }
    let mut depth: usize = components(name).count().saturating_sub(1);
    for part in components(target) {
        if part == ".." {
            depth = depth.checked_sub(1).ok_or_else(escapes)?;
        } else {
            depth += 1;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use zip::write::SimpleFileOptions;
    use zip::ZipWriter;

    use super::*;

    fn zip_of(entries: &[(&str, &[u8])], symlinks: &[(&str, &str)]) -> Vec<u8> {
        let mut w = ZipWriter::new(Cursor::new(Vec::new()));
        let opts = SimpleFileOptions::default();
        for (name, data) in entries {
            w.start_file(*name, opts).unwrap();
            w.write_all(data).unwrap();
        }
        for (name, target) in symlinks {
            w.add_symlink(*name, *target, opts).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    #[test]
    fn a_missing_file_name_gets_a_hint() {
        let files: Vec<String> = ["pkg/worker.py", "pkg/lib/worker.py", "pkg/util.py"]
            .map(String::from)
            .to_vec();
        assert_eq!(
            hint_for_missing(&files, "worker.py"),
            "; did you mean \"pkg/worker.py\"?"
        );
        assert_eq!(
            hint_for_missing(&files, "src/util.py"),
            "; did you mean \"pkg/util.py\"?"
        );
        assert_eq!(
            hint_for_missing(&files, "main.py"),
            "; the zip holds \"pkg/worker.py\", \"pkg/lib/worker.py\", \"pkg/util.py\""
        );
        let many: Vec<String> = (0..7).map(|i| format!("f{i}")).collect();
        assert!(hint_for_missing(&many, "x").ends_with("… (7 files)"));
        assert_eq!(hint_for_missing(&[], "x"), "; the zip holds no files");
    }

    #[test]
    fn accepts_a_plain_package() {
        let data = zip_of(
            &[("hello.py", b"print(1)"), ("lib/x.py", b"")],
            &[("l", "lib/x.py")],
        );
        let checked = check(&data, 1024).unwrap();
        assert_eq!(checked.files, ["hello.py", "lib/x.py"]);
    }

    #[test]
    fn refuses_escaping_paths() {
        for name in [
            "../evil",
            "a/../../evil",
            "/etc/passwd",
            "C:\\evil",
            "a\\..\\..\\b",
        ] {
            let err = check(&zip_of(&[(name, b"x")], &[]), 1024).unwrap_err();
            assert!(err.contains("absolute path"), "{name}: {err}");
        }
    }

    #[test]
    fn refuses_symlinks_out_of_the_tree() {
        for target in ["/etc/passwd", "../x", "a/../../x"] {
            let err = check(&zip_of(&[], &[("link", target)]), 1024).unwrap_err();
            assert!(err.contains("outside"), "{target}: {err}");
        }
        assert!(check(&zip_of(&[], &[("dir/link", "../x")]), 1024).is_ok());
    }

    #[test]
    fn refuses_archives_that_unpack_past_the_limit() {
        let data = zip_of(&[("a", &[0u8; 600]), ("b", &[0u8; 600])], &[]);
        assert!(check(&data, 1000)
            .unwrap_err()
            .contains("more than 1000 bytes"));
        assert!(check(&data, 1200).is_ok());
    }

    #[test]
    fn refuses_what_is_not_a_zip() {
        assert!(check(b"hello", 1024).unwrap_err().contains("not a zip"));
        assert!(check(b"PK\x03\x04garbage", 1024)
            .unwrap_err()
            .contains("not a readable zip"));
    }
}
