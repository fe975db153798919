//! PEM files (certificates and private keys) read with errors that name the file: one
//! reader for the clients' TLS ([`crate::tls`]) and the coordinator's, so that both refuse a
//! missing or wrong file with the same words.

use std::path::Path;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// A PEM file that cannot be used; the message names it.
#[derive(Debug, thiserror::Error)]
pub enum PemError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{path} holds no PEM certificate (a block starting -----BEGIN CERTIFICATE-----)")]
    NoCertificate { path: String },
    #[error("{path} holds no PEM private key (a block starting -----BEGIN PRIVATE KEY-----, or an RSA or EC key)")]
    NoKey { path: String },
}

/// The file's bytes.
pub fn read(path: &Path) -> Result<Vec<u8>, PemError> {
    std::fs::read(path).map_err(|source| PemError::Read { path: path.display().to_string(), source })
}

/// The certificates in `bytes`, read from `path`: at least one, and nothing malformed.
pub fn parse_certificates(path: &Path, bytes: &[u8]) -> Result<Vec<CertificateDer<'static>>, PemError> {
    match CertificateDer::pem_slice_iter(bytes).collect::<Result<Vec<_>, _>>() {
        Ok(certs) if !certs.is_empty() => Ok(certs),
        _ => Err(PemError::NoCertificate { path: path.display().to_string() }),
    }
}

/// The private key in `bytes`, read from `path` (PKCS#8, PKCS#1 or SEC1).
pub fn parse_key(path: &Path, bytes: &[u8]) -> Result<PrivateKeyDer<'static>, PemError> {
    PrivateKeyDer::from_pem_slice(bytes).map_err(|_| PemError::NoKey { path: path.display().to_string() })
}

/// The certificates in the file at `path`.
pub fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, PemError> {
    parse_certificates(path, &read(path)?)
}

/// The private key in the file at `path`.
pub fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, PemError> {
    parse_key(path, &read(path)?)
}
