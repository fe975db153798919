//! The `allsweep` subcommands.

mod local;
mod plot;
mod remote;
mod report;
mod serve;
pub mod summary;
mod token;

use clap::Subcommand;

/// Where the coordinator is and how to authenticate, for the client commands (global: also
/// after a subcommand, as in `allsweep workers drain ID --coordinator URL`).
#[derive(clap::Args, Clone)]
pub struct Connection {
    /// The coordinator's address.
    #[arg(long, global = true, env = "ALLSWEEP_COORDINATOR", default_value = "http://127.0.0.1:50051")]
    pub coordinator: String,
    /// The coordinator's token, when it has one (a flag shows in the process list: prefer ALLSWEEP_TOKEN or --token-file).
    #[arg(long, global = true, env = "ALLSWEEP_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// A file whose first line is the token; wins over --token and ALLSWEEP_TOKEN.
    #[arg(long, global = true, env = "ALLSWEEP_TOKEN_FILE")]
    pub token_file: Option<std::path::PathBuf>,
    /// For an https:// coordinator: the PEM authority that signed its certificate [default: the system's].
    #[arg(long, global = true, env = "ALLSWEEP_TLS_CA")]
    pub tls_ca: Option<std::path::PathBuf>,
    /// This client's PEM certificate, for a coordinator that requires one (mutual TLS).
    #[arg(long, global = true, env = "ALLSWEEP_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, global = true, env = "ALLSWEEP_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,
}

impl Connection {
    /// The TLS files given.
    pub fn tls(&self) -> allsweep_proto::tls::ClientTls {
        allsweep_proto::tls::ClientTls {
            ca: self.tls_ca.clone(),
            cert: self.tls_cert.clone(),
            key: self.tls_key.clone(),
        }
    }
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
    /// The paper's tables from the database: per-config statistics, pivots, paired comparisons.
    Report(report::ReportArgs),
    /// The paper's figures: ALL's derivative, ROC curves, validation curves (PNG or SVG).
    Plot(plot::PlotArgs),
    /// Tokens with roles (worker, user, admin): create, list, revoke. Needs an admin token.
    Token(token::TokenArgs),
}

/// Sweep arguments: a sweep id, or the path of the spec file that made it (its id is derived
/// from the spec, so `allsweep report spec.toml` reports the sweep of that spec).
pub fn resolve_sweeps(args: &[String]) -> anyhow::Result<Vec<String>> {
    args.iter()
        .map(|arg| {
            let path = std::path::Path::new(arg);
            if arg.ends_with(".toml") && path.is_file() {
                let text = std::fs::read_to_string(path)?;
                let spec = allsweep_coordinator::spec::Spec::parse_with(
                    &text,
                    &allsweep_coordinator::spec::SpecLimits::UNLIMITED,
                )
                .map_err(|e| anyhow::anyhow!("{arg}: {e}"))?;
                Ok(spec.id)
            } else {
                Ok(arg.clone())
            }
        })
        .collect()
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
        Command::Report(args) => report::run(args).await,
        Command::Plot(args) => plot::run(args).await,
        Command::Token(args) => token::run(args).await,
    }
}
