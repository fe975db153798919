//! A coordinator asked to stop stops, even while a client follows a sweep that will not end.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use allsweep_coordinator::client;
use allsweep_proto::v1 as pb;
use allsweep_testkit::SyntheticSpec;
use common::in_process::InProcess;

/// Regression: a busy handler (a `Watch` of an active sweep polls until the sweep ends) held
/// graceful shutdown open forever. Now in-flight calls get the shutdown grace (5 s), then
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

/// `allsweep serve` with `--shutdown-seconds SECONDS`, and a Watch of a sweep no worker trains:
/// a call that stays in flight until the coordinator ends it.
async fn serving_an_endless_watch(
    dir: &std::path::Path,
    seconds: &str,
) -> (common::Coordinator, tonic::Streaming<pb::SweepStatus>) {
    let db = format!("sqlite://{}", dir.join("allsweep.db").display());
    let coordinator = common::Coordinator::start(&db, dir, "127.0.0.1:0", &["--shutdown-seconds", seconds]);
    let mut user = coordinator.client().await;
    let submitted = common::submit(&mut user, &SyntheticSpec::new("endless").to_toml()).await;
    let request = pb::SweepRequest { sweep_id: submitted.sweep_id, ..Default::default() };
    let mut watch = user.watch(request).await.unwrap().into_inner();
    assert_eq!(watch.message().await.unwrap().expect("the first status").state(), pb::SweepState::Active);
    (coordinator, watch)
}

fn signal(coordinator: &common::Coordinator, name: &str) {
    let pid = coordinator.child.id().to_string();
    let sent = std::process::Command::new("kill").args(["-s", name, &pid]).status().unwrap();
    assert!(sent.success(), "kill -s {name} {pid}");
}

/// Waits up to `limit` for the process to exit; its status and how long it took.
fn exit_within(coordinator: &mut common::Coordinator, limit: Duration) -> (std::process::ExitStatus, Duration) {
    let began = std::time::Instant::now();
    loop {
        if let Some(status) = coordinator.child.try_wait().unwrap() {
            return (status, began.elapsed());
        }
        assert!(began.elapsed() < limit, "still running {limit:?} after the signal");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The real process: SIGTERM with a call in flight closes it after the grace and exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_calls_in_flight_after_the_grace_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let (mut coordinator, mut watch) = serving_an_endless_watch(dir.path(), "1").await;
    signal(&coordinator, "TERM");
    let (status, took) = exit_within(&mut coordinator, Duration::from_secs(60));
    assert_eq!(status.code(), Some(0), "a clean exit after the grace");
    assert!(took >= Duration::from_millis(900), "the watch kept its grace: exited after {took:?}");
    // The client sees its call end, not hang.
    let ended =
        tokio::time::timeout(Duration::from_secs(10), async { while let Ok(Some(_)) = watch.message().await {} });
    ended.await.expect("the watch ends with the coordinator");
}

/// A second signal does not wait for the grace (here an hour).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_stops_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (mut coordinator, _watch) = serving_an_endless_watch(dir.path(), "3600").await;
    signal(&coordinator, "TERM");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(coordinator.child.try_wait().unwrap().is_none(), "the first signal waits for the call in flight");
    signal(&coordinator, "INT");
    let (status, _) = exit_within(&mut coordinator, Duration::from_secs(30));
    assert_eq!(status.code(), Some(130), "stopped by the second signal");
}

/// Regression: with a connected worker's link cut, graceful shutdown waited on that worker's
/// connection (its closing handshake never completes) and the coordinator was still running
/// 120 s after SIGTERM. The worker trains inside a network namespace whose routes to the
/// coordinator are then blackholed (this kernel has no iptables; blackhole routes drop every
/// packet the same way). Needs root, as CI runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_a_worker_cut_off_exits_after_the_grace() {
    assert!(
        allsweep_chaos::postgres::is_root(),
        "this test cuts a worker off in a network namespace: run the tests as root (make test in CI does)"
    );
    let mut ns = allsweep_chaos::netns::Namespace::create().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("allsweep.db").display());
    let listen = format!("{}:0", ns.host_ip);
    let mut coordinator = common::Coordinator::start(&db, dir.path(), &listen, &["--shutdown-seconds", "2"]);
    let mut user = coordinator.client().await;
    let submitted = common::submit(&mut user, &SyntheticSpec::new("cut-off").epochs(50).images(48).to_toml()).await;
    let log = std::fs::File::create(dir.path().join("worker.log")).unwrap();
    let child = std::process::Command::new("ip")
        .args(["netns", "exec", &ns.name])
        .arg(common::worker_binary())
        .args(["--coordinator", &coordinator.address, "--device", "cpu", "--threads", "1", "--work-dir"])
        .arg(dir.path().join("work"))
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let _worker = common::Worker { child, name: "cut-off".into() };
    common::wait_for(&mut user, &submitted.sweep_id, Duration::from_secs(120), |s| s.running == 1).await;

    ns.cut().unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    signal(&coordinator, "TERM");
    // The grace is 2 s; the rest of the bound is slack for a loaded machine, far below the
    // hang this guards against.
    let (status, _) = exit_within(&mut coordinator, Duration::from_secs(15));
    assert_eq!(status.code(), Some(0), "a clean exit after the grace");
}
