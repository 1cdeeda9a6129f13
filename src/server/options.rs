//! How a listener's connections are served: the connection-level settings and limits
//! (`ServeOptions`, `ConnectionLimits`) and their defaults.

use std::sync::Arc;
use std::time::Duration;

use tokio_rustls::TlsAcceptor;
use tokio_util::task::TaskTracker;

use crate::metrics::ConnectionCounters;

/// What a connection may cost before it is closed.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    /// Most connections open at once.
    pub max_connections: usize,
    /// Deadline for the first bytes (enough to tell HTTP/2's preface from HTTP/1.1).
    pub first_byte_timeout: Duration,
    /// How long a connection may stay open with no request in flight.
    pub idle_timeout: Duration,
    /// How often HTTP/2 connections are pinged.
    pub http2_keepalive_interval: Duration,
    /// How long a ping may go unanswered.
    pub http2_keepalive_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_connections: 1024,
            first_byte_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            http2_keepalive_interval: Duration::from_secs(20),
            http2_keepalive_timeout: Duration::from_secs(10),
        }
    }
}

/// Connection-level settings.
#[derive(Clone)]
pub struct ServeOptions {
    /// Deadline for a request head.
    pub header_read_timeout: Duration,
    /// Largest request head (HTTP/1.1 buffer, HTTP/2 header list).
    pub max_header_bytes: usize,
    /// TLS termination, when configured.
    pub tls: Option<TlsAcceptor>,
    /// Deadline for a TLS handshake.
    pub tls_handshake_timeout: Duration,
    /// After `stop`: how long open connections get to finish.
    pub grace_timeout: Duration,
    /// Tasks handlers spawn that outlive their request (upgraded connections): shutdown
    /// gives them the same grace timeout as open connections.
    pub detached: TaskTracker,
    /// Connection limits and deadlines.
    pub limits: ConnectionLimits,
    /// Where what becomes of connections is counted.
    pub counters: Arc<ConnectionCounters>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            header_read_timeout: Duration::from_secs(10),
            max_header_bytes: 64 * 1024,
            tls: None,
            tls_handshake_timeout: Duration::from_secs(10),
            grace_timeout: Duration::from_secs(1),
            detached: TaskTracker::new(),
            limits: ConnectionLimits::default(),
            counters: Arc::default(),
        }
    }
}
