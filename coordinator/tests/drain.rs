//! Scaling down without losing work: `allsweep workers drain ID` (the real CLI against the
//! real coordinator and worker processes), with and without `--now`, and a stopping worker
//! that cannot reach its coordinator giving up after `--stop-timeout`.

#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use allsweep_coordinator::client::UserClient;
use allsweep_coordinator::store::AttemptOutcome;
use allsweep_proto::v1 as pb;
use allsweep_testkit::SyntheticSpec;
use common::{coordinator_binary, submit, wait_for, Cluster};

/// The one worker the coordinator knows, once it has registered.
async fn only_worker(client: &mut UserClient) -> pb::WorkerInfo {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let workers = client.list_workers(pb::ListWorkersRequest::default()).await.unwrap().into_inner().workers;
        if let [w] = workers.as_slice() {
            return w.clone();
        }
        assert!(Instant::now() < deadline, "workers: {workers:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `allsweep ARGS --coordinator ADDRESS`, as a user types it: (success, stdout, stderr).
fn allsweep(cluster: &Cluster, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(coordinator_binary())
        .args(args)
        .args(["--coordinator", &cluster.coordinator.address])
        .output()
        .unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

/// Waits until the sweep has a trial running and returns its id.
async fn a_running_trial(client: &mut UserClient, sweep: &str) -> String {
    let s = wait_for(client, sweep, Duration::from_secs(120), |s| s.running >= 1).await;
    s.trials.iter().find(|t| t.state() == pb::TrialState::Running).unwrap().trial_id.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_worker_finishes_its_trial_leases_no_more_and_exits_0() {
    let cluster = Cluster::sqlite("drain", &[]);
    let mut client = cluster.client().await;
    let spec = SyntheticSpec::new("drained").seeds(0..3).epochs(4).images(32).to_toml();
    let sweep = submit(&mut client, &spec).await.sweep_id;
    let mut first = cluster.worker("first", &[]);
    let held = a_running_trial(&mut client, &sweep).await;
    let worker = only_worker(&mut client).await;

    let (ok, _, said) = allsweep(&cluster, &["workers", "drain", &worker.worker_id]);
    assert!(ok, "drain refused: {said}");
    assert!(said.contains("finishes its running trials"), "{said}");
    let (ok, listed, _) = allsweep(&cluster, &["workers"]);
    assert!(ok && listed.contains("finishing"), "allsweep workers shows the drain: {listed}");

    let status = first.wait_exit(Duration::from_secs(120)).expect("the drained worker exits");
    assert_eq!(status.code(), Some(0), "a drain is a clean exit: {}", cluster.log("first"));
    let store = cluster.store().await;
    let attempts = store.attempts(&held).await.unwrap();
    assert_eq!(attempts.len(), 1, "the held trial was finished, not handed back: {attempts:?}");
    assert_eq!(attempts[0].outcome, AttemptOutcome::Completed);
    let s = common::sweep(&mut client, &sweep).await;
    assert_eq!((s.completed, s.queued), (1, 2), "it leased nothing after the drain");

    // Another worker takes the rest; every trial ran once.
    let _second = cluster.worker("second", &[]);
    wait_for(&mut client, &sweep, Duration::from_secs(180), |s| s.completed == 3).await;
    for t in store.trials(&sweep).await.unwrap() {
        assert_eq!(t.attempt, 1, "trial {} ran once", t.id);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_now_releases_the_running_trial_which_resumes_elsewhere() {
    let cluster = Cluster::sqlite("drain-now", &[]);
    let mut client = cluster.client().await;
    // Long enough that it is still training when the drain arrives.
    let spec = SyntheticSpec::new("drained now").epochs(200).images(32).to_toml();
    let sweep = submit(&mut client, &spec).await.sweep_id;
    let mut first = cluster.worker("first", &[]);
    let held = a_running_trial(&mut client, &sweep).await;
    let worker = only_worker(&mut client).await;

    let (ok, _, said) = allsweep(&cluster, &["workers", "drain", &worker.worker_id, "--now"]);
    assert!(ok && said.contains("releases its running trials now"), "{said}");
    let status = first.wait_exit(Duration::from_secs(60)).expect("the drained worker exits");
    assert_eq!(status.code(), Some(0), "{}", cluster.log("first"));
    let store = cluster.store().await;
    let attempts = store.attempts(&held).await.unwrap();
    assert_eq!(attempts[0].outcome, AttemptOutcome::Released, "handed back at once: {attempts:?}");
    let s = common::sweep(&mut client, &sweep).await;
    assert_eq!(s.queued, 1, "the released trial is queued for another worker");

    let _second = cluster.worker("second", &[]);
    let resumed = wait_for(&mut client, &sweep, Duration::from_secs(120), |s| s.running == 1).await;
    assert_eq!(resumed.trials[0].attempt, 2);
    let (ok, _, said) = allsweep(&cluster, &["cancel", &sweep]);
    assert!(ok, "{said}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_names_what_is_wrong_with_the_worker_id() {
    let cluster = Cluster::sqlite("drain-refusals", &[]);
    let (ok, _, said) = allsweep(&cluster, &["workers", "drain", "w-nobody"]);
    assert!(!ok && said.contains("worker_id: no worker w-nobody"), "{said}");
    let (ok, _, said) = allsweep(&cluster, &["workers", "drain", "../../etc"]);
    assert!(!ok && said.contains("worker_id"), "{said}");
}

/// A worker told to stop whose coordinator is gone cannot hand its trial back: it exits after
/// `--stop-timeout` with an error naming the trial (its lease then expires) instead of hanging
/// past the grace period of whatever stops it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_worker_that_cannot_reach_its_coordinator_gives_up_after_its_stop_timeout() {
    let mut cluster = Cluster::sqlite("stop-timeout", &[]);
    let mut client = cluster.client().await;
    let spec = SyntheticSpec::new("orphaned").epochs(200).images(32).to_toml();
    let sweep = submit(&mut client, &spec).await.sweep_id;
    let mut worker = cluster.worker("orphan", &["--stop-timeout", "3"]);
    let held = a_running_trial(&mut client, &sweep).await;
    cluster.coordinator.kill();
    let signalled = Instant::now();
    worker.signal("TERM");
    let status = worker.wait_exit(Duration::from_secs(60)).expect("the worker gives up");
    assert!(signalled.elapsed() >= Duration::from_secs(3), "it tried for its stop timeout");
    assert_eq!(status.code(), Some(1), "not handed back is an error");
    let log = cluster.log("orphan");
    assert!(log.contains("gave up after --stop-timeout") && log.contains(&held), "{log}");
}
