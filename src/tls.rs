//! TLS termination: loads the PEM certificate chain and key into a rustls `ServerConfig`
//! advertising h2 and http/1.1, with the certificate behind a swap so a reload can rotate it
//! for new handshakes. Does not accept connections itself.

use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::ServerConfig;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::config::TlsFiles;

/// Why the certificate or key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The certificate file could not be read or parsed.
    #[error("server.tls_cert {}: {source}", path.display())]
    Certificate {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: pem::Error,
    },
    /// The certificate file holds no certificate.
    #[error("server.tls_cert {}: no certificates found", path.display())]
    NoCertificates {
        /// The file.
        path: PathBuf,
    },
    /// The key file could not be read or parsed.
    #[error("server.tls_key {}: {source}", path.display())]
    Key {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: pem::Error,
    },
    /// rustls refused the pair (a key that does not match the certificate, say).
    #[error("server.tls_cert/tls_key: {0}")]
    Pair(#[source] rustls::Error),
}

/// The certificate new handshakes get; `prepare` and `serve` rotate it.
#[derive(Debug)]
pub struct Certificate {
    current: ArcSwap<CertifiedKey>,
}

impl Certificate {
    /// Loads `files`.
    ///
    /// # Errors
    /// `TlsError` naming the file that could not be read or used.
    pub fn load(files: &TlsFiles) -> Result<Arc<Certificate>, TlsError> {
        Ok(Arc::new(Certificate { current: ArcSwap::from_pointee(certified_key(files)?) }))
    }

    /// Reads `files` again: the chain and key to serve next, or `None` when the chain is the
    /// one served now. Serves nothing new until `serve`.
    ///
    /// # Errors
    /// `TlsError` naming the file.
    pub fn prepare(&self, files: &TlsFiles) -> Result<Option<CertifiedKey>, TlsError> {
        let next = certified_key(files)?;
        Ok((next.cert != self.current.load().cert).then_some(next))
    }

    /// Serves `next` from the next handshake on; connections already open keep theirs.
    pub fn serve(&self, next: CertifiedKey) {
        self.current.store(Arc::new(next));
    }

    /// An acceptor serving this certificate, advertising h2 and http/1.1.
    pub fn acceptor(self: &Arc<Self>) -> TlsAcceptor {
        let mut config = ServerConfig::builder().with_no_client_auth().with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        TlsAcceptor::from(Arc::new(config))
    }
}

impl ResolvesServerCert for Certificate {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

/// The chain and key in `files`, checked to belong together.
fn certified_key(files: &TlsFiles) -> Result<CertifiedKey, TlsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .and_then(Iterator::collect)
        .map_err(|source| TlsError::Certificate { path: files.cert.clone(), source })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificates { path: files.cert.clone() });
    }
    let key =
        PrivateKeyDer::from_pem_file(&files.key).map_err(|source| TlsError::Key { path: files.key.clone(), source })?;
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    CertifiedKey::from_der(certs, key, &provider).map_err(TlsError::Pair)
}
