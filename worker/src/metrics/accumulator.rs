//! Accumulates confusion counts and score histograms over the batches of a split.
//!
//! Everything stays on the tensors' device (CPU or GPU) until [`MetricsAccumulator::metrics`]
//! is asked for, so accumulating costs no synchronisation per batch.

use tch::{Device, Kind, Tensor};

use super::keras::{KerasAccumulator, KerasMetrics};
use super::roc::{self, RocPoint, BINS, LOGIT_RANGE};
use super::{Confusion, Metrics};
use crate::inputs::{self, InputError};

/// Running totals for one split.
pub struct MetricsAccumulator {
    /// [tp, fp, tn, fn] so far, int64 on the device of the first batch.
    counts: Option<Tensor>,
    /// Score histogram: bins [0, BINS) hold negatives, [BINS, 2 BINS) positives.
    histogram: Option<Tensor>,
    /// The authors' per-batch metrics, averaged over the same batches.
    keras: KerasAccumulator,
}

impl Default for MetricsAccumulator {
    fn default() -> Self {
        Self::new()
    }
}

impl MetricsAccumulator {
    pub fn new() -> Self {
        Self { counts: None, histogram: None, keras: KerasAccumulator::new() }
    }

    /// Adds a batch after validating it fully (shapes and value ranges).
    pub fn update(&mut self, pred: &Tensor, target: &Tensor) -> Result<(), InputError> {
        inputs::check_pair(pred, target)?;
        self.update_unchecked_values(pred, target)
    }

    /// Adds a batch whose value ranges are known to be valid (the training loop).
    pub fn update_unchecked_values(&mut self, pred: &Tensor, target: &Tensor) -> Result<(), InputError> {
        inputs::check_shapes(pred, target)?;
        self.keras.update(pred, target)?;
        let _no_grad = tch::no_grad_guard();
        let pred = pred.detach().to_kind(Kind::Double).flatten(0, -1);
        let truth = target.flatten(0, -1).to_device(pred.device()).gt(0.5);
        let predicted = pred.ge(0.5);
        let not_truth = truth.logical_not();
        let not_predicted = predicted.logical_not();
        let count = |a: &Tensor, b: &Tensor| a.logical_and(b).sum(Kind::Int64);
        let batch_counts = Tensor::stack(
            &[
                count(&predicted, &truth),
                count(&predicted, &not_truth),
                count(&not_predicted, &not_truth),
                count(&not_predicted, &truth),
            ],
            0,
        );
        let bin = score_bins(&pred) + truth.to_kind(Kind::Int64) * BINS;
        let batch_histogram = bin.bincount::<Tensor>(None, 2 * BINS);
        add_into(&mut self.counts, batch_counts);
        add_into(&mut self.histogram, batch_histogram);
        Ok(())
    }

    /// The authors' Keras-style metrics over the batches seen ([`super::keras`]).
    pub fn keras_metrics(&self) -> KerasMetrics {
        self.keras.metrics()
    }

    /// The confusion counts so far.
    pub fn confusion(&self) -> Confusion {
        let v = to_u64(self.counts.as_ref(), 4);
        Confusion { tp: v[0], fp: v[1], tn: v[2], fn_: v[3] }
    }

    /// Every metric over all batches seen.
    pub fn metrics(&self) -> Metrics {
        let (negatives, positives) = self.histograms();
        Metrics::from_counts(self.confusion(), roc::auc(&positives, &negatives))
    }

    /// The ROC curve over all batches seen, with at most `max_points` points.
    pub fn roc_curve(&self, max_points: usize) -> Vec<RocPoint> {
        let (negatives, positives) = self.histograms();
        roc::curve(&positives, &negatives, max_points)
    }

    fn histograms(&self) -> (Vec<u64>, Vec<u64>) {
        let all = to_u64(self.histogram.as_ref(), 2 * BINS as usize);
        let (neg, pos) = all.split_at(BINS as usize);
        (neg.to_vec(), pos.to_vec())
    }
}

/// Bin index of each probability on the logit scale, in [0, BINS).
fn score_bins(pred: &Tensor) -> Tensor {
    let logit = pred.logit(None).clamp(-LOGIT_RANGE, LOGIT_RANGE);
    ((logit + LOGIT_RANGE) * (BINS as f64 / (2.0 * LOGIT_RANGE)))
        .floor()
        .clamp(0.0, (BINS - 1) as f64)
        .to_kind(Kind::Int64)
}

fn add_into(total: &mut Option<Tensor>, batch: Tensor) {
    *total = Some(match total.take() {
        None => batch,
        Some(t) => {
            let device = t.device();
            t + batch.to_device(device)
        }
    });
}

fn to_u64(t: Option<&Tensor>, len: usize) -> Vec<u64> {
    match t {
        None => vec![0; len],
        Some(t) => {
            let cpu = t.to_device(Device::Cpu).to_kind(Kind::Int64);
            let v = Vec::<i64>::try_from(&cpu).expect("a 1-D int64 CPU tensor converts to Vec<i64>");
            v.into_iter().map(|x| x.max(0) as u64).collect()
        }
    }
}
