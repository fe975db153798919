//! Decoding rows into domain types, alike on both databases (every integer column is a
//! BIGINT, every real a DOUBLE PRECISION), and the check that a worker's write comes from
//! the worker and attempt that hold the trial.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::Drain;
use super::{
    AttemptOutcome, AttemptRow, CheckpointRow, FinalMetrics, KerasMetrics, MetricPoint, Result, ResultRow, RocPoint,
    StoreError, SweepRow, SweepState, TokenRow, Touched, TrialRow, TrialState, WorkerRow,
};
use crate::access::Role;

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

impl Cols for AnyRow {
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
    /// A BOOLEAN, selected as 0 or 1 (see `SWEEP_COLUMNS`).
    fn flag(&self, col: &str) -> Result<bool> {
        Ok(self.int(col)? != 0)
    }
}

/// A count or number stored as BIGINT, back to the domain's u32.
pub(super) fn small(v: i64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

pub(super) fn sweep_row(r: &impl Cols) -> Result<SweepRow> {
    Ok(SweepRow {
        id: r.text("id")?,
        name: r.text("name")?,
        state: parse_word(SweepState::parse, "sweep state", &r.text("state")?)?,
        spec_toml: r.text("spec_toml")?,
        keep_checkpoints: r.flag("keep_checkpoints")?,
        max_attempts: small(r.int("max_attempts")?),
        created_at: r.int("created_at")?,
        early_stopping: r.text_opt("early_stopping")?,
    })
}

pub(super) fn trial_row(r: &impl Cols) -> Result<TrialRow> {
    Ok(TrialRow {
        id: r.text("id")?,
        sweep_id: r.text("sweep_id")?,
        ordinal: small(r.int("ordinal")?),
        label: r.text("label")?,
        params_json: r.text("params_json")?,
        config_key: r.text("config_key")?,
        config_toml: r.text("config_toml")?,
        seed: r.int("seed")? as u64,
        state: parse_word(TrialState::parse, "trial state", &r.text("state")?)?,
        attempt: small(r.int("attempt")?),
        worker_id: r.text_opt("worker_id")?,
        lease_expires_at: r.int_opt("lease_expires_at")?,
        epoch: small(r.int("epoch")?),
        epochs: small(r.int("epochs")?),
        error: r.text_opt("error")?,
        memory_bytes: r.int("memory_bytes")?.max(0) as u64,
        group_id: r.text_opt("group_id")?,
        hold: r.text_opt("hold")?,
        stopped_epoch: r.int_opt("stopped_epoch")?.map(small),
        stop_rule: r.text_opt("stop_rule")?,
        note: r.text_opt("note")?,
    })
}

pub(super) fn attempt_row(r: &impl Cols) -> Result<AttemptRow> {
    Ok(AttemptRow {
        trial_id: r.text("trial_id")?,
        attempt: small(r.int("attempt")?),
        worker_id: r.text("worker_id")?,
        started_at: r.int("started_at")?,
        ended_at: r.int_opt("ended_at")?,
        outcome: parse_word(AttemptOutcome::parse, "attempt outcome", &r.text("outcome")?)?,
        resumed_from_epoch: r.int_opt("resumed_from_epoch")?.map(small),
        error: r.text_opt("error")?,
        cause: r.text_opt("cause")?,
        group_id: r.text_opt("group_id")?,
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
        gpus: match r.text_opt("gpus")? {
            // A value the coordinator did not write reads as no GPUs rather than failing the list.
            Some(json) => serde_json::from_str(&json).unwrap_or_default(),
            None => Vec::new(),
        },
        drain: drain(r)?,
    })
}

pub(super) fn touched(r: &impl Cols) -> Result<Touched> {
    Ok(Touched { slots: small(r.int("slots")?), drain: drain(r)? })
}

/// `workers.drain`; a value the coordinator did not write reads as `finish` (lease nothing).
fn drain(r: &impl Cols) -> Result<Option<Drain>> {
    Ok(r.text_opt("drain")?.map(|word| Drain::parse(&word).unwrap_or(Drain::Finish)))
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
            keras: keras_metrics(r)?,
        },
        split: r.text("split")?,
        selected_epoch: r.int_opt("selected_epoch")?.map(small),
    })
}

/// The Keras-style columns of a result: all four, or none (a result stored before them).
fn keras_metrics(r: &impl Cols) -> Result<Option<KerasMetrics>> {
    let read = [
        r.real_opt("keras_jaccard")?,
        r.real_opt("keras_dice")?,
        r.real_opt("keras_recall")?,
        r.real_opt("keras_tnr")?,
    ];
    Ok(match read {
        [Some(jaccard), Some(dice), Some(recall), Some(tnr)] => Some(KerasMetrics { jaccard, dice, recall, tnr }),
        _ => None,
    })
}

pub(super) fn metric_point(r: &impl Cols) -> Result<MetricPoint> {
    Ok(MetricPoint { epoch: small(r.int("epoch")?), name: r.text("name")?, value: r.real("value")? })
}

pub(super) fn token_row(r: &impl Cols) -> Result<TokenRow> {
    Ok(TokenRow {
        id: r.text("id")?,
        name: r.text("name")?,
        role: parse_word(Role::parse, "role", &r.text("role")?)?,
        hash: r.text("hash")?,
        created_at: r.int("created_at")?,
        revoked_at: r.int_opt("revoked_at")?,
    })
}

pub(super) fn roc_point(r: &impl Cols) -> Result<RocPoint> {
    Ok(RocPoint { threshold: r.real("threshold")?, fpr: r.real("fpr")?, tpr: r.real("tpr")? })
}

/// A state word from the database; an unknown one means the schema and the code disagree.
pub(super) fn parse_word<T>(parse: fn(&str) -> Option<T>, what: &str, word: &str) -> Result<T> {
    parse(word).ok_or_else(|| StoreError::Database(sqlx::Error::Decode(format!("unknown {what} {word:?}").into())))
}

/// What a write by (trial, attempt) needs to know, once it is known to hold the lease.
pub(super) struct Holder {
    pub sweep_id: String,
    pub worker_id: String,
    pub keep_checkpoints: bool,
    pub max_attempts: u32,
}

/// Refuses a write by `worker_id` for `attempt` unless that worker holds `trial_id` under
/// that attempt, given the trial's row as read (and locked) by `HOLDER`; `None` when there is
/// no such trial.
pub(super) fn holder(worker_id: &str, trial_id: &str, attempt: u32, row: Option<&impl Cols>) -> Result<Holder> {
    let Some(r) = row else {
        return Err(StoreError::NotFound(format!("trial {trial_id}")));
    };
    let (state, current) = (r.text("state")?, r.int("attempt")?);
    let reason = if current != i64::from(attempt) {
        format!("the trial is at attempt {current} now")
    } else if state != TrialState::Running.as_str() {
        format!("the trial is {state}")
    } else if r.text_opt("worker_id")?.as_deref() != Some(worker_id) {
        return Err(StoreError::NotHolder { trial_id: trial_id.to_string(), attempt });
    } else {
        return Ok(Holder {
            sweep_id: r.text("sweep_id")?,
            worker_id: worker_id.to_string(),
            keep_checkpoints: r.flag("keep_checkpoints")?,
            max_attempts: small(r.int("max_attempts")?),
        });
    };
    Err(StoreError::Superseded { trial_id: trial_id.to_string(), attempt, reason })
}
