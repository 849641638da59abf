use std::io::Write;

use zip::write::SimpleFileOptions;

use super::*;

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "ferrum-unpack-{tag}-{}-{}",
        std::process::id(),
        chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
    ));
    fs::create_dir_all(&dir).unwrap();
    dir
}

enum Item<'a> {
    File(&'a str, &'a [u8]),
    Link(&'a str, &'a str),
}

fn make_zip(dir: &Path, items: &[Item<'_>]) -> PathBuf {
    let path = dir.join("code.zip");
    let mut w = zip::ZipWriter::new(File::create(&path).unwrap());
    let opts = SimpleFileOptions::default().unix_permissions(0o755);
    for item in items {
        match item {
            Item::File(name, data) => {
                w.start_file(*name, opts).unwrap();
                w.write_all(data).unwrap();
            }
            Item::Link(name, target) => w.add_symlink(*name, *target, opts).unwrap(),
        }
    }
    w.finish().unwrap();
    path
}

fn unpack(items: &[Item<'_>], limits: UnpackLimits) -> (PathBuf, Result<u64, UnpackError>) {
    let base = temp_dir("case");
    let zip = make_zip(&base, items);
    let dest = base.join("task");
    fs::create_dir(&dest).unwrap();
    let result = unpack_zip(&zip, &dest, limits);
    (base, result)
}

#[test]
fn unpacks_nested_files_and_internal_symlinks() {
    let (base, result) = unpack(
        &[
            Item::File("testDir/hello.py", b"print('hi')"),
            Item::File("./run.sh", b"echo"),
            Item::Link("testDir/alias.py", "hello.py"),
            Item::Link("up.sh", "testDir/../run.sh"),
        ],
        UnpackLimits::default(),
    );
    assert_eq!(result.unwrap(), 15);
    let dest = base.join("task");
    assert_eq!(
        fs::read(dest.join("testDir/alias.py")).unwrap(),
        b"print('hi')"
    );
    assert_eq!(fs::read(dest.join("up.sh")).unwrap(), b"echo");
    let mode = fs::metadata(dest.join("run.sh"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o755);
    fs::remove_dir_all(base).unwrap();
}

#[test]
fn rejects_traversal_and_absolute_paths() {
    for name in [
        "../evil",
        "a/../../evil",
        "/etc/evil",
        "\\evil",
        "C:/evil",
        "a/..\\..\\b",
    ] {
        let (base, result) = unpack(&[Item::File(name, b"x")], UnpackLimits::default());
        assert!(
            matches!(result, Err(UnpackError::UnsafePath(_))),
            "{name}: {result:?}"
        );
        assert!(!base.join("evil").exists());
        fs::remove_dir_all(base).unwrap();
    }
}

#[test]
fn rejects_escaping_symlinks() {
    for target in ["/etc/passwd", "../../etc", "..", "a/../../x"] {
        let (base, result) = unpack(&[Item::Link("link", target)], UnpackLimits::default());
        assert!(
            matches!(result, Err(UnpackError::UnsafeSymlink(_))),
            "{target}: {result:?}"
        );
        fs::remove_dir_all(base).unwrap();
    }
}

#[test]
fn caps_unpacked_size_by_bytes_written() {
    let big = vec![0u8; 10_000];
    let limits = UnpackLimits {
        max_bytes: 15_000,
        max_entries: 10,
    };
    let (base, result) = unpack(&[Item::File("a", &big), Item::File("b", &big)], limits);
    assert!(matches!(result, Err(UnpackError::TooLarge(15_000))));
    fs::remove_dir_all(base).unwrap();

    let files: Vec<String> = (0..11).map(|i| format!("f{i}")).collect();
    let items: Vec<Item<'_>> = files.iter().map(|f| Item::File(f, b"")).collect();
    let (base, result) = unpack(&items, limits);
    assert!(matches!(result, Err(UnpackError::TooManyEntries(10))));
    fs::remove_dir_all(base).unwrap();
}

#[test]
fn write_fresh_replaces_planted_symlink() {
    let base = temp_dir("fresh");
    let outside = base.join("outside");
    fs::write(&outside, b"keep").unwrap();
    let task = base.join("task");
    fs::create_dir(&task).unwrap();
    symlink(&outside, task.join("__payload__")).unwrap();
    write_fresh(&task.join("__payload__"), b"payload").unwrap();
    assert_eq!(fs::read(&outside).unwrap(), b"keep");
    assert_eq!(fs::read(task.join("__payload__")).unwrap(), b"payload");
    fs::remove_dir_all(base).unwrap();
}
