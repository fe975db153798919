//! `allsweep-worker`: the process that trains. `train` runs one trial offline; `inspect`
//! shows the training core (models, losses, metrics, a timed training step) at work on the
//! user's own inputs; the coordinator agent joins them with the distributed-sweeps issue.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod inspect;
use allsweep_worker::agent;
mod train_command;

#[derive(Parser)]
#[command(
    name = "allsweep-worker",
    version,
    about = "allsweep's worker: trains segmentation networks with the paper's losses"
)]
#[command(arg_required_else_help = true, args_conflicts_with_subcommands = true, args_override_self = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    agent: AgentArgs,
}

/// Without a subcommand: work for a coordinator.
#[derive(clap::Args)]
struct AgentArgs {
    /// The coordinator to work for, e.g. http://coordinator:50051.
    #[arg(long, env = "ALLSWEEP_COORDINATOR")]
    coordinator: Option<String>,
    /// The coordinator's token, when it has one (a flag shows in the process list: prefer ALLSWEEP_TOKEN or --token-file).
    #[arg(long, env = "ALLSWEEP_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// A file whose first line is the token; wins over --token and ALLSWEEP_TOKEN.
    #[arg(long, env = "ALLSWEEP_TOKEN_FILE")]
    token_file: Option<std::path::PathBuf>,
    /// For an https:// coordinator: the PEM authority that signed its certificate [default: the system's].
    #[arg(long, env = "ALLSWEEP_TLS_CA")]
    tls_ca: Option<std::path::PathBuf>,
    /// This worker's PEM certificate, for a coordinator that requires one (mutual TLS).
    #[arg(long, env = "ALLSWEEP_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<std::path::PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, env = "ALLSWEEP_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,
    /// auto (every visible GPU, else the CPU), all (every visible GPU), cpu, or GPUs by name:
    /// cuda:0,cuda:2.
    #[arg(long, env = "ALLSWEEP_DEVICE", default_value = "auto")]
    device: String,
    /// Trials trained at once on each device, at most. Where the device's memory is known (a
    /// GPU NVML can read, or --memory-budget), it also takes trials only while their memory
    /// estimates fit [default: 16 where memory is known, else 1].
    #[arg(long, env = "ALLSWEEP_SLOTS")]
    slots: Option<u32>,
    /// The memory trials may take on each device, e.g. 24GiB: leases then go by the trials'
    /// memory estimates as well as by --slots [default: a GPU's free memory at start less
    /// 1 GiB for the worker's CUDA context; none on a CPU].
    #[arg(long, env = "ALLSWEEP_MEMORY_BUDGET", value_parser = allsweep_config::memory::parse_bytes)]
    memory_budget: Option<u64>,
    /// Train up to N compatible trials (same data, network, batch size, epochs and precision;
    /// any seeds, losses and learning rates) as one fused network, each with the numbers it
    /// would reach alone; a slot then holds such a group. 1: every trial alone.
    #[arg(long, env = "ALLSWEEP_FUSE", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=256))]
    fuse: u32,
    /// Where relative data-set roots resolve [default: $ALLSWEEP_DATA, else ../shared/data].
    #[arg(long)]
    data_dir: Option<std::path::PathBuf>,
    /// The host's work directory: each worker keeps its local checkpoints in a folder of its
    /// own there, removed when it exits; a killed worker's folder is removed by the next
    /// worker that starts or ends a trial there [default: allsweep-worker-UID in the system's
    /// temporary directory].
    #[arg(long, env = "ALLSWEEP_WORK_DIR")]
    work_dir: Option<std::path::PathBuf>,
    /// libtorch CPU threads [default: cores divided by slots].
    #[arg(long, env = "ALLSWEEP_THREADS")]
    threads: Option<i32>,
    /// On SIGTERM or SIGINT (or `allsweep workers drain --now`), the most seconds to take to
    /// checkpoint, upload and release the running trials before exiting anyway (their leases
    /// then expire). Keep it below the grace period of what stops the worker: Kubernetes'
    /// terminationGracePeriodSeconds, Slurm's --signal lead time, Docker's stop timeout.
    #[arg(long, env = "ALLSWEEP_STOP_TIMEOUT", default_value_t = 90.0, value_parser = positive_seconds)]
    stop_timeout: f64,
    /// The host name this worker registers under, as `allsweep workers` and the dashboard show
    /// it and its id begins, e.g. node07-job4242-3 for a Slurm array task [default: the
    /// machine's hostname]. At most 256 bytes.
    #[arg(long, env = "ALLSWEEP_HOST")]
    host: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Check the training core by hand: a model's size, a loss and its gradient, metrics, a timed step.
    #[command(subcommand)]
    Inspect(inspect::InspectCommand),
    /// Train one trial offline from a RUN.toml (no coordinator).
    Train(train_command::TrainArgs),
}

fn run_agent(args: AgentArgs) -> anyhow::Result<()> {
    let Some(coordinator) = args.coordinator else {
        anyhow::bail!(
            "give --coordinator URL (or ALLSWEEP_COORDINATOR) to work for a coordinator, or a subcommand (see --help)"
        );
    };
    anyhow::ensure!(args.slots.is_none_or(|s| s >= 1), "--slots must be at least 1");
    anyhow::ensure!(args.host.as_ref().is_none_or(|h| h.len() <= 256), "--host (ALLSWEEP_HOST): at most 256 bytes");
    let gpus = if tch::Cuda::is_available() { tch::Cuda::device_count().max(0) as usize } else { 0 };
    let devices =
        allsweep_worker::device::parse_list(&args.device, gpus).map_err(|e| anyhow::anyhow!("--device: {e}"))?;
    // CPU threads are shared by the trials a CPU worker may run at once.
    let cpu_slots = args.slots.unwrap_or(if args.memory_budget.is_some() { agent::MEMORY_AWARE_SLOTS } else { 1 });
    let trials_at_once = cpu_slots.saturating_mul(devices.len() as u32);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as i32;
    let threads = args.threads.unwrap_or((cores / trials_at_once.max(1) as i32).max(1));
    anyhow::ensure!(threads >= 1, "--threads must be at least 1");
    tch::set_num_threads(threads);
    let options = agent::AgentOptions {
        coordinator,
        token: allsweep_proto::auth::resolve_token(args.token, args.token_file.as_deref())?,
        tls: allsweep_proto::tls::ClientTls { ca: args.tls_ca, cert: args.tls_cert, key: args.tls_key },
        devices,
        slots: args.slots,
        memory_budget: args.memory_budget,
        fuse: args.fuse,
        data_dir: allsweep_worker::data::data_dir(args.data_dir),
        work_root: args.work_dir.unwrap_or_else(agent::default_work_root),
        stop_timeout: std::time::Duration::from_secs_f64(args.stop_timeout),
        host: args.host.filter(|h| !h.trim().is_empty()),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(agent::run(options, shutdown_signal()))
}

/// A number of seconds, positive and finite.
fn positive_seconds(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(s) if s.is_finite() && s > 0.0 && s <= 86_400.0 => Ok(s),
        _ => Err(format!("{text:?} is not a number of seconds between 0 and 86400")),
    }
}

/// SIGINT or SIGTERM.
async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
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
        Some(Command::Inspect(command)) => inspect::run(command),
        Some(Command::Train(args)) => train_command::run(args),
        None => run_agent(cli.agent),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
