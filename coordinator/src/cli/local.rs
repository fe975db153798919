//! `allsweep run SPEC`: the one-machine default. An embedded coordinator on SQLite, N local
//! `allsweep-worker` processes, the sweep submitted and followed to its end, then the
//! per-config results. Everything goes through the same gRPC API as on a cluster.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use allsweep_proto::v1 as pb;
use anyhow::Context;
use clap::Args;
use tokio::process::{Child, Command};
use tokio::sync::watch;

use super::serve::LimitArgs;
use super::{remote, summary};
use allsweep_coordinator::client::{self, explain};
use allsweep_coordinator::report::render::Format;
use allsweep_coordinator::server::{serve, ServeOptions};
use allsweep_coordinator::store;
use allsweep_coordinator::web::HttpOptions;

#[derive(Args)]
pub struct RunArgs {
    pub spec: PathBuf,
    /// Worker processes to start on this machine.
    #[arg(long, default_value_t = 2)]
    pub local_workers: u32,
    /// Trials each worker trains at once on each device, at most [default: the worker's: 16
    /// where the device's memory is known (a GPU, or --memory-budget) and the trials' memory
    /// estimates decide, else 1].
    #[arg(long)]
    pub slots: Option<u32>,
    /// The memory trials may take on each device of each local worker, e.g. 8GiB (see
    /// `allsweep-worker --memory-budget`).
    #[arg(long, value_parser = allsweep_config::memory::parse_bytes)]
    pub memory_budget: Option<u64>,
    /// Each local worker trains up to N compatible trials as one fused network (see
    /// `allsweep-worker --fuse`); 1: every trial alone.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub fuse: u32,
    /// auto (every visible GPU, else the CPU), all, cpu, or GPUs by name (cuda:0,cuda:2):
    /// each local worker trains on them, --slots trials at once on each.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Folder for the database, checkpoints and worker logs.
    #[arg(long, default_value = "allsweep-run")]
    pub dir: PathBuf,
    /// The database [default: sqlite://DIR/allsweep.db].
    #[arg(long)]
    pub db: Option<String>,
    /// Where relative data-set roots resolve [default: $ALLSWEEP_DATA, else ../shared/data].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Serve the dashboard on this address while the sweep runs (the URL is printed);
    /// `none`: no dashboard.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub http: String,
    #[command(flatten)]
    pub limits: LimitArgs,
}

pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.local_workers >= 1, "--local-workers must be at least 1");
    let text = std::fs::read_to_string(&args.spec).with_context(|| format!("cannot read {}", args.spec.display()))?;
    std::fs::create_dir_all(&args.dir).with_context(|| format!("cannot create {}", args.dir.display()))?;
    let db = args.db.clone().unwrap_or_else(|| format!("sqlite://{}", args.dir.join("allsweep.db").display()));
    let store = store::open(&db).await.with_context(|| format!("cannot open {db}"))?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = format!("http://{}", listener.local_addr()?);
    let (stop, shutdown) = watch::channel(false);
    let http = match args.http.as_str() {
        "none" => None,
        at => Some(HttpOptions::bind(at, false).with_context(|| format!("cannot listen on {at} (--http)"))?),
    };
    let dashboard = http.as_ref().map(HttpOptions::url);
    let options = ServeOptions {
        http,
        spec_limits: args.limits.into(),
        ..ServeOptions::new(args.dir.join("artifacts"), Duration::from_secs(15))
    };
    let server = tokio::spawn(serve(listener, store, options, shutdown));

    let mut c = client::user(&address, None).await?;
    let submitted =
        remote::submit_text(&mut c, &text).await.with_context(|| format!("{} was refused", args.spec.display()))?;
    eprintln!(
        "sweep {}: {} trials{}; coordinator at {address}, {} local worker(s); logs in {}",
        submitted.sweep_id,
        submitted.trials,
        if submitted.created { "" } else { " (already in the database: resuming)" },
        args.local_workers,
        args.dir.display()
    );
    if let Some(url) = dashboard {
        eprintln!("dashboard: {url}/sweeps/{}", submitted.sweep_id);
    }
    let mut workers = Vec::new();
    for i in 0..args.local_workers {
        workers.push(spawn_worker(&args, &address, i).await?);
    }
    let outcome = tokio::select! {
        last = remote::watch_sweep(&mut c, &submitted.sweep_id, true) => last,
        _ = super::serve::shutdown_signal() => Err(anyhow::anyhow!("interrupted; run the same command again to resume")),
    };
    let results = c
        .query_results(pb::SweepRequest { sweep_id: submitted.sweep_id.clone(), ..Default::default() })
        .await
        .map_err(explain);
    for worker in &mut workers {
        terminate(worker).await;
    }
    let _ = stop.send(true);
    let _ = server.await;
    let last = outcome?;
    let results = results.context("cannot read the sweep's results")?.into_inner().results;
    println!(
        "{} ({}): {} completed, {} failed, {} stopped early, {} cancelled",
        last.name, last.sweep_id, last.completed, last.failed, last.stopped, last.cancelled
    );
    for t in last.trials.iter().filter(|t| t.state() == pb::TrialState::Failed) {
        println!("  failed: {}: {}", t.label, t.error);
    }
    println!("{}", summary::per_config(&results));
    let store = store::open(&db).await.with_context(|| format!("cannot open {db}"))?;
    super::report::print_early_stopping(&store, std::slice::from_ref(&last.sweep_id), Format::Table).await?;
    anyhow::ensure!(last.completed > 0 || last.trials.is_empty(), "no trial completed");
    Ok(())
}

/// The worker binary beside this one.
fn worker_binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let path = exe.with_file_name("allsweep-worker");
    anyhow::ensure!(path.exists(), "{} is missing: build it (make build)", path.display());
    Ok(path)
}

async fn spawn_worker(args: &RunArgs, address: &str, index: u32) -> anyhow::Result<Child> {
    let log_path = args.dir.join(format!("worker-{index}.log"));
    let log = std::fs::File::create(&log_path).with_context(|| format!("cannot create {}", log_path.display()))?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
    let threads = (cores / (args.local_workers * args.slots.unwrap_or(1))).max(1);
    let mut command = Command::new(worker_binary()?);
    command.args(["--coordinator", address, "--device", &args.device]);
    if let Some(slots) = args.slots {
        command.args(["--slots", &slots.to_string()]);
    }
    if let Some(bytes) = args.memory_budget {
        command.args(["--memory-budget", &bytes.to_string()]);
    }
    if args.fuse > 1 {
        command.args(["--fuse", &args.fuse.to_string()]);
    }
    command
        .args(["--threads", &threads.to_string(), "--work-dir"])
        .arg(args.dir.join("work"))
        .stdout(Stdio::from(log.try_clone()?))
        .stderr(Stdio::from(log))
        .kill_on_drop(true);
    if let Some(dir) = &args.data_dir {
        command.arg("--data-dir").arg(dir);
    }
    command.spawn().context("cannot start allsweep-worker")
}

/// SIGTERM (the worker checkpoints and gives its leases back), then wait a little.
async fn terminate(child: &mut Child) {
    if let Some(pid) = child.id() {
        let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status().await;
    }
    if tokio::time::timeout(Duration::from_secs(20), child.wait()).await.is_err() {
        let _ = child.kill().await;
    }
}
