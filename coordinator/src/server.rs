//! Running the coordinator: both services on one TCP listener (plain, or TLS from
//! [`crate::tls`]), the scheduler's expiry tick beside them.
//! The listener and the shutdown signal are passed in, so tests and `allsweep run` drive it
//! on port 0.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use allsweep_proto::v1::admin_service_server::AdminServiceServer;
use allsweep_proto::v1::user_service_server::UserServiceServer;
use allsweep_proto::v1::worker_service_server::WorkerServiceServer;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::transport::server::TcpIncoming;

use crate::access::{tokens, AccessLayer, TokenBook, WorkerKeys};
use crate::artifacts::Artifacts;
use crate::scheduler::{self, Clocks};
use crate::service::{AdminApi, Shared, UserApi, WorkerApi};
use crate::spec::SpecLimits;
use crate::store::Store;
use crate::tls::{ReloadingConfig, TlsOptions};

/// How often the coordinator reads its tokens again (revocations made elsewhere).
const TOKEN_REFRESH: Duration = Duration::from_secs(5);

/// How the coordinator runs.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub artifacts: PathBuf,
    pub lease_ttl: Duration,
    /// The bootstrap admin token (`--token`); more tokens with roles live in the database.
    pub token: Option<String>,
    /// Submitted specs beyond these are refused.
    pub spec_limits: SpecLimits,
    /// How long, once shutdown is asked for, calls still in flight (a `Watch` follows its sweep
    /// until it ends) may take before the coordinator stops anyway.
    pub shutdown_grace: Duration,
    /// The largest message the coordinator receives or sends, in bytes.
    pub max_message_bytes: usize,
    /// Serve TLS with these certificates (reloaded when their files change); plain TCP without.
    pub tls: Option<TlsOptions>,
}

/// The default of [`ServeOptions::max_message_bytes`]: a checkpoint chunk (1 MiB) with room to
/// spare, and the status of a sweep at the default trial limit (10,000 trials of about 700
/// bytes each, errors cut at 512).
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 16 << 20;

impl ServeOptions {
    /// No token, the default spec limits and message size, 5 s of shutdown grace.
    pub fn new(artifacts: PathBuf, lease_ttl: Duration) -> Self {
        Self {
            artifacts,
            lease_ttl,
            token: None,
            spec_limits: SpecLimits::default(),
            shutdown_grace: Duration::from_secs(5),
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            tls: None,
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
    collect_orphans(&artifacts, &*store, Duration::ZERO).await?;
    let tls = options.tls.as_ref().map(ReloadingConfig::load).transpose()?;
    let clocks = Clocks::new(options.lease_ttl);
    let book = TokenBook::new(options.token.as_deref());
    book.reload(&*store).await?;
    let refresh = tokio::spawn(tokens::refresh(book.clone(), store.clone(), TOKEN_REFRESH, shutdown.clone()));
    let worker_keys = WorkerKeys::default();
    let epochs = crate::service::validate::EpochCache::default();
    let shared = Shared {
        store: store.clone(),
        artifacts: artifacts.clone(),
        clocks,
        worker_keys,
        tokens: book.clone(),
        epochs,
    };
    let collector = tokio::spawn(collect_orphans_every(artifacts.clone(), store.clone(), shutdown.clone()));
    let expiry = tokio::spawn(scheduler::run_expiry(store, clocks.expiry_tick(), clocks.lease_ttl, shutdown.clone()));
    let limits = options.spec_limits;
    let max = options.max_message_bytes;
    let workers = WorkerServiceServer::new(WorkerApi { shared: shared.clone() })
        .max_decoding_message_size(max)
        .max_encoding_message_size(max);
    let users = UserServiceServer::new(UserApi { shared: shared.clone(), limits })
        .max_decoding_message_size(max)
        .max_encoding_message_size(max);
    let admins = AdminServiceServer::new(AdminApi { shared });
    let mut stop = shutdown.clone();
    let router = tonic::transport::Server::builder()
        .layer(AccessLayer::new(book))
        .add_service(workers)
        .add_service(users)
        .add_service(admins);
    let stopped = async move {
        let _ = stop.wait_for(|s| *s).await;
    };
    let served: futures::future::BoxFuture<'static, Result<(), tonic::transport::Error>> = match tls {
        // TCP_NODELAY: a reply's trailers go out as a second small write, which Nagle's
        // algorithm would hold until the client's ACK (~40 ms per call otherwise).
        None => {
            Box::pin(router.serve_with_incoming_shutdown(TcpIncoming::from(listener).with_nodelay(Some(true)), stopped))
        }
        Some(tls) => Box::pin(router.serve_with_incoming_shutdown(tls.incoming(listener), stopped)),
    };
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
    refresh.abort();
    collector.abort();
    result
}

/// How often the coordinator looks for checkpoint files no row names, and how old such a file
/// must be (while serving) before it goes.
const ORPHAN_SWEEP_EVERY: Duration = Duration::from_secs(300);
const ORPHAN_MIN_AGE: Duration = Duration::from_secs(600);

/// Removes the artifact files no checkpoint row names, last written `min_age` ago or more.
async fn collect_orphans(artifacts: &Artifacts, store: &dyn Store, min_age: Duration) -> anyhow::Result<()> {
    let in_use: std::collections::HashSet<String> = store.checkpoint_files().await?.into_iter().collect();
    artifacts.collect_orphans(&in_use, min_age).await?;
    Ok(())
}

/// [`collect_orphans`] every [`ORPHAN_SWEEP_EVERY`] until shutdown; an error is logged and
/// the next round tries again.
async fn collect_orphans_every(artifacts: Artifacts, store: Arc<dyn Store>, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(ORPHAN_SWEEP_EVERY);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
        if let Err(error) = collect_orphans(&artifacts, &*store, ORPHAN_MIN_AGE).await {
            tracing::warn!(error = %format!("{error:#}"), "cannot look for orphaned checkpoint files; trying again later");
        }
    }
}
