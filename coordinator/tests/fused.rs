//! Fused groups end to end, with the real coordinator and real worker processes: a loss
//! comparison leased to a worker started with `--fuse 3` trains as one network, every
//! attempt and every trial's status names the group, and each trial ends with exactly the
//! numbers (every epoch's metrics and the test results) that a worker training it alone
//! reaches: bit for bit, on the CPU.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use allsweep_proto::v1 as pb;
use allsweep_testkit::SyntheticSpec;
use common::*;

const LONG: Duration = Duration::from_secs(240);

/// Wall-clock measurements, which differ between any two runs.
const TIMINGS: [&str; 2] = ["seconds", "train_images_per_second"];

/// What a sweep measured, by trial label: every epoch's metrics (timings aside) and the
/// test results.
type Measured = BTreeMap<String, (Vec<(u32, String, f64)>, Option<pb::Metrics>, Option<pb::KerasMetrics>, u32)>;

/// Runs the three-loss comparison on a fresh coordinator with one worker given `worker_args`.
async fn comparison(name: &str, worker_args: &[&str]) -> (Cluster, pb::SweepStatus, Measured) {
    let cluster = Cluster::sqlite(name, &[]);
    let _worker = cluster.worker("worker", worker_args);
    let mut client = cluster.client().await;
    let losses = r#"[{kind = "dice"}, {kind = "all", gamma = 0.3}, {kind = "focal_tversky"}]"#;
    let text = SyntheticSpec::new("losses").seeds(0..1).epochs(2).grid("loss", losses).to_toml();
    let submitted = submit(&mut client, &text).await;
    let done = wait_for(&mut client, &submitted.sweep_id, LONG, |s| s.state() == pb::SweepState::Finished).await;
    assert_eq!((done.completed, done.failed), (3, 0), "{done:?}");
    let results = results(&mut client, &submitted.sweep_id).await;
    let store = cluster.store().await;
    let mut measured = Measured::new();
    for r in results {
        let points: Vec<(u32, String, f64)> = store
            .metric_points(&r.trial_id)
            .await
            .unwrap()
            .into_iter()
            .filter(|p| !TIMINGS.contains(&p.name.as_str()))
            .map(|p| (p.epoch, p.name, p.value))
            .collect();
        assert!(points.len() >= 2 * 10, "{}: every epoch's metrics stored", r.label);
        measured.insert(r.label, (points, r.test, r.test_keras, r.selected_epoch));
    }
    (cluster, done, measured)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_loss_comparison_trains_as_one_fused_group_with_each_trials_own_numbers() {
    let (fused_cluster, fused_status, fused) = comparison("fused", &["--fuse", "3"]).await;
    let groups: Vec<&str> = fused_status.trials.iter().map(|t| t.group_id.as_str()).collect();
    assert!(
        !groups[0].is_empty() && groups.iter().all(|g| *g == groups[0]),
        "one group in the status: {groups:?}\n{}\n{}",
        fused_cluster.log("worker"),
        fused_cluster.log("coordinator")
    );
    let store = fused_cluster.store().await;
    for t in &fused_status.trials {
        let attempts = store.attempts(&t.trial_id).await.unwrap();
        assert_eq!(attempts.len(), 1, "{}: one attempt", t.label);
        assert_eq!(attempts[0].group_id.as_deref(), Some(groups[0]), "{}: the attempt names its group", t.label);
    }
    let log = fused_cluster.log("worker");
    assert!(log.contains("training as one fused group"), "the worker says it fused:\n{log}");
    assert!(log.contains("fused group trained an epoch"), "and logs the group's throughput:\n{log}");

    let (_alone_cluster, alone_status, alone) = comparison("alone", &[]).await;
    assert!(alone_status.trials.iter().all(|t| t.group_id.is_empty()), "a worker without --fuse trains each alone");
    assert_eq!(fused.keys().collect::<Vec<_>>(), alone.keys().collect::<Vec<_>>());
    for (label, numbers) in &fused {
        assert_eq!(numbers, &alone[label], "{label}: the fused trial's numbers are the trial's alone, bit for bit");
    }
}
