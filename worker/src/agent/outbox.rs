//! What the coordinator must hear, in order, until it has heard it. A transient failure
//! (coordinator down or restarting) keeps the item for the next flush; a refusal (the
//! attempt was superseded or cancelled) drops it: nobody wants it any more.

use std::collections::VecDeque;

use allsweep_proto::v1 as pb;

use super::link::{is_transient, Link};
use crate::train::TrialOutcome;

pub enum Send {
    Metrics { trial_id: String, attempt: u32, points: Vec<pb::MetricPoint> },
    Checkpoint { trial_id: String, attempt: u32, epoch: u32, step: u32, bytes: Vec<u8> },
    Complete { trial_id: String, attempt: u32, outcome: Box<TrialOutcome> },
    Fail { trial_id: String, attempt: u32, error: String, permanent: bool },
    Release { trial_id: String, attempt: u32 },
}

#[derive(Default)]
pub struct Outbox {
    items: VecDeque<Send>,
}

impl Outbox {
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Queues an item; a newer checkpoint of a trial replaces one still waiting.
    pub fn push(&mut self, item: Send) {
        if let Send::Checkpoint { trial_id, .. } = &item {
            self.items.retain(|i| !matches!(i, Send::Checkpoint { trial_id: t, .. } if t == trial_id));
        }
        self.items.push_back(item);
    }

    /// Sends items in order until one fails transiently.
    pub async fn flush(&mut self, link: &mut Link) {
        while let Some(item) = self.items.front() {
            let result = send(link, item).await;
            match result {
                Ok(()) => {
                    self.items.pop_front();
                }
                Err(status) if is_transient(&status) => {
                    tracing::debug!(error = %status.message(), "coordinator unreachable; will retry");
                    return;
                }
                Err(status) => {
                    tracing::warn!(code = ?status.code(), "dropped a report the coordinator refused: {}", status.message());
                    self.items.pop_front();
                }
            }
        }
    }
}

async fn send(link: &mut Link, item: &Send) -> Result<(), tonic::Status> {
    match item {
        Send::Metrics { trial_id, attempt, points } => {
            link.metrics(pb::MetricBatch { trial_id: trial_id.clone(), attempt: *attempt, points: points.clone() })
                .await
        }
        Send::Checkpoint { trial_id, attempt, epoch, step, bytes } => {
            link.upload(trial_id, *attempt, *epoch, *step, bytes).await
        }
        Send::Complete { trial_id, attempt, outcome } => {
            let t = &outcome.test;
            let request = pb::CompleteRequest {
                trial_id: trial_id.clone(),
                attempt: *attempt,
                test: Some(pb::Metrics {
                    jaccard: t.jaccard,
                    dice: t.dice,
                    precision: t.precision,
                    recall: t.recall,
                    tnr: t.tnr,
                    accuracy: t.accuracy,
                    auc: t.auc,
                }),
                roc: outcome
                    .roc
                    .iter()
                    .map(|p| pb::RocPoint { threshold: p.threshold, fpr: p.fpr, tpr: p.tpr })
                    .collect(),
                split: outcome.split.clone(),
                epochs: outcome.epochs.len() as u32,
                parameters: outcome.parameters as u64,
            };
            link.complete(request).await
        }
        Send::Fail { trial_id, attempt, error, permanent } => {
            link.fail(pb::FailRequest {
                trial_id: trial_id.clone(),
                attempt: *attempt,
                error: error.clone(),
                permanent: *permanent,
            })
            .await
        }
        Send::Release { trial_id, attempt } => {
            link.release(vec![pb::TrialProgress { trial_id: trial_id.clone(), attempt: *attempt, epoch: 0 }]).await
        }
    }
}
