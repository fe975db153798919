//! A coordinator served from the test's own process (real gRPC over TCP on 127.0.0.1, a real
//! SQLite file), with one small sweep queued, and a raw worker client that speaks the wire
//! API the way a foreign client would: for tests of what the coordinator accepts and refuses.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use allsweep_coordinator::server::{serve, ServeOptions};
use allsweep_coordinator::spec::Spec;
use allsweep_coordinator::store::{self, Store};
use allsweep_proto::auth::{BearerToken, WorkerCredentials};
use allsweep_proto::v1::{self as pb, worker_service_client::WorkerServiceClient};
use allsweep_proto::PROTOCOL_VERSION;
use allsweep_testkit::SyntheticSpec;
use tokio::sync::watch;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// A worker client carrying its identity (once set) on every call.
pub type RawWorker = WorkerServiceClient<InterceptedService<Channel, WorkerCredentials>>;

/// A running in-process coordinator; stops when dropped.
pub struct InProcess {
    pub address: String,
    pub artifacts: PathBuf,
    pub store: Arc<dyn Store>,
    pub sweep_id: String,
    stop: watch::Sender<bool>,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
    pub dir: tempfile::TempDir,
}

impl InProcess {
    /// A coordinator with leases of `lease` and `spec` submitted (its trials queued).
    pub async fn start(lease: Duration, spec: &SyntheticSpec) -> Self {
        Self::start_with(lease, spec, |_| ()).await
    }

    /// As [`InProcess::start`], with `adjust` changing the serve options first.
    pub async fn start_with(lease: Duration, spec: &SyntheticSpec, adjust: impl FnOnce(&mut ServeOptions)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = store::open(&format!("sqlite://{}", dir.path().join("allsweep.db").display())).await.unwrap();
        let text = spec.to_toml();
        let parsed = Spec::parse(&text).unwrap();
        assert!(store.insert_sweep(&parsed.to_new_sweep(&text), store::now_ms()).await.unwrap());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = format!("http://{}", listener.local_addr().unwrap());
        let artifacts = dir.path().join("artifacts");
        let mut options = ServeOptions::new(artifacts.clone(), lease);
        adjust(&mut options);
        let (stop, shutdown) = watch::channel(false);
        let server = tokio::spawn(serve(listener, store.clone(), options, shutdown));
        Self { address, artifacts, store, sweep_id: parsed.id, stop, server, dir }
    }

    /// Stops the coordinator, as SIGTERM does, and serves again on the same database and
    /// artifact directory with the default options (a new address). Returns once the new one
    /// answers a call, so what it does before serving (its start-up collection) is done.
    pub async fn restart(&mut self, lease: Duration) {
        self.stop.send(true).unwrap();
        (&mut self.server).await.unwrap().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        self.address = format!("http://{}", listener.local_addr().unwrap());
        let (stop, shutdown) = watch::channel(false);
        let options = ServeOptions::new(self.artifacts.clone(), lease);
        self.server = tokio::spawn(serve(listener, self.store.clone(), options, shutdown));
        self.stop = stop;
        let (mut client, _) = self.unregistered().await;
        client.register(registration("after-restart", 1)).await.unwrap();
    }

    /// Asks the coordinator to stop, as SIGTERM does, and waits until `serve` returns.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        self.stop.send(true).unwrap();
        self.server.await.unwrap()
    }

    /// A raw worker client, registered with `slots` slots, carrying the key it was given;
    /// returns it and its worker id.
    pub async fn worker(&self, host: &str, slots: u32) -> (RawWorker, String) {
        let (mut client, credentials) = self.unregistered().await;
        let reply = client.register(registration(host, slots)).await.unwrap().into_inner();
        credentials.set_identity(&reply.worker_id, &reply.worker_key).unwrap();
        (client, reply.worker_id)
    }

    /// A raw worker client that has not registered, and the credentials it carries (no token).
    pub async fn unregistered(&self) -> (RawWorker, WorkerCredentials) {
        let channel = tonic::transport::Endpoint::from_shared(self.address.clone()).unwrap().connect().await.unwrap();
        let credentials = WorkerCredentials::new(BearerToken::default());
        (WorkerServiceClient::with_interceptor(channel, credentials.clone()), credentials)
    }

    /// The files in the artifact directory, temporary ones included.
    pub fn artifact_files(&self) -> Vec<String> {
        files(&self.artifacts)
    }
}

/// A registration as a worker of this protocol sends it.
pub fn registration(host: &str, slots: u32) -> pb::RegisterRequest {
    pb::RegisterRequest {
        protocol_version: PROTOCOL_VERSION,
        host: host.into(),
        device: "cpu".into(),
        memory_bytes: 1,
        slots,
        version: "test".into(),
        worker_id: String::new(),
        gpus: Vec::new(),
    }
}

/// Leases exactly one trial.
pub async fn lease_one(client: &mut RawWorker, worker_id: &str) -> pb::LeasedTrial {
    let request = pb::LeaseRequest { worker_id: worker_id.into(), free_slots: 1, free_memory_bytes: 0, fuse: 0 };
    let mut trials = client.lease(request).await.unwrap().into_inner().trials;
    assert_eq!(trials.len(), 1, "one trial leased");
    trials.remove(0)
}

/// The names in `dir` (none when it does not exist), sorted.
pub fn files(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut names: Vec<String> = entries.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}
