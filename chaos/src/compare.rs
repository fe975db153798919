//! The faulted run against the fault-free one. Training is deterministic on CPU and resumes
//! exactly, so however often a trial was killed, handed back or re-leased, its numbers must
//! be those of the uninterrupted run: the final test metrics and ROC curve, and every epoch's
//! losses and validation metrics (all but the timings). Both runs used the same spec, so
//! their trial ids are the same.

use std::collections::BTreeMap;

use sqlx::Row;

use crate::checks::Check;
use crate::db::Db;

/// Values keyed by (trial, what), `None` where the database holds NULL.
type Values = BTreeMap<(String, String), Option<f64>>;

/// The comparisons, and the largest absolute difference found over all of them.
pub async fn against_fault_free(chaos: &Db, fault_free: &Db, tolerance: f64) -> anyhow::Result<(Vec<Check>, f64)> {
    let pairs = [
        ("final metrics equal the fault-free run", final_metrics(chaos).await?, final_metrics(fault_free).await?),
        ("ROC curves equal the fault-free run", roc_points(chaos).await?, roc_points(fault_free).await?),
        ("epoch metrics equal the fault-free run", epoch_metrics(chaos).await?, epoch_metrics(fault_free).await?),
    ];
    let mut max_diff = 0.0_f64;
    let mut checks = Vec::new();
    for (name, got, expected) in pairs {
        let (check, diff) = compare(name, got, expected, tolerance);
        max_diff = max_diff.max(diff);
        checks.push(check);
    }
    Ok((checks, max_diff))
}

async fn final_metrics(db: &Db) -> anyhow::Result<Values> {
    let columns = ["jaccard", "dice", "precision", "recall", "tnr", "accuracy", "auc"];
    let rows = db.rows(&format!("SELECT trial_id, {} FROM results", columns.join(", "))).await?;
    let mut values = Values::new();
    for row in rows {
        let trial: String = row.try_get(0)?;
        for (i, column) in columns.iter().enumerate() {
            values.insert((trial.clone(), column.to_string()), row.try_get(i + 1)?);
        }
    }
    Ok(values)
}

async fn roc_points(db: &Db) -> anyhow::Result<Values> {
    let mut values = Values::new();
    for row in db.rows("SELECT trial_id, idx, threshold, fpr, tpr FROM roc_points").await? {
        let (trial, idx): (String, i64) = (row.try_get(0)?, row.try_get(1)?);
        values.insert((trial.clone(), format!("roc[{idx}].threshold")), row.try_get(2)?);
        values.insert((trial.clone(), format!("roc[{idx}].fpr")), Some(row.try_get(3)?));
        values.insert((trial, format!("roc[{idx}].tpr")), Some(row.try_get(4)?));
    }
    Ok(values)
}

async fn epoch_metrics(db: &Db) -> anyhow::Result<Values> {
    let rows = db
        .rows(
            "SELECT trial_id, epoch, name, value FROM metrics \
                 WHERE name NOT IN ('seconds', 'train_images_per_second')",
        )
        .await?;
    let mut values = Values::new();
    for row in rows {
        let (trial, epoch, name): (String, i64, String) = (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
        values.insert((trial, format!("{name}@{epoch}")), row.try_get(3)?);
    }
    Ok(values)
}

/// Every key in either run, equal within `tolerance` in both (NULL only where the other is NULL).
fn compare(name: &'static str, chaos: Values, fault_free: Values, tolerance: f64) -> (Check, f64) {
    let mut check = Check { name, checked: 0, violations: Vec::new() };
    let mut max_diff = 0.0_f64;
    for ((trial, what), expected) in &fault_free {
        check.checked += 1;
        match (chaos.get(&(trial.clone(), what.clone())), expected) {
            (None, _) => check.violations.push(format!("trial {trial}: {what} missing (fault-free: {expected:?})")),
            (Some(Some(got)), Some(want)) => {
                let diff = (got - want).abs();
                max_diff = max_diff.max(diff);
                if diff > tolerance || diff.is_nan() {
                    check.violations.push(format!("trial {trial}: {what} = {got}, fault-free {want} (diff {diff:e})"));
                }
            }
            (Some(None), None) => {}
            (Some(got), want) => check.violations.push(format!("trial {trial}: {what} = {got:?}, fault-free {want:?}")),
        }
    }
    for (trial, what) in chaos.keys().filter(|k| !fault_free.contains_key(*k)) {
        check.violations.push(format!("trial {trial}: {what} only in the faulted run"));
    }
    (check, max_diff)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(entries: &[(&str, Option<f64>)]) -> Values {
        entries.iter().map(|(k, v)| (("t1".to_string(), k.to_string()), *v)).collect()
    }

    #[test]
    fn equal_runs_pass_and_report_their_largest_difference() {
        let a = values(&[("dice", Some(0.5)), ("auc", None)]);
        let b = values(&[("dice", Some(0.5 + 1e-9)), ("auc", None)]);
        let (check, diff) = compare("x", a, b, 1e-6);
        assert!(check.violations.is_empty(), "{:?}", check.violations);
        assert_eq!(check.checked, 2);
        assert!(diff > 0.0 && diff < 1e-8);
    }

    #[test]
    fn a_difference_a_missing_value_and_an_extra_one_are_each_violations() {
        let chaos = values(&[("dice", Some(0.6)), ("auc", Some(0.9)), ("extra", Some(1.0))]);
        let fault_free = values(&[("dice", Some(0.5)), ("auc", None), ("recall", Some(0.1))]);
        let (check, _) = compare("x", chaos, fault_free, 1e-6);
        assert_eq!(check.violations.len(), 4, "{:?}", check.violations);
    }
}
