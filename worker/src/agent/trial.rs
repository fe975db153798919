//! One leased trial: its checkpoint fetched, its thread started, its events forwarded to the
//! agent's loop as messages. Everything here is the worker's own vocabulary; [`super::convert`]
//! translates it for the wire.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;

use allsweep_proto::fault::TrialFault;
use allsweep_proto::metric;
use tokio::sync::mpsc::UnboundedSender;

use super::link::Link;
use super::AgentOptions;
use crate::config::TrialConfig;
use crate::data;
use crate::train::{self, RunOptions, TrainEvent, TrialOutcome};

/// A trial the coordinator leased to this worker.
#[derive(Debug, Clone)]
pub struct Lease {
    pub trial_id: String,
    pub attempt: u32,
    pub config: TrialConfig,
    /// The epoch of the coordinator's checkpoint to resume from; `None`: from scratch.
    pub checkpoint_epoch: Option<u32>,
    /// The device memory it is expected to need; the agent reserves it on its device.
    pub memory_bytes: u64,
}

/// One measured value of one epoch, named by an [`allsweep_proto::metric`] constant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MetricPoint {
    pub epoch: u32,
    pub name: &'static str,
    pub value: f64,
}

/// How far a running attempt got, for heartbeats and hand-backs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    pub trial_id: String,
    pub attempt: u32,
    /// Epochs finished.
    pub epoch: u32,
}

/// What a trial thread reports.
pub enum TrialEvent {
    Epoch {
        epoch: u32,
        points: Vec<MetricPoint>,
    },
    /// The checkpoint's bytes, read when it was written (the file is overwritten each epoch).
    Checkpoint {
        epoch: u32,
        step: u32,
        bytes: Vec<u8>,
    },
    Finished(Result<Box<TrialOutcome>, Failure>),
    /// Ended by a stop request (shutdown, cancellation) after writing its checkpoint: no failure.
    Stopped,
}

pub struct TrialMessage {
    pub trial_id: String,
    pub attempt: u32,
    pub event: TrialEvent,
}

impl TrialMessage {
    /// Whether the trial's thread has ended (and removed its local checkpoint).
    pub fn ends_the_trial(&self) -> bool {
        matches!(self.event, TrialEvent::Stopped | TrialEvent::Finished(_))
    }
}

/// Why a trial thread ended without an outcome, and what that means for the trial.
#[derive(Debug, Clone)]
pub struct Failure {
    pub message: String,
    pub fault: TrialFault,
}

/// Where a trial's data set lives on this machine, for the message that says it is missing.
#[derive(Debug, Clone)]
pub struct DataLocation {
    /// The data set's kind (`drive`, `isic2018`, ...).
    pub kind: &'static str,
    /// `dataset.root` as configured.
    pub configured: Option<String>,
    /// That root resolved against this worker's data directory.
    pub resolved: Option<PathBuf>,
}

/// A trial training on its thread.
pub struct RunningTrial {
    pub id: String,
    pub attempt: u32,
    /// The trial's data set, named when this machine cannot serve it.
    pub data: DataLocation,
    /// The device it trains on.
    pub device: tch::Device,
    /// The memory it reserved there.
    pub memory_bytes: u64,
    epoch: Arc<AtomicU32>,
    stop: Arc<AtomicBool>,
    /// The coordinator no longer wants this attempt: report nothing more about it.
    pub abandoned: bool,
}

impl RunningTrial {
    pub fn progress(&self) -> Progress {
        Progress { trial_id: self.id.clone(), attempt: self.attempt, epoch: self.epoch.load(Ordering::Relaxed) }
    }

    pub fn set_epoch(&self, epoch: u32) {
        self.epoch.store(epoch, Ordering::Relaxed);
    }

    /// Asks the thread to checkpoint and stop at its next step.
    pub fn request_stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Stops the thread and forgets the attempt.
    pub fn abandon(&mut self) {
        self.abandoned = true;
        self.request_stop();
    }
}

/// Fetches the checkpoint when the lease says to resume, then starts the thread. On error
/// the lease comes back so that the caller can report it.
pub async fn start(
    lease: Lease,
    options: &AgentOptions,
    device: tch::Device,
    work_dir: &Path,
    link: &mut Link,
    events: UnboundedSender<TrialMessage>,
) -> Result<RunningTrial, (Lease, anyhow::Error)> {
    let checkpoint = local_checkpoint(work_dir, &lease.trial_id);
    let resume = if let Some(epoch) = lease.checkpoint_epoch {
        if let Err(e) = link.download_checkpoint_with_retry(&lease.trial_id, lease.attempt, &checkpoint).await {
            return Err((lease, e));
        }
        tracing::info!(trial = %lease.trial_id, attempt = lease.attempt, epoch, "resuming from checkpoint");
        Some(checkpoint.clone())
    } else {
        let _ = std::fs::remove_file(&checkpoint);
        None
    };
    let stop = Arc::new(AtomicBool::new(false));
    let epoch = Arc::new(AtomicU32::new(lease.checkpoint_epoch.unwrap_or(0)));
    let dataset = &lease.config.dataset;
    let data = DataLocation {
        kind: dataset.kind.name(),
        configured: dataset.root.clone(),
        resolved: dataset.root.as_deref().map(|r| data::resolve_root(r, options.data_dir.as_deref())),
    };
    let (id, attempt) = (lease.trial_id.clone(), lease.attempt);
    let config = lease.config.clone();
    let thread_stop = stop.clone();
    let data_dir = options.data_dir.clone();
    let spawned = std::thread::Builder::new().name(format!("trial-{id}")).spawn(move || {
        let send = |event: TrialEvent| {
            let _ = events.send(TrialMessage { trial_id: id.clone(), attempt, event });
        };
        let sink = |event: TrainEvent| forward(event, &send);
        let local = checkpoint.clone();
        let run = RunOptions {
            device,
            data_dir,
            checkpoint: Some(checkpoint),
            resume,
            stop: Some(&thread_stop),
            loss_read_every: train::loss_read_every(device),
            float64: false,
        };
        let ended = match train::train_caught(&config, &run, &sink) {
            Ok(outcome) => TrialEvent::Finished(Ok(Box::new(outcome))),
            Err(error) => match error.fault() {
                None => TrialEvent::Stopped,
                Some(fault) => TrialEvent::Finished(Err(Failure { message: error.to_string(), fault })),
            },
        };
        // Every checkpoint's bytes left with its event when it was written; a later attempt
        // starts from the coordinator's copy. Nothing of an ended trial stays on this disk.
        if let Err(error) = std::fs::remove_file(&local) {
            if error.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(path = %local.display(), %error, "cannot remove an ended trial's local checkpoint");
            }
        }
        send(ended);
    });
    if let Err(e) = spawned {
        return Err((lease, anyhow::anyhow!("cannot start a training thread: {e}")));
    }
    tracing::info!(trial = %lease.trial_id, attempt = lease.attempt, "training");
    let memory_bytes = lease.memory_bytes;
    Ok(RunningTrial {
        id: lease.trial_id,
        attempt: lease.attempt,
        data,
        device,
        memory_bytes,
        epoch,
        stop,
        abandoned: false,
    })
}

/// Trainer events the coordinator cares about: epoch metrics and checkpoints.
fn forward(event: TrainEvent, send: &dyn Fn(TrialEvent)) {
    match event {
        TrainEvent::Epoch(r) => {
            let epoch = r.epoch as u32;
            send(TrialEvent::Epoch { epoch, points: epoch_points(&r) });
        }
        TrainEvent::Checkpoint { epoch, step, path } => match std::fs::read(&path) {
            Ok(bytes) => send(TrialEvent::Checkpoint { epoch: epoch as u32, step: step as u32, bytes }),
            Err(error) => tracing::error!(path = %path.display(), %error, "cannot read the checkpoint just written"),
        },
        TrainEvent::Started { .. } | TrainEvent::Step { .. } => {}
    }
}

/// The metric points of one epoch, in the order of [`metric::ALL`]; AUC only when defined.
fn epoch_points(r: &train::EpochRecord) -> Vec<MetricPoint> {
    let m = &r.validation;
    let values = [
        (metric::TRAIN_LOSS, Some(r.train_loss)),
        (metric::VALIDATION_LOSS, Some(r.validation_loss)),
        (metric::JACCARD, Some(m.jaccard)),
        (metric::DICE, Some(m.dice)),
        (metric::PRECISION, Some(m.precision)),
        (metric::RECALL, Some(m.recall)),
        (metric::TNR, Some(m.tnr)),
        (metric::ACCURACY, Some(m.accuracy)),
        (metric::AUC, m.auc),
        (metric::KERAS_JACCARD, Some(r.validation_keras.jaccard)),
        (metric::KERAS_DICE, Some(r.validation_keras.dice)),
        (metric::KERAS_RECALL, Some(r.validation_keras.recall)),
        (metric::KERAS_TNR, Some(r.validation_keras.tnr)),
        (metric::LEARNING_RATE, Some(r.lr)),
        (metric::SECONDS, Some(r.seconds)),
        (metric::TRAIN_IMAGES_PER_SECOND, Some(r.train_images_per_second)),
    ];
    let epoch = r.epoch as u32;
    values.into_iter().filter_map(|(name, value)| Some(MetricPoint { epoch, name, value: value? })).collect()
}

/// Where the agent keeps a trial's local checkpoint.
pub fn local_checkpoint(work_dir: &Path, trial_id: &str) -> PathBuf {
    work_dir.join(format!("{trial_id}.ckpt"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{Confusion, KerasMetrics, Metrics};

    fn record(auc: Option<f64>) -> train::EpochRecord {
        train::EpochRecord {
            epoch: 3,
            train_loss: 0.5,
            validation_loss: 0.6,
            validation: Metrics::from_counts(Confusion { tp: 6, fp: 2, tn: 10, fn_: 4 }, auc),
            validation_keras: KerasMetrics { jaccard: 0.4, dice: 0.6, recall: 0.7, tnr: 0.9 },
            lr: 1e-4,
            seconds: 2.0,
            train_images_per_second: 40.0,
        }
    }

    #[test]
    fn an_epoch_reports_every_known_metric_once_and_auc_only_when_defined() {
        let points = epoch_points(&record(Some(0.9)));
        let names: Vec<&str> = points.iter().map(|p| p.name).collect();
        assert_eq!(names, metric::ALL, "every name the coordinator knows, in its order");
        assert!(points.iter().all(|p| p.epoch == 3));
        let jaccard = points.iter().find(|p| p.name == metric::JACCARD).map(|p| p.value);
        assert_eq!(jaccard, Some(0.5));
        let without = epoch_points(&record(None));
        assert_eq!(without.len(), metric::ALL.len() - 1);
        assert!(without.iter().all(|p| p.name != metric::AUC));
    }
}
