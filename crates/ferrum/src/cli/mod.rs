//! The tenant CLI: everything a tenant does, over HTTP to the API only (except `run-local`,
//! which needs no API). Settings come from `iron.json` and `IRON_*` like the official clients
//! (see [`config`]); every command prints a table or, with `--output json`, JSON.

mod batch;
mod bulk;
mod client;
mod code;
mod config;
mod fleet;
mod local;
mod output;
mod package;
mod progress;
mod project;
mod quotas;
mod result;
mod schedules;
mod tasks;
mod webhooks;

pub use output::Format;

use client::Api;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Saves the API address, token and project to ~/.iron.json (also read by the official
    /// IronWorker clients) and shows the settings in effect.
    Configure(project::ConfigureArgs),
    /// Projects.
    #[command(subcommand)]
    Project(ProjectCommand),
    /// Uploads a directory as a new revision of a code (zipped on the fly).
    Upload(code::UploadArgs),
    /// Queues a task (or, with --jsonl, one per line of a file); prints the ids.
    Queue(tasks::QueueArgs),
    /// Cancels a task (a task that already ended stays as it is).
    Cancel {
        /// The task id.
        id: String,
    },
    /// Queues a copy of a task; prints the new task's id.
    Retry {
        /// The task id.
        id: String,
        #[command(flatten)]
        delay: tasks::DelayArg,
    },
    /// Shows a task.
    Status {
        /// The task id.
        id: String,
    },
    /// Prints a task's log (stdout and stderr). With --follow, waits for the task to end and
    /// exits non-zero unless it completed.
    Log {
        /// The task id.
        id: String,
        /// Keep printing new output until the task ends.
        #[arg(long, short)]
        follow: bool,
    },
    /// Prints a task's result (what it wrote to RESULT_FILE).
    Result {
        /// The task id.
        id: String,
    },
    /// Lists tasks, codes or schedules, newest first.
    #[command(subcommand)]
    List(ListCommand),
    /// Schedules.
    #[command(subcommand)]
    Schedule(ScheduleCommand),
    /// Deletes, pauses or resumes a code.
    #[command(subcommand)]
    Code(code::CodeCommand),
    /// Creates a webhook URL for a code and prints it: a third party POSTs to it (no token)
    /// to queue a task with the request body as its payload. `list` and `revoke` manage them.
    Webhook(webhooks::WebhookCommand),
    /// A project's quotas: concurrency, queued tasks, tasks per minute, retention (`set`
    /// needs an admin token).
    #[command(subcommand)]
    Quota(quotas::QuotaCommand),
    /// Batches: one task per item of a JSON-lines file, then an optional reduce task.
    #[command(subcommand)]
    Batch(batch::BatchCommand),
    /// Lists runners (admin token): version, status (active, draining, drained, offline),
    /// running tasks; `ferrum runners drain ID` drains one.
    Runners(fleet::RunnersArgs),
    /// Lists clusters (admin token), each with its live runners summed up.
    Clusters,
    /// Runs a worker directory once on this machine, in the same stack image and under the
    /// same contract as on the service (needs Docker, not the API).
    RunLocal(local::RunLocalArgs),
}

#[derive(clap::Subcommand)]
pub enum ProjectCommand {
    /// Creates a project; prints its id.
    Create { name: String },
    /// Lists the projects the token may use.
    List,
}

#[derive(clap::Subcommand)]
pub enum ListCommand {
    Tasks(tasks::ListTasksArgs),
    Codes,
    Schedules,
}

/// Parsed once per process, so the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(clap::Subcommand)]
pub enum ScheduleCommand {
    /// Creates a schedule; prints its id.
    Create(schedules::CreateArgs),
    /// Changes a schedule: its payload, options, timing or limits; prints the next run.
    Update(schedules::UpdateArgs),
    /// Pauses a schedule: it stays scheduled but queues nothing until resumed.
    Pause { id: String },
    /// Resumes a paused schedule at its next future slot (missed slots are not made up).
    Resume { id: String },
    /// Cancels a schedule (tasks it already queued are not touched).
    Cancel { id: String },
}

pub async fn run(command: Command, format: Format) -> anyhow::Result<()> {
    let api = || Api::new(&config::load()?);
    match command {
        Command::Configure(args) => project::configure(args, format).await,
        Command::Project(ProjectCommand::Create { name }) => {
            project::create(&api()?, &name, format).await
        }
        Command::Project(ProjectCommand::List) => project::list(&api()?, format).await,
        Command::Upload(args) => code::upload(&api()?, args, format).await,
        Command::Queue(args) => tasks::queue(&api()?, args, format).await,
        Command::Status { id } => tasks::status(&api()?, &id, format).await,
        Command::Log { id, follow } => tasks::log(&api()?, &id, follow, format).await,
        Command::Cancel { id } => tasks::cancel(&api()?, &id, format).await,
        Command::Retry { id, delay } => tasks::retry(&api()?, &id, delay, format).await,
        Command::Code(cmd) => code::command(&api()?, cmd, format).await,
        Command::Result { id } => result::result(&api()?, &id, format).await,
        Command::List(ListCommand::Tasks(args)) => tasks::list(&api()?, args, format).await,
        Command::List(ListCommand::Codes) => code::list(&api()?, format).await,
        Command::List(ListCommand::Schedules) => schedules::list(&api()?, format).await,
        Command::Schedule(ScheduleCommand::Create(args)) => {
            schedules::create(&api()?, args, format).await
        }
        Command::Schedule(ScheduleCommand::Update(args)) => {
            schedules::update(&api()?, args, format).await
        }
        Command::Schedule(ScheduleCommand::Pause { id }) => {
            schedules::set_paused(&api()?, &id, "pause", format).await
        }
        Command::Schedule(ScheduleCommand::Resume { id }) => {
            schedules::set_paused(&api()?, &id, "resume", format).await
        }
        Command::Schedule(ScheduleCommand::Cancel { id }) => {
            schedules::cancel(&api()?, &id, format).await
        }
        Command::Webhook(cmd) => webhooks::command(&api()?, cmd, format).await,
        Command::Batch(cmd) => batch::run(&api()?, cmd, format).await,
        Command::RunLocal(args) => local::run_local(args, format).await,
        Command::Quota(cmd) => quotas::command(&api()?, cmd, format).await,
        Command::Runners(args) => fleet::runners(&api()?, args, format).await,
        Command::Clusters => fleet::clusters(&api()?, format).await,
    }
}
