//! The trainer: one trial from config to final metrics, resumable from any checkpoint.
//!
//! Adam at the configured learning rate (constant, or cut on plateaus or at milestones:
//! [`protocol`]), initial weights from the seed, mini-batches in an
//! order drawn from (seed, epoch), dropout masks from (seed, epoch, step), nothing from
//! libtorch's shared generator once training runs: the same config and seed give the same result on
//! CPU, and a resumed run continues exactly where the checkpoint stopped. After every epoch:
//! training loss, validation loss and every metric, then a checkpoint; at the end, the test
//! metrics and the ROC curve of the last epoch's weights, or of the best validation epoch's.
//! A NaN or infinite loss ends the run as diverged.

pub mod adam;
pub mod checkpoint;
pub mod events;
pub mod group;
pub mod protocol;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use allsweep_config::{Selection, TrialConfig};
use allsweep_proto::fault::TrialFault;
use rand::seq::SliceRandom;
use serde::Serialize;
use tch::{nn, Device};

use crate::data::{self, Batches, DataError, LoadedData};
use crate::losses::{Loss, LossError};
use crate::metrics::{KerasMetrics, Metrics, MetricsAccumulator, RocPoint};
use crate::models::{self, ModelError, Segmenter};
use adam::Adam;
use checkpoint::{CheckpointError, Position, Weights};
pub use events::{EpochRecord, EventSink, TrainEvent};

/// Points kept of the final ROC curve.
pub const ROC_POINTS: usize = 200;

/// Training steps between two reads of their losses on a GPU. Reading a loss waits for the
/// device to finish every queued kernel; between reads the host queues the next steps while
/// the GPU runs, and a read checks every loss since the last one, so a divergence is still
/// named by its own step.
pub const LOSS_READ_EVERY_ON_GPU: usize = 16;

thread_local! {
    /// The times this thread's training steps waited for the device: each read of the
    /// step losses ([`UnreadLosses::read`]), the one place the step loop takes a value from
    /// the device. A test holds the trainer to one wait per `loss_read_every` steps.
    static STEP_WAITS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// The times the training steps run on this thread so far waited for the device.
pub fn step_waits() -> u64 {
    STEP_WAITS.with(|w| w.get())
}

/// How many steps run between two reads of their losses on `device`: one on the CPU, where
/// a read waits for nothing (and progress shows every step).
pub fn loss_read_every(device: Device) -> usize {
    if device.is_cuda() {
        LOSS_READ_EVERY_ON_GPU
    } else {
        1
    }
}

/// How to run a trial (not part of its config: the same trial may run anywhere).
pub struct RunOptions<'a> {
    pub device: Device,
    /// Where relative data-set roots resolve.
    pub data_dir: Option<PathBuf>,
    /// Where to write the checkpoint after each epoch (and on a stop request).
    pub checkpoint: Option<PathBuf>,
    /// A checkpoint to resume from.
    pub resume: Option<PathBuf>,
    /// Set from outside to stop between two steps; a checkpoint is written first.
    pub stop: Option<&'a AtomicBool>,
    /// Early stopping: end after this many epochs, their checkpoint written, with
    /// [`TrainError::Paused`] (the coordinator decides at that rung whether it goes on).
    pub pause_after_epoch: Option<usize>,
    /// Steps between two reads of the training losses ([`loss_read_every`]).
    pub loss_read_every: usize,
    /// Trains in float64 (weights, inputs, losses): slow, and no config asks for it; it is
    /// how the tests check that two ways of training (a fused group, a trial alone) compute
    /// the same numbers, where float32's rounding would hide a difference.
    pub float64: bool,
}

/// A batch in the kind the trainer computes in: float64 under [`RunOptions::float64`], as
/// loaded (float32) otherwise.
fn in_kind((input, target): (tch::Tensor, tch::Tensor), float64: bool) -> (tch::Tensor, tch::Tensor) {
    if float64 {
        (input.to_kind(tch::Kind::Double), target.to_kind(tch::Kind::Double))
    } else {
        (input, target)
    }
}

/// Whether a run with `options` pauses now, after `epoch` of its `epochs`: at its rung, never
/// at its last epoch (which it finishes and tests).
pub fn pauses_here(options: &RunOptions, epoch: usize, epochs: usize) -> bool {
    options.pause_after_epoch == Some(epoch) && epoch < epochs
}

/// Why a trial did not finish.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Loss(#[from] LossError),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error("diverged: the loss was {value} at epoch {epoch}, step {step}")]
    Diverged { epoch: usize, step: usize, value: f64 },
    #[error("stopped on request at epoch {epoch}, step {step}; checkpoint written")]
    Stopped { epoch: usize, step: usize },
    /// Reached the rung it was to pause at ([`RunOptions::pause_after_epoch`]).
    #[error("paused after epoch {epoch}, a rung of the sweep's early stopping; checkpoint written")]
    Paused { epoch: usize },
    #[error("the training split has {0} sample(s); at least 2 are needed")]
    TooFewSamples(usize),
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
    /// libtorch raised an error inside an operation that has no `Result` (the networks'
    /// layers, `backward`), which reaches the trainer as a panic.
    #[error("libtorch: {0}")]
    Panicked(String),
    /// The trials cannot train as one fused group; train them alone.
    #[error("not a group: {0}")]
    NotGroupable(String),
    /// The fused group this trial trained in failed as a whole (libtorch, the device).
    #[error("the fused group failed: {0}")]
    Group(String),
}

/// Whether a libtorch error says the device ran out of memory: CUDA's caching allocator
/// ("CUDA out of memory. Tried to allocate ..."), or the CPU's ("DefaultCPUAllocator: can't
/// allocate memory: you tried to allocate ...").
pub fn is_out_of_memory(message: &str) -> bool {
    message.contains("out of memory") || message.contains("can't allocate memory")
}

/// [`train`], with a panic of libtorch's inside it caught and returned as an error
/// ([`TrainError::Panicked`]), so that the trial ends and is reported like any failure
/// (one that ran out of memory as such) instead of taking its thread down unheard.
pub fn train_caught(
    config: &TrialConfig,
    options: &RunOptions,
    events: &dyn EventSink,
) -> Result<TrialOutcome, TrainError> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| train(config, options, events))) {
        Ok(ended) => ended,
        Err(payload) => Err(TrainError::Panicked(panic_message(payload.as_ref()))),
    }
}

/// The text of a panic's payload.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_string()
    } else {
        "a panic without a message".to_string()
    }
}

impl TrainError {
    /// What the failure means for the trial, the one classification the agent reports and
    /// the coordinator acts on: data missing on this machine is the worker's fault
    /// ([`DataError::fault`]); a libtorch or checkpoint error may not recur
    /// ([`TrialFault::Retry`]); a bad config, bad data or a diverged run fails the same way
    /// anywhere ([`TrialFault::Permanent`]); a device out of memory asks for more room
    /// ([`TrialFault::OutOfMemory`]). `None` for a stop on request, which is no failure.
    pub fn fault(&self) -> Option<TrialFault> {
        match self {
            TrainError::Stopped { .. } | TrainError::Paused { .. } => None,
            TrainError::Data(error) => Some(error.fault()),
            TrainError::Torch(e) if is_out_of_memory(&e.to_string()) => Some(TrialFault::OutOfMemory),
            TrainError::Panicked(message) | TrainError::Group(message) if is_out_of_memory(message) => {
                Some(TrialFault::OutOfMemory)
            }
            TrainError::Checkpoint(_)
            | TrainError::Torch(_)
            | TrainError::Panicked(_)
            | TrainError::Group(_)
            | TrainError::NotGroupable(_) => Some(TrialFault::Retry),
            TrainError::Model(_) | TrainError::Loss(_) | TrainError::Diverged { .. } | TrainError::TooFewSamples(_) => {
                Some(TrialFault::Permanent)
            }
        }
    }
}

/// A finished trial.
#[derive(Debug, Clone, Serialize)]
pub struct TrialOutcome {
    pub epochs: Vec<EpochRecord>,
    pub test: Metrics,
    /// The authors' Keras-style metrics on the test samples.
    pub test_keras: KerasMetrics,
    /// The 1-based epoch whose weights were tested (`train.select`).
    pub selected_epoch: usize,
    pub roc: Vec<RocPoint>,
    pub split: String,
    pub parameters: i64,
    /// The epoch and step training resumed from, when it did.
    pub resumed_from: Option<(usize, usize)>,
}

/// Trains `config` to the end (or to a stop request), reporting progress to `events`.
pub fn train(config: &TrialConfig, options: &RunOptions, events: &dyn EventSink) -> Result<TrialOutcome, TrainError> {
    let data = data::cache::load(&config.dataset, options.data_dir.as_deref())?;
    train_on(config, &data, options, events)
}

/// [`train`] on an already loaded data set.
pub fn train_on(
    config: &TrialConfig,
    data: &LoadedData,
    options: &RunOptions,
    events: &dyn EventSink,
) -> Result<TrialOutcome, TrainError> {
    let batch = config.train.batch_size;
    if data.train.len() < 2 {
        return Err(TrainError::TooFewSamples(data.train.len()));
    }
    let (mut vs, mut model) =
        models::build_seeded(options.device, config.model, data.train.channels() as i64, config.seed)?;
    if options.float64 {
        vs.double();
    }
    model.set_precision(config.train.precision);
    if options.device.is_cuda() {
        // cuDNN times its algorithms once per shape and keeps the fastest; a trial's shapes
        // never change, so the search pays off from the second step.
        tch::Cuda::cudnn_set_benchmark(true);
    }
    let loss = Loss::new(config.loss.clone());
    let mut adam = Adam::new(&vs, config.train.lr);
    let fingerprint = fingerprint(config);
    let mut position = Position::start(fingerprint.clone());
    let mut resumed_from = None;
    // The weights of the best validation epoch so far, kept only when they are the ones tested.
    let keeps_best = config.train.select == Selection::BestValidation;
    let mut best: Option<Weights> = None;
    if let Some(path) = &options.resume {
        let loaded = checkpoint::load(path)?;
        if loaded.position.fingerprint != fingerprint {
            return Err(CheckpointError::OtherConfig {
                path: path.clone(),
                expected: fingerprint,
                found: loaded.position.fingerprint.clone(),
            }
            .into());
        }
        loaded.restore(path, &mut vs, &mut adam)?;
        if keeps_best {
            best = loaded.best_weights(options.device);
        }
        position = loaded.position;
        resumed_from = Some((position.epoch, position.step));
        tracing::info!(epoch = position.epoch, step = position.step, checkpoint = %path.display(), "resuming");
    }
    let steps_per_epoch = steps_per_epoch(data.train.len(), batch);
    // On a GPU the samples live there for the whole run, and each batch is gathered there.
    let train_batches = Batches::new(&data.train, options.device);
    let validation_batches = Batches::new(&data.validation, options.device);
    events.send(TrainEvent::Started {
        epoch: position.epoch,
        step: position.step,
        epochs: config.train.epochs,
        steps_per_epoch,
        parameters: models::parameter_count(&vs),
        split: data.split_description.clone(),
    });
    while position.epoch < config.train.epochs {
        let epoch = position.epoch;
        let started = Instant::now();
        let lr = protocol::lr_for_next_epoch(&config.train, &position.history);
        adam.set_lr(lr);
        let order = epoch_order(data.train.len(), config.seed, epoch);
        let train_started = Instant::now();
        let mut unread = UnreadLosses::default();
        while position.step < steps_per_epoch {
            let step = position.step;
            if options.stop.is_some_and(|s| s.load(Ordering::Relaxed)) {
                unread.read(epoch, &mut position, events)?;
                position.train_seconds += train_started.elapsed().as_secs_f64();
                position.adam_steps = adam.steps();
                save_checkpoint(options, &vs, &adam, best.as_ref(), &position, events)?;
                return Err(TrainError::Stopped { epoch, step });
            }
            model.set_step_seed(step_seed(config.seed, epoch, step));
            let indices = batch_indices(&order, step, batch, steps_per_epoch);
            let (input, target) = in_kind(train_batches.batch(indices), options.float64);
            let pred = model.forward_t(&input, true)?;
            let value = loss.compute_checked_shapes(&pred, &target)?;
            adam.zero_grad();
            // Minimised: the loss plus the Keras layers' L2 terms; reported: the loss alone,
            // comparable across networks and settings.
            match model.l2_penalty(config.train.l2_scale) {
                Some(penalty) => (&value + penalty).backward(),
                None => value.backward(),
            }
            adam.step();
            unread.push(step, value.detach(), indices.len());
            position.step += 1;
            if unread.len() >= options.loss_read_every.max(1) {
                unread.read(epoch, &mut position, events)?;
            }
        }
        unread.read(epoch, &mut position, events)?;
        position.train_seconds += train_started.elapsed().as_secs_f64();
        let (validation_loss, validation) = evaluate(&model, &loss, &validation_batches, batch, options.float64)?;
        if !validation_loss.is_finite() {
            // Weights that give a non-finite loss on held-out data have diverged, even when
            // every training batch stayed finite.
            return Err(TrainError::Diverged { epoch: epoch + 1, step: position.step, value: validation_loss });
        }
        let record = position.close_epoch(lr, started, validation_loss, &validation);
        events.send(TrainEvent::Epoch(record.clone()));
        if keeps_best && protocol::selected_epoch(&config.train, &position.history) == Some(record.epoch) {
            best = Some(snapshot(&vs));
        }
        position.start_next_epoch(adam.steps());
        save_checkpoint(options, &vs, &adam, best.as_ref(), &position, events)?;
        if pauses_here(options, position.epoch, config.train.epochs) {
            return Err(TrainError::Paused { epoch: position.epoch });
        }
    }
    let selected_epoch = match &best {
        Some(weights) => {
            load_weights(&mut vs, weights);
            protocol::selected_epoch(&config.train, &position.history)
        }
        None => position.history.last().map(|r| r.epoch),
    };
    drop((train_batches, validation_batches));
    let (_, test) = evaluate(&model, &loss, &Batches::new(&data.test, options.device), batch, options.float64)?;
    Ok(TrialOutcome {
        selected_epoch: selected_epoch.unwrap_or(position.epoch),
        test_keras: test.keras_metrics(),
        epochs: position.history,
        test: test.metrics(),
        roc: test.roc_curve(ROC_POINTS),
        split: data.split_description.clone(),
        parameters: models::parameter_count(&vs),
        resumed_from,
    })
}

impl Position {
    /// A fresh trial's position: nothing trained, for the config `fingerprint` names.
    fn start(fingerprint: String) -> Self {
        Self {
            epoch: 0,
            step: 0,
            train_loss_sum: 0.0,
            train_samples: 0,
            train_seconds: 0.0,
            adam_steps: 0,
            history: Vec::new(),
            fingerprint,
        }
    }

    /// The record of the epoch just trained and validated (its training sums, the time since
    /// `started`), kept in the history and returned.
    fn close_epoch(
        &mut self,
        lr: f64,
        started: Instant,
        validation_loss: f64,
        validation: &MetricsAccumulator,
    ) -> EpochRecord {
        let record = EpochRecord {
            epoch: self.epoch + 1,
            train_loss: self.train_loss_sum / self.train_samples.max(1) as f64,
            validation_loss,
            validation: validation.metrics(),
            validation_keras: validation.keras_metrics(),
            lr,
            seconds: started.elapsed().as_secs_f64(),
            train_images_per_second: self.train_samples as f64 / self.train_seconds.max(1e-9),
        };
        self.history.push(record.clone());
        record
    }

    /// The start of the next epoch, after `adam_steps` steps in all.
    fn start_next_epoch(&mut self, adam_steps: i64) {
        self.epoch += 1;
        self.step = 0;
        self.train_loss_sum = 0.0;
        self.train_samples = 0;
        self.train_seconds = 0.0;
        self.adam_steps = adam_steps;
    }
}

/// The losses of the steps since the last read, still on the device.
#[derive(Default)]
struct UnreadLosses {
    /// (step, loss, samples in the batch), in step order.
    steps: Vec<(usize, tch::Tensor, usize)>,
}

impl UnreadLosses {
    fn push(&mut self, step: usize, loss: tch::Tensor, samples: usize) {
        self.steps.push((step, loss, samples));
    }

    fn len(&self) -> usize {
        self.steps.len()
    }

    /// Reads every unread loss in one transfer (the one wait for the device), adds them to
    /// the epoch's training loss and reports each step; the first loss that is not finite
    /// ends the run as diverged at its own step.
    fn read(&mut self, epoch: usize, position: &mut Position, events: &dyn EventSink) -> Result<(), TrainError> {
        if self.steps.is_empty() {
            return Ok(());
        }
        STEP_WAITS.with(|w| w.set(w.get() + 1));
        let losses: Vec<&tch::Tensor> = self.steps.iter().map(|(_, loss, _)| loss).collect();
        let stacked = tch::Tensor::f_stack(&losses, 0)?.f_to_kind(tch::Kind::Double)?.f_to_device(Device::Cpu)?;
        let values = Vec::<f64>::try_from(&stacked)?;
        for (&(step, _, samples), &value) in self.steps.iter().zip(&values) {
            if !value.is_finite() {
                return Err(TrainError::Diverged { epoch: epoch + 1, step: step + 1, value });
            }
            position.train_loss_sum += value * samples as f64;
            position.train_samples += samples;
            events.send(TrainEvent::Step { epoch, step, loss: value });
        }
        self.steps.clear();
        Ok(())
    }
}

/// A copy of the model's weights and batch-norm statistics as they are now.
fn snapshot(vs: &nn::VarStore) -> Weights {
    let _guard = tch::no_grad_guard();
    vs.variables().into_iter().map(|(name, t)| (name, t.detach().copy())).collect()
}

/// Copies `weights` back into the model.
fn load_weights(vs: &mut nn::VarStore, weights: &Weights) {
    let _guard = tch::no_grad_guard();
    for (name, mut var) in vs.variables() {
        if let Some(saved) = weights.get(&name) {
            var.copy_(saved);
        }
    }
}

fn save_checkpoint(
    options: &RunOptions,
    vs: &nn::VarStore,
    adam: &Adam,
    best: Option<&Weights>,
    position: &Position,
    events: &dyn EventSink,
) -> Result<(), TrainError> {
    if let Some(path) = &options.checkpoint {
        checkpoint::save(path, vs, adam, best, position)?;
        events.send(TrainEvent::Checkpoint { epoch: position.epoch, step: position.step, path: path.clone() });
    }
    Ok(())
}

/// Mean loss and accumulated metrics of `split`, model in eval mode. The losses are summed
/// on the device (in float64, as the host would) and read once at the end.
fn evaluate(
    model: &Segmenter,
    loss: &Loss,
    split: &Batches,
    batch: usize,
    float64: bool,
) -> Result<(f64, MetricsAccumulator), TrainError> {
    let _guard = tch::no_grad_guard();
    let mut metrics = MetricsAccumulator::new();
    let (mut sum, mut count): (Option<tch::Tensor>, usize) = (None, 0);
    let all: Vec<usize> = (0..split.len()).collect();
    for indices in all.chunks(batch) {
        let (input, target) = in_kind(split.batch(indices), float64);
        let pred = model.forward_t(&input, false)?;
        let weighted = loss.compute_checked_shapes(&pred, &target)?.to_kind(tch::Kind::Double) * indices.len() as f64;
        sum = Some(match sum {
            None => weighted,
            Some(total) => total + weighted,
        });
        count += indices.len();
        metrics.update_unchecked_values(&pred, &target).map_err(LossError::from)?;
    }
    let sum = sum.map_or(0.0, |s| s.double_value(&[]));
    Ok((sum / count.max(1) as f64, metrics))
}

/// Steps per epoch: every sample once; a last batch of a single sample is folded into the
/// one before (batch norm cannot train on one sample).
pub fn steps_per_epoch(samples: usize, batch: usize) -> usize {
    let full = samples / batch;
    match samples % batch {
        0 => full,
        1 if full > 0 => full,
        _ => full + 1,
    }
}

fn batch_indices(order: &[usize], step: usize, batch: usize, steps: usize) -> &[usize] {
    let start = step * batch;
    let end = if step + 1 == steps { order.len() } else { (start + batch).min(order.len()) };
    &order[start..end]
}

/// The sample order of an epoch, from (seed, epoch) alone.
fn epoch_order(samples: usize, seed: u64, epoch: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..samples).collect();
    order.shuffle(&mut data::split_rng(seed, 1_000_000 + epoch as u64));
    order
}

/// The dropout seed of one step, from (seed, epoch, step) alone.
fn step_seed(seed: u64, epoch: usize, step: usize) -> u64 {
    seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ ((epoch as u64) << 32) ^ step as u64
}

/// The config without its epoch count, as JSON.
fn fingerprint(config: &TrialConfig) -> String {
    let mut value = serde_json::to_value(config).unwrap_or_default();
    if let Some(train) = value.get_mut("train").and_then(|t| t.as_object_mut()) {
        train.remove("epochs");
    }
    if let Some(object) = value.as_object_mut() {
        object.remove("name");
    }
    value.to_string()
}

/// Reads a checkpoint's position (epoch, step) without restoring it.
pub fn checkpoint_position(path: &Path) -> Result<(usize, usize), CheckpointError> {
    checkpoint::load(path).map(|l| (l.position.epoch, l.position.step))
}

#[cfg(test)]
mod tests;
