//! TLS termination: loads the PEM certificate chain and key into a rustls `ServerConfig`
//! advertising h2 and http/1.1. Does not accept connections itself.

use std::sync::Arc;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::config::TlsFiles;
use crate::error::Error;

/// Builds the acceptor for `files`.
///
/// # Errors
/// `Error::Tls` naming the file that could not be read or used.
pub fn acceptor(files: &TlsFiles) -> Result<TlsAcceptor, Error> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .and_then(Iterator::collect)
        .map_err(|e| Error::Tls(format!("server.tls_cert {}: {e}", files.cert.display())))?;
    if certs.is_empty() {
        return Err(Error::Tls(format!("server.tls_cert {}: no certificates found", files.cert.display())));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| Error::Tls(format!("server.tls_key {}: {e}", files.key.display())))?;
    let mut config = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| Error::Tls(format!("server.tls_cert/tls_key: {e}")))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
