//! The worker API. Every call after `Register` is made by one registered worker, proven by
//! the key `Register` gave it ([`crate::access::WorkerKeys`]); each write then names that
//! worker to the store, which refuses it unless the worker holds the lease.

use std::pin::Pin;

use allsweep_proto::auth::WORKER_KEY_HEADER;
use allsweep_proto::v1::{self as pb, worker_service_server::WorkerService};
use allsweep_proto::CHECKPOINT_CHUNK_BYTES;
use futures::Stream;
use tokio::io::AsyncReadExt;
use tonic::{Request, Response, Status, Streaming};

use super::{artifact_status, edge, fields, status, Shared};
use crate::access::tokens::{hash, new_secret};
use crate::artifacts::Artifacts;
use crate::scheduler;
use crate::store::{now_ms, AttemptRef, CheckpointRow, MetricsStored, WorkerRow};
use crate::wire::{Completed, Failure};

pub struct WorkerApi {
    pub shared: Shared,
}

impl WorkerApi {
    /// The worker a call comes from, as its metadata proves; NOT_FOUND for an unknown worker
    /// (it must register again).
    async fn caller(&self, request: &Request<impl Sized>) -> Result<String, Status> {
        let known =
            self.shared.worker_keys.identify(&*self.shared.store, request.metadata(), |id| fields::id("worker_id", id));
        known.await?.ok_or_else(|| Status::not_found("unknown worker: register again"))
    }
}

type ChunkStream = Pin<Box<dyn Stream<Item = Result<pb::CheckpointChunk, Status>> + Send>>;

#[tonic::async_trait]
impl WorkerService for WorkerApi {
    async fn register(&self, request: Request<pb::RegisterRequest>) -> Result<Response<pb::RegisterResponse>, Status> {
        let presented = request.metadata().get(WORKER_KEY_HEADER).and_then(|v| v.to_str().ok()).map(str::to_string);
        let r = request.into_inner();
        let gpus = edge::register(&r)?;
        let now = now_ms();
        // A worker registering again (after a reconnect) keeps its key; a new one gets one.
        let (key, is_new_key) = match presented.filter(|k| !k.is_empty() && !r.worker_id.is_empty()) {
            Some(key) => (key, false),
            None => (new_secret(), true),
        };
        let key_hash = hash(&key);
        let id = if r.worker_id.is_empty() { new_worker_id(&r.host) } else { r.worker_id };
        let row = WorkerRow {
            id: id.clone(),
            host: r.host,
            device: r.device,
            memory_bytes: r.memory_bytes,
            slots: r.slots,
            version: r.version,
            registered_at: now,
            last_seen_at: now,
            running: 0,
            gpus,
            drain: None,
        };
        if !self.shared.store.register_worker(&row, &key_hash).await.map_err(status)? {
            return Err(Status::permission_denied(format!(
                "worker_id: {id} belongs to another worker (its key differs): register without a worker_id for a new one"
            )));
        }
        self.shared.worker_keys.remember(&id, &key_hash);
        tracing::info!(worker = %id, host = %row.host, device = %row.device, slots = row.slots, "worker registered");
        Ok(Response::new(pb::RegisterResponse {
            worker_id: id,
            heartbeat_interval_ms: self.shared.clocks.heartbeat_interval().as_millis() as u32,
            lease_ttl_ms: self.shared.clocks.lease_ttl.as_millis() as u32,
            worker_key: if is_new_key { key } else { String::new() },
        }))
    }

    async fn lease(&self, request: Request<pb::LeaseRequest>) -> Result<Response<pb::LeaseResponse>, Status> {
        let caller = self.caller(&request).await?;
        let r = request.into_inner();
        let worker = edge::lease(&r, &caller)?;
        let now = now_ms();
        let Some(touched) = self.shared.store.touch_worker(&worker, now).await.map_err(status)? else {
            return Err(Status::not_found(format!("unknown worker {worker}: register first")));
        };
        if touched.drain.is_some() {
            // Asked to leave: it hears so at its next heartbeat.
            return Ok(Response::new(pb::LeaseResponse { trials: Vec::new() }));
        }
        let count = scheduler::lease_batch(r.free_slots, touched.slots);
        let memory = scheduler::MemoryFit::from_request(r.free_memory_bytes);
        let expires_at = self.shared.clocks.lease_expiry(now);
        let leased = self.shared.store.lease_fitting(&worker, count, memory, now, expires_at).await.map_err(status)?;
        let groups = scheduler::fusion::groups(&leased, r.fuse);
        let marks: Vec<(AttemptRef, String)> = leased
            .iter()
            .zip(&groups)
            .filter_map(|(l, g)| Some((AttemptRef { trial_id: l.trial_id.clone(), attempt: l.attempt }, g.clone()?)))
            .collect();
        self.shared.store.mark_groups(&worker, &marks).await.map_err(status)?;
        for (l, group) in leased.iter().zip(&groups) {
            tracing::info!(trial = %l.trial_id, attempt = l.attempt, worker = %worker, resume_epoch = ?l.checkpoint_epoch, group = ?group, "trial leased");
        }
        let trials = leased
            .into_iter()
            .zip(groups)
            .map(|(l, group)| pb::LeasedTrial { group_id: group.unwrap_or_default(), ..pb::LeasedTrial::from(l) })
            .collect();
        Ok(Response::new(pb::LeaseResponse { trials }))
    }

    async fn heartbeat(
        &self,
        request: Request<pb::HeartbeatRequest>,
    ) -> Result<Response<pb::HeartbeatResponse>, Status> {
        let identified =
            self.shared.worker_keys.identify(&*self.shared.store, request.metadata(), |id| fields::id("worker_id", id));
        let Some(caller) = identified.await? else {
            // A coordinator that lost this worker (a new database): the worker registers again.
            return Ok(Response::new(pb::HeartbeatResponse {
                stop_trial_ids: Vec::new(),
                known: false,
                drain: pb::Drain::None as i32,
            }));
        };
        let edge::Heartbeat { worker, running, gpus } = edge::heartbeat(request.into_inner(), &caller)?;
        let now = now_ms();
        let touched = self.shared.store.touch_worker(&worker, now).await.map_err(status)?;
        let known = touched.is_some();
        if known && !gpus.is_empty() {
            self.shared.store.record_gpus(&worker, &gpus).await.map_err(status)?;
        }
        let stop = if known {
            // The expiry counts from the renewal's write, not from when the call came in: a
            // call that waited for the database must not write a lease that is already over.
            let expires_at = self.shared.clocks.lease_expiry(now_ms());
            self.shared.store.renew(&worker, &running, expires_at).await.map_err(status)?
        } else {
            Vec::new()
        };
        let drain = crate::wire::drain(touched.and_then(|t| t.drain)) as i32;
        Ok(Response::new(pb::HeartbeatResponse { stop_trial_ids: stop, known, drain }))
    }

    async fn stream_metrics(
        &self,
        request: Request<Streaming<pb::MetricBatch>>,
    ) -> Result<Response<pb::MetricAck>, Status> {
        let worker = self.caller(&request).await?;
        let mut stream = request.into_inner();
        let mut total = MetricsStored::default();
        while let Some(batch) = stream.message().await? {
            let edge::MetricBatch { attempt, points } = edge::metric_batch(batch)?;
            let epochs = self.shared.epochs.epochs(&*self.shared.store, &attempt.trial_id).await?;
            edge::metric_points(&points, epochs)?;
            let store = &self.shared.store;
            let stored =
                store.record_metrics(&worker, &attempt.trial_id, attempt.attempt, &points).await.map_err(status)?;
            total.stored += stored.stored;
            total.duplicates += stored.duplicates;
            self.shared.telemetry.metric_points(stored.stored, stored.duplicates);
        }
        Ok(Response::new(pb::MetricAck { stored: total.stored, duplicates: total.duplicates }))
    }

    async fn upload_checkpoint(
        &self,
        request: Request<Streaming<pb::CheckpointChunk>>,
    ) -> Result<Response<pb::CheckpointAck>, Status> {
        let worker = self.caller(&request).await?;
        let mut stream = request.into_inner();
        let header = edge::checkpoint_header(stream.message().await?)?;
        // Refuse a superseded attempt before receiving anything; the write re-checks. Past
        // this check the trial id is a database key, and the file name is built from it.
        let attempt = AttemptRef { trial_id: header.trial_id.clone(), attempt: header.attempt };
        self.shared.store.check_lease(&worker, &attempt).await.map_err(status)?;
        let name = Artifacts::checkpoint_name(&header.trial_id, header.attempt, header.epoch, header.step);
        // Dropped on any early return (a cancelled stream included), `incoming` removes its
        // temporary file.
        let mut incoming = self.shared.artifacts.begin(&name).await.map_err(artifact_status)?;
        while let Some(chunk) = stream.message().await? {
            let data = edge::checkpoint_data(chunk, incoming.bytes(), header.size)?;
            incoming.write(&data).await.map_err(artifact_status)?;
        }
        self.shared
            .artifacts
            .finish(incoming, &name, &header.trial_id, header.size, &header.sha256)
            .await
            .map_err(artifact_status)?;
        let row = CheckpointRow {
            trial_id: header.trial_id.clone(),
            attempt: header.attempt,
            epoch: header.epoch,
            step: header.step,
            file: name.clone(),
            sha256: header.sha256.to_ascii_lowercase(),
            bytes: header.size,
        };
        match self.shared.store.record_checkpoint(&worker, &row, now_ms()).await {
            Ok(replaced) => {
                if let Some(old) = replaced {
                    self.shared.artifacts.remove(&old).await;
                }
                self.shared.telemetry.checkpoint_stored(header.size);
                tracing::debug!(trial = %header.trial_id, epoch = header.epoch, bytes = header.size, "checkpoint stored");
                Ok(Response::new(pb::CheckpointAck { bytes: header.size }))
            }
            Err(error) => {
                // This upload's own file: no other upload and no database row names it.
                self.shared.artifacts.remove(&name).await;
                Err(status(error))
            }
        }
    }

    type DownloadCheckpointStream = ChunkStream;

    async fn download_checkpoint(
        &self,
        request: Request<pb::CheckpointRequest>,
    ) -> Result<Response<ChunkStream>, Status> {
        let worker = self.caller(&request).await?;
        let r = request.into_inner();
        edge::checkpoint_request(&r)?;
        // Only the holder of the lease reads the trial's checkpoint.
        let attempt = AttemptRef { trial_id: r.trial_id.clone(), attempt: r.attempt };
        self.shared.store.check_lease(&worker, &attempt).await.map_err(status)?;
        let row = self
            .shared
            .store
            .checkpoint(&r.trial_id)
            .await
            .map_err(status)?
            .ok_or_else(|| Status::not_found(format!("trial {} has no checkpoint", r.trial_id)))?;
        let path = self.shared.artifacts.path(&row.file);
        let file = tokio::fs::File::open(&path).await.map_err(|error| {
            tracing::error!(path = %path.display(), trial = %r.trial_id, %error, "cannot open a checkpoint file");
            Status::data_loss(format!("the checkpoint of trial {} cannot be read on the coordinator", r.trial_id))
        })?;
        let stream = chunks(row.into(), file);
        Ok(Response::new(stream))
    }

    async fn complete(&self, request: Request<pb::CompleteRequest>) -> Result<Response<pb::Ack>, Status> {
        let worker = self.caller(&request).await?;
        let Completed { attempt, completion } = edge::complete(request.into_inner())?;
        let epochs = self.shared.epochs.epochs(&*self.shared.store, &attempt.trial_id).await?;
        edge::completion(&completion, epochs)?;
        let store = &self.shared.store;
        let remove =
            store.complete(&worker, &attempt.trial_id, attempt.attempt, &completion, now_ms()).await.map_err(status)?;
        if let Some(file) = remove {
            self.shared.artifacts.remove(&file).await;
        }
        let jaccard = completion.metrics.jaccard;
        tracing::info!(trial = %attempt.trial_id, attempt = attempt.attempt, jaccard, "trial completed");
        Ok(Response::new(pb::Ack {}))
    }

    async fn fail(&self, request: Request<pb::FailRequest>) -> Result<Response<pb::Ack>, Status> {
        let worker = self.caller(&request).await?;
        let Failure { attempt, error, fault } = edge::fail(request.into_inner())?;
        let store = &self.shared.store;
        let next =
            store.fail(&worker, &attempt.trial_id, attempt.attempt, &error, fault, now_ms()).await.map_err(status)?;
        tracing::warn!(trial = %attempt.trial_id, attempt = attempt.attempt, ?fault, ?next, %error, "trial attempt failed");
        Ok(Response::new(pb::Ack {}))
    }

    async fn release(&self, request: Request<pb::ReleaseRequest>) -> Result<Response<pb::Ack>, Status> {
        let caller = self.caller(&request).await?;
        let (worker, trials) = edge::release(request.into_inner(), &caller)?;
        self.shared.store.release(&worker, &trials, now_ms()).await.map_err(status)?;
        tracing::info!(worker = %worker, trials = trials.len(), "worker released its trials");
        Ok(Response::new(pb::Ack {}))
    }
}

/// A stream of the header, then the file's chunks until its end.
fn chunks(header: pb::CheckpointHeader, file: tokio::fs::File) -> ChunkStream {
    enum State {
        Header(pb::CheckpointHeader, tokio::fs::File),
        Reading(tokio::fs::File),
        Done,
    }
    let stream = futures::stream::unfold(State::Header(header, file), |state| async move {
        match state {
            State::Header(header, file) => Some((
                Ok(pb::CheckpointChunk { part: Some(pb::checkpoint_chunk::Part::Header(header)) }),
                State::Reading(file),
            )),
            State::Reading(mut file) => {
                let mut buffer = vec![0_u8; CHECKPOINT_CHUNK_BYTES];
                match file.read(&mut buffer).await {
                    Ok(0) => None,
                    Ok(n) => {
                        buffer.truncate(n);
                        let chunk = pb::CheckpointChunk { part: Some(pb::checkpoint_chunk::Part::Data(buffer)) };
                        Some((Ok(chunk), State::Reading(file)))
                    }
                    Err(error) => {
                        tracing::error!(%error, "cannot read a checkpoint file");
                        Some((
                            Err(Status::data_loss("a checkpoint file cannot be read on the coordinator")),
                            State::Done,
                        ))
                    }
                }
            }
            State::Done => None,
        }
    });
    Box::pin(stream)
}

fn new_worker_id(host: &str) -> String {
    let host: String = host.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').take(24).collect();
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("{}-{:x}", if host.is_empty() { "worker" } else { &host }, nanos & 0xFFFF_FFFF_FFFF)
}
