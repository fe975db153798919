//! TLS for the clients of a coordinator, the `allsweep` CLI and `allsweep-worker` alike: one
//! way to turn a coordinator address and the `--tls-ca`, `--tls-cert` and `--tls-key` files
//! into a tonic [`Endpoint`], so that both trust the same certificates and refuse a bad setup
//! with the same clear errors, before any connection is tried.
//!
//! An `https://` address is checked against `--tls-ca` when given (and then against it only),
//! else against the system's trusted certificates. A client certificate and key, given
//! together, answer a coordinator that asks for one (mutual TLS).

use std::path::{Path, PathBuf};

use crate::pem::{self, PemError};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

/// The TLS files a client was given; each optional.
#[derive(Clone, Debug, Default)]
pub struct ClientTls {
    /// PEM certificate(s) of the authority that signed the coordinator's certificate.
    pub ca: Option<PathBuf>,
    /// This client's PEM certificate chain, for a coordinator that requires one.
    pub cert: Option<PathBuf>,
    /// The private key of [`ClientTls::cert`], in PEM.
    pub key: Option<PathBuf>,
}

/// A coordinator address or TLS file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("bad coordinator address {address:?}: {reason}")]
    Address { address: String, reason: String },
    #[error("--tls-ca, --tls-cert or --tls-key was given, but the coordinator address {address} is not https://; use https://HOST:PORT for a coordinator that serves TLS")]
    NotHttps { address: String },
    #[error("--tls-cert and --tls-key go together; {missing} is missing")]
    HalfIdentity { missing: &'static str },
    #[error(transparent)]
    Pem(#[from] PemError),
    #[error("cannot use the system's trusted certificates for {address} ({reason}); pass --tls-ca FILE (or ALLSWEEP_TLS_CA) with the certificate of the authority that signed the coordinator's")]
    SystemRoots { address: String, reason: String },
    #[error("cannot use the TLS files for {address}: {reason}")]
    Config { address: String, reason: String },
}

/// The endpoint for `address` (`http://HOST:PORT`, or `https://HOST:PORT` for TLS), with no
/// timeouts or limits set: callers add their own.
pub fn endpoint(address: &str, tls: &ClientTls) -> Result<Endpoint, TlsError> {
    let endpoint = Endpoint::from_shared(address.to_string())
        .map_err(|e| TlsError::Address { address: address.to_string(), reason: e.to_string() })?;
    let https = endpoint.uri().scheme_str() == Some("https");
    let given = tls.ca.is_some() || tls.cert.is_some() || tls.key.is_some();
    if !https {
        return if given { Err(TlsError::NotHttps { address: address.to_string() }) } else { Ok(endpoint) };
    }
    let mut config = ClientTlsConfig::new();
    config = match &tls.ca {
        Some(ca) => config.ca_certificate(Certificate::from_pem(read_certificates(ca)?)),
        None => config.with_native_roots(),
    };
    match (&tls.cert, &tls.key) {
        (Some(cert), Some(key)) => {
            config = config.identity(Identity::from_pem(read_certificates(cert)?, read_key(key)?));
        }
        (Some(_), None) => return Err(TlsError::HalfIdentity { missing: "--tls-key" }),
        (None, Some(_)) => return Err(TlsError::HalfIdentity { missing: "--tls-cert" }),
        (None, None) => {}
    }
    endpoint.tls_config(config).map_err(|e| {
        let reason = error_chain(&e);
        match tls.ca {
            None => TlsError::SystemRoots { address: address.to_string(), reason },
            Some(_) => TlsError::Config { address: address.to_string(), reason },
        }
    })
}

/// The file's bytes, once they are known to hold at least one PEM certificate and nothing
/// malformed.
pub fn read_certificates(path: &Path) -> Result<Vec<u8>, TlsError> {
    let bytes = pem::read(path)?;
    pem::parse_certificates(path, &bytes)?;
    Ok(bytes)
}

/// The file's bytes, once they are known to hold a PEM private key.
pub fn read_key(path: &Path) -> Result<Vec<u8>, TlsError> {
    let bytes = pem::read(path)?;
    pem::parse_key(path, &bytes)?;
    Ok(bytes)
}

/// An error and its causes on one line: tonic's transport errors say little at the top
/// ("transport error") and the reason (an unknown issuer, a refused certificate) below.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    with_causes(error.to_string(), error.source())
}

/// `text`, then each cause from `source` down that it does not already say, after ": ".
fn with_causes(mut text: String, mut source: Option<&(dyn std::error::Error + 'static)>) -> String {
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// A failed call's message with the causes below it (a call that failed on the connection
/// says only "transport error" or "operation was canceled" at the top, and the TLS alert,
/// `CertificateRequired` or `UnknownIssuer`, below), and what to check when the causes
/// point at a TLS setup that does not fit the coordinator's.
pub fn status_reason(status: &tonic::Status) -> String {
    let mut text = with_causes(status.message().to_string(), std::error::Error::source(status));
    text.push_str(hint(&text));
    text
}

/// What to check for a failure that looks like TLS on one side only, or a refused client.
fn hint(reason: &str) -> &'static str {
    if reason.contains("frame with invalid size") {
        // A TLS record read as an HTTP/2 frame: its header decodes to a length over the limit.
        return " (a coordinator that serves TLS needs an https:// address)";
    }
    let closed = ["connection closed", "broken pipe", "connection reset", "connection was not ready"];
    if closed.iter().any(|c| reason.contains(c)) {
        // Under TLS 1.3 a coordinator refuses a client certificate (or its absence) after the
        // handshake, and the alert that says so may be lost behind the closed connection; when
        // the close comes before the HTTP/2 handshake ends, hyper says the connection "was not
        // ready" instead.
        return " (the coordinator closed the connection; if it requires client certificates, \
                 pass --tls-cert and --tls-key; its log says why it refused)";
    }
    ""
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str, contents: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("allsweep-tls-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        let path = dir.join(name);
        std::fs::write(&path, contents).expect("write");
        path
    }

    fn message(address: &str, tls: &ClientTls) -> String {
        endpoint(address, tls).expect_err("refused").to_string()
    }

    #[test]
    fn plain_addresses_need_no_tls_and_refuse_tls_files() {
        assert!(endpoint("http://127.0.0.1:50051", &ClientTls::default()).is_ok());
        let tls = ClientTls { ca: Some("ca.pem".into()), ..Default::default() };
        assert!(message("http://127.0.0.1:50051", &tls).contains("use https://"));
        assert!(message("not a url", &ClientTls::default()).contains("bad coordinator address"));
    }

    #[test]
    fn bad_tls_files_are_named() {
        let garbage = temp("garbage.pem", "not a certificate\n");
        let tls = ClientTls { ca: Some(garbage.clone()), ..Default::default() };
        let said = message("https://localhost:50051", &tls);
        assert!(said.contains("garbage.pem") && said.contains("no PEM certificate"), "{said}");
        let missing = ClientTls { ca: Some("/nonexistent/ca.pem".into()), ..Default::default() };
        assert!(message("https://localhost:50051", &missing).contains("cannot read /nonexistent/ca.pem"));
        let half = ClientTls { cert: Some(garbage.clone()), ..Default::default() };
        assert!(message("https://localhost:50051", &half).contains("--tls-key is missing"));
        let key = ClientTls { cert: Some(garbage.clone()), key: Some(garbage), ..Default::default() };
        assert!(message("https://localhost:50051", &key).contains("no PEM certificate"));
    }

    #[test]
    fn a_failed_call_names_its_causes_and_what_to_check() {
        let closed = tonic::Status::unknown("transport error: connection closed");
        assert!(status_reason(&closed).contains("pass --tls-cert and --tls-key"));
        let not_ready = tonic::Status::cancelled("operation was canceled: transport error: connection was not ready");
        assert!(status_reason(&not_ready).contains("pass --tls-cert and --tls-key"));
        let plaintext = tonic::Status::internal("h2 protocol error: frame with invalid size");
        assert!(status_reason(&plaintext).contains("needs an https:// address"));
        assert_eq!(status_reason(&tonic::Status::not_found("no sweep x")), "no sweep x");
    }
}
