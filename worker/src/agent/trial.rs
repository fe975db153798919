//! One leased trial: its checkpoint fetched, its thread started, its events forwarded to the
//! agent's loop as messages.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;

use allsweep_proto::v1 as pb;
use tokio::sync::mpsc::UnboundedSender;

use super::link::Link;
use super::AgentOptions;
use crate::config::TrialConfig;
use crate::train::{self, RunOptions, TrainError, TrainEvent, TrialOutcome};

/// What a trial thread reports.
pub enum TrialEvent {
    Epoch {
        epoch: u32,
        points: Vec<pb::MetricPoint>,
    },
    /// The checkpoint's bytes, read when it was written (the file is overwritten each epoch).
    Checkpoint {
        epoch: u32,
        step: u32,
        bytes: Vec<u8>,
    },
    Finished(Result<TrialOutcome, Failure>),
}

pub struct TrialMessage {
    pub trial_id: String,
    pub attempt: u32,
    pub event: TrialEvent,
}

/// Why a trial thread ended without an outcome.
pub struct Failure {
    pub message: String,
    pub permanent: bool,
    stopped: bool,
}

impl Failure {
    /// Ended by a stop request (shutdown, cancellation), not by an error.
    pub fn is_stop(&self) -> bool {
        self.stopped
    }
}

impl From<TrainError> for Failure {
    fn from(error: TrainError) -> Self {
        Self {
            stopped: matches!(error, TrainError::Stopped { .. }),
            permanent: error.is_permanent(),
            message: error.to_string(),
        }
    }
}

/// A trial training on its thread.
pub struct RunningTrial {
    pub id: String,
    pub attempt: u32,
    epoch: Arc<AtomicU32>,
    stop: Arc<AtomicBool>,
    /// The coordinator no longer wants this attempt: report nothing more about it.
    pub abandoned: bool,
}

impl RunningTrial {
    pub fn progress(&self) -> pb::TrialProgress {
        pb::TrialProgress {
            trial_id: self.id.clone(),
            attempt: self.attempt,
            epoch: self.epoch.load(Ordering::Relaxed),
        }
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
    lease: pb::LeasedTrial,
    options: &AgentOptions,
    link: &mut Link,
    events: UnboundedSender<TrialMessage>,
) -> Result<RunningTrial, (pb::LeasedTrial, anyhow::Error)> {
    let config = match TrialConfig::from_toml_str(&lease.config_toml) {
        Ok(c) => c,
        Err(e) => return Err((lease, anyhow::anyhow!("the coordinator sent an invalid config: {e}"))),
    };
    let checkpoint = local_checkpoint(&options.work_dir, &lease.trial_id);
    let resume = if lease.has_checkpoint {
        if let Err(e) = link.download_checkpoint(&lease.trial_id, lease.attempt, &checkpoint).await {
            return Err((lease, e));
        }
        tracing::info!(trial = %lease.trial_id, attempt = lease.attempt, epoch = lease.checkpoint_epoch, "resuming from checkpoint");
        Some(checkpoint.clone())
    } else {
        let _ = std::fs::remove_file(&checkpoint);
        None
    };
    let stop = Arc::new(AtomicBool::new(false));
    let epoch = Arc::new(AtomicU32::new(lease.checkpoint_epoch));
    let (id, attempt) = (lease.trial_id.clone(), lease.attempt);
    let thread_stop = stop.clone();
    let device = options.device;
    let data_dir = options.data_dir.clone();
    let spawned = std::thread::Builder::new().name(format!("trial-{id}")).spawn(move || {
        let send = |event: TrialEvent| {
            let _ = events.send(TrialMessage { trial_id: id.clone(), attempt, event });
        };
        let sink = |event: TrainEvent| forward(event, &send);
        let run = RunOptions { device, data_dir, checkpoint: Some(checkpoint), resume, stop: Some(&thread_stop) };
        let result = train::train(&config, &run, &sink).map_err(Failure::from);
        send(TrialEvent::Finished(result));
    });
    if let Err(e) = spawned {
        return Err((lease, anyhow::anyhow!("cannot start a training thread: {e}")));
    }
    tracing::info!(trial = %lease.trial_id, attempt = lease.attempt, "training");
    Ok(RunningTrial { id: lease.trial_id, attempt: lease.attempt, epoch, stop, abandoned: false })
}

/// Trainer events the coordinator cares about: epoch metrics and checkpoints.
fn forward(event: TrainEvent, send: &dyn Fn(TrialEvent)) {
    match event {
        TrainEvent::Epoch(r) => {
            let m = &r.validation;
            let mut points = vec![
                ("train_loss", r.train_loss),
                ("validation_loss", r.validation_loss),
                ("jaccard", m.jaccard),
                ("dice", m.dice),
                ("precision", m.precision),
                ("recall", m.recall),
                ("tnr", m.tnr),
                ("accuracy", m.accuracy),
                ("seconds", r.seconds),
                ("train_images_per_second", r.train_images_per_second),
            ];
            if let Some(auc) = m.auc {
                points.push(("auc", auc));
            }
            let epoch = r.epoch as u32;
            let points =
                points.into_iter().map(|(name, value)| pb::MetricPoint { epoch, name: name.into(), value }).collect();
            send(TrialEvent::Epoch { epoch, points });
        }
        TrainEvent::Checkpoint { epoch, step, path } => match std::fs::read(&path) {
            Ok(bytes) => send(TrialEvent::Checkpoint { epoch: epoch as u32, step: step as u32, bytes }),
            Err(error) => tracing::error!(path = %path.display(), %error, "cannot read the checkpoint just written"),
        },
        TrainEvent::Started { .. } | TrainEvent::Step { .. } => {}
    }
}

/// Where the agent keeps a trial's local checkpoint.
pub fn local_checkpoint(work_dir: &std::path::Path, trial_id: &str) -> PathBuf {
    work_dir.join(format!("{trial_id}.ckpt"))
}
