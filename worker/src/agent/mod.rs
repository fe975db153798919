//! The worker agent (`allsweep-worker --coordinator URL`): registers, leases trials for its
//! free slots, trains each on its own OS thread, streams metrics, uploads a checkpoint every
//! epoch and completes. Everything it must tell the coordinator goes through an ordered
//! outbox that is retried with back-off, so a coordinator that restarts loses nothing and the
//! trials keep training meanwhile. On SIGTERM every trial checkpoints where it stands, the
//! checkpoints are uploaded and the leases given back at once.

mod link;
mod outbox;
mod trial;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use allsweep_proto::v1 as pb;
use anyhow::Context;
use tch::Device;
use tokio::sync::mpsc;

use link::Link;
use outbox::{Outbox, Send};
use trial::{RunningTrial, TrialEvent, TrialMessage};

/// How the agent runs.
#[derive(Debug, Clone)]
pub struct AgentOptions {
    pub coordinator: String,
    pub token: Option<String>,
    pub device: Device,
    pub slots: u32,
    pub data_dir: Option<PathBuf>,
    /// Local checkpoints and downloads.
    pub work_dir: PathBuf,
}

/// Runs until `shutdown` resolves, then checkpoints, uploads and gives leases back.
pub async fn run(options: AgentOptions, shutdown: impl std::future::Future<Output = ()>) -> anyhow::Result<()> {
    std::fs::create_dir_all(&options.work_dir)
        .with_context(|| format!("cannot create {}", options.work_dir.display()))?;
    let mut link = Link::new(&options)?;
    let registration = link.register_with_retry().await?;
    let heartbeat_every = Duration::from_millis(registration.heartbeat_interval_ms.max(100) as u64);
    tracing::info!(worker = %link.worker_id(), coordinator = %options.coordinator, slots = options.slots, device = ?options.device, "registered");

    let (events_tx, mut events) = mpsc::unbounded_channel::<TrialMessage>();
    let mut running: HashMap<String, RunningTrial> = HashMap::new();
    let mut outbox = Outbox::default();
    let mut heartbeat = tokio::time::interval(heartbeat_every);
    let mut lease_tick = tokio::time::interval(Duration::from_millis(500));
    let mut retry = tokio::time::interval(Duration::from_millis(250));
    let mut draining = false;
    tokio::pin!(shutdown);

    loop {
        tokio::select! {
            _ = &mut shutdown, if !draining => {
                tracing::info!(trials = running.len(), "stopping: checkpointing running trials and giving them back");
                draining = true;
                for t in running.values() {
                    t.request_stop();
                }
            }
            Some(message) = events.recv() => {
                handle(message, &mut running, &mut outbox, draining);
                outbox.flush(&mut link).await;
            }
            _ = heartbeat.tick() => {
                let progress: Vec<pb::TrialProgress> = running.values().filter(|t| !t.abandoned).map(RunningTrial::progress).collect();
                match link.heartbeat(progress).await {
                    Ok(stop) => {
                        for id in stop {
                            if let Some(t) = running.get_mut(&id) {
                                tracing::warn!(trial = %id, "coordinator says stop (cancelled or superseded)");
                                t.abandon();
                            }
                        }
                    }
                    Err(error) => tracing::warn!(%error, "heartbeat failed; training goes on, retrying"),
                }
                outbox.flush(&mut link).await;
            }
            _ = lease_tick.tick(), if !draining => {
                let free = options.slots.saturating_sub(running.len() as u32);
                if free > 0 && outbox.is_empty() {
                    match link.lease(free).await {
                        Ok(leased) => {
                            for lease in leased {
                                match trial::start(lease, &options, &mut link, events_tx.clone()).await {
                                    Ok(t) => { running.insert(t.id.clone(), t); }
                                    Err((lease, error)) => {
                                        tracing::error!(trial = %lease.trial_id, %error, "could not start the trial");
                                        outbox.push(Send::Fail { trial_id: lease.trial_id, attempt: lease.attempt, error: format!("{error:#}"), permanent: false });
                                    }
                                }
                            }
                        }
                        Err(error) => tracing::warn!(%error, "lease failed; retrying"),
                    }
                }
            }
            _ = retry.tick() => {
                outbox.flush(&mut link).await;
                if draining && running.is_empty() && outbox.is_empty() {
                    break;
                }
            }
        }
    }
    tracing::info!("all trials handed back; bye");
    Ok(())
}

/// Turns a trial's message into what the coordinator must hear.
fn handle(message: TrialMessage, running: &mut HashMap<String, RunningTrial>, outbox: &mut Outbox, draining: bool) {
    let TrialMessage { trial_id, attempt, event } = message;
    let abandoned = running.get(&trial_id).is_none_or(|t| t.abandoned);
    match event {
        TrialEvent::Epoch { epoch, points } => {
            if let Some(t) = running.get(&trial_id) {
                t.set_epoch(epoch);
            }
            if !abandoned {
                outbox.push(Send::Metrics { trial_id, attempt, points });
            }
        }
        TrialEvent::Checkpoint { epoch, step, bytes } => {
            if !abandoned {
                outbox.push(Send::Checkpoint { trial_id, attempt, epoch, step, bytes });
            }
        }
        TrialEvent::Finished(result) => {
            running.remove(&trial_id);
            if abandoned {
                return;
            }
            match result {
                Ok(outcome) => outbox.push(Send::Complete { trial_id, attempt, outcome: Box::new(outcome) }),
                Err(error) if error.is_stop() && draining => outbox.push(Send::Release { trial_id, attempt }),
                Err(error) if error.is_stop() => {}
                Err(error) => {
                    let permanent = error.permanent;
                    outbox.push(Send::Fail { trial_id, attempt, error: error.message, permanent });
                }
            }
        }
    }
}
