//! The agent's edge with the wire: every conversion between `allsweep.v1` messages and the
//! worker's own types, as `From`/`TryFrom` impls. Only this module and [`super::link`], which
//! sends the results, name `pb` types.

use std::time::Duration;

use allsweep_proto::v1 as pb;

use super::trial::{Lease, MetricPoint, Progress};
use crate::config::TrialConfig;
use crate::gpu::GpuSample;
use crate::metrics::{KerasMetrics, Metrics, RocPoint};
use crate::train::TrialOutcome;

/// A lease this worker cannot read: its config does not parse here (a coordinator of
/// another version). The attempt is reported as failed, to be retried.
#[derive(Debug, thiserror::Error)]
#[error("the coordinator sent an invalid config for trial {trial_id}: {reason}")]
pub struct InvalidLease {
    pub trial_id: String,
    pub attempt: u32,
    pub reason: String,
}

impl TryFrom<pb::LeasedTrial> for Lease {
    type Error = InvalidLease;

    fn try_from(leased: pb::LeasedTrial) -> Result<Self, Self::Error> {
        match TrialConfig::from_toml_str(&leased.config_toml) {
            Ok(config) => Ok(Lease {
                checkpoint_epoch: leased.has_checkpoint.then_some(leased.checkpoint_epoch),
                trial_id: leased.trial_id,
                attempt: leased.attempt,
                // A coordinator that sent no estimate: the config's own.
                memory_bytes: match leased.memory_bytes {
                    0 => allsweep_config::memory::estimate(&config).bytes,
                    bytes => bytes,
                },
                group_id: (!leased.group_id.is_empty()).then_some(leased.group_id),
                pause_at_epoch: (leased.pause_at_epoch > 0).then_some(leased.pause_at_epoch),
                config,
            }),
            Err(e) => Err(InvalidLease { trial_id: leased.trial_id, attempt: leased.attempt, reason: e.to_string() }),
        }
    }
}

/// What the coordinator asked for when this worker registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    pub worker_id: String,
    /// The key to carry on every call from now on; empty: keep the one this worker has.
    pub worker_key: String,
    /// How often to renew the leases.
    pub heartbeat_every: Duration,
}

impl From<pb::RegisterResponse> for Registration {
    /// A heartbeat interval under 100 ms (or none) is read as 100 ms.
    fn from(r: pb::RegisterResponse) -> Self {
        Registration {
            worker_id: r.worker_id,
            worker_key: r.worker_key,
            heartbeat_every: Duration::from_millis(u64::from(r.heartbeat_interval_ms.max(100))),
        }
    }
}

impl From<&MetricPoint> for pb::MetricPoint {
    fn from(p: &MetricPoint) -> Self {
        pb::MetricPoint { epoch: p.epoch, name: p.name.into(), value: p.value }
    }
}

impl From<&GpuSample> for pb::GpuInfo {
    /// Without the count of trials on it, which the agent fills in.
    fn from(g: &GpuSample) -> Self {
        pb::GpuInfo {
            index: g.index,
            name: g.name.clone(),
            memory_total_bytes: g.memory_total_bytes,
            memory_used_bytes: g.memory_used_bytes,
            utilization_percent: g.utilization_percent,
            trials: 0,
        }
    }
}

impl From<Progress> for pb::TrialProgress {
    fn from(p: Progress) -> Self {
        pb::TrialProgress { trial_id: p.trial_id, attempt: p.attempt, epoch: p.epoch }
    }
}

impl From<&Metrics> for pb::Metrics {
    fn from(m: &Metrics) -> Self {
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

impl From<&KerasMetrics> for pb::KerasMetrics {
    fn from(m: &KerasMetrics) -> Self {
        pb::KerasMetrics { jaccard: m.jaccard, dice: m.dice, recall: m.recall, tnr: m.tnr }
    }
}

impl From<&RocPoint> for pb::RocPoint {
    fn from(p: &RocPoint) -> Self {
        pb::RocPoint { threshold: p.threshold, fpr: p.fpr, tpr: p.tpr }
    }
}

impl From<&TrialOutcome> for pb::CompleteRequest {
    /// The outcome's part of the request; the attempt it completes (`trial_id`, `attempt`)
    /// is the caller's to fill.
    fn from(outcome: &TrialOutcome) -> Self {
        pb::CompleteRequest {
            trial_id: String::new(),
            attempt: 0,
            test: Some((&outcome.test).into()),
            roc: outcome.roc.iter().map(Into::into).collect(),
            split: outcome.split.clone(),
            epochs: outcome.epochs.len() as u32,
            parameters: outcome.parameters as u64,
            test_keras: Some((&outcome.test_keras).into()),
            selected_epoch: outcome.selected_epoch as u32,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Confusion;

    fn leased(config_toml: &str, has_checkpoint: bool) -> pb::LeasedTrial {
        pb::LeasedTrial {
            trial_id: "t-1".into(),
            attempt: 2,
            sweep_id: "s".into(),
            config_toml: config_toml.into(),
            has_checkpoint,
            checkpoint_epoch: 4,
            lease_expires_at_ms: 0,
            memory_bytes: 0,
            group_id: String::new(),
            pause_at_epoch: 0,
        }
    }

    const RUN: &str =
        "name = \"t\"\nseed = 1\n[dataset]\nkind = \"synthetic\"\nsize = [32, 32]\n[model]\narch = \"unet\"\n\
                       width = 8\n[train]\nepochs = 2\nbatch_size = 4\n[loss]\nkind = \"dice\"\n";

    #[test]
    fn a_lease_resumes_only_when_it_carries_a_checkpoint() {
        let lease = Lease::try_from(leased(RUN, true)).expect("a valid config");
        assert_eq!((lease.trial_id.as_str(), lease.attempt, lease.checkpoint_epoch), ("t-1", 2, Some(4)));
        assert_eq!(lease.config.train.epochs, 2);
        assert_eq!(Lease::try_from(leased(RUN, false)).expect("valid").checkpoint_epoch, None);
        assert_eq!(lease.group_id, None, "no group id: alone");
        assert_eq!(Lease::try_from(leased(RUN, false)).expect("valid").pause_at_epoch, None, "0: to the end");
        let paused = pb::LeasedTrial { pause_at_epoch: 3, ..leased(RUN, false) };
        assert_eq!(Lease::try_from(paused).expect("valid").pause_at_epoch, Some(3));
        let grouped = pb::LeasedTrial { group_id: "t-0.1".into(), ..leased(RUN, false) };
        assert_eq!(Lease::try_from(grouped).expect("valid").group_id.as_deref(), Some("t-0.1"));
    }

    #[test]
    fn a_lease_reserves_the_coordinator_s_estimate_or_the_config_s_own() {
        let config = TrialConfig::from_toml_str(RUN).expect("valid");
        let own = allsweep_config::memory::estimate(&config).bytes;
        assert_eq!(Lease::try_from(leased(RUN, false)).expect("valid").memory_bytes, own);
        let raised = pb::LeasedTrial { memory_bytes: 3 * own, ..leased(RUN, false) };
        assert_eq!(Lease::try_from(raised).expect("valid").memory_bytes, 3 * own, "after running out of memory");
    }

    #[test]
    fn a_lease_with_a_config_this_worker_cannot_read_names_the_trial_and_the_key() {
        let error = Lease::try_from(leased(&RUN.replace("epochs = 2", "epochs = 0"), false)).unwrap_err();
        assert_eq!((error.trial_id.as_str(), error.attempt), ("t-1", 2));
        let message = error.to_string();
        assert!(message.contains("t-1") && message.contains("train.epochs"), "{message}");
    }

    #[test]
    fn an_outcome_becomes_the_complete_request_with_every_metric() {
        let outcome = TrialOutcome {
            epochs: Vec::new(),
            test: Metrics::from_counts(Confusion { tp: 6, fp: 2, tn: 10, fn_: 4 }, None),
            test_keras: KerasMetrics { jaccard: 0.55, dice: 0.7, recall: 0.65, tnr: 0.85 },
            selected_epoch: 3,
            roc: vec![RocPoint { threshold: 0.5, fpr: 0.1, tpr: 0.8 }],
            split: "by image".into(),
            parameters: 1234,
            resumed_from: None,
        };
        let request = pb::CompleteRequest { trial_id: "t-1".into(), attempt: 2, ..(&outcome).into() };
        let test = request.test.expect("test metrics");
        assert_eq!((test.jaccard, test.precision, test.auc), (0.5, 0.75, None));
        assert_eq!(request.roc, vec![pb::RocPoint { threshold: 0.5, fpr: 0.1, tpr: 0.8 }]);
        assert_eq!((request.split.as_str(), request.epochs, request.parameters), ("by image", 0, 1234));
        let keras = request.test_keras.expect("the authors' metrics");
        assert_eq!((keras.jaccard, keras.dice, keras.recall, keras.tnr), (0.55, 0.7, 0.65, 0.85));
        assert_eq!(request.selected_epoch, 3);
    }

    #[test]
    fn a_silent_heartbeat_interval_is_read_as_100_ms() {
        let r = pb::RegisterResponse {
            worker_id: "w".into(),
            heartbeat_interval_ms: 0,
            lease_ttl_ms: 0,
            worker_key: "k".into(),
        };
        assert_eq!(Registration::from(r).heartbeat_every, Duration::from_millis(100));
    }
}
