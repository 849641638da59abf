//! The waiting init of a parked container, and how the runner hands it a task.
//!
//! A container's command, environment and working directory are fixed when it is created, so a
//! container created before its task runs a tiny init instead (plain `sh` of the stack image):
//! it opens the FIFO `go` of its control directory (read-write, which never blocks), prints
//! one marker line, and blocks reading the FIFO: no CPU, no polling, the memory of one shell.
//! At lease time the runner writes the task's files onto the container's disk and the
//! script `task.sh` (the contract's working dir, environment and argv, shell-quoted) into the
//! control directory, then writes one line to the FIFO. The init closes the FIFO and sources
//! the script, whose `exec env … argv` replaces the shell with the worker: same pid 1, uid,
//! cgroup limits and sandbox as the container was created with, the environment Docker would
//! have given (the image's, plus the task's; `env -u` drops the two variables the shell
//! itself added).
//!
//! The control directory lives on the container's disk and is mounted read-only at
//! [`CONTROL_DIR`]; only the runner writes it. The marker is read off the attach stream
//! before the task is handed over and never reaches the task's log.

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use rustix::fs::{FileType, Mode, OFlags};

use crate::contract::Invocation;

/// The subdirectory of a parked container's disk that holds its FIFO and task script.
pub(crate) const CONTROL_SUBDIR: &str = "ctl";
/// Where the control directory is mounted (read-only) inside the container.
pub(crate) const CONTROL_DIR: &str = "/run/ferrum";
/// The line the init prints once it holds the FIFO open, so a write cannot miss it.
pub(crate) const READY: &[u8] = b"ferrum-init-ready\n";
const FIFO: &str = "go";
const SCRIPT: &str = "task.sh";

/// What a parked container runs until its task arrives.
pub(crate) fn invocation() -> Invocation {
    let script = format!(
        "exec 3<>{CONTROL_DIR}/{FIFO} && printf 'ferrum-init-ready\\n' && read -r go <&3 \
         && exec 3<&- && . {CONTROL_DIR}/{SCRIPT}"
    );
    Invocation {
        entrypoint: Some(vec!["sh".to_owned(), "-c".to_owned(), script]),
        cmd: Some(Vec::new()),
        working_dir: None,
        env: Vec::new(),
    }
}

/// The script that turns the init into the worker: `cd` to the contract's working dir, then
/// `exec env` with the task's environment and argv. Every word is single-quoted, so nothing in
/// a value is interpreted. `None` when the invocation cannot be written as one (no argv, or a
/// NUL byte, which no environment or argv can hold): such a task runs cold.
pub(crate) fn task_script(invocation: &Invocation, env: &[String]) -> Option<String> {
    let argv = invocation.entrypoint.as_ref().filter(|a| !a.is_empty())?;
    let cwd = invocation.working_dir.as_deref()?;
    let words = env.iter().chain(argv.iter());
    if invocation.cmd.is_some() || words.clone().any(|w| w.contains('\0')) {
        return None;
    }
    let mut script = format!(
        "cd {} || exit 126\nexec env -u PWD -u OLDPWD --",
        quote(cwd)
    );
    for word in words {
        script.push(' ');
        script.push_str(&quote(word));
    }
    script.push('\n');
    Some(script)
}

fn quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// Makes the control directory on a freshly mounted disk: root-owned, with the FIFO owned by
/// the task user (the init runs as that user). Blocking.
pub(crate) fn prepare(mount: &Path, uid: u32, gid: u32) -> io::Result<()> {
    let dir = mount.join(CONTROL_SUBDIR);
    std::fs::create_dir(&dir)?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))?;
    let fifo = dir.join(FIFO);
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &fifo,
        FileType::Fifo,
        Mode::from_raw_mode(0o600),
        0,
    )?;
    std::os::unix::fs::chown(&fifo, Some(uid), Some(gid))?;
    Ok(())
}

/// Writes the task script (readable, not writable, by the task user). Blocking.
pub(crate) fn write_script(mount: &Path, script: &str) -> io::Result<()> {
    let path = mount.join(CONTROL_SUBDIR).join(SCRIPT);
    std::fs::write(&path, script)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))
}

/// Releases the init: one line into its FIFO. Fails (`ENXIO`) when nothing holds the FIFO
/// open, that is when the init is gone. Never blocks: the FIFO is empty until now.
pub(crate) fn release(mount: &Path) -> io::Result<()> {
    let fifo = mount.join(CONTROL_SUBDIR).join(FIFO);
    let flags = OFlags::WRONLY | OFlags::NONBLOCK | OFlags::CLOEXEC;
    let fd = rustix::fs::open(&fifo, flags, Mode::empty())?;
    let written = rustix::io::write(&fd, b"go\n")?;
    if written != 3 {
        return Err(io::Error::other("short write to the init's FIFO"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invocation(argv: &[&str]) -> Invocation {
        Invocation {
            entrypoint: Some(argv.iter().map(|s| s.to_string()).collect()),
            cmd: None,
            working_dir: Some("/mnt/task".into()),
            env: Vec::new(),
        }
    }

    #[test]
    fn every_word_is_quoted_and_quotes_survive() {
        let env = vec!["A=it's".to_owned(), "B=$(x) `y` \\n\nz".to_owned()];
        let script = task_script(&invocation(&["sh", "run.sh", "-id", "a b"]), &env).unwrap();
        assert_eq!(
            script,
            "cd '/mnt/task' || exit 126\nexec env -u PWD -u OLDPWD -- 'A=it'\\''s' \
             'B=$(x) `y` \\n\nz' 'sh' 'run.sh' '-id' 'a b'\n"
        );
    }

    #[test]
    fn what_a_script_cannot_say_runs_cold() {
        assert_eq!(
            task_script(&invocation(&["sh"]), &["A=\0".to_owned()]),
            None
        );
        assert_eq!(task_script(&invocation(&[]), &[]), None);
        let mut image_default = invocation(&["sh"]);
        image_default.working_dir = None;
        assert_eq!(task_script(&image_default, &[]), None);
    }
}
