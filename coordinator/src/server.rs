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
use tonic::service::interceptor::InterceptedService;
use tonic::transport::server::TcpIncoming;

use crate::artifacts::Artifacts;
use crate::scheduler::{self, Clocks};
use crate::service::{Shared, TokenCheck, UserApi, WorkerApi};
use crate::spec::SpecLimits;
use crate::store::Store;

/// How the coordinator runs.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub artifacts: PathBuf,
    pub lease_ttl: Duration,
    pub token: Option<String>,
    /// Submitted specs beyond these are refused.
    pub spec_limits: SpecLimits,
    /// How long, once shutdown is asked for, calls still in flight (a `Watch` follows its sweep
    /// until it ends) may take before the coordinator stops anyway.
    pub shutdown_grace: Duration,
    /// The largest message the coordinator receives or sends, in bytes.
    pub max_message_bytes: usize,
}

/// The default of [`ServeOptions::max_message_bytes`]: a checkpoint chunk (1 MiB) with room to
/// spare, and the status of a sweep at the default trial limit (10,000 trials of about 700
/// bytes each, errors cut at 512).
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 16 << 20;

impl ServeOptions {
    /// No token, the default spec limits and message size, 10 s of shutdown grace.
    pub fn new(artifacts: PathBuf, lease_ttl: Duration) -> Self {
        Self {
            artifacts,
            lease_ttl,
            token: None,
            spec_limits: SpecLimits::default(),
            shutdown_grace: Duration::from_secs(10),
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
        }
    }
}

/// Serves until `shutdown` turns true; then stops taking calls and ends once those in flight
/// are answered, or after the options' shutdown grace, whichever comes first.
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
    let limits = options.spec_limits;
    let max = options.max_message_bytes;
    let workers = WorkerServiceServer::new(WorkerApi { shared: shared.clone() })
        .max_decoding_message_size(max)
        .max_encoding_message_size(max);
    let users = UserServiceServer::new(UserApi { shared, limits })
        .max_decoding_message_size(max)
        .max_encoding_message_size(max);
    let mut stop = shutdown.clone();
    let served = tonic::transport::Server::builder()
        .add_service(InterceptedService::new(workers, check.clone()))
        .add_service(InterceptedService::new(users, check))
        // TCP_NODELAY: a reply's trailers go out as a second small write, which Nagle's
        // algorithm would hold until the client's ACK (~40 ms per call otherwise).
        .serve_with_incoming_shutdown(TcpIncoming::from(listener).with_nodelay(Some(true)), async move {
            let _ = stop.wait_for(|s| *s).await;
        });
    let mut asked = shutdown.clone();
    let grace = options.shutdown_grace;
    let deadline = async move {
        let _ = asked.wait_for(|s| *s).await;
        tokio::time::sleep(grace).await;
    };
    let result = tokio::select! {
        result = served => result.map_err(anyhow::Error::from),
        () = deadline => {
            tracing::warn!(?grace, "calls still in flight after the shutdown grace; stopping anyway");
            Ok(())
        }
    };
    expiry.abort();
    result
}
