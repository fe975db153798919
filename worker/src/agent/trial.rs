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
    /// The fused group it trains in, shared with the other trials of its lease that have
    /// it; `None`: alone.
    pub group_id: Option<String>,
    /// Early stopping: the rung it trains to, then hands the trial back; `None`: to the end.
    pub pause_at_epoch: Option<u32>,
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
    /// Ended by a stop request (shutdown, cancellation), or paused at a rung of its sweep's
    /// early stopping, after writing its checkpoint: no failure.
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

/// A leased trial made ready to train here: its checkpoint fetched when it resumes, its
/// stop flag and progress counter made.
struct Prepared {
    lease: Lease,
    checkpoint: PathBuf,
    resume: Option<PathBuf>,
    stop: Arc<AtomicBool>,
    epoch: Arc<AtomicU32>,
    data: DataLocation,
}

impl Prepared {
    async fn new(
        lease: Lease,
        options: &AgentOptions,
        work_dir: &Path,
        link: &mut Link,
    ) -> Result<Self, (Lease, anyhow::Error)> {
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
        let dataset = &lease.config.dataset;
        let data = DataLocation {
            kind: dataset.kind.name(),
            configured: dataset.root.clone(),
            resolved: dataset.root.as_deref().map(|r| data::resolve_root(r, options.data_dir.as_deref())),
        };
        let stop = Arc::new(AtomicBool::new(false));
        let epoch = Arc::new(AtomicU32::new(lease.checkpoint_epoch.unwrap_or(0)));
        Ok(Self { lease, checkpoint, resume, stop, epoch, data })
    }

    /// The trial as the agent tracks it while its thread trains it.
    fn running(&self, device: tch::Device) -> RunningTrial {
        RunningTrial {
            id: self.lease.trial_id.clone(),
            attempt: self.lease.attempt,
            data: self.data.clone(),
            device,
            memory_bytes: self.lease.memory_bytes,
            epoch: self.epoch.clone(),
            stop: self.stop.clone(),
            abandoned: false,
        }
    }

    /// How the trainer runs it on `device`.
    fn run_options<'a>(&'a self, device: tch::Device, data_dir: Option<PathBuf>) -> RunOptions<'a> {
        RunOptions {
            device,
            data_dir,
            checkpoint: Some(self.checkpoint.clone()),
            resume: self.resume.clone(),
            stop: Some(&self.stop),
            pause_after_epoch: self.lease.pause_at_epoch.map(|e| e as usize),
            loss_read_every: train::loss_read_every(device),
            float64: false,
        }
    }

    /// Sends `event` as this trial's.
    fn send(&self, events: &UnboundedSender<TrialMessage>, event: TrialEvent) {
        let _ = events.send(TrialMessage { trial_id: self.lease.trial_id.clone(), attempt: self.lease.attempt, event });
    }

    /// Trains it alone on this thread to its end, and reports the end.
    fn train_alone(&self, device: tch::Device, data_dir: Option<PathBuf>, events: &UnboundedSender<TrialMessage>) {
        let send = |event: TrialEvent| self.send(events, event);
        let sink = |event: TrainEvent| forward(event, &send);
        let ended = ended_event(train::train_caught(&self.lease.config, &self.run_options(device, data_dir), &sink));
        remove_local(&self.checkpoint);
        send(ended);
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
    let prepared = Prepared::new(lease, options, work_dir, link).await?;
    let running = prepared.running(device);
    let data_dir = options.data_dir.clone();
    let name = format!("trial-{}", prepared.lease.trial_id);
    let handle = prepared.clone_handles();
    let spawned = std::thread::Builder::new().name(name).spawn(move || handle.train_alone(device, data_dir, &events));
    if let Err(e) = spawned {
        return Err((prepared.lease, anyhow::anyhow!("cannot start a training thread: {e}")));
    }
    tracing::info!(trial = %prepared.lease.trial_id, attempt = prepared.lease.attempt, "training");
    Ok(running)
}

/// [`start`] for the trials of one fused group (issue 11): each checkpoint fetched, then one
/// thread trains them as one network ([`train::group::train_group`]), each trial reporting
/// as its own. Trials the trainer will not fuse after all (checkpoints at different steps,
/// configs that differ) train alone, one after another, on that thread. A trial that cannot
/// be prepared (its checkpoint does not download) comes back with its error and the rest
/// train without it; if the thread cannot start, every lease comes back.
pub async fn start_group(
    leases: Vec<Lease>,
    options: &AgentOptions,
    device: tch::Device,
    work_dir: &Path,
    link: &mut Link,
    events: UnboundedSender<TrialMessage>,
) -> (Vec<RunningTrial>, Vec<(Lease, anyhow::Error)>) {
    let mut prepared: Vec<Prepared> = Vec::with_capacity(leases.len());
    let mut failed = Vec::new();
    for lease in leases {
        match Prepared::new(lease, options, work_dir, link).await {
            Ok(p) => prepared.push(p),
            Err(failure) => failed.push(failure),
        }
    }
    if prepared.is_empty() {
        return (Vec::new(), failed);
    }
    let running: Vec<RunningTrial> = prepared.iter().map(|p| p.running(device)).collect();
    let group = prepared[0].lease.group_id.clone().unwrap_or_default();
    let data_dir = options.data_dir.clone();
    let handles: Vec<Prepared> = prepared.iter().map(Prepared::clone_handles).collect();
    let spawned = std::thread::Builder::new().name(format!("group-{group}")).spawn(move || {
        train_group(&handles, device, data_dir, &events);
    });
    if let Err(e) = spawned {
        let message = format!("cannot start a training thread: {e}");
        failed.extend(prepared.into_iter().map(|p| (p.lease, anyhow::anyhow!(message.clone()))));
        return (Vec::new(), failed);
    }
    let ids: Vec<&str> = running.iter().map(|t| t.id.as_str()).collect();
    tracing::info!(group = %group, trials = ?ids, "training as one fused group");
    (running, failed)
}

impl Prepared {
    /// A copy that shares the stop flag and progress counter.
    fn clone_handles(&self) -> Prepared {
        Prepared {
            lease: self.lease.clone(),
            checkpoint: self.checkpoint.clone(),
            resume: self.resume.clone(),
            stop: self.stop.clone(),
            epoch: self.epoch.clone(),
            data: self.data.clone(),
        }
    }
}

/// The group thread: the members trained as one network and each one's end reported; a
/// group the trainer refuses before training trains alone, member by member.
fn train_group(
    members: &[Prepared],
    device: tch::Device,
    data_dir: Option<PathBuf>,
    events: &UnboundedSender<TrialMessage>,
) {
    let sends: Vec<_> = members.iter().map(|m| move |event: TrialEvent| m.send(events, event)).collect();
    let sinks: Vec<_> = sends.iter().map(|send| move |event: TrainEvent| forward(event, send)).collect();
    let started = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let data = data::cache::load(&members[0].lease.config.dataset, data_dir.as_deref())?;
        let group: Vec<train::group::GroupMember> = members
            .iter()
            .zip(&sinks)
            .map(|(m, sink)| train::group::GroupMember {
                config: &m.lease.config,
                options: m.run_options(device, data_dir.clone()),
                events: sink,
            })
            .collect();
        train::group::train_group(&group, &data)
    }));
    match started {
        Ok(Ok(results)) => {
            for ((member, send), result) in members.iter().zip(&sends).zip(results) {
                remove_local(&member.checkpoint);
                send(ended_event(result));
            }
        }
        Ok(Err(refused)) => {
            tracing::warn!(error = %refused, "the group trains alone, trial by trial");
            for member in members {
                member.train_alone(device, data_dir.clone(), events);
            }
        }
        Err(payload) => {
            let message = train::panic_message(payload.as_ref());
            for (member, send) in members.iter().zip(&sends) {
                remove_local(&member.checkpoint);
                send(ended_event(Err(train::TrainError::Group(message.clone()))));
            }
        }
    }
}

/// What a trial's end means for the agent: its outcome, a stop on request (no failure), or
/// a failure and whose fault it is.
fn ended_event(result: Result<TrialOutcome, train::TrainError>) -> TrialEvent {
    match result {
        Ok(outcome) => TrialEvent::Finished(Ok(Box::new(outcome))),
        Err(error) => match error.fault() {
            None => TrialEvent::Stopped,
            Some(fault) => TrialEvent::Finished(Err(Failure { message: error.to_string(), fault })),
        },
    }
}

/// Every checkpoint's bytes left with its event when it was written; a later attempt
/// starts from the coordinator's copy. Nothing of an ended trial stays on this disk.
fn remove_local(local: &Path) {
    if let Err(error) = std::fs::remove_file(local) {
        if error.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(path = %local.display(), %error, "cannot remove an ended trial's local checkpoint");
        }
    }
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
