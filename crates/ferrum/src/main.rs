//! `ferrum`: one binary for the API server, the runner daemon, the all-in-one `dev` mode,
//! operator commands and the tenant CLI.
//! Configuration precedence: flags > environment (`FERRUM_*`, `DATABASE_URL`, `IRON_*`) >
//! config file (`iron.json`, for the CLI) > defaults.
//!
//! Every failure ends the process with one line on stderr and exit status 1.

mod cli;
mod dev;
mod runner;
mod runner_health;
mod serve;
mod server;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(
    name = "ferrum",
    version,
    about = "Ferrum: an IronWorker-compatible task queue"
)]
struct Cli {
    /// How commands print their results.
    #[arg(long, global = true, value_enum, default_value = "table")]
    output: cli::Format,
    /// How servers (serve, runner, dev) write their logs: text (coloured only on a terminal)
    /// or json, one object per line, for log collectors.
    #[arg(
        long,
        global = true,
        value_enum,
        env = "FERRUM_LOG_FORMAT",
        default_value = "text"
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the API and its background duties against Postgres.
    Serve(serve::ServeArgs),
    /// Runs everything in one process on SQLite and local files: the API, its duties and a
    /// runner. Needs only a Docker engine.
    Dev(dev::DevArgs),
    /// Creates a runner token bound to a cluster and prints it.
    RunnerToken(serve::RunnerTokenArgs),
    /// Runs a runner daemon: leases tasks and runs each in a fresh Docker container.
    Runner(runner::RunnerArgs),
    /// Stack images.
    Stacks(runner::StacksArgs),
    /// Prints a shell completion script (bash, zsh, fish, elvish, powershell), e.g.
    /// `ferrum completions bash > /etc/bash_completion.d/ferrum`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    #[command(flatten)]
    Client(cli::Command),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// Logs go to stderr: as text, with colour only when stderr is a terminal (a log file gets no
/// escape codes), or as JSON lines.
fn init_logging(format: LogFormat, default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("FERRUM_LOG")
        .unwrap_or_else(|_| default_level.into());
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter);
    match format {
        LogFormat::Json => builder.json().with_current_span(false).init(),
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
    }
}

/// Writes the completion script to stdout; a closed pipe is an error, not a panic.
fn completions(shell: clap_complete::Shell) -> anyhow::Result<()> {
    use std::io::Write;
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "ferrum", &mut script);
    let mut out = std::io::stdout();
    out.write_all(&script)?;
    out.flush()?;
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // Servers log their progress; client commands only speak up about problems.
    let default_level = match cli.command {
        Command::Client(_) | Command::Completions { .. } => "warn",
        _ => "info",
    };
    init_logging(cli.log_format, default_level);
    let result = match cli.command {
        Command::Serve(args) => serve::serve(args).await,
        Command::Dev(args) => dev::dev(args).await,
        Command::RunnerToken(args) => serve::runner_token(args).await,
        Command::Runner(args) => runner::runner(args).await,
        Command::Stacks(args) => runner::stacks(args).await,
        Command::Completions { shell } => completions(shell),
        Command::Client(command) => cli::run(command, cli.output).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
