//! What the faults cost, beyond correctness: leases that expired although their worker was
//! alive and connected (only an outage of the coordinator or its database can cause that),
//! whole epochs trained again after an attempt ended, split by whose doing the end was, and
//! files left behind on either side. Outages of allsweep's own infrastructure must cost
//! nothing: no expiry, no epoch re-run, no file. Epochs re-run after a killed or cut-off
//! worker are the price of one checkpoint per epoch (an epoch whose metrics arrived but
//! whose checkpoint did not).

use std::collections::BTreeMap;

use sqlx::Row;

use crate::checks::Check;
use crate::db::Db;
use crate::run::Outcome;

/// Why an attempt ended, as far as its worker is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Its worker was SIGKILLed while it held the attempt.
    Killed,
    /// A partition cut its worker off.
    Cut,
    /// Its worker was alive and connected: whatever ended it was not the worker's fault.
    Live,
}

/// How the attempt `attempt` of `trial`, held by `worker` from `started` to `ended` (ms),
/// ended in `run`.
pub fn ending(run: &Outcome, trial: &str, attempt: i64, worker: &str, started: i64, ended: Option<i64>) -> Ending {
    if run.cut_attempts.iter().any(|(t, a)| t == trial && *a == attempt) {
        return Ending::Cut;
    }
    let killed = run.signalled.iter().any(|s| {
        s.signal == "KILL"
            && s.worker_id.as_deref() == Some(worker)
            && started <= s.at_ms
            && ended.is_none_or(|e| s.at_ms <= e)
    });
    if killed {
        Ending::Killed
    } else {
        Ending::Live
    }
}

/// The costs of one faulted run.
#[derive(Debug, Default)]
pub struct Costs {
    /// Expired attempts.
    pub expired: u64,
    /// Expired attempts whose worker was alive and connected.
    pub infrastructure_expiries: Vec<String>,
    /// Attempts whose lease expired while the coordinator or database was away (cause
    /// `outage`: they used up no attempt).
    pub outage_expiries: i64,
    /// Epochs trained again after attempts of live workers ended (SIGTERM hand-backs, outages).
    pub rerun_after_live: Vec<String>,
    pub epochs_rerun_after_live: i64,
    /// Epochs trained again after killed or cut-off workers' attempts.
    pub epochs_rerun_after_worker_faults: i64,
    /// Files in the coordinator's artifact directory that no checkpoint row names.
    pub orphaned_on_coordinator: Vec<String>,
    /// Files in the workers' work directory once the sweep was finished.
    pub orphaned_on_workers: Vec<String>,
}

/// One attempt's row, as the costs need it.
struct Attempt {
    worker: String,
    started: i64,
    ended: Option<i64>,
    outcome: String,
    resumed_from: Option<i64>,
    /// The last epoch whose metrics earlier attempts of the trial stored.
    reached_before: Option<i64>,
}

/// Measures the costs of `run` from its database and directories.
pub async fn measure(db: &Db, run: &Outcome, orphaned_on_coordinator: Vec<String>) -> anyhow::Result<Costs> {
    let mut costs = Costs {
        orphaned_on_coordinator,
        orphaned_on_workers: run.worker_leftovers.clone(),
        outage_expiries: db.count("SELECT count(*) FROM attempts WHERE cause = 'outage'").await?,
        ..Costs::default()
    };
    let rows = db
        .rows(
            "SELECT a.trial_id, a.attempt, a.worker_id, a.started_at, a.ended_at, a.outcome, a.resumed_from_epoch, \
             (SELECT max(m.epoch) FROM metrics m WHERE m.trial_id = a.trial_id AND m.attempt < a.attempt) \
             FROM attempts a",
        )
        .await?;
    let mut attempts: BTreeMap<(String, i64), Attempt> = BTreeMap::new();
    for row in rows {
        attempts.insert(
            (row.try_get(0)?, row.try_get(1)?),
            Attempt {
                worker: row.try_get(2)?,
                started: row.try_get(3)?,
                ended: row.try_get(4)?,
                outcome: row.try_get(5)?,
                resumed_from: row.try_get(6)?,
                reached_before: row.try_get(7)?,
            },
        );
    }
    for ((trial, number), a) in &attempts {
        let ended = ending(run, trial, *number, &a.worker, a.started, a.ended);
        costs.expired += u64::from(a.outcome == "expired");
        if a.outcome == "expired" && ended == Ending::Live {
            costs.infrastructure_expiries.push(format!(
                "trial {trial}: attempt {number} of live worker {} expired (held {} ms)",
                a.worker,
                a.ended.map_or(-1, |e| e - a.started)
            ));
        }
        // What the next attempt trained again of what this one and earlier ones had done.
        let Some(next) = attempts.get(&(trial.clone(), number + 1)) else { continue };
        let rerun = (next.reached_before.unwrap_or(0) - next.resumed_from.unwrap_or(0)).max(0);
        if rerun == 0 {
            continue;
        }
        match ended {
            Ending::Live => {
                costs.epochs_rerun_after_live += rerun;
                costs.rerun_after_live.push(format!(
                    "trial {trial}: attempt {} re-ran {rerun} epochs after attempt {number} of live worker {} ended {}",
                    number + 1,
                    a.worker,
                    a.outcome
                ));
            }
            Ending::Killed | Ending::Cut => costs.epochs_rerun_after_worker_faults += rerun,
        }
    }
    Ok(costs)
}

impl Costs {
    /// The costs that must be zero, as checks.
    pub fn checks(&self, attempts: u64) -> Vec<Check> {
        // A live worker heartbeats through an outage, retrying, so it keeps its leases.
        let mut expiries = Check::new("only killed or cut-off workers' leases expired");
        expiries.checked = self.expired;
        expiries.violations.clone_from(&self.infrastructure_expiries);
        let mut work = Check::new("no epoch re-run after a live worker's attempt ended");
        work.checked = attempts;
        work.violations.clone_from(&self.rerun_after_live);
        let mut files = Check::new("no orphaned file on the coordinator or the workers");
        files.checked = 2; // the two directories
        files.violations.extend(self.orphaned_on_coordinator.iter().map(|f| format!("coordinator: {f}")));
        files.violations.extend(self.orphaned_on_workers.iter().map(|f| format!("worker work directory: {f}")));
        vec![expiries, work, files]
    }
}
