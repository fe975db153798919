//! Running the coordinator: both services on one TCP listener, the scheduler's expiry tick
//! beside them.
//! The listener and the shutdown signal are passed in, so tests and `allsweep run` drive it
//! on port 0.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use allsweep_proto::v1::user_service_server::UserServiceServer;
use allsweep_proto::v1::worker_service_server::WorkerServiceServer;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::transport::server::TcpIncoming;

use crate::artifacts::Artifacts;
use crate::scheduler::{self, Clocks};
use crate::service::{Shared, TokenCheck, UserApi, WorkerApi};
use crate::store::Store;

/// How the coordinator runs.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub artifacts: PathBuf,
    pub lease_ttl: Duration,
    pub token: Option<String>,
}

/// Serves until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    store: Arc<dyn Store>,
    options: ServeOptions,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let artifacts = Artifacts::open(&options.artifacts)?;
    let clocks = Clocks::new(options.lease_ttl);
    let shared = Shared { store: store.clone(), artifacts, clocks };
    let check = TokenCheck::new(options.token.clone());
    let expiry = tokio::spawn(scheduler::run_expiry(store, clocks.expiry_tick(), shutdown.clone()));
    let mut stop = shutdown.clone();
    let result = tonic::transport::Server::builder()
        .add_service(WorkerServiceServer::with_interceptor(WorkerApi { shared: shared.clone() }, check.clone()))
        .add_service(UserServiceServer::with_interceptor(UserApi { shared }, check))
        // TCP_NODELAY: a reply's trailers go out as a second small write, which Nagle's
        // algorithm would hold until the client's ACK (~40 ms per call otherwise).
        .serve_with_incoming_shutdown(TcpIncoming::from(listener).with_nodelay(Some(true)), async move {
            let _ = stop.wait_for(|s| *s).await;
        })
        .await;
    expiry.abort();
    Ok(result?)
}
