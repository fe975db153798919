//! Checkpoint uploads against a real coordinator over TCP (served in this process, on a real
//! SQLite file): a retried upload of a superseded attempt must not delete the checkpoint the
//! database names, and concurrent uploads of one checkpoint must not share a temporary file.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

use allsweep_coordinator::server::{serve, ServeOptions};
use allsweep_coordinator::store::{self, Store};
use allsweep_proto::v1::{self as pb, worker_service_client::WorkerServiceClient};
use allsweep_proto::PROTOCOL_VERSION;
use allsweep_testkit::SyntheticSpec;
use sha2::{Digest, Sha256};
use tokio::sync::watch;
use tonic::transport::Channel;

type Client = WorkerServiceClient<Channel>;

struct Running {
    address: String,
    artifacts: std::path::PathBuf,
    store: std::sync::Arc<dyn Store>,
    _stop: watch::Sender<bool>,
    _dir: tempfile::TempDir,
}

/// A coordinator on a fresh SQLite file with one 1-trial sweep queued, leases of `lease`.
async fn coordinator(lease: Duration) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let store = store::open(&format!("sqlite://{}", dir.path().join("allsweep.db").display())).await.unwrap();
    let spec = allsweep_coordinator::spec::Spec::parse(&SyntheticSpec::new("uploads").to_toml()).unwrap();
    let text = SyntheticSpec::new("uploads").to_toml();
    assert!(store.insert_sweep(&spec.to_new_sweep(&text), store::now_ms()).await.unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let artifacts = dir.path().join("artifacts");
    let options = ServeOptions { artifacts: artifacts.clone(), lease_ttl: lease, token: None };
    let (stop, shutdown) = watch::channel(false);
    tokio::spawn(serve(listener, store.clone(), options, shutdown));
    Running { address, artifacts, store, _stop: stop, _dir: dir }
}

async fn worker(address: &str, name: &str) -> (Client, String) {
    let mut client = WorkerServiceClient::connect(address.to_string()).await.unwrap();
    let request = pb::RegisterRequest {
        protocol_version: PROTOCOL_VERSION,
        host: name.into(),
        device: "cpu".into(),
        memory_bytes: 1,
        slots: 1,
        version: "test".into(),
        worker_id: String::new(),
    };
    let id = client.register(request).await.unwrap().into_inner().worker_id;
    (client, id)
}

async fn lease(client: &mut Client, worker_id: &str) -> pb::LeasedTrial {
    let request = pb::LeaseRequest { worker_id: worker_id.into(), free_slots: 1 };
    let mut trials = client.lease(request).await.unwrap().into_inner().trials;
    assert_eq!(trials.len(), 1, "one trial leased");
    trials.remove(0)
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

/// The files in the artifact directory, temporary ones included.
fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_superseded_retry_of_an_upload_keeps_the_checkpoint_the_database_names() {
    let c = coordinator(Duration::from_millis(600)).await;
    let (mut a, a_id) = worker(&c.address, "a").await;
    let first = lease(&mut a, &a_id).await;
    let bytes = vec![7_u8; 5000];
    upload(&mut a, &first, 1, &bytes).await.expect("the holder's upload is stored");
    let named = c.store.checkpoint(&first.trial_id).await.unwrap().expect("a checkpoint row").file;
    assert!(c.artifacts.join(&named).is_file());

    // Worker A goes silent past its lease; worker B takes the trial over.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (mut b, b_id) = worker(&c.address, "b").await;
    let second = lease(&mut b, &b_id).await;
    assert_eq!((second.trial_id.as_str(), second.attempt, second.checkpoint_epoch), (first.trial_id.as_str(), 2, 1));

    // A's retry of the very same upload (its ack was lost, say) is refused...
    let refused = upload(&mut a, &first, 1, &bytes).await.expect_err("a superseded attempt's upload");
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition, "{refused:?}");
    // ...and the checkpoint B must resume from is still there, byte for byte.
    let row = c.store.checkpoint(&first.trial_id).await.unwrap().expect("the row stays");
    assert_eq!(row.file, named);
    assert_eq!(std::fs::read(c.artifacts.join(&row.file)).expect("the named file exists"), bytes);
    assert_eq!(files(&c.artifacts), [named], "nothing else left behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_uploads_of_one_checkpoint_each_write_their_own_file() {
    let c = coordinator(Duration::from_secs(60)).await;
    let (mut a, a_id) = worker(&c.address, "a").await;
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
    assert_eq!(files(&c.artifacts), [row.file], "the replaced uploads and every temporary file are gone");
}
