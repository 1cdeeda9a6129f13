//! Start-up and command failures: `Error`, with the exit code each one ends the process
//! with. Answers to requests are `reject::Reject`'s business, not this module's.
//!
//! Every variant keeps the error it came from as its `source`, and its message already
//! includes that source's, so the one line the CLI prints says everything.

use std::time::Duration;

use crate::auth::jwks::KeyStoreError;
use crate::config::{ConfigError, ConfigErrors};
use crate::mirror::FileError;
use crate::proxy::forward::ClientError;
use crate::sweep::SweepError;
use crate::tls::TlsError;
use crate::webhook::svix::SecretError;

/// A failure that stops the gateway from starting or running, or a command from finishing.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is invalid: every problem, in file order.
    #[error(transparent)]
    Config(#[from] ConfigErrors),
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
    Tls(#[from] TlsError),
    /// The mirror database could not be opened, migrated or read.
    #[error(transparent)]
    Mirror(#[from] FileError),
    /// The verification key could not be used.
    #[error(transparent)]
    Keys(#[from] KeyStoreError),
    /// The webhook signing secret could not be used.
    #[error("webhook: {0}")]
    WebhookSecret(#[from] SecretError),
    /// The upstream client could not be built.
    #[error(transparent)]
    UpstreamClient(#[from] ClientError),
    /// The HTTP client for Clerk could not be built.
    #[error("HTTP client: {0}")]
    HttpClient(#[source] reqwest::Error),
    /// A sweep of the Backend API's users stopped (`sync`).
    #[error(transparent)]
    Sweep(#[from] SweepError),
    /// `users get` of a user the mirror does not have.
    #[error("user {id} {}", if *deleted { "was deleted" } else { "is not in the mirror" })]
    UserAbsent {
        /// The id asked for.
        id: String,
        /// Whether the mirror knows it as deleted.
        deleted: bool,
    },
    /// An operating-system resource could not be had: a runtime, a directory, an address.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
    /// A cryptographic operation failed (the demo's key generation and signing).
    #[error("{what}")]
    Crypto {
        /// What was being done.
        what: &'static str,
        /// aws-lc's (deliberately uninformative) error.
        #[source]
        source: aws_lc_rs::error::Unspecified,
    },
    /// A task the command waited for panicked or was cancelled.
    #[error("a task did not finish: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// The demo gateway never reported ready.
    #[error("the demo gateway did not become ready within {} s", waited.as_secs())]
    NotReady {
        /// How long it was given.
        waited: Duration,
    },
}

impl From<ConfigError> for Error {
    fn from(problem: ConfigError) -> Self {
        Error::Config(problem.into())
    }
}

impl Error {
    /// The lines the CLI prints: one per configuration problem, else the one message.
    pub fn lines(&self) -> Vec<String> {
        match self {
            Error::Config(problems) => problems.iter().map(ToString::to_string).collect(),
            other => vec![other.to_string()],
        }
    }

    /// The process exit code: 1 for bad configuration or input, 2 for runtime failures.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Config(_) | Error::Tls(_) | Error::UserAbsent { .. } => 1,
            Error::Bind { .. }
            | Error::Mirror(_)
            | Error::Keys(_)
            | Error::WebhookSecret(_)
            | Error::UpstreamClient(_)
            | Error::HttpClient(_)
            | Error::Sweep(_)
            | Error::Io { .. }
            | Error::Crypto { .. }
            | Error::Task(_)
            | Error::NotReady { .. } => 2,
        }
    }

    /// `source`, while doing `what`.
    pub fn io(what: &'static str) -> impl FnOnce(std::io::Error) -> Error {
        move |source| Error::Io { what, source }
    }

    /// `source`, while doing `what`.
    pub fn crypto(what: &'static str) -> impl FnOnce(aws_lc_rs::error::Unspecified) -> Error {
        move |source| Error::Crypto { what, source }
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;
    use crate::config::TlsFiles;

    #[test]
    fn bad_input_exits_1_and_runtime_failures_2() {
        let files = TlsFiles { cert: "/nonexistent/cert.pem".into(), key: "/nonexistent/key.pem".into() };
        let tls = Error::from(crate::tls::Certificate::load(&files).err().unwrap());
        assert_eq!(tls.exit_code(), 1);
        assert!(tls.to_string().starts_with("TLS: server.tls_cert /nonexistent/cert.pem: "), "{tls}");
        assert!(tls.source().and_then(|s| s.source()).is_some(), "the file error is kept");
        let absent = Error::UserAbsent { id: "user_1".into(), deleted: false };
        assert_eq!((absent.exit_code(), absent.to_string().as_str()), (1, "user user_1 is not in the mirror"));
        let deleted = Error::UserAbsent { id: "user_1".into(), deleted: true };
        assert_eq!(deleted.to_string(), "user user_1 was deleted");
        let io = Error::io("cannot start the runtime")(std::io::Error::other("no threads"));
        assert_eq!((io.exit_code(), io.to_string().as_str()), (2, "cannot start the runtime: no threads"));
        assert!(io.source().is_some());
        let secret = Error::from(crate::webhook::svix::Verifier::new("whsec_!!!").err().unwrap());
        assert_eq!(secret.exit_code(), 2);
        assert!(secret.to_string().starts_with("webhook: the signing secret is not base64"), "{secret}");
        let not_ready = Error::NotReady { waited: Duration::from_secs(5) };
        assert_eq!(not_ready.to_string(), "the demo gateway did not become ready within 5 s");
    }
}
