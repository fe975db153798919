//! The names of the metric points a worker reports for each epoch. The worker writes them,
//! the coordinator stores them in `metrics.name`, and reports, plots and dashboards read
//! them back: one list, so the three never drift apart.

/// Mean training loss over the epoch.
pub const TRAIN_LOSS: &str = "train_loss";
/// Mean loss over the validation samples.
pub const VALIDATION_LOSS: &str = "validation_loss";
/// Validation Jaccard index (IoU), a fraction.
pub const JACCARD: &str = "jaccard";
/// Validation Dice coefficient, a fraction.
pub const DICE: &str = "dice";
/// Validation precision, a fraction.
pub const PRECISION: &str = "precision";
/// Validation recall (sensitivity), a fraction.
pub const RECALL: &str = "recall";
/// Validation true negative rate (specificity), a fraction.
pub const TNR: &str = "tnr";
/// Validation pixel accuracy, a fraction.
pub const ACCURACY: &str = "accuracy";
/// Validation area under the ROC curve, a fraction (absent when one class is missing).
pub const AUC: &str = "auc";
/// Wall time of the epoch, seconds.
pub const SECONDS: &str = "seconds";
/// Training throughput over the epoch's training phase.
pub const TRAIN_IMAGES_PER_SECOND: &str = "train_images_per_second";

/// Every name a worker reports, in the order it reports them.
pub const ALL: [&str; 11] = [
    TRAIN_LOSS,
    VALIDATION_LOSS,
    JACCARD,
    DICE,
    PRECISION,
    RECALL,
    TNR,
    ACCURACY,
    AUC,
    SECONDS,
    TRAIN_IMAGES_PER_SECOND,
];

/// The metrics that are fractions in [0, 1].
pub const FRACTIONS: [&str; 7] = [JACCARD, DICE, PRECISION, RECALL, TNR, ACCURACY, AUC];

/// Whether `name` is one of the names a worker reports.
pub fn is_known(name: &str) -> bool {
    ALL.contains(&name)
}
