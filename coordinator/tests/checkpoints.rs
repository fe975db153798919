//! Checkpoint uploads against a real coordinator over TCP (served in this process, on a real
//! SQLite file): a retried upload of a superseded attempt must not delete the checkpoint the
//! database names, and concurrent uploads of one checkpoint must not share a temporary file.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use allsweep_proto::v1 as pb;
use allsweep_testkit::SyntheticSpec;
use common::in_process::{lease_one as lease, InProcess, RawWorker as Client};
use sha2::{Digest, Sha256};

async fn coordinator(lease: Duration) -> InProcess {
    InProcess::start(lease, &SyntheticSpec::new("uploads")).await
}

async fn upload(client: &mut Client, trial: &pb::LeasedTrial, epoch: u32, bytes: &[u8]) -> Result<(), tonic::Status> {
    let header = pb::CheckpointHeader {
        trial_id: trial.trial_id.clone(),
        attempt: trial.attempt,
        epoch,
        step: epoch * 10,
        size: bytes.len() as u64,
        sha256: hex::encode(Sha256::digest(bytes)),
    };
    let mut chunks = vec![pb::CheckpointChunk { part: Some(pb::checkpoint_chunk::Part::Header(header)) }];
    chunks.extend(
        bytes.chunks(1000).map(|c| pb::CheckpointChunk { part: Some(pb::checkpoint_chunk::Part::Data(c.to_vec())) }),
    );
    client.upload_checkpoint(futures::stream::iter(chunks)).await.map(|_| ())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_superseded_retry_of_an_upload_keeps_the_checkpoint_the_database_names() {
    let c = coordinator(Duration::from_millis(600)).await;
    let (mut a, a_id) = c.worker("a", 1).await;
    let first = lease(&mut a, &a_id).await;
    let bytes = vec![7_u8; 5000];
    upload(&mut a, &first, 1, &bytes).await.expect("the holder's upload is stored");
    let named = c.store.checkpoint(&first.trial_id).await.unwrap().expect("a checkpoint row").file;
    assert!(c.artifacts.join(&named).is_file());

    // Worker A goes silent past its lease; worker B takes the trial over.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (mut b, b_id) = c.worker("b", 1).await;
    let second = lease(&mut b, &b_id).await;
    assert_eq!((second.trial_id.as_str(), second.attempt, second.checkpoint_epoch), (first.trial_id.as_str(), 2, 1));

    // A's retry of the very same upload (its ack was lost, say) is refused...
    let refused = upload(&mut a, &first, 1, &bytes).await.expect_err("a superseded attempt's upload");
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition, "{refused:?}");
    // ...and the checkpoint B must resume from is still there, byte for byte.
    let row = c.store.checkpoint(&first.trial_id).await.unwrap().expect("the row stays");
    assert_eq!(row.file, named);
    assert_eq!(std::fs::read(c.artifacts.join(&row.file)).expect("the named file exists"), bytes);
    assert_eq!(c.artifact_files(), [named], "nothing else left behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_uploads_of_one_checkpoint_each_write_their_own_file() {
    let c = coordinator(Duration::from_secs(60)).await;
    let (mut a, a_id) = c.worker("a", 1).await;
    let trial = lease(&mut a, &a_id).await;
    let bytes: Vec<u8> = (0..3_000_000_u32).map(|i| (i % 251) as u8).collect();
    let mut uploads = Vec::new();
    for _ in 0..4 {
        let (mut client, trial, bytes) = (a.clone(), trial.clone(), bytes.clone());
        uploads.push(tokio::spawn(async move { upload(&mut client, &trial, 2, &bytes).await }));
    }
    for u in uploads {
        u.await.unwrap().expect("every upload of the holder is stored");
    }
    let row = c.store.checkpoint(&trial.trial_id).await.unwrap().expect("a checkpoint row");
    assert_eq!(std::fs::read(c.artifacts.join(&row.file)).expect("the named file exists"), bytes);
    assert_eq!(c.artifact_files(), [row.file], "the replaced uploads and every temporary file are gone");
}

/// A coordinator killed between moving an upload into place and committing its row, or
/// between that commit and removing the file it replaced, leaves a file no row names; its
/// next start removes such files (and unfinished uploads) and keeps every named one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_coordinator_removes_the_files_no_row_names() {
    let mut c = coordinator(Duration::from_secs(60)).await;
    let (mut a, a_id) = c.worker("a", 1).await;
    let trial = lease(&mut a, &a_id).await;
    upload(&mut a, &trial, 1, &[1_u8; 3000]).await.expect("stored");
    let named = c.store.checkpoint(&trial.trial_id).await.unwrap().expect("a checkpoint row").file;
    let orphan = format!("{}.a1.e2.s20.99-1-0.ckpt", trial.trial_id);
    std::fs::write(c.artifacts.join(&orphan), b"committed never").unwrap();
    std::fs::write(c.artifacts.join(format!(".{orphan}.part")), b"half an upload").unwrap();
    let mut before = c.artifact_files();
    before.sort();
    assert_eq!(before.len(), 3, "{before:?}");

    c.restart(Duration::from_secs(60)).await;
    assert_eq!(c.artifact_files(), [named], "only the file the database names is left");
    let row = c.store.checkpoint(&trial.trial_id).await.unwrap().expect("the row stays");
    assert_eq!(std::fs::read(c.artifacts.join(&row.file)).unwrap(), vec![1_u8; 3000]);
}
