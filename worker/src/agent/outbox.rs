//! What the coordinator must hear, in order, until it has heard it. A transient failure
//! (coordinator down or restarting) keeps the item for the next flush; a refusal (the
//! attempt was superseded or cancelled) drops it: nobody wants it any more.

use std::collections::VecDeque;

use allsweep_proto::fault::{CallFault, TrialFault};

use super::link::Link;
use super::trial::{MetricPoint, Progress};
use crate::train::TrialOutcome;

/// One thing the coordinator must hear about an attempt.
pub enum Report {
    Metrics {
        trial_id: String,
        attempt: u32,
        points: Vec<MetricPoint>,
    },
    Checkpoint {
        trial_id: String,
        attempt: u32,
        epoch: u32,
        step: u32,
        bytes: Vec<u8>,
    },
    Complete {
        trial_id: String,
        attempt: u32,
        outcome: Box<TrialOutcome>,
    },
    Fail {
        trial_id: String,
        attempt: u32,
        error: String,
        fault: TrialFault,
    },
    /// The attempt is given back unfinished (the worker is leaving); it resumes elsewhere.
    Release {
        trial_id: String,
        attempt: u32,
    },
}

#[derive(Default)]
pub struct Outbox {
    items: VecDeque<Report>,
}

impl Report {
    fn trial_id(&self) -> &str {
        match self {
            Report::Metrics { trial_id, .. }
            | Report::Checkpoint { trial_id, .. }
            | Report::Complete { trial_id, .. }
            | Report::Fail { trial_id, .. }
            | Report::Release { trial_id, .. } => trial_id,
        }
    }
}

impl Outbox {
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The trials with something still to tell, each once, in order.
    pub fn trial_ids(&self) -> Vec<&str> {
        let mut ids: Vec<&str> = Vec::new();
        for item in &self.items {
            let id = item.trial_id();
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        ids
    }

    /// Queues an item; a newer checkpoint of a trial replaces one still waiting.
    pub fn push(&mut self, item: Report) {
        if let Report::Checkpoint { trial_id, .. } = &item {
            self.items.retain(|i| !matches!(i, Report::Checkpoint { trial_id: t, .. } if t == trial_id));
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
                Err(status) if CallFault::is_transient(&status) => {
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

async fn send(link: &mut Link, item: &Report) -> Result<(), tonic::Status> {
    match item {
        Report::Metrics { trial_id, attempt, points } => link.metrics(trial_id, *attempt, points).await,
        Report::Checkpoint { trial_id, attempt, epoch, step, bytes } => {
            link.upload(trial_id, *attempt, *epoch, *step, bytes).await
        }
        Report::Complete { trial_id, attempt, outcome } => link.complete(trial_id, *attempt, outcome).await,
        Report::Fail { trial_id, attempt, error, fault } => link.fail(trial_id, *attempt, error, *fault).await,
        Report::Release { trial_id, attempt } => {
            link.release(vec![Progress { trial_id: trial_id.clone(), attempt: *attempt, epoch: 0 }]).await
        }
    }
}
