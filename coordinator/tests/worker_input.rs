//! Values a worker reports that no training run can produce (a NaN, a Jaccard of 7.5, an
//! unknown metric, epoch 999 of a 2-epoch trial, an ROC point with fpr 3), sent over the wire
//! the way a client written from the proto alone would send them. Each is refused with
//! INVALID_ARGUMENT naming the field, its index and the value, and nothing is stored: no
//! metric point, no result, no ROC point, and the trial is still running.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use allsweep_coordinator::store::{TrialRow, TrialState};
use allsweep_proto::metric;
use allsweep_proto::v1 as pb;
use allsweep_testkit::SyntheticSpec;
use common::in_process::{lease_one, InProcess, RawWorker};

/// A coordinator with one queued trial of 2 epochs, leased by a raw worker.
async fn leased() -> (InProcess, RawWorker, pb::LeasedTrial) {
    let c = InProcess::start(Duration::from_secs(60), &SyntheticSpec::new("input").epochs(2)).await;
    let (mut client, worker_id) = c.worker("w", 1).await;
    let trial = lease_one(&mut client, &worker_id).await;
    (c, client, trial)
}

/// The sweep's only trial as the store holds it (its `epochs` is what the checks compare with).
async fn stored_trial(c: &InProcess) -> TrialRow {
    let mut trials = c.store.trials(&c.sweep_id).await.unwrap();
    assert_eq!(trials.len(), 1);
    trials.remove(0)
}

fn point(epoch: u32, name: &str, value: f64) -> pb::MetricPoint {
    pb::MetricPoint { epoch, name: name.into(), value }
}

async fn send(
    client: &mut RawWorker,
    trial: &pb::LeasedTrial,
    points: Vec<pb::MetricPoint>,
) -> Result<u64, tonic::Status> {
    let batch = pb::MetricBatch { trial_id: trial.trial_id.clone(), attempt: trial.attempt, points };
    client.stream_metrics(futures::stream::iter(vec![batch])).await.map(|ack| ack.into_inner().stored)
}

/// A completion as the trainer sends it (`worker/src/agent/convert.rs`), of 2 epochs.
fn completion(trial: &pb::LeasedTrial) -> pb::CompleteRequest {
    pb::CompleteRequest {
        trial_id: trial.trial_id.clone(),
        attempt: trial.attempt,
        test: Some(pb::Metrics {
            jaccard: 0.5,
            dice: 0.6,
            precision: 0.75,
            recall: 0.6,
            tnr: 0.9,
            accuracy: 0.8,
            auc: Some(0.9),
        }),
        roc: vec![
            pb::RocPoint { threshold: f64::INFINITY, fpr: 0.0, tpr: 0.0 },
            pb::RocPoint { threshold: 0.5, fpr: 0.1, tpr: 0.8 },
            pb::RocPoint { threshold: 0.0, fpr: 1.0, tpr: 1.0 },
        ],
        split: "by image: 12 train / 4 held out (validation and test), split seed 0".into(),
        epochs: 2,
        parameters: 1234,
        test_keras: Some(pb::KerasMetrics { jaccard: 0.55, dice: 0.7, recall: 0.65, tnr: 0.92 }),
        selected_epoch: 2,
    }
}

/// Asserts an INVALID_ARGUMENT whose message is `expected`.
fn assert_refused<T: std::fmt::Debug>(result: Result<T, tonic::Status>, expected: &str) {
    let status = result.expect_err(expected);
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert_eq!(status.message(), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metric_points_no_run_can_produce_are_refused_and_none_of_their_batch_is_stored() {
    let (c, mut client, trial) = leased().await;
    assert_eq!(stored_trial(&c).await.epochs, 2, "the trial the checks compare epochs with");
    let cases = [
        (point(1, metric::TRAIN_LOSS, f64::NAN), "points[1].value: train_loss must be a finite number, got NaN"),
        (
            point(1, metric::VALIDATION_LOSS, f64::INFINITY),
            "points[1].value: validation_loss must be a finite number, got inf",
        ),
        (point(1, metric::DICE, f64::NEG_INFINITY), "points[1].value: dice must be a finite number, got -inf"),
        (point(1, metric::JACCARD, 7.5), "points[1].value: jaccard must be a fraction in [0, 1], got 7.5"),
        (point(1, metric::SECONDS, -3.0), "points[1].value: seconds must be >= 0, got -3"),
        (point(1, "", 0.5), "points[1].name: a metric needs a name, got an empty string"),
        (point(999, metric::JACCARD, 0.5), "points[1].epoch: the trial has 2 epoch(s), got 999"),
        (point(0, metric::JACCARD, 0.5), "points[1].epoch: epochs count from 1, got 0"),
    ];
    for (bad, expected) in cases {
        // A valid point first: the batch is refused whole, so it is not stored either.
        assert_refused(send(&mut client, &trial, vec![point(1, metric::ACCURACY, 0.9), bad]).await, expected);
    }
    let unknown = send(&mut client, &trial, vec![point(1, metric::ACCURACY, 0.9), point(1, "iou", 0.5)]).await;
    let status = unknown.expect_err("an unknown metric name");
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(status.message().starts_with("points[1].name: unknown metric \"iou\": report one of"), "{status:?}");

    assert_eq!(c.store.metric_points(&trial.trial_id).await.unwrap(), [], "nothing stored");
    assert_eq!(stored_trial(&c).await.state, TrialState::Running);

    // What a run does produce is stored: every known name, a custom one, a negative (Combo) loss.
    let value = |name: &str| if name == metric::TRAIN_LOSS { -0.25 } else { 0.5 };
    let mut good: Vec<pb::MetricPoint> = metric::ALL.iter().map(|name| point(1, name, value(name))).collect();
    good.push(point(2, "custom.learning_rate", 0.001));
    let sent = metric::ALL.len() as u64 + 1;
    assert_eq!(send(&mut client, &trial, good).await.expect("a well-formed batch"), sent);
    assert_eq!(c.store.metric_points(&trial.trial_id).await.unwrap().len(), sent as usize);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completion_no_run_can_produce_is_refused_and_the_trial_stays_running() {
    let (c, mut client, trial) = leased().await;
    let mut jaccard = completion(&trial);
    jaccard.test.as_mut().unwrap().jaccard = 1.5;
    let mut auc = completion(&trial);
    auc.test.as_mut().unwrap().auc = Some(f64::NAN);
    let mut fpr = completion(&trial);
    fpr.roc[1].fpr = 3.0;
    let mut tpr_nan = completion(&trial);
    tpr_nan.roc[2].tpr = f64::NAN;
    let mut threshold_nan = completion(&trial);
    threshold_nan.roc[1].threshold = f64::NAN;
    let mut epochs = completion(&trial);
    epochs.epochs = 999;
    let mut split = completion(&trial);
    split.split = String::new();
    let mut keras = completion(&trial);
    keras.test_keras.as_mut().unwrap().tnr = -0.5;
    let mut selected = completion(&trial);
    selected.selected_epoch = 3;
    let cases = [
        (jaccard, "test.jaccard: must be a fraction in [0, 1], got 1.5"),
        (auc, "test.auc: must be a fraction in [0, 1], got NaN"),
        (fpr, "roc[1].fpr: must be a fraction in [0, 1], got 3"),
        (tpr_nan, "roc[2].tpr: must be a fraction in [0, 1], got NaN"),
        (threshold_nan, "roc[1].threshold: must be a number or +inf, got NaN"),
        (epochs, "epochs: the trial has 2 epoch(s) to train, got 999"),
        (split, "split: must describe the data split, got an empty string"),
        (keras, "test_keras.tnr: must be a fraction in [0, 1], got -0.5"),
        (selected, "selected_epoch: must be one of the 2 epoch(s) trained, got 3"),
    ];
    for (request, expected) in cases {
        assert_refused(client.complete(request).await, expected);
    }
    assert_eq!(c.store.results(&c.sweep_id).await.unwrap(), [], "no result stored");
    assert_eq!(c.store.roc(&trial.trial_id).await.unwrap(), [], "no ROC point stored");
    assert_eq!(stored_trial(&c).await.state, TrialState::Running);

    // The trainer's own completion, +inf threshold included, is stored as sent.
    client.complete(completion(&trial)).await.expect("a well-formed completion");
    let results = c.store.results(&c.sweep_id).await.unwrap();
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].metrics.jaccard, 0.5);
    let roc = c.store.roc(&trial.trial_id).await.unwrap();
    assert_eq!(roc.len(), 3);
    assert_eq!(roc[0].threshold, f64::INFINITY);
    assert_eq!(stored_trial(&c).await.state, TrialState::Completed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_must_say_what_went_wrong_and_a_long_message_is_kept_cut() {
    let (c, mut client, trial) = leased().await;
    let fail = |error: String| pb::FailRequest {
        trial_id: trial.trial_id.clone(),
        attempt: trial.attempt,
        error,
        kind: pb::FailureKind::Permanent as i32,
    };
    assert_refused(
        client.fail(fail(String::new())).await,
        "error: a failure must say what went wrong, got an empty string",
    );
    assert_eq!(stored_trial(&c).await.state, TrialState::Running, "an empty failure changes nothing");

    // A 100 KiB message (a long libtorch backtrace, say) fails the trial, its start kept.
    let long = format!("diverged: the loss was NaN at epoch 1, step 3\n{}", "at frame\n".repeat(100 * 1024 / 9));
    client.fail(fail(long.clone())).await.expect("a long failure is accepted");
    let failed = stored_trial(&c).await;
    assert_eq!(failed.state, TrialState::Failed);
    let error = failed.error.expect("the failure's message");
    assert!(error.len() < 17 * 1024, "cut to about 16 KiB, got {} bytes", error.len());
    assert!(error.starts_with("diverged: the loss was NaN at epoch 1, step 3"), "{}", &error[..100]);
    assert!(error.ends_with(&format!("of {} bytes kept]", long.len())), "{}", &error[error.len() - 100..]);
}
