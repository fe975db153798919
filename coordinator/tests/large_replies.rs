//! A sweep's status stays readable however its trials failed: the replies a user's commands
//! read are bounded, and the CLI's client accepts what the coordinator may send.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use allsweep_coordinator::client;
use allsweep_coordinator::store::{self, TrialFault, WorkerRow};
use allsweep_proto::v1 as pb;
use allsweep_testkit::SyntheticSpec;
use common::in_process::InProcess;

/// Regression: errors of up to 16 KiB on each of a few hundred trials made every `GetSweep`
/// reply exceed the 4 MiB message limit, so `allsweep status` failed for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_of_a_sweep_of_long_failures_is_still_answered() {
    let c = InProcess::start(Duration::from_secs(60), &SyntheticSpec::new("noisy").seeds(0..400)).await;
    let now = store::now_ms();
    let worker = WorkerRow {
        id: "w".into(),
        host: "h".into(),
        device: "cpu".into(),
        memory_bytes: 1,
        slots: 1024,
        version: "test".into(),
        registered_at: now,
        last_seen_at: now,
        running: 0,
        gpus: Vec::new(),
        drain: None,
    };
    assert!(c.store.register_worker(&worker, "key-hash").await.unwrap());
    let leased = c.store.lease("w", 400, now, now + 60_000).await.unwrap();
    assert_eq!(leased.len(), 400);
    let long = "CUDA error: an illegal memory access was encountered; ".repeat(300);
    for l in &leased {
        c.store.fail("w", &l.trial_id, l.attempt, &long, TrialFault::Retry, now + 1).await.unwrap();
    }
    let mut user = client::user(&c.address, None).await.unwrap();
    let status = user
        .get_sweep(pb::SweepRequest { sweep_id: c.sweep_id.clone(), ..Default::default() })
        .await
        .expect("a readable status");
    let status = status.into_inner();
    assert_eq!((status.queued, status.trials.len()), (400, 400));
    for t in &status.trials {
        assert!(t.error.starts_with("CUDA error: an illegal memory access"), "{}", t.error);
        assert!(t.error.ends_with("more bytes in the database]"), "cut, and says so");
        assert!(t.error.len() < 600, "{} bytes", t.error.len());
    }
    let kept = c.store.trials(&c.sweep_id).await.unwrap();
    assert_eq!(kept[0].error.as_deref(), Some(long.as_str()), "the database keeps the whole error");
}

/// Long lists come in pages: a sweep's trials, read 150 at a time, arrive each exactly once
/// with the whole sweep's counts on every page; a bad page token names its field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_s_trials_come_in_pages() {
    let c = InProcess::start(Duration::from_secs(60), &SyntheticSpec::new("paged").seeds(0..400)).await;
    let mut user = client::user(&c.address, None).await.unwrap();
    let mut seen = Vec::new();
    let mut page_token = String::new();
    loop {
        let request = pb::SweepRequest { sweep_id: c.sweep_id.clone(), page_size: 150, page_token };
        let page = user.get_sweep(request).await.expect("a page").into_inner();
        assert_eq!(page.queued, 400, "every page counts the whole sweep");
        assert!(page.trials.len() <= 150);
        seen.extend(page.trials.into_iter().map(|t| t.trial_id));
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!((seen.len(), unique.len()), (400, 400));
    let bad = pb::SweepRequest { sweep_id: c.sweep_id.clone(), page_size: 10, page_token: "../1".into() };
    let refused = user.get_sweep(bad).await.expect_err("a forged token");
    assert!(refused.message().starts_with("page_token: "), "{}", refused.message());
    let workers = pb::ListWorkersRequest { page_size: 20_000, page_token: String::new() };
    let refused = user.list_workers(workers).await.expect_err("a page too large");
    assert!(refused.message().starts_with("page_size: "), "{}", refused.message());
}
