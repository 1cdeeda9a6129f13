//! Start-up and command failures: `Error`, with the exit code each one ends the process
//! with. Answers to requests are `reject::Reject`'s business, not this module's.

use crate::config::ConfigError;
use crate::mirror::FileError;

/// A failure that stops the gateway from starting or running.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The TLS certificate or key could not be loaded.
    #[error("TLS: {0}")]
    Tls(String),
    /// The mirror database could not be opened, migrated or read.
    #[error(transparent)]
    Mirror(#[from] FileError),
    /// A command asked for something that is not there (`users get`).
    #[error("{0}")]
    NotFound(String),
    /// Anything else at runtime.
    #[error("{0}")]
    Runtime(String),
}

impl Error {
    /// The process exit code: 1 for bad configuration or input, 2 for runtime failures.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Config(_) | Error::Tls(_) | Error::NotFound(_) => 1,
            Error::Bind { .. } | Error::Mirror(_) | Error::Runtime(_) => 2,
        }
    }
}
