//! The `allsweep` subcommands.

mod local;
mod remote;
mod serve;
pub mod summary;

use clap::Subcommand;

/// Where the coordinator is and how to authenticate, for the client commands.
#[derive(clap::Args, Clone)]
pub struct Connection {
    /// The coordinator's address.
    #[arg(long, env = "ALLSWEEP_COORDINATOR", default_value = "http://127.0.0.1:50051")]
    pub coordinator: String,
    /// The coordinator's token, when it has one.
    #[arg(long, env = "ALLSWEEP_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

#[derive(Subcommand)]
pub enum Command {
    /// One machine: an embedded coordinator on SQLite, N local workers; prints the results.
    Run(local::RunArgs),
    /// Run the coordinator.
    Serve(serve::ServeArgs),
    /// Submit a sweep spec; prints the sweep id (resubmitting the same spec adds nothing).
    Submit(remote::SubmitArgs),
    /// Sweeps and their trials.
    Status(remote::StatusArgs),
    /// Live progress of a sweep until it ends.
    Watch(remote::SweepArg),
    /// Cancel a sweep: running trials stop within a heartbeat, queued ones never start.
    Cancel(remote::SweepArg),
    /// The workers the coordinator knows.
    Workers(remote::WorkersArgs),
    /// Per-config results of a sweep: mean and spread over seeds.
    Results(remote::SweepArg),
}

pub async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Run(args) => local::run(args).await,
        Command::Serve(args) => serve::run(args).await,
        Command::Submit(args) => remote::submit(args).await,
        Command::Status(args) => remote::status(args).await,
        Command::Watch(args) => remote::watch(args).await,
        Command::Cancel(args) => remote::cancel(args).await,
        Command::Workers(args) => remote::workers(args).await,
        Command::Results(args) => remote::results(args).await,
    }
}
