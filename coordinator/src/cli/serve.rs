//! `allsweep serve`: the coordinator.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use tokio::sync::watch;

use allsweep_coordinator::server::{serve, ServeOptions};
use allsweep_coordinator::spec::SpecLimits;
use allsweep_coordinator::store;
use allsweep_coordinator::tls::{ReloadingConfig, TlsOptions};
use allsweep_coordinator::web::HttpOptions;

#[derive(Args)]
pub struct ServeArgs {
    /// sqlite://PATH (created if missing) or postgres://USER@HOST/DB.
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite://allsweep.db")]
    pub db: String,
    /// Address to listen on (port 0: any free port; the bound address is printed).
    #[arg(long, env = "ALLSWEEP_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: String,
    /// Where checkpoint files live.
    #[arg(long, env = "ALLSWEEP_ARTIFACTS", default_value = "allsweep-artifacts")]
    pub artifacts: PathBuf,
    /// The largest gRPC message received or sent, in bytes (checkpoints travel in 1 MiB chunks;
    /// a sweep's status grows with its trials).
    #[arg(long, default_value_t = allsweep_coordinator::server::DEFAULT_MAX_MESSAGE_BYTES, value_parser = clap::value_parser!(usize))]
    pub max_message_bytes: usize,
    /// Lease duration without a heartbeat, in seconds (workers heartbeat three times per lease).
    #[arg(long, env = "ALLSWEEP_LEASE_SECONDS", default_value_t = 30.0)]
    pub lease_seconds: f64,
    /// Require this token from every caller (a flag shows in the process list: prefer ALLSWEEP_TOKEN or --token-file).
    #[arg(long, env = "ALLSWEEP_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// A file whose first line is the token; wins over --token and ALLSWEEP_TOKEN.
    #[arg(long, env = "ALLSWEEP_TOKEN_FILE")]
    pub token_file: Option<std::path::PathBuf>,
    /// On SIGTERM or SIGINT, how long calls in flight may still run before every connection is
    /// closed, in seconds; a second signal stops at once.
    #[arg(long, env = "ALLSWEEP_SHUTDOWN_SECONDS", default_value_t = 5.0)]
    pub shutdown_seconds: f64,
    /// Also serve the dashboard, /metrics, /healthz and /readyz over HTTP on this address,
    /// e.g. 127.0.0.1:8080 (port 0: any free port; the URL is printed).
    #[arg(long, env = "ALLSWEEP_HTTP")]
    pub http: Option<String>,
    /// Serve /metrics without a token (for a Prometheus on a trusted network); every other
    /// page and endpoint that reads sweeps still needs one.
    #[arg(long, env = "ALLSWEEP_METRICS_OPEN", requires = "http")]
    pub metrics_open: bool,
    #[command(flatten)]
    pub tls: TlsArgs,
    #[command(flatten)]
    pub limits: LimitArgs,
}

/// Serving TLS; the files are checked every 2 s and reloaded when they change.
#[derive(clap::Args, Clone)]
pub struct TlsArgs {
    /// Serve TLS with this PEM certificate chain (clients then use https://).
    #[arg(long, env = "ALLSWEEP_SERVE_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, env = "ALLSWEEP_SERVE_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Require every client to present a certificate signed by this PEM authority (mutual TLS).
    #[arg(long, env = "ALLSWEEP_SERVE_TLS_CLIENT_CA", requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,
}

impl TlsArgs {
    pub fn options(&self) -> Option<TlsOptions> {
        let (cert, key) = (self.tls_cert.clone()?, self.tls_key.clone()?);
        Some(TlsOptions { client_ca: self.tls_client_ca.clone(), ..TlsOptions::new(cert, key) })
    }
}

/// The sweep limits, the same flags on `serve` and `run`.
#[derive(clap::Args, Clone, Copy)]
pub struct LimitArgs {
    /// Most trials (grid points times seeds) one submitted sweep may have.
    #[arg(long, default_value_t = SpecLimits::DEFAULT_MAX_TRIALS, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_trials: u64,
    /// Most axes (keys in `[grid]`) one submitted spec may have.
    #[arg(long, default_value_t = SpecLimits::DEFAULT_MAX_AXES)]
    pub max_axes: usize,
    /// Largest submitted spec, in bytes.
    #[arg(long, default_value_t = SpecLimits::DEFAULT_MAX_SPEC_BYTES)]
    pub max_spec_bytes: usize,
}

impl From<LimitArgs> for SpecLimits {
    fn from(a: LimitArgs) -> Self {
        SpecLimits { max_trials: a.max_trials, max_axes: a.max_axes, max_spec_bytes: a.max_spec_bytes }
    }
}

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.lease_seconds >= 0.3, "--lease-seconds must be at least 0.3");
    anyhow::ensure!(
        args.shutdown_seconds.is_finite() && (0.0..=3600.0).contains(&args.shutdown_seconds),
        "--shutdown-seconds must be between 0 and 3600, got {}",
        args.shutdown_seconds
    );
    anyhow::ensure!(
        args.max_message_bytes >= 2 << 20,
        "--max-message-bytes must be at least 2097152 (a 1 MiB checkpoint chunk and its framing)"
    );
    let tls = args.tls.options();
    if let Some(tls) = &tls {
        ReloadingConfig::load(tls).context("cannot serve TLS")?;
    }
    let store = store::open(&args.db).await.with_context(|| format!("cannot open the database {}", args.db))?;
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let address = listener.local_addr()?;
    println!("allsweep coordinator listening on {address}");
    let http = match &args.http {
        Some(at) => {
            let http =
                HttpOptions::bind(at, args.metrics_open).with_context(|| format!("cannot listen on {at} (--http)"))?;
            println!("allsweep dashboard at {}", http.url());
            Some(http)
        }
        None => None,
    };
    tracing::info!(%address, db = %redact(&args.db), "coordinator started");
    let (stop, shutdown) = watch::channel(false);
    let grace = Duration::from_secs_f64(args.shutdown_seconds);
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!(
            ?grace,
            "shutting down: calls in flight may finish within the grace (a second signal stops at once)"
        );
        let _ = stop.send(true);
        shutdown_signal().await;
        tracing::warn!("second signal: stopping at once");
        std::process::exit(130);
    });
    let options = ServeOptions {
        token: allsweep_proto::auth::resolve_token(args.token, args.token_file.as_deref())?,
        spec_limits: args.limits.into(),
        max_message_bytes: args.max_message_bytes,
        tls,
        shutdown_grace: grace,
        http,
        ..ServeOptions::new(args.artifacts, Duration::from_secs_f64(args.lease_seconds))
    };
    serve(listener, store, options, shutdown).await
}

/// SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
}

/// A database URL without its password, for logs.
fn redact(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let user_part = &url[scheme + 3..at];
            let user = user_part.split(':').next().unwrap_or_default();
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_string(),
    }
}
