//! The run itself: submits the sweep through the user API, starts the simulated workers
//! together, sums what they measured, checks through the store that every trial and metric
//! point arrived exactly once, and writes the output line.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use allsweep_coordinator::store::{Store, TrialState};
use allsweep_proto::v1::user_service_client::UserServiceClient;
use allsweep_proto::v1::{self as pb};
use allsweep_testkit::SyntheticSpec;
use anyhow::{bail, Context};
use tonic::transport::Endpoint;

use crate::args::Args;
use crate::database::Database;
use crate::stats::WorkerStats;
use crate::worker::{self, BATCH};

/// The coordinator's throughput with `args.workers` workers against the server at `address`:
/// the JSON output line.
pub async fn drive(
    args: &Args,
    db: &Database,
    address: &str,
    store: &Arc<dyn Store>,
    coordinator_pid: Option<u32>,
) -> anyhow::Result<String> {
    let endpoint =
        Endpoint::from_shared(address.to_string())?.connect_timeout(Duration::from_secs(10)).tcp_nodelay(true);

    // The sweep: T trials of one synthetic config, seeds 0..T. Nothing is trained: the config
    // is only stored and handed out.
    let mut user = UserServiceClient::new(endpoint.connect().await.context("connecting to the coordinator")?);
    let text =
        SyntheticSpec::new("load test").seeds(0..u64::from(args.trials)).epochs(worker::epochs(args.points)).to_toml();
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
        let pace = worker::Pace {
            points: args.points,
            heartbeat: (args.heartbeat_ms > 0).then(|| Duration::from_millis(args.heartbeat_ms)),
            epoch: (args.epoch_ms > 0).then(|| Duration::from_millis(args.epoch_ms)),
            jitter: args.epoch_jitter,
            start_delay: Duration::from_millis(args.start_spread_ms * i as u64 / args.workers as u64),
        };
        let failures = failures.clone();
        tasks.push(tokio::spawn(async move {
            let result = worker::simulate(i, channel, start.clone(), pace).await;
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

    let samples = Arc::new(std::sync::Mutex::new(Vec::new()));
    let memory = tokio::spawn(sample_memory(coordinator_pid, samples.clone(), Duration::from_secs(5)));
    let mut total = WorkerStats::default();
    let mut errors = Vec::new();
    for task in tasks {
        match task.await {
            Ok(Ok(s)) => total.merge(s),
            Ok(Err(e)) => errors.push(format!("{e:#}")),
            Err(e) => errors.push(format!("worker task panicked: {e}")),
        }
    }
    let seconds = total.seconds();
    memory.abort();
    let rss: Vec<u64> = samples.lock().map(|s| s.clone()).unwrap_or_default();
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
    let sweep = store.sweep(&submitted.sweep_id).await?.map_or("", |s| s.state.as_str());

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
        "epoch_ms": args.epoch_ms,
        "heartbeat_ms": args.heartbeat_ms,
        "epoch_jitter": args.epoch_jitter,
        "start_spread_ms": args.start_spread_ms,
        // Resident memory every 5 s from when all had registered: of the coordinator's own
        // process with --serve, else of this whole process (the coordinator and the workers).
        "rss_mib": {
            "of": if coordinator_pid.is_some() { "coordinator" } else { "coordinator and workers" },
            "first": rss.first().map(|kb| kb / 1024),
            "peak": rss.iter().max().map(|kb| kb / 1024),
            "last": rss.last().map(|kb| kb / 1024),
            "samples": rss.len(),
            "every_5_s": rss.iter().map(|kb| kb / 1024).collect::<Vec<_>>(),
        },
    });
    Ok(line.to_string())
}

/// Appends the resident memory (kB, `VmRSS`) of process `pid` (none: this one) to `samples`
/// every `every`.
async fn sample_memory(pid: Option<u32>, samples: Arc<std::sync::Mutex<Vec<u64>>>, every: Duration) {
    let path = pid.map_or_else(|| "/proc/self/status".to_string(), |pid| format!("/proc/{pid}/status"));
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        let status = std::fs::read_to_string(&path).unwrap_or_default();
        let kb = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok());
        if let (Some(kb), Ok(mut samples)) = (kb, samples.lock()) {
            samples.push(kb);
        }
    }
}
