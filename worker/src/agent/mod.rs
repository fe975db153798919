//! The worker agent (`allsweep-worker --coordinator URL`): registers, leases trials for its
//! free slots, trains each on its own OS thread, streams metrics, uploads a checkpoint every
//! epoch and completes. Everything it must tell the coordinator goes through an ordered
//! outbox that is retried with back-off, so a coordinator that restarts loses nothing and the
//! trials keep training meanwhile. On SIGTERM every trial checkpoints where it stands, the
//! checkpoints are uploaded and the leases given back at once. A worker that finds a trial's
//! data set missing on its machine hands the trial back and leases nothing more
//! ([`missing_data`]).

mod convert;
mod link;
mod missing_data;
mod outbox;
mod slots;
mod trial;
mod work_dir;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use allsweep_proto::fault::TrialFault;
use allsweep_proto::v1 as pb;
use tch::Device;
use tokio::sync::mpsc;

use crate::gpu::{GpuMonitor, GpuSample};
use link::Link;
use missing_data::MissingData;
use outbox::{Outbox, Report};
use slots::{DeviceRoom, Placed, Slots};
use trial::{Progress, RunningTrial, TrialEvent, TrialMessage};

/// What a GPU keeps aside for the worker's own CUDA context and libraries when its budget
/// is taken from its free memory.
pub const CONTEXT_RESERVE_BYTES: u64 = 1 << 30;

/// How often a worker that stopped leasing says why again.
const MISSING_DATA_REMINDER: Duration = Duration::from_secs(60);

/// How the agent runs.
#[derive(Debug, Clone)]
pub struct AgentOptions {
    pub coordinator: String,
    pub token: Option<String>,
    /// The TLS files for an `https://` coordinator.
    pub tls: allsweep_proto::tls::ClientTls,
    /// The devices trials run on; each takes up to `slots` trials at once.
    pub devices: Vec<Device>,
    /// Trials at once per device: a cap, even where memory allows more. `None`:
    /// [`MEMORY_AWARE_SLOTS`] on a device whose memory is known, else 1.
    pub slots: Option<u32>,
    /// The memory trials may take on each device, declared (`--memory-budget`); `None`: a
    /// GPU's free memory at start as NVML reads it, less [`CONTEXT_RESERVE_BYTES`], and no
    /// memory-awareness on a CPU.
    pub memory_budget: Option<u64>,
    /// The most trials trained as one fused group (`--fuse`); 1: each trial alone. A slot
    /// then holds a group.
    pub fuse: u32,
    pub data_dir: Option<PathBuf>,
    /// The host's work directory: the worker keeps its local checkpoints in a folder of its
    /// own there ([`work_dir`]).
    pub work_root: PathBuf,
    /// Once told to stop (a signal, or `workers drain --now`), the longest the worker takes to
    /// checkpoint, upload and release its trials before it exits anyway (their leases then
    /// expire and they resume elsewhere from their last uploaded checkpoint).
    pub stop_timeout: Duration,
    /// The host name it registers under (`None`: the machine's hostname).
    pub host: Option<String>,
}

pub use work_dir::default_root as default_work_root;

/// A deadline that does not come (until a stop sets one).
const NEVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// The cap on a device's trials when memory decides and `--slots` is not given.
pub const MEMORY_AWARE_SLOTS: u32 = 16;

/// Runs until `shutdown` resolves, then checkpoints, uploads and gives leases back; or until
/// the coordinator says drain: then it finishes (or, drained `now`, gives back) its trials.
pub async fn run(options: AgentOptions, shutdown: impl std::future::Future<Output = ()>) -> anyhow::Result<()> {
    let work = work_dir::WorkDir::claim(&options.work_root)?;
    work_dir::collect_abandoned(&options.work_root);
    let monitor = GpuMonitor::open(&options.devices);
    let gpus_at_start = monitor.as_ref().map(GpuMonitor::sample).unwrap_or_default();
    let slots = device_slots(&options, &gpus_at_start);
    let mut link = Link::new(&options, slots.capacity(), &gpus_at_start)?;
    let heartbeat_every = link.register_with_retry().await?.heartbeat_every;
    let budgets: Vec<String> = slots
        .rooms
        .iter()
        .map(|r| match r.budget {
            Some(b) => format!("{:?}: {}", r.device, allsweep_config::memory::human_bytes(b)),
            None => format!("{:?}: slots only", r.device),
        })
        .collect();
    tracing::info!(worker = %link.worker_id(), coordinator = %options.coordinator, slots = slots.per_device, devices = ?options.devices, memory = ?budgets, "registered");

    let (events_tx, mut events) = mpsc::unbounded_channel::<TrialMessage>();
    let mut running: HashMap<String, RunningTrial> = HashMap::new();
    let mut outbox = Outbox::default();
    let mut heartbeat = tokio::time::interval(heartbeat_every);
    let mut lease_tick = tokio::time::interval(Duration::from_millis(500));
    let mut retry = tokio::time::interval(Duration::from_millis(250));
    // Draining: lease nothing more, exit once every trial has ended and been reported.
    let mut draining = false;
    // Stopping: running trials were asked to checkpoint and stop; the exit is due by `deadline`.
    let mut stopping = false;
    let deadline = tokio::time::sleep(NEVER);
    tokio::pin!(deadline);
    // Set once a trial found its data set missing here: lease nothing more.
    let mut missing: Option<MissingData> = None;
    let mut reminder = tokio::time::interval(MISSING_DATA_REMINDER);
    tokio::pin!(shutdown);

    loop {
        tokio::select! {
            _ = &mut shutdown, if !stopping => {
                tracing::info!(trials = running.len(), "stopping: checkpointing running trials and giving them back");
                (draining, stopping) = (true, true);
                stop_all(&running, deadline.as_mut(), options.stop_timeout);
            }
            _ = &mut deadline, if stopping => {
                let mut left: Vec<&str> = running.keys().map(String::as_str).collect();
                left.extend(outbox.trial_ids().into_iter().filter(|id| !running.contains_key(*id)));
                anyhow::bail!(
                    "gave up after --stop-timeout {:?}: trials {left:?} not handed back (the coordinator \
                     did not answer); their leases expire and they resume elsewhere",
                    options.stop_timeout,
                );
            }
            Some(message) = events.recv() => {
                if message.ends_the_trial() {
                    // A trial's end is when a killed neighbour's folder may be collected.
                    work_dir::collect_abandoned(&options.work_root);
                }
                if let Some(found) = handle(message, &mut running, &mut outbox) {
                    if missing.is_none() {
                        found.say(options.data_dir.as_deref());
                        reminder.reset();
                        missing = Some(found);
                    }
                }
                outbox.flush(&mut link).await;
            }
            _ = reminder.tick(), if missing.is_some() => {
                if let Some(found) = &missing {
                    found.say(options.data_dir.as_deref());
                }
            }
            _ = heartbeat.tick() => {
                let progress: Vec<Progress> = running.values().filter(|t| !t.abandoned).map(RunningTrial::progress).collect();
                let gpus: Vec<(GpuSample, u32)> = monitor.as_ref().map(GpuMonitor::sample).unwrap_or_default().into_iter().map(|g| {
                    let trials = running.values().filter(|t| t.device == Device::Cuda(g.index as usize)).count() as u32;
                    (g, trials)
                }).collect();
                match link.heartbeat(progress, &gpus).await {
                    Ok(answer) => {
                        if answer.drain == pb::Drain::Now && !stopping {
                            tracing::info!(trials = running.len(), "drained now: checkpointing running trials and giving them back");
                            (draining, stopping) = (true, true);
                            stop_all(&running, deadline.as_mut(), options.stop_timeout);
                        } else if answer.drain == pb::Drain::Finish && !draining {
                            tracing::info!(trials = running.len(), "drained: finishing the running trials, leasing nothing more");
                            draining = true;
                        }
                        for id in answer.stop {
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
            _ = lease_tick.tick(), if !draining && missing.is_none() => {
                let placed: Vec<Placed> = running.values().map(|t| Placed { device: t.device, memory_bytes: t.memory_bytes }).collect();
                let ask = slots.ask(&placed);
                if let (Some(ask), true) = (ask, outbox.is_empty()) {
                    match link.lease(ask).await {
                        Ok(leased) => {
                            let mut readable = Vec::new();
                            for lease in leased {
                                match lease {
                                    Ok(lease) => readable.push(lease),
                                    Err(invalid) => {
                                        tracing::error!(trial = %invalid.trial_id, error = %invalid, "could not read the lease");
                                        let error = invalid.to_string();
                                        outbox.push(Report::Fail { trial_id: invalid.trial_id, attempt: invalid.attempt, error, fault: TrialFault::Retry });
                                    }
                                }
                            }
                            for unit in fused_units(readable) {
                                let placed: Vec<Placed> = running.values().map(|t| Placed { device: t.device, memory_bytes: t.memory_bytes }).collect();
                                let memory: Vec<u64> = unit.iter().map(|l| l.memory_bytes).collect();
                                let Some(device) = slots.place_group(&placed, &memory) else {
                                    // The coordinator leases only what was asked for; were it to
                                    // send more, the trials go back at once rather than overloading a device.
                                    for lease in unit {
                                        outbox.push(Report::Release { trial_id: lease.trial_id, attempt: lease.attempt });
                                    }
                                    continue;
                                };
                                let (started, failed) = if unit.len() == 1 {
                                    let lease = unit.into_iter().next().expect("one lease");
                                    match trial::start(lease, &options, device, work.path(), &mut link, events_tx.clone()).await {
                                        Ok(t) => (vec![t], Vec::new()),
                                        Err(failure) => (Vec::new(), vec![failure]),
                                    }
                                } else {
                                    trial::start_group(unit, &options, device, work.path(), &mut link, events_tx.clone()).await
                                };
                                for t in started {
                                    running.insert(t.id.clone(), t);
                                }
                                for (lease, error) in failed {
                                    tracing::error!(trial = %lease.trial_id, %error, "could not start the trial");
                                    outbox.push(Report::Fail { trial_id: lease.trial_id, attempt: lease.attempt, error: format!("{error:#}"), fault: TrialFault::Retry });
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
    tracing::info!("no trial left here, every report sent; bye");
    Ok(())
}

/// Asks every running trial to checkpoint and stop, and starts the clock of `--stop-timeout`.
fn stop_all(
    running: &HashMap<String, RunningTrial>,
    deadline: std::pin::Pin<&mut tokio::time::Sleep>,
    timeout: Duration,
) {
    for t in running.values() {
        t.request_stop();
    }
    deadline.reset(tokio::time::Instant::now() + timeout);
}

/// Turns a trial's message into what the coordinator must hear. Returns the data set a
/// trial found missing on this machine, if it did.
fn handle(
    message: TrialMessage,
    running: &mut HashMap<String, RunningTrial>,
    outbox: &mut Outbox,
) -> Option<MissingData> {
    let TrialMessage { trial_id, attempt, event } = message;
    let abandoned = running.get(&trial_id).is_none_or(|t| t.abandoned);
    match event {
        TrialEvent::Epoch { epoch, points } => {
            if let Some(t) = running.get(&trial_id) {
                t.set_epoch(epoch);
            }
            if !abandoned {
                outbox.push(Report::Metrics { trial_id, attempt, points });
            }
            None
        }
        TrialEvent::Checkpoint { epoch, step, bytes } => {
            if !abandoned {
                outbox.push(Report::Checkpoint { trial_id, attempt, epoch, step, bytes });
            }
            None
        }
        TrialEvent::Stopped => {
            running.remove(&trial_id);
            // Leaving, or paused at a rung: either way the coordinator takes it back (after
            // its checkpoint, which the outbox sends first). A cancelled or superseded trial
            // is nobody's to give back.
            if !abandoned {
                outbox.push(Report::Release { trial_id, attempt });
            }
            None
        }
        TrialEvent::Finished(result) => {
            let trial = running.remove(&trial_id);
            let failure = match result {
                Ok(outcome) => {
                    if !abandoned {
                        outbox.push(Report::Complete { trial_id, attempt, outcome });
                    }
                    return None;
                }
                Err(failure) => failure,
            };
            tracing::warn!(trial = %trial_id, attempt, fault = ?failure.fault, error = %failure.message, "the trial failed");
            // Even an abandoned trial proves the data missing here.
            let missing = match (failure.fault, trial) {
                (TrialFault::Worker, Some(trial)) => {
                    Some(MissingData { trial_id: trial_id.clone(), data: trial.data, error: failure.message.clone() })
                }
                _ => None,
            };
            if !abandoned {
                outbox.push(Report::Fail { trial_id, attempt, error: failure.message, fault: failure.fault });
            }
            missing
        }
    }
}

/// The leased trials as the units they train in, in lease order: each fused group the
/// coordinator marked (one group id) together, every other trial alone.
fn fused_units(leases: Vec<trial::Lease>) -> Vec<Vec<trial::Lease>> {
    let mut units: Vec<Vec<trial::Lease>> = Vec::new();
    for lease in leases {
        let joins = lease.group_id.as_ref().and_then(|g| units.iter().position(|u| u[0].group_id.as_ref() == Some(g)));
        match joins {
            Some(i) => units[i].push(lease),
            None => units.push(vec![lease]),
        }
    }
    units
}

/// Each device's slots and memory: the declared budget, or a GPU's free memory at start
/// less [`CONTEXT_RESERVE_BYTES`]; none (slots alone) for a CPU without a declared budget or
/// a GPU NVML does not see.
fn device_slots(options: &AgentOptions, gpus: &[GpuSample]) -> Slots {
    let rooms: Vec<DeviceRoom> = options
        .devices
        .iter()
        .map(|&device| {
            let measured = match device {
                Device::Cuda(n) => gpus
                    .iter()
                    .find(|g| g.index as usize == n)
                    .map(|g| g.memory_free_bytes.saturating_sub(CONTEXT_RESERVE_BYTES)),
                _ => None,
            };
            DeviceRoom { device, budget: options.memory_budget.or(measured) }
        })
        .collect();
    let memory_aware = rooms.iter().all(|r| r.budget.is_some());
    let default = if memory_aware { MEMORY_AWARE_SLOTS } else { 1 };
    let fuse = options.fuse.max(1);
    Slots { rooms, per_device: options.slots.unwrap_or(default).saturating_mul(fuse), fuse }
}
