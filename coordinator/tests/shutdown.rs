//! A coordinator asked to stop stops, even while a client follows a sweep that will not end.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use allsweep_coordinator::client;
use allsweep_proto::v1 as pb;
use allsweep_testkit::SyntheticSpec;
use common::in_process::InProcess;

/// Regression: a busy handler (a `Watch` of an active sweep polls until the sweep ends) held
/// graceful shutdown open forever. Now in-flight calls get the shutdown grace (10 s), then
/// the coordinator stops; the bound below only keeps a hang from hanging the suite.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_while_a_client_watches_an_active_sweep() {
    let c = InProcess::start(Duration::from_secs(60), &SyntheticSpec::new("watched")).await;
    let mut user = client::user(&c.address, None).await.unwrap();
    let mut watch =
        user.watch(pb::SweepRequest { sweep_id: c.sweep_id.clone(), ..Default::default() }).await.unwrap().into_inner();
    let first = watch.message().await.unwrap().expect("the first status");
    assert_eq!(first.state(), pb::SweepState::Active, "no worker: the sweep stays active");
    let stopped = tokio::time::timeout(Duration::from_secs(120), c.shutdown()).await;
    stopped.expect("the coordinator stopped despite the open watch").expect("serve ended cleanly");
}
