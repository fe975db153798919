//! End to end: the real coordinator and real worker processes over TCP, on SQLite and on
//! Postgres; workers killed, coordinators killed and restarted, workers joining and leaving.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use allsweep_proto::v1 as pb;
use common::*;

const LONG: Duration = Duration::from_secs(240);

fn grid_spec(name: &str, seeds: usize, epochs: u32) -> String {
    let seeds: Vec<u64> = (0..seeds as u64).collect();
    format!("{}\n[grid]\n\"loss.gamma\" = [0.1, 0.3]\n", spec(name, &seeds, epochs, 16))
}

async fn twelve_trials_on_two_workers(db: &str) {
    let dir = temp_dir();
    let coordinator = Coordinator::start(db, dir.path(), "127.0.0.1:0", &[]);
    let _a = Worker::start(&coordinator.address, dir.path(), "worker-a", &[]);
    let _b = Worker::start(&coordinator.address, dir.path(), "worker-b", &[]);
    let mut client = coordinator.client().await;
    let text = grid_spec("twelve", 6, 2);
    let submitted = submit(&mut client, &text).await;
    assert_eq!((submitted.trials, submitted.created), (12, true));
    let again = submit(&mut client, &text).await;
    assert_eq!(
        (again.sweep_id.as_str(), again.created),
        (submitted.sweep_id.as_str(), false),
        "resubmitting adds nothing"
    );

    let done = wait_for(&mut client, &submitted.sweep_id, LONG, |s| s.state == "finished").await;
    assert_eq!((done.completed, done.failed, done.trials.len()), (12, 0, 12));
    let workers: BTreeSet<&str> = done.trials.iter().map(|t| t.worker_id.as_str()).collect();
    assert_eq!(workers.len(), 2, "both workers trained: {workers:?}");
    let results = client
        .query_results(pb::SweepRequest { sweep_id: submitted.sweep_id.clone() })
        .await
        .unwrap()
        .into_inner()
        .results;
    assert_eq!(results.len(), 12, "exactly |grid| x |seeds| results");
    let store = open_store(db).await;
    for t in &done.trials {
        let points = store.metric_points(&t.trial_id).await.unwrap();
        let keys: BTreeSet<(u32, &str)> = points.iter().map(|p| (p.epoch, p.name.as_str())).collect();
        assert_eq!(keys.len(), points.len(), "no duplicate metric rows for {}", t.label);
        assert_eq!(points.iter().filter(|p| p.name == "jaccard").count(), 2, "one jaccard point per epoch");
        assert!(!store.roc(&t.trial_id).await.unwrap().is_empty());
        assert!(store.checkpoint(&t.trial_id).await.unwrap().is_none(), "checkpoint removed once completed");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sweep_completes_across_two_workers_on_sqlite() {
    let dir = temp_dir();
    twelve_trials_on_two_workers(&format!("sqlite://{}", dir.path().join("e2e.db").display())).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sweep_completes_across_two_workers_on_postgres() {
    let db = PgDatabase::create().await;
    twelve_trials_on_two_workers(&db.url).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_worker_s_trial_resumes_from_its_checkpoint_on_another() {
    let dir = temp_dir();
    let db = format!("sqlite://{}", dir.path().join("kill.db").display());
    let coordinator = Coordinator::start(&db, dir.path(), "127.0.0.1:0", &[]);
    let mut a = Worker::start(&coordinator.address, dir.path(), "worker-a", &[]);
    let mut client = coordinator.client().await;
    let submitted = submit(&mut client, &spec("kill", &[0], 12, 48)).await;
    let store = open_store(&db).await;
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
    let _b = Worker::start(&coordinator.address, dir.path(), "worker-b", &[]);
    let done = wait_for(&mut client, &submitted.sweep_id, LONG, |s| s.state == "finished").await;
    assert_eq!(done.completed, 1);
    let attempts = store.attempts(&trial_id).await.unwrap();
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    assert_eq!(attempts[0].outcome, "expired");
    assert_eq!(attempts[1].outcome, "completed");
    let resumed = attempts[1].resumed_from_epoch.expect("the second attempt resumed from a checkpoint");
    assert!(resumed >= checkpoint_epoch, "resumed from epoch {resumed}, checkpoint was at {checkpoint_epoch}");
    let log = std::fs::read_to_string(dir.path().join("worker-b.log")).unwrap();
    assert!(log.contains("resuming from checkpoint"), "worker-b's log shows the resume");
    let points = store.metric_points(&trial_id).await.unwrap();
    assert_eq!(points.iter().filter(|p| p.name == "jaccard").count(), 12, "each epoch's metrics stored once");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_coordinator_restarted_on_the_same_database_finishes_the_sweep() {
    let dir = temp_dir();
    let db = format!("sqlite://{}", dir.path().join("restart.db").display());
    let mut coordinator = Coordinator::start(&db, dir.path(), "127.0.0.1:0", &[]);
    let listen = coordinator.listen.clone();
    let _a = Worker::start(&coordinator.address, dir.path(), "worker-a", &[]);
    let _b = Worker::start(&coordinator.address, dir.path(), "worker-b", &[]);
    let mut client = coordinator.client().await;
    let submitted = submit(&mut client, &spec("restart", &[0, 1, 2, 3, 4, 5], 3, 16)).await;
    wait_for(&mut client, &submitted.sweep_id, LONG, |s| s.completed >= 1 && s.running >= 1).await;
    coordinator.kill();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let coordinator = Coordinator::start(&db, dir.path(), &listen, &[]);
    let mut client = coordinator.client().await;
    let done = wait_for(&mut client, &submitted.sweep_id, LONG, |s| s.state == "finished").await;
    assert_eq!((done.completed, done.failed), (6, 0));
    let store = open_store(&db).await;
    for t in &done.trials {
        let points = store.metric_points(&t.trial_id).await.unwrap();
        assert_eq!(points.iter().filter(|p| p.name == "jaccard").count(), 3, "{}: nothing lost or duplicated", t.label);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn workers_join_mid_sweep_and_a_leaving_worker_hands_its_trial_back_at_once() {
    let dir = temp_dir();
    let db = format!("sqlite://{}", dir.path().join("join.db").display());
    let coordinator = Coordinator::start(&db, dir.path(), "127.0.0.1:0", &[]);
    let mut a = Worker::start(&coordinator.address, dir.path(), "worker-a", &[]);
    let mut client = coordinator.client().await;
    let submitted = submit(&mut client, &spec("join", &[0, 1, 2, 3], 30, 48)).await;
    let first = wait_for(&mut client, &submitted.sweep_id, LONG, |s| s.running == 1).await;
    let a_id = first.trials.iter().find(|t| t.status == "running").unwrap().worker_id.clone();
    let _b = Worker::start(&coordinator.address, dir.path(), "worker-b", &[]);
    let joined = wait_for(&mut client, &submitted.sweep_id, LONG, |s| s.running == 2).await;
    let b_id = joined.trials.iter().find(|t| t.status == "running" && t.worker_id != a_id).unwrap().worker_id.clone();
    // Leave while worker-a is mid-trial.
    let busy = wait_for(&mut client, &submitted.sweep_id, LONG, |s| {
        s.trials.iter().any(|t| t.status == "running" && t.worker_id == a_id && t.epoch >= 1 && t.epoch + 5 < t.epochs)
    })
    .await;
    let a_trial = busy.trials.iter().find(|t| t.status == "running" && t.worker_id == a_id).unwrap().trial_id.clone();
    a.signal("TERM");
    let status = a.wait_exit(Duration::from_secs(30)).expect("worker-a leaves promptly on SIGTERM");
    assert!(status.success(), "{status:?}");
    let store = open_store(&db).await;
    let attempts = store.attempts(&a_trial).await.unwrap();
    let last = attempts.last().unwrap();
    assert_eq!(
        (last.worker_id.as_str(), last.outcome.as_str()),
        (a_id.as_str(), "released"),
        "handed back at once, not left to expire"
    );
    let done = wait_for(&mut client, &submitted.sweep_id, LONG, |s| s.state == "finished").await;
    assert_eq!(done.completed, 4);
    let attempts = store.attempts(&a_trial).await.unwrap();
    let resumed = attempts.last().unwrap();
    assert_eq!(resumed.worker_id, b_id, "the joined worker finished it");
    assert!(resumed.resumed_from_epoch.is_some(), "from worker-a's last checkpoint: {attempts:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn cancelling_stops_running_trials_and_queued_ones_never_start() {
    let dir = temp_dir();
    let db = format!("sqlite://{}", dir.path().join("cancel.db").display());
    let coordinator = Coordinator::start(&db, dir.path(), "127.0.0.1:0", &[]);
    let _a = Worker::start(&coordinator.address, dir.path(), "worker-a", &[]);
    let mut client = coordinator.client().await;
    let submitted = submit(&mut client, &spec("cancel", &[0, 1, 2], 200, 48)).await;
    wait_for(&mut client, &submitted.sweep_id, LONG, |s| s.running == 1).await;
    let cancelled =
        client.cancel(pb::SweepRequest { sweep_id: submitted.sweep_id.clone() }).await.unwrap().into_inner();
    assert_eq!(cancelled.cancelled, 3);
    // Within a heartbeat (0.5 s here) the worker drops the trial and takes no other.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let log = std::fs::read_to_string(dir.path().join("worker-a.log")).unwrap();
    assert!(log.contains("coordinator says stop"), "the worker was told to stop");
    let store = open_store(&db).await;
    let trials = store.trials(&submitted.sweep_id).await.unwrap();
    assert!(trials.iter().all(|t| t.state == allsweep_coordinator::store::TrialState::Cancelled));
    assert_eq!(trials.iter().filter(|t| t.attempt > 0).count(), 1, "queued trials never started");
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_specs_are_refused_and_nothing_is_written() {
    let dir = temp_dir();
    let db = format!("sqlite://{}", dir.path().join("invalid.db").display());
    let coordinator = Coordinator::start(&db, dir.path(), "127.0.0.1:0", &[]);
    let mut client = coordinator.client().await;
    let good = spec("invalid", &[0], 1, 16);
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
    let store = open_store(&db).await;
    assert!(store.sweeps().await.unwrap().is_empty(), "nothing written");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_coordinator_with_a_token_refuses_calls_without_it() {
    let dir = temp_dir();
    let db = format!("sqlite://{}", dir.path().join("token.db").display());
    let coordinator = Coordinator::start(&db, dir.path(), "127.0.0.1:0", &["--token", "s3cret"]);
    let mut anonymous = coordinator.client().await;
    let status = anonymous.list_sweeps(pb::ListSweepsRequest {}).await.expect_err("no token");
    assert_eq!(status.code(), tonic::Code::Unauthenticated);
    let mut wrong = allsweep_coordinator::client::user(&coordinator.address, Some("nope")).await.unwrap();
    assert_eq!(
        wrong.list_sweeps(pb::ListSweepsRequest {}).await.expect_err("wrong").code(),
        tonic::Code::Unauthenticated
    );
    let mut right = allsweep_coordinator::client::user(&coordinator.address, Some("s3cret")).await.unwrap();
    right.list_sweeps(pb::ListSweepsRequest {}).await.expect("the right token is accepted");
    let mut intruder = Worker::start(&coordinator.address, dir.path(), "intruder", &["--token", "nope"]);
    let exit = intruder.wait_exit(Duration::from_secs(20)).expect("a refused worker exits");
    assert!(!exit.success());
    let log = std::fs::read_to_string(dir.path().join("intruder.log")).unwrap();
    assert!(log.contains("wrong token"), "{log}");
}
