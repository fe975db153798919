//! Value checks on what a worker reports, at the service edge and before anything is stored:
//! metric points, completions and failures. The store takes any `f64` and any string, and
//! reports, plots and the paper's tables trust what it holds, so a NaN, a Jaccard of 7.5 or a
//! point of epoch 999 must be refused here, with an `INVALID_ARGUMENT` that names the field,
//! its index and the value (`points[3].value: jaccard must be a fraction in [0, 1], got 7.5`).
//!
//! The checks are pure functions over the domain types; the trial's `epochs` is the caller's
//! to look up. A diverging run's NaN loss is not a metric: the worker reports it through `Fail`
//! (see `worker/src/train/mod.rs`, `TrainError::Diverged`).

use allsweep_proto::metric;
use tonic::Status;

use crate::store::{Completion, FinalMetrics, MetricPoint, RocPoint, Store};

/// Metric points one batch may carry; a worker sends one epoch's (11) per batch.
pub const MAX_POINTS_PER_BATCH: usize = 10_000;
/// Points of one ROC curve; the trainer sends at most 200 (`worker/src/train/mod.rs`).
pub const MAX_ROC_POINTS: usize = 10_000;
/// The namespace of metric names that are not in [`allsweep_proto::metric::ALL`].
pub const CUSTOM_PREFIX: &str = "custom.";
/// Longest custom metric name, prefix included.
pub const MAX_NAME_BYTES: usize = 64;
/// Longest split description; the trainer's are one line of about 100 bytes
/// (`worker/src/data/split.rs`).
pub const MAX_SPLIT_BYTES: usize = 1024;
/// Longest failure message kept; a longer one is truncated, with a marker saying so.
pub const MAX_ERROR_BYTES: usize = 16 * 1024;

/// Metrics that are rates or durations, never negative. Losses may be: the Combo loss is a
/// cross-entropy minus a Dice coefficient (`worker/src/losses/pixelwise.rs`).
const NON_NEGATIVE: [&str; 3] = [metric::SECONDS, metric::TRAIN_IMAGES_PER_SECOND, metric::LEARNING_RATE];

fn refuse(field: impl std::fmt::Display, problem: impl std::fmt::Display) -> Status {
    Status::invalid_argument(format!("{field}: {problem}"))
}

/// A caller's string as an error message shows it: quoted, and cut at 64 bytes.
fn shown(text: &str) -> String {
    match text.char_indices().nth(64) {
        Some((cut, _)) => format!("{:?}... ({} bytes)", &text[..cut], text.len()),
        None => format!("{text:?}"),
    }
}

/// One batch of a trial's metric points, for a trial of `epochs` epochs: each name known or
/// custom, each value finite (fractions in [0, 1], durations and rates >= 0), each epoch in
/// `1..=epochs`.
pub fn metric_points(points: &[MetricPoint], epochs: u32) -> Result<(), Status> {
    if points.len() > MAX_POINTS_PER_BATCH {
        return Err(refuse("points", format!("at most {MAX_POINTS_PER_BATCH} per batch, got {}", points.len())));
    }
    for (i, p) in points.iter().enumerate() {
        metric_name(&p.name).map_err(|problem| refuse(format_args!("points[{i}].name"), problem))?;
        if p.epoch == 0 {
            return Err(refuse(format_args!("points[{i}].epoch"), "epochs count from 1, got 0"));
        }
        if p.epoch > epochs {
            let problem = format!("the trial has {epochs} epoch(s), got {}", p.epoch);
            return Err(refuse(format_args!("points[{i}].epoch"), problem));
        }
        metric_value(&p.name, p.value).map_err(|problem| refuse(format_args!("points[{i}].value"), problem))?;
    }
    Ok(())
}

/// `Err(problem)` unless `name` is a known metric or a well-formed `custom.` one.
fn metric_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("a metric needs a name, got an empty string".into());
    }
    if metric::is_known(name) {
        return Ok(());
    }
    let Some(rest) = name.strip_prefix(CUSTOM_PREFIX) else {
        return Err(format!(
            "unknown metric {}: report one of {} or a name of the form {CUSTOM_PREFIX}<name>",
            shown(name),
            metric::ALL.join(", ")
        ));
    };
    let charset = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.';
    if rest.is_empty() || name.len() > MAX_NAME_BYTES || !rest.chars().all(charset) {
        return Err(format!(
            "custom metric {} must be {CUSTOM_PREFIX} and then 1 or more of [a-z0-9_.], at most {MAX_NAME_BYTES} bytes in all",
            shown(name)
        ));
    }
    Ok(())
}

/// `Err(problem)` unless `value` is a value the metric `name` can take.
fn metric_value(name: &str, value: f64) -> Result<(), String> {
    if !value.is_finite() {
        return Err(format!("{name} must be a finite number, got {value}"));
    }
    if metric::FRACTIONS.contains(&name) && !(0.0..=1.0).contains(&value) {
        return Err(format!("{name} must be a fraction in [0, 1], got {value}"));
    }
    if NON_NEGATIVE.contains(&name) && value < 0.0 {
        return Err(format!("{name} must be >= 0, got {value}"));
    }
    Ok(())
}

/// `Err(problem)` unless `value` is a finite fraction.
fn fraction(value: f64) -> Result<(), String> {
    if value.is_finite() && (0.0..=1.0).contains(&value) {
        Ok(())
    } else {
        Err(format!("must be a fraction in [0, 1], got {value}"))
    }
}

/// A completion of a trial of `epochs` epochs: every test metric a fraction, the ROC curve's
/// rates fractions and its thresholds numbers (`+inf` allowed, as the first point of a curve
/// that starts above every score), `1..=epochs` epochs trained, and a split description.
pub fn completion(done: &Completion, epochs: u32) -> Result<(), Status> {
    final_metrics(&done.metrics)?;
    roc(&done.roc)?;
    if done.epochs == 0 || done.epochs > epochs {
        return Err(refuse("epochs", format!("the trial has {epochs} epoch(s) to train, got {}", done.epochs)));
    }
    if done.selected_epoch > done.epochs {
        return Err(refuse(
            "selected_epoch",
            format!("must be one of the {} epoch(s) trained, got {}", done.epochs, done.selected_epoch),
        ));
    }
    if done.split.trim().is_empty() {
        return Err(refuse("split", "must describe the data split, got an empty string"));
    }
    if done.split.len() > MAX_SPLIT_BYTES {
        return Err(refuse("split", format!("at most {MAX_SPLIT_BYTES} bytes, got {}", done.split.len())));
    }
    Ok(())
}

/// The test metrics, named as the wire names them (`test.jaccard`, ...).
fn final_metrics(m: &FinalMetrics) -> Result<(), Status> {
    let FinalMetrics { jaccard, dice, precision, recall, tnr, accuracy, auc, keras } = *m;
    let fields = [
        (metric::JACCARD, Some(jaccard)),
        (metric::DICE, Some(dice)),
        (metric::PRECISION, Some(precision)),
        (metric::RECALL, Some(recall)),
        (metric::TNR, Some(tnr)),
        (metric::ACCURACY, Some(accuracy)),
        (metric::AUC, auc),
    ];
    for (name, value) in fields {
        if let Some(value) = value {
            fraction(value).map_err(|problem| refuse(format_args!("test.{name}"), problem))?;
        }
    }
    if let Some(k) = keras {
        for (name, value) in [("jaccard", k.jaccard), ("dice", k.dice), ("recall", k.recall), ("tnr", k.tnr)] {
            fraction(value).map_err(|problem| refuse(format_args!("test_keras.{name}"), problem))?;
        }
    }
    Ok(())
}

fn roc(points: &[RocPoint]) -> Result<(), Status> {
    if points.len() > MAX_ROC_POINTS {
        return Err(refuse("roc", format!("at most {MAX_ROC_POINTS} points, got {}", points.len())));
    }
    for (i, p) in points.iter().enumerate() {
        if p.threshold.is_nan() || p.threshold == f64::NEG_INFINITY {
            return Err(refuse(
                format_args!("roc[{i}].threshold"),
                format!("must be a number or +inf, got {}", p.threshold),
            ));
        }
        fraction(p.fpr).map_err(|problem| refuse(format_args!("roc[{i}].fpr"), problem))?;
        fraction(p.tpr).map_err(|problem| refuse(format_args!("roc[{i}].tpr"), problem))?;
    }
    Ok(())
}

/// A failure's message as it will be stored: refused when empty (a failure must say what
/// went wrong), cut at [`MAX_ERROR_BYTES`] with a marker when longer. Truncated rather than
/// refused: a refused `Fail` is dropped by the worker (`worker/src/agent/outbox.rs`) and its
/// trial would wait for its lease to expire, its error lost.
pub fn fail_error(error: String) -> Result<String, Status> {
    if error.trim().is_empty() {
        return Err(refuse("error", "a failure must say what went wrong, got an empty string"));
    }
    if error.len() <= MAX_ERROR_BYTES {
        return Ok(error);
    }
    let mut cut = MAX_ERROR_BYTES;
    while !error.is_char_boundary(cut) {
        cut -= 1;
    }
    Ok(format!("{}... [truncated: {} of {} bytes kept]", &error[..cut], cut, error.len()))
}

/// The number of epochs of trial `trial_id`, for the epoch checks (one indexed read).
pub async fn trial_epochs(store: &dyn Store, trial_id: &str) -> Result<u32, Status> {
    match store.trial(trial_id).await.map_err(super::status)? {
        Some(trial) => Ok(trial.epochs),
        None => Err(Status::not_found(format!("trial {} not found", shown(trial_id)))),
    }
}

/// The epochs of trials seen lately: a trial's epochs never change, and every metric batch
/// and completion needs them, so they are read from the database once per trial rather than
/// once per call. Bounded: emptied when it holds [`EpochCache::CAPACITY`] trials.
#[derive(Clone, Debug, Default)]
pub struct EpochCache {
    known: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, u32>>>,
}

impl EpochCache {
    pub const CAPACITY: usize = 100_000;

    /// The epochs of `trial_id`, from memory or the store.
    pub async fn epochs(&self, store: &dyn Store, trial_id: &str) -> Result<u32, Status> {
        if let Some(&epochs) = self.known.lock().unwrap_or_else(|e| e.into_inner()).get(trial_id) {
            return Ok(epochs);
        }
        let epochs = trial_epochs(store, trial_id).await?;
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        if known.len() >= Self::CAPACITY {
            known.clear();
        }
        known.insert(trial_id.to_string(), epochs);
        Ok(epochs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::KerasMetrics;

    fn point(epoch: u32, name: &str, value: f64) -> MetricPoint {
        MetricPoint { epoch, name: name.into(), value }
    }

    /// The message of an `INVALID_ARGUMENT`; any other outcome fails the test.
    fn refused<T: std::fmt::Debug>(result: Result<T, Status>) -> String {
        let status = result.expect_err("refused");
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
        status.message().to_string()
    }

    /// One epoch as the trainer reports it (`worker/src/agent/trial.rs`).
    fn epoch(epoch: u32) -> Vec<MetricPoint> {
        metric::ALL
            .iter()
            .map(|name| {
                let value = match *name {
                    metric::SECONDS => 2.5,
                    metric::TRAIN_IMAGES_PER_SECOND => 40.0,
                    metric::TRAIN_LOSS | metric::VALIDATION_LOSS => 0.4,
                    _ => 0.75,
                };
                point(epoch, name, value)
            })
            .collect()
    }

    fn completion_of(epochs: u32) -> Completion {
        Completion {
            metrics: FinalMetrics {
                jaccard: 0.5,
                dice: 0.6,
                precision: 0.75,
                recall: 0.6,
                tnr: 0.9,
                accuracy: 0.8,
                auc: Some(0.9),
                keras: Some(KerasMetrics { jaccard: 0.55, dice: 0.7, recall: 0.65, tnr: 0.92 }),
            },
            roc: vec![
                RocPoint { threshold: f64::INFINITY, fpr: 0.0, tpr: 0.0 },
                RocPoint { threshold: 0.5, fpr: 0.1, tpr: 0.8 },
                RocPoint { threshold: 0.0, fpr: 1.0, tpr: 1.0 },
            ],
            split: "by image: 12 train / 4 held out (validation and test), split seed 0".into(),
            epochs,
            parameters: 1234,
            selected_epoch: epochs,
        }
    }

    #[test]
    fn every_metric_the_trainer_reports_passes_and_so_do_custom_ones() {
        let mut points = epoch(1);
        points.extend(epoch(2));
        points.push(point(2, "custom.learning_rate", 1e-3));
        points.push(point(2, "custom.gpu.memory_gb_2", 11.0));
        metric_points(&points, 2).expect("a well-formed batch");
        metric_points(&[], 2).expect("an empty batch");
        // Bounds are inclusive.
        metric_points(&[point(1, metric::JACCARD, 0.0), point(1, metric::DICE, 1.0)], 1).expect("0 and 1");
    }

    #[test]
    fn a_fraction_outside_0_1_is_refused_naming_the_point_and_the_value() {
        let mut points = epoch(1);
        points[2].value = 7.5;
        assert_eq!(
            refused(metric_points(&points, 1)),
            "points[2].value: jaccard must be a fraction in [0, 1], got 7.5"
        );
        let message = refused(metric_points(&[point(1, metric::AUC, -0.25)], 1));
        assert_eq!(message, "points[0].value: auc must be a fraction in [0, 1], got -0.25");
        for name in metric::FRACTIONS {
            refused(metric_points(&[point(1, name, 1.0 + 1e-9)], 1));
        }
    }

    #[test]
    fn nan_and_infinite_values_are_refused_for_every_name() {
        for value in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            for name in metric::ALL.iter().copied().chain(["custom.x"]) {
                let message = refused(metric_points(&[point(1, name, value)], 1));
                assert_eq!(message, format!("points[0].value: {name} must be a finite number, got {value}"));
            }
        }
    }

    #[test]
    fn durations_and_rates_are_not_negative_but_losses_may_be() {
        let message = refused(metric_points(&[point(1, metric::SECONDS, -1.0)], 1));
        assert_eq!(message, "points[0].value: seconds must be >= 0, got -1");
        refused(metric_points(&[point(1, metric::TRAIN_IMAGES_PER_SECOND, -0.5)], 1));
        // The Combo loss of a good prediction is about -0.5.
        metric_points(&[point(1, metric::TRAIN_LOSS, -0.5), point(1, metric::VALIDATION_LOSS, -0.4)], 1)
            .expect("a negative loss");
    }

    #[test]
    fn empty_unknown_and_malformed_custom_names_are_refused() {
        let message = refused(metric_points(&[point(1, "", 0.5)], 1));
        assert_eq!(message, "points[0].name: a metric needs a name, got an empty string");
        let message = refused(metric_points(&[point(1, "iou", 0.5)], 1));
        assert!(message.starts_with("points[0].name: unknown metric \"iou\": report one of train_loss,"), "{message}");
        assert!(message.contains("custom.<name>"), "{message}");
        for name in ["custom.", "custom.Learning_Rate", "custom.a-b", "custom.a b", "custom.é"] {
            let message = refused(metric_points(&[point(1, name, 0.5)], 1));
            assert!(message.starts_with(&format!("points[0].name: custom metric {name:?} must be")), "{message}");
        }
        let longest = format!("custom.{}", "a".repeat(MAX_NAME_BYTES - CUSTOM_PREFIX.len()));
        metric_points(&[point(1, &longest, 0.5)], 1).expect("64 bytes");
        refused(metric_points(&[point(1, &format!("{longest}a"), 0.5)], 1));
        // A huge name is cut in the message.
        let message = refused(metric_points(&[point(1, &"x".repeat(1_000_000), 0.5)], 1));
        assert!(message.len() < 1000 && message.contains("(1000000 bytes)"), "{message}");
    }

    #[test]
    fn an_epoch_outside_the_trials_epochs_is_refused() {
        let message = refused(metric_points(&[point(999, metric::TRAIN_LOSS, 0.5)], 2));
        assert_eq!(message, "points[0].epoch: the trial has 2 epoch(s), got 999");
        let message = refused(metric_points(&[point(0, metric::TRAIN_LOSS, 0.5)], 2));
        assert_eq!(message, "points[0].epoch: epochs count from 1, got 0");
        metric_points(&[point(2, metric::TRAIN_LOSS, 0.5)], 2).expect("the last epoch");
    }

    #[test]
    fn a_batch_past_the_limit_is_refused_whole() {
        let points = vec![point(1, metric::TRAIN_LOSS, 0.5); MAX_POINTS_PER_BATCH + 1];
        assert_eq!(refused(metric_points(&points, 1)), "points: at most 10000 per batch, got 10001");
        metric_points(&points[1..], 1).expect("at the limit");
    }

    #[test]
    fn a_trainers_completion_passes() {
        completion(&completion_of(2), 2).expect("a well-formed completion");
        let mut without_auc = completion_of(2);
        without_auc.metrics.auc = None;
        completion(&without_auc, 2).expect("no AUC (one class missing)");
    }

    #[test]
    fn a_test_metric_outside_0_1_or_not_finite_is_refused_by_its_wire_name() {
        let mut done = completion_of(2);
        done.metrics.jaccard = 1.5;
        assert_eq!(refused(completion(&done, 2)), "test.jaccard: must be a fraction in [0, 1], got 1.5");
        let mut done = completion_of(2);
        done.metrics.auc = Some(f64::NAN);
        assert_eq!(refused(completion(&done, 2)), "test.auc: must be a fraction in [0, 1], got NaN");
        let mut done = completion_of(2);
        done.metrics.accuracy = f64::INFINITY;
        assert_eq!(refused(completion(&done, 2)), "test.accuracy: must be a fraction in [0, 1], got inf");
        let mut done = completion_of(2);
        done.metrics.tnr = -0.1;
        assert_eq!(refused(completion(&done, 2)), "test.tnr: must be a fraction in [0, 1], got -0.1");
        let mut done = completion_of(2);
        done.metrics.keras = Some(KerasMetrics { dice: 1.2, ..done.metrics.keras.expect("set") });
        assert_eq!(refused(completion(&done, 2)), "test_keras.dice: must be a fraction in [0, 1], got 1.2");
        let mut done = completion_of(2);
        done.selected_epoch = 3;
        assert_eq!(refused(completion(&done, 2)), "selected_epoch: must be one of the 2 epoch(s) trained, got 3");
    }

    #[test]
    fn a_roc_point_with_a_rate_outside_0_1_or_a_nan_is_refused_by_its_index() {
        let mut done = completion_of(2);
        done.roc[1].fpr = 3.0;
        assert_eq!(refused(completion(&done, 2)), "roc[1].fpr: must be a fraction in [0, 1], got 3");
        let mut done = completion_of(2);
        done.roc[2].tpr = f64::NAN;
        assert_eq!(refused(completion(&done, 2)), "roc[2].tpr: must be a fraction in [0, 1], got NaN");
        let mut done = completion_of(2);
        done.roc[1].threshold = f64::NAN;
        assert_eq!(refused(completion(&done, 2)), "roc[1].threshold: must be a number or +inf, got NaN");
        done.roc[1].threshold = f64::NEG_INFINITY;
        assert_eq!(refused(completion(&done, 2)), "roc[1].threshold: must be a number or +inf, got -inf");
        let mut done = completion_of(2);
        done.roc = vec![RocPoint { threshold: 0.5, fpr: 0.5, tpr: 0.5 }; MAX_ROC_POINTS + 1];
        assert_eq!(refused(completion(&done, 2)), "roc: at most 10000 points, got 10001");
    }

    #[test]
    fn a_completion_must_train_within_the_trials_epochs_and_name_its_split() {
        assert_eq!(refused(completion(&completion_of(5), 2)), "epochs: the trial has 2 epoch(s) to train, got 5");
        assert_eq!(refused(completion(&completion_of(0), 2)), "epochs: the trial has 2 epoch(s) to train, got 0");
        let mut done = completion_of(2);
        done.split = " ".into();
        assert_eq!(refused(completion(&done, 2)), "split: must describe the data split, got an empty string");
        done.split = "s".repeat(MAX_SPLIT_BYTES + 1);
        assert_eq!(refused(completion(&done, 2)), "split: at most 1024 bytes, got 1025");
    }

    #[test]
    fn a_failure_must_say_something_and_a_long_one_is_cut_with_a_marker() {
        for empty in ["", " \n"] {
            let message = refused(fail_error(empty.into()));
            assert_eq!(message, "error: a failure must say what went wrong, got an empty string");
        }
        let error = "diverged: the loss was NaN at epoch 3, step 7".to_string();
        assert_eq!(fail_error(error.clone()).expect("kept"), error);
        // A two-byte character straddles the limit: the cut falls before it.
        let long = format!("{}é{}", "a".repeat(MAX_ERROR_BYTES - 1), "b".repeat(100));
        let kept = fail_error(long.clone()).expect("truncated, not refused");
        assert!(kept.starts_with(&"a".repeat(MAX_ERROR_BYTES - 1)) && !kept.contains('é'), "cut on a char boundary");
        assert!(kept.ends_with(&format!("... [truncated: {} of {} bytes kept]", MAX_ERROR_BYTES - 1, long.len())));
        assert_eq!(fail_error("x".repeat(MAX_ERROR_BYTES)).expect("at the limit").len(), MAX_ERROR_BYTES);
    }
}
