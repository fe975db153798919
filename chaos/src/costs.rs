//! What the faults cost, beyond correctness: leases that expired although their worker was
//! alive and connected (only an outage of the coordinator or its database can cause that),
//! finished epochs whose work was lost (a later attempt resumed from before them), split by
//! whose doing the end of the attempt that finished them was, and files left behind on either
//! side. Outages of allsweep's own infrastructure must cost nothing: no expiry, no epoch lost,
//! no file. Epochs lost by a killed or cut-off worker are the price of one checkpoint per epoch
//! (an epoch whose metrics arrived but whose checkpoint did not).

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
    /// Finished epochs lost (a later attempt resumed from before them) whose attempt ended
    /// with its worker alive (SIGTERM hand-backs, outages): each (trial, epoch) once.
    pub rerun_after_live: Vec<String>,
    pub epochs_rerun_after_live: i64,
    /// Finished epochs lost whose attempt's worker was killed or cut off.
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
        .rows("SELECT trial_id, attempt, worker_id, started_at, ended_at, outcome, resumed_from_epoch FROM attempts")
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
            },
        );
    }
    for ((trial, number), a) in &attempts {
        if a.outcome == "expired" && ending(run, trial, *number, &a.worker, a.started, a.ended) == Ending::Live {
            costs.infrastructure_expiries.push(format!(
                "trial {trial}: attempt {number} of live worker {} expired (held {} ms)",
                a.worker,
                a.ended.map_or(-1, |e| e - a.started)
            ));
        }
        costs.expired += u64::from(a.outcome == "expired");
    }
    // Each epoch's metrics are stored once, by the attempt that finished it first. The epoch's
    // work was lost when a later attempt resumed from before it; the loss is that attempt's
    // ending's doing.
    let finished_by = db.rows("SELECT trial_id, epoch, min(attempt) FROM metrics GROUP BY trial_id, epoch").await?;
    for row in finished_by {
        let (trial, epoch, by): (String, i64, i64) = (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
        let lost = attempts
            .range((trial.clone(), by + 1)..)
            .take_while(|((t, _), _)| *t == trial)
            .any(|(_, later)| later.resumed_from.unwrap_or(0) < epoch);
        let Some(a) = attempts.get(&(trial.clone(), by)).filter(|_| lost) else { continue };
        match ending(run, &trial, by, &a.worker, a.started, a.ended) {
            Ending::Live => {
                costs.epochs_rerun_after_live += 1;
                costs.rerun_after_live.push(format!(
                    "trial {trial}: epoch {epoch}, finished by attempt {by} of live worker {} (ended {}), was trained again",
                    a.worker, a.outcome
                ));
            }
            Ending::Killed | Ending::Cut => costs.epochs_rerun_after_worker_faults += 1,
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
        let mut work = Check::new("no finished epoch lost by a live worker's attempt");
        work.checked = attempts;
        work.violations.clone_from(&self.rerun_after_live);
        let mut files = Check::new("no orphaned file on the coordinator or the workers");
        files.checked = 2; // the two directories
        files.violations.extend(self.orphaned_on_coordinator.iter().map(|f| format!("coordinator: {f}")));
        files.violations.extend(self.orphaned_on_workers.iter().map(|f| format!("worker work directory: {f}")));
        vec![expiries, work, files]
    }
}
