//! Load test of the coordinator: N simulated workers against the real gRPC server.
//!
//!     cargo run --release -p allsweep-coordinator --example load -- \
//!         --db sqlite --workers 100 --trials 2000 --points 20
//!
//! What it does, in one process:
//!
//! 1. Opens a fresh store: `--db sqlite` (or any `sqlite:` URL) makes a new SQLite file in
//!    a temporary directory; `--db postgres` (or a `postgres://` URL, used as the admin
//!    connection, default `postgres://postgres@127.0.0.1:5432/test`) creates a database
//!    `allsweep_load_<pid>_<n>` on that server, and drops it at the end.
//! 2. Starts the real coordinator ([`serve`]) on 127.0.0.1:0: real gRPC over TCP.
//! 3. Submits, through the user API, a spec of T trials (a synthetic dataset, seeds
//!    0..T). Nothing is trained: the config is only stored and handed out.
//! 4. Runs N worker tasks. Each one has its own HTTP/2 connection by default
//!    (`--connections K` makes K shared connections instead, worker i on connection i % K),
//!    registers, then, after all have registered, loops: Lease(free_slots = 1), P metric
//!    points in batches of 10 (one StreamMetrics call per batch, as the real worker sends
//!    one per epoch: 10 metric names per epoch), Complete with fake metrics; until a lease
//!    comes back empty. Calls refused as UNAVAILABLE (a store error the coordinator asks to
//!    retry) are retried after a short pause and counted.
//! 5. Times the run from the first lease to the last completion, checks through the store
//!    that exactly T trials completed and T*P metric points exist (exit 1 otherwise), and
//!    prints one JSON line:
//!
//! ```text
//! {"system":"allsweep","db":"sqlite","workers":N,"trials":T,"points":T*P,"seconds":s,
//!  "trials_per_second":..,"points_per_second":..,"connections":K,"calls":{..},..}
//! ```
//!
//! `calls` holds, per RPC (lease, metrics, complete), the count, retries and latency
//! (mean, p50, p99, max in ms, as the client sees it): which call dominates under load.
//! Heartbeats are off (the lease lasts `--lease-seconds`, long enough for the whole run);
//! `--heartbeat-ms` turns them on. No tracing subscriber logs the per-trial info lines
//! (`allsweep serve` does, at info level); warnings and errors still reach stderr
//! (`RUST_LOG` changes that). `--nodelay` sets TCP_NODELAY on the listening socket, which
//! `serve` leaves unset on the connections it accepts (see the flag).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use allsweep_coordinator::server::{serve, ServeOptions};
use allsweep_coordinator::store::{self, Store, TrialState};
use allsweep_coordinator::PROTOCOL_VERSION;
use allsweep_proto::v1::user_service_client::UserServiceClient;
use allsweep_proto::v1::worker_service_client::WorkerServiceClient;
use allsweep_proto::v1::{self as pb};
use anyhow::{bail, Context};
use clap::Parser;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

const DEFAULT_PG_ADMIN: &str = "postgres://postgres@127.0.0.1:5432/test";
/// Metric names of one epoch: a batch of 10 points.
const NAMES: [&str; 10] =
    ["loss", "val_loss", "jaccard", "dice", "precision", "recall", "tnr", "accuracy", "auc", "lr"];
const BATCH: usize = NAMES.len();

#[derive(Parser, Debug)]
#[command(about = "Throughput of the coordinator with N simulated workers")]
struct Args {
    /// `sqlite` / `sqlite://...` (a fresh file in a temp dir) or `postgres` / `postgres://ADMIN_URL`
    /// (a fresh database created on that server, dropped afterwards).
    #[arg(long, default_value = "sqlite")]
    db: String,
    /// Simulated workers, one trial at a time each.
    #[arg(long, default_value_t = 10)]
    workers: usize,
    /// Trials in the sweep.
    #[arg(long, default_value_t = 1000)]
    trials: u32,
    /// Metric points per trial, sent in batches of 10.
    #[arg(long, default_value_t = 20)]
    points: u32,
    /// HTTP/2 connections the workers share (0: one per worker).
    #[arg(long, default_value_t = 0)]
    connections: usize,
    /// Lease length; long enough that no lease expires during the run.
    #[arg(long, default_value_t = 600.0)]
    lease_seconds: f64,
    /// Send a heartbeat every this many ms while a trial runs (0: none).
    #[arg(long, default_value_t = 0)]
    heartbeat_ms: u64,
    /// Set TCP_NODELAY on the listening socket (Linux hands it down to accepted sockets).
    /// `serve` does not set it on the connections it accepts, so by default the coordinator
    /// runs as `allsweep serve` does; this shows what the missing option costs.
    #[arg(long)]
    nodelay: bool,
}

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

/// The store under test, with what to clean up afterwards.
enum Database {
    Sqlite { url: String, _dir: tempfile::TempDir },
    Postgres { url: String, admin: String, name: String },
}

impl Database {
    async fn create(db: &str) -> anyhow::Result<Self> {
        if db == "sqlite" || db.starts_with("sqlite:") {
            let dir = tempfile::Builder::new().prefix("allsweep-load").tempdir()?;
            let url = format!("sqlite://{}", dir.path().join("load.db").display());
            Ok(Database::Sqlite { url, _dir: dir })
        } else if db == "postgres" || db.starts_with("postgres://") || db.starts_with("postgresql://") {
            use sqlx::Connection;
            let admin = if db == "postgres" { DEFAULT_PG_ADMIN.to_string() } else { db.to_string() };
            let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_nanos();
            let name = format!("allsweep_load_{}_{}", std::process::id(), nanos % 1_000_000_000);
            let mut conn = sqlx::PgConnection::connect(&admin)
                .await
                .with_context(|| format!("connecting to Postgres at {admin} to create a database"))?;
            sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut conn).await?;
            conn.close().await?;
            // The admin URL with its database replaced by the new one.
            let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
            let url = format!("{base}/{name}");
            Ok(Database::Postgres { url, admin, name })
        } else {
            bail!("--db must be sqlite, sqlite://..., postgres or postgres://ADMIN_URL, not {db:?}")
        }
    }

    fn url(&self) -> &str {
        match self {
            Database::Sqlite { url, .. } | Database::Postgres { url, .. } => url,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Database::Sqlite { .. } => "sqlite",
            Database::Postgres { .. } => "postgres",
        }
    }

    async fn drop_database(&self) {
        if let Database::Postgres { admin, name, .. } = self {
            use sqlx::Connection;
            match sqlx::PgConnection::connect(admin).await {
                Ok(mut conn) => {
                    let q = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                    if let Err(e) = sqlx::query(&q).execute(&mut conn).await {
                        eprintln!("load: could not drop database {name}: {e}");
                    }
                }
                Err(e) => eprintln!("load: could not drop database {name}: {e}"),
            }
        }
    }
}

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
    db.drop_database().await;
    result
}

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

async fn run_on(args: &Args, db: &Database) -> anyhow::Result<String> {
    let store = store::open(db.url()).await.with_context(|| format!("opening the store {}", db.url()))?;
    let artifacts = tempfile::Builder::new().prefix("allsweep-load-artifacts").tempdir()?;
    let socket = tokio::net::TcpSocket::new_v4()?;
    if args.nodelay {
        socket.set_nodelay(true)?;
    }
    socket.bind("127.0.0.1:0".parse()?)?;
    let listener = socket.listen(1024)?;
    let address = format!("http://{}", listener.local_addr()?);
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let options = ServeOptions {
        artifacts: artifacts.path().to_path_buf(),
        lease_ttl: Duration::from_secs_f64(args.lease_seconds),
        token: None,
    };
    let server = tokio::spawn(serve(listener, store.clone(), options, shutdown));

    let outcome = drive(args, db, &address, &store).await;

    let _ = stop.send(true);
    match tokio::time::timeout(Duration::from_secs(10), server).await {
        Ok(Ok(Err(e))) => eprintln!("load: the coordinator ended with an error: {e:#}"),
        Ok(Err(e)) => eprintln!("load: the coordinator task panicked: {e}"),
        Err(_) => eprintln!("load: the coordinator did not stop within 10 s"),
        Ok(Ok(Ok(()))) => {}
    }
    outcome
}

/// Latencies and retries of one RPC kind.
#[derive(Default)]
struct CallStats {
    micros: Vec<u64>,
    retries: u64,
}

impl CallStats {
    fn merge(&mut self, other: CallStats) {
        self.micros.extend(other.micros);
        self.retries += other.retries;
    }

    fn summary(&mut self) -> serde_json::Value {
        self.micros.sort_unstable();
        let n = self.micros.len();
        let ms = |us: u64| us as f64 / 1000.0;
        let at = |q: f64| if n == 0 { 0 } else { self.micros[((n - 1) as f64 * q).round() as usize] };
        let total: u64 = self.micros.iter().sum();
        serde_json::json!({
            "n": n,
            "retries": self.retries,
            "mean_ms": if n == 0 { 0.0 } else { ms(total / n as u64) },
            "p50_ms": ms(at(0.5)),
            "p99_ms": ms(at(0.99)),
            "max_ms": ms(at(1.0)),
            "total_s": (total as f64 / 1e3).round() / 1e3,
        })
    }
}

#[derive(Default)]
struct WorkerStats {
    lease: CallStats,
    metrics: CallStats,
    complete: CallStats,
    heartbeat: CallStats,
    completed: u64,
    first_lease: Option<Instant>,
    last_completion: Option<Instant>,
}

/// The coordinator's throughput with `args.workers` workers against the server at `address`.
async fn drive(args: &Args, db: &Database, address: &str, store: &Arc<dyn Store>) -> anyhow::Result<String> {
    let endpoint =
        Endpoint::from_shared(address.to_string())?.connect_timeout(Duration::from_secs(10)).tcp_nodelay(true);

    // The sweep.
    let mut user = UserServiceClient::new(endpoint.connect().await.context("connecting to the coordinator")?);
    let text = spec_text(args.trials, args.points);
    let submitted = user
        .submit(pb::SubmitRequest { spec_toml: text })
        .await
        .map_err(|s| anyhow::anyhow!("submit refused: {s}"))?
        .into_inner();
    if submitted.trials != args.trials {
        bail!("the spec expanded to {} trials, not {}", submitted.trials, args.trials);
    }

    // The connections.
    let connections = if args.connections == 0 { args.workers } else { args.connections.min(args.workers) };
    let mut channels = Vec::with_capacity(connections);
    for _ in 0..connections {
        channels.push(endpoint.connect().await.context("connecting a worker to the coordinator")?);
    }

    // The workers: all register, then start together.
    let start = Arc::new(tokio::sync::Barrier::new(args.workers + 1));
    let failures = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::with_capacity(args.workers);
    for i in 0..args.workers {
        let channel = channels[i % connections].clone();
        let start = start.clone();
        let points = args.points;
        let heartbeat = (args.heartbeat_ms > 0).then(|| Duration::from_millis(args.heartbeat_ms));
        let failures = failures.clone();
        tasks.push(tokio::spawn(async move {
            let result = worker(i, channel, start.clone(), points, heartbeat).await;
            if result.is_err() {
                failures.fetch_add(1, Ordering::Relaxed);
            }
            result
        }));
    }
    // A worker that fails to register would leave the barrier short: wait for it with a limit.
    if tokio::time::timeout(Duration::from_secs(120), start.wait()).await.is_err() {
        bail!("the workers did not all register within 120 s ({} failed)", failures.load(Ordering::Relaxed));
    }

    let mut total = WorkerStats::default();
    let mut errors = Vec::new();
    for task in tasks {
        match task.await {
            Ok(Ok(s)) => {
                total.lease.merge(s.lease);
                total.metrics.merge(s.metrics);
                total.complete.merge(s.complete);
                total.heartbeat.merge(s.heartbeat);
                total.completed += s.completed;
                total.first_lease = match (total.first_lease, s.first_lease) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                total.last_completion = total.last_completion.max(s.last_completion);
            }
            Ok(Err(e)) => errors.push(format!("{e:#}")),
            Err(e) => errors.push(format!("worker task panicked: {e}")),
        }
    }
    // From the first lease to the last completion.
    let seconds = match (total.first_lease, total.last_completion) {
        (Some(first), Some(last)) => last.duration_since(first).as_secs_f64(),
        _ => 0.0,
    };
    if !errors.is_empty() {
        errors.sort();
        errors.dedup();
        bail!(
            "{} worker(s) failed; first errors: {}",
            failures.load(Ordering::Relaxed),
            errors[..errors.len().min(5)].join(" | ")
        );
    }

    // Check through the store: exactly T completed trials, T*P metric points.
    let trials = store.trials(&submitted.sweep_id).await?;
    let completed = trials.iter().filter(|t| t.state == TrialState::Completed).count() as u64;
    let reattempted = trials.iter().filter(|t| t.attempt != 1).count();
    let results = store.results(&submitted.sweep_id).await?.len() as u64;
    let mut points = 0_u64;
    for t in &trials {
        points += store.metric_points(&t.id).await?.len() as u64;
    }
    let expected_points = u64::from(args.trials) * u64::from(args.points);
    let t = u64::from(args.trials);
    if trials.len() as u64 != t || completed != t || results != t || total.completed != t || points != expected_points {
        bail!(
            "verification failed: {} trials in the store, {completed} completed, {results} results, \
             {} completions acknowledged (expected {t}); {points} metric points (expected {expected_points})",
            trials.len(),
            total.completed
        );
    }
    if reattempted > 0 {
        eprintln!("load: warning: {reattempted} trials took more than one attempt");
    }
    let sweep = store.sweep(&submitted.sweep_id).await?.map(|s| s.state).unwrap_or_default();

    let mut calls = BTreeMap::new();
    calls.insert("lease", total.lease.summary());
    calls.insert("metrics", total.metrics.summary());
    calls.insert("complete", total.complete.summary());
    if args.heartbeat_ms > 0 {
        calls.insert("heartbeat", total.heartbeat.summary());
    }
    let round = |x: f64| (x * 1000.0).round() / 1000.0;
    let line = serde_json::json!({
        "system": "allsweep",
        "db": db.kind(),
        "workers": args.workers,
        "trials": args.trials,
        "points": expected_points,
        "seconds": round(seconds),
        "trials_per_second": round(t as f64 / seconds),
        "points_per_second": round(expected_points as f64 / seconds),
        "points_per_trial": args.points,
        "connections": connections,
        "server_nodelay": args.nodelay,
        "metric_batch": BATCH,
        "sweep_state": sweep,
        "reattempted_trials": reattempted,
        "calls": calls,
    });
    Ok(line.to_string())
}

/// The spec: T trials of one synthetic config, seeds 0..T.
fn spec_text(trials: u32, points: u32) -> String {
    let seeds: Vec<u32> = (0..trials).collect();
    let epochs = points.div_ceil(BATCH as u32).max(1);
    format!(
        r#"name = "load test"
seeds = {seeds:?}

[dataset]
kind = "synthetic"
shape = "nuclei"
images = 16
foreground = 0.2
size = [32, 32]

[model]
arch = "unet"
width = 8

[train]
epochs = {epochs}
batch_size = 4
lr = 3e-3

[loss]
kind = "all"
"#
    )
}

/// Runs `call` again while the coordinator answers UNAVAILABLE (a store error: nothing was
/// written); records the latency of the call that succeeded and the retries.
macro_rules! timed {
    ($stats:expr, $call:expr) => {{
        let mut tries = 0_u32;
        loop {
            let began = Instant::now();
            match $call.await {
                Ok(r) => {
                    $stats.micros.push(began.elapsed().as_micros() as u64);
                    break Ok::<_, Status>(r.into_inner());
                }
                Err(s) if s.code() == Code::Unavailable && tries < 50 => {
                    tries += 1;
                    $stats.retries += 1;
                    tokio::time::sleep(Duration::from_millis(20 * u64::from(tries.min(10)))).await;
                }
                Err(s) => break Err(s),
            }
        }
    }};
}

async fn worker(
    index: usize,
    channel: Channel,
    start: Arc<tokio::sync::Barrier>,
    points: u32,
    heartbeat: Option<Duration>,
) -> anyhow::Result<WorkerStats> {
    let mut client = WorkerServiceClient::new(channel);
    let registered = client
        .register(pb::RegisterRequest {
            protocol_version: PROTOCOL_VERSION,
            // A distinct host per worker: ids are made from the host and the clock.
            host: format!("load-{index:05}"),
            device: "cpu".into(),
            memory_bytes: 1 << 30,
            slots: 1,
            version: env!("CARGO_PKG_VERSION").into(),
            worker_id: String::new(),
        })
        .await
        .map_err(|s| anyhow::anyhow!("worker {index}: register: {s}"))?
        .into_inner();
    let worker_id = registered.worker_id;
    start.wait().await;

    let mut stats = WorkerStats::default();
    let mut last_heartbeat = Instant::now();
    loop {
        stats.first_lease.get_or_insert_with(Instant::now);
        let leased =
            timed!(stats.lease, client.lease(pb::LeaseRequest { worker_id: worker_id.clone(), free_slots: 1 }))
                .map_err(|s| anyhow::anyhow!("worker {index}: lease: {s}"))?;
        let Some(trial) = leased.trials.into_iter().next() else { break };
        let seed = (index as f64 + 1.0) / 1000.0;
        let all: Vec<pb::MetricPoint> = (0..points as usize)
            .map(|k| pb::MetricPoint {
                epoch: (k / BATCH) as u32,
                name: NAMES[k % BATCH].into(),
                value: seed + k as f64 * 1e-3,
            })
            .collect();
        for batch in all.chunks(BATCH) {
            let message =
                pb::MetricBatch { trial_id: trial.trial_id.clone(), attempt: trial.attempt, points: batch.to_vec() };
            let ack = timed!(stats.metrics, client.stream_metrics(futures::stream::iter(vec![message.clone()])))
                .map_err(|s| anyhow::anyhow!("worker {index}: metrics of {}: {s}", trial.trial_id))?;
            if ack.stored + ack.duplicates != batch.len() as u64 {
                bail!("worker {index}: {} points sent, {} acknowledged", batch.len(), ack.stored + ack.duplicates);
            }
            if heartbeat.is_some_and(|every| last_heartbeat.elapsed() >= every) {
                let request = pb::HeartbeatRequest {
                    worker_id: worker_id.clone(),
                    running: vec![pb::TrialProgress {
                        trial_id: trial.trial_id.clone(),
                        attempt: trial.attempt,
                        epoch: batch[0].epoch,
                    }],
                };
                let r = timed!(stats.heartbeat, client.heartbeat(request.clone()))
                    .map_err(|s| anyhow::anyhow!("worker {index}: heartbeat: {s}"))?;
                if !r.stop_trial_ids.is_empty() {
                    bail!("worker {index}: told to stop {:?}", r.stop_trial_ids);
                }
                last_heartbeat = Instant::now();
            }
        }
        let request = pb::CompleteRequest {
            trial_id: trial.trial_id.clone(),
            attempt: trial.attempt,
            test: Some(pb::Metrics {
                jaccard: 0.5 + seed,
                dice: 0.6,
                precision: 0.7,
                recall: 0.8,
                tnr: 0.9,
                accuracy: 0.95,
                auc: Some(0.9),
            }),
            roc: vec![
                pb::RocPoint { threshold: 1.0, fpr: 0.0, tpr: 0.0 },
                pb::RocPoint { threshold: 0.5, fpr: 0.1, tpr: 0.8 },
                pb::RocPoint { threshold: 0.0, fpr: 1.0, tpr: 1.0 },
            ],
            split: "test".into(),
            epochs: points.div_ceil(BATCH as u32).max(1),
            parameters: 1000,
        };
        timed!(stats.complete, client.complete(request.clone()))
            .map_err(|s| anyhow::anyhow!("worker {index}: complete {}: {s}", trial.trial_id))?;
        stats.completed += 1;
        stats.last_completion = Some(Instant::now());
    }
    Ok(stats)
}
