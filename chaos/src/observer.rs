//! Watches the `checkpoints` table while the faults land, because the end state cannot say
//! everything: a completed trial's checkpoint is deleted, so only a look during the run
//! sees (1) whether each row names a file that exists in the artifact directory, and (2)
//! which checkpoint existed before each later attempt began, which the resume check needs.
//! A row seen naming a missing file is looked at again on the next sample, so a checkpoint
//! being replaced at that moment is not mistaken for a dangling row.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::Row;
use tokio::sync::watch;

use crate::db::Db;

/// A checkpoint row as seen at some moment.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SeenCheckpoint {
    pub trial_id: String,
    pub attempt: i64,
    pub epoch: i64,
    pub created_at: i64,
}

/// What the observer saw.
#[derive(Debug, Default)]
pub struct Observations {
    /// Every distinct checkpoint row seen.
    pub checkpoints: BTreeSet<SeenCheckpoint>,
    /// Row observations whose file was checked.
    pub rows_checked: u64,
    /// Rows that named a missing file on two samples running.
    pub dangling: Vec<String>,
    pub samples: u64,
    /// Samples that failed (the database restarting, say).
    pub failed_samples: u64,
}

/// Samples every `every` until `stop` turns true; returns the shared observations.
pub fn spawn(
    db: Db,
    artifacts: PathBuf,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) -> (Arc<Mutex<Observations>>, tokio::task::JoinHandle<()>) {
    let seen = Arc::new(Mutex::new(Observations::default()));
    let shared = seen.clone();
    let task = tokio::spawn(async move {
        // (trial, file) rows whose file was missing on the previous sample.
        let mut suspects: BTreeMap<(String, String), u32> = BTreeMap::new();
        loop {
            sample(&db, &artifacts, &shared, &mut suspects).await;
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.changed() => break,
            }
        }
        sample(&db, &artifacts, &shared, &mut suspects).await;
    });
    (seen, task)
}

async fn sample(
    db: &Db,
    artifacts: &std::path::Path,
    shared: &Mutex<Observations>,
    suspects: &mut BTreeMap<(String, String), u32>,
) {
    let rows = db.rows("SELECT trial_id, attempt, epoch, file, created_at FROM checkpoints").await;
    let mut seen = shared.lock().unwrap_or_else(|e| e.into_inner());
    seen.samples += 1;
    let Ok(rows) = rows else {
        seen.failed_samples += 1;
        return;
    };
    let mut missing_now = BTreeMap::new();
    for row in rows {
        let (Ok(trial_id), Ok(attempt), Ok(epoch), Ok(file), Ok(created_at)) = (
            row.try_get::<String, _>(0),
            row.try_get::<i64, _>(1),
            row.try_get::<i64, _>(2),
            row.try_get::<String, _>(3),
            row.try_get::<i64, _>(4),
        ) else {
            seen.failed_samples += 1;
            continue;
        };
        seen.rows_checked += 1;
        if !artifacts.join(&file).is_file() {
            let key = (trial_id.clone(), file.clone());
            let times = suspects.get(&key).copied().unwrap_or(0) + 1;
            if times == 2 {
                seen.dangling.push(format!(
                    "trial {trial_id}: checkpoint row names {file}, which is not in the artifact directory"
                ));
            }
            missing_now.insert(key, times);
        }
        seen.checkpoints.insert(SeenCheckpoint { trial_id, attempt, epoch, created_at });
    }
    *suspects = missing_now;
}
