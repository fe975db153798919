//! What must hold in the database after every step, read back through the store: first the
//! invariants on their own (each from the rows alone), then every row against the reference
//! model. A violation comes back as a message naming the trial and what was seen.

use std::collections::{BTreeMap, BTreeSet};

use allsweep_coordinator::store::{AttemptOutcome, Store, SweepState, TrialState};

use super::model::Model;

/// The metric points stored so far, by (trial, epoch, name): the value first stored.
pub type Points = BTreeMap<(String, u32, String), u64>;

/// What the test has seen over the whole case: trials once completed.
#[derive(Debug, Default)]
pub struct Seen {
    pub completed: BTreeSet<String>,
}

macro_rules! ensure {
    ($cond:expr, $($why:tt)+) => {
        if !$cond {
            return Err(format!($($why)+));
        }
    };
}

/// Checks every invariant, then the rows against `model` and `points`.
pub async fn database(store: &dyn Store, model: &Model, points: &Points, seen: &mut Seen) -> Result<(), String> {
    let read = |e| format!("reading the store: {e}");
    let mut stored_points = Points::new();
    for (s, sweep_model) in model.sweeps.iter().enumerate() {
        let sweep = store.sweep(&sweep_model.id).await.map_err(read)?.ok_or("a sweep vanished")?;
        let trials = store.trials(&sweep.id).await.map_err(read)?;
        let results: BTreeSet<String> =
            store.results(&sweep.id).await.map_err(read)?.into_iter().map(|r| r.trial_id).collect();
        for trial in &trials {
            let id = &trial.id;
            let attempts = store.attempts(id).await.map_err(read)?;
            // A trial is leased to at most one worker: one running attempt while running, and it
            // is the trial's attempt, held by the trial's worker; none otherwise.
            let running: Vec<_> = attempts.iter().filter(|a| a.outcome == AttemptOutcome::Running).collect();
            if trial.state == TrialState::Running {
                ensure!(running.len() == 1, "{id}: running with {} running attempts", running.len());
                ensure!(
                    running[0].attempt == trial.attempt,
                    "{id}: runs attempt {} of {}",
                    running[0].attempt,
                    trial.attempt
                );
                ensure!(
                    trial.worker_id.as_deref() == Some(running[0].worker_id.as_str())
                        && trial.lease_expires_at.is_some(),
                    "{id}: leased to {:?} (expiring {:?}), its running attempt to {}",
                    trial.worker_id,
                    trial.lease_expires_at,
                    running[0].worker_id
                );
            } else {
                ensure!(running.is_empty(), "{id}: {} with attempt(s) still running", trial.state.as_str());
                ensure!(trial.lease_expires_at.is_none(), "{id}: {} with a lease", trial.state.as_str());
            }
            let numbers: Vec<u32> = attempts.iter().map(|a| a.attempt).collect();
            ensure!(
                numbers == (1..=trial.attempt).collect::<Vec<_>>(),
                "{id}: attempts {numbers:?} at attempt {}",
                trial.attempt
            );
            // A completed trial completed once, has its results, and stays completed.
            let completions = attempts.iter().filter(|a| a.outcome == AttemptOutcome::Completed).count();
            let completed = trial.state == TrialState::Completed;
            ensure!(
                completions == usize::from(completed),
                "{id}: {} with {completions} completed attempts",
                trial.state.as_str()
            );
            ensure!(
                results.contains(id) == completed,
                "{id}: {} with results {}",
                trial.state.as_str(),
                results.contains(id)
            );
            ensure!(completed || !seen.completed.contains(id), "{id}: completed once, {} now", trial.state.as_str());
            if completed {
                seen.completed.insert(id.clone());
            }
            // Attempts counted never exceed max_attempts.
            let counted = attempts
                .iter()
                .filter(|a| matches!(a.outcome, AttemptOutcome::Failed | AttemptOutcome::Expired))
                .count();
            ensure!(counted as u32 <= sweep.max_attempts, "{id}: {counted} counted attempts of {}", sweep.max_attempts);
            // A cancelled sweep has nothing queued or running.
            if sweep.state == SweepState::Cancelled {
                ensure!(
                    !matches!(trial.state, TrialState::Queued | TrialState::Running),
                    "{id}: {} in a cancelled sweep",
                    trial.state.as_str()
                );
            }
            // No metric point stored twice.
            for p in store.metric_points(id).await.map_err(read)? {
                let key = (id.clone(), p.epoch, p.name.clone());
                ensure!(stored_points.insert(key, p.value.to_bits()).is_none(), "{id}: point {p:?} stored twice");
            }
            // Every row as the model says.
            let m = model.trials.iter().find(|t| &t.id == id).ok_or(format!("{id}: not in the model"))?;
            ensure!(m.sweep == s, "{id}: in sweep {}", sweep.id);
            let expected = (m.state, m.attempt, m.worker.as_deref(), m.expires);
            let (worker, expires) = match trial.state {
                TrialState::Running => (trial.worker_id.as_deref(), trial.lease_expires_at),
                _ => (m.worker.as_deref(), m.expires),
            };
            let actual = (trial.state, trial.attempt, worker, expires);
            ensure!(
                actual == expected,
                "{id}: (state, attempt, worker, expiry) {actual:?}, the rules say {expected:?}"
            );
            let history: Vec<(String, AttemptOutcome)> =
                attempts.iter().map(|a| (a.worker_id.clone(), a.outcome)).collect();
            ensure!(history == m.attempts, "{id}: attempts {history:?}, the rules say {:?}", m.attempts);
        }
        ensure!(trials.len() == model.trials.iter().filter(|t| t.sweep == s).count(), "{}: trials lost", sweep.id);
        ensure!(
            sweep.state == sweep_model.state,
            "{}: {:?}, the rules say {:?}",
            sweep.id,
            sweep.state,
            sweep_model.state
        );
    }
    ensure!(&stored_points == points, "metric points {stored_points:?}, accepted writes stored {points:?}");
    Ok(())
}
