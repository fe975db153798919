//! Fuzzes the worker API's edge: arbitrary bytes decoded with prost as one of the nine
//! messages a worker sends, then the conversions (`allsweep_coordinator::wire`) and checks
//! (`service::edge`) the handler runs on it before it touches the store or a file.
//!
//! Input: byte 0 picks the message type, byte 1 is the trial's `epochs` (what the handler
//! reads from the store for the value checks), the rest is the encoded message. Besides not
//! panicking: a refusal is `INVALID_ARGUMENT` (`PERMISSION_DENIED` for a `worker_id` that
//! is not the caller's, `FAILED_PRECONDITION` for another protocol version) with a short
//! message, never an echo of a large input; what passes acts for the caller only, and holds
//! only ids the coordinator makes (`[A-Za-z0-9-]`, at most 128 bytes), finite values, fractions
//! in [0, 1], epochs within the trial's, and strings within their caps.
#![no_main]

use allsweep_coordinator::artifacts::MAX_CHECKPOINT_BYTES;
use allsweep_coordinator::service::edge;
use allsweep_coordinator::store::{Completion, MetricPoint};
use allsweep_proto::metric;
use allsweep_proto::v1 as pb;
use libfuzzer_sys::fuzz_target;
use prost::Message;
use tonic::{Code, Status};

/// The worker the calls come from, as their credentials name it.
const CALLER: &str = "fuzz-worker-1";

/// The longest refusal message: field, problem and at most a 64-byte cut of the value.
const MAX_MESSAGE_BYTES: usize = 1024;

fuzz_target!(|data: &[u8]| {
    let [kind, epochs, bytes @ ..] = data else {
        return;
    };
    let epochs = u32::from(*epochs);
    match kind % 9 {
        0 => decoded(bytes, |r: pb::RegisterRequest| {
            let result = edge::register(&r);
            if r.protocol_version != allsweep_proto::PROTOCOL_VERSION {
                let status = result.expect_err("another protocol version is refused");
                assert_eq!(status.code(), Code::FailedPrecondition);
                return;
            }
            if let Some(gpus) = passed(result) {
                assert!((1..=edge::MAX_SLOTS).contains(&r.slots));
                assert!(gpus.len() <= edge::MAX_GPUS);
                for label in [&r.host, &r.device, &r.version] {
                    assert!(label.len() <= edge::MAX_LABEL_BYTES && !label.chars().any(char::is_control));
                }
                assert!(r.worker_id.is_empty() || is_id(&r.worker_id));
            }
        }),
        1 => decoded(bytes, |r: pb::LeaseRequest| {
            let field = r.worker_id.clone();
            if let Some(worker) = passed(edge::lease(&r, CALLER)) {
                assert!(worker == CALLER && (field.is_empty() || field == CALLER), "{field:?} leased for {worker}");
            }
        }),
        2 => decoded(bytes, |r: pb::HeartbeatRequest| {
            let field = r.worker_id.clone();
            if let Some(beat) = passed(edge::heartbeat(r, CALLER)) {
                let worker = &beat.worker;
                assert!(worker == CALLER && (field.is_empty() || field == CALLER), "{field:?} renewed for {worker}");
                assert!(beat.running.iter().all(|p| is_id(&p.trial_id)));
                assert!(beat.gpus.len() <= edge::MAX_GPUS);
                assert!(beat.gpus.iter().all(|g| g.memory_used_bytes <= g.memory_total_bytes && g.utilization_percent <= 100));
            }
        }),
        3 => decoded(bytes, |r: pb::MetricBatch| {
            let Some(batch) = passed(edge::metric_batch(r)) else { return };
            assert!(is_id(&batch.attempt.trial_id));
            if let Some(()) = passed(edge::metric_points(&batch.points, epochs)) {
                assert!(batch.points.len() <= edge::MAX_POINTS_PER_BATCH);
                batch.points.iter().for_each(|p| metric_point(p, epochs));
            }
        }),
        4 => decoded(bytes, |chunk: pb::CheckpointChunk| {
            if let Some(header) = passed(edge::checkpoint_header(Some(chunk.clone()))) {
                assert!(is_id(&header.trial_id) && header.size <= MAX_CHECKPOINT_BYTES);
            }
            // The same chunk as a later one, after `epochs` bytes of a 255-byte checkpoint.
            let received = u64::from(epochs);
            if let Some(data) = passed(edge::checkpoint_data(chunk, received, 255)) {
                assert!(received + data.len() as u64 <= 255);
            }
        }),
        5 => decoded(bytes, |r: pb::CheckpointRequest| {
            if let Some(()) = passed(edge::checkpoint_request(&r)) {
                assert!(is_id(&r.trial_id));
            }
        }),
        6 => decoded(bytes, |r: pb::CompleteRequest| {
            let Some(done) = passed(edge::complete(r)) else { return };
            assert!(is_id(&done.attempt.trial_id));
            if let Some(()) = passed(edge::completion(&done.completion, epochs)) {
                completion(&done.completion, epochs);
            }
        }),
        7 => decoded(bytes, |r: pb::FailRequest| {
            if let Some(failure) = passed(edge::fail(r)) {
                assert!(is_id(&failure.attempt.trial_id));
                assert!(!failure.error.trim().is_empty());
                assert!(failure.error.len() <= edge::MAX_ERROR_BYTES + 64, "{} bytes kept", failure.error.len());
            }
        }),
        _ => decoded(bytes, |r: pb::ReleaseRequest| {
            let field = r.worker_id.clone();
            if let Some((worker, trials)) = passed(edge::release(r, CALLER)) {
                assert!(worker == CALLER && (field.is_empty() || field == CALLER), "{field:?} released for {worker}");
                assert!(trials.iter().all(|t| is_id(&t.trial_id)));
            }
        }),
    }
});

/// Runs `check` on the message `bytes` decode to; bytes that decode to none are refused by
/// the codec before any handler runs.
fn decoded<M: Message + Default>(bytes: &[u8], check: impl FnOnce(M)) {
    if let Ok(message) = M::decode(bytes) {
        check(message);
    }
}

/// `Some` for what passed; for a refusal, checks that it is the caller's error (a malformed
/// field, or a worker_id that is not the caller's) and says so briefly.
fn passed<T>(result: Result<T, Status>) -> Option<T> {
    match result {
        Ok(value) => Some(value),
        Err(status) => {
            assert!(matches!(status.code(), Code::InvalidArgument | Code::PermissionDenied), "{status:?}");
            let message = status.message();
            assert!(
                !message.is_empty() && message.len() <= MAX_MESSAGE_BYTES,
                "{} bytes: {message:.200}",
                message.len()
            );
            None
        }
    }
}

/// What the coordinator makes: 1 to 128 ASCII letters, digits and `-`.
fn is_id(value: &str) -> bool {
    (1..=edge::MAX_ID_BYTES).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

fn fraction(value: f64) -> bool {
    (0.0..=1.0).contains(&value)
}

fn metric_point(p: &MetricPoint, epochs: u32) {
    assert!((1..=epochs).contains(&p.epoch), "epoch {} of {epochs}", p.epoch);
    assert!(p.value.is_finite(), "{p:?}");
    assert!(metric::is_known(&p.name) || p.name.len() > edge::CUSTOM_PREFIX.len(), "{p:?}");
    assert!(metric::is_known(&p.name) || p.name.starts_with(edge::CUSTOM_PREFIX), "{p:?}");
    assert!(p.name.len() <= edge::MAX_NAME_BYTES, "{p:?}");
    assert!(!metric::FRACTIONS.contains(&p.name.as_str()) || fraction(p.value), "{p:?}");
}

fn completion(done: &Completion, epochs: u32) {
    let m = &done.metrics;
    for value in [m.jaccard, m.dice, m.precision, m.recall, m.tnr, m.accuracy].into_iter().chain(m.auc) {
        assert!(fraction(value), "{m:?}");
    }
    assert!(done.roc.len() <= edge::MAX_ROC_POINTS);
    for p in &done.roc {
        assert!(fraction(p.fpr) && fraction(p.tpr) && !p.threshold.is_nan(), "{p:?}");
    }
    assert!((1..=epochs).contains(&done.epochs));
    assert!(!done.split.trim().is_empty() && done.split.len() <= edge::MAX_SPLIT_BYTES);
}
