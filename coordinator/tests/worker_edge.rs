//! What a hostile or careless client gets from the worker API, sent the way a client written
//! from the proto alone would send it: ids that name paths, oversized strings, out-of-range
//! slot counts, uploads that lie about their size or stop midway. Each is refused at the edge
//! with the field named, and nothing is written.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use allsweep_proto::v1 as pb;
use allsweep_testkit::SyntheticSpec;
use common::in_process::{lease_one, registration, InProcess, RawWorker};

fn header(trial_id: &str, attempt: u32, size: u64) -> pb::CheckpointChunk {
    let header =
        pb::CheckpointHeader { trial_id: trial_id.into(), attempt, epoch: 1, step: 1, size, sha256: "00".repeat(32) };
    pb::CheckpointChunk { part: Some(pb::checkpoint_chunk::Part::Header(header)) }
}

fn data(bytes: usize) -> pb::CheckpointChunk {
    pb::CheckpointChunk { part: Some(pb::checkpoint_chunk::Part::Data(vec![1; bytes])) }
}

async fn upload(client: &mut RawWorker, chunks: Vec<pb::CheckpointChunk>) -> tonic::Status {
    client.upload_checkpoint(futures::stream::iter(chunks)).await.expect_err("the upload is refused")
}

/// Regression: `UploadCheckpoint` built file names from the caller's `trial_id`, so a
/// `trial_id` holding `/` or `..` wrote (and deleted) files outside the artifact directory,
/// with no lease needed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trial_id_that_names_a_path_writes_nothing_anywhere() {
    let c = InProcess::start(Duration::from_secs(60), &SyntheticSpec::new("paths")).await;
    let (mut client, _) = c.worker("w", 1).await;
    let outside = c.dir.path().join("escaped");
    let traversal = format!("../{}", outside.file_name().unwrap().to_string_lossy());
    for trial_id in [traversal.as_str(), "/tmp/allsweep-escape", "a/../../b", "..", "x.y"] {
        let refused = upload(&mut client, vec![header(trial_id, 1, 10), data(10)]).await;
        assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{trial_id}: {refused:?}");
        assert!(refused.message().starts_with("header.trial_id: "), "{}", refused.message());
    }
    assert!(!outside.exists() && !std::path::Path::new("/tmp/allsweep-escape").exists(), "nothing written outside");
    assert!(c.artifact_files().is_empty(), "nothing written inside: {:?}", c.artifact_files());
    // A well-formed id that is no trial of this coordinator is refused before any byte is kept.
    let refused = upload(&mut client, vec![header("no-such-trial", 1, 10), data(10)]).await;
    assert_eq!(refused.code(), tonic::Code::NotFound, "{refused:?}");
    assert!(c.artifact_files().is_empty());
}

/// Refusals say what is wrong without telling the caller where the coordinator keeps its files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_never_show_the_coordinator_s_paths() {
    let c = InProcess::start(Duration::from_secs(60), &SyntheticSpec::new("paths")).await;
    let (mut client, id) = c.worker("w", 1).await;
    let trial = lease_one(&mut client, &id).await;
    // The artifact directory disappears under the coordinator (a full or unmounted disk).
    std::fs::remove_dir_all(&c.artifacts).unwrap();
    std::fs::write(&c.artifacts, b"not a directory").unwrap();
    let refused = upload(&mut client, vec![header(&trial.trial_id, trial.attempt, 10), data(10)]).await;
    assert_eq!(refused.code(), tonic::Code::Internal, "{refused:?}");
    let root = c.dir.path().to_string_lossy().into_owned();
    assert!(!refused.message().contains(&root), "the message shows a server path: {}", refused.message());
    let request = pb::CheckpointRequest { trial_id: trial.trial_id.clone(), attempt: trial.attempt };
    let missing = client.download_checkpoint(request).await.expect_err("no checkpoint yet");
    assert!(!missing.message().contains(&root), "{}", missing.message());
}

/// Regression: a 3 MB `host` was stored, and two of them made every later `ListWorkers` reply
/// exceed the 4 MiB message limit; `slots` sent as -1 was stored as 4294967295.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_strings_and_impossible_slot_counts_are_refused_at_registration() {
    let c = InProcess::start(Duration::from_secs(60), &SyntheticSpec::new("register")).await;
    let (mut client, _) = c.unregistered().await;
    let huge = registration(&"h".repeat(3 << 20), 1);
    let refused = client.register(huge).await.expect_err("a 3 MB host");
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    assert!(refused.message().starts_with("host: at most 256 bytes"), "{}", refused.message());
    let mut minus_one = registration("gpu-1", 1);
    minus_one.slots = u32::MAX;
    let refused = client.register(minus_one).await.expect_err("slots -1");
    assert!(refused.message().contains("slots: must be 1 to 1024, got 4294967295"), "{}", refused.message());
    let mut taken = registration("gpu-1", 1);
    taken.worker_id = "../other".into();
    assert!(client.register(taken).await.expect_err("a path as id").message().starts_with("worker_id: "));
    assert!(c.store.workers().await.unwrap().is_empty(), "nothing registered");
}

/// Regression: `free_slots` sent as -1 leased 28 trials to a worker registered with one slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_never_leases_more_than_its_registered_slots() {
    let c = InProcess::start(Duration::from_secs(60), &SyntheticSpec::new("slots").seeds(0..6)).await;
    let (mut client, id) = c.worker("w", 1).await;
    let request = pb::LeaseRequest { worker_id: id, free_slots: u32::MAX, free_memory_bytes: 0, fuse: 0 };
    let leased = client.lease(request).await.unwrap().into_inner().trials;
    assert_eq!(leased.len(), 1, "one slot, one trial");
}

/// Regression: an upload cancelled midway, or one sending more than its header announced, left
/// its `.part` file behind; a checkpoint of any size was accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_and_abandoned_uploads_leave_no_file_behind() {
    let c = InProcess::start(Duration::from_secs(60), &SyntheticSpec::new("parts")).await;
    let (mut client, id) = c.worker("w", 1).await;
    let trial = lease_one(&mut client, &id).await;
    let refused = upload(&mut client, vec![header(&trial.trial_id, trial.attempt, 10), data(8), data(8)]).await;
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    assert!(refused.message().contains("more than the 10 bytes the header announced"), "{}", refused.message());
    let refused = upload(&mut client, vec![header(&trial.trial_id, trial.attempt, 5 << 30)]).await;
    assert!(refused.message().starts_with("header.size: a checkpoint may hold at most"), "{}", refused.message());
    let refused =
        upload(&mut client, vec![header(&trial.trial_id, trial.attempt, 10), header(&trial.trial_id, 1, 10)]).await;
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);

    // A client that sends half its checkpoint and goes away.
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(header(&trial.trial_id, trial.attempt, 4 << 20)).await.unwrap();
    tx.send(data(1 << 20)).await.unwrap();
    let mut abandoning = client.clone();
    let call = tokio::spawn(async move { abandoning.upload_checkpoint(tokio_stream_from(rx)).await.map(|_| ()) });
    tokio::time::sleep(Duration::from_millis(500)).await;
    call.abort();
    drop(tx);
    let start = std::time::Instant::now();
    while !c.artifact_files().is_empty() && start.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(c.artifact_files().is_empty(), "left behind: {:?}", c.artifact_files());
    assert_eq!(c.store.checkpoint(&trial.trial_id).await.unwrap(), None);
}

/// A stream of what arrives on `rx`, until it closes.
fn tokio_stream_from(
    rx: tokio::sync::mpsc::Receiver<pb::CheckpointChunk>,
) -> impl futures::Stream<Item = pb::CheckpointChunk> {
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) })
}

/// Regression: a message that is not valid protobuf was answered INTERNAL, which clients read
/// as the coordinator's fault and send again; it is the sender's error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undecodable_message_is_the_sender_s_error() {
    let c = InProcess::start(Duration::from_secs(60), &SyntheticSpec::new("garbage")).await;
    let channel = tonic::transport::Endpoint::from_shared(c.address.clone()).unwrap().connect().await.unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let path = tonic::codegen::http::uri::PathAndQuery::from_static("/allsweep.v1.WorkerService/Register");
    // A field tag whose varint never ends.
    let garbage = tonic::Request::new(vec![0xff_u8; 12]);
    let refused = grpc.unary::<_, Vec<u8>, _>(garbage, path, common::raw::RawBytes).await.expect_err("garbage");
    assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{refused:?}");
    assert!(c.store.workers().await.unwrap().is_empty());
}
