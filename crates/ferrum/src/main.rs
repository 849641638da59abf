//! `ferrum`: one binary for the API server, the runner daemon, the all-in-one `dev` mode,
//! operator commands and the tenant CLI.
//! Configuration precedence: flags > environment (`FERRUM_*`, `DATABASE_URL`, `IRON_*`) >
//! config file (`iron.json`, for the CLI) > defaults.
//!
//! Every failure ends the process with one line on stderr and exit status 1.

mod cli;
mod dev;
mod runner;
mod serve;
mod server;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

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
    #[command(flatten)]
    Client(cli::Command),
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // Servers log their progress; client commands only speak up about problems.
    let default_level = match cli.command {
        Command::Client(_) => "warn",
        _ => "info",
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("FERRUM_LOG")
                .unwrap_or_else(|_| default_level.into()),
        )
        .init();
    let result = match cli.command {
        Command::Serve(args) => serve::serve(args).await,
        Command::Dev(args) => dev::dev(args).await,
        Command::RunnerToken(args) => serve::runner_token(args).await,
        Command::Runner(args) => runner::runner(args).await,
        Command::Stacks(args) => runner::stacks(args).await,
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
