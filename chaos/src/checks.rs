//! The invariants, checked with SQL on the database the faulted run left behind (and, for
//! checkpoint files and resumes, on what the observer saw during the run). Each check counts
//! what it looked at and lists every violation with the trial at fault.

use std::collections::BTreeMap;
use std::path::Path;

use sqlx::any::AnyRow;
use sqlx::Row;

use crate::db::Db;
use crate::observer::Observations;

/// One invariant's result.
#[derive(Debug, Clone)]
pub struct Check {
    pub name: &'static str,
    /// How many things (trials, rows, attempts...) it looked at.
    pub checked: u64,
    pub violations: Vec<String>,
}

impl Check {
    pub fn new(name: &'static str) -> Self {
        Self { name, checked: 0, violations: Vec::new() }
    }
}

/// Every store invariant on `db` after a run of `trials` trials.
pub async fn store_invariants(
    db: &Db,
    trials: u32,
    artifacts: &Path,
    seen: &Observations,
) -> anyhow::Result<Vec<Check>> {
    Ok(vec![
        completed_once(db, trials).await?,
        results_once(db).await?,
        metric_points_once(db).await?,
        no_attempt_running(db).await?,
        checkpoint_files(db, artifacts, seen).await?,
        resumed_from_checkpoints(db, seen).await?,
    ])
}

/// Every trial is completed, by exactly one attempt with outcome `completed`: its last one.
async fn completed_once(db: &Db, trials: u32) -> anyhow::Result<Check> {
    let mut check = Check::new("every trial completed exactly once");
    let rows = db.rows("SELECT id, state, attempt FROM trials ORDER BY id").await?;
    let attempts = db.rows("SELECT trial_id, attempt, outcome FROM attempts").await?;
    let mut completed: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    let mut count: BTreeMap<String, i64> = BTreeMap::new();
    for a in &attempts {
        let trial: String = a.try_get(0)?;
        *count.entry(trial.clone()).or_default() += 1;
        if a.try_get::<String, _>(2)? == "completed" {
            completed.entry(trial).or_default().push(a.try_get(1)?);
        }
    }
    if rows.len() != trials as usize {
        check.violations.push(format!("{} trials in the database, {trials} expected", rows.len()));
    }
    for row in &rows {
        check.checked += 1;
        let (id, state, attempt): (String, String, i64) = (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
        let done = completed.get(&id).cloned().unwrap_or_default();
        if state != "completed" {
            check.violations.push(format!("trial {id} is {state}"));
        }
        if done != [attempt] {
            check
                .violations
                .push(format!("trial {id}: completed attempts {done:?}, expected exactly its last ({attempt})"));
        }
        if count.get(&id).copied().unwrap_or(0) != attempt {
            check
                .violations
                .push(format!("trial {id}: {} attempt rows for {attempt} leases", count.get(&id).unwrap_or(&0)));
        }
    }
    Ok(check)
}

/// One row of final results per trial.
async fn results_once(db: &Db) -> anyhow::Result<Check> {
    let mut check = Check::new("one result row per trial");
    let rows = db
        .rows("SELECT t.id, count(r.trial_id) FROM trials t LEFT JOIN results r ON r.trial_id = t.id GROUP BY t.id")
        .await?;
    for row in rows {
        check.checked += 1;
        let (id, n): (String, i64) = (row.try_get(0)?, row.try_get(1)?);
        if n != 1 {
            check.violations.push(format!("trial {id} has {n} result rows"));
        }
    }
    Ok(check)
}

/// No (trial, epoch, metric) twice, and each metric of each trial at every epoch 1..=epochs
/// (AUC may be missing where it is undefined; the comparison with the fault-free run covers it).
async fn metric_points_once(db: &Db) -> anyhow::Result<Check> {
    let mut check = Check::new("metric points: none twice, one per epoch");
    let duplicates = db
        .rows("SELECT trial_id, epoch, name, count(*) FROM metrics GROUP BY trial_id, epoch, name HAVING count(*) > 1")
        .await?;
    for row in duplicates {
        let (trial, epoch, name, n): (String, i64, String, i64) =
            (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?, row.try_get(3)?);
        check.violations.push(format!("trial {trial}: {name} at epoch {epoch} stored {n} times"));
    }
    let per_metric = db
        .rows(
            "SELECT m.trial_id, m.name, count(*), count(DISTINCT m.epoch), min(m.epoch), max(m.epoch), t.epochs \
             FROM metrics m JOIN trials t ON t.id = m.trial_id GROUP BY m.trial_id, m.name, t.epochs",
        )
        .await?;
    for row in per_metric {
        check.checked += 1;
        let (trial, name): (String, String) = (row.try_get(0)?, row.try_get(1)?);
        let [n, distinct, first, last, epochs] = ints(&row, 2)?;
        let whole = n == epochs && distinct == epochs && first == 1 && last == epochs;
        if !whole && name != "auc" {
            check.violations.push(format!(
                "trial {trial}: {n} points of {name} (epochs {first}..={last}), expected one per epoch 1..={epochs}"
            ));
        }
    }
    let without =
        db.rows("SELECT t.id FROM trials t WHERE NOT EXISTS (SELECT 1 FROM metrics m WHERE m.trial_id = t.id)").await?;
    for row in without {
        check.violations.push(format!("trial {} has no metric points", row.try_get::<String, _>(0)?));
    }
    Ok(check)
}

/// No attempt still `running` once the sweep is finished.
async fn no_attempt_running(db: &Db) -> anyhow::Result<Check> {
    let mut check = Check::new("no attempt left running");
    check.checked = db.count("SELECT count(*) FROM attempts").await? as u64;
    for row in db.rows("SELECT trial_id, attempt, worker_id FROM attempts WHERE outcome = 'running'").await? {
        let (trial, attempt, worker): (String, i64, String) = (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
        check.violations.push(format!("trial {trial}: attempt {attempt} of worker {worker} still running"));
    }
    Ok(check)
}

/// Every checkpoint row, seen during the run or left at its end, names a file that exists.
async fn checkpoint_files(db: &Db, artifacts: &Path, seen: &Observations) -> anyhow::Result<Check> {
    let mut check = Check::new("checkpoint rows name existing files");
    check.checked = seen.rows_checked;
    check.violations.extend(seen.dangling.iter().cloned());
    for row in db.rows("SELECT trial_id, file FROM checkpoints").await? {
        check.checked += 1;
        let (trial, file): (String, String) = (row.try_get(0)?, row.try_get(1)?);
        if !artifacts.join(&file).is_file() {
            check.violations.push(format!("trial {trial}: checkpoint row names {file}, missing at the end"));
        }
    }
    Ok(check)
}

/// A later attempt that began while a checkpoint of its trial existed resumed from it (or a
/// later one): `resumed_from_epoch` at least that checkpoint's epoch. A resumed attempt is
/// never a first one, and resumes from inside the trial.
async fn resumed_from_checkpoints(db: &Db, seen: &Observations) -> anyhow::Result<Check> {
    let mut check = Check::new("later attempts resumed from the checkpoint");
    let rows = db
        .rows(
            "SELECT a.trial_id, a.attempt, a.started_at, a.resumed_from_epoch, t.epochs \
             FROM attempts a JOIN trials t ON t.id = a.trial_id",
        )
        .await?;
    for row in rows {
        let (trial, attempt, started_at): (String, i64, i64) = (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
        let resumed: Option<i64> = row.try_get(3)?;
        let epochs: i64 = row.try_get(4)?;
        let before = seen
            .checkpoints
            .iter()
            .filter(|c| c.trial_id == trial && c.attempt < attempt && c.created_at < started_at)
            .map(|c| c.epoch)
            .max();
        if let Some(epoch) = before {
            check.checked += 1;
            if resumed.is_none_or(|r| r < epoch) {
                check.violations.push(format!(
                    "trial {trial}: attempt {attempt} resumed from {resumed:?}, but a checkpoint at epoch {epoch} existed before it began"
                ));
            }
        }
        if let Some(r) = resumed {
            check.checked += 1;
            if attempt < 2 || r < 0 || r > epochs {
                check.violations.push(format!("trial {trial}: attempt {attempt} resumed from epoch {r} of {epochs}"));
            }
        }
    }
    Ok(check)
}

/// `N` integer columns of `row` from column `from`.
fn ints<const N: usize>(row: &AnyRow, from: usize) -> anyhow::Result<[i64; N]> {
    let mut out = [0; N];
    for (i, slot) in out.iter_mut().enumerate() {
        *slot = row.try_get(from + i)?;
    }
    Ok(out)
}
