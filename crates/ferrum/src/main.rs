//! `ferrum`: one binary for the API server, the runner daemon and operator commands.
//! Configuration precedence: flags > environment (`FERRUM_*`, `DATABASE_URL`) > defaults.

mod runner;
mod serve;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "ferrum",
    version,
    about = "Ferrum: an IronWorker-compatible task queue"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the API and its background duties against Postgres.
    Serve(serve::ServeArgs),
    /// Creates a runner token bound to a cluster and prints it.
    RunnerToken(serve::RunnerTokenArgs),
    /// Runs a runner daemon: leases tasks and runs each in a fresh Docker container.
    Runner(runner::RunnerArgs),
    /// Stack images.
    Stacks(runner::StacksArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("FERRUM_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .init();
    match Cli::parse().command {
        Command::Serve(args) => serve::serve(args).await,
        Command::RunnerToken(args) => serve::runner_token(args).await,
        Command::Runner(args) => runner::runner(args).await,
        Command::Stacks(args) => runner::stacks(args).await,
    }
}
