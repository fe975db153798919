//! The fault-injection suite, short (`make chaos` runs it at full counts): the real
//! coordinator and real workers train a small synthetic sweep fault-free, then again while
//! workers are sent SIGKILL and SIGTERM and the coordinator is killed and restarted on the
//! same database, on SQLite and on a throwaway Postgres database. Every trial must complete
//! exactly once with each epoch's metrics stored once, no attempt left running, no checkpoint
//! row naming a missing file, later attempts resumed from their checkpoint, and every number
//! equal to the fault-free run's.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::time::Duration;

use allsweep_chaos::{report, run_backend, Backend, Fault, FaultCounts, Options};

const SHORT: FaultCounts = FaultCounts {
    worker_kills: 6,
    worker_terms: 2,
    coordinator_kills: 1,
    postgres_fast: 0,
    postgres_immediate: 0,
    partitions: 0,
};

fn options() -> Options {
    let coordinator_binary = PathBuf::from(env!("CARGO_BIN_EXE_allsweep"));
    let worker_binary = coordinator_binary.with_file_name("allsweep-worker");
    assert!(worker_binary.exists(), "{} must be built (cargo build --workspace)", worker_binary.display());
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    Options {
        seed,
        faults: SHORT,
        // The faulted sweep must outlast the window, or the plan is not carried out (a
        // violation). The suite spreads the faults over at most half the fault-free run's wall
        // time (plan::WINDOW_SHARE), so a fast machine shortens the window with the sweep.
        // 10 trials take about 9 s without faults on an idle 2-core machine, 14 s with them.
        trials: 10,
        epochs: 4,
        images: 32,
        workers: 2,
        lease_seconds: 3.0,
        window: Duration::from_secs(8),
        partition: Duration::from_secs(8),
        timeout: Duration::from_secs(300),
        tolerance: 1e-6,
        keep: false,
        coordinator_binary,
        worker_binary,
    }
}

async fn short_chaos(backend: Backend) {
    let options = options();
    let r = run_backend(&backend, &options).await.unwrap();
    let shown = format!(
        "{}\n{}\n{}",
        report::summary(std::slice::from_ref(&r)),
        report::invariants(std::slice::from_ref(&r)),
        report::details(&r)
    );
    println!("{shown}");
    assert_eq!(r.violations(), 0, "seed {}:\n{shown}", options.seed);
    let injected = |fault| r.injected.get(&fault).copied().unwrap_or(0);
    assert_eq!(
        (injected(Fault::KillWorker), injected(Fault::TermWorker), injected(Fault::KillCoordinator)),
        (SHORT.worker_kills, SHORT.worker_terms, SHORT.coordinator_kills),
        "every planned fault injected"
    );
    assert!(r.attempts.get("expired").copied().unwrap_or(0) >= 1, "a killed worker's lease expired: {shown}");
    assert!(r.resumed >= 1, "some attempt resumed from a checkpoint: {shown}");
    // What the faults cost: nothing but the killed workers' own unsaved epochs.
    assert!(r.costs.infrastructure_expiries.is_empty(), "{shown}");
    assert_eq!(r.costs.epochs_rerun_after_live, 0, "{shown}");
    assert!(r.costs.orphaned_on_coordinator.is_empty() && r.costs.orphaned_on_workers.is_empty(), "{shown}");
}

#[tokio::test(flavor = "multi_thread")]
async fn faults_on_sqlite_lose_nothing_and_change_no_number() {
    short_chaos(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn faults_on_postgres_lose_nothing_and_change_no_number() {
    short_chaos(Backend::SharedPostgres { admin_url: allsweep_testkit::postgres::admin_url() }).await;
}
