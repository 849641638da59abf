//! The worker runtime contract (`docs/IRONWORKER.md` §6) as pure functions: given a
//! [`RunSpec`] and the task's identity, what the container runs, with which environment and in
//! which directory. Kept free of IO so the contract can be unit-tested exhaustively and the
//! executor only has to translate an [`Invocation`] into a Docker create call.

use std::collections::BTreeMap;

use ferrum_model::protocol::RunSpec;

/// Where the task directory is mounted inside the container (§6.4; the original API ran
/// `sh /mnt/task/.runtask`).
pub const TASK_DIR: &str = "/mnt/task";
/// The payload file inside the container, always present (§6.4, Ruby NG's name).
pub const PAYLOAD_FILE: &str = "/mnt/task/__payload__";
/// The config file inside the container, present only when the code has a config.
pub const CONFIG_FILE: &str = "/mnt/task/__config__";
/// The task user's home: writable, on the task's disk like `/mnt/task` and `/tmp` (the rest of
/// the filesystem is read-only), and fresh for every task. The stack images name it `$HOME`
/// of uid 1000 too.
pub const HOME_DIR: &str = "/home/ferrum";
/// Where a worker writes its result (`RESULT_FILE`); the runner reads it after the task ends.
pub const RESULT_FILE: &str = "/mnt/task/__result__";
/// Host-side file name of the result inside the task directory.
pub const RESULT_NAME: &str = "__result__";
/// A batch reduce task's input (`BATCH_RESULTS_FILE`): one JSON line per item, in index order.
pub const BATCH_RESULTS_FILE: &str = "/mnt/task/__batch_results__.jsonl";
/// Host-side file name of [`BATCH_RESULTS_FILE`] inside the task directory.
pub const BATCH_RESULTS_NAME: &str = "__batch_results__.jsonl";
/// Host-side file names of the payload and config inside the task directory.
pub const PAYLOAD_NAME: &str = "__payload__";
pub const CONFIG_NAME: &str = "__config__";

/// Who the task is, as far as the contract cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskIdentity {
    pub task_id: String,
    pub schedule_id: Option<String>,
    /// The task's project and task token (`IRON_PROJECT_ID`, `IRON_TOKEN`), when it has them.
    pub iron: Option<IronIdentity>,
    /// The batch of a reduce task (`BATCH_ID`, and `BATCH_RESULTS_FILE` is written).
    pub batch_id: Option<String>,
}

/// What the official clients inside a task need besides the API's address (which the
/// executor's API door gives as `IRON_HOST`/`IRON_PORT`/`IRON_PROTOCOL`).
#[derive(Clone, PartialEq, Eq)]
pub struct IronIdentity {
    pub project_id: String,
    pub token: String,
}

impl std::fmt::Debug for IronIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IronIdentity")
            .field("project_id", &self.project_id)
            .finish_non_exhaustive()
    }
}

/// What to ask Docker for. `None` fields keep the image's own settings, which is what
/// Docker-style codes without a zip rely on (`WORKDIR /app`, `ENTRYPOINT`, `CMD`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    /// Replaces the image's ENTRYPOINT (an empty vector clears it).
    pub entrypoint: Option<Vec<String>>,
    /// Replaces the image's CMD.
    pub cmd: Option<Vec<String>>,
    pub working_dir: Option<String>,
    /// `KEY=VALUE` pairs, sorted by key, without duplicates.
    pub env: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContractError {
    #[error("code has no runtime and is not a Docker image")]
    MissingRuntime,
    #[error("unsupported runtime {0:?}")]
    UnknownRuntime(String),
    #[error("code has no file_name to run")]
    MissingFileName,
    #[error("file_name {0:?} must be a relative path inside the task directory")]
    BadFileName(String),
}

/// True when the code has a config worth writing: an empty config is treated as none so that
/// Python's `config()` returns None instead of printing a parse failure (§6.4).
pub fn has_config(spec: &RunSpec) -> bool {
    spec.config.as_deref().is_some_and(|c| !c.is_empty())
}

/// The full invocation for a task: argv, environment and working directory.
pub fn invocation(spec: &RunSpec, task: &TaskIdentity) -> Result<Invocation, ContractError> {
    let env = environment(spec, task);
    if spec.docker_style {
        return Ok(docker_style(spec, env));
    }
    let runtime = spec
        .runtime
        .as_deref()
        .filter(|r| !r.is_empty())
        .ok_or(ContractError::MissingRuntime)?;
    let file_name = spec
        .file_name
        .as_deref()
        .filter(|f| !f.is_empty())
        .ok_or(ContractError::MissingFileName)?;
    let mut argv = runtime_command(runtime, file_name)?;
    argv.extend(worker_args(&task.task_id, has_config(spec)));
    Ok(Invocation {
        entrypoint: Some(argv),
        cmd: None,
        working_dir: Some(TASK_DIR.to_owned()),
        env,
    })
}

/// The flags appended for old-style codes, in the order §6.2 requires: `-d` first (the Go
/// runner script loops until the first argument is `-d`), `-config` only with a config, no
/// `-e` or `-schedule_id` (Go's flag parser would exit on them), and never a flag last.
pub fn worker_args(task_id: &str, with_config: bool) -> Vec<String> {
    let mut args = vec!["-d", TASK_DIR, "-payload", PAYLOAD_FILE];
    if with_config {
        args.extend(["-config", CONFIG_FILE]);
    }
    args.extend(["-id", task_id]);
    args.into_iter().map(str::to_owned).collect()
}

/// The command that runs `file_name` for a runtime (§6.2 table). Versioned names such as
/// `python-3.11` or `node-18` map to their family: the stack image decides the version.
pub fn runtime_command(runtime: &str, file_name: &str) -> Result<Vec<String>, ContractError> {
    check_file_name(file_name)?;
    let family = runtime
        .split(['-', '.'])
        .next()
        .unwrap_or(runtime)
        .trim_end_matches(|c: char| c.is_ascii_digit())
        .to_ascii_lowercase();
    let argv: Vec<&str> = match family.as_str() {
        "sh" | "bash" => vec![family.as_str(), file_name],
        "python" => vec!["python", "-u", file_name],
        "ruby" => vec!["ruby", file_name],
        "php" => vec!["php", file_name],
        "node" | "nodejs" => vec!["node", file_name],
        // `chmod +x FILE && ./FILE ARGS`: the shell receives the file as $0 and the worker
        // flags as "$@", so nothing is re-parsed by the shell.
        "binary" => vec![
            "sh",
            "-c",
            "chmod +x \"./$0\" && exec \"./$0\" \"$@\"",
            file_name,
        ],
        _ => return Err(ContractError::UnknownRuntime(runtime.to_owned())),
    };
    Ok(argv.into_iter().map(str::to_owned).collect())
}

fn check_file_name(file_name: &str) -> Result<(), ContractError> {
    let bad = file_name.starts_with('/')
        || file_name.starts_with('-')
        || file_name.contains('\0')
        || file_name.split('/').any(|c| c == "..");
    if bad {
        return Err(ContractError::BadFileName(file_name.to_owned()));
    }
    Ok(())
}

/// Docker-style codes get the environment only (§6.3). With a zip, `command` runs through
/// `sh -c` in the task directory; without one the image keeps its WORKDIR and ENTRYPOINT, and
/// a non-empty `command` replaces CMD, split on whitespace as the Iron runner did.
fn docker_style(spec: &RunSpec, env: Vec<String>) -> Invocation {
    let command = spec.command.as_deref().map(str::trim).unwrap_or_default();
    if spec.has_zip {
        let entrypoint = if command.is_empty() {
            None
        } else {
            Some(vec!["sh".to_owned(), "-c".to_owned(), command.to_owned()])
        };
        let cmd = entrypoint.as_ref().map(|_| Vec::new());
        return Invocation {
            entrypoint,
            cmd,
            working_dir: Some(TASK_DIR.to_owned()),
            env,
        };
    }
    let cmd = if command.is_empty() {
        None
    } else {
        Some(command.split_whitespace().map(str::to_owned).collect())
    };
    Invocation {
        entrypoint: None,
        cmd,
        working_dir: None,
        env,
    }
}

/// The container environment: the code's `env_vars`, then the contract variables, which win
/// on a clash because every official helper trusts them over argv (§6.1), and `HOME` (the
/// writable [`HOME_DIR`]) unless the code sets its own. Names that Docker cannot represent
/// (empty or containing `=`) are dropped.
pub fn environment(spec: &RunSpec, task: &TaskIdentity) -> Vec<String> {
    let mut env: BTreeMap<&str, &str> = spec
        .env_vars
        .iter()
        .filter(|(k, _)| !k.is_empty() && !k.contains('=') && !k.contains('\0'))
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    env.entry("HOME").or_insert(HOME_DIR);
    env.insert("TASK_ID", &task.task_id);
    env.insert("TASK_DIR", TASK_DIR);
    env.insert("PAYLOAD_FILE", PAYLOAD_FILE);
    env.insert("RESULT_FILE", RESULT_FILE);
    match &task.iron {
        Some(iron) => {
            env.insert("IRON_PROJECT_ID", &iron.project_id);
            env.insert("IRON_TOKEN", &iron.token);
        }
        None => {
            env.remove("IRON_PROJECT_ID");
            env.remove("IRON_TOKEN");
        }
    }
    match &task.batch_id {
        Some(id) => {
            env.insert("BATCH_ID", id);
            env.insert("BATCH_RESULTS_FILE", BATCH_RESULTS_FILE);
        }
        None => {
            env.remove("BATCH_ID");
            env.remove("BATCH_RESULTS_FILE");
        }
    }
    if has_config(spec) {
        env.insert("CONFIG_FILE", CONFIG_FILE);
    } else {
        env.remove("CONFIG_FILE");
    }
    match task.schedule_id.as_deref() {
        Some(id) => env.insert("SCHEDULE_ID", id),
        None => env.remove("SCHEDULE_ID"),
    };
    env.into_iter().map(|(k, v)| format!("{k}={v}")).collect()
}

#[cfg(test)]
#[path = "contract_tests.rs"]
mod tests;
