//! Certificates made at run time for the TLS tests: an authority, and the certificates it
//! signs, written as the PEM files `allsweep serve` and its clients are given.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose};
use tokio::net::TcpStream;
use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

/// A certificate authority.
pub struct Authority {
    issuer: CertifiedIssuer<'static, KeyPair>,
    /// Its certificate, written as `NAME.pem`.
    pub pem: PathBuf,
}

/// A certificate and its key as files, and the certificate as served.
pub struct Leaf {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub der: Vec<u8>,
}

impl Authority {
    /// A new authority called `name`, its certificate written to `dir/NAME.pem`.
    pub fn new(dir: &Path, name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        let pem = dir.join(format!("{name}.pem"));
        std::fs::write(&pem, issuer.pem()).unwrap();
        Self { issuer, pem }
    }

    /// A certificate for `localhost` and 127.0.0.1 with common name `name` and the given
    /// serial, signed by this authority: its PEM is `dir/NAME.crt`, its key `dir/NAME.key`.
    pub fn leaf(&self, dir: &Path, name: &str, serial: u64) -> Leaf {
        let mut params = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.serial_number = Some(serial.into());
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let leaf = Leaf {
            cert: dir.join(format!("{name}.crt")),
            key: dir.join(format!("{name}.key")),
            der: cert.der().to_vec(),
        };
        std::fs::write(&leaf.cert, cert.pem()).unwrap();
        std::fs::write(&leaf.key, key.serialize_pem()).unwrap();
        leaf
    }

    pub fn der(&self) -> CertificateDer<'static> {
        self.issuer.der().clone()
    }
}

impl Leaf {
    /// Puts this certificate and key where `into`'s are, as an operator renewing it would:
    /// the key first, then the certificate.
    pub fn install_over(&self, into: &Leaf) {
        std::fs::copy(&self.key, &into.key).unwrap();
        std::fs::copy(&self.cert, &into.cert).unwrap();
    }

    /// Just the certificate (its key stays).
    pub fn install_cert_over(&self, into: &Leaf) {
        std::fs::copy(&self.cert, &into.cert).unwrap();
    }
}

/// The certificate a coordinator on `port` presents to a new connection, read with a raw
/// rustls client that trusts `authority`.
pub async fn served_certificate(port: u16, authority: &Authority) -> Vec<u8> {
    let mut roots = RootCertStore::empty();
    roots.add(authority.der()).unwrap();
    let mut config = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tls = connector.connect(ServerName::try_from("localhost").unwrap(), tcp).await.unwrap();
    tls.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}
