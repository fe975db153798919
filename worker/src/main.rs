//! `allsweep-worker`: the process that trains. `train` runs one trial offline; `inspect`
//! shows the training core (models, losses, metrics, a timed training step) at work on the
//! user's own inputs; the coordinator agent joins them with the distributed-sweeps issue.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod inspect;
mod train_command;

#[derive(Parser)]
#[command(
    name = "allsweep-worker",
    version,
    about = "allsweep's worker: trains segmentation networks with the paper's losses"
)]
#[command(arg_required_else_help = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check the training core by hand: a model's size, a loss and its gradient, metrics, a timed step.
    #[command(subcommand)]
    Inspect(inspect::InspectCommand),
    /// Train one trial offline from a RUN.toml (no coordinator).
    Train(train_command::TrainArgs),
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Inspect(command) => inspect::run(command),
        Command::Train(args) => train_command::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
