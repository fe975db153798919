//! `allsweep-worker`: the process that trains. Today it offers `inspect`, which shows the
//! training core (models, losses, metrics, a timed training step) at work on the user's own
//! inputs; the trainer and the coordinator agent join it in later issues.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod inspect;

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
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Inspect(command) => inspect::run(command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
