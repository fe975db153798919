//! End to end: a worker whose machine lacks a sweep's data set (a missing mount, a wrong
//! `--data-dir`) must not drain the sweep. It hands its trial back, stops leasing and says why
//! in its log; a worker that has the data trains every trial, each exactly once. Real
//! processes, real SQLite, the real DRIVE images in `shared/data`.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use allsweep_coordinator::store::AttemptOutcome;
use allsweep_proto::v1 as pb;
use common::*;

const LONG: Duration = Duration::from_secs(240);

/// What worker-a's log says once it stops leasing.
const STOPPED_LEASING: &str = "this worker leases nothing more until restarted";

/// The real data beside the checkout (see `worker/src/data/tests.rs`).
fn shared_data() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data");
    assert!(dir.join("DRIVE").is_dir(), "the real DRIVE data is expected at {}", dir.display());
    dir
}

/// Three small DRIVE trials (4 source images, 24 patches each, 2 epochs): seconds each on one core.
fn drive_spec(name: &str) -> String {
    format!(
        r#"name = "{name}"
seeds = [0, 1, 2]

[dataset]
kind = "drive"
root = "DRIVE"
limit = 4
patches_per_image = 24

[model]
arch = "unet"
width = 8

[train]
epochs = 2
batch_size = 8
lr = 3e-3

[loss]
kind = "all"
"#
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_without_the_data_set_hands_its_trial_back_and_stops_leasing() {
    let cluster = Cluster::sqlite("faults", &[]);
    let mut client = cluster.client().await;
    let submitted = submit(&mut client, &drive_spec("no-mount")).await;
    assert_eq!(submitted.trials, 3);

    // worker-a's data directory exists but holds no DRIVE: the mount is missing on its machine.
    let empty = cluster.dir.path().join("empty-data");
    std::fs::create_dir_all(&empty).unwrap();
    let empty_arg = empty.display().to_string();
    let mut a = cluster.worker("worker-a", &["--data-dir", &empty_arg]);
    // Until it gives up on its machine, or (the defect) until it has failed the whole sweep.
    let start = Instant::now();
    loop {
        if cluster.log("worker-a").contains(STOPPED_LEASING) {
            break;
        }
        if sweep(&mut client, &submitted.sweep_id).await.failed > 0 {
            break;
        }
        assert!(
            start.elapsed() < LONG,
            "worker-a neither stopped leasing nor failed a trial:\n{}",
            cluster.log("worker-a")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let data_arg = shared_data().display().to_string();
    let _b = cluster.worker("worker-b", &["--data-dir", &data_arg]);
    let done = wait_for(&mut client, &submitted.sweep_id, LONG, |s| s.state() == pb::SweepState::Finished).await;
    assert_eq!(
        (done.completed, done.failed),
        (3, 0),
        "no trial fails for a data set missing on one machine: {:?}",
        done.trials.iter().map(|t| (t.state(), &t.error)).collect::<Vec<_>>()
    );

    let b_id = done.trials[0].worker_id.clone();
    assert!(done.trials.iter().all(|t| t.worker_id == b_id), "worker-b trained every trial");
    let store = cluster.store().await;
    let mut handed_back = Vec::new();
    for t in &done.trials {
        let attempts = store.attempts(&t.trial_id).await.unwrap();
        let completed = attempts.iter().filter(|a| a.outcome == AttemptOutcome::Completed).count();
        assert_eq!(completed, 1, "{} completed exactly once: {attempts:?}", t.label);
        assert!(attempts.iter().all(|a| a.outcome != AttemptOutcome::Failed), "{}: {attempts:?}", t.label);
        handed_back.extend(attempts.into_iter().filter(|a| a.worker_id != b_id));
    }
    assert_eq!(handed_back.len(), 1, "worker-a leased once, then stopped: {handed_back:?}");
    let attempt = &handed_back[0];
    assert_eq!(attempt.outcome, AttemptOutcome::Released, "given back, not counted as failed: {attempt:?}");
    let error = attempt.error.as_deref().unwrap_or_default();
    let missing = empty.join("DRIVE").display().to_string();
    assert!(error.contains(&missing) && error.contains("does not exist"), "the attempt keeps why: {error:?}");

    let log = cluster.log("worker-a");
    assert!(
        log.contains(STOPPED_LEASING) && log.contains(&missing) && log.contains("--data-dir"),
        "worker-a says what is missing, where, and the fix:\n{log}"
    );
    assert!(a.child.try_wait().unwrap().is_none(), "worker-a stays up (heartbeating), idle");
}
