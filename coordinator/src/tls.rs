//! TLS for `allsweep serve` (`--tls-cert`, `--tls-key`, `--tls-client-ca`): the rustls
//! configuration built from the PEM files, kept current while the coordinator runs, and the
//! stream of accepted TLS connections that tonic serves.
//!
//! Certificates expire and get renewed in place (certbot, cert-manager, a cron job), so the
//! files are watched: every [`TlsOptions::reload_every`] their modification times and sizes are
//! compared with those last seen, and on a change the whole configuration (certificate, key and
//! client authority together, so a new key never meets an old certificate) is built again and
//! swapped in. Each new connection takes the configuration current when it is accepted;
//! connections already open keep theirs. A file that is missing, malformed or does not match
//! its partner is logged and the configuration in use stays: the coordinator never goes down
//! over a half-copied certificate, and it tries again when the files change next.
//!
//! Handshakes run on their own tasks, with a time limit, so that a client that stalls or fails
//! its handshake (plain gRPC, an untrusted certificate, none where one is required) holds up
//! no one and stops nothing.

use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use allsweep_proto::pem::{self, PemError};
use sha2::{Digest, Sha256};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{RootCertStore, ServerConfig};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// A handshake that has not finished by then is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the coordinator's certificate lives, and whom it asks for client certificates.
#[derive(Debug, Clone)]
pub struct TlsOptions {
    /// PEM certificate chain, the coordinator's own certificate first.
    pub cert: PathBuf,
    /// PEM private key of that certificate (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// PEM certificate(s) of the authority that signs client certificates: with it, every
    /// client must present a certificate it signed (mutual TLS).
    pub client_ca: Option<PathBuf>,
    /// How often the files are checked for changes.
    pub reload_every: Duration,
}

impl TlsOptions {
    /// Server TLS without client certificates, the files checked every 2 s.
    pub fn new(cert: PathBuf, key: PathBuf) -> Self {
        Self { cert, key, client_ca: None, reload_every: Duration::from_secs(2) }
    }
}

/// A TLS file that cannot be used; the message names it.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error(transparent)]
    Pem(#[from] PemError),
    #[error("the key {key} cannot be used with the certificate {cert}: {reason}")]
    Mismatch { cert: String, key: String, reason: String },
    #[error("the client authority {path} cannot be used: {reason}")]
    ClientCa { path: String, reason: String },
}

/// The TLS configuration in force, and what it was built from.
pub struct ReloadingConfig {
    options: TlsOptions,
    /// Taken by each accepted connection; replaced whole on a successful reload.
    current: RwLock<Arc<ServerConfig>>,
    /// The files' state when they were last read, successfully or not: a failed reload is
    /// not retried (nor logged again) until a file changes.
    seen: Mutex<Vec<Option<(SystemTime, u64)>>>,
}

impl ReloadingConfig {
    /// Reads the files; an error here means the coordinator cannot start.
    pub fn load(options: &TlsOptions) -> Result<Arc<Self>, TlsError> {
        let seen = stamps(options);
        let (config, fingerprint) = build(options)?;
        tracing::debug!(cert = %options.cert.display(), %fingerprint, "TLS certificate read");
        Ok(Arc::new(Self { options: options.clone(), current: RwLock::new(config), seen: Mutex::new(seen) }))
    }

    /// The configuration for a connection accepted now.
    pub fn current(&self) -> Arc<ServerConfig> {
        self.current.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Rebuilds the configuration if a file changed since it was last read. Returns whether a
    /// new one is in force.
    pub fn reload_if_changed(&self) -> bool {
        // The stamps are taken before the files are read: a file written meanwhile is read
        // again at the next check.
        let now = stamps(&self.options);
        {
            let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
            if *seen == now {
                return false;
            }
            *seen = now;
        }
        match build(&self.options) {
            Ok((config, fingerprint)) => {
                *self.current.write().unwrap_or_else(PoisonError::into_inner) = config;
                tracing::info!(cert = %self.options.cert.display(), %fingerprint, "TLS certificate reloaded; new connections use it");
                true
            }
            Err(error) => {
                tracing::error!(%error, "cannot reload the TLS certificate; still serving the one loaded before");
                false
            }
        }
    }

    /// Accepts connections on `listener` and hands tonic those that complete a TLS
    /// handshake; checks the files for changes meanwhile. Both tasks end when the stream is
    /// dropped.
    pub fn incoming(self: &Arc<Self>, listener: TcpListener) -> TlsIncoming {
        let options = &self.options;
        tracing::info!(cert = %options.cert.display(), client_ca = ?options.client_ca, every = ?options.reload_every, "serving TLS; the files are watched for changes");
        let (sender, connections) = mpsc::channel(64);
        let accept = tokio::spawn(accept(listener, self.clone(), sender));
        let watch = tokio::spawn(watch(self.clone()));
        TlsIncoming { connections, tasks: [accept, watch] }
    }
}

/// Accepted TLS connections, as tonic's `serve_with_incoming_shutdown` takes them.
pub struct TlsIncoming {
    connections: mpsc::Receiver<TlsStream<TcpStream>>,
    tasks: [JoinHandle<()>; 2],
}

impl futures::Stream for TlsIncoming {
    type Item = Result<TlsStream<TcpStream>, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.connections.poll_recv(cx).map(|c| c.map(Ok))
    }
}

impl Drop for TlsIncoming {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

async fn accept(listener: TcpListener, config: Arc<ReloadingConfig>, sender: mpsc::Sender<TlsStream<TcpStream>>) {
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors, or a connection reset before it was taken: wait a
                // little rather than spin, and go on.
                tracing::warn!(%error, "cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if sender.is_closed() {
            return;
        }
        // As for plain TCP in `server::serve`: trailers go out at once, not after an ACK.
        let _ = tcp.set_nodelay(true);
        let acceptor = TlsAcceptor::from(config.current());
        let sender = sender.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp).into_fallible()).await {
                Ok(Ok(stream)) => {
                    let _ = sender.send(stream).await;
                }
                Ok(Err((error, tcp))) => {
                    // A plain gRPC client's first bytes are not a TLS record.
                    let plain = error.to_string().contains("InvalidContentType");
                    let hint = if plain { " (a plaintext client? it needs an https:// address)" } else { "" };
                    tracing::info!(%peer, %error, "TLS handshake failed{hint}");
                    close_gently(tcp).await;
                }
                Err(_) => tracing::info!(%peer, "TLS handshake timed out"),
            }
        });
    }
}

/// Closes a connection whose handshake failed so that the client reads the alert saying why
/// (`CertificateRequired`, `UnknownCA`). Under TLS 1.3 a client learns that its certificate
/// was refused only after it has sent its first request; closing a socket with that request
/// unread would send a reset, and the client would see a broken pipe instead of the alert.
async fn close_gently(mut tcp: TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let _ = tcp.shutdown().await;
    let mut sink = [0u8; 4096];
    let drain = async { while matches!(tcp.read(&mut sink).await, Ok(n) if n > 0) {} };
    let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
}

async fn watch(config: Arc<ReloadingConfig>) {
    let mut tick = tokio::time::interval(config.options.reload_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let config = config.clone();
        let _ = tokio::task::spawn_blocking(move || config.reload_if_changed()).await;
    }
}

/// Modification time and size of each file (none for one that cannot be read).
fn stamps(options: &TlsOptions) -> Vec<Option<(SystemTime, u64)>> {
    let files = [Some(&options.cert), Some(&options.key), options.client_ca.as_ref()];
    files
        .into_iter()
        .flatten()
        .map(|path| std::fs::metadata(path).ok().and_then(|m| Some((m.modified().ok()?, m.len()))))
        .collect()
}

/// The server configuration from the files, and the SHA-256 of the certificate (the first
/// 16 hex digits, for logs).
fn build(options: &TlsOptions) -> Result<(Arc<ServerConfig>, String), TlsError> {
    let provider = Arc::new(ring::default_provider());
    let chain = pem::certificates(&options.cert)?;
    let key = pem::private_key(&options.key)?;
    let fingerprint = hex::encode(&Sha256::digest(&chain[0])[..8]);
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| mismatch(options, e))?;
    let builder = match &options.client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let client_ca = |reason: String| TlsError::ClientCa { path: path.display().to_string(), reason };
            let mut roots = RootCertStore::empty();
            for cert in pem::certificates(path)? {
                roots.add(cert).map_err(|e| client_ca(e.to_string()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| client_ca(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    // Refuses a key that does not belong to the certificate (one replaced before the other).
    let mut config = builder.with_single_cert(chain, key).map_err(|e| mismatch(options, e))?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok((Arc::new(config), fingerprint))
}

fn mismatch(options: &TlsOptions, error: impl std::fmt::Display) -> TlsError {
    TlsError::Mismatch {
        cert: options.cert.display().to_string(),
        key: options.key.display().to_string(),
        reason: error.to_string(),
    }
}
