//! Accepting connections: the hyper auto (HTTP/1.1 + HTTP/2) builder, optional TLS, header
//! timeouts, graceful shutdown, and (for the proxy listener) worker threads that each run a
//! single-threaded runtime, so a request and its upstream connection stay on one core.
//! Knows nothing about auth, routes or headers.

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
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_util::task::TaskTracker;

use crate::body::Body;

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
}

/// A request handler: given the peer address and the request, produce the response.
pub trait Handler: Clone + Send + Sync + 'static {
    /// Handles one request.
    fn call(&self, peer: SocketAddr, request: Request<Incoming>) -> impl Future<Output = Response<Body>> + Send;
}

/// Serves `listener` on the calling runtime until `stop` completes, then stops accepting
/// and gives open connections `grace_timeout` to finish.
pub async fn serve<H: Handler>(
    listener: TcpListener,
    options: ServeOptions,
    handler: H,
    stop: impl Future<Output = ()>,
) {
    let connections = Connections::new(&options);
    let graceful = GracefulShutdown::new();
    accept_until(&listener, stop, |stream, peer| {
        tokio::spawn(connections.serve(stream, peer, handler.clone(), graceful.watcher()));
    })
    .await;
    drop(listener);
    finish(graceful, &options).await;
}

/// Like `serve`, but connections are handed round-robin to `workers` threads, each with its
/// own single-threaded runtime and its own handler, `make_handler(worker_index)`, so that
/// per-worker resources such as an upstream pool are only ever used from that thread.
pub async fn serve_on_workers<H, F>(
    listener: TcpListener,
    options: ServeOptions,
    workers: usize,
    make_handler: F,
    stop: impl Future<Output = ()>,
) where
    H: Handler,
    F: Fn(usize) -> H + Send + Sync + 'static,
{
    let make_handler = Arc::new(make_handler);
    let pool: Vec<Worker> = (0..workers.max(1)).map(|i| Worker::start(i, &options, make_handler.clone())).collect();
    let graceful = GracefulShutdown::new();
    let mut next = 0usize;
    accept_until(&listener, stop, |stream, peer| {
        let Ok(stream) = stream.into_std() else { return };
        let worker = &pool[next % pool.len()];
        next = next.wrapping_add(1);
        let _ = worker.connections.send(Accepted { stream, peer, watcher: graceful.watcher() });
    })
    .await;
    drop(listener);
    let (mut aborts, mut threads) = (Vec::new(), Vec::new());
    for worker in pool {
        drop(worker.connections);
        aborts.push(worker.abort);
        threads.push(worker.thread);
    }
    finish(graceful, &options).await;
    for abort in aborts {
        let _ = abort.send(());
    }
    let _ = tokio::task::spawn_blocking(move || threads.into_iter().for_each(|t| drop(t.join()))).await;
}

/// Accepts until `stop`, handing each connection to `dispatch`.
async fn accept_until(
    listener: &TcpListener,
    stop: impl Future<Output = ()>,
    mut dispatch: impl FnMut(TcpStream, SocketAddr),
) {
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    dispatch(stream, peer);
                }
                Err(error) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
}

async fn finish(graceful: GracefulShutdown, options: &ServeOptions) {
    let open = graceful.count();
    let detached = &options.detached;
    let everything = async {
        graceful.shutdown().await;
        detached.close();
        detached.wait().await;
    };
    if tokio::time::timeout(options.grace_timeout, everything).await.is_err() {
        let tunnels = detached.len();
        tracing::warn!(open, tunnels, "grace timeout passed with requests still in flight; closing them");
    }
}

/// A connection accepted on the listener's runtime, on its way to a worker.
struct Accepted {
    stream: std::net::TcpStream,
    peer: SocketAddr,
    watcher: Watcher,
}

struct Worker {
    connections: mpsc::UnboundedSender<Accepted>,
    abort: oneshot::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl Worker {
    fn start<H, F>(index: usize, options: &ServeOptions, make_handler: Arc<F>) -> Worker
    where
        H: Handler,
        F: Fn(usize) -> H + Send + Sync + 'static,
    {
        let (connections, incoming) = mpsc::unbounded_channel();
        let (abort, aborted) = oneshot::channel();
        let options = options.clone();
        let thread = std::thread::Builder::new()
            .name(format!("gateway-worker-{index}"))
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(runtime) => runtime,
                    Err(error) => return tracing::error!(%error, "cannot start a worker runtime"),
                };
                runtime.block_on(Self::run(incoming, aborted, Connections::new(&options), make_handler(index)));
            })
            .unwrap_or_else(|e| panic!("cannot spawn a worker thread: {e}"));
        Worker { connections, abort, thread }
    }

    /// Serves what arrives until the acceptor is gone, then keeps running until shutdown
    /// is over.
    async fn run<H: Handler>(
        mut incoming: mpsc::UnboundedReceiver<Accepted>,
        aborted: oneshot::Receiver<()>,
        connections: Connections,
        handler: H,
    ) {
        let mut tasks = JoinSet::new();
        loop {
            tokio::select! {
                accepted = incoming.recv() => match accepted {
                    Some(Accepted { stream, peer, watcher }) => match TcpStream::from_std(stream) {
                        Ok(stream) => {
                            tasks.spawn(connections.serve(stream, peer, handler.clone(), watcher));
                        }
                        Err(error) => tracing::warn!(%error, "cannot adopt a connection"),
                    },
                    None => break,
                },
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            }
        }
        // The acceptor is gone, but connections and upgraded tunnels still run on this
        // runtime: keep it until the acceptor says shutdown is over (everything finished or
        // the grace timeout passed), then drop whatever is left.
        let _ = aborted.await;
        tasks.abort_all();
    }
}

/// Serves single connections: the shared auto builder plus TLS.
#[derive(Clone)]
struct Connections {
    builder: Arc<auto::Builder<TokioExecutor>>,
    tls: Option<TlsAcceptor>,
    handshake_timeout: Duration,
}

impl Connections {
    fn new(options: &ServeOptions) -> Self {
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
        Connections {
            builder: Arc::new(builder),
            tls: options.tls.clone(),
            handshake_timeout: options.tls_handshake_timeout,
        }
    }

    fn serve<H: Handler>(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
        handler: H,
        watcher: Watcher,
    ) -> impl Future<Output = ()> + Send + 'static {
        let this = self.clone();
        async move {
            match &this.tls {
                None => this.serve_io(stream, peer, handler, watcher).await,
                Some(acceptor) => match tokio::time::timeout(this.handshake_timeout, acceptor.accept(stream)).await {
                    Ok(Ok(tls_stream)) => this.serve_io(tls_stream, peer, handler, watcher).await,
                    Ok(Err(error)) => tracing::debug!(%peer, %error, "TLS handshake failed"),
                    Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                },
            }
        }
    }

    async fn serve_io<I, H>(&self, io: I, peer: SocketAddr, handler: H, watcher: Watcher)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        H: Handler,
    {
        let service = service_fn(move |request| {
            let handler = handler.clone();
            async move { Ok::<_, Infallible>(handler.call(peer, request).await) }
        });
        let connection = self.builder.serve_connection_with_upgrades(TokioIo::new(io), service).into_owned();
        if let Err(error) = watcher.watch(connection).await {
            tracing::debug!(%peer, %error, "connection ended with an error");
        }
    }
}
