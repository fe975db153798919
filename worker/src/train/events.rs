//! What the trainer tells the outside world while it runs: progress and metrics leave
//! through an [`EventSink`], so the CLI can draw progress bars and the coordinator agent can
//! stream metrics without the trainer knowing which one listens.

use std::sync::mpsc;

use serde::{Deserialize, Serialize};

use crate::metrics::{KerasMetrics, Metrics};

/// One finished epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Mean training loss over the epoch's samples.
    pub train_loss: f64,
    /// Mean loss over the validation samples, model in eval mode.
    pub validation_loss: f64,
    /// Every metric on the validation samples.
    pub validation: Metrics,
    /// The authors' Keras-style metrics on the same samples.
    pub validation_keras: KerasMetrics,
    /// The learning rate the epoch trained at.
    pub lr: f64,
    /// Wall time of the epoch (training and validation).
    pub seconds: f64,
    /// Training samples per second over the training phase alone.
    pub train_images_per_second: f64,
}

/// Progress of a running trial.
#[derive(Debug, Clone, PartialEq)]
pub enum TrainEvent {
    /// Training (re)starts at `epoch` (0-based) and `step`.
    Started { epoch: usize, step: usize, epochs: usize, steps_per_epoch: usize, parameters: i64, split: String },
    /// A training step finished with this loss.
    Step { epoch: usize, step: usize, loss: f64 },
    /// An epoch finished and was measured.
    Epoch(EpochRecord),
    /// A checkpoint was written after `epoch` epochs and `step` steps of the next.
    Checkpoint { epoch: usize, step: usize, path: std::path::PathBuf },
}

/// Where events go. Sending never blocks training and never fails it.
pub trait EventSink {
    fn send(&self, event: TrainEvent);
}

impl EventSink for mpsc::Sender<TrainEvent> {
    fn send(&self, event: TrainEvent) {
        // A listener that went away is not the trainer's problem.
        let _ = mpsc::Sender::send(self, event);
    }
}

impl<F: Fn(TrainEvent)> EventSink for F {
    fn send(&self, event: TrainEvent) {
        self(event)
    }
}
