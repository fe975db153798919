//! What each fault must have caused, and nothing else: every planned fault injected, no
//! process exiting unasked, a worker sent SIGTERM leaving cleanly and handing its trial back
//! (its attempt `released`, never left to expire), a partition outlasting the lease expiring
//! the attempt it cut off, and no attempt failing: killed processes and restarted databases
//! are not a trial's fault, so they must never use up its attempts as failures. (That no
//! live worker's lease expired is among the costs, [`crate::costs`].)

use sqlx::Row;

use crate::checks::Check;
use crate::db::{safe_id, Db};
use crate::run::Outcome;

/// The checks of the faulted run's effects.
pub async fn checks(db: &Db, run: &Outcome, planned: u32) -> anyhow::Result<Vec<Check>> {
    Ok(vec![
        processes(run, planned),
        leavers_released(db, run).await?,
        partitions_expired(db, run).await?,
        no_failures(db).await?,
    ])
}

/// Every planned fault was injected; no process exited unasked; every SIGTERM was answered
/// by a clean exit within a minute.
fn processes(run: &Outcome, planned: u32) -> Check {
    let mut check = Check {
        name: "processes: faults injected, exits only when told, clean SIGTERM exits",
        checked: u64::from(planned) + u64::from(run.workers_started),
        violations: run.findings.clone(),
    };
    if run.not_injected > 0 {
        check.violations.push(format!(
            "{} of {planned} planned faults were not injected: the sweep finished first (give it more trials or a shorter window)",
            run.not_injected
        ));
    }
    check
}

/// Each attempt a worker held when it was sent SIGTERM ended `released` (or `completed`, if it
/// was finishing just then).
async fn leavers_released(db: &Db, run: &Outcome) -> anyhow::Result<Check> {
    let mut check = Check::new("SIGTERM: the worker's trial handed back, not expired");
    for leaver in run.signalled.iter().filter(|s| s.signal == "TERM") {
        let Some(id) = leaver.worker_id.as_deref().and_then(safe_id) else {
            check.violations.push(format!("{} was sent SIGTERM before it logged its worker id", leaver.name));
            continue;
        };
        let at = leaver.at_ms;
        let held = db
            .rows(&format!(
                "SELECT trial_id, attempt, outcome, error FROM attempts WHERE worker_id = '{id}' \
                 AND started_at <= {at} AND (ended_at IS NULL OR ended_at >= {at})"
            ))
            .await?;
        for row in held {
            check.checked += 1;
            let (trial, attempt, outcome): (String, i64, String) = (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
            if outcome != "released" && outcome != "completed" {
                let error: Option<String> = row.try_get(3)?;
                check.violations.push(format!(
                    "trial {trial}: attempt {attempt} of {} (sent SIGTERM) ended {outcome}: {}",
                    leaver.name,
                    error.unwrap_or_default()
                ));
            }
        }
    }
    Ok(check)
}

/// The attempt each partition cut off ended `expired`: the partition outlasted the lease and
/// the worker's late reports did not revive it.
async fn partitions_expired(db: &Db, run: &Outcome) -> anyhow::Result<Check> {
    let mut check = Check::new("a partitioned worker's lease expired");
    for (trial, attempt) in &run.cut_attempts {
        check.checked += 1;
        let Some(id) = safe_id(trial) else { continue };
        let rows =
            db.rows(&format!("SELECT outcome FROM attempts WHERE trial_id = '{id}' AND attempt = {attempt}")).await?;
        let outcome: Option<String> = rows.first().map(|r| r.try_get(0)).transpose()?;
        if outcome.as_deref() != Some("expired") {
            check.violations.push(format!("trial {trial}: the cut attempt {attempt} ended {outcome:?}, not expired"));
        }
    }
    Ok(check)
}

/// No attempt ended `failed`: nothing in the run is the trial's fault.
async fn no_failures(db: &Db) -> anyhow::Result<Check> {
    let mut check = Check::new("no attempt failed (the faults are not the trials')");
    check.checked = db.count("SELECT count(*) FROM attempts").await? as u64;
    for row in db.rows("SELECT trial_id, attempt, worker_id, error FROM attempts WHERE outcome = 'failed'").await? {
        let (trial, attempt, worker): (String, i64, String) = (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
        let error: Option<String> = row.try_get(3)?;
        check
            .violations
            .push(format!("trial {trial}: attempt {attempt} on {worker} failed: {}", error.unwrap_or_default()));
    }
    Ok(check)
}
