//! One suite, run against both dialects: SQLite in a temporary file, and Postgres in a fresh
//! database created for each test and dropped after it (`allsweep_testkit`, which finds the
//! server at `ALLSWEEP_TEST_POSTGRES`; without a server these tests fail, never skip).

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use allsweep_config::MemoryEstimate;
use allsweep_testkit::ThrowawayPostgres;
use futures::FutureExt;
use sqlx::Connection;

use super::rows::Cols;
use super::*;

/// What a test gets: the store, and its URL for reading the dashboard views with SQL.
struct Ctx {
    store: Arc<dyn Store>,
    url: String,
}

async fn on_sqlite<F, Fut>(test: F)
where
    F: FnOnce(Ctx) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().expect("a temporary directory");
    let url = format!("sqlite://{}", dir.path().join("allsweep.db").display());
    let store = SqlStore::open(&url).await.expect("open the SQLite store");
    test(Ctx { store: Arc::new(store), url }).await;
}

/// Runs `test` against a fresh Postgres database, then drops it, whether the test passed or not.
async fn on_postgres<F, Fut>(test: F)
where
    F: FnOnce(Ctx) -> Fut,
    Fut: Future<Output = ()>,
{
    let db = ThrowawayPostgres::create().await;
    let url = db.url().to_string();
    let outcome = std::panic::AssertUnwindSafe(async {
        let store = SqlStore::open(&url).await.expect("open the Postgres store");
        test(Ctx { store: Arc::new(store), url: url.clone() }).await;
    })
    .catch_unwind()
    .await;
    let dropped = db.drop_now().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
    dropped.expect("drop the test database");
}

/// Runs each test on both backends, as `sqlite::NAME` and `postgres::NAME`.
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::on_sqlite(super::$name).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::on_postgres(super::$name).await;
                }
            )*
        }
    };
}

on_both!(
    the_census_counts_trials_attempts_and_the_leasable_queue,
    inserting_a_sweep_twice_writes_it_once,
    concurrent_leases_hand_each_trial_out_once,
    leases_go_oldest_sweep_first_and_resume_from_checkpoints,
    writes_of_a_superseded_attempt_are_refused,
    retransmitted_metrics_are_stored_once,
    expired_leases_requeue_then_fail_after_max_attempts,
    released_trials_are_requeued_at_once,
    completion_stores_results_roc_and_drops_the_checkpoint,
    failures_fail_for_good_or_requeue,
    cancelling_stops_running_and_queued_trials,
    a_sweep_finishes_when_every_trial_settles,
    an_expiry_after_an_outage_does_not_use_up_an_attempt,
    concurrent_settlements_finish_the_sweep,
    a_cancel_racing_completions_settles_every_trial_once,
    the_expiry_tick_finishes_a_sweep_whose_finish_was_lost,
    workers_are_registered_and_counted,
    a_drain_is_kept_and_now_is_never_softened,
    memory_aware_leases_take_only_trials_that_fit_together,
    transition_out_of_memory_running_to_queued_asking_twice_the_memory,
    dashboard_views_flatten_trials_and_summarise_configs,
    dashboard_example_queries_answer_the_common_questions,
    transition_lease_queued_to_running,
    transition_renew_running_to_running,
    transition_complete_running_to_completed,
    transition_fail_retry_running_to_queued,
    transition_fail_permanent_running_to_failed,
    transition_fail_out_of_attempts_running_to_failed,
    transition_expire_running_to_queued,
    transition_release_running_to_queued,
    transition_worker_fault_running_to_queued_without_counting,
    transition_cancel_queued_and_running_to_cancelled,
    a_cancel_racing_leases_leaves_no_attempt_running,
    a_constraint_violation_is_the_caller_s_error_not_a_retry,
    check_lease_refuses_superseded_and_unknown_attempts,
    writes_for_another_worker_s_lease_are_refused,
    tokens_are_stored_as_hashes_and_revoked_once,
    asha_holds_trials_at_rungs_then_promotes_or_stops_them,
    a_trial_requeued_at_a_rung_waits_for_its_decision_and_the_tick_settles_it,
    a_race_holds_later_seeds_and_eliminates_a_config_shown_worse,
);

const T0: Millis = 1_000_000;
const LEASE_MS: Millis = 60_000;

/// A sweep of `configs` x `seeds` trials, `ID-tN` in ordinal order; config `c` has omega
/// `6 + c` and config key `ID-cC`.
fn new_sweep(id: &str, configs: u32, seeds: u32, max_attempts: u32, keep_checkpoints: bool) -> NewSweep {
    let mut trials = Vec::new();
    for c in 0..configs {
        for seed in 0..seeds {
            let ordinal = c * seeds + seed;
            let omega = f64::from(6 + c);
            trials.push(NewTrial {
                id: format!("{id}-t{ordinal}"),
                ordinal,
                label: format!("loss.omega={omega} seed={seed}"),
                params_json: format!("{{\"loss.omega\": {omega}}}"),
                config_key: format!("{id}-c{c}"),
                config_toml: format!("seed = {seed}\n[loss]\nomega = {omega}\n"),
                seed: u64::from(seed),
                epochs: 5,
                columns: TrialColumns {
                    dataset: "synthetic".into(),
                    arch: "unet".into(),
                    width: 8,
                    loss: "all".into(),
                    base_loss: Some("dice".into()),
                    gamma: Some(0.1),
                    omega: Some(omega),
                    epsilon: Some(0.5),
                    lr: 1e-3,
                    batch_size: 4,
                },
                memory: MemoryEstimate { bytes: 1 << 30, shape: format!("{id}-shape") },
            });
        }
    }
    NewSweep {
        id: id.into(),
        name: format!("sweep {id}"),
        spec_toml: "name = \"x\"\n".into(),
        keep_checkpoints,
        max_attempts,
        early_stopping: None,
        trials,
    }
}

fn completion(jaccard: f64, recall: f64, auc: Option<f64>) -> Completion {
    Completion {
        metrics: FinalMetrics {
            jaccard,
            dice: 0.8,
            precision: 0.7,
            recall,
            tnr: 0.95,
            accuracy: 0.9,
            auc,
            keras: Some(KerasMetrics { jaccard: jaccard - 0.03, dice: 0.76, recall: recall + 0.02, tnr: 0.96 }),
        },
        roc: vec![
            RocPoint { threshold: f64::INFINITY, fpr: 0.0, tpr: 0.0 },
            RocPoint { threshold: 0.5, fpr: 0.1, tpr: 0.8 },
            RocPoint { threshold: 0.0, fpr: 1.0, tpr: 1.0 },
        ],
        split: "test".into(),
        epochs: 5,
        parameters: 1234,
        selected_epoch: 4,
    }
}

fn checkpoint(trial_id: &str, attempt: u32, epoch: u32, file: &str) -> CheckpointRow {
    CheckpointRow {
        trial_id: trial_id.into(),
        attempt,
        epoch,
        step: epoch * 10,
        file: file.into(),
        sha256: "ab".repeat(32),
        bytes: 4096,
    }
}

async fn insert(store: &dyn Store, sweep: &NewSweep, now: Millis) {
    assert!(store.insert_sweep(sweep, now).await.expect("insert the sweep"), "sweep {} is new", sweep.id);
}

async fn lease_one(store: &dyn Store, worker: &str, now: Millis) -> Leased {
    let mut leased = store.lease(worker, 1, now, now + LEASE_MS).await.expect("lease");
    assert_eq!(leased.len(), 1, "one trial leased to {worker}");
    leased.remove(0)
}

async fn trial(store: &dyn Store, sweep_id: &str, trial_id: &str) -> TrialRow {
    let trials = store.trials(sweep_id).await.expect("trials");
    trials.into_iter().find(|t| t.id == trial_id).expect("the trial exists")
}

async fn sweep_state(store: &dyn Store, id: &str) -> SweepState {
    store.sweep(id).await.expect("sweep").expect("the sweep exists").state
}

fn progress(trial_id: &str, attempt: u32, epoch: u32) -> Progress {
    Progress { trial_id: trial_id.into(), attempt, epoch }
}

fn attempt_ref(trial_id: &str, attempt: u32) -> AttemptRef {
    AttemptRef { trial_id: trial_id.into(), attempt }
}

fn expired(trial_id: &str, attempt: u32, next: Requeue) -> Expired {
    Expired { trial_id: trial_id.into(), attempt, next }
}

fn stored(stored: u64, duplicates: u64) -> MetricsStored {
    MetricsStored { stored, duplicates }
}

fn assert_superseded<T: std::fmt::Debug>(result: Result<T>, what: &str) {
    assert!(matches!(result, Err(StoreError::Superseded { .. })), "{what}: expected Superseded, got {result:?}");
}

/// A registered worker of two slots on host gpu-1, last seen at T0.
fn gpu_worker(id: &str) -> WorkerRow {
    WorkerRow {
        id: id.into(),
        host: "gpu-1".into(),
        device: "cuda:0".into(),
        memory_bytes: 1,
        slots: 2,
        version: "0.1.0".into(),
        registered_at: T0,
        last_seen_at: T0,
        running: 0,
        gpus: Vec::new(),
        drain: None,
    }
}

/// What `/metrics` reads at each scrape: trials by sweep and state, attempts by outcome, the
/// queue a worker may lease from, and whether every migration is applied.
async fn the_census_counts_trials_attempts_and_the_leasable_queue(ctx: Ctx) {
    let store = &*ctx.store;
    let schema = store.schema_status().await.expect("schema status");
    assert_eq!(schema.applied, schema.known, "a fresh database has every migration");
    assert_eq!(store.census().await.expect("census"), Census::default(), "nothing yet");
    insert(store, &new_sweep("s", 2, 2, 3, false), T0).await;
    assert!(store.register_worker(&gpu_worker("w"), "hash").await.expect("worker"));
    assert_eq!(store.lease("w", 2, T0, T0 + LEASE_MS).await.expect("lease").len(), 2);
    store.complete("w", "s-t0", 1, &completion(0.5, 0.5, None), T0 + 1).await.expect("complete");
    let census = store.census().await.expect("census");
    let states: Vec<(&str, TrialState, u64)> =
        census.trials.iter().map(|(sweep, _, state, n)| (sweep.as_str(), *state, *n)).collect();
    let mut expected =
        vec![("s", TrialState::Completed, 1), ("s", TrialState::Queued, 2), ("s", TrialState::Running, 1)];
    expected.sort_by_key(|(_, state, _)| state.as_str());
    assert_eq!(states, expected);
    assert_eq!(census.trials[0].1, "sweep s", "the sweep's name");
    let mut attempts = census.attempts.clone();
    attempts.sort_by_key(|(outcome, _)| outcome.as_str());
    assert_eq!(attempts, vec![(AttemptOutcome::Completed, 1), (AttemptOutcome::Running, 1)]);
    assert_eq!(census.leasable, 2);
    assert!(store.cancel_sweep("s", T0 + 2).await.expect("cancel"));
    assert_eq!(store.census().await.expect("census").leasable, 0, "a cancelled sweep's trials are not leasable");
}

async fn inserting_a_sweep_twice_writes_it_once(ctx: Ctx) {
    let store = &*ctx.store;
    let sweep = new_sweep("s1", 2, 3, 3, false);
    insert(store, &sweep, T0).await;

    let mut again = new_sweep("s1", 1, 1, 9, true);
    again.name = "another name".into();
    assert!(!store.insert_sweep(&again, T0 + 1).await.expect("insert again"));

    let row = store.sweep("s1").await.expect("sweep").expect("s1 exists");
    assert_eq!((row.name.as_str(), row.state, row.max_attempts), ("sweep s1", SweepState::Active, 3));
    assert_eq!((row.keep_checkpoints, row.created_at, row.spec_toml.as_str()), (false, T0, "name = \"x\"\n"));
    let trials = store.trials("s1").await.expect("trials");
    assert_eq!(trials.len(), 6);
    assert_eq!(store.trial("s1-t4").await.expect("trial").as_ref(), Some(&trials[4]), "one trial by id");
    assert_eq!(store.trial("nope").await.expect("trial"), None);
    for (i, t) in trials.iter().enumerate() {
        assert_eq!((t.ordinal, t.state, t.attempt, t.epoch, t.epochs), (i as u32, TrialState::Queued, 0, 0, 5));
        assert_eq!((t.id.clone(), t.seed, t.worker_id.clone()), (format!("s1-t{i}"), i as u64 % 3, None));
    }
    assert_eq!(trials[4].config_key, "s1-c1");
    assert_eq!(trials[4].params_json, "{\"loss.omega\": 7}");

    insert(store, &new_sweep("s2", 1, 1, 3, false), T0 + 5).await;
    let ids: Vec<String> = store.sweeps().await.expect("sweeps").into_iter().map(|s| s.id).collect();
    assert_eq!(ids, ["s2", "s1"], "newest first");
    assert_eq!(store.sweep("nope").await.expect("sweep"), None);
}

async fn concurrent_leases_hand_each_trial_out_once(ctx: Ctx) {
    insert(&*ctx.store, &new_sweep("s", 6, 4, 3, false), T0).await;
    let mut tasks = Vec::new();
    for w in 0..8 {
        let store = ctx.store.clone();
        tasks.push(tokio::spawn(async move {
            let worker = format!("w{w}");
            let mut got = Vec::new();
            loop {
                let leased = store.lease(&worker, 1, T0, T0 + LEASE_MS).await.expect("lease");
                if leased.is_empty() {
                    return got;
                }
                got.extend(leased.into_iter().map(|l| (worker.clone(), l)));
            }
        }));
    }
    let mut times: HashMap<String, u32> = HashMap::new();
    let mut holder = HashMap::new();
    for task in tasks {
        for (worker, l) in task.await.expect("leasing task") {
            assert_eq!(l.attempt, 1);
            *times.entry(l.trial_id.clone()).or_default() += 1;
            holder.insert(l.trial_id, worker);
        }
    }
    assert_eq!(times.len(), 24, "every trial leased");
    assert!(times.values().all(|&n| n == 1), "each trial leased once: {times:?}");
    for t in ctx.store.trials("s").await.expect("trials") {
        assert_eq!((t.state, t.attempt), (TrialState::Running, 1));
        assert_eq!(t.worker_id.as_ref(), holder.get(&t.id));
        assert_eq!(t.lease_expires_at, Some(T0 + LEASE_MS));
        let attempts = ctx.store.attempts(&t.id).await.expect("attempts");
        assert_eq!(attempts.len(), 1);
        assert_eq!((attempts[0].attempt, attempts[0].outcome.as_str(), attempts[0].started_at), (1, "running", T0));
        assert_eq!(Some(&attempts[0].worker_id), holder.get(&t.id));
    }
}

async fn leases_go_oldest_sweep_first_and_resume_from_checkpoints(ctx: Ctx) {
    let store = &*ctx.store;
    insert(store, &new_sweep("new", 1, 2, 3, false), T0 + 10).await;
    insert(store, &new_sweep("old", 1, 2, 3, false), T0).await;
    let leased = store.lease("w", 3, T0, T0 + LEASE_MS).await.expect("lease");
    let ids: Vec<&str> = leased.iter().map(|l| l.trial_id.as_str()).collect();
    assert_eq!(ids, ["old-t0", "old-t1", "new-t0"]);
    assert_eq!(leased[0].config_toml, "seed = 0\n[loss]\nomega = 6\n");
    assert_eq!((leased[0].sweep_id.as_str(), leased[0].checkpoint_epoch), ("old", None));

    store.record_checkpoint("w", &checkpoint("old-t0", 1, 3, "old-t0-e3.ckpt"), T0 + 1).await.expect("checkpoint");
    store.expire_leases(T0 + LEASE_MS + 1, None).await.expect("expire");
    let again = lease_one(store, "w2", T0 + LEASE_MS + 2).await;
    assert_eq!((again.trial_id.as_str(), again.attempt, again.checkpoint_epoch), ("old-t0", 2, Some(3)));
    assert_eq!(trial(store, "old", "old-t0").await.epoch, 3, "resumes at the checkpoint's epoch");
    let attempts = store.attempts("old-t0").await.expect("attempts");
    let seen: Vec<(u32, &str, Option<u32>)> =
        attempts.iter().map(|a| (a.attempt, a.outcome.as_str(), a.resumed_from_epoch)).collect();
    assert_eq!(seen, [(1, "expired", None), (2, "running", Some(3))]);
    assert_eq!(attempts[0].ended_at, Some(T0 + LEASE_MS + 1));
}

async fn writes_of_a_superseded_attempt_are_refused(ctx: Ctx) {
    let store = &*ctx.store;
    insert(store, &new_sweep("s", 1, 1, 5, false), T0).await;
    let first = lease_one(store, "w1", T0).await;
    store.expire_leases(T0 + LEASE_MS + 1, None).await.expect("expire");
    let second = lease_one(store, "w2", T0 + LEASE_MS + 2).await;
    assert_eq!((first.attempt, second.attempt), (1, 2));

    let point = [MetricPoint { epoch: 1, name: "train_loss".into(), value: 0.5 }];
    assert_superseded(store.record_metrics("w1", "s-t0", 1, &point).await, "metrics");
    assert_superseded(store.record_checkpoint("w1", &checkpoint("s-t0", 1, 1, "a"), T0).await, "checkpoint");
    assert_superseded(store.complete("w1", "s-t0", 1, &completion(0.5, 0.5, None), T0).await, "complete");
    assert_superseded(store.fail("w1", "s-t0", 1, "boom", TrialFault::Permanent, T0).await, "fail");
    assert_eq!(store.renew("w1", &[progress("s-t0", 1, 1)], T0 + LEASE_MS).await.expect("renew"), ["s-t0"]);
    assert!(store.metric_points("s-t0").await.expect("points").is_empty(), "nothing written");
    assert_eq!(store.checkpoint("s-t0").await.expect("checkpoint"), None);

    assert_eq!(store.record_metrics("w2", "s-t0", 2, &point).await.expect("metrics of attempt 2"), stored(1, 0));
    store.complete("w2", "s-t0", 2, &completion(0.5, 0.5, None), T0).await.expect("complete attempt 2");
    assert_superseded(store.record_metrics("w2", "s-t0", 2, &point).await, "metrics after completion");
    assert_superseded(store.fail("w2", "s-t0", 2, "late", TrialFault::Retry, T0).await, "fail after completion");
    assert!(matches!(store.record_metrics("w2", "missing", 1, &point).await, Err(StoreError::NotFound(_))));
}

async fn retransmitted_metrics_are_stored_once(ctx: Ctx) {
    let store = &*ctx.store;
    insert(store, &new_sweep("s", 1, 1, 3, false), T0).await;
    let l = lease_one(store, "w", T0).await;
    let p = |epoch, name: &str, value| MetricPoint { epoch, name: name.into(), value };
    let batch = [p(1, "train_loss", 0.9), p(1, "val_dice", 0.4), p(0, "train_loss", 1.2)];
    assert_eq!(store.record_metrics("w", "s-t0", l.attempt, &batch).await.expect("first"), stored(3, 0));
    assert_eq!(store.record_metrics("w", "s-t0", l.attempt, &batch).await.expect("again"), stored(0, 3));
    let mixed = [p(1, "train_loss", 123.0), p(2, "train_loss", 0.7)];
    assert_eq!(store.record_metrics("w", "s-t0", l.attempt, &mixed).await.expect("mixed"), stored(1, 1));
    let points = store.metric_points("s-t0").await.expect("points");
    let expected = [p(0, "train_loss", 1.2), p(1, "train_loss", 0.9), p(1, "val_dice", 0.4), p(2, "train_loss", 0.7)];
    assert_eq!(points, expected, "by epoch then name, first value kept");
    // One batch naming a point twice stores it once (the rows go in as one statement).
    let twice = [p(3, "train_loss", 0.5), p(3, "train_loss", 0.6)];
    assert_eq!(store.record_metrics("w", "s-t0", l.attempt, &twice).await.expect("twice"), stored(1, 1));
    // A batch past one statement's rows goes in as several.
    let many: Vec<MetricPoint> = (0..2500).map(|i| p(4, &format!("custom.m{i}"), f64::from(i))).collect();
    assert_eq!(store.record_metrics("w", "s-t0", l.attempt, &many).await.expect("many"), stored(2500, 0));
    assert_eq!(store.metric_points("s-t0").await.expect("points").len(), 4 + 1 + 2500);
}

async fn expired_leases_requeue_then_fail_after_max_attempts(ctx: Ctx) {
    let store = &*ctx.store;
    insert(store, &new_sweep("s", 1, 1, 2, false), T0).await;
    lease_one(store, "w1", T0).await;
    assert!(store.expire_leases(T0 + LEASE_MS - 1, None).await.expect("expire early").is_empty(), "lease still holds");
    assert_eq!(
        store.renew("w1", &[progress("s-t0", 1, 2)], T0 + 2 * LEASE_MS).await.expect("renew"),
        [] as [String; 0]
    );
    assert!(store.expire_leases(T0 + LEASE_MS + 1, None).await.expect("expire").is_empty(), "renewed lease holds");
    let t = trial(store, "s", "s-t0").await;
    assert_eq!((t.lease_expires_at, t.epoch), (Some(T0 + 2 * LEASE_MS), 2));

    let later = T0 + 2 * LEASE_MS + 1;
    assert_eq!(store.expire_leases(later, None).await.expect("expire"), [expired("s-t0", 1, Requeue::Queued)]);
    let t = trial(store, "s", "s-t0").await;
    assert_eq!((t.state, t.worker_id, t.lease_expires_at), (TrialState::Queued, None, None));

    lease_one(store, "w2", later).await;
    let end = later + LEASE_MS + 1;
    assert_eq!(store.expire_leases(end, None).await.expect("expire"), [expired("s-t0", 2, Requeue::Failed)]);
    let t = trial(store, "s", "s-t0").await;
    assert_eq!(t.state, TrialState::Failed);
    assert!(t.error.as_deref().is_some_and(|e| e.contains("expired")), "error names the expiry: {:?}", t.error);
    assert!(store.lease("w3", 1, end, end + LEASE_MS).await.expect("lease").is_empty());
    assert_eq!(sweep_state(store, "s").await, SweepState::Finished);
}

async fn released_trials_are_requeued_at_once(ctx: Ctx) {
    let store = &*ctx.store;
    insert(store, &new_sweep("s", 1, 2, 2, false), T0).await;
    let leased = store.lease("w", 2, T0, T0 + LEASE_MS).await.expect("lease");
    assert_eq!(leased.len(), 2);
    store.release("w", &[attempt_ref("s-t0", 1), attempt_ref("s-t1", 7)], T0 + 5).await.expect("release");
    assert_eq!(trial(store, "s", "s-t0").await.state, TrialState::Queued);
    assert_eq!(trial(store, "s", "s-t1").await.state, TrialState::Running, "a wrong attempt releases nothing");
    let a = store.attempts("s-t0").await.expect("attempts");
    assert_eq!((a[0].outcome.as_str(), a[0].ended_at), ("released", Some(T0 + 5)));

    let again = lease_one(store, "w2", T0 + 6).await;
    assert_eq!((again.trial_id.as_str(), again.attempt), ("s-t0", 2));
    // A release is not a failure: with max_attempts 2, one failure still requeues.
    assert_eq!(
        store.fail("w2", "s-t0", 2, "out of memory", TrialFault::Retry, T0 + 7).await.expect("fail"),
        Requeue::Queued
    );
}

async fn completion_stores_results_roc_and_drops_the_checkpoint(ctx: Ctx) {
    let store = &*ctx.store;
    insert(store, &new_sweep("s", 1, 1, 3, false), T0).await;
    insert(store, &new_sweep("keep", 1, 1, 3, true), T0 + 1).await;
    let l = lease_one(store, "w", T0).await;
    assert_eq!(store.record_checkpoint("w", &checkpoint("s-t0", 1, 1, "a.ckpt"), T0).await.expect("ckpt"), None);
    let replaced = store.record_checkpoint("w", &checkpoint("s-t0", 1, 2, "b.ckpt"), T0).await.expect("ckpt");
    assert_eq!(replaced.as_deref(), Some("a.ckpt"));
    assert_eq!(store.record_checkpoint("w", &checkpoint("s-t0", 1, 2, "b.ckpt"), T0).await.expect("same file"), None);
    assert_eq!(store.checkpoint("s-t0").await.expect("ckpt"), Some(checkpoint("s-t0", 1, 2, "b.ckpt")));

    let done = completion(0.61, 0.7, Some(0.93));
    let delete = store.complete("w", "s-t0", l.attempt, &done, T0 + 9).await.expect("complete");
    assert_eq!(delete.as_deref(), Some("b.ckpt"));
    assert_eq!(store.checkpoint("s-t0").await.expect("ckpt"), None);
    let results = store.results("s").await.expect("results");
    assert_eq!(results.len(), 1);
    assert_eq!((results[0].trial_id.as_str(), results[0].seed, results[0].split.as_str()), ("s-t0", 0, "test"));
    assert_eq!((results[0].label.as_str(), results[0].config_key.as_str()), ("loss.omega=6 seed=0", "s-c0"));
    assert_eq!(results[0].metrics, done.metrics, "the pooled and the Keras-style metrics come back");
    assert_eq!(results[0].selected_epoch, Some(4), "and the epoch whose weights were tested");
    assert_eq!(store.roc("s-t0").await.expect("roc"), done.roc);
    let t = trial(store, "s", "s-t0").await;
    assert_eq!((t.state, t.epoch, t.lease_expires_at), (TrialState::Completed, 5, None));
    assert_eq!(store.attempts("s-t0").await.expect("attempts")[0].outcome, AttemptOutcome::Completed);

    let k = lease_one(store, "w", T0 + 10).await;
    store.record_checkpoint("w", &checkpoint("keep-t0", k.attempt, 5, "k.ckpt"), T0).await.expect("ckpt");
    // An ROC curve longer than one statement's rows comes back whole and in order.
    let mut long = done.clone();
    long.roc = (0..2500)
        .map(|i| {
            let x = f64::from(i) / 2500.0;
            RocPoint { threshold: 1.0 - x, fpr: x, tpr: x.sqrt() }
        })
        .collect();
    assert_eq!(store.complete("w", "keep-t0", k.attempt, &long, T0 + 11).await.expect("complete"), None);
    assert_eq!(store.roc("keep-t0").await.expect("roc"), long.roc);
    assert_eq!(store.checkpoint("keep-t0").await.expect("ckpt").map(|c| c.file), Some("k.ckpt".into()));
}

async fn failures_fail_for_good_or_requeue(ctx: Ctx) {
    let store = &*ctx.store;
    insert(store, &new_sweep("s", 1, 2, 3, false), T0).await;
    let leased = store.lease("w", 2, T0, T0 + LEASE_MS).await.expect("lease");
    assert_eq!(leased.len(), 2);
    let r =
        store.fail("w", "s-t0", 1, "loss diverged: NaN at epoch 3", TrialFault::Permanent, T0 + 1).await.expect("fail");
    assert_eq!(r, Requeue::Failed);
    let t = trial(store, "s", "s-t0").await;
    assert_eq!((t.state, t.error.as_deref()), (TrialState::Failed, Some("loss diverged: NaN at epoch 3")));

    let r = store.fail("w", "s-t1", 1, "CUDA out of memory", TrialFault::Retry, T0 + 2).await.expect("fail");
    assert_eq!(r, Requeue::Queued);
    let t = trial(store, "s", "s-t1").await;
    assert_eq!((t.state, t.worker_id), (TrialState::Queued, None));
    let a = store.attempts("s-t1").await.expect("attempts");
    assert_eq!((a[0].outcome.as_str(), a[0].error.as_deref()), ("failed", Some("CUDA out of memory")));
    assert_eq!(sweep_state(store, "s").await, SweepState::Active);
}

async fn cancelling_stops_running_and_queued_trials(ctx: Ctx) {
    let store = &*ctx.store;
    insert(store, &new_sweep("s", 2, 2, 3, false), T0).await;
    insert(store, &new_sweep("other", 1, 1, 3, false), T0 + 1).await;
    let leased = store.lease("w", 2, T0, T0 + LEASE_MS).await.expect("lease");
    assert_eq!(leased.len(), 2);
    assert!(store.cancel_sweep("s", T0 + 5).await.expect("cancel"));
    assert!(!store.cancel_sweep("missing", T0 + 5).await.expect("cancel"));
    assert_eq!(sweep_state(store, "s").await, SweepState::Cancelled);
    assert!(store.trials("s").await.expect("trials").iter().all(|t| t.state == TrialState::Cancelled));

    let running: Vec<Progress> = leased.iter().map(|l| progress(&l.trial_id, l.attempt, 1)).collect();
    let mut stop = store.renew("w", &running, T0 + LEASE_MS).await.expect("renew");
    stop.sort();
    assert_eq!(stop, ["s-t0", "s-t1"], "the worker is told to stop both");
    assert_eq!(store.attempts("s-t0").await.expect("attempts")[0].outcome, AttemptOutcome::Cancelled);
    let point = [MetricPoint { epoch: 1, name: "train_loss".into(), value: 0.5 }];
    assert_superseded(store.record_metrics("w", "s-t0", 1, &point).await, "metrics after cancel");

    let next = store.lease("w", 10, T0 + 7, T0 + LEASE_MS).await.expect("lease");
    let ids: Vec<&str> = next.iter().map(|l| l.trial_id.as_str()).collect();
    assert_eq!(ids, ["other-t0"], "nothing of the cancelled sweep");
}

async fn a_sweep_finishes_when_every_trial_settles(ctx: Ctx) {
    let store = &*ctx.store;
    insert(store, &new_sweep("s", 1, 2, 3, false), T0).await;
    store.lease("w", 2, T0, T0 + LEASE_MS).await.expect("lease");
    store.complete("w", "s-t0", 1, &completion(0.5, 0.5, None), T0 + 1).await.expect("complete");
    assert_eq!(sweep_state(store, "s").await, SweepState::Active);
    store.fail("w", "s-t1", 1, "bad config", TrialFault::Permanent, T0 + 2).await.expect("fail");
    assert_eq!(sweep_state(store, "s").await, SweepState::Finished);
    assert_eq!(store.sweeps().await.expect("sweeps")[0].state, SweepState::Finished);
}

/// A lease last renewed before the coordinator or its database came back expires with the
/// cause `outage` and costs no attempt; one renewed after it expires with the cause `worker`
/// and does. With one attempt allowed, only the second fails the trial.
async fn an_expiry_after_an_outage_does_not_use_up_an_attempt(ctx: Ctx) {
    let store = &*ctx.store;
    insert(store, &new_sweep("s", 1, 1, 1, false), T0).await;
    lease_one(store, "w", T0).await;
    // The coordinator came back at T0 + 10: the lease, renewed at T0, expires before T0 + 10 + LEASE_MS.
    let outage = Some(T0 + 10 + LEASE_MS);
    let first = store.expire_leases(T0 + LEASE_MS + 1, outage).await.expect("expire");
    assert_eq!(first, [expired("s-t0", 1, Requeue::Queued)], "not counted: queued again");
    let l = lease_one(store, "w", T0 + LEASE_MS + 20).await;
    let second = store.expire_leases(T0 + 2 * LEASE_MS + 30, outage).await.expect("expire");
    assert_eq!(second, [expired("s-t0", l.attempt, Requeue::Failed)], "renewed after the outage: counted");
    let attempts = store.attempts("s-t0").await.expect("attempts");
    let causes: Vec<_> = attempts.iter().map(|a| (a.outcome, a.cause.as_deref())).collect();
    assert_eq!(causes, [(AttemptOutcome::Expired, Some("outage")), (AttemptOutcome::Expired, Some("worker"))]);
    assert!(attempts[0].error.as_deref().unwrap_or_default().contains("not counted"), "{:?}", attempts[0].error);
    assert_eq!(trial(store, "s", "s-t0").await.state, TrialState::Failed);
}

/// The last trials of a sweep settled at once, by several workers: each settling write
/// finishes the sweep after its own commit, so the last commit sees every trial settled and
/// no finish is lost (had the check run inside the transactions, each would see the others'
/// trials still running).
async fn concurrent_settlements_finish_the_sweep(ctx: Ctx) {
    for round in 0..20 {
        let id = format!("r{round}");
        insert(&*ctx.store, &new_sweep(&id, 2, 4, 3, false), T0).await;
        let mut leased = Vec::new();
        for w in 0..8 {
            leased.push((format!("w{w}"), lease_one(&*ctx.store, &format!("w{w}"), T0).await));
        }
        let mut settling = Vec::new();
        for (i, (worker, l)) in leased.into_iter().enumerate() {
            let store = ctx.store.clone();
            settling.push(tokio::spawn(async move {
                if i % 3 == 2 {
                    store.fail(&worker, &l.trial_id, l.attempt, "bad", TrialFault::Permanent, T0 + 1).await.map(|_| ())
                } else {
                    store
                        .complete(&worker, &l.trial_id, l.attempt, &completion(0.5, 0.5, None), T0 + 1)
                        .await
                        .map(|_| ())
                }
            }));
        }
        for task in settling {
            task.await.expect("settling task").expect("a settling write");
        }
        assert_eq!(sweep_state(&*ctx.store, &id).await, SweepState::Finished, "round {round}");
    }
}

/// A cancel while the holders complete: no deadlock (a completion locks only its trial), and
/// every trial ends completed or cancelled, the sweep cancelled.
async fn a_cancel_racing_completions_settles_every_trial_once(ctx: Ctx) {
    for round in 0..20 {
        let id = format!("c{round}");
        insert(&*ctx.store, &new_sweep(&id, 2, 4, 3, false), T0).await;
        let mut completing = Vec::new();
        for w in 0..8 {
            let l = lease_one(&*ctx.store, &format!("w{w}"), T0).await;
            let store = ctx.store.clone();
            completing.push(tokio::spawn(async move {
                let done = completion(0.5, 0.5, None);
                store.complete(&format!("w{w}"), &l.trial_id, l.attempt, &done, T0 + 1).await.is_ok()
            }));
        }
        for _ in 0..round % 5 {
            tokio::task::yield_now().await;
        }
        let cancel = tokio::time::timeout(std::time::Duration::from_secs(30), ctx.store.cancel_sweep(&id, T0 + 2));
        assert!(cancel.await.expect("no deadlock").expect("cancel"));
        let mut completed = 0;
        for task in completing {
            completed += u32::from(task.await.expect("completing task"));
        }
        let trials = ctx.store.trials(&id).await.expect("trials");
        let done = trials.iter().filter(|t| t.state == TrialState::Completed).count() as u32;
        assert_eq!(done, completed, "round {round}: acknowledged completions are the completed trials");
        assert!(trials.iter().all(|t| matches!(t.state, TrialState::Completed | TrialState::Cancelled)));
        let expected = if done == 8 { SweepState::Finished } else { SweepState::Cancelled };
        assert_eq!(sweep_state(&*ctx.store, &id).await, expected, "round {round}");
    }
}

/// A coordinator killed between a settling commit and the finish after it leaves an active
/// sweep with every trial settled: the expiry tick finishes it.
async fn the_expiry_tick_finishes_a_sweep_whose_finish_was_lost(ctx: Ctx) {
    let store = &*ctx.store;
    insert(store, &new_sweep("s", 1, 2, 3, false), T0).await;
    insert(store, &new_sweep("busy", 1, 1, 3, false), T0).await;
    let mut c = sqlx::AnyConnection::connect(&ctx.url).await.expect("connect");
    sqlx::query("UPDATE trials SET state = 'completed' WHERE sweep_id = 's'").execute(&mut c).await.expect("settle");
    assert_eq!(sweep_state(store, "s").await, SweepState::Active);
    assert!(store.expire_leases(T0 + 5, None).await.expect("expiry tick").is_empty());
    assert_eq!(sweep_state(store, "s").await, SweepState::Finished);
    let finished_at =
        sqlx::query("SELECT finished_at FROM sweeps WHERE id = 's'").fetch_one(&mut c).await.expect("read");
    assert_eq!(finished_at.int("finished_at").expect("finished_at"), T0 + 5);
    assert_eq!(sweep_state(store, "busy").await, SweepState::Active, "a sweep with a queued trial stays active");
}

async fn workers_are_registered_and_counted(ctx: Ctx) {
    let store = &*ctx.store;
    let mut w = WorkerRow {
        id: "w1".into(),
        host: "gpu01".into(),
        device: "cuda:0".into(),
        memory_bytes: 80 << 30,
        slots: 2,
        version: "0.1.0".into(),
        registered_at: T0,
        last_seen_at: T0,
        running: 0,
        gpus: vec![GpuStatus {
            index: 0,
            name: "NVIDIA H200".into(),
            memory_total_bytes: 150 << 30,
            ..Default::default()
        }],
        drain: None,
    };
    assert!(store.register_worker(&w, "hash-1").await.expect("register"));
    insert(store, &new_sweep("s", 1, 3, 3, false), T0).await;
    store.lease("w1", 2, T0, T0 + LEASE_MS).await.expect("lease");
    let touched = store.touch_worker("w1", T0 + 50).await.expect("touch");
    assert_eq!(touched, Some(Touched { slots: 2, drain: None }), "its registered slots, not draining");
    assert_eq!(store.touch_worker("nobody", T0 + 50).await.expect("touch"), None);
    (w.slots, w.registered_at, w.last_seen_at) = (4, T0 + 100, T0 + 100);
    assert!(store.register_worker(&w, "hash-1").await.expect("re-register with its key"));
    assert!(!store
        .register_worker(&WorkerRow { host: "thief".into(), ..w.clone() }, "hash-2")
        .await
        .expect("another key"));
    assert_eq!(store.worker_key_hash("w1").await.expect("key"), Some("hash-1".into()));
    assert_eq!(store.worker_key_hash("nobody").await.expect("key"), None);
    let workers = store.workers().await.expect("workers");
    assert_eq!(workers.len(), 1);
    let expected = WorkerRow { registered_at: T0, running: 2, ..w.clone() };
    assert_eq!(workers[0], expected, "re-registration keeps the first registration time");
    // A heartbeat's GPU figures replace the registered ones.
    let now = GpuStatus { memory_used_bytes: 20 << 30, utilization_percent: 93, trials: 2, ..w.gpus[0].clone() };
    store.record_gpus("w1", std::slice::from_ref(&now)).await.expect("record GPUs");
    assert_eq!(store.workers().await.expect("workers")[0].gpus, vec![now]);
}

async fn a_drain_is_kept_and_now_is_never_softened(ctx: Ctx) {
    let store = &*ctx.store;
    let w = gpu_worker("w1");
    assert!(store.register_worker(&w, "hash-1").await.expect("register"));
    assert_eq!(store.drain_worker("nobody", Drain::Finish).await.expect("drain"), None, "an unknown worker");
    let drained = store.drain_worker("w1", Drain::Finish).await.expect("drain").expect("a known worker");
    assert_eq!((drained.id.as_str(), drained.drain), ("w1", Some(Drain::Finish)), "the worker as it now stands");
    let touched = store.touch_worker("w1", T0 + 1).await.expect("touch");
    assert_eq!(touched.map(|t| t.drain), Some(Some(Drain::Finish)));
    assert!(store.drain_worker("w1", Drain::Now).await.expect("drain now").is_some());
    let again = store.drain_worker("w1", Drain::Finish).await.expect("drain again").expect("a known worker");
    assert_eq!(again.drain, Some(Drain::Now), "what the reply says is what is stored");
    assert_eq!(store.workers().await.expect("workers")[0].drain, Some(Drain::Now), "a release under way stays");
    // Registering again (a reconnect) keeps the drain: the worker still leaves.
    assert!(store.register_worker(&w, "hash-1").await.expect("re-register"));
    assert_eq!(store.touch_worker("w1", T0 + 2).await.expect("touch").and_then(|t| t.drain), Some(Drain::Now));
}

/// Sets trial `id`'s memory estimate and shape in a new sweep.
fn with_memory(mut sweep: NewSweep, memory: &[(u64, &str)]) -> NewSweep {
    for (t, (gib, shape)) in sweep.trials.iter_mut().zip(memory) {
        t.memory = MemoryEstimate { bytes: gib << 30, shape: (*shape).to_string() };
    }
    sweep
}

async fn memory_aware_leases_take_only_trials_that_fit_together(ctx: Ctx) {
    let store = &*ctx.store;
    let sweep = with_memory(new_sweep("s", 1, 4, 3, false), &[(6, "a"), (3, "b"), (2, "c"), (1, "d")]);
    insert(store, &sweep, T0).await;
    let lease = |fit_gib: u64| async move {
        let fit = MemoryFit::from_request(fit_gib << 30);
        let leased = store.lease_fitting("w", 10, fit, T0, T0 + LEASE_MS).await.expect("lease");
        leased.into_iter().map(|l| (l.trial_id, l.memory_bytes >> 30)).collect::<Vec<_>>()
    };
    // 6 GiB does not fit 4 and is passed over; 3 does; 3 + 2 would not.
    assert_eq!(lease(4).await, vec![("s-t1".to_string(), 3)]);
    assert_eq!(lease(3).await, vec![("s-t2".to_string(), 2), ("s-t3".to_string(), 1)], "2 + 1 fit 3 together");
    assert!(lease(5).await.is_empty(), "the 6 GiB trial waits for a worker with room");
    let slots_only = store.lease("w", 10, T0, T0 + LEASE_MS).await.expect("lease");
    assert_eq!(slots_only.len(), 1, "a worker that sends no memory leases by slots alone");
}

/// One row of `config_summary`, read with SQL as a dashboard would.
#[derive(Debug, PartialEq)]
struct Summary {
    config_key: String,
    omega: Option<f64>,
    params_json: String,
    n: i64,
    mean_jaccard: f64,
    std_jaccard: Option<f64>,
    std_dice: Option<f64>,
    mean_recall: f64,
    std_recall: Option<f64>,
    mean_auc: Option<f64>,
    std_auc: Option<f64>,
}

fn summary(r: &impl Cols) -> Result<Summary> {
    Ok(Summary {
        config_key: r.text("config_key")?,
        omega: r.real_opt("omega")?,
        params_json: r.text("params_json")?,
        n: r.int("n")?,
        mean_jaccard: r.real("mean_jaccard")?,
        std_jaccard: r.real_opt("std_jaccard")?,
        std_dice: r.real_opt("std_dice")?,
        mean_recall: r.real("mean_recall")?,
        std_recall: r.real_opt("std_recall")?,
        mean_auc: r.real_opt("mean_auc")?,
        std_auc: r.real_opt("std_auc")?,
    })
}

/// A row of `trial_results`: (trial, state, omega, jaccard, auc).
type ViewTrial = (String, String, Option<f64>, Option<f64>, Option<f64>);

/// `trial_results` and `config_summary` of sweep `s`, read with SQL.
async fn read_views(url: &str) -> (Vec<ViewTrial>, Vec<Summary>) {
    const TRIALS: &str = "SELECT trial_id, state, omega, jaccard, auc, sweep_name, dataset, seed \
                          FROM trial_results WHERE sweep_id = 's' ORDER BY ordinal";
    const SUMMARY: &str = "SELECT * FROM config_summary WHERE sweep_id = 's' ORDER BY config_key";
    fn trial_row(r: &impl Cols) -> Result<ViewTrial> {
        assert_eq!((r.text("sweep_name")?, r.text("dataset")?), ("sweep s".into(), "synthetic".into()));
        Ok((r.text("trial_id")?, r.text("state")?, r.real_opt("omega")?, r.real_opt("jaccard")?, r.real_opt("auc")?))
    }
    let read = async {
        let mut c = sqlx::AnyConnection::connect(url).await?;
        let t = sqlx::query(TRIALS).fetch_all(&mut c).await?.iter().map(trial_row).collect::<Result<_>>()?;
        let s = sqlx::query(SUMMARY).fetch_all(&mut c).await?.iter().map(summary).collect::<Result<_>>()?;
        Ok::<_, StoreError>((t, s))
    };
    read.await.expect("read the dashboard views")
}

fn assert_close(actual: Option<f64>, expected: Option<f64>, what: &str) {
    match (actual, expected) {
        (Some(a), Some(e)) => assert!((a - e).abs() < 1e-12, "{what}: {a} != {e}"),
        _ => assert_eq!(actual, expected, "{what}"),
    }
}

async fn dashboard_views_flatten_trials_and_summarise_configs(ctx: Ctx) {
    let store = &*ctx.store;
    // Config 0 (omega 6): three seeds complete. Config 1 (omega 7): one completes, one fails,
    // one is still queued.
    insert(store, &new_sweep("s", 2, 3, 3, false), T0).await;
    let leased = store.lease("w", 5, T0, T0 + LEASE_MS).await.expect("lease");
    assert_eq!(leased.len(), 5);
    let done = [(0.5, 0.1, None), (0.6, 0.2, Some(0.9)), (0.7, 0.4, Some(0.8))];
    for (i, (jaccard, recall, auc)) in done.into_iter().enumerate() {
        let c = completion(jaccard, recall, auc);
        store.complete("w", &format!("s-t{i}"), 1, &c, T0 + 1).await.expect("complete");
    }
    store.complete("w", "s-t3", 1, &completion(0.3, 0.5, Some(0.7)), T0 + 1).await.expect("complete");
    store.fail("w", "s-t4", 1, "diverged", TrialFault::Permanent, T0 + 1).await.expect("fail");

    let (trials, summaries) = read_views(&ctx.url).await;
    let states: Vec<(&str, &str)> = trials.iter().map(|t| (t.0.as_str(), t.1.as_str())).collect();
    let expected = [
        ("s-t0", "completed"),
        ("s-t1", "completed"),
        ("s-t2", "completed"),
        ("s-t3", "completed"),
        ("s-t4", "failed"),
        ("s-t5", "queued"),
    ];
    assert_eq!(states, expected);
    assert_eq!((trials[1].2, trials[1].3, trials[1].4), (Some(6.0), Some(0.6), Some(0.9)));
    assert_eq!((trials[0].3, trials[0].4), (Some(0.5), None), "no AUC reported");
    assert_eq!((trials[4].2, trials[4].3, trials[5].3), (Some(7.0), None, None), "no metrics until completed");

    assert_eq!(summaries.len(), 2);
    let (a, b) = (&summaries[0], &summaries[1]);
    assert_eq!((a.config_key.as_str(), a.omega, a.n), ("s-c0", Some(6.0), 3));
    assert_eq!(a.params_json, "{\"loss.omega\": 6}");
    assert_close(Some(a.mean_jaccard), Some(0.6), "mean jaccard");
    assert_close(a.std_jaccard, Some(0.1), "std jaccard: deviations -0.1, 0, 0.1");
    assert_close(a.std_dice, Some(0.0), "std dice: all 0.8");
    // recall 0.1, 0.2, 0.4: mean 7/30; squared deviations sum to 0.14/3, over n - 1 = 2.
    assert_close(Some(a.mean_recall), Some(7.0 / 30.0), "mean recall");
    assert_close(a.std_recall, Some((0.14_f64 / 6.0).sqrt()), "std recall");
    // AUC over the two seeds that report one: 0.9 and 0.8.
    assert_close(a.mean_auc, Some(0.85), "mean auc");
    assert_close(a.std_auc, Some(0.005_f64.sqrt()), "std auc");
    assert_eq!((b.config_key.as_str(), b.omega, b.n), ("s-c1", Some(7.0), 1), "completed trials only");
    assert_close(Some(b.mean_jaccard), Some(0.3), "mean jaccard of one");
    assert_eq!((b.std_jaccard, b.std_recall, b.std_auc), (None, None, None), "no std with n < 2");
}

/// Opening a store again applies nothing twice and keeps what it holds.
#[tokio::test]
async fn sqlite_migrations_apply_once() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let url = format!("sqlite://{}", dir.path().join("again.db").display());
    let store = SqlStore::open(&url).await.expect("open");
    insert(&store, &new_sweep("s", 1, 1, 3, false), T0).await;
    drop(store);
    let store = SqlStore::open(&url).await.expect("open again");
    assert_eq!(store.trials("s").await.expect("trials").len(), 1);
    let mut c = sqlx::AnyConnection::connect(&url).await.expect("connect");
    let n = sqlx::query("SELECT count(*) AS n FROM schema_version").fetch_one(&mut c).await.expect("count");
    assert_eq!(n.int("n").expect("n"), Dialect::Sqlite.migrations().len() as i64, "each migration once");
}

/// A database made before early stopping (schema 6) keeps every row when migration 7
/// rebuilds its trials table, and every row that names a trial still finds it.
#[tokio::test]
async fn sqlite_rebuilding_the_trials_table_keeps_every_row_and_reference() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("old.db").display());
    sqlx::any::install_default_drivers();
    let mut c = sqlx::AnyConnection::connect(&url).await.expect("connect");
    sqlx::raw_sql("PRAGMA foreign_keys = ON").execute(&mut c).await.expect("foreign keys");
    sqlx::raw_sql(super::statements::SCHEMA_VERSION_TABLE).execute(&mut c).await.expect("schema_version");
    for &(version, name, text) in &Dialect::Sqlite.migrations()[..6] {
        sqlx::raw_sql(text).execute(&mut c).await.expect(name);
        let record = sqlx::query(super::statements::RECORD_MIGRATION).bind(version).bind(name).bind(T0);
        record.execute(&mut c).await.expect("record");
    }
    let rows = "INSERT INTO sweeps (id, name, spec_toml, keep_checkpoints, max_attempts, created_at) \
        VALUES ('s', 'old', 'name = \"old\"', 0, 3, 1); \
        INSERT INTO trials (id, sweep_id, ordinal, label, params_json, config_key, config_toml, seed, dataset, \
        arch, width, loss, lr, batch_size, state, attempt, epoch, epochs, created_at, memory_bytes, memory_shape) \
        VALUES ('s-t0', 's', 0, 'seed=0', '{}', 's-c0', 'seed = 0', 0, 'drive', 'unet', 32, 'dice', 0.001, 4, \
        'completed', 1, 2, 2, 1, 4096, 'shape'); \
        INSERT INTO attempts (trial_id, attempt, worker_id, started_at, outcome) VALUES ('s-t0', 1, 'w', 1, 'completed'); \
        INSERT INTO metrics (trial_id, epoch, name, value, attempt) VALUES ('s-t0', 1, 'dice', 0.5, 1), ('s-t0', 2, 'dice', 0.6, 1);";
    sqlx::raw_sql(rows).execute(&mut c).await.expect("rows of schema 6");
    c.close().await.expect("disconnect");

    let store = SqlStore::open(&url).await.expect("open: migration 7 rebuilds trials");
    let t = store.trial("s-t0").await.expect("trial").expect("kept");
    assert_eq!(
        (t.state, t.epochs, t.memory_bytes, t.hold, t.stopped_epoch),
        (TrialState::Completed, 2, 4096, None, None)
    );
    assert_eq!(store.attempts("s-t0").await.expect("attempts").len(), 1);
    assert_eq!(store.metric_points("s-t0").await.expect("metrics").len(), 2);
    let mut c = sqlx::AnyConnection::connect(&url).await.expect("connect");
    sqlx::raw_sql("PRAGMA foreign_keys = ON").execute(&mut c).await.expect("foreign keys");
    let orphan = "INSERT INTO metrics (trial_id, epoch, name, value, attempt) VALUES ('nobody', 1, 'dice', 0.5, 1)";
    assert!(sqlx::raw_sql(orphan).execute(&mut c).await.is_err(), "references to trials are enforced again");
    sqlx::raw_sql("DELETE FROM sweeps WHERE id = 's'").execute(&mut c).await.expect("delete");
    let n = sqlx::query("SELECT count(*) AS n FROM metrics").fetch_one(&mut c).await.expect("count");
    assert_eq!(n.int("n").expect("n"), 0, "deleting a sweep still cascades to its trials' rows");
}

#[tokio::test]
async fn sqlite_in_memory_works() {
    let store = open("sqlite::memory:").await.expect("open in memory");
    insert(&*store, &new_sweep("s", 1, 2, 3, false), T0).await;
    assert_eq!(store.lease("w", 5, T0, T0 + LEASE_MS).await.expect("lease").len(), 2);
    assert!(matches!(open("mysql://x").await, Err(StoreError::Url(_))));
}

/// Two coordinators starting together on one fresh Postgres database migrate it once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_concurrent_opens_migrate_once() {
    let db = ThrowawayPostgres::create().await;
    let url = db.url().to_string();
    let (a, b) = tokio::join!(SqlStore::open(&url), SqlStore::open(&url));
    a.expect("first open");
    b.expect("second open");
    let mut c = sqlx::AnyConnection::connect(&url).await.expect("connect");
    let n = sqlx::query("SELECT count(*) AS n FROM schema_version").fetch_one(&mut c).await.expect("count");
    assert_eq!(n.int("n").expect("n"), Dialect::Postgres.migrations().len() as i64, "each migration once");
    c.close().await.expect("disconnect");
    db.drop_now().await.expect("drop the test database");
}

/// Runs one of `migrations/queries/*.sql`, rows decoded by `decode`.
async fn example_query<T>(url: &str, sql: &str, bind: Option<&str>, decode: fn(&dyn Cols) -> Result<T>) -> Vec<T> {
    let read = async {
        let mut c = sqlx::AnyConnection::connect(url).await?;
        let mut q = sqlx::query(sql);
        if let Some(b) = bind {
            q = q.bind(b.to_string());
        }
        q.fetch_all(&mut c).await?.iter().map(|r| decode(r)).collect::<Result<Vec<T>>>()
    };
    read.await.unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// The example queries of the README (`migrations/queries/`), on a database with two
/// configs, metrics curves and a worker.
async fn dashboard_example_queries_answer_the_common_questions(ctx: Ctx) {
    let store = &*ctx.store;
    insert(store, &new_sweep("s", 2, 3, 3, false), T0).await;
    assert!(store.register_worker(&gpu_worker("w"), "hash").await.expect("worker"));
    assert_eq!(store.lease("w", 5, T0, T0 + LEASE_MS).await.expect("lease").len(), 5);
    for epoch in 1..=2 {
        let points: Vec<MetricPoint> = [
            ("train_loss", 1.0 / epoch as f64),
            ("validation_loss", 1.1 / epoch as f64),
            ("jaccard", 0.3 * epoch as f64),
            ("dice", 0.4 * epoch as f64),
        ]
        .into_iter()
        .map(|(name, value)| MetricPoint { epoch, name: name.into(), value })
        .collect();
        store.record_metrics("w", "s-t0", 1, &points).await.expect("metrics");
    }
    for (i, jaccard) in [0.5, 0.6, 0.7, 0.3].into_iter().enumerate() {
        store
            .complete("w", &format!("s-t{i}"), 1, &completion(jaccard, 0.5, Some(0.9)), T0 + 2_000)
            .await
            .expect("complete");
    }
    store.fail("w", "s-t4", 1, "diverged", TrialFault::Permanent, T0 + 3_000).await.expect("fail");
    let url = &ctx.url;

    let best = example_query(url, include_str!("../../../migrations/queries/best_config_per_sweep.sql"), None, |r| {
        Ok((r.text("sweep_id")?, r.int("n")?, r.real("mean_jaccard")?, r.real_opt("std_jaccard")?))
    })
    .await;
    assert_eq!(best.len(), 1);
    assert_eq!((best[0].0.as_str(), best[0].1), ("s", 3), "omega 6, three seeds");
    assert_close(Some(best[0].2), Some(0.6), "best mean");
    assert_close(best[0].3, Some(0.1), "its spread");

    let ranking =
        example_query(url, include_str!("../../../migrations/queries/loss_ranking_per_dataset.sql"), None, |r| {
            Ok((r.text("dataset")?, r.text("loss")?, r.int("trials")?, r.real("mean_jaccard")?))
        })
        .await;
    assert_eq!(ranking.len(), 1);
    assert_eq!((ranking[0].0.as_str(), ranking[0].1.as_str(), ranking[0].2), ("synthetic", "all", 4));
    assert_close(Some(ranking[0].3), Some(0.525), "mean over the four completed trials");

    let curves = example_query(url, include_str!("../../../migrations/queries/trial_curves.sql"), Some("s-t0"), |r| {
        Ok((r.int("epoch")?, r.real_opt("train_loss")?, r.real_opt("jaccard")?))
    })
    .await;
    assert_eq!(curves.len(), 2);
    assert_eq!(curves[1].0, 2);
    assert_close(curves[1].1, Some(0.5), "train loss at epoch 2");
    assert_close(curves[1].2, Some(0.6), "Jaccard at epoch 2");

    let workers = example_query(url, include_str!("../../../migrations/queries/worker_utilisation.sql"), None, |r| {
        Ok((
            r.text("worker_id")?,
            r.int("attempts")?,
            r.int("completed")?,
            r.int("lost_or_failed")?,
            r.real("busy_seconds")?,
        ))
    })
    .await;
    assert_eq!(workers.len(), 1);
    let (id, attempts, completed, lost, busy) = &workers[0];
    assert_eq!((id.as_str(), *attempts, *completed, *lost), ("w", 5, 4, 1));
    assert!(*busy > 0.0, "busy {busy}");

    // The Grafana dashboard's SQL panels (deploy/grafana/) run here too, and answer.
    let dashboard: serde_json::Value =
        serde_json::from_str(include_str!("../../../deploy/grafana/allsweep-dashboard.json")).expect("dashboard JSON");
    let mut ran = 0;
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            let Some(sql) = target["rawSql"].as_str() else { continue };
            let rows = example_query(url, sql, None, |r| {
                r.text("worker_id").or_else(|_| r.text("sweep_id")).or_else(|_| r.text("loss"))
            })
            .await;
            assert!(!rows.is_empty(), "{}: no rows", panel["title"]);
            ran += 1;
        }
    }
    assert_eq!(ran, 3, "best configs, loss ranking, workers");
}

/// The trial's state and its last attempt's outcome after `transition`, as the scheduler's
/// table says.
async fn assert_after(
    store: &dyn Store,
    trial_id: &str,
    transition: crate::scheduler::Transition,
    state: TrialState,
    last_outcome: AttemptOutcome,
) {
    let sweep_id = trial_id.split('-').next().expect("SWEEP-tN");
    let t = trial(store, sweep_id, trial_id).await;
    assert_eq!(t.state, state, "{transition:?}: the trial's state");
    let attempts = store.attempts(trial_id).await.expect("attempts");
    let last = attempts.last().expect("an attempt");
    assert_eq!(last.outcome, last_outcome, "{transition:?}: the last attempt's outcome");
    if last_outcome != AttemptOutcome::Running {
        assert!(last.ended_at.is_some(), "{transition:?}: a closed attempt has an end");
    }
}

use crate::scheduler::Transition;

async fn transition_lease_queued_to_running(ctx: Ctx) {
    let store = &*ctx.store;
    insert(store, &new_sweep("s", 1, 1, 3, false), T0).await;
    let l = lease_one(store, "w", T0).await;
    assert_eq!((l.attempt, l.lease_expires_at), (1, T0 + LEASE_MS));
    assert_after(store, "s-t0", Transition::Lease, TrialState::Running, AttemptOutcome::Running).await;
    assert_eq!(trial(store, "s", "s-t0").await.worker_id.as_deref(), Some("w"));
}

async fn transition_renew_running_to_running(ctx: Ctx) {
    let store = &*ctx.store;
    insert(store, &new_sweep("s", 1, 1, 3, false), T0).await;
    lease_one(store, "w", T0).await;
    let stop = store.renew("w", &[progress("s-t0", 1, 4)], T0 + 2 * LEASE_MS).await.expect("renew");
    assert!(stop.is_empty(), "the holder keeps its trial: {stop:?}");
    assert_after(store, "s-t0", Transition::Renew, TrialState::Running, AttemptOutcome::Running).await;
    let t = trial(store, "s", "s-t0").await;
    assert_eq!((t.lease_expires_at, t.epoch), (Some(T0 + 2 * LEASE_MS), 4));
    let other = store.renew("intruder", &[progress("s-t0", 1, 5)], T0 + 9 * LEASE_MS).await.expect("renew");
    assert_eq!(other, ["s-t0"], "another worker renews nothing and is told to stop");
    assert_eq!(trial(store, "s", "s-t0").await.lease_expires_at, Some(T0 + 2 * LEASE_MS));
}

async fn transition_complete_running_to_completed(ctx: Ctx) {
    let store = &*ctx.store;
    insert(store, &new_sweep("s", 1, 1, 3, false), T0).await;
    lease_one(store, "w", T0).await;
    store.complete("w", "s-t0", 1, &completion(0.5, 0.5, None), T0 + 1).await.expect("complete");
    assert_after(store, "s-t0", Transition::Complete, TrialState::Completed, AttemptOutcome::Completed).await;
    assert_eq!(sweep_state(store, "s").await, SweepState::Finished);
}

async fn transition_fail_retry_running_to_queued(ctx: Ctx) {
    let store = &*ctx.store;
    insert(store, &new_sweep("s", 1, 1, 3, false), T0).await;
    lease_one(store, "w", T0).await;
    let next = store.fail("w", "s-t0", 1, "libtorch: out of memory", TrialFault::Retry, T0 + 1).await.expect("fail");
    assert_eq!(next, Requeue::Queued);
    assert_after(store, "s-t0", Transition::FailRetry, TrialState::Queued, AttemptOutcome::Failed).await;
}

async fn transition_fail_permanent_running_to_failed(ctx: Ctx) {
    let store = &*ctx.store;
    insert(store, &new_sweep("s", 1, 1, 3, false), T0).await;
    lease_one(store, "w", T0).await;
    let next = store.fail("w", "s-t0", 1, "diverged", TrialFault::Permanent, T0 + 1).await.expect("fail");
    assert_eq!(next, Requeue::Failed);
    assert_after(store, "s-t0", Transition::FailPermanent, TrialState::Failed, AttemptOutcome::Failed).await;
    assert_eq!(trial(store, "s", "s-t0").await.error.as_deref(), Some("diverged"));
}

async fn transition_fail_out_of_attempts_running_to_failed(ctx: Ctx) {
    let store = &*ctx.store;
    insert(store, &new_sweep("s", 1, 1, 2, false), T0).await;
    lease_one(store, "w", T0).await;
    store.fail("w", "s-t0", 1, "first", TrialFault::Retry, T0 + 1).await.expect("fail");
    lease_one(store, "w", T0 + 2).await;
    let next = store.fail("w", "s-t0", 2, "second", TrialFault::Retry, T0 + 3).await.expect("fail");
    assert_eq!(next, Requeue::Failed);
    assert_after(store, "s-t0", Transition::FailOutOfAttempts, TrialState::Failed, AttemptOutcome::Failed).await;
    let error = trial(store, "s", "s-t0").await.error;
    assert_eq!(error.as_deref(), Some("gave up after 2 failed attempts; last: second"));
}

async fn transition_expire_running_to_queued(ctx: Ctx) {
    let store = &*ctx.store;
    insert(store, &new_sweep("s", 1, 1, 3, false), T0).await;
    lease_one(store, "w", T0).await;
    let expired_now = store.expire_leases(T0 + LEASE_MS + 1, None).await.expect("expire");
    assert_eq!(expired_now, [expired("s-t0", 1, Requeue::Queued)]);
    assert_after(store, "s-t0", Transition::Expire, TrialState::Queued, AttemptOutcome::Expired).await;
}

async fn transition_release_running_to_queued(ctx: Ctx) {
    let store = &*ctx.store;
    insert(store, &new_sweep("s", 1, 1, 1, false), T0).await;
    lease_one(store, "w", T0).await;
    store.release("w", &[attempt_ref("s-t0", 1)], T0 + 1).await.expect("release");
    assert_after(store, "s-t0", Transition::Release, TrialState::Queued, AttemptOutcome::Released).await;
}

/// A worker that cannot serve a trial (its data set is missing on that machine) gives it back
/// without using up an attempt: with `max_attempts = 1`, the trial is still queued, and the
/// worker's error is kept on the attempt for people to read.
async fn transition_worker_fault_running_to_queued_without_counting(ctx: Ctx) {
    let store = &*ctx.store;
    insert(store, &new_sweep("s", 1, 1, 1, false), T0).await;
    lease_one(store, "w-without-data", T0).await;
    let error = "data set DRIVE: /data/DRIVE/training/images does not exist on this machine";
    let next = store.fail("w-without-data", "s-t0", 1, error, TrialFault::Worker, T0 + 1).await.expect("fail");
    assert_eq!(next, Requeue::Queued);
    assert_after(store, "s-t0", Transition::WorkerFault, TrialState::Queued, AttemptOutcome::Released).await;
    assert_eq!(store.attempts("s-t0").await.expect("attempts")[0].error.as_deref(), Some(error));
    let again = lease_one(store, "w-with-data", T0 + 2).await;
    assert_eq!(again.attempt, 2);
    store
        .complete("w-with-data", "s-t0", 2, &completion(0.5, 0.5, None), T0 + 3)
        .await
        .expect("another worker completes it");
    assert_eq!(trial(store, "s", "s-t0").await.state, TrialState::Completed);
}

async fn transition_out_of_memory_running_to_queued_asking_twice_the_memory(ctx: Ctx) {
    let store = &*ctx.store;
    // max_attempts 1: running out of memory must not use the only attempt.
    let sweep = with_memory(new_sweep("s", 1, 3, 1, false), &[(2, "big"), (2, "big"), (1, "small")]);
    insert(store, &sweep, T0).await;
    let fit = |gib: u64| MemoryFit::from_request(gib << 30);
    let leased = store.lease_fitting("w", 1, fit(2), T0, T0 + LEASE_MS).await.expect("lease");
    assert_eq!(leased[0].trial_id, "s-t0");
    let error = "CUDA out of memory. Tried to allocate 1.00 GiB";
    let next = store.fail("w", "s-t0", 1, error, TrialFault::OutOfMemory, T0 + 1).await.expect("fail");
    assert_eq!(next, Requeue::Queued);
    assert_after(store, "s-t0", Transition::OutOfMemory, TrialState::Queued, AttemptOutcome::Failed).await;
    assert_eq!(store.attempts("s-t0").await.expect("attempts")[0].cause.as_deref(), Some("oom"));
    // It and the queued trial of its shape now ask 4 GiB; the other shape still 1.
    let two = store.lease_fitting("w", 10, fit(3), T0 + 2, T0 + LEASE_MS).await.expect("lease");
    assert_eq!(two.iter().map(|l| l.trial_id.as_str()).collect::<Vec<_>>(), vec!["s-t2"]);
    let four = store.lease_fitting("w", 1, fit(4), T0 + 3, T0 + LEASE_MS).await.expect("lease");
    assert_eq!((four[0].trial_id.as_str(), four[0].attempt, four[0].memory_bytes), ("s-t0", 2, 4 << 30));
    // Out of memory again and again: it gives up after MAX_OUT_OF_MEMORY.
    let mut attempt = 2;
    for _ in 1..crate::scheduler::MAX_OUT_OF_MEMORY - 1 {
        store.fail("w", "s-t0", attempt, error, TrialFault::OutOfMemory, T0 + 4).await.expect("fail");
        attempt = lease_one(store, "w", T0 + 5).await.attempt;
    }
    let last = store.fail("w", "s-t0", attempt, error, TrialFault::OutOfMemory, T0 + 6).await.expect("fail");
    assert_eq!(last, Requeue::Failed);
    let t = trial(store, "s", "s-t0").await;
    assert_eq!(t.state, TrialState::Failed);
    assert!(t.error.as_deref().is_some_and(|e| e.starts_with("ran out of device memory 4 times")), "{:?}", t.error);
}

async fn transition_cancel_queued_and_running_to_cancelled(ctx: Ctx) {
    let store = &*ctx.store;
    insert(store, &new_sweep("s", 1, 2, 3, false), T0).await;
    lease_one(store, "w", T0).await;
    assert!(store.cancel_sweep("s", T0 + 1).await.expect("cancel"));
    assert_after(store, "s-t0", Transition::Cancel, TrialState::Cancelled, AttemptOutcome::Cancelled).await;
    assert_eq!(trial(store, "s", "s-t1").await.state, TrialState::Cancelled, "the queued one too");
    assert!(store.attempts("s-t1").await.expect("attempts").is_empty());
}

/// Regression: on Postgres, a cancel that closed attempts before cancelling trials (each
/// statement in its own snapshot) could leave an attempt `running` for a trial that a lease
/// took in between. Workers lease as fast as they can while the sweep is cancelled.
async fn a_cancel_racing_leases_leaves_no_attempt_running(ctx: Ctx) {
    for round in 0..40 {
        let id = format!("r{round}");
        insert(&*ctx.store, &new_sweep(&id, 8, 4, 3, false), T0).await;
        let mut leasers = Vec::new();
        for w in 0..4 {
            let store = ctx.store.clone();
            leasers.push(tokio::spawn(async move {
                while !store.lease(&format!("w{w}"), 1, T0, T0 + LEASE_MS).await.expect("lease").is_empty() {}
            }));
        }
        for _ in 0..round % 8 {
            tokio::task::yield_now().await;
        }
        assert!(ctx.store.cancel_sweep(&id, T0 + 1).await.expect("cancel"));
        for l in leasers {
            l.await.expect("leasing task");
        }
        for t in ctx.store.trials(&id).await.expect("trials") {
            assert_eq!(t.state, TrialState::Cancelled, "round {round}: {}", t.id);
            for a in ctx.store.attempts(&t.id).await.expect("attempts") {
                assert_ne!(
                    a.outcome,
                    AttemptOutcome::Running,
                    "round {round}: {} attempt {} left running",
                    t.id,
                    a.attempt
                );
            }
        }
    }
}

/// A write that breaks the schema (here: two trials with one id) is refused as the caller's
/// error, which workers and clients do not retry; the database is reachable, so it is not
/// UNAVAILABLE.
async fn a_constraint_violation_is_the_caller_s_error_not_a_retry(ctx: Ctx) {
    let store = &*ctx.store;
    let mut sweep = new_sweep("s", 1, 2, 3, false);
    sweep.trials[1].id = sweep.trials[0].id.clone();
    let error = store.insert_sweep(&sweep, T0).await.expect_err("two trials with one id");
    assert!(matches!(error, StoreError::Constraint(_)), "{error:?}");
    assert_eq!(error.fault(), allsweep_proto::fault::CallFault::Refused);
    assert_eq!(store.sweep("s").await.expect("sweep"), None, "nothing written");
}

async fn check_lease_refuses_superseded_and_unknown_attempts(ctx: Ctx) {
    let store = &*ctx.store;
    insert(store, &new_sweep("s", 1, 1, 3, false), T0).await;
    lease_one(store, "w", T0).await;
    store.check_lease("w", &attempt_ref("s-t0", 1)).await.expect("the holder");
    assert_superseded(store.check_lease("w", &attempt_ref("s-t0", 2)).await, "a later attempt");
    assert!(matches!(store.check_lease("w", &attempt_ref("../../etc/passwd", 1)).await, Err(StoreError::NotFound(_))));
}

/// Worker A may not write for the attempt worker B holds, even naming B's current attempt
/// (issue 9, defect 3): every write is refused, and nothing is written.
async fn writes_for_another_worker_s_lease_are_refused(ctx: Ctx) {
    let store = &*ctx.store;
    insert(store, &new_sweep("s", 1, 1, 3, false), T0).await;
    let held = lease_one(store, "b", T0).await;
    let not_holder = |r: Result<()>, what: &str| {
        assert!(matches!(r, Err(StoreError::NotHolder { .. })), "{what}: expected NotHolder, got {r:?}");
    };
    let point = [MetricPoint { epoch: 1, name: "train_loss".into(), value: 0.5 }];
    not_holder(store.record_metrics("a", "s-t0", held.attempt, &point).await.map(|_| ()), "metrics");
    not_holder(store.record_checkpoint("a", &checkpoint("s-t0", 1, 1, "x"), T0).await.map(|_| ()), "checkpoint");
    not_holder(store.complete("a", "s-t0", 1, &completion(0.5, 0.5, None), T0).await.map(|_| ()), "complete");
    not_holder(store.fail("a", "s-t0", 1, "boom", TrialFault::Permanent, T0).await.map(|_| ()), "fail");
    not_holder(store.check_lease("a", &attempt_ref("s-t0", 1)).await, "check");
    assert!(store.metric_points("s-t0").await.expect("points").is_empty(), "no metric written");
    assert_eq!(store.checkpoint("s-t0").await.expect("checkpoint"), None);
    let t = trial(store, "s", "s-t0").await;
    assert_eq!((t.state, t.worker_id.as_deref()), (TrialState::Running, Some("b")), "b still holds it");
    store.complete("b", "s-t0", 1, &completion(0.5, 0.5, None), T0 + 1).await.expect("the holder completes");
}

async fn tokens_are_stored_as_hashes_and_revoked_once(ctx: Ctx) {
    let store = &*ctx.store;
    let token = |id: &str, role| crate::store::TokenRow {
        id: id.into(),
        name: format!("{id}-holder"),
        role,
        hash: format!("{id}-hash"),
        created_at: T0,
        revoked_at: None,
    };
    store.insert_token(&token("t1", crate::access::Role::User)).await.expect("insert");
    store.insert_token(&token("t2", crate::access::Role::Admin)).await.expect("insert");
    let duplicate = crate::store::TokenRow { id: "t3".into(), ..token("t1", crate::access::Role::User) };
    assert!(matches!(store.insert_token(&duplicate).await, Err(StoreError::Constraint(_))), "one hash, one token");
    assert_eq!(
        store.tokens().await.expect("tokens"),
        [token("t1", crate::access::Role::User), token("t2", crate::access::Role::Admin)]
    );
    let revoked = store.revoke_token("t1", T0 + 5).await.expect("revoke").expect("exists");
    assert_eq!(revoked.revoked_at, Some(T0 + 5));
    let again = store.revoke_token("t1", T0 + 9).await.expect("revoke").expect("exists");
    assert_eq!(again.revoked_at, Some(T0 + 5), "the first revocation time stays");
    assert_eq!(store.revoke_token("nope", T0).await.expect("revoke"), None);
}

/// A sweep of 3 configs under ASHA (eta 3, rungs at epochs 1 and 3 of 5).
fn asha_sweep(id: &str) -> NewSweep {
    let rule = crate::scheduler::early_stopping::Rule::Asha {
        metric: "dice".into(),
        mode: crate::scheduler::early_stopping::Mode::Max,
        min_epochs: 1,
        reduction_factor: 3,
        max_epochs: 5,
    };
    NewSweep { early_stopping: Some(serde_json::to_string(&rule).expect("json")), ..new_sweep(id, 3, 1, 3, false) }
}

/// Trains leased trial `lease` to `epoch` with `dice` there, as a worker would: the metric,
/// the checkpoint, then the hand-back at the rung.
async fn reach_rung(store: &dyn Store, lease: &Leased, epoch: u32, dice: f64, now: Millis) {
    let (id, attempt) = (lease.trial_id.as_str(), lease.attempt);
    let point = MetricPoint { epoch, name: "dice".into(), value: dice };
    store.record_metrics("w", id, attempt, &[point]).await.expect("metrics");
    let file = format!("{id}-{epoch}.ckpt");
    store.record_checkpoint("w", &checkpoint(id, attempt, epoch, &file), now).await.expect("checkpoint");
    store.release("w", &[attempt_ref(id, attempt)], now).await.expect("release");
}

async fn asha_holds_trials_at_rungs_then_promotes_or_stops_them(ctx: Ctx) {
    let store = &*ctx.store;
    insert(store, &asha_sweep("a"), T0).await;
    let leases: Vec<Leased> = store.lease("w", 3, T0, T0 + LEASE_MS).await.expect("lease");
    assert_eq!(leases.iter().map(|l| l.pause_at_epoch).collect::<Vec<_>>(), vec![Some(1); 3], "each pauses at rung 0");

    reach_rung(store, &leases[0], 1, 0.5, T0 + 1).await;
    let t0 = trial(store, "a", "a-t0").await;
    assert_eq!(t0.state, TrialState::Queued);
    let hold = t0.hold.expect("held at its rung, not leasable");
    assert!(hold.contains("rung 0 (epoch 1)") && hold.contains("not in the best 1/3 yet"), "{hold}");
    assert!(store.lease("w", 3, T0 + 2, T0 + LEASE_MS).await.expect("lease").is_empty(), "a held trial is not leased");

    reach_rung(store, &leases[1], 1, 0.9, T0 + 3).await;
    reach_rung(store, &leases[2], 1, 0.1, T0 + 4).await;
    // Three arrivals: the best third (trial 1) goes on; every outcome is in, so the rest stop.
    let t1 = trial(store, "a", "a-t1").await;
    assert_eq!((t1.state, t1.hold), (TrialState::Queued, None));
    for id in ["a-t0", "a-t2"] {
        let t = trial(store, "a", id).await;
        assert_eq!(
            (t.state, t.stopped_epoch, t.stop_rule.as_deref()),
            (TrialState::Stopped, Some(1), Some("asha")),
            "{id}"
        );
        assert!(t.note.as_deref().unwrap_or_default().contains("never in the best 1/3"), "{id}: {:?}", t.note);
    }
    let decisions = store.decisions("a").await.expect("decisions");
    let verdicts: Vec<(&str, u32, &str)> =
        decisions.iter().map(|d| (d.trial_id.as_str(), d.rung, d.verdict.as_str())).collect();
    assert_eq!(verdicts, vec![("a-t0", 0, "stopped"), ("a-t1", 0, "promoted"), ("a-t2", 0, "stopped")]);

    // The promoted trial resumes from its rung checkpoint and pauses at the next rung.
    let again = lease_one(store, "w2", T0 + 5).await;
    assert_eq!((again.trial_id.as_str(), again.checkpoint_epoch, again.pause_at_epoch), ("a-t1", Some(1), Some(3)));
    store
        .record_metrics("w2", "a-t1", again.attempt, &[MetricPoint { epoch: 3, name: "dice".into(), value: 0.95 }])
        .await
        .expect("metrics");
    store
        .record_checkpoint("w2", &checkpoint("a-t1", again.attempt, 3, "a-t1-3.ckpt"), T0 + 6)
        .await
        .expect("checkpoint");
    store.release("w2", &[attempt_ref("a-t1", again.attempt)], T0 + 6).await.expect("release");
    // Alone at the last rung: a finished rung promotes its best, so the search finishes a trial.
    let last = lease_one(store, "w2", T0 + 7).await;
    assert_eq!((last.checkpoint_epoch, last.pause_at_epoch), (Some(3), None), "trains to the end");
    store.complete("w2", "a-t1", last.attempt, &completion(0.8, 0.9, Some(0.9)), T0 + 8).await.expect("complete");
    assert_eq!(sweep_state(store, "a").await, SweepState::Finished, "completed and stopped trials settle a sweep");
    // Settling again changes nothing: decisions are a function of what is stored.
    assert_eq!(store.settle_early_stopping("a", T0 + 9).await.expect("settle"), 0);
    assert_eq!(store.decisions("a").await.expect("decisions").len(), 4);
}

async fn a_trial_requeued_at_a_rung_waits_for_its_decision_and_the_tick_settles_it(ctx: Ctx) {
    let store = &*ctx.store;
    insert(store, &asha_sweep("b"), T0).await;
    let leases: Vec<Leased> = store.lease("w", 3, T0, T0 + LEASE_MS).await.expect("lease");
    for (lease, dice) in leases.iter().zip([0.3, 0.2]) {
        reach_rung(store, lease, 1, dice, T0 + 1).await;
    }
    // The third reaches its rung and its worker dies before handing it back.
    let third = &leases[2];
    let point = MetricPoint { epoch: 1, name: "dice".into(), value: 0.7 };
    store.record_metrics("w", &third.trial_id, third.attempt, &[point]).await.expect("metrics");
    let file = "b-t2-1.ckpt";
    store
        .record_checkpoint("w", &checkpoint(&third.trial_id, third.attempt, 1, file), T0 + 2)
        .await
        .expect("checkpoint");
    store.expire_leases(T0 + LEASE_MS + 1, None).await.expect("expire");
    // Queued again at its rung: held, and decided by the tick's settle (the best of three).
    let t2 = trial(store, "b", "b-t2").await;
    assert_eq!((t2.state, t2.hold), (TrialState::Queued, None), "promoted by the expiry tick's settle");
    assert_eq!(trial(store, "b", "b-t0").await.state, TrialState::Stopped);
    let resumed = lease_one(store, "w2", T0 + LEASE_MS + 2).await;
    assert_eq!((resumed.trial_id.as_str(), resumed.checkpoint_epoch), ("b-t2", Some(1)));
}

async fn a_race_holds_later_seeds_and_eliminates_a_config_shown_worse(ctx: Ctx) {
    let store = &*ctx.store;
    let rule = crate::scheduler::early_stopping::Rule::Race {
        metric: "dice".into(),
        mode: crate::scheduler::early_stopping::Mode::Max,
        alpha: 0.05,
        min_seeds: 2,
        max_epochs: 5,
    };
    let sweep = NewSweep {
        early_stopping: Some(serde_json::to_string(&rule).expect("json")),
        ..new_sweep("r", 2, 4, 3, false)
    };
    insert(store, &sweep, T0).await;
    let leased = store.lease("w", 10, T0, T0 + LEASE_MS).await.expect("lease");
    let ids: Vec<&str> = leased.iter().map(|l| l.trial_id.as_str()).collect();
    assert_eq!(ids, vec!["r-t0", "r-t1", "r-t4", "r-t5"], "the first two waves of each config");
    assert!(leased.iter().all(|l| l.pause_at_epoch.is_none()), "a race never pauses a trial");
    let held = trial(store, "r", "r-t2").await.hold.expect("wave 3 is held");
    assert!(held.contains("seed wave 3 opens once wave 2 is done"), "{held}");
    // Config 0 scores about 0.3, config 1 about 0.8, on both seeds.
    for (lease, dice) in leased.iter().zip([0.30, 0.31, 0.80, 0.82]) {
        let point = MetricPoint { epoch: 5, name: "dice".into(), value: dice };
        store.record_metrics("w", &lease.trial_id, lease.attempt, &[point]).await.expect("metrics");
        store
            .complete("w", &lease.trial_id, lease.attempt, &completion(dice, 0.9, None), T0 + 1)
            .await
            .expect("complete");
    }
    // The completion that finished the wave tested it.
    for id in ["r-t2", "r-t3"] {
        let t = trial(store, "r", id).await;
        assert_eq!(
            (t.state, t.stopped_epoch, t.stop_rule.as_deref()),
            (TrialState::Stopped, Some(0), Some("race")),
            "{id}"
        );
    }
    let next = store.lease("w", 10, T0 + 3, T0 + LEASE_MS).await.expect("lease");
    assert_eq!(
        next.iter().map(|l| l.trial_id.as_str()).collect::<Vec<_>>(),
        vec!["r-t6"],
        "the best config's next wave"
    );
    let decisions = store.decisions("r").await.expect("decisions");
    let eliminated = decisions.iter().find(|d| d.verdict == "stopped").expect("an elimination is recorded");
    assert_eq!((eliminated.trial_id.as_str(), eliminated.rung, eliminated.rule.as_str()), ("r-t1", 1, "race"));
    assert!(eliminated.reason.contains("worse than the best"), "{}", eliminated.reason);
}
