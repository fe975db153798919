//! What the SQLite and Postgres stores share: the SQL both dialects read alike (`$n`
//! parameters work in both), decoding rows into domain types, and the rules that decide
//! whether a write is superseded and whether a failed trial is tried again.

use sqlx::Row;

use super::{
    AttemptRow, CheckpointRow, FinalMetrics, MetricPoint, Requeue, Result, ResultRow, RocPoint, StoreError, SweepRow,
    TrialRow, TrialState, WorkerRow,
};

pub(super) const SWEEP_COLUMNS: &str = "id, name, state, spec_toml, keep_checkpoints, max_attempts, created_at";

pub(super) const INSERT_SWEEP: &str = "INSERT INTO sweeps (id, name, state, spec_toml, keep_checkpoints, \
     max_attempts, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING";

pub(super) const INSERT_TRIAL: &str = "INSERT INTO trials (id, sweep_id, ordinal, label, params_json, \
     config_key, config_toml, seed, dataset, arch, width, loss, base_loss, gamma, omega, epsilon, lr, \
     batch_size, epochs, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, \
     $14, $15, $16, $17, $18, $19, $20)";

pub(super) const SELECT_TRIALS: &str = "SELECT id, sweep_id, ordinal, label, params_json, config_key, \
     config_toml, seed, state, attempt, worker_id, lease_expires_at, epoch, epochs, error \
     FROM trials WHERE sweep_id = $1 ORDER BY ordinal";

pub(super) const SELECT_ATTEMPTS: &str = "SELECT trial_id, attempt, worker_id, started_at, ended_at, outcome, \
     resumed_from_epoch, error FROM attempts WHERE trial_id = $1 ORDER BY attempt";

pub(super) const UPSERT_WORKER: &str = "INSERT INTO workers (id, host, device, memory_bytes, slots, version, \
     registered_at, last_seen_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO UPDATE SET \
     host = excluded.host, device = excluded.device, memory_bytes = excluded.memory_bytes, \
     slots = excluded.slots, version = excluded.version, last_seen_at = excluded.last_seen_at";

pub(super) const SELECT_WORKERS: &str = "SELECT w.id, w.host, w.device, w.memory_bytes, w.slots, w.version, \
     w.registered_at, w.last_seen_at, (SELECT count(*) FROM trials t WHERE t.worker_id = w.id \
     AND t.state = 'running') AS running FROM workers w ORDER BY w.id";

pub(super) const INSERT_ATTEMPT: &str = "INSERT INTO attempts (trial_id, attempt, worker_id, started_at, \
     outcome, resumed_from_epoch) VALUES ($1, $2, $3, $4, 'running', $5)";

/// Closes an attempt: `$3` outcome, `$4` time, `$5` error.
pub(super) const CLOSE_ATTEMPT: &str =
    "UPDATE attempts SET outcome = $3, ended_at = $4, error = $5 WHERE trial_id = $1 AND attempt = $2";

/// Attempts that count against `max_attempts`: released ones do not.
pub(super) const COUNT_FAILURES: &str =
    "SELECT count(*) AS n FROM attempts WHERE trial_id = $1 AND outcome IN ('failed', 'expired')";

/// Renews one lease; no row changed means the worker must stop that trial.
pub(super) const RENEW: &str = "UPDATE trials SET lease_expires_at = $4, epoch = $5 \
     WHERE id = $1 AND attempt = $2 AND worker_id = $3 AND state = 'running'";

/// Gives one leased trial back to the queue.
pub(super) const RELEASE: &str = "UPDATE trials SET state = 'queued', worker_id = NULL, lease_expires_at = NULL \
     WHERE id = $1 AND attempt = $2 AND worker_id = $3 AND state = 'running'";

/// A trial whose attempt ended without completing: `$2` state (queued or failed), `$3` error,
/// `$4` finished_at (set only when failed for good).
pub(super) const END_ATTEMPT_ON_TRIAL: &str = "UPDATE trials SET state = $2, error = $3, worker_id = NULL, \
     lease_expires_at = NULL, finished_at = $4 WHERE id = $1";

/// Stores a metric point unless (trial, epoch, name) has one.
pub(super) const INSERT_METRIC: &str = "INSERT INTO metrics (trial_id, epoch, name, value, attempt) \
     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (trial_id, epoch, name) DO NOTHING";

pub(super) const UPSERT_CHECKPOINT: &str = "INSERT INTO checkpoints (trial_id, attempt, epoch, step, file, \
     sha256, bytes, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (trial_id) DO UPDATE SET \
     attempt = excluded.attempt, epoch = excluded.epoch, step = excluded.step, file = excluded.file, \
     sha256 = excluded.sha256, bytes = excluded.bytes, created_at = excluded.created_at";

pub(super) const SELECT_CHECKPOINT: &str =
    "SELECT trial_id, attempt, epoch, step, file, sha256, bytes FROM checkpoints WHERE trial_id = $1";

pub(super) const INSERT_RESULT: &str = "INSERT INTO results (trial_id, jaccard, dice, precision, recall, tnr, \
     accuracy, auc, split, epochs, parameters, completed_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)";

pub(super) const INSERT_ROC: &str =
    "INSERT INTO roc_points (trial_id, idx, threshold, fpr, tpr) VALUES ($1, $2, $3, $4, $5)";

pub(super) const COMPLETE_TRIAL: &str = "UPDATE trials SET state = 'completed', error = NULL, \
     lease_expires_at = NULL, epoch = $2, finished_at = $3 WHERE id = $1";

/// Marks a sweep finished once none of its trials is queued, running or cancelled.
pub(super) const FINISH_SWEEP_IF_DONE: &str = "UPDATE sweeps SET state = 'finished', finished_at = $2 \
     WHERE id = $1 AND state = 'active' AND NOT EXISTS (SELECT 1 FROM trials t WHERE t.sweep_id = $1 \
     AND t.state NOT IN ('completed', 'failed'))";

pub(super) const CANCEL_ATTEMPTS: &str = "UPDATE attempts SET outcome = 'cancelled', ended_at = $2 \
     WHERE outcome = 'running' AND trial_id IN (SELECT id FROM trials WHERE sweep_id = $1 AND state = 'running')";

pub(super) const CANCEL_TRIALS: &str = "UPDATE trials SET state = 'cancelled', lease_expires_at = NULL, \
     finished_at = $2 WHERE sweep_id = $1 AND state IN ('queued', 'running')";

pub(super) const SELECT_RESULTS: &str = "SELECT t.id, t.label, t.params_json, t.config_key, t.seed, \
     r.jaccard, r.dice, r.precision, r.recall, r.tnr, r.accuracy, r.auc, r.split \
     FROM results r JOIN trials t ON t.id = r.trial_id WHERE t.sweep_id = $1 ORDER BY t.ordinal";

pub(super) const SELECT_METRICS: &str =
    "SELECT epoch, name, value FROM metrics WHERE trial_id = $1 ORDER BY epoch, name";

pub(super) const SELECT_ROC: &str = "SELECT threshold, fpr, tpr FROM roc_points WHERE trial_id = $1 ORDER BY idx";

/// Typed column access that reads the same on both backends: every integer column is a
/// BIGINT, every real a DOUBLE PRECISION.
pub(super) trait Cols {
    fn int(&self, col: &str) -> Result<i64>;
    fn int_opt(&self, col: &str) -> Result<Option<i64>>;
    fn text(&self, col: &str) -> Result<String>;
    fn text_opt(&self, col: &str) -> Result<Option<String>>;
    fn real_opt(&self, col: &str) -> Result<Option<f64>>;
    fn flag(&self, col: &str) -> Result<bool>;

    /// A real that SQLite may hold as NULL because it was NaN.
    fn real(&self, col: &str) -> Result<f64> {
        Ok(self.real_opt(col)?.unwrap_or(f64::NAN))
    }
}

macro_rules! impl_cols {
    ($row:ty) => {
        impl Cols for $row {
            fn int(&self, col: &str) -> Result<i64> {
                Ok(self.try_get(col)?)
            }
            fn int_opt(&self, col: &str) -> Result<Option<i64>> {
                Ok(self.try_get(col)?)
            }
            fn text(&self, col: &str) -> Result<String> {
                Ok(self.try_get(col)?)
            }
            fn text_opt(&self, col: &str) -> Result<Option<String>> {
                Ok(self.try_get(col)?)
            }
            fn real_opt(&self, col: &str) -> Result<Option<f64>> {
                Ok(self.try_get(col)?)
            }
            fn flag(&self, col: &str) -> Result<bool> {
                Ok(self.try_get(col)?)
            }
        }
    };
}

impl_cols!(sqlx::sqlite::SqliteRow);
impl_cols!(sqlx::postgres::PgRow);

/// A count or number stored as BIGINT, back to the domain's u32.
pub(super) fn small(v: i64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

pub(super) fn sweep_row(r: &impl Cols) -> Result<SweepRow> {
    Ok(SweepRow {
        id: r.text("id")?,
        name: r.text("name")?,
        state: r.text("state")?,
        spec_toml: r.text("spec_toml")?,
        keep_checkpoints: r.flag("keep_checkpoints")?,
        max_attempts: small(r.int("max_attempts")?),
        created_at: r.int("created_at")?,
    })
}

pub(super) fn trial_row(r: &impl Cols) -> Result<TrialRow> {
    let state = r.text("state")?;
    Ok(TrialRow {
        id: r.text("id")?,
        sweep_id: r.text("sweep_id")?,
        ordinal: small(r.int("ordinal")?),
        label: r.text("label")?,
        params_json: r.text("params_json")?,
        config_key: r.text("config_key")?,
        config_toml: r.text("config_toml")?,
        seed: r.int("seed")? as u64,
        state: parse_state(&state)?,
        attempt: small(r.int("attempt")?),
        worker_id: r.text_opt("worker_id")?,
        lease_expires_at: r.int_opt("lease_expires_at")?,
        epoch: small(r.int("epoch")?),
        epochs: small(r.int("epochs")?),
        error: r.text_opt("error")?,
    })
}

pub(super) fn attempt_row(r: &impl Cols) -> Result<AttemptRow> {
    Ok(AttemptRow {
        trial_id: r.text("trial_id")?,
        attempt: small(r.int("attempt")?),
        worker_id: r.text("worker_id")?,
        started_at: r.int("started_at")?,
        ended_at: r.int_opt("ended_at")?,
        outcome: r.text("outcome")?,
        resumed_from_epoch: r.int_opt("resumed_from_epoch")?.map(small),
        error: r.text_opt("error")?,
    })
}

pub(super) fn worker_row(r: &impl Cols) -> Result<WorkerRow> {
    Ok(WorkerRow {
        id: r.text("id")?,
        host: r.text("host")?,
        device: r.text("device")?,
        memory_bytes: r.int("memory_bytes")? as u64,
        slots: small(r.int("slots")?),
        version: r.text("version")?,
        registered_at: r.int("registered_at")?,
        last_seen_at: r.int("last_seen_at")?,
        running: small(r.int("running")?),
    })
}

pub(super) fn checkpoint_row(r: &impl Cols) -> Result<CheckpointRow> {
    Ok(CheckpointRow {
        trial_id: r.text("trial_id")?,
        attempt: small(r.int("attempt")?),
        epoch: small(r.int("epoch")?),
        step: small(r.int("step")?),
        file: r.text("file")?,
        sha256: r.text("sha256")?,
        bytes: r.int("bytes")? as u64,
    })
}

pub(super) fn result_row(r: &impl Cols) -> Result<ResultRow> {
    Ok(ResultRow {
        trial_id: r.text("id")?,
        label: r.text("label")?,
        params_json: r.text("params_json")?,
        config_key: r.text("config_key")?,
        seed: r.int("seed")? as u64,
        metrics: FinalMetrics {
            jaccard: r.real("jaccard")?,
            dice: r.real("dice")?,
            precision: r.real("precision")?,
            recall: r.real("recall")?,
            tnr: r.real("tnr")?,
            accuracy: r.real("accuracy")?,
            auc: r.real_opt("auc")?,
        },
        split: r.text("split")?,
    })
}

pub(super) fn metric_point(r: &impl Cols) -> Result<MetricPoint> {
    Ok(MetricPoint { epoch: small(r.int("epoch")?), name: r.text("name")?, value: r.real("value")? })
}

pub(super) fn roc_point(r: &impl Cols) -> Result<RocPoint> {
    Ok(RocPoint { threshold: r.real("threshold")?, fpr: r.real("fpr")?, tpr: r.real("tpr")? })
}

fn parse_state(s: &str) -> Result<TrialState> {
    TrialState::parse(s).ok_or_else(|| StoreError::Database(sqlx::Error::Decode(format!("trial state {s:?}").into())))
}

/// What a write by (trial, attempt) needs to know, once it is known to hold the lease.
pub(super) struct Holder {
    pub sweep_id: String,
    pub worker_id: String,
    pub keep_checkpoints: bool,
    pub max_attempts: i64,
}

/// The trial a worker writes for (`$1`), with what the write needs to know of its sweep.
pub(super) const HOLDER: &str = "SELECT t.state, t.attempt, t.sweep_id, t.worker_id, s.keep_checkpoints, \
     s.max_attempts FROM trials t JOIN sweeps s ON s.id = t.sweep_id WHERE t.id = $1";

/// Refuses a write by `attempt` unless it holds `trial_id`, given the trial's row as read
/// (and locked) by [`HOLDER`]; `None` when there is no such trial.
pub(super) fn holder(trial_id: &str, attempt: u32, row: Option<&impl Cols>) -> Result<Holder> {
    let Some(r) = row else {
        return Err(StoreError::NotFound(format!("trial {trial_id}")));
    };
    let (state, current) = (r.text("state")?, r.int("attempt")?);
    let reason = if current != i64::from(attempt) {
        format!("the trial is at attempt {current} now")
    } else if state != "running" {
        format!("the trial is {state}")
    } else {
        return Ok(Holder {
            sweep_id: r.text("sweep_id")?,
            worker_id: r.text_opt("worker_id")?.unwrap_or_default(),
            keep_checkpoints: r.flag("keep_checkpoints")?,
            max_attempts: r.int("max_attempts")?,
        });
    };
    Err(StoreError::Superseded { trial_id: trial_id.to_string(), attempt, reason })
}

/// What becomes of a trial whose attempt failed or expired, `failures` counting this one.
pub(super) fn after_failure(permanent: bool, failures: i64, max_attempts: i64) -> Requeue {
    if permanent || failures >= max_attempts {
        Requeue::Failed
    } else {
        Requeue::Queued
    }
}

/// The error a trial keeps when its attempt failed or expired.
pub(super) fn trial_error(outcome: Requeue, permanent: bool, failures: i64, error: &str) -> String {
    match outcome {
        Requeue::Failed if !permanent => format!("gave up after {failures} failed attempts; last: {error}"),
        _ => error.to_string(),
    }
}

pub(super) fn requeue_state(outcome: Requeue) -> &'static str {
    match outcome {
        Requeue::Queued => "queued",
        Requeue::Failed => "failed",
    }
}

/// The migrations of one dialect, in order: (version, name, SQL).
pub(super) type Migrations = &'static [(i64, &'static str, &'static str)];

pub(super) const SCHEMA_VERSION_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_version (\
     version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)";
