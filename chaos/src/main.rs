//! `allsweep-chaos` (`make chaos`): the fault-injection suite at full counts on SQLite and on
//! a private Postgres, ending with its tables; exits 1 on any violation. See the crate doc.
//!
//!     target/release/allsweep-chaos [--backends sqlite,postgres] [--seed N] [--worker-kills 100] ...

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use allsweep_chaos::{report, run_backend, Backend, BackendReport, FaultCounts, Options};
use clap::Parser;

#[derive(Parser)]
#[command(about = "Fault injection against real allsweep processes, checked with SQL")]
struct Args {
    /// Backends to run, in order: sqlite, postgres.
    #[arg(long, value_delimiter = ',', default_value = "sqlite,postgres")]
    backends: Vec<String>,
    /// Seeds the fault plan [default: from the clock; printed either way].
    #[arg(long)]
    seed: Option<u64>,
    #[arg(long, default_value_t = FaultCounts::FULL.worker_kills)]
    worker_kills: u32,
    #[arg(long, default_value_t = FaultCounts::FULL.worker_terms)]
    worker_terms: u32,
    #[arg(long, default_value_t = FaultCounts::FULL.coordinator_kills)]
    coordinator_kills: u32,
    /// `pg_ctl restart -m fast` (Postgres only).
    #[arg(long, default_value_t = FaultCounts::FULL.postgres_fast)]
    postgres_fast: u32,
    /// `pg_ctl restart -m immediate` (Postgres only).
    #[arg(long, default_value_t = FaultCounts::FULL.postgres_immediate)]
    postgres_immediate: u32,
    /// Partitions of the worker in the network namespace (needs root).
    #[arg(long, default_value_t = FaultCounts::FULL.partitions)]
    partitions: u32,
    /// Trials in the sweep: enough that the faulted run outlasts the window on an idle 2-core
    /// machine (40 trials took 36 s there without faults, and the sweep then ended before
    /// two thirds of the faults were injected).
    #[arg(long, default_value_t = 160)]
    trials: u32,
    #[arg(long, default_value_t = 6)]
    epochs: u32,
    /// Synthetic images per trial.
    #[arg(long, default_value_t = 48)]
    images: u32,
    /// Workers on the host (one slot, one thread each).
    #[arg(long, default_value_t = 3)]
    workers: usize,
    #[arg(long, default_value_t = 3.0)]
    lease_seconds: f64,
    /// The faults are spread over this many seconds from the first lease, or over half the
    /// fault-free run's wall time where that is shorter.
    #[arg(long, default_value_t = 150)]
    window_seconds: u64,
    /// How long a partition lasts [default: three leases and two seconds].
    #[arg(long)]
    partition_seconds: Option<f64>,
    /// A run not finished after this many seconds is a violation.
    #[arg(long, default_value_t = 900)]
    timeout_seconds: u64,
    #[arg(long, default_value_t = 1e-6)]
    tolerance: f64,
    /// Keep each run's directory (logs, artifacts, SQLite files) even when nothing was violated.
    #[arg(long)]
    keep: bool,
    /// PostgreSQL's server binaries (initdb, pg_ctl).
    #[arg(long, default_value = allsweep_chaos::postgres::DEFAULT_BIN_DIR)]
    pg_bin: PathBuf,
    /// Use throwaway databases on this server instead of a private one (no Postgres restarts).
    #[arg(long)]
    shared_postgres: Option<String>,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(reports) => {
            println!("\n{}\n\n{}\n", report::summary(&reports), report::invariants(&reports));
            for r in &reports {
                println!("{}", report::details(r));
            }
            let violations: usize = reports.iter().map(BackendReport::violations).sum();
            if violations > 0 {
                eprintln!("chaos: FAILED: {violations} violations");
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("chaos: FAILED: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<Vec<BackendReport>> {
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
    });
    eprintln!("chaos: seed {seed} (repeat the plan with --seed {seed})");
    let (coordinator_binary, worker_binary) = Options::binaries_beside_me()?;
    for binary in [&coordinator_binary, &worker_binary] {
        anyhow::ensure!(binary.exists(), "{} is missing: run `make build` first", binary.display());
    }
    let options = Options {
        seed,
        faults: FaultCounts {
            worker_kills: args.worker_kills,
            worker_terms: args.worker_terms,
            coordinator_kills: args.coordinator_kills,
            postgres_fast: args.postgres_fast,
            postgres_immediate: args.postgres_immediate,
            partitions: args.partitions,
        },
        trials: args.trials,
        epochs: args.epochs,
        images: args.images,
        workers: args.workers,
        lease_seconds: args.lease_seconds,
        window: Duration::from_secs(args.window_seconds),
        partition: Duration::from_secs_f64(args.partition_seconds.unwrap_or(3.0 * args.lease_seconds + 2.0)),
        timeout: Duration::from_secs(args.timeout_seconds),
        tolerance: args.tolerance,
        keep: args.keep,
        coordinator_binary,
        worker_binary,
    };
    let mut reports = Vec::new();
    for name in &args.backends {
        let backend = match (name.as_str(), &args.shared_postgres) {
            ("sqlite", _) => Backend::Sqlite,
            ("postgres", Some(url)) => Backend::SharedPostgres { admin_url: url.clone() },
            ("postgres", None) => Backend::PrivatePostgres { bin_dir: args.pg_bin.clone() },
            (other, _) => anyhow::bail!("--backends: {other:?} is neither sqlite nor postgres"),
        };
        let report = run_backend(&backend, &options).await?;
        eprintln!("{}", report::details(&report));
        reports.push(report);
    }
    Ok(reports)
}
