//! TLS end to end, with certificates made at run time: the coordinator serving TLS on port 0
//! (in this process, and as the real `allsweep serve`), clients that trust its authority or
//! not, certificates renewed and broken while it runs, mutual TLS, and the real
//! `allsweep-worker` and `allsweep` CLI over it.

#![allow(clippy::unwrap_used)]

mod certs;
#[path = "../common/mod.rs"]
mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use allsweep_coordinator::client;
use allsweep_coordinator::server::{serve, ServeOptions};
use allsweep_coordinator::store;
use allsweep_coordinator::tls::TlsOptions;
use allsweep_proto::tls::ClientTls;
use allsweep_proto::v1 as pb;
use allsweep_testkit::SyntheticSpec;
use certs::{served_certificate, Authority, Leaf};
use tokio::sync::watch;

/// How often the in-process coordinators check their certificate files.
const RELOAD: Duration = Duration::from_millis(100);

/// A coordinator serving TLS from this test's process, on SQLite.
struct TlsServer {
    port: u16,
    stop: watch::Sender<bool>,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
    _dir: tempfile::TempDir,
}

impl TlsServer {
    async fn start(cert: &Leaf, client_ca: Option<&Path>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = store::open(&format!("sqlite://{}", dir.path().join("allsweep.db").display())).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let tls = TlsOptions {
            client_ca: client_ca.map(Path::to_path_buf),
            reload_every: RELOAD,
            ..TlsOptions::new(cert.cert.clone(), cert.key.clone())
        };
        let options =
            ServeOptions { tls: Some(tls), ..ServeOptions::new(dir.path().join("artifacts"), Duration::from_secs(30)) };
        let (stop, shutdown) = watch::channel(false);
        let server = tokio::spawn(serve(listener, store, options, shutdown));
        Self { port, stop, server, _dir: dir }
    }

    fn address(&self) -> String {
        format!("https://localhost:{}", self.port)
    }

    /// Whether it still runs, and then stops it cleanly.
    async fn stop(self) {
        assert!(!self.server.is_finished(), "the coordinator kept running throughout");
        self.stop.send(true).unwrap();
        self.server.await.unwrap().unwrap();
    }
}

fn trusting(ca: &Authority) -> ClientTls {
    ClientTls { ca: Some(ca.pem.clone()), ..Default::default() }
}

/// Connects and lists the sweeps; the error as a user would read it.
async fn list_sweeps(address: &str, tls: &ClientTls) -> Result<usize, String> {
    let mut c = client::user_with_tls(address, None, tls).await.map_err(|e| format!("{e:#}"))?;
    let reply = c.list_sweeps(pb::ListSweepsRequest::default()).await.map_err(|s| client::explain(s).to_string())?;
    Ok(reply.into_inner().sweeps.len())
}

/// Polls the certificate served to new connections until it is `want`.
async fn wait_served(port: u16, ca: &Authority, want: &Leaf) {
    let start = Instant::now();
    while served_certificate(port, ca).await != want.der {
        assert!(start.elapsed() < Duration::from_secs(10), "the new certificate was not served within 10 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn only_a_client_that_trusts_the_coordinator_s_authority_gets_through() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Authority::new(dir.path(), "lab-ca");
    let other = Authority::new(dir.path(), "other-ca");
    let server = TlsServer::start(&ca.leaf(dir.path(), "coordinator", 1), None).await;
    let address = server.address();

    let mut c = client::user_with_tls(&address, None, &trusting(&ca)).await.unwrap();
    let spec = SyntheticSpec::new("over tls").to_toml();
    let submitted = c.submit(pb::SubmitRequest { spec_toml: spec }).await.unwrap().into_inner();
    assert_eq!((submitted.trials, submitted.created), (1, true));

    let plain = list_sweeps(&format!("http://127.0.0.1:{}", server.port), &ClientTls::default()).await;
    assert!(plain.is_err(), "a plaintext client is refused: {plain:?}");
    let untrusted = list_sweeps(&address, &trusting(&other)).await.expect_err("another authority is refused");
    assert!(untrusted.contains("cannot reach the coordinator at https://localhost"), "{untrusted}");
    assert!(untrusted.contains("invalid peer certificate: UnknownIssuer"), "{untrusted}");
    let system = list_sweeps(&address, &ClientTls::default()).await.expect_err("the system's roots do not know it");
    assert!(system.contains("UnknownIssuer"), "{system}");

    // None of that disturbed the coordinator.
    assert_eq!(list_sweeps(&address, &trusting(&ca)).await, Ok(1));
    assert_eq!(c.list_sweeps(pb::ListSweepsRequest::default()).await.unwrap().into_inner().sweeps.len(), 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_renewed_certificate_reaches_new_connections_and_a_broken_one_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Authority::new(dir.path(), "lab-ca");
    let live = ca.leaf(dir.path(), "coordinator", 1);
    let server = TlsServer::start(&live, None).await;
    let address = server.address();
    assert_eq!(served_certificate(server.port, &ca).await, live.der);
    let mut before = client::user_with_tls(&address, None, &trusting(&ca)).await.unwrap();
    before.list_sweeps(pb::ListSweepsRequest::default()).await.unwrap();

    let renewed = ca.leaf(dir.path(), "coordinator-renewed", 2);
    renewed.install_over(&live);
    wait_served(server.port, &ca, &renewed).await;
    assert_eq!(list_sweeps(&address, &trusting(&ca)).await, Ok(0), "new clients get through");
    before
        .list_sweeps(pb::ListSweepsRequest::default())
        .await
        .expect("a connection made before the renewal carries on");

    // A garbage certificate, then a certificate without its key: each is refused and the
    // certificate in force stays.
    std::fs::write(&live.cert, "-----BEGIN CERTIFICATE-----\ngarbage\n").unwrap();
    tokio::time::sleep(RELOAD * 5).await;
    assert_eq!(served_certificate(server.port, &ca).await, renewed.der, "the garbage file was not taken");
    let third = ca.leaf(dir.path(), "coordinator-third", 3);
    third.install_cert_over(&live);
    tokio::time::sleep(RELOAD * 5).await;
    assert_eq!(served_certificate(server.port, &ca).await, renewed.der, "a certificate without its key was not taken");
    assert_eq!(list_sweeps(&address, &trusting(&ca)).await, Ok(0), "and the coordinator serves on");

    // Once the key follows, the watcher, still alive, takes the pair.
    third.install_over(&live);
    wait_served(server.port, &ca, &third).await;
    assert_eq!(list_sweeps(&address, &trusting(&ca)).await, Ok(0));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn with_a_client_authority_only_clients_it_signed_get_through() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Authority::new(dir.path(), "lab-ca");
    let workers_ca = Authority::new(dir.path(), "workers-ca");
    let stranger_ca = Authority::new(dir.path(), "stranger-ca");
    let client_ca = dir.path().join("client-ca.pem");
    std::fs::copy(&workers_ca.pem, &client_ca).unwrap();
    let server = TlsServer::start(&ca.leaf(dir.path(), "coordinator", 1), Some(&client_ca)).await;
    let address = server.address();
    let identity = |leaf: &Leaf| ClientTls {
        ca: Some(ca.pem.clone()),
        cert: Some(leaf.cert.clone()),
        key: Some(leaf.key.clone()),
    };

    let anonymous = list_sweeps(&address, &trusting(&ca)).await.expect_err("no client certificate");
    // The alert that says why may be lost behind the closed connection (TLS 1.3 refuses a
    // client after its handshake); then the error says what to check.
    assert!(anonymous.contains("CertificateRequired") || anonymous.contains("pass --tls-cert"), "{anonymous}");
    let stranger = stranger_ca.leaf(dir.path(), "stranger", 7);
    let refused = list_sweeps(&address, &identity(&stranger)).await.expect_err("a certificate of another authority");
    assert!(refused.contains("UnknownCA") || refused.contains("pass --tls-cert"), "{refused}");
    let worker = workers_ca.leaf(dir.path(), "worker-1", 8);
    assert_eq!(list_sweeps(&address, &identity(&worker)).await, Ok(0), "a certificate it signed gets through");

    // The client authority is reloaded too: swap it, and its former clients are refused.
    std::fs::copy(&stranger_ca.pem, &client_ca).unwrap();
    let start = Instant::now();
    while list_sweeps(&address, &identity(&worker)).await.is_ok() {
        assert!(start.elapsed() < Duration::from_secs(10), "the new client authority was not taken within 10 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(list_sweeps(&address, &identity(&stranger)).await, Ok(0));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_worker_and_the_cli_binaries_work_over_mutual_tls() {
    let dir = common::temp_dir();
    let ca = Authority::new(dir.path(), "lab-ca");
    let server_cert = ca.leaf(dir.path(), "coordinator", 1);
    let workers_ca = Authority::new(dir.path(), "workers-ca");
    let worker_cert = workers_ca.leaf(dir.path(), "worker-1", 2);
    let db = format!("sqlite://{}", dir.path().join("tls.db").display());
    let serve_tls = args(&[
        ("--tls-cert", &server_cert.cert),
        ("--tls-key", &server_cert.key),
        ("--tls-client-ca", &workers_ca.pem),
    ]);
    let coordinator = common::Coordinator::start(&db, dir.path(), "127.0.0.1:0", &strs(&serve_tls));
    let port = coordinator.listen.rsplit(':').next().unwrap();
    let address = format!("https://localhost:{port}");
    let identity = args(&[("--tls-ca", &ca.pem), ("--tls-cert", &worker_cert.cert), ("--tls-key", &worker_cert.key)]);
    let identity = strs(&identity);

    let _worker = common::Worker::start(&address, dir.path(), "worker", "worker", &identity);
    let tls = ClientTls {
        ca: Some(ca.pem.clone()),
        cert: Some(worker_cert.cert.clone()),
        key: Some(worker_cert.key.clone()),
    };
    let mut c = client::user_with_tls(&address, None, &tls).await.unwrap();
    let spec = SyntheticSpec::new("tls worker").epochs(1).to_toml();
    let submitted = common::submit(&mut c, &spec).await;
    let done = common::wait_for(&mut c, &submitted.sweep_id, Duration::from_secs(240), |s| {
        s.state() == pb::SweepState::Finished
    })
    .await;
    assert_eq!((done.completed, done.failed), (1, 0), "the worker trained the trial over TLS");

    let cli = |extra: &[&str]| {
        std::process::Command::new(common::coordinator_binary())
            .args(["workers", "--coordinator", &address])
            .args(extra)
            .output()
            .unwrap()
    };
    let listed = cli(&identity);
    assert!(listed.status.success(), "{}", String::from_utf8_lossy(&listed.stderr));
    assert_eq!(String::from_utf8_lossy(&listed.stdout).matches(" cpu ").count(), 1, "one worker listed");
    let untrusted = cli(&[]);
    let said = String::from_utf8_lossy(&untrusted.stderr);
    assert!(!untrusted.status.success() && said.contains("UnknownIssuer"), "{said}");

    // A worker without a certificate says why it cannot get in.
    let _anonymous = common::Worker::start(&address, dir.path(), "anonymous", "anonymous", &identity[..2]);
    let log = || std::fs::read_to_string(dir.path().join("anonymous.log")).unwrap_or_default();
    let start = Instant::now();
    let names_it = |log: String| log.contains("CertificateRequired") || log.contains("pass --tls-cert and --tls-key");
    while !names_it(log()) {
        assert!(start.elapsed() < Duration::from_secs(20), "the worker's log names the refusal: {}", log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!log().contains("registered"), "{}", log());
    let coordinator_log = std::fs::read_to_string(dir.path().join("coordinator.log")).unwrap();
    assert!(coordinator_log.contains("peer sent no certificates"), "the coordinator's log says why: {coordinator_log}");
}

/// Flags and the files they name, as command-line arguments.
fn args(flags: &[(&str, &std::path::PathBuf)]) -> Vec<String> {
    flags.iter().flat_map(|(flag, path)| [flag.to_string(), path.display().to_string()]).collect()
}

fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}
