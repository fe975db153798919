//! The metrics a report can show, their headers and display units.

use crate::store::FinalMetrics;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    Jaccard,
    Dice,
    Precision,
    Recall,
    Tnr,
    Accuracy,
    Auc,
}

impl Metric {
    pub const ALL: [Metric; 7] =
        [Metric::Jaccard, Metric::Dice, Metric::Precision, Metric::Recall, Metric::Tnr, Metric::Accuracy, Metric::Auc];

    /// Parses a metric name (`f1` and `iou` are accepted as aliases).
    pub fn parse(name: &str) -> Result<Self, String> {
        Ok(match name.trim().to_ascii_lowercase().as_str() {
            "jaccard" | "iou" => Metric::Jaccard,
            "dice" | "f1" => Metric::Dice,
            "precision" => Metric::Precision,
            "recall" | "sensitivity" => Metric::Recall,
            "tnr" | "specificity" => Metric::Tnr,
            "accuracy" => Metric::Accuracy,
            "auc" => Metric::Auc,
            other => {
                return Err(format!(
                    "unknown metric {other:?}; one of jaccard, dice (f1), precision, recall, tnr, accuracy, auc"
                ))
            }
        })
    }

    pub fn header(&self) -> &'static str {
        match self {
            Metric::Jaccard => "Jaccard %",
            Metric::Dice => "F1 %",
            Metric::Precision => "Precision %",
            Metric::Recall => "Recall %",
            Metric::Tnr => "TNR %",
            Metric::Accuracy => "Accuracy %",
            Metric::Auc => "AUC",
        }
    }

    /// Decimal places shown.
    pub fn digits(&self) -> usize {
        if *self == Metric::Auc {
            4
        } else {
            2
        }
    }

    /// The value in display units (percent, except AUC).
    pub fn value(&self, m: &FinalMetrics) -> Option<f64> {
        let pct = |v: f64| Some(100.0 * v);
        match self {
            Metric::Jaccard => pct(m.jaccard),
            Metric::Dice => pct(m.dice),
            Metric::Precision => pct(m.precision),
            Metric::Recall => pct(m.recall),
            Metric::Tnr => pct(m.tnr),
            Metric::Accuracy => pct(m.accuracy),
            Metric::Auc => m.auc,
        }
    }
}
