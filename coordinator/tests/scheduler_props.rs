//! The scheduler's state machine as a property, on both databases: random sequences of
//! lease, heartbeat (renew), time passing with the expiry tick, metric points, complete,
//! fail (retried, permanent, a worker's fault), release and cancel, by three workers that
//! sometimes write for an attempt they no longer hold, or one they never held, against the
//! real `Store` on a SQLite file and on a throwaway Postgres database. Each answer of the
//! store is compared with the rules (`scheduler_props/model.rs`); after every step the
//! database is read back and every invariant checked (`scheduler_props/check.rs`): a trial is
//! leased to one worker at most, one running attempt at most and it is the trial's, a
//! completed trial completes once and stays completed, counted attempts never exceed
//! `max_attempts`, no metric point is stored twice, a superseded or foreign write is refused
//! and changes nothing, a cancelled sweep leases nothing.
//!
//! 32 cases of up to 40 steps per backend by default; `PROPTEST_CASES=N` for more.

#[path = "scheduler_props/check.rs"]
mod check;
#[path = "scheduler_props/model.rs"]
mod model;

use std::sync::Arc;

use allsweep_coordinator::store::{
    self, AttemptRef, Completion, FinalMetrics, MetricPoint, Millis, NewSweep, NewTrial, Progress, Store, StoreError,
    TrialColumns, TrialFault,
};
use allsweep_proto::metric;
use allsweep_testkit::ThrowawayPostgres;
use check::{Points, Seen};
use model::{Model, Refusal, SweepModel, TrialModel, LEASE_MS};
use proptest::prelude::*;
use proptest::sample::subsequence;

const WORKERS: [&str; 3] = ["w0", "w1", "w2"];
const T0: Millis = 1_700_000_000_000;

/// Which attempt a write names, relative to the trial's latest.
#[derive(Debug, Clone, Copy)]
enum Which {
    Current,
    Previous,
    Next,
}

/// Which worker writes: the trial's holder (its latest attempt's worker), or any worker.
#[derive(Debug, Clone, Copy)]
enum Who {
    Holder,
    Worker(usize),
}

#[derive(Debug, Clone)]
enum Op {
    Lease {
        worker: usize,
        count: u32,
    },
    /// The worker renews every lease it believes it holds.
    Heartbeat {
        worker: usize,
    },
    /// The clock moves on, then the expiry tick runs.
    Advance {
        ms: Millis,
    },
    Metrics {
        trial: usize,
        who: Who,
        which: Which,
        epoch: u32,
        names: Vec<&'static str>,
        value: u32,
    },
    Complete {
        trial: usize,
        who: Who,
        which: Which,
    },
    Fail {
        trial: usize,
        who: Who,
        which: Which,
        fault: TrialFault,
    },
    Release {
        trial: usize,
        who: Who,
        which: Which,
    },
    Cancel {
        sweep: usize,
    },
}

#[derive(Debug, Clone)]
struct Case {
    /// Per sweep: trials, max_attempts.
    sweeps: Vec<(u32, u32)>,
    ops: Vec<Op>,
}

fn op() -> impl Strategy<Value = Op> {
    let who = prop_oneof![4 => Just(Who::Holder), 1 => (0..WORKERS.len()).prop_map(Who::Worker)];
    let which = prop_oneof![6 => Just(Which::Current), 1 => Just(Which::Previous), 1 => Just(Which::Next)];
    let fault = prop_oneof![Just(TrialFault::Retry), Just(TrialFault::Permanent), Just(TrialFault::Worker)];
    let worker = 0..WORKERS.len();
    let trial = any::<usize>();
    prop_oneof![
        3 => (worker.clone(), 1..=3_u32).prop_map(|(worker, count)| Op::Lease { worker, count }),
        3 => worker.clone().prop_map(|worker| Op::Heartbeat { worker }),
        2 => prop_oneof![Just(LEASE_MS), Just(LEASE_MS + 1), 0..=2 * LEASE_MS].prop_map(|ms| Op::Advance { ms }),
        3 => (trial, who.clone(), which.clone(), 1..=3_u32, subsequence(metric::ALL.to_vec(), 1..=3), 0..4_u32)
            .prop_map(|(trial, who, which, epoch, names, value)| Op::Metrics { trial, who, which, epoch, names, value }),
        2 => (trial, who.clone(), which.clone()).prop_map(|(trial, who, which)| Op::Complete { trial, who, which }),
        2 => (trial, who.clone(), which.clone(), fault)
            .prop_map(|(trial, who, which, fault)| Op::Fail { trial, who, which, fault }),
        1 => (trial, who, which).prop_map(|(trial, who, which)| Op::Release { trial, who, which }),
        1 => any::<usize>().prop_map(|sweep| Op::Cancel { sweep }),
    ]
}

fn case() -> impl Strategy<Value = Case> {
    let sweeps = prop::collection::vec((1..=3_u32, 1..=3_u32), 1..=3);
    (sweeps, prop::collection::vec(op(), 1..=40)).prop_map(|(sweeps, ops)| Case { sweeps, ops })
}

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(32);
    ProptestConfig { cases, max_shrink_iters: 200, max_shrink_time: 120_000, ..ProptestConfig::default() }
}

fn new_sweep(index: usize, trials: u32, max_attempts: u32) -> NewSweep {
    let id = format!("s{index}");
    let trials = (0..trials)
        .map(|ordinal| NewTrial {
            id: format!("{id}-t{ordinal}"),
            ordinal,
            label: format!("seed={ordinal}"),
            params_json: "{}".into(),
            config_key: format!("{id}-c0"),
            config_toml: format!("seed = {ordinal}\n"),
            seed: u64::from(ordinal),
            epochs: 3,
            columns: TrialColumns { lr: 1e-3, batch_size: 4, ..TrialColumns::default() },
            memory: Default::default(),
        })
        .collect();
    NewSweep {
        name: id.clone(),
        id,
        spec_toml: String::new(),
        keep_checkpoints: false,
        max_attempts,
        early_stopping: None,
        trials,
    }
}

fn completion() -> Completion {
    let metrics = FinalMetrics {
        jaccard: 0.5,
        dice: 0.6,
        precision: 0.7,
        recall: 0.6,
        tnr: 0.9,
        accuracy: 0.8,
        auc: Some(0.9),
        keras: None,
    };
    Completion { metrics, roc: Vec::new(), split: "test".into(), epochs: 3, parameters: 1, selected_epoch: 3 }
}

/// The store's answer to a worker's write against what the rules say it must be.
fn judged<T>(step: &str, expected: Result<(), Refusal>, actual: store::Result<T>) -> Result<Option<T>, String> {
    match (expected, actual) {
        (Ok(()), Ok(value)) => Ok(Some(value)),
        (Err(Refusal::Superseded), Err(StoreError::Superseded { .. }))
        | (Err(Refusal::NotHolder), Err(StoreError::NotHolder { .. })) => Ok(None),
        (expected, Err(error)) => Err(format!("{step}: refused ({error}), the rules say {expected:?}")),
        (expected, Ok(_)) => Err(format!("{step}: accepted, the rules say {expected:?}")),
    }
}

/// One case against one store: every step's answer checked, then the database.
async fn run(store: Arc<dyn Store>, case: &Case) -> Result<(), String> {
    let store = &*store;
    let mut model = Model::default();
    for (i, &(trials, max_attempts)) in case.sweeps.iter().enumerate() {
        let sweep = new_sweep(i, trials, max_attempts);
        let inserted = store.insert_sweep(&sweep, T0 + i as Millis).await.map_err(|e| e.to_string())?;
        assert!(inserted, "a new sweep");
        for t in &sweep.trials {
            model.trials.push(TrialModel {
                id: t.id.clone(),
                sweep: i,
                state: store::TrialState::Queued,
                attempt: 0,
                worker: None,
                expires: None,
                attempts: Vec::new(),
            });
        }
        model.sweeps.push(SweepModel { id: sweep.id, state: store::SweepState::Active, max_attempts });
    }
    let (mut now, mut points, mut seen) = (T0 + 1_000, Points::new(), Seen::default());
    // What each worker believes it holds: what it leased, until told to stop or it reported.
    let mut holds: Vec<Vec<(usize, u32)>> = vec![Vec::new(); WORKERS.len()];
    for (n, op) in case.ops.iter().enumerate() {
        let step = format!("step {n} ({op:?})");
        let target = |trial: usize, who: Who, which: Which| {
            let t = &model.trials[trial % model.trials.len()];
            let worker = match who {
                Who::Worker(w) => WORKERS[w],
                Who::Holder => t.attempts.last().map_or(WORKERS[0], |(w, _)| {
                    WORKERS.iter().copied().find(|&x| x == w.as_str()).expect("one of the workers")
                }),
            };
            let attempt = match which {
                Which::Current => t.attempt,
                Which::Previous => t.attempt.saturating_sub(1),
                Which::Next => t.attempt + 1,
            };
            (trial % model.trials.len(), worker, attempt)
        };
        match op {
            Op::Lease { worker, count } => {
                let got =
                    store.lease(WORKERS[*worker], *count, now, now + LEASE_MS).await.map_err(|e| e.to_string())?;
                let expected = model.lease(WORKERS[*worker], *count, now);
                let got: Vec<(String, u32, Millis)> =
                    got.into_iter().map(|l| (l.trial_id, l.attempt, l.lease_expires_at)).collect();
                let want: Vec<(String, u32, Millis)> =
                    expected.iter().map(|&(t, a)| (model.trials[t].id.clone(), a, now + LEASE_MS)).collect();
                if got != want {
                    return Err(format!("{step}: leased {got:?}, the rules say {want:?}"));
                }
                holds[*worker].extend(expected);
            }
            Op::Heartbeat { worker } => {
                let running: Vec<Progress> = holds[*worker]
                    .iter()
                    .map(|&(t, attempt)| Progress { trial_id: model.trials[t].id.clone(), attempt, epoch: 1 })
                    .collect();
                let stop = store.renew(WORKERS[*worker], &running, now + LEASE_MS).await.map_err(|e| e.to_string())?;
                let expected: Vec<String> = model
                    .renew(WORKERS[*worker], &holds[*worker], now)
                    .into_iter()
                    .map(|t| model.trials[t].id.clone())
                    .collect();
                if stop != expected {
                    return Err(format!("{step}: told to stop {stop:?}, the rules say {expected:?}"));
                }
                // Renewing changes no state: what it stopped is what the worker may not write for.
                holds[*worker].retain(|&(t, attempt)| model.may_write(WORKERS[*worker], t, attempt).is_ok());
            }
            Op::Advance { ms } => {
                now += ms;
                let mut got: Vec<_> = store
                    .expire_leases(now, None)
                    .await
                    .map_err(|e| e.to_string())?
                    .into_iter()
                    .map(|e| (e.trial_id, e.attempt, e.next))
                    .collect();
                let mut want: Vec<_> =
                    model.expire(now).into_iter().map(|(t, a, next)| (model.trials[t].id.clone(), a, next)).collect();
                got.sort_by(|a, b| a.0.cmp(&b.0));
                want.sort_by(|a, b| a.0.cmp(&b.0));
                if got != want {
                    return Err(format!("{step}: expired {got:?}, the rules say {want:?}"));
                }
            }
            Op::Metrics { trial, who, which, epoch, names, value } => {
                let (t, worker, attempt) = target(*trial, *who, *which);
                let id = model.trials[t].id.clone();
                let batch: Vec<MetricPoint> = names
                    .iter()
                    .map(|name| MetricPoint { epoch: *epoch, name: name.to_string(), value: f64::from(*value) / 4.0 })
                    .collect();
                let answer = store.record_metrics(worker, &id, attempt, &batch).await;
                if let Some(stored) = judged(&step, model.may_write(worker, t, attempt), answer)? {
                    let mut new = 0;
                    for p in &batch {
                        let key = (id.clone(), p.epoch, p.name.clone());
                        if let std::collections::btree_map::Entry::Vacant(slot) = points.entry(key) {
                            slot.insert(p.value.to_bits());
                            new += 1;
                        }
                    }
                    if (stored.stored, stored.duplicates) != (new, batch.len() as u64 - new) {
                        return Err(format!("{step}: {stored:?}, the rules say {new} new of {}", batch.len()));
                    }
                }
            }
            Op::Complete { trial, who, which } => {
                let (t, worker, attempt) = target(*trial, *who, *which);
                let answer = store.complete(worker, &model.trials[t].id, attempt, &completion(), now).await;
                if judged(&step, model.may_write(worker, t, attempt), answer)?.is_some() {
                    model.complete(t);
                    forget(&mut holds, worker, t);
                }
            }
            Op::Fail { trial, who, which, fault } => {
                let (t, worker, attempt) = target(*trial, *who, *which);
                let answer = store.fail(worker, &model.trials[t].id, attempt, "boom", *fault, now).await;
                if let Some(next) = judged(&step, model.may_write(worker, t, attempt), answer)? {
                    let want = model.fail(t, *fault);
                    if next != want {
                        return Err(format!("{step}: the trial went {next:?}, the rules say {want:?}"));
                    }
                    forget(&mut holds, worker, t);
                }
            }
            Op::Release { trial, who, which } => {
                let (t, worker, attempt) = target(*trial, *who, *which);
                let trials = [AttemptRef { trial_id: model.trials[t].id.clone(), attempt }];
                store.release(worker, &trials, now).await.map_err(|e| format!("{step}: {e}"))?;
                if model.may_write(worker, t, attempt).is_ok() {
                    forget(&mut holds, worker, t);
                }
                model.release(worker, t, attempt);
            }
            Op::Cancel { sweep } => {
                let s = sweep % model.sweeps.len();
                let found = store.cancel_sweep(&model.sweeps[s].id, now).await.map_err(|e| e.to_string())?;
                if !found {
                    return Err(format!("{step}: sweep {} not found", model.sweeps[s].id));
                }
                model.cancel(s);
            }
        }
        check::database(store, &model, &points, &mut seen).await.map_err(|e| format!("after {step}: {e}"))?;
    }
    Ok(())
}

/// A worker that reported a trial's end no longer holds it.
fn forget(holds: &mut [Vec<(usize, u32)>], worker: &str, trial: usize) {
    let w = WORKERS.iter().position(|x| *x == worker).expect("a worker");
    holds[w].retain(|&(t, _)| t != trial);
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime")
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn sqlite_keeps_every_invariant(case in case()) {
        let outcome = runtime().block_on(async {
            let dir = tempfile::tempdir().expect("a temporary directory");
            let url = format!("sqlite://{}", dir.path().join("allsweep.db").display());
            let store = store::open(&url).await.expect("open the SQLite store");
            run(store, &case).await
        });
        if let Err(violation) = outcome {
            return Err(TestCaseError::fail(violation));
        }
    }

    #[test]
    fn postgres_keeps_every_invariant(case in case()) {
        let outcome = runtime().block_on(async {
            let db = ThrowawayPostgres::create().await;
            let store = store::open(db.url()).await.expect("open the Postgres store");
            let outcome = run(store, &case).await;
            db.drop_now().await.expect("drop the test database");
            outcome
        });
        if let Err(violation) = outcome {
            return Err(TestCaseError::fail(violation));
        }
    }
}
