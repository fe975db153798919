//! The edge of the worker API, one function per request: everything the worker service
//! checks and converts in a request before it touches the store or a file, as pure
//! functions over the decoded message. The handlers run these, and so does the `worker_rpc`
//! fuzz target (`fuzz/fuzz_targets/worker_rpc.rs`), so what is fuzzed is what serves.
//!
//! A request passes in up to two steps: the checks that need nothing but the message (ids,
//! strings, sizes, the conversion to domain types: the functions named after the request),
//! then, where a value depends on the trial, the checks that need its `epochs`
//! ([`metric_points`], [`completion`]), which the handler reads from the store in between.
//! Calls after `Register` come from `caller`, the worker the call's credentials name (proven
//! before these run). Every refusal is a [`Status`] that names the field at fault:
//! `INVALID_ARGUMENT`, `PERMISSION_DENIED` for a `worker_id` that is not the caller, or
//! `FAILED_PRECONDITION` for a worker of another protocol version.

use allsweep_proto::v1 as pb;
use allsweep_proto::PROTOCOL_VERSION;
use tonic::Status;

pub use super::fields::{id, slots, text, MAX_ID_BYTES, MAX_LABEL_BYTES, MAX_SLOTS};
pub use super::validate::{
    completion, fail_error, metric_points, CUSTOM_PREFIX, MAX_ERROR_BYTES, MAX_NAME_BYTES, MAX_POINTS_PER_BATCH,
    MAX_ROC_POINTS, MAX_SPLIT_BYTES,
};
use crate::artifacts::MAX_CHECKPOINT_BYTES;
use crate::scheduler::fusion::MAX_FUSE;
use crate::store::{AttemptRef, GpuStatus, MetricPoint, Progress};
use crate::wire::{Completed, Failure};

/// `Register`: the protocol version, the slots, the registered strings, and the worker id
/// when one is given (a reconnect); an empty id asks the coordinator to make one. Returns
/// the worker's GPUs as the store keeps them ([`gpus`]).
pub fn register(r: &pb::RegisterRequest) -> Result<Vec<GpuStatus>, Status> {
    if r.protocol_version != PROTOCOL_VERSION {
        return Err(Status::failed_precondition(format!(
            "worker speaks protocol version {}, this coordinator speaks {PROTOCOL_VERSION}: run an allsweep-worker of version {} (protocol {PROTOCOL_VERSION})",
            r.protocol_version,
            env!("CARGO_PKG_VERSION")
        )));
    }
    slots(r.slots)?;
    text("host", &r.host, MAX_LABEL_BYTES)?;
    text("device", &r.device, MAX_LABEL_BYTES)?;
    text("version", &r.version, MAX_LABEL_BYTES)?;
    if !r.worker_id.is_empty() {
        id("worker_id", &r.worker_id)?;
    }
    gpus("gpus", &r.gpus)
}

/// The most GPUs one worker may report (a large host has 8 or 16).
pub const MAX_GPUS: usize = 64;

/// A worker's GPUs, at registration or in a heartbeat: at most [`MAX_GPUS`], each index
/// named once and below [`MAX_GPUS`] too, a name of at most [`MAX_LABEL_BYTES`], no more
/// memory in use than there is, a utilisation of at most 100%; converted as the store keeps them.
pub fn gpus(field: &str, gpus: &[pb::GpuInfo]) -> Result<Vec<GpuStatus>, Status> {
    if gpus.len() > MAX_GPUS {
        return Err(Status::invalid_argument(format!("{field}: {} GPUs; at most {MAX_GPUS}", gpus.len())));
    }
    let mut seen = Vec::with_capacity(gpus.len());
    for (i, g) in gpus.iter().enumerate() {
        let at = |name: &str| format!("{field}[{i}].{name}");
        if g.index as usize >= MAX_GPUS || seen.contains(&g.index) {
            return Err(Status::invalid_argument(format!(
                "{}: {} is out of range or named twice (indexes 0 to {})",
                at("index"),
                g.index,
                MAX_GPUS - 1
            )));
        }
        seen.push(g.index);
        text(&at("name"), &g.name, MAX_LABEL_BYTES)?;
        if g.memory_used_bytes > g.memory_total_bytes {
            return Err(Status::invalid_argument(format!(
                "{}: {} bytes in use of {} in all",
                at("memory_used_bytes"),
                g.memory_used_bytes,
                g.memory_total_bytes
            )));
        }
        if g.utilization_percent > 100 {
            return Err(Status::invalid_argument(format!(
                "{}: {} is over 100",
                at("utilization_percent"),
                g.utilization_percent
            )));
        }
        if g.trials > MAX_SLOTS {
            return Err(Status::invalid_argument(format!("{}: {} is over {MAX_SLOTS}", at("trials"), g.trials)));
        }
    }
    Ok(gpus.iter().map(GpuStatus::from).collect())
}

/// Refuses a `worker_id` field that names another worker than `caller`, the worker the
/// call's credentials name; an empty one means the caller. A worker acts only for itself.
pub fn same_worker(field: &str, caller: &str) -> Result<(), Status> {
    if field.is_empty() || field == caller {
        return Ok(());
    }
    id("worker_id", field)?;
    Err(Status::permission_denied(format!(
        "worker_id: {field} is not the worker these credentials name ({caller}); a worker acts only for itself"
    )))
}

/// `Lease` from `caller`: the worker it leases for. (`free_slots` needs no check: a lease is
/// capped at the worker's registered slots, `crate::scheduler::lease_batch`; `fuse` is
/// checked against [`MAX_FUSE`].)
pub fn lease(r: &pb::LeaseRequest, caller: &str) -> Result<String, Status> {
    same_worker(&r.worker_id, caller)?;
    if r.fuse > MAX_FUSE {
        return Err(Status::invalid_argument(format!("fuse: at most {MAX_FUSE} trials in a group, got {}", r.fuse)));
    }
    Ok(caller.to_string())
}

/// A checked `Heartbeat`: the worker, its running trials and its GPUs as the store takes them.
#[derive(Debug, Clone, PartialEq)]
pub struct Heartbeat {
    pub worker: String,
    pub running: Vec<Progress>,
    pub gpus: Vec<GpuStatus>,
}

/// `Heartbeat` from `caller`: the worker, each running trial's id, and its GPUs ([`gpus`]).
pub fn heartbeat(r: pb::HeartbeatRequest, caller: &str) -> Result<Heartbeat, Status> {
    same_worker(&r.worker_id, caller)?;
    for (i, t) in r.running.iter().enumerate() {
        id(&format!("running[{i}].trial_id"), &t.trial_id)?;
    }
    let gpus = gpus("gpus", &r.gpus)?;
    Ok(Heartbeat { worker: caller.to_string(), running: r.running.into_iter().map(Progress::from).collect(), gpus })
}

/// One `StreamMetrics` batch before its values are checked against the trial's epochs
/// ([`metric_points`]).
#[derive(Debug, Clone, PartialEq)]
pub struct MetricBatch {
    pub attempt: AttemptRef,
    pub points: Vec<MetricPoint>,
}

/// One batch of `StreamMetrics`: the trial id; the points as the store takes them.
pub fn metric_batch(batch: pb::MetricBatch) -> Result<MetricBatch, Status> {
    id("trial_id", &batch.trial_id)?;
    let points = batch.points.into_iter().map(MetricPoint::from).collect();
    Ok(MetricBatch { attempt: AttemptRef { trial_id: batch.trial_id, attempt: batch.attempt }, points })
}

/// The first message of `UploadCheckpoint`: a header, with a valid trial id and a size of
/// at most [`MAX_CHECKPOINT_BYTES`].
pub fn checkpoint_header(first: Option<pb::CheckpointChunk>) -> Result<pb::CheckpointHeader, Status> {
    let header = match first.and_then(|c| c.part) {
        Some(pb::checkpoint_chunk::Part::Header(h)) => h,
        _ => return Err(Status::invalid_argument("a checkpoint upload starts with its header")),
    };
    id("header.trial_id", &header.trial_id)?;
    if header.size > MAX_CHECKPOINT_BYTES {
        return Err(Status::invalid_argument(format!(
            "header.size: a checkpoint may hold at most {MAX_CHECKPOINT_BYTES} bytes, got {}",
            header.size
        )));
    }
    Ok(header)
}

/// A later message of `UploadCheckpoint`, after `received` bytes of the `announced` size:
/// data, and no more than the header announced.
pub fn checkpoint_data(chunk: pb::CheckpointChunk, received: u64, announced: u64) -> Result<Vec<u8>, Status> {
    match chunk.part {
        Some(pb::checkpoint_chunk::Part::Data(data)) => {
            if received.saturating_add(data.len() as u64) > announced {
                return Err(Status::invalid_argument(format!(
                    "data: more than the {announced} bytes the header announced"
                )));
            }
            Ok(data)
        }
        _ => Err(Status::invalid_argument("only data chunks may follow the header")),
    }
}

/// `DownloadCheckpoint`: the trial id.
pub fn checkpoint_request(r: &pb::CheckpointRequest) -> Result<(), Status> {
    id("trial_id", &r.trial_id)
}

/// `Complete` before its values are checked against the trial's epochs ([`completion`]):
/// the test metrics present, the trial id.
pub fn complete(r: pb::CompleteRequest) -> Result<Completed, Status> {
    let done = Completed::try_from(r).map_err(|e| Status::invalid_argument(e.to_string()))?;
    id("trial_id", &done.attempt.trial_id)?;
    Ok(done)
}

/// `Fail`: the trial id, and the error as it will be stored ([`fail_error`]).
pub fn fail(r: pb::FailRequest) -> Result<Failure, Status> {
    let Failure { attempt, error, fault } = r.into();
    id("trial_id", &attempt.trial_id)?;
    let error = fail_error(error)?;
    Ok(Failure { attempt, error, fault })
}

/// `Release` from `caller`: the worker and each trial's id; the trials as the store takes them.
pub fn release(r: pb::ReleaseRequest, caller: &str) -> Result<(String, Vec<AttemptRef>), Status> {
    same_worker(&r.worker_id, caller)?;
    for (i, t) in r.trials.iter().enumerate() {
        id(&format!("trials[{i}].trial_id"), &t.trial_id)?;
    }
    Ok((caller.to_string(), r.trials.into_iter().map(AttemptRef::from).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused<T: std::fmt::Debug>(result: Result<T, Status>) -> (tonic::Code, String) {
        let status = result.expect_err("refused");
        (status.code(), status.message().to_string())
    }

    #[test]
    fn a_worker_of_another_protocol_is_refused_with_the_version_that_fits() {
        let r = pb::RegisterRequest { protocol_version: PROTOCOL_VERSION + 1, slots: 1, ..Default::default() };
        let (code, message) = refused(register(&r));
        assert_eq!(code, tonic::Code::FailedPrecondition);
        assert!(message.contains(&format!("this coordinator speaks {PROTOCOL_VERSION}")), "{message}");
        let ok = pb::RegisterRequest { protocol_version: PROTOCOL_VERSION, slots: 2, ..Default::default() };
        register(&ok).expect("a first registration");
    }

    #[test]
    fn an_upload_starts_with_a_header_and_sends_no_more_than_it_announced() {
        let (code, message) = refused(checkpoint_header(None));
        assert_eq!(
            (code, message.as_str()),
            (tonic::Code::InvalidArgument, "a checkpoint upload starts with its header")
        );
        let data = |n: usize| pb::CheckpointChunk { part: Some(pb::checkpoint_chunk::Part::Data(vec![0; n])) };
        refused(checkpoint_header(Some(data(1))));
        let header = |size: u64| pb::CheckpointChunk {
            part: Some(pb::checkpoint_chunk::Part::Header(pb::CheckpointHeader {
                trial_id: "t-1".into(),
                size,
                ..Default::default()
            })),
        };
        assert_eq!(checkpoint_header(Some(header(10))).expect("a header").size, 10);
        let (_, message) = refused(checkpoint_header(Some(header(MAX_CHECKPOINT_BYTES + 1))));
        assert!(message.starts_with("header.size: a checkpoint may hold at most"), "{message}");
        assert_eq!(checkpoint_data(data(4), 6, 10).expect("within").len(), 4);
        let (_, message) = refused(checkpoint_data(data(5), 6, 10));
        assert_eq!(message, "data: more than the 10 bytes the header announced");
        refused(checkpoint_data(data(1), u64::MAX, u64::MAX - 1)); // no overflow
        refused(checkpoint_data(header(1), 0, 10));
    }

    #[test]
    fn each_id_in_a_list_is_named_by_its_index() {
        let progress = |id: &str| pb::TrialProgress { trial_id: id.into(), attempt: 1, epoch: 0 };
        let r = pb::ReleaseRequest { worker_id: "w-1".into(), trials: vec![progress("t-1"), progress("../t")] };
        let (_, message) = refused(release(r, "w-1"));
        assert!(message.starts_with("trials[1].trial_id: only letters"), "{message}");
        let r = pb::HeartbeatRequest { worker_id: String::new(), running: vec![progress("t-1")], gpus: Vec::new() };
        let beat = heartbeat(r, "w-1").expect("a heartbeat");
        assert_eq!((beat.worker.as_str(), beat.running.len()), ("w-1", 1));
    }

    #[test]
    fn gpu_reports_are_checked_field_by_field() {
        let gpu = |index: u32| pb::GpuInfo {
            index,
            name: "NVIDIA H200".into(),
            memory_total_bytes: 150_000_000_000,
            memory_used_bytes: 20_000_000_000,
            utilization_percent: 87,
            trials: 3,
        };
        let beat =
            |gpus: Vec<pb::GpuInfo>| pb::HeartbeatRequest { worker_id: String::new(), running: Vec::new(), gpus };
        let ok = heartbeat(beat(vec![gpu(0), gpu(1)]), "w-1").expect("two GPUs");
        assert_eq!(
            ok.gpus[1],
            GpuStatus {
                index: 1,
                name: "NVIDIA H200".into(),
                memory_total_bytes: 150_000_000_000,
                memory_used_bytes: 20_000_000_000,
                utilization_percent: 87,
                trials: 3
            }
        );
        let cases: [(pb::GpuInfo, &str); 5] = [
            (
                pb::GpuInfo { memory_used_bytes: u64::MAX, ..gpu(1) },
                "gpus[1].memory_used_bytes: 18446744073709551615 bytes in use of 150000000000",
            ),
            (pb::GpuInfo { utilization_percent: 101, ..gpu(1) }, "gpus[1].utilization_percent: 101 is over 100"),
            (pb::GpuInfo { name: "x".repeat(MAX_LABEL_BYTES + 1), ..gpu(1) }, "gpus[1].name"),
            (gpu(0), "gpus[1].index: 0 is out of range or named twice"),
            (gpu(u32::MAX), "gpus[1].index: 4294967295 is out of range"),
        ];
        for (bad, expected) in cases {
            let (code, message) = refused(heartbeat(beat(vec![gpu(0), bad]), "w-1"));
            assert_eq!(code, tonic::Code::InvalidArgument);
            assert!(message.starts_with(expected), "{message}");
        }
        let many = (0..=MAX_GPUS as u32).map(gpu).collect();
        let (_, message) = refused(heartbeat(beat(many), "w-1"));
        assert!(message.starts_with("gpus: 65 GPUs; at most 64"), "{message}");
        let r = pb::RegisterRequest {
            protocol_version: PROTOCOL_VERSION,
            slots: 1,
            gpus: vec![gpu(0), gpu(0)],
            ..Default::default()
        };
        assert!(refused(register(&r)).1.starts_with("gpus[1].index"));
    }

    #[test]
    fn a_worker_acts_only_for_itself() {
        assert_eq!(
            lease(&pb::LeaseRequest { worker_id: String::new(), free_slots: 1, free_memory_bytes: 0, fuse: 0 }, "w-1")
                .expect("the caller"),
            "w-1"
        );
        lease(&pb::LeaseRequest { worker_id: "w-1".into(), free_slots: 1, free_memory_bytes: 0, fuse: 0 }, "w-1")
            .expect("the caller by name");
        let (code, message) = refused(lease(
            &pb::LeaseRequest { worker_id: "w-2".into(), free_slots: 1, free_memory_bytes: 0, fuse: 0 },
            "w-1",
        ));
        assert_eq!(code, tonic::Code::PermissionDenied);
        assert!(message.starts_with("worker_id: w-2 is not the worker these credentials name (w-1)"), "{message}");
        let (code, _) = refused(lease(
            &pb::LeaseRequest { worker_id: "../w".into(), free_slots: 1, free_memory_bytes: 0, fuse: 0 },
            "w-1",
        ));
        assert_eq!(code, tonic::Code::InvalidArgument, "a malformed id is a malformed id");
    }

    #[test]
    fn a_lease_asks_for_groups_of_at_most_max_fuse() {
        let ask = |fuse| pb::LeaseRequest { worker_id: "w-1".into(), free_slots: 1, free_memory_bytes: 0, fuse };
        lease(&ask(MAX_FUSE), "w-1").expect("the largest group");
        let (code, message) = refused(lease(&ask(MAX_FUSE + 1), "w-1"));
        assert_eq!(code, tonic::Code::InvalidArgument);
        assert_eq!(message, format!("fuse: at most {MAX_FUSE} trials in a group, got {}", MAX_FUSE + 1));
    }
}
