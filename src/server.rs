//! Accepting connections: the hyper auto (HTTP/1.1 + HTTP/2) builder, optional TLS, header
//! timeouts, and graceful shutdown. Knows nothing about auth, routes or headers.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use crate::proxy::body::Body;

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
}

/// A request handler: given the peer address and the request, produce the response.
pub trait Handler: Clone + Send + Sync + 'static {
    /// Handles one request.
    fn call(&self, peer: SocketAddr, request: Request<Incoming>) -> impl Future<Output = Response<Body>> + Send;
}

/// Serves `listener` until `stop` completes, then stops accepting and gives open
/// connections `grace_timeout` to finish their requests.
pub async fn serve<H: Handler>(
    listener: TcpListener,
    options: ServeOptions,
    handler: H,
    stop: impl Future<Output = ()>,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_read_timeout)
        .max_buf_size(options.max_header_bytes);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(options.max_header_bytes).unwrap_or(u32::MAX));
    let builder = Arc::new(builder);
    let graceful = GracefulShutdown::new();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    spawn_connection(stream, peer, builder.clone(), handler.clone(), &options, graceful.watcher());
                }
                Err(error) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
    drop(listener);
    let open = graceful.count();
    if tokio::time::timeout(options.grace_timeout, graceful.shutdown()).await.is_err() {
        tracing::warn!(open, "grace timeout passed with requests still in flight; closing them");
    }
}

fn spawn_connection<H: Handler>(
    stream: TcpStream,
    peer: SocketAddr,
    builder: Arc<auto::Builder<TokioExecutor>>,
    handler: H,
    options: &ServeOptions,
    watcher: Watcher,
) {
    let tls = options.tls.clone();
    let handshake_timeout = options.tls_handshake_timeout;
    tokio::spawn(async move {
        match tls {
            None => serve_io(stream, peer, &builder, handler, watcher).await,
            Some(acceptor) => match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
                Ok(Ok(tls_stream)) => serve_io(tls_stream, peer, &builder, handler, watcher).await,
                Ok(Err(error)) => tracing::debug!(%peer, %error, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            },
        }
    });
}

async fn serve_io<I, H>(io: I, peer: SocketAddr, builder: &auto::Builder<TokioExecutor>, handler: H, watcher: Watcher)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    H: Handler,
{
    let service = service_fn(move |request| {
        let handler = handler.clone();
        async move { Ok::<_, Infallible>(handler.call(peer, request).await) }
    });
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(io), service).into_owned();
    if let Err(error) = watcher.watch(connection).await {
        tracing::debug!(%peer, %error, "connection ended with an error");
    }
}
