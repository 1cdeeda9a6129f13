//! TLS termination: loads the PEM certificate chain and key into a rustls `ServerConfig`
//! advertising h2 and http/1.1. Does not accept connections itself.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::ServerConfig;
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

/// Builds the acceptor for `files`.
///
/// # Errors
/// `TlsError` naming the file that could not be read or used.
pub fn acceptor(files: &TlsFiles) -> Result<TlsAcceptor, TlsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .and_then(Iterator::collect)
        .map_err(|source| TlsError::Certificate { path: files.cert.clone(), source })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificates { path: files.cert.clone() });
    }
    let key =
        PrivateKeyDer::from_pem_file(&files.key).map_err(|source| TlsError::Key { path: files.key.clone(), source })?;
    let mut config =
        ServerConfig::builder().with_no_client_auth().with_single_cert(certs, key).map_err(TlsError::Pair)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
