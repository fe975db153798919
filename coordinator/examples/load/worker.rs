//! One simulated worker: registers, then leases a trial at a time, sends its metric points in
//! batches as a real worker sends an epoch's worth, and completes it with fake metrics, until
//! a lease comes back empty. Nothing is trained; only the coordinator is under load.

use std::sync::Arc;
use std::time::{Duration, Instant};

use allsweep_proto::auth::{BearerToken, WorkerCredentials};
use allsweep_proto::v1::worker_service_client::WorkerServiceClient;
use allsweep_proto::v1::{self as pb};
use allsweep_proto::PROTOCOL_VERSION;
use anyhow::bail;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::Barrier;
use tonic::transport::Channel;
use tonic::{Code, Status};

use crate::stats::WorkerStats;

/// Metric names of one epoch: a batch of 10 points.
const NAMES: [&str; 10] =
    ["train_loss", "validation_loss", "jaccard", "dice", "precision", "recall", "tnr", "accuracy", "auc", "seconds"];

/// Points per StreamMetrics call: one epoch's worth.
pub const BATCH: usize = NAMES.len();

/// The epochs a trial of `points` metric points spans (at least one).
pub fn epochs(points: u32) -> u32 {
    points.div_ceil(BATCH as u32).max(1)
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

/// How one simulated worker paces itself.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    /// Metric points per trial.
    pub points: u32,
    /// A heartbeat this often while a trial runs.
    pub heartbeat: Option<Duration>,
    /// How long an epoch trains before its batch is sent.
    pub epoch: Option<Duration>,
    /// Each epoch lasts `epoch` times a factor in [1 - jitter, 1 + jitter].
    pub jitter: f64,
    /// Wait this long after all have registered before the first lease.
    pub start_delay: Duration,
}

/// Worker `index` on `channel`: registers, waits at `start` until all have registered (and
/// then its start delay), then works until the sweep is drained.
pub async fn simulate(index: usize, channel: Channel, start: Arc<Barrier>, pace: Pace) -> anyhow::Result<WorkerStats> {
    let Pace { points, heartbeat, epoch, jitter, start_delay } = pace;
    let mut rng = StdRng::seed_from_u64(index as u64);
    let credentials = WorkerCredentials::new(BearerToken::default());
    let mut client = WorkerServiceClient::with_interceptor(channel, credentials.clone());
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
            gpus: Vec::new(),
        })
        .await
        .map_err(|s| anyhow::anyhow!("worker {index}: register: {s}"))?
        .into_inner();
    let worker_id = registered.worker_id;
    credentials.set_identity(&worker_id, &registered.worker_key)?;
    start.wait().await;
    tokio::time::sleep(start_delay).await;

    let mut stats = WorkerStats::default();
    let mut last_heartbeat = Instant::now();
    loop {
        stats.first_lease.get_or_insert_with(Instant::now);
        let leased = timed!(
            stats.lease,
            client.lease(pb::LeaseRequest {
                worker_id: worker_id.clone(),
                free_slots: 1,
                free_memory_bytes: 0,
                fuse: 0
            })
        )
        .map_err(|s| anyhow::anyhow!("worker {index}: lease: {s}"))?;
        let Some(trial) = leased.trials.into_iter().next() else { break };
        // Small enough that every value is a valid fraction (< 0.2).
        let seed = (index % 100) as f64 / 1000.0;
        let all: Vec<pb::MetricPoint> = (0..points as usize)
            .map(|k| pb::MetricPoint {
                epoch: (k / BATCH) as u32 + 1,
                name: NAMES[k % BATCH].into(),
                value: seed + k as f64 * 1e-3,
            })
            .collect();
        for batch in all.chunks(BATCH) {
            if let Some(epoch) = epoch {
                let factor = if jitter > 0.0 { rng.random_range(1.0 - jitter..=1.0 + jitter) } else { 1.0 };
                tokio::time::sleep(epoch.mul_f64(factor)).await;
            }
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
                    gpus: Vec::new(),
                };
                let r = timed!(stats.heartbeat, client.heartbeat(request.clone()))
                    .map_err(|s| anyhow::anyhow!("worker {index}: heartbeat: {s}"))?;
                if !r.stop_trial_ids.is_empty() {
                    bail!("worker {index}: told to stop {:?}", r.stop_trial_ids);
                }
                last_heartbeat = Instant::now();
            }
        }
        let request = completion(&trial, seed, points);
        timed!(stats.complete, client.complete(request.clone()))
            .map_err(|s| anyhow::anyhow!("worker {index}: complete {}: {s}", trial.trial_id))?;
        stats.completed += 1;
        stats.last_completion = Some(Instant::now());
    }
    Ok(stats)
}

/// A completion with fixed fake test metrics (Jaccard offset by `seed`) and a three-point ROC.
fn completion(trial: &pb::LeasedTrial, seed: f64, points: u32) -> pb::CompleteRequest {
    pb::CompleteRequest {
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
        epochs: epochs(points),
        parameters: 1000,
        test_keras: Some(pb::KerasMetrics { jaccard: 0.55 + seed, dice: 0.65, recall: 0.8, tnr: 0.9 }),
        selected_epoch: epochs(points),
    }
}
