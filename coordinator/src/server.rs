//! Running the coordinator: the gRPC services on one TCP listener (plain, or TLS from
//! [`crate::tls`]) with the standard health and reflection services, the dashboard and
//! `/metrics` on another ([`crate::web`]) when asked, and the scheduler's expiry tick beside them.
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
use crate::store::{Store, PROBE_DEADLINE};
use crate::telemetry::{RpcMetricsLayer, Telemetry, TimedStore};
use crate::tls::{ReloadingConfig, TlsOptions};
use crate::web::{self, HttpOptions, WebState};

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
    /// Serve the dashboard, `/metrics`, `/healthz` and `/readyz` over HTTP too.
    pub http: Option<HttpOptions>,
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
            http: None,
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
    let telemetry = Telemetry::new();
    let store: Arc<dyn Store> = Arc::new(TimedStore::new(store, telemetry.clone()));
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
        telemetry: telemetry.clone(),
    };
    let collector = tokio::spawn(collect_orphans_every(artifacts.clone(), store.clone(), shutdown.clone()));
    let expiry = tokio::spawn(scheduler::run_expiry(
        store.clone(),
        clocks.expiry_tick(),
        clocks.lease_ttl,
        telemetry.clone(),
        shutdown.clone(),
    ));
    let (health, health_service) = tonic_health::server::health_reporter();
    for service in HEALTH_SERVICES {
        health.set_service_status(service, tonic_health::ServingStatus::Serving).await;
    }
    let health_watch = tokio::spawn(report_health(health, store.clone(), shutdown.clone()));
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(allsweep_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(allsweep_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;
    let http = match options.http.clone() {
        Some(http) => {
            let state = WebState {
                store: store.clone(),
                tokens: book.clone(),
                clocks,
                telemetry: telemetry.clone(),
                metrics_open: http.metrics_open,
            };
            Some(tokio::spawn(web::serve(http, state, shutdown.clone())))
        }
        None => None,
    };
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
        .layer(RpcMetricsLayer::new(telemetry))
        .layer(AccessLayer::new(book))
        .add_service(workers)
        .add_service(users)
        .add_service(admins)
        .add_service(health_service)
        .add_service(reflection)
        .add_service(reflection_alpha);
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
    health_watch.abort();
    if let Some(http) = http {
        // Live pages hold their streams open: the HTTP side stops with the rest.
        http.abort();
    }
    result
}

/// The services the health service reports on: the server as a whole (`""`) and each of
/// allsweep's.
const HEALTH_SERVICES: [&str; 4] =
    ["", "allsweep.v1.WorkerService", "allsweep.v1.UserService", "allsweep.v1.AdminService"];

/// How often the health service asks the database whether it answers.
const HEALTH_EVERY: Duration = Duration::from_secs(5);

/// Keeps the gRPC health service's status (the server's, `""`, and each allsweep service's)
/// at SERVING while the database answers and NOT_SERVING while it does not.
async fn report_health(
    reporter: tonic_health::server::HealthReporter,
    store: Arc<dyn Store>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(HEALTH_EVERY);
    loop {
        let stopping = tokio::select! {
            _ = tick.tick() => false,
            _ = shutdown.wait_for(|s| *s) => true,
        };
        if stopping {
            for service in HEALTH_SERVICES {
                reporter.set_service_status(service, tonic_health::ServingStatus::NotServing).await;
            }
            return;
        }
        let status = match tokio::time::timeout(PROBE_DEADLINE, store.ping()).await {
            Ok(Ok(())) => tonic_health::ServingStatus::Serving,
            Err(_) => {
                tracing::warn!("the database did not answer within {PROBE_DEADLINE:?}: gRPC health says NOT_SERVING");
                tonic_health::ServingStatus::NotServing
            }
            Ok(Err(error)) => {
                tracing::warn!(%error, "the database does not answer: gRPC health says NOT_SERVING");
                tonic_health::ServingStatus::NotServing
            }
        };
        for service in HEALTH_SERVICES {
            reporter.set_service_status(service, status).await;
        }
    }
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
