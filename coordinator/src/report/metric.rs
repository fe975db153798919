//! The metrics a report can show, their headers and display units: the pooled hard metrics
//! (thresholded at 0.5, counted over every test pixel) and the authors' Keras-style ones
//! (soft or rounded, +1-smoothed, per batch and averaged over batches), in two families so
//! that a report can show either or both ([`Family`]).

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
    KerasJaccard,
    KerasDice,
    KerasRecall,
    KerasTnr,
}

/// Which kind of metrics a report shows (`--metrics`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Family {
    /// Thresholded at 0.5 and pooled over every pixel of the test split.
    Pooled,
    /// The authors' Keras metrics: soft, smoothed, per batch, averaged over the batches.
    Keras,
    /// Each pooled metric followed by its Keras form.
    Both,
}

/// The note a report carries for each family it shows.
pub const POOLED_NOTE: &str = "pooled: thresholded at 0.5 and counted over every pixel of the test split";
pub const KERAS_NOTE: &str =
    "Keras: the authors' metrics (TheFocusNetSeries losses.py): soft Jaccard and Dice, +1-smoothed, \
     recall and TNR rounded at 0.5, each per batch of the test split and averaged over the batches";

impl Metric {
    pub const ALL: [Metric; 11] = [
        Metric::Jaccard,
        Metric::Dice,
        Metric::Precision,
        Metric::Recall,
        Metric::Tnr,
        Metric::Accuracy,
        Metric::Auc,
        Metric::KerasJaccard,
        Metric::KerasDice,
        Metric::KerasRecall,
        Metric::KerasTnr,
    ];

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
            "keras_jaccard" => Metric::KerasJaccard,
            "keras_dice" => Metric::KerasDice,
            "keras_recall" => Metric::KerasRecall,
            "keras_tnr" => Metric::KerasTnr,
            other => {
                return Err(format!(
                    "unknown metric {other:?}; one of jaccard, dice (f1), precision, recall, tnr, accuracy, auc, \
                     keras_jaccard, keras_dice, keras_recall, keras_tnr"
                ))
            }
        })
    }

    /// The Keras-style form of a pooled metric, where the authors had one.
    pub fn keras(&self) -> Option<Metric> {
        match self {
            Metric::Jaccard => Some(Metric::KerasJaccard),
            Metric::Dice => Some(Metric::KerasDice),
            Metric::Recall => Some(Metric::KerasRecall),
            Metric::Tnr => Some(Metric::KerasTnr),
            Metric::KerasJaccard | Metric::KerasDice | Metric::KerasRecall | Metric::KerasTnr => Some(*self),
            Metric::Precision | Metric::Accuracy | Metric::Auc => None,
        }
    }

    pub fn is_keras(&self) -> bool {
        matches!(self, Metric::KerasJaccard | Metric::KerasDice | Metric::KerasRecall | Metric::KerasTnr)
    }

    /// The metrics `family` shows for the metrics asked for: the pooled ones, their Keras
    /// forms (those without one left out), or each followed by its Keras form.
    pub fn of_family(asked: &[Metric], family: Family) -> Result<Vec<Metric>, String> {
        let shown: Vec<Metric> = match family {
            Family::Pooled => asked.to_vec(),
            Family::Keras => asked.iter().filter_map(Metric::keras).collect(),
            Family::Both => asked
                .iter()
                .flat_map(|m| if m.is_keras() { vec![*m] } else { std::iter::once(*m).chain(m.keras()).collect() })
                .collect(),
        };
        let mut unique = Vec::new();
        for m in shown {
            if !unique.contains(&m) {
                unique.push(m);
            }
        }
        if unique.is_empty() {
            return Err(
                "none of these metrics has a Keras form; the authors measured jaccard, dice, recall and tnr".into()
            );
        }
        Ok(unique)
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
            Metric::KerasJaccard => "Keras Jaccard %",
            Metric::KerasDice => "Keras Dice %",
            Metric::KerasRecall => "Keras Recall %",
            Metric::KerasTnr => "Keras TNR %",
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
            Metric::KerasJaccard => m.keras.and_then(|k| pct(k.jaccard)),
            Metric::KerasDice => m.keras.and_then(|k| pct(k.dice)),
            Metric::KerasRecall => m.keras.and_then(|k| pct(k.recall)),
            Metric::KerasTnr => m.keras.and_then(|k| pct(k.tnr)),
        }
    }
}
