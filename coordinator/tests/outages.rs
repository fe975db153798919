//! Outages of allsweep's own infrastructure cost the workers nothing: the real coordinator
//! killed and restarted after more than a lease, and a private Postgres restarted fast and
//! immediately under it, while real workers train. Every worker stays alive, so every lease
//! must survive: each trial completes in its first attempt, no epoch is trained twice.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use allsweep_chaos::postgres::{PrivatePostgres, DEFAULT_BIN_DIR};
use allsweep_chaos::StopMode;
use allsweep_coordinator::store::AttemptOutcome;
use allsweep_proto::v1 as pb;
use allsweep_testkit::SyntheticSpec;
use common::*;

const LONG: Duration = Duration::from_secs(300);

/// Four trials long enough (12 epochs) to be running through the outages below.
fn spec(name: &str) -> String {
    SyntheticSpec::new(name).seeds(0..4).epochs(12).images(48).to_toml()
}

fn finished(s: &pb::SweepStatus) -> bool {
    s.state() == pb::SweepState::Finished
}

/// Both workers are training.
fn both_running(s: &pb::SweepStatus) -> bool {
    s.running >= 2
}

/// Every trial completed in its first attempt, started from scratch: no lease expired, no
/// epoch was trained twice.
async fn every_trial_completed_in_one_attempt(cluster: &Cluster, done: &pb::SweepStatus) {
    assert_eq!((done.completed, done.failed), (4, 0));
    let store = cluster.store().await;
    for t in &done.trials {
        let attempts = store.attempts(&t.trial_id).await.unwrap();
        let outcomes: Vec<_> = attempts.iter().map(|a| (a.outcome, a.cause.clone(), a.resumed_from_epoch)).collect();
        assert_eq!(outcomes, [(AttemptOutcome::Completed, None, None)], "{}: {attempts:?}", t.label);
        let points = store.metric_points(&t.trial_id).await.unwrap();
        assert_eq!(points.iter().filter(|p| p.name == "jaccard").count(), 12, "{}", t.label);
    }
}

/// Regression: a coordinator restarted after an outage longer than the lease expired every
/// running lease 30-40 ms after it started, before any worker could heartbeat.
#[tokio::test(flavor = "multi_thread")]
async fn a_coordinator_down_longer_than_a_lease_expires_no_live_worker_s_lease() {
    let mut cluster = Cluster::sqlite("restart", &[]);
    let _a = cluster.worker("worker-a", &[]);
    let _b = cluster.worker("worker-b", &[]);
    let mut client = cluster.client().await;
    let submitted = submit(&mut client, &spec("coordinator-outage")).await;
    wait_for(&mut client, &submitted.sweep_id, LONG, both_running).await;

    cluster.coordinator.kill();
    // Five seconds: the leases (3 s) run out while nobody can renew them.
    tokio::time::sleep(Duration::from_secs(5)).await;
    cluster.restart().await;
    let mut client = cluster.client().await;
    let done = wait_for(&mut client, &submitted.sweep_id, LONG, finished).await;
    every_trial_completed_in_one_attempt(&cluster, &done).await;
}

/// Regression: a `pg_ctl restart -m immediate` shorter than the lease expired 2 of 3 running
/// leases (renewals waited on the pool while the expiry sweep ran first). Here the database
/// is restarted fast, then, once the workers are back, immediately.
#[tokio::test(flavor = "multi_thread")]
async fn a_restarted_database_expires_no_live_worker_s_lease() {
    let postgres = PrivatePostgres::start(std::path::Path::new(DEFAULT_BIN_DIR)).unwrap();
    let url = postgres.create_database("outage").await.unwrap();
    let cluster = Cluster::start(&url, &[]);
    let _a = cluster.worker("worker-a", &[]);
    let _b = cluster.worker("worker-b", &[]);
    let mut client = cluster.client().await;
    let submitted = submit(&mut client, &spec("database-outage")).await;
    for mode in [StopMode::Fast, StopMode::Immediate] {
        wait_for(&mut client, &submitted.sweep_id, LONG, both_running).await;
        postgres.restart(mode).unwrap();
        // Long enough for a lease to have expired had the renewals been lost.
        tokio::time::sleep(Duration::from_secs(4)).await;
    }
    let done = wait_for(&mut client, &submitted.sweep_id, LONG, finished).await;
    every_trial_completed_in_one_attempt(&cluster, &done).await;
}
