//! Segmentation metrics pooled over a whole split, accumulated batch by batch.
//!
//! Definitions are those of `docs/paper-notes.md` section 3: threshold at 0.5
//! (P >= 0.5 is foreground), count TP, FP, TN, FN over every pixel of the split, then
//! Jaccard = TP/(TP+FP+FN), Dice = F1 = 2TP/(2TP+FP+FN), precision = TP/(TP+FP),
//! recall = TP/(TP+FN), TNR = TN/(TN+FP), accuracy = (TP+TN)/all, all as fractions
//! (reports multiply by 100). AUC-ROC and the ROC curve come from the unthresholded
//! probabilities through a fine histogram ([`roc`]), so no prediction is kept.
//!
//! Degenerate cases are defined, not NaN by accident: a ratio whose denominator is zero
//! counts nothing that could have gone wrong (no predicted positives for precision, no real
//! positives for recall, nothing on either side for Jaccard and Dice) and is 1.0. AUC needs
//! both classes: with no positive or no negative pixel it is `None` (null in JSON).
//!
//! Beside them, the authors' own Keras metrics (soft, smoothed, per batch): [`keras`].

mod accumulator;
pub mod keras;
pub mod roc;

pub use accumulator::MetricsAccumulator;
pub use keras::KerasMetrics;
pub use roc::RocPoint;

use allsweep_proto::metric;
use serde::{Deserialize, Serialize};

/// The pooled confusion counts at threshold 0.5.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confusion {
    pub tp: u64,
    pub fp: u64,
    pub tn: u64,
    #[serde(rename = "fn")]
    pub fn_: u64,
}

/// Every metric of a split, as fractions in [0, 1].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub jaccard: f64,
    pub dice: f64,
    pub precision: f64,
    pub recall: f64,
    pub tnr: f64,
    pub accuracy: f64,
    /// Area under the ROC curve; `None` when the split lacks positives or negatives.
    pub auc: Option<f64>,
    pub counts: Confusion,
}

impl Metrics {
    /// The metrics of a confusion table and an AUC.
    pub fn from_counts(c: Confusion, auc: Option<f64>) -> Self {
        let (tp, fp, tn, fn_) = (c.tp as f64, c.fp as f64, c.tn as f64, c.fn_ as f64);
        Metrics {
            jaccard: ratio(tp, tp + fp + fn_),
            dice: ratio(2.0 * tp, 2.0 * tp + fp + fn_),
            precision: ratio(tp, tp + fp),
            recall: ratio(tp, tp + fn_),
            tnr: ratio(tn, tn + fp),
            accuracy: ratio(tp + tn, tp + tn + fp + fn_),
            auc,
            counts: c,
        }
    }

    /// The metric named `name` (`jaccard`, `dice`, `f1`, `precision`, `recall`,
    /// `sensitivity`, `tnr`, `specificity`, `accuracy`, `auc`), for reports and sweeps.
    pub fn get(&self, name: &str) -> Option<f64> {
        match name {
            metric::JACCARD | "iou" => Some(self.jaccard),
            metric::DICE | "f1" => Some(self.dice),
            metric::PRECISION => Some(self.precision),
            metric::RECALL | "sensitivity" => Some(self.recall),
            metric::TNR | "specificity" => Some(self.tnr),
            metric::ACCURACY => Some(self.accuracy),
            metric::AUC => self.auc,
            _ => None,
        }
    }
}

/// `num / den`, or 1.0 when nothing was counted (see the module doc).
fn ratio(num: f64, den: f64) -> f64 {
    if den == 0.0 {
        1.0
    } else {
        num / den
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_give_the_textbook_ratios() {
        let m = Metrics::from_counts(Confusion { tp: 6, fp: 2, tn: 10, fn_: 4 }, Some(0.9));
        assert!((m.jaccard - 6.0 / 12.0).abs() < 1e-12);
        assert!((m.dice - 12.0 / 18.0).abs() < 1e-12);
        assert!((m.precision - 0.75).abs() < 1e-12);
        assert!((m.recall - 0.6).abs() < 1e-12);
        assert!((m.tnr - 10.0 / 12.0).abs() < 1e-12);
        assert!((m.accuracy - 16.0 / 22.0).abs() < 1e-12);
    }

    #[test]
    fn empty_target_and_empty_prediction_are_perfect_not_nan() {
        let m = Metrics::from_counts(Confusion { tp: 0, fp: 0, tn: 50, fn_: 0 }, None);
        assert_eq!((m.jaccard, m.dice, m.precision, m.recall, m.tnr, m.accuracy), (1.0, 1.0, 1.0, 1.0, 1.0, 1.0));
    }

    #[test]
    fn missed_positives_with_no_prediction_give_zero_recall_and_vacuous_precision() {
        let m = Metrics::from_counts(Confusion { tp: 0, fp: 0, tn: 40, fn_: 10 }, Some(0.5));
        assert_eq!((m.jaccard, m.dice, m.recall), (0.0, 0.0, 0.0));
        assert_eq!(m.precision, 1.0);
        assert_eq!(m.get("f1"), Some(0.0));
        assert_eq!(m.get("nonsense"), None);
    }
}
