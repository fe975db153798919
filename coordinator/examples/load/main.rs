//! Load test of the coordinator: N simulated workers against the real gRPC server.
//!
//!     cargo run --release -p allsweep-coordinator --example load -- \
//!         --db sqlite --workers 100 --trials 2000 --points 20
//!
//! What it does, in one process:
//!
//! 1. Opens a fresh store: `--db sqlite` (or any `sqlite:` URL) makes a new SQLite file in
//!    a temporary directory; `--db postgres` (or a `postgres://` URL, used as the admin
//!    connection; `postgres` alone is the server named by `ALLSWEEP_TEST_POSTGRES`, default
//!    `postgres://postgres@127.0.0.1:5432/test`) creates a throwaway database on that server
//!    ([`database`]), and drops it at the end.
//! 2. Starts the real coordinator ([`serve`]) on 127.0.0.1:0: real gRPC over TCP; in this
//!    process, or with `--serve target/release/allsweep` as its own `allsweep serve` process,
//!    whose memory is then sampled apart from the workers'.
//! 3. Submits, through the user API, a spec of T trials (a synthetic dataset, seeds
//!    0..T). Nothing is trained: the config is only stored and handed out.
//! 4. Runs N simulated worker tasks ([`worker`]). Each one has its own HTTP/2 connection by
//!    default (`--connections K` makes K shared connections instead, worker i on connection i % K),
//!    registers, then, after all have registered, loops: Lease(free_slots = 1), P metric
//!    points in batches of 10 (one StreamMetrics call per batch, as the real worker sends
//!    one per epoch: 10 metric names per epoch), Complete with fake metrics; until a lease
//!    comes back empty. Calls refused as UNAVAILABLE (a store error the coordinator asks to
//!    retry) are retried after a short pause and counted.
//! 5. Times the run ([`driver`]) from the first lease to the last completion, checks through the store
//!    that exactly T trials completed and T*P metric points exist (exit 1 otherwise), and
//!    prints one JSON line:
//!
//! ```text
//! {"system":"allsweep","db":"sqlite","workers":N,"trials":T,"points":T*P,"seconds":s,
//!  "trials_per_second":..,"points_per_second":..,"connections":K,"calls":{..},..}
//! ```
//!
//! Pacing: `--epoch-ms` makes each epoch take that long before its batch goes out,
//! `--heartbeat-ms` adds heartbeats, `--epoch-jitter J` varies each epoch by up to ±J of its
//! length (seeded per worker) and `--start-spread-ms` spreads the first leases over that
//! window. Without the last two all workers move in lockstep: their calls arrive in waves of
//! N at once, which measures how fast the coordinator drains a burst, not the latency a
//! cluster's workers see.
//!
//! `calls` holds, per RPC (lease, metrics, complete), the count, retries and latency
//! (mean, p50, p99, max in ms, as the client sees it; [`stats`]): which call dominates under
//! load. Heartbeats are off (the lease lasts `--lease-seconds`, long enough for the whole run);
//! `--heartbeat-ms` turns them on. No tracing subscriber logs the per-trial info lines
//! (`allsweep serve` does, at info level); warnings and errors still reach stderr
//! (`RUST_LOG` changes that). `--nodelay` sets TCP_NODELAY on the listening socket, which
//! `serve` leaves unset on the connections it accepts (see the flag).

mod args;
mod database;
mod driver;
mod stats;
mod worker;

use std::time::Duration;

use allsweep_coordinator::server::{serve, ServeOptions};
use allsweep_coordinator::store;
use anyhow::{bail, Context};
use clap::Parser;

use args::Args;
use database::Database;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    match run(&args).await {
        Ok(line) => {
            println!("{line}");
            std::process::ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("load: FAILED: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Creates the store, runs the load on it and drops it again, even when interrupted.
async fn run(args: &Args) -> anyhow::Result<String> {
    if args.workers == 0 || args.trials == 0 {
        bail!("--workers and --trials must be at least 1");
    }
    let db = Database::create(&args.db).await?;
    // Interrupted (Ctrl-C, or a driver's timeout), it still drops the Postgres database.
    let result = tokio::select! {
        result = run_on(args, &db) => result,
        signal = terminated() => Err(anyhow::anyhow!("interrupted by {signal}")),
    };
    db.drop_now().await;
    result
}

/// Resolves on SIGINT or SIGTERM, naming it.
async fn terminated() -> &'static str {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "SIGINT",
        _ = term.recv() => "SIGTERM",
    }
}

/// Serves the real coordinator on 127.0.0.1:0 over `db` while the driver runs, then stops it.
async fn run_on(args: &Args, db: &Database) -> anyhow::Result<String> {
    let store = store::open(db.url()).await.with_context(|| format!("opening the store {}", db.url()))?;
    let artifacts = tempfile::Builder::new().prefix("allsweep-load-artifacts").tempdir()?;
    if let Some(binary) = &args.serve {
        let (mut child, address) = spawn_serve(binary, args, db, artifacts.path()).await?;
        let outcome = driver::drive(args, db, &address, &store, child.id()).await;
        let _ = child.kill().await;
        return outcome;
    }
    let socket = tokio::net::TcpSocket::new_v4()?;
    if args.nodelay {
        socket.set_nodelay(true)?;
    }
    socket.bind("127.0.0.1:0".parse()?)?;
    let listener = socket.listen(1024)?;
    let address = format!("http://{}", listener.local_addr()?);
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let mut options = ServeOptions::new(artifacts.path().to_path_buf(), Duration::from_secs_f64(args.lease_seconds));
    // One sweep of --trials trials, beyond the default limit when asked.
    options.spec_limits.max_trials = options.spec_limits.max_trials.max(u64::from(args.trials));
    let server = tokio::spawn(serve(listener, store.clone(), options, shutdown));

    let outcome = driver::drive(args, db, &address, &store, None).await;

    let _ = stop.send(true);
    match tokio::time::timeout(Duration::from_secs(10), server).await {
        Ok(Ok(Err(e))) => eprintln!("load: the coordinator ended with an error: {e:#}"),
        Ok(Err(e)) => eprintln!("load: the coordinator task panicked: {e}"),
        Err(_) => eprintln!("load: the coordinator did not stop within 10 s"),
        Ok(Ok(Ok(()))) => {}
    }
    outcome
}

/// Starts `BINARY serve` on 127.0.0.1:0 over `db`, as `allsweep serve` runs (warnings and
/// errors to this stderr), and reads the address it bound from its first line.
async fn spawn_serve(
    binary: &std::path::Path,
    args: &Args,
    db: &Database,
    artifacts: &std::path::Path,
) -> anyhow::Result<(tokio::process::Child, String)> {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new(binary)
        .args(["serve", "--db", db.url(), "--listen", "127.0.0.1:0", "--artifacts"])
        .arg(artifacts)
        .args(["--lease-seconds", &args.lease_seconds.to_string(), "--max-trials", &args.trials.to_string()])
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {} serve", binary.display()))?;
    let stdout = child.stdout.take().context("the coordinator's stdout")?;
    let mut line = String::new();
    let mut reader = tokio::io::BufReader::new(stdout);
    let read = reader.read_line(&mut line);
    tokio::time::timeout(Duration::from_secs(60), read).await.context("the coordinator did not start in 60 s")??;
    // "... listening on HOST:PORT": the address is the last word.
    let bound = line.trim().rsplit(' ').next().unwrap_or_default().to_string();
    if !line.contains("listening on") || bound.is_empty() {
        bail!("the coordinator said {line:?} instead of its address");
    }
    Ok((child, format!("http://{bound}")))
}
