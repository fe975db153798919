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
/// The authors' Keras-style validation Jaccard (soft, smoothed, per batch), a fraction.
pub const KERAS_JACCARD: &str = "keras_jaccard";
/// The authors' Keras-style validation Dice (soft, smoothed, per batch), a fraction.
pub const KERAS_DICE: &str = "keras_dice";
/// The authors' Keras-style validation recall (rounded, smoothed, per batch), a fraction.
pub const KERAS_RECALL: &str = "keras_recall";
/// The authors' Keras-style validation TNR (rounded, smoothed, per batch), a fraction.
pub const KERAS_TNR: &str = "keras_tnr";
/// The learning rate the epoch trained at.
pub const LEARNING_RATE: &str = "learning_rate";
/// Wall time of the epoch, seconds.
pub const SECONDS: &str = "seconds";
/// Training throughput over the epoch's training phase.
pub const TRAIN_IMAGES_PER_SECOND: &str = "train_images_per_second";

/// Every name a worker reports, in the order it reports them.
pub const ALL: [&str; 16] = [
    TRAIN_LOSS,
    VALIDATION_LOSS,
    JACCARD,
    DICE,
    PRECISION,
    RECALL,
    TNR,
    ACCURACY,
    AUC,
    KERAS_JACCARD,
    KERAS_DICE,
    KERAS_RECALL,
    KERAS_TNR,
    LEARNING_RATE,
    SECONDS,
    TRAIN_IMAGES_PER_SECOND,
];

/// The metrics that are fractions in [0, 1].
pub const FRACTIONS: [&str; 11] =
    [JACCARD, DICE, PRECISION, RECALL, TNR, ACCURACY, AUC, KERAS_JACCARD, KERAS_DICE, KERAS_RECALL, KERAS_TNR];

/// Whether `name` is one of the names a worker reports.
pub fn is_known(name: &str) -> bool {
    ALL.contains(&name)
}
