//! Every conversion between the wire (`allsweep.v1`) and the coordinator's domain types, as
//! `From`/`TryFrom` impls: the services convert at their edge and the CLI reads replies
//! through the same impls, so no other module builds or takes apart a `pb` message field by
//! field. (The worker has its own, for its side.)

use allsweep_proto::fault::TrialFault;
use allsweep_proto::v1 as pb;

use crate::store::{
    AttemptRef, CheckpointRow, Completion, Drain, FinalMetrics, GpuStatus, KerasMetrics, Leased, MetricPoint, Progress,
    ResultRow, RocPoint, SweepState, TrialState,
};

/// A wire enum value that names no state (a newer peer, or a broken one).
#[derive(Debug, thiserror::Error)]
#[error("unknown {what} {value} on the wire")]
pub struct UnknownState {
    pub what: &'static str,
    pub value: i32,
}

impl From<TrialState> for pb::TrialState {
    fn from(state: TrialState) -> Self {
        match state {
            TrialState::Queued => pb::TrialState::Queued,
            TrialState::Running => pb::TrialState::Running,
            TrialState::Completed => pb::TrialState::Completed,
            TrialState::Failed => pb::TrialState::Failed,
            TrialState::Cancelled => pb::TrialState::Cancelled,
            TrialState::Stopped => pb::TrialState::Stopped,
        }
    }
}

impl TryFrom<i32> for TrialState {
    type Error = UnknownState;

    /// A trial state as a message carries it (prost keeps enums as `i32`).
    fn try_from(value: i32) -> Result<Self, UnknownState> {
        match pb::TrialState::try_from(value) {
            Ok(pb::TrialState::Queued) => Ok(TrialState::Queued),
            Ok(pb::TrialState::Running) => Ok(TrialState::Running),
            Ok(pb::TrialState::Completed) => Ok(TrialState::Completed),
            Ok(pb::TrialState::Failed) => Ok(TrialState::Failed),
            Ok(pb::TrialState::Cancelled) => Ok(TrialState::Cancelled),
            Ok(pb::TrialState::Stopped) => Ok(TrialState::Stopped),
            Ok(pb::TrialState::Unspecified) | Err(_) => Err(UnknownState { what: "trial state", value }),
        }
    }
}

impl From<SweepState> for pb::SweepState {
    fn from(state: SweepState) -> Self {
        match state {
            SweepState::Active => pb::SweepState::Active,
            SweepState::Cancelled => pb::SweepState::Cancelled,
            SweepState::Finished => pb::SweepState::Finished,
        }
    }
}

impl TryFrom<i32> for SweepState {
    type Error = UnknownState;

    /// A sweep state as a message carries it.
    fn try_from(value: i32) -> Result<Self, UnknownState> {
        match pb::SweepState::try_from(value) {
            Ok(pb::SweepState::Active) => Ok(SweepState::Active),
            Ok(pb::SweepState::Cancelled) => Ok(SweepState::Cancelled),
            Ok(pb::SweepState::Finished) => Ok(SweepState::Finished),
            Ok(pb::SweepState::Unspecified) | Err(_) => Err(UnknownState { what: "sweep state", value }),
        }
    }
}

/// The word a person reads for a wire trial state (`queued`, ..., or `unknown`).
pub fn trial_state_word(value: i32) -> &'static str {
    TrialState::try_from(value).map_or("unknown", |s| s.as_str())
}

/// The word a person reads for a wire sweep state.
pub fn sweep_state_word(value: i32) -> &'static str {
    SweepState::try_from(value).map_or("unknown", |s| s.as_str())
}

/// A worker's drain on the wire (`None`: it may lease).
pub fn drain(drain: Option<Drain>) -> pb::Drain {
    match drain {
        None => pb::Drain::None,
        Some(Drain::Finish) => pb::Drain::Finish,
        Some(Drain::Now) => pb::Drain::Now,
    }
}

impl From<&pb::GpuInfo> for GpuStatus {
    fn from(g: &pb::GpuInfo) -> Self {
        Self {
            index: g.index,
            name: g.name.clone(),
            memory_total_bytes: g.memory_total_bytes,
            memory_used_bytes: g.memory_used_bytes,
            utilization_percent: g.utilization_percent,
            trials: g.trials,
        }
    }
}

impl From<&GpuStatus> for pb::GpuInfo {
    fn from(g: &GpuStatus) -> Self {
        Self {
            index: g.index,
            name: g.name.clone(),
            memory_total_bytes: g.memory_total_bytes,
            memory_used_bytes: g.memory_used_bytes,
            utilization_percent: g.utilization_percent,
            trials: g.trials,
        }
    }
}

impl From<pb::TrialProgress> for Progress {
    fn from(p: pb::TrialProgress) -> Self {
        Progress { trial_id: p.trial_id, attempt: p.attempt, epoch: p.epoch }
    }
}

impl From<pb::TrialProgress> for AttemptRef {
    fn from(p: pb::TrialProgress) -> Self {
        AttemptRef { trial_id: p.trial_id, attempt: p.attempt }
    }
}

impl From<pb::MetricPoint> for MetricPoint {
    fn from(p: pb::MetricPoint) -> Self {
        MetricPoint { epoch: p.epoch, name: p.name, value: p.value }
    }
}

impl From<pb::RocPoint> for RocPoint {
    fn from(p: pb::RocPoint) -> Self {
        RocPoint { threshold: p.threshold, fpr: p.fpr, tpr: p.tpr }
    }
}

impl From<pb::Metrics> for FinalMetrics {
    fn from(m: pb::Metrics) -> Self {
        FinalMetrics {
            jaccard: m.jaccard,
            dice: m.dice,
            precision: m.precision,
            recall: m.recall,
            tnr: m.tnr,
            accuracy: m.accuracy,
            auc: m.auc,
            keras: None,
        }
    }
}

impl From<pb::KerasMetrics> for KerasMetrics {
    fn from(m: pb::KerasMetrics) -> Self {
        KerasMetrics { jaccard: m.jaccard, dice: m.dice, recall: m.recall, tnr: m.tnr }
    }
}

impl From<KerasMetrics> for pb::KerasMetrics {
    fn from(m: KerasMetrics) -> Self {
        pb::KerasMetrics { jaccard: m.jaccard, dice: m.dice, recall: m.recall, tnr: m.tnr }
    }
}

impl From<FinalMetrics> for pb::Metrics {
    fn from(m: FinalMetrics) -> Self {
        pb::Metrics {
            jaccard: m.jaccard,
            dice: m.dice,
            precision: m.precision,
            recall: m.recall,
            tnr: m.tnr,
            accuracy: m.accuracy,
            auc: m.auc,
        }
    }
}

/// A completion as a worker sends it; refused without its test metrics.
#[derive(Debug, thiserror::Error)]
#[error("complete needs the test metrics")]
pub struct MissingTestMetrics;

/// A completion as a worker reports it: which attempt, and its results.
pub struct Completed {
    pub attempt: AttemptRef,
    pub completion: Completion,
}

impl TryFrom<pb::CompleteRequest> for Completed {
    type Error = MissingTestMetrics;

    fn try_from(r: pb::CompleteRequest) -> Result<Self, MissingTestMetrics> {
        let test = r.test.ok_or(MissingTestMetrics)?;
        let completion = Completion {
            metrics: FinalMetrics { keras: r.test_keras.map(KerasMetrics::from), ..test.into() },
            roc: r.roc.into_iter().map(RocPoint::from).collect(),
            split: r.split,
            epochs: r.epochs,
            parameters: r.parameters,
            selected_epoch: r.selected_epoch,
        };
        Ok(Completed { attempt: AttemptRef { trial_id: r.trial_id, attempt: r.attempt }, completion })
    }
}

/// A failed attempt as a worker reports it: which, why, and the class of the failure.
pub struct Failure {
    pub attempt: AttemptRef,
    pub error: String,
    pub fault: TrialFault,
}

impl From<pb::FailRequest> for Failure {
    fn from(r: pb::FailRequest) -> Self {
        let fault = TrialFault::from(r.kind());
        Failure { attempt: AttemptRef { trial_id: r.trial_id, attempt: r.attempt }, error: r.error, fault }
    }
}

impl From<Leased> for pb::LeasedTrial {
    fn from(l: Leased) -> Self {
        pb::LeasedTrial {
            trial_id: l.trial_id,
            attempt: l.attempt,
            sweep_id: l.sweep_id,
            config_toml: l.config_toml,
            has_checkpoint: l.checkpoint_epoch.is_some(),
            checkpoint_epoch: l.checkpoint_epoch.unwrap_or(0),
            lease_expires_at_ms: l.lease_expires_at,
            memory_bytes: l.memory_bytes,
            group_id: String::new(),
            pause_at_epoch: l.pause_at_epoch.unwrap_or(0),
        }
    }
}

impl From<CheckpointRow> for pb::CheckpointHeader {
    fn from(row: CheckpointRow) -> Self {
        pb::CheckpointHeader {
            trial_id: row.trial_id,
            attempt: row.attempt,
            epoch: row.epoch,
            step: row.step,
            size: row.bytes,
            sha256: row.sha256,
        }
    }
}

impl From<ResultRow> for pb::TrialResult {
    fn from(r: ResultRow) -> Self {
        pb::TrialResult {
            trial_id: r.trial_id,
            label: r.label,
            params_json: r.params_json,
            seed: r.seed,
            test_keras: r.metrics.keras.map(Into::into),
            test: Some(r.metrics.into()),
            split: r.split,
            selected_epoch: r.selected_epoch.unwrap_or(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_cross_the_wire_and_back() {
        for s in TrialState::ALL {
            assert_eq!(TrialState::try_from(pb::TrialState::from(*s) as i32).ok(), Some(*s));
        }
        for s in SweepState::ALL {
            assert_eq!(SweepState::try_from(pb::SweepState::from(*s) as i32).ok(), Some(*s));
        }
        assert!(TrialState::try_from(0).is_err(), "unspecified is no state");
        assert_eq!(trial_state_word(99), "unknown");
    }
}
