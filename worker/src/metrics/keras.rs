//! The authors' metrics, as their Keras code computes them (`losses.py` of
//! chaitanya-kaul/TheFocusNetSeries), kept beside the pooled hard metrics of this crate so a
//! reader can set the paper's numbers next to sound ones.
//!
//! Per batch, over every pixel of the batch, with `p` the predicted probabilities and `y` the
//! labels:
//! - Dice (`dsc`) = (2 sum(y p) + 1) / (sum(y) + sum(p) + 1): soft (no threshold), +1-smoothed;
//! - Jaccard (`jacard_coef`) = (sum(y p) + 1) / (sum(y) + sum(p) - sum(y p) + 1);
//! - recall (`tp`) = (sum(ŷ r) + 1) / (sum(ŷ) + 1) and TNR (`tn`) = (sum((1-ŷ)(1-r)) + 1) /
//!   (sum(1-ŷ) + 1), with r = round(clip(p, 0, 1)) and ŷ = round(clip(y, 0, 1)), rounding
//!   half to even as `K.round` does (0.5 rounds to 0).
//!
//! Then averaged over the batches of the split weighted by their sizes, as Keras's `evaluate`
//! and `fit`'s validation average a metric (`outs[i] += batch_out * len(batch_ids)`, divided
//! by the samples). So the values depend on the batch size, and a batch with no foreground
//! scores high on Dice through the +1. Computed in float64 (Keras ran float32).

use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use crate::inputs::{self, InputError};

/// The authors' four metrics over a split, as fractions.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct KerasMetrics {
    pub jaccard: f64,
    pub dice: f64,
    pub recall: f64,
    pub tnr: f64,
}

/// Running batch-size-weighted sums of the per-batch metrics, on the device of the batches.
#[derive(Default)]
pub struct KerasAccumulator {
    /// [jaccard, dice, recall, tnr] x samples, summed over batches; float64.
    sums: Option<Tensor>,
    samples: usize,
}

impl KerasAccumulator {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one batch (`pred` probabilities and `target` labels of the same shape, batch first).
    pub fn update(&mut self, pred: &Tensor, target: &Tensor) -> Result<(), InputError> {
        inputs::check_shapes(pred, target)?;
        let _no_grad = tch::no_grad_guard();
        let samples = pred.size().first().copied().unwrap_or(0).max(0) as usize;
        let p = pred.detach().to_kind(Kind::Double).flatten(0, -1);
        let y = target.to_device(p.device()).to_kind(Kind::Double).flatten(0, -1);
        let sum = |t: &Tensor| t.sum(Kind::Double);
        let (intersection, sum_y, sum_p) = (sum(&(&y * &p)), sum(&y), sum(&p));
        let dice = (&intersection * 2.0 + 1.0) / (&sum_y + &sum_p + 1.0);
        let jaccard = (&intersection + 1.0) / (&sum_y + &sum_p - &intersection + 1.0);
        let rounded_p = p.clamp(0.0, 1.0).round();
        let rounded_y = y.clamp(0.0, 1.0).round();
        let recall = (sum(&(&rounded_y * &rounded_p)) + 1.0) / (sum(&rounded_y) + 1.0);
        let (negative_y, negative_p) = (rounded_y.neg() + 1.0, rounded_p.neg() + 1.0);
        let tnr = (sum(&(&negative_y * &negative_p)) + 1.0) / (sum(&negative_y) + 1.0);
        let batch = Tensor::stack(&[jaccard, dice, recall, tnr], 0) * samples as f64;
        self.sums = Some(match self.sums.take() {
            None => batch,
            Some(total) => total + batch,
        });
        self.samples += samples;
        Ok(())
    }

    /// The batch-weighted means so far; every metric 1.0 when no batch was seen (as the
    /// smoothing gives an empty batch).
    pub fn metrics(&self) -> KerasMetrics {
        let v = match &self.sums {
            None => vec![1.0; 4],
            Some(sums) => {
                let cpu = sums.to_device(Device::Cpu) / self.samples.max(1) as f64;
                Vec::<f64>::try_from(&cpu).expect("a 1-D float64 CPU tensor converts to Vec<f64>")
            }
        };
        KerasMetrics { jaccard: v[0], dice: v[1], recall: v[2], tnr: v[3] }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensor(values: &[f64]) -> Tensor {
        Tensor::from_slice(values).reshape([1, 1, 1, values.len() as i64])
    }

    #[test]
    fn one_batch_gives_the_authors_formulas_by_hand() {
        // y = 1 1 0 0, p = 0.9 0.5 0.5 0.2: sum(yp) = 1.4, sum y = 2, sum p = 2.1;
        // rounded p (half to even) = 1 0 0 0.
        let mut acc = KerasAccumulator::new();
        acc.update(&tensor(&[0.9, 0.5, 0.5, 0.2]), &tensor(&[1.0, 1.0, 0.0, 0.0])).unwrap();
        let m = acc.metrics();
        assert!((m.dice - (2.0 * 1.4 + 1.0) / (2.0 + 2.1 + 1.0)).abs() < 1e-12, "{m:?}");
        assert!((m.jaccard - (1.4 + 1.0) / (2.0 + 2.1 - 1.4 + 1.0)).abs() < 1e-12, "{m:?}");
        assert!((m.recall - (1.0 + 1.0) / (2.0 + 1.0)).abs() < 1e-12, "0.5 rounds to 0: {m:?}");
        assert!((m.tnr - (2.0 + 1.0) / (2.0 + 1.0)).abs() < 1e-12, "{m:?}");
    }

    #[test]
    fn batches_are_averaged_weighted_by_their_sizes() {
        let mut acc = KerasAccumulator::new();
        let perfect = Tensor::ones([3, 1, 2, 2], (Kind::Double, Device::Cpu));
        acc.update(&perfect, &perfect).unwrap();
        // One sample predicting nothing on all-foreground: Dice = 1 / (4 + 1).
        let empty = Tensor::zeros([1, 1, 2, 2], (Kind::Double, Device::Cpu));
        acc.update(&empty, &Tensor::ones([1, 1, 2, 2], (Kind::Double, Device::Cpu))).unwrap();
        let m = acc.metrics();
        assert!((m.dice - (3.0 * 1.0 + 1.0 * 0.2) / 4.0).abs() < 1e-12, "{m:?}");
        assert_eq!(KerasAccumulator::new().metrics().dice, 1.0);
    }
}
