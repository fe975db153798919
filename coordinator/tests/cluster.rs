//! End to end: the real coordinator and real worker processes over TCP, on SQLite and on
//! Postgres; workers killed, coordinators killed and restarted, workers joining and leaving.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use allsweep_coordinator::store::{AttemptOutcome, TrialState};
use allsweep_proto::v1 as pb;
use allsweep_testkit::{SyntheticSpec, ThrowawayPostgres};
use common::*;

const LONG: Duration = Duration::from_secs(240);

fn finished(s: &pb::SweepStatus) -> bool {
    s.state() == pb::SweepState::Finished
}

fn running(t: &pb::TrialStatus) -> bool {
    t.state() == pb::TrialState::Running
}

async fn twelve_trials_on_two_workers(cluster: Cluster) {
    let _a = cluster.worker("worker-a", &[]);
    let _b = cluster.worker("worker-b", &[]);
    let mut client = cluster.client().await;
    let text = SyntheticSpec::new("twelve").seeds(0..6).epochs(2).grid("loss.gamma", "[0.1, 0.3]").to_toml();
    let submitted = submit(&mut client, &text).await;
    assert_eq!((submitted.trials, submitted.created), (12, true));
    let again = submit(&mut client, &text).await;
    assert_eq!(
        (again.sweep_id.as_str(), again.created),
        (submitted.sweep_id.as_str(), false),
        "resubmitting adds nothing"
    );

    let done = wait_for(&mut client, &submitted.sweep_id, LONG, finished).await;
    assert_eq!((done.completed, done.failed, done.trials.len()), (12, 0, 12));
    let workers: BTreeSet<&str> = done.trials.iter().map(|t| t.worker_id.as_str()).collect();
    assert_eq!(workers.len(), 2, "both workers trained: {workers:?}");
    let results = results(&mut client, &submitted.sweep_id).await;
    assert_eq!(results.len(), 12, "exactly |grid| x |seeds| results");
    let store = cluster.store().await;
    for t in &done.trials {
        let points = store.metric_points(&t.trial_id).await.unwrap();
        let keys: BTreeSet<(u32, &str)> = points.iter().map(|p| (p.epoch, p.name.as_str())).collect();
        assert_eq!(keys.len(), points.len(), "no duplicate metric rows for {}", t.label);
        assert_eq!(points.iter().filter(|p| p.name == "jaccard").count(), 2, "one jaccard point per epoch");
        assert!(!store.roc(&t.trial_id).await.unwrap().is_empty());
        assert!(store.checkpoint(&t.trial_id).await.unwrap().is_none(), "checkpoint removed once completed");
    }
    // Each epoch wrote a local checkpoint on its worker; none outlives its trial there.
    for worker in ["worker-a", "worker-b"] {
        let left = files_ending(&cluster.dir.path().join(worker), ".ckpt");
        assert!(left.is_empty(), "{worker} kept checkpoints of finished trials: {left:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sweep_completes_across_two_workers_on_sqlite() {
    twelve_trials_on_two_workers(Cluster::sqlite("e2e", &[])).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sweep_completes_across_two_workers_on_postgres() {
    let db = ThrowawayPostgres::create().await;
    twelve_trials_on_two_workers(Cluster::start(db.url(), &[])).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_worker_s_trial_resumes_from_its_checkpoint_on_another() {
    let cluster = Cluster::sqlite("kill", &[]);
    let mut a = cluster.worker_in("worker-a", "host", &[]);
    let mut client = cluster.client().await;
    let submitted = submit(&mut client, &SyntheticSpec::new("kill").epochs(12).images(48).to_toml()).await;
    let store = cluster.store().await;
    let trial_id = sweep(&mut client, &submitted.sweep_id).await.trials[0].trial_id.clone();
    let start = std::time::Instant::now();
    let checkpoint_epoch = loop {
        if let Some(c) = store.checkpoint(&trial_id).await.unwrap() {
            if c.epoch >= 2 {
                break c.epoch;
            }
        }
        assert!(start.elapsed() < LONG, "no checkpoint arrived");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    a.signal("KILL");
    a.wait_exit(Duration::from_secs(5)).expect("killed");
    let work = cluster.dir.path().join("host");
    let killed_left = files_ending(&work, ".ckpt");
    assert!(!killed_left.is_empty(), "the killed worker left its local checkpoint");
    // The replacement shares the host's work directory: the killed worker's folder goes.
    let _b = cluster.worker_in("worker-b", "host", &[]);
    let done = wait_for(&mut client, &submitted.sweep_id, LONG, finished).await;
    assert_eq!(done.completed, 1);
    assert!(killed_left.iter().all(|f| !f.exists()), "{killed_left:?} outlived their killed worker");
    assert!(files_ending(&work, ".ckpt").is_empty(), "no checkpoint of the finished trial stays on the host");
    let attempts = store.attempts(&trial_id).await.unwrap();
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    assert_eq!(attempts[0].outcome, AttemptOutcome::Expired);
    assert_eq!(attempts[1].outcome, AttemptOutcome::Completed);
    let resumed = attempts[1].resumed_from_epoch.expect("the second attempt resumed from a checkpoint");
    assert!(resumed >= checkpoint_epoch, "resumed from epoch {resumed}, checkpoint was at {checkpoint_epoch}");
    let log = cluster.log("worker-b");
    assert!(log.contains("resuming from checkpoint"), "worker-b's log shows the resume");
    let points = store.metric_points(&trial_id).await.unwrap();
    assert_eq!(points.iter().filter(|p| p.name == "jaccard").count(), 12, "each epoch's metrics stored once");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_coordinator_restarted_on_the_same_database_finishes_the_sweep() {
    let mut cluster = Cluster::sqlite("restart", &[]);
    let _a = cluster.worker("worker-a", &[]);
    let _b = cluster.worker("worker-b", &[]);
    let mut client = cluster.client().await;
    let submitted = submit(&mut client, &SyntheticSpec::new("restart").seeds(0..6).epochs(3).to_toml()).await;
    wait_for(&mut client, &submitted.sweep_id, LONG, |s| s.completed >= 1 && s.running >= 1).await;
    cluster.restart().await;
    let mut client = cluster.client().await;
    let done = wait_for(&mut client, &submitted.sweep_id, LONG, finished).await;
    assert_eq!((done.completed, done.failed), (6, 0));
    let store = cluster.store().await;
    for t in &done.trials {
        let points = store.metric_points(&t.trial_id).await.unwrap();
        assert_eq!(points.iter().filter(|p| p.name == "jaccard").count(), 3, "{}: nothing lost or duplicated", t.label);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn workers_join_mid_sweep_and_a_leaving_worker_hands_its_trial_back_at_once() {
    let cluster = Cluster::sqlite("join", &[]);
    let mut a = cluster.worker("worker-a", &[]);
    let mut client = cluster.client().await;
    let spec = SyntheticSpec::new("join").seeds(0..4).epochs(30).images(48).to_toml();
    let submitted = submit(&mut client, &spec).await;
    let first = wait_for(&mut client, &submitted.sweep_id, LONG, |s| s.running == 1).await;
    let a_id = first.trials.iter().find(|t| running(t)).unwrap().worker_id.clone();
    let _b = cluster.worker("worker-b", &[]);
    let joined = wait_for(&mut client, &submitted.sweep_id, LONG, |s| s.running == 2).await;
    let b_id = joined.trials.iter().find(|t| running(t) && t.worker_id != a_id).unwrap().worker_id.clone();
    // Leave while worker-a is mid-trial.
    let busy = wait_for(&mut client, &submitted.sweep_id, LONG, |s| {
        s.trials.iter().any(|t| running(t) && t.worker_id == a_id && t.epoch >= 1 && t.epoch + 5 < t.epochs)
    })
    .await;
    let a_trial = busy.trials.iter().find(|t| running(t) && t.worker_id == a_id).unwrap().trial_id.clone();
    a.signal("TERM");
    let status = a.wait_exit(Duration::from_secs(30)).expect("worker-a leaves promptly on SIGTERM");
    assert!(status.success(), "{status:?}");
    let store = cluster.store().await;
    let attempts = store.attempts(&a_trial).await.unwrap();
    let last = attempts.last().unwrap();
    assert_eq!(
        (last.worker_id.as_str(), last.outcome),
        (a_id.as_str(), AttemptOutcome::Released),
        "handed back at once, not left to expire"
    );
    let done = wait_for(&mut client, &submitted.sweep_id, LONG, finished).await;
    assert_eq!(done.completed, 4);
    let attempts = store.attempts(&a_trial).await.unwrap();
    let resumed = attempts.last().unwrap();
    assert_eq!(resumed.worker_id, b_id, "the joined worker finished it");
    assert!(resumed.resumed_from_epoch.is_some(), "from worker-a's last checkpoint: {attempts:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn cancelling_stops_running_trials_and_queued_ones_never_start() {
    let cluster = Cluster::sqlite("cancel", &[]);
    let _a = cluster.worker("worker-a", &[]);
    let mut client = cluster.client().await;
    let spec = SyntheticSpec::new("cancel").seeds(0..3).epochs(200).images(48).to_toml();
    let submitted = submit(&mut client, &spec).await;
    wait_for(&mut client, &submitted.sweep_id, LONG, |s| s.running == 1).await;
    let cancelled = client
        .cancel(pb::SweepRequest { sweep_id: submitted.sweep_id.clone(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(cancelled.cancelled, 3);
    // Within a heartbeat (0.5 s here) the worker drops the trial and takes no other.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(cluster.log("worker-a").contains("coordinator says stop"), "the worker was told to stop");
    let store = cluster.store().await;
    let trials = store.trials(&submitted.sweep_id).await.unwrap();
    assert!(trials.iter().all(|t| t.state == TrialState::Cancelled));
    assert_eq!(trials.iter().filter(|t| t.attempt > 0).count(), 1, "queued trials never started");
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_specs_are_refused_and_nothing_is_written() {
    let cluster = Cluster::sqlite("invalid", &[]);
    let mut client = cluster.client().await;
    let good = SyntheticSpec::new("invalid").to_toml();
    let cases = [
        (good.replace("epochs = 1", "epochs = 0"), "train.epochs"),
        (good.replace("kind = \"all\"", "kind = \"al\""), "loss.kind"),
        (good.replace("seeds = [0]", "seeds = []"), "seeds"),
        (format!("{good}\n[grid]\n\"loss.omega\" = []\n"), "grid.\"loss.omega\""),
        (good.replace("size = [32, 32]", "size = [30, 32]"), "dataset.size"),
    ];
    for (text, key) in cases {
        let status = client.submit(pb::SubmitRequest { spec_toml: text }).await.expect_err(key);
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert!(status.message().contains(key), "{}", status.message());
    }
    let store = cluster.store().await;
    assert!(store.sweeps().await.unwrap().is_empty(), "nothing written");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_coordinator_with_a_token_refuses_calls_without_it() {
    // The coordinator reads its token from a file, so it never shows in the process list.
    let token_dir = temp_dir();
    let token_file = token_dir.path().join("token");
    std::fs::write(&token_file, "s3cret\n").unwrap();
    let cluster = Cluster::sqlite("token", &["--token-file", token_file.to_str().unwrap()]);
    let address = &cluster.coordinator.address;
    let mut anonymous = cluster.client().await;
    let status = anonymous.list_sweeps(pb::ListSweepsRequest::default()).await.expect_err("no token");
    assert_eq!(status.code(), tonic::Code::Unauthenticated);
    let mut wrong = allsweep_coordinator::client::user(address, Some("nope")).await.unwrap();
    assert_eq!(
        wrong.list_sweeps(pb::ListSweepsRequest::default()).await.expect_err("wrong").code(),
        tonic::Code::Unauthenticated
    );
    let mut right = allsweep_coordinator::client::user(address, Some("s3cret")).await.unwrap();
    right.list_sweeps(pb::ListSweepsRequest::default()).await.expect("the right token is accepted");
    let mut intruder = cluster.worker("intruder", &["--token", "nope"]);
    let exit = intruder.wait_exit(Duration::from_secs(20)).expect("a refused worker exits");
    assert!(!exit.success());
    let log = cluster.log("intruder");
    assert!(log.contains("unknown or revoked token"), "{log}");
    let _member = cluster.worker("member", &["--token-file", token_file.to_str().unwrap()]);
    let start = std::time::Instant::now();
    while !cluster.log("member").contains("registered") {
        assert!(start.elapsed() < LONG, "a worker with the token file registers: {}", cluster.log("member"));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// An outage of allsweep's own costs no attempt. The worker dies while the coordinator is
/// down, so its lease was last renewed before the restart: after the restarted coordinator's
/// grace it expires with the cause `outage`, and a sweep that allows a single attempt still
/// completes the trial on another worker (it used to fail it for good).
#[tokio::test(flavor = "multi_thread")]
async fn a_lease_lost_in_a_coordinator_outage_costs_no_attempt() {
    let mut cluster = Cluster::sqlite("outage", &[]);
    let mut a = cluster.worker("worker-a", &[]);
    let mut client = cluster.client().await;
    let text = format!("max_attempts = 1\n{}", SyntheticSpec::new("outage").epochs(4).images(48).to_toml());
    let submitted = submit(&mut client, &text).await;
    let started = wait_for(&mut client, &submitted.sweep_id, LONG, |s| s.trials.iter().any(running)).await;
    let trial_id = started.trials[0].trial_id.clone();

    cluster.coordinator.kill();
    a.signal("KILL");
    a.wait_exit(Duration::from_secs(5)).expect("killed");
    cluster.restart().await;
    let _b = cluster.worker("worker-b", &[]);
    let mut client = cluster.client().await;
    let done = wait_for(&mut client, &submitted.sweep_id, LONG, finished).await;
    assert_eq!((done.completed, done.failed), (1, 0), "the outage used up no attempt");
    let attempts = cluster.store().await.attempts(&trial_id).await.unwrap();
    assert_eq!(attempts[0].outcome, AttemptOutcome::Expired, "{attempts:?}");
    assert_eq!(attempts[0].cause.as_deref(), Some("outage"), "{attempts:?}");
    assert_eq!(attempts.last().map(|a| a.outcome), Some(AttemptOutcome::Completed), "{attempts:?}");
}

/// Memory-aware slots on a CPU worker with a declared budget: four slots, but memory for only
/// two of the trials' estimates, so exactly two train at once; the worker's registration shows
/// in `allsweep workers`.
#[tokio::test(flavor = "multi_thread")]
async fn a_memory_budget_packs_only_the_trials_that_fit() {
    let cluster = Cluster::sqlite("memory", &[]);
    let mut client = cluster.client().await;
    let text = SyntheticSpec::new("packed").seeds(0..6).epochs(3).to_toml();
    let submitted = submit(&mut client, &text).await;
    let store = cluster.store().await;
    let trials = store.trials(&submitted.sweep_id).await.unwrap();
    let config = allsweep_config::TrialConfig::from_toml_str(&trials[0].config_toml).unwrap();
    let estimate = allsweep_config::memory::estimate(&config).bytes;
    let budget = (estimate * 5 / 2).to_string();
    let _worker = cluster.worker("packed", &["--slots", "4", "--memory-budget", &budget]);

    let done = wait_for(&mut client, &submitted.sweep_id, LONG, finished).await;
    assert_eq!((done.completed, done.failed), (6, 0));
    assert!(done.trials.iter().all(|t| t.memory_bytes == estimate), "allsweep status shows each trial's estimate");
    // The most attempts that overlapped in time.
    let mut spans = Vec::new();
    for t in &trials {
        for a in store.attempts(&t.id).await.unwrap() {
            spans.push((a.started_at, a.ended_at.expect("ended")));
        }
    }
    let most = spans.iter().map(|(start, _)| spans.iter().filter(|(s, e)| s <= start && start < e).count()).max();
    assert_eq!(most, Some(2), "2.5 trials' memory holds two at once, though four slots are free: {spans:?}");
}
