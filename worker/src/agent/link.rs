//! The agent's connection to the coordinator: a lazily (re)connecting channel, the token on
//! every call, registration with back-off, and the calls themselves. The agent hands it the
//! worker's own types; [`super::convert`] turns them into messages.

use std::path::Path;
use std::time::Duration;

use allsweep_proto::auth::{BearerToken, WorkerCredentials};
use allsweep_proto::fault::{CallFault, TrialFault};
use allsweep_proto::v1::{self as pb, worker_service_client::WorkerServiceClient};
use allsweep_proto::{CHECKPOINT_CHUNK_BYTES, PROTOCOL_VERSION};
use anyhow::Context;
use sha2::{Digest, Sha256};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::Status;

use super::convert::{InvalidLease, Registration};
use super::slots::Ask;
use super::trial::{Lease, MetricPoint, Progress};
use super::AgentOptions;
use crate::gpu::GpuSample;
use crate::train::TrialOutcome;

type Client = WorkerServiceClient<InterceptedService<Channel, WorkerCredentials>>;

pub struct Link {
    client: Client,
    /// The token, and once registered this worker's id and key, on every call.
    credentials: WorkerCredentials,
    register: pb::RegisterRequest,
    worker_id: String,
}

impl Link {
    /// A link for a worker with `options`, whose GPUs are `gpus` (empty without NVML).
    pub fn new(options: &AgentOptions, capacity: u32, gpus: &[GpuSample]) -> anyhow::Result<Self> {
        let endpoint = allsweep_proto::tls::endpoint(&options.coordinator, &options.tls)?
            .connect_timeout(Duration::from_secs(3))
            .timeout(Duration::from_secs(60));
        let token = BearerToken::new(options.token.as_deref()).context("--token (or ALLSWEEP_TOKEN)")?;
        let credentials = WorkerCredentials::new(token);
        let client = WorkerServiceClient::with_interceptor(endpoint.connect_lazy(), credentials.clone())
            .max_decoding_message_size(64 << 20);
        let register = pb::RegisterRequest {
            protocol_version: PROTOCOL_VERSION,
            host: options.host.clone().unwrap_or_else(hostname),
            device: options.devices.iter().map(|d| format!("{d:?}").to_lowercase()).collect::<Vec<_>>().join(","),
            memory_bytes: memory_bytes(),
            slots: capacity,
            version: env!("CARGO_PKG_VERSION").into(),
            worker_id: String::new(),
            gpus: gpus.iter().map(pb::GpuInfo::from).collect(),
        };
        Ok(Self { client, credentials, register, worker_id: String::new() })
    }

    pub fn worker_id(&self) -> &str {
        &self.worker_id
    }

    /// Registers, retrying with back-off while the coordinator is unreachable. A refusal
    /// (another protocol version, a bad token) is final and returned as the error; only a
    /// worker id the coordinator gives to another key makes this worker register anew.
    pub async fn register_with_retry(&mut self) -> anyhow::Result<Registration> {
        let mut delay = Duration::from_millis(200);
        loop {
            let mut request = self.register.clone();
            request.worker_id = self.worker_id.clone();
            match self.client.register(request).await {
                Ok(r) => {
                    let registration = Registration::from(r.into_inner());
                    self.worker_id = registration.worker_id.clone();
                    if !registration.worker_key.is_empty() {
                        self.credentials
                            .set_identity(&registration.worker_id, &registration.worker_key)
                            .context("the coordinator sent a worker id or key that cannot travel in metadata")?;
                    }
                    anyhow::ensure!(self.credentials.has_identity(), "the coordinator sent no worker key");
                    return Ok(registration);
                }
                Err(status) if status.code() == tonic::Code::PermissionDenied && !self.worker_id.is_empty() => {
                    tracing::warn!(worker = %self.worker_id, error = %status.message(), "registering as a new worker");
                    self.worker_id.clear();
                }
                Err(status) if CallFault::is_transient(&status) => {
                    tracing::warn!(error = %allsweep_proto::tls::status_reason(&status), retry_in = ?delay, "coordinator unreachable; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(10));
                }
                Err(status) => {
                    anyhow::bail!("the coordinator refused this worker ({:?}): {}", status.code(), status.message())
                }
            }
        }
    }

    /// Renews leases; returns the trials to stop. Re-registers when the coordinator has
    /// forgotten this worker.
    /// `gpus`: each GPU now, with the count of this worker's trials on it.
    pub async fn heartbeat(
        &mut self,
        running: Vec<Progress>,
        gpus: &[(GpuSample, u32)],
    ) -> Result<HeartbeatAnswer, Status> {
        let running: Vec<pb::TrialProgress> = running.into_iter().map(Into::into).collect();
        let gpus: Vec<pb::GpuInfo> =
            gpus.iter().map(|(g, trials)| pb::GpuInfo { trials: *trials, ..pb::GpuInfo::from(g) }).collect();
        let request =
            pb::HeartbeatRequest { worker_id: self.worker_id.clone(), running: running.clone(), gpus: gpus.clone() };
        let r = self.client.heartbeat(request).await?.into_inner();
        if !r.known {
            self.register_with_retry().await.map_err(|e| Status::failed_precondition(format!("{e:#}")))?;
            let request = pb::HeartbeatRequest { worker_id: self.worker_id.clone(), running, gpus };
            return Ok(HeartbeatAnswer::from(self.client.heartbeat(request).await?.into_inner()));
        }
        Ok(HeartbeatAnswer::from(r))
    }

    /// Leases what `ask` asks for; each trial arrives read, or as the reason it cannot be.
    pub async fn lease(&mut self, ask: Ask) -> Result<Vec<Result<Lease, InvalidLease>>, Status> {
        let request = pb::LeaseRequest {
            worker_id: self.worker_id.clone(),
            free_slots: ask.free_slots,
            free_memory_bytes: ask.free_memory_bytes,
            fuse: ask.fuse,
        };
        Ok(self.client.lease(request).await?.into_inner().trials.into_iter().map(Lease::try_from).collect())
    }

    pub async fn metrics(&mut self, trial_id: &str, attempt: u32, points: &[MetricPoint]) -> Result<(), Status> {
        let batch =
            pb::MetricBatch { trial_id: trial_id.into(), attempt, points: points.iter().map(Into::into).collect() };
        self.client.stream_metrics(futures::stream::iter(vec![batch])).await.map(|_| ())
    }

    pub async fn upload(
        &mut self,
        trial_id: &str,
        attempt: u32,
        epoch: u32,
        step: u32,
        bytes: &[u8],
    ) -> Result<(), Status> {
        let header = pb::CheckpointHeader {
            trial_id: trial_id.into(),
            attempt,
            epoch,
            step,
            size: bytes.len() as u64,
            sha256: hex::encode(Sha256::digest(bytes)),
        };
        let mut chunks = vec![pb::CheckpointChunk { part: Some(pb::checkpoint_chunk::Part::Header(header)) }];
        chunks.extend(
            bytes
                .chunks(CHECKPOINT_CHUNK_BYTES)
                .map(|c| pb::CheckpointChunk { part: Some(pb::checkpoint_chunk::Part::Data(c.to_vec())) }),
        );
        self.client.upload_checkpoint(futures::stream::iter(chunks)).await.map(|_| ())
    }

    /// [`Link::download_checkpoint`], sent again with back-off (5 tries over about 6 s) while
    /// the coordinator cannot answer: a coordinator restarting mid-download must not cost the
    /// trial an attempt (found by the fault-injection suite, `chaos/`).
    pub async fn download_checkpoint_with_retry(
        &mut self,
        trial_id: &str,
        attempt: u32,
        path: &Path,
    ) -> anyhow::Result<()> {
        let mut delay = Duration::from_millis(200);
        for _ in 0..4 {
            match self.download_checkpoint(trial_id, attempt, path).await {
                Err(e) if e.downcast_ref::<Status>().is_some_and(CallFault::is_transient) => {
                    tracing::warn!(trial = %trial_id, error = %e, retry_in = ?delay, "checkpoint download cut; retrying");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
                done => return done,
            }
        }
        self.download_checkpoint(trial_id, attempt, path).await
    }

    /// Downloads a trial's checkpoint to `path`, checking its size and SHA-256.
    pub async fn download_checkpoint(&mut self, trial_id: &str, attempt: u32, path: &Path) -> anyhow::Result<()> {
        let request = pb::CheckpointRequest { trial_id: trial_id.into(), attempt };
        let mut stream = self.client.download_checkpoint(request).await.map_err(anyhow::Error::from)?.into_inner();
        let header = match stream.message().await?.and_then(|c| c.part) {
            Some(pb::checkpoint_chunk::Part::Header(h)) => h,
            _ => anyhow::bail!("the checkpoint download of {trial_id} did not start with its header"),
        };
        let mut bytes = Vec::with_capacity(header.size as usize);
        while let Some(chunk) = stream.message().await? {
            if let Some(pb::checkpoint_chunk::Part::Data(data)) = chunk.part {
                bytes.extend_from_slice(&data);
            }
        }
        let sha = hex::encode(Sha256::digest(&bytes));
        anyhow::ensure!(
            bytes.len() as u64 == header.size && sha == header.sha256,
            "checkpoint of {trial_id} arrived corrupt ({} of {} bytes, sha {sha} vs {})",
            bytes.len(),
            header.size,
            header.sha256
        );
        let tmp = path.with_extension("download");
        std::fs::write(&tmp, &bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
        Ok(())
    }

    pub async fn complete(&mut self, trial_id: &str, attempt: u32, outcome: &TrialOutcome) -> Result<(), Status> {
        let request = pb::CompleteRequest { trial_id: trial_id.into(), attempt, ..outcome.into() };
        self.client.complete(request).await.map(|_| ())
    }

    pub async fn fail(&mut self, trial_id: &str, attempt: u32, error: &str, fault: TrialFault) -> Result<(), Status> {
        let request = pb::FailRequest {
            trial_id: trial_id.into(),
            attempt,
            error: error.into(),
            kind: pb::FailureKind::from(fault) as i32,
        };
        self.client.fail(request).await.map(|_| ())
    }

    pub async fn release(&mut self, trials: Vec<Progress>) -> Result<(), Status> {
        let trials = trials.into_iter().map(Into::into).collect();
        self.client.release(pb::ReleaseRequest { worker_id: self.worker_id.clone(), trials }).await.map(|_| ())
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

fn memory_bytes() -> u64 {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// What a heartbeat's answer asks of the worker.
pub struct HeartbeatAnswer {
    /// Trials to stop now: cancelled, or leased to a newer attempt.
    pub stop: Vec<String>,
    /// An operator asked this worker to leave (`allsweep workers drain`).
    pub drain: pb::Drain,
}

impl From<pb::HeartbeatResponse> for HeartbeatAnswer {
    fn from(r: pb::HeartbeatResponse) -> Self {
        // An unknown value from a newer coordinator reads as the gentler drain.
        let drain = pb::Drain::try_from(r.drain).unwrap_or(pb::Drain::Finish);
        Self { stop: r.stop_trial_ids, drain }
    }
}
