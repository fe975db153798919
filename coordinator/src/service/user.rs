//! The user API: submit, status, cancel, watch, workers, results.

use std::pin::Pin;
use std::time::Duration;

use allsweep_proto::v1::{self as pb, user_service_server::UserService};
use futures::Stream;
use tonic::{Request, Response, Status};

use super::page::{Page, DEFAULT_PAGE_SIZE};
use super::{status, Shared};
use crate::scheduler::Clocks;
use crate::spec::{Spec, SpecLimits};
use crate::store::{now_ms, Millis, SweepRow, TrialRow, TrialState, WorkerRow};

pub struct UserApi {
    pub shared: Shared,
    /// The largest sweep `submit` accepts.
    pub limits: SpecLimits,
}

type StatusStream = Pin<Box<dyn Stream<Item = Result<pb::SweepStatus, Status>> + Send>>;

#[tonic::async_trait]
impl UserService for UserApi {
    async fn submit(&self, request: Request<pb::SubmitRequest>) -> Result<Response<pb::SubmitResponse>, Status> {
        let text = request.into_inner().spec_toml;
        let limits = self.limits;
        // Validating and keying every trial is CPU work that grows with the sweep: it runs on
        // a blocking thread, so that heartbeats and leases keep being answered meanwhile.
        let sweep =
            tokio::task::spawn_blocking(move || Spec::parse_with(&text, &limits).map(|s| s.to_new_sweep(&text)))
                .await
                .map_err(|e| Status::internal(format!("spec validation stopped: {e}")))?
                .map_err(|e| Status::invalid_argument(format!("invalid spec: {e}")))?;
        let created = self.shared.store.insert_sweep(&sweep, now_ms()).await.map_err(status)?;
        tracing::info!(sweep = %sweep.id, trials = sweep.trials.len(), created, "sweep submitted");
        Ok(Response::new(pb::SubmitResponse { sweep_id: sweep.id, trials: sweep.trials.len() as u32, created }))
    }

    async fn get_sweep(&self, request: Request<pb::SweepRequest>) -> Result<Response<pb::SweepStatus>, Status> {
        let r = request.into_inner();
        let page = Page::parse(r.page_size, &r.page_token, None)?;
        let mut reply = sweep_status(&self.shared, &r.sweep_id).await?;
        (reply.trials, reply.next_page_token) = page.take(std::mem::take(&mut reply.trials));
        Ok(Response::new(reply))
    }

    async fn list_sweeps(
        &self,
        request: Request<pb::ListSweepsRequest>,
    ) -> Result<Response<pb::ListSweepsResponse>, Status> {
        let r = request.into_inner();
        let page = Page::parse(r.page_size, &r.page_token, Some(DEFAULT_PAGE_SIZE))?;
        let (rows, next_page_token) = page.take(self.shared.store.sweeps().await.map_err(status)?);
        let mut sweeps = Vec::new();
        for row in rows {
            let trials = self.shared.store.trials(&row.id).await.map_err(status)?;
            let mut s = summarize(&row, &trials);
            s.trials.clear();
            sweeps.push(s);
        }
        Ok(Response::new(pb::ListSweepsResponse { sweeps, next_page_token }))
    }

    async fn cancel(&self, request: Request<pb::SweepRequest>) -> Result<Response<pb::SweepStatus>, Status> {
        let id = request.into_inner().sweep_id;
        if !self.shared.store.cancel_sweep(&id, now_ms()).await.map_err(status)? {
            return Err(Status::not_found(format!("no sweep {id}")));
        }
        tracing::info!(sweep = %id, "sweep cancelled");
        Ok(Response::new(sweep_status(&self.shared, &id).await?))
    }

    type WatchStream = StatusStream;

    async fn watch(&self, request: Request<pb::SweepRequest>) -> Result<Response<StatusStream>, Status> {
        let id = request.into_inner().sweep_id;
        let first = sweep_status(&self.shared, &id).await?;
        let shared = self.shared.clone();
        // Poll the database: it is the only state, and other coordinators may share it.
        let stream =
            futures::stream::unfold((Some(first), shared, id, false), |(pending, shared, id, done)| async move {
                if done {
                    return None;
                }
                let next = match pending {
                    Some(s) => Ok(s),
                    None => {
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        sweep_status(&shared, &id).await
                    }
                };
                let finished = next.as_ref().map_or(true, |s| s.state() != pb::SweepState::Active);
                Some((next, (None, shared, id, finished)))
            });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn list_workers(
        &self,
        request: Request<pb::ListWorkersRequest>,
    ) -> Result<Response<pb::ListWorkersResponse>, Status> {
        let r = request.into_inner();
        let page = Page::parse(r.page_size, &r.page_token, Some(DEFAULT_PAGE_SIZE))?;
        let now = now_ms();
        let clocks = self.shared.clocks;
        let (rows, next_page_token) = page.take(self.shared.store.workers().await.map_err(status)?);
        let workers = rows.into_iter().map(|w| worker_info(w, &clocks, now)).collect();
        Ok(Response::new(pb::ListWorkersResponse { workers, next_page_token }))
    }

    async fn query_results(
        &self,
        request: Request<pb::SweepRequest>,
    ) -> Result<Response<pb::QueryResultsResponse>, Status> {
        let id = request.into_inner().sweep_id;
        if self.shared.store.sweep(&id).await.map_err(status)?.is_none() {
            return Err(Status::not_found(format!("no sweep {id}")));
        }
        let results =
            self.shared.store.results(&id).await.map_err(status)?.into_iter().map(pb::TrialResult::from).collect();
        Ok(Response::new(pb::QueryResultsResponse { results }))
    }
}

async fn sweep_status(shared: &Shared, id: &str) -> Result<pb::SweepStatus, Status> {
    let row =
        shared.store.sweep(id).await.map_err(status)?.ok_or_else(|| Status::not_found(format!("no sweep {id}")))?;
    let trials = shared.store.trials(id).await.map_err(status)?;
    Ok(summarize(&row, &trials))
}

fn summarize(row: &SweepRow, trials: &[TrialRow]) -> pb::SweepStatus {
    let count = |state: TrialState| trials.iter().filter(|t| t.state == state).count() as u32;
    pb::SweepStatus {
        sweep_id: row.id.clone(),
        name: row.name.clone(),
        state: pb::SweepState::from(row.state) as i32,
        queued: count(TrialState::Queued),
        running: count(TrialState::Running),
        completed: count(TrialState::Completed),
        failed: count(TrialState::Failed),
        cancelled: count(TrialState::Cancelled),
        stopped: count(TrialState::Stopped),
        trials: trials
            .iter()
            .map(|t| pb::TrialStatus {
                trial_id: t.id.clone(),
                state: pb::TrialState::from(t.state) as i32,
                attempt: t.attempt,
                epoch: t.epoch,
                epochs: t.epochs,
                worker_id: t.worker_id.clone().unwrap_or_default(),
                label: t.label.clone(),
                error: t.error.as_deref().map(status_error).unwrap_or_default(),
                memory_bytes: t.memory_bytes,
                group_id: t.group_id.clone().unwrap_or_default(),
                note: t.note.as_deref().map(status_error).unwrap_or_default(),
                stopped_epoch: t.stopped_epoch.unwrap_or(0),
            })
            .collect(),
        next_page_token: String::new(),
    }
}

/// The most of a trial's error a status reply carries; the whole error stays in the database
/// (`trials.error`, `attempts.error`). Keeps a sweep of many failed trials within one reply.
pub const STATUS_ERROR_BYTES: usize = 512;

/// A trial's error as a status reply carries it: cut at [`STATUS_ERROR_BYTES`] on a character
/// boundary, with a marker.
fn status_error(error: &str) -> String {
    if error.len() <= STATUS_ERROR_BYTES {
        return error.to_string();
    }
    let cut = (0..=STATUS_ERROR_BYTES).rev().find(|&i| error.is_char_boundary(i)).unwrap_or(0);
    format!("{}... [{} more bytes in the database]", &error[..cut], error.len() - cut)
}

/// A worker as `ListWorkers` and `DrainWorker` answer it.
pub(super) fn worker_info(w: WorkerRow, clocks: &Clocks, now: Millis) -> pb::WorkerInfo {
    pb::WorkerInfo {
        alive: clocks.worker_alive(w.last_seen_at, now),
        gpus: w.gpus.iter().map(pb::GpuInfo::from).collect(),
        drain: crate::wire::drain(w.drain) as i32,
        worker_id: w.id,
        host: w.host,
        device: w.device,
        slots: w.slots,
        running: w.running,
        last_seen_ms: w.last_seen_at,
        version: w.version,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_errors_are_cut_in_status_replies_and_short_ones_kept() {
        assert_eq!(status_error("diverged"), "diverged");
        let long = "é".repeat(1000);
        let shown = status_error(&long);
        assert!(shown.len() < STATUS_ERROR_BYTES + 40, "{}", shown.len());
        assert!(shown.ends_with("... [1488 more bytes in the database]"), "{shown}");
    }
}
