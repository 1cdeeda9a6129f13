//! Accepting connections: HTTP/1.1 (hyper's, parked bufferless when idle, upgrades handed
//! over by hand) or HTTP/2 (hyper-util's auto builder) by the first bytes, optional TLS,
//! every limit that keeps a connection from being held for free (at most `max_connections`
//! open, deadlines for the TLS handshake, the first bytes and the request head, HTTP/2
//! keep-alive pings, an idle timeout), graceful shutdown, freed memory given back after
//! waves of closes, and (for the proxy listener) worker threads that each run a
//! single-threaded runtime, so a request and its upstream connection stay on one core.
//! Knows nothing about auth, routes or headers.

mod guard;
mod rewind;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_util::task::TaskTracker;
use tokio_util::task::task_tracker::TaskTrackerToken;

use crate::body::Body;
use crate::metrics::ConnectionCounters;
use guard::{Activity, FirstBytes};
pub use rewind::{ClientIo, ClientUpgrade};
use rewind::{Protocol, Rewind};

/// How long an accepted connection over `max_connections` waits for a slot before it is
/// closed.
const OVER_LIMIT_WAIT: Duration = Duration::from_millis(100);
/// Connections over the limit allowed to wait at once; past this they are closed at once.
const MAX_WAITING: usize = 64;
/// How long an HTTP/1.1 connection goes without a request before hyper's buffers for it
/// are let go (its socket stays open until `idle_timeout`).
const PARK_AFTER: Duration = Duration::from_secs(1);

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

/// How often `release_memory_after_waves` reads the connection counters.
const TRIM_CHECK: Duration = Duration::from_secs(2);
/// Connections closed or parked since the last release that make another worth its cost.
const TRIM_WAVE: u64 = 1000;

/// Returns freed heap to the system (`memory::release_free_heap`, on a blocking thread) each
/// time another `TRIM_WAVE` connections have closed or parked, so the memory a burst of
/// connections took goes back once they are gone or idle. Runs until dropped.
pub async fn release_memory_after_waves(counters: Arc<ConnectionCounters>) {
    let mut released_at = 0u64;
    loop {
        tokio::time::sleep(TRIM_CHECK).await;
        let open = u64::try_from(counters.open.load(Relaxed)).unwrap_or(0);
        let closed = counters.accepted.load(Relaxed).saturating_sub(open);
        let gone = closed + counters.parks.load(Relaxed);
        if gone >= released_at + TRIM_WAVE {
            released_at = gone;
            let _ = tokio::task::spawn_blocking(crate::memory::release_free_heap).await;
        }
    }
}

/// A request handler: given the connection's far end and the request, produce the response.
pub trait Handler: Clone + Send + Sync + 'static {
    /// Handles one request.
    fn call(&self, remote: &Remote, request: Request<Incoming>) -> impl Future<Output = Response<Body>> + Send;
}

/// The far end of a connection, as its requests see it: worked out once per connection.
pub struct Remote {
    /// The peer's socket address.
    pub addr: SocketAddr,
    /// Its IP address as header text, an IPv4-mapped IPv6 address written as IPv4.
    pub address: http::HeaderValue,
}

impl Remote {
    /// The far end at `addr`.
    pub fn new(addr: SocketAddr) -> Self {
        let text = addr.ip().to_canonical().to_string();
        Remote { addr, address: http::HeaderValue::try_from(text).unwrap_or(http::HeaderValue::from_static("unknown")) }
    }
}

/// A connection's handler, far end and requests in flight, shared by its requests.
struct Served<H> {
    handler: H,
    remote: Remote,
    activity: Arc<Activity>,
    slot: Arc<Slot>,
    /// Where the client's side goes once a `101` has been answered (HTTP/1.1).
    upgrade: Mutex<Option<oneshot::Sender<Box<dyn ClientIo>>>>,
}

/// A request's answer on its way, boxed.
type Answer = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

/// Why a connection's hyper connection was asked to end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// It was not: the client closed, or an error, or `Connection: close`.
    Closed,
    /// Shutdown or `idle_timeout`: the socket closes too.
    Stopped,
    /// Idle for `PARK_AFTER`: the socket stays open.
    Parked,
}

/// The hyper service for one of `served`'s hyper connections. A request asking for an
/// upgrade carries the connection's slot (`ConnectionHold`) and a `ClientUpgrade`.
fn service<H: Handler>(
    served: &Arc<Served<H>>,
) -> impl hyper::service::Service<Request<Incoming>, Response = Response<Body>, Error = Infallible, Future = Answer> + use<H>
{
    let served = served.clone();
    service_fn(move |mut request: Request<Incoming>| {
        let served = served.clone();
        let in_flight = served.activity.begin();
        let mut upgrade = None;
        if request.headers().contains_key(http::header::UPGRADE) {
            let (client, sender) = ClientUpgrade::new();
            request.extensions_mut().insert(ConnectionHold { _slot: served.slot.clone() });
            request.extensions_mut().insert(client);
            upgrade = Some(sender);
        }
        // In flight until the response body has been sent (or dropped), not just its head.
        // Boxed: hyper keeps room for one service future per connection for as long as the
        // connection lives, so an idle one holds a pointer rather than a whole future.
        let future: Answer = Box::pin(async move {
            let response = served.handler.call(&served.remote, request).await;
            if response.status() == http::StatusCode::SWITCHING_PROTOCOLS
                && let Some(sender) = upgrade
                && let Ok(mut slot) = served.upgrade.lock()
            {
                *slot = Some(sender);
            }
            Ok::<_, Infallible>(response.map(|body| in_flight.hold(body)))
        });
        future
    })
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
    let shutdown = Shutdown::new();
    accept_until(&listener, &options, stop, |stream, peer, slot| {
        let ticket = shutdown.ticket(slot);
        tokio::spawn(connections.serve(stream, peer, handler.clone(), ticket));
    })
    .await;
    drop(listener);
    shutdown.finish(&options).await;
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
    let shutdown = Shutdown::new();
    let mut next = 0usize;
    accept_until(&listener, &options, stop, |stream, peer, slot| {
        let Ok(stream) = stream.into_std() else { return };
        let worker = &pool[next % pool.len()];
        next = next.wrapping_add(1);
        let _ = worker.connections.send(Accepted { stream, peer, ticket: shutdown.ticket(slot) });
    })
    .await;
    drop(listener);
    let (mut aborts, mut threads) = (Vec::new(), Vec::new());
    for worker in pool {
        drop(worker.connections);
        aborts.push(worker.abort);
        threads.push(worker.thread);
    }
    shutdown.finish(&options).await;
    for abort in aborts {
        let _ = abort.send(());
    }
    let _ = tokio::task::spawn_blocking(move || threads.into_iter().for_each(|t| drop(t.join()))).await;
}

/// Accepts until `stop`, handing each connection that gets one of the `max_connections`
/// slots to `dispatch`. One that finds none free waits (off the accept loop, at most
/// `MAX_WAITING` at once) up to `OVER_LIMIT_WAIT` for one, and is closed if none frees up.
async fn accept_until(
    listener: &TcpListener,
    options: &ServeOptions,
    stop: impl Future<Output = ()>,
    mut dispatch: impl FnMut(TcpStream, SocketAddr, Slot),
) {
    let slots = Arc::new(Semaphore::new(options.limits.max_connections));
    let waiting = Arc::new(Semaphore::new(MAX_WAITING));
    let (waited, mut seated) = mpsc::channel::<(TcpStream, SocketAddr, Slot)>(MAX_WAITING);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => return,
            Some((stream, peer, slot)) = seated.recv() => dispatch(stream, peer, slot),
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    match Slot::try_take(&slots, &options.counters) {
                        Some(slot) => dispatch(stream, peer, slot),
                        None => wait_for_slot(stream, peer, &slots, &waiting, &waited, &options.counters),
                    }
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

/// Lets a connection over the limit wait for a slot in a task of its own, handing it back
/// to the accept loop through `seat` if one frees up in time; closes it (counted as refused)
/// otherwise, or at once when too many are waiting already.
fn wait_for_slot(
    stream: TcpStream,
    peer: SocketAddr,
    slots: &Arc<Semaphore>,
    waiting: &Arc<Semaphore>,
    seat: &mpsc::Sender<(TcpStream, SocketAddr, Slot)>,
    counters: &Arc<ConnectionCounters>,
) {
    let Ok(turn) = waiting.clone().try_acquire_owned() else {
        counters.refused.fetch_add(1, Relaxed);
        return;
    };
    let (slots, seat, counters) = (slots.clone(), seat.clone(), counters.clone());
    tokio::spawn(async move {
        let permit = tokio::time::timeout(OVER_LIMIT_WAIT, slots.acquire_owned()).await.ok().and_then(Result::ok);
        drop(turn);
        match permit {
            Some(permit) => drop(seat.send((stream, peer, Slot::new(permit, &counters))).await),
            None => drop(counters.refused.fetch_add(1, Relaxed)),
        }
    });
}

/// One of the `max_connections` slots, held by a connection while it is open.
struct Slot {
    _permit: OwnedSemaphorePermit,
    counters: Arc<ConnectionCounters>,
}

impl Slot {
    /// A free slot now, if there is one.
    fn try_take(slots: &Arc<Semaphore>, counters: &Arc<ConnectionCounters>) -> Option<Slot> {
        slots.clone().try_acquire_owned().ok().map(|permit| Slot::new(permit, counters))
    }

    fn new(permit: OwnedSemaphorePermit, counters: &Arc<ConnectionCounters>) -> Slot {
        counters.accepted.fetch_add(1, Relaxed);
        counters.open.fetch_add(1, Relaxed);
        Slot { _permit: permit, counters: counters.clone() }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.counters.open.fetch_sub(1, Relaxed);
    }
}

/// Graceful shutdown of a listener's connections: each holds a ticket, and `finish` asks
/// them all to close and waits for them (and for detached tasks) within the grace timeout.
struct Shutdown {
    stop: watch::Sender<bool>,
    open: TaskTracker,
}

/// What a connection needs to take part in shutdown, and the slot it holds.
struct Ticket {
    stop: watch::Receiver<bool>,
    _tracked: TaskTrackerToken,
    slot: Arc<Slot>,
}

/// Keeps a connection's slot among the `max_connections` taken while it lives: an upgrade
/// request carries one in its extensions, so the tunnel that outlives the HTTP connection
/// still counts (the proxy moves it into the tunnel's task).
#[derive(Clone)]
pub struct ConnectionHold {
    _slot: Arc<Slot>,
}

impl Shutdown {
    fn new() -> Self {
        Shutdown { stop: watch::channel(false).0, open: TaskTracker::new() }
    }

    fn ticket(&self, slot: Slot) -> Ticket {
        Ticket { stop: self.stop.subscribe(), _tracked: self.open.token(), slot: Arc::new(slot) }
    }

    async fn finish(self, options: &ServeOptions) {
        let open = self.open.len();
        self.stop.send_replace(true);
        self.open.close();
        let detached = &options.detached;
        let everything = async {
            self.open.wait().await;
            detached.close();
            detached.wait().await;
        };
        if tokio::time::timeout(options.grace_timeout, everything).await.is_err() {
            let tunnels = detached.len();
            tracing::warn!(open, tunnels, "grace timeout passed with requests still in flight; closing them");
        }
    }
}

/// A connection accepted on the listener's runtime, on its way to a worker.
struct Accepted {
    stream: std::net::TcpStream,
    peer: SocketAddr,
    ticket: Ticket,
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
                    Some(Accepted { stream, peer, ticket }) => match TcpStream::from_std(stream) {
                        Ok(stream) => {
                            tasks.spawn(connections.serve(stream, peer, handler.clone(), ticket));
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

/// Serves single connections: the shared auto builder plus TLS and the limits.
#[derive(Clone)]
struct Connections {
    /// HTTP/1.1 connections.
    http1: Arc<http1::Builder>,
    /// HTTP/2 connections (the auto builder, which also reads the preface).
    builder: Arc<auto::Builder<TokioExecutor>>,
    tls: Option<TlsAcceptor>,
    handshake_timeout: Duration,
    limits: ConnectionLimits,
    counters: Arc<ConnectionCounters>,
}

impl Connections {
    fn new(options: &ServeOptions) -> Self {
        let limits = options.limits.clone();
        let mut http1 = http1::Builder::new();
        http1
            .timer(TokioTimer::new())
            .header_read_timeout(options.header_read_timeout)
            .max_buf_size(options.max_header_bytes);
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http2()
            .timer(TokioTimer::new())
            .keep_alive_interval(limits.http2_keepalive_interval)
            .keep_alive_timeout(limits.http2_keepalive_timeout)
            .max_header_list_size(u32::try_from(options.max_header_bytes).unwrap_or(u32::MAX));
        Connections {
            http1: Arc::new(http1),
            builder: Arc::new(builder),
            tls: options.tls.clone(),
            handshake_timeout: options.tls_handshake_timeout,
            limits,
            counters: options.counters.clone(),
        }
    }

    fn serve<H: Handler>(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
        handler: H,
        ticket: Ticket,
    ) -> impl Future<Output = ()> + Send + 'static {
        let this = self.clone();
        async move {
            let first_bytes = this.limits.first_byte_timeout;
            match &this.tls {
                None => {
                    let io = FirstBytes::new(stream, first_bytes, this.counters.clone());
                    this.serve_io(io, peer, handler, ticket).await;
                }
                Some(acceptor) => {
                    match Box::pin(tokio::time::timeout(this.handshake_timeout, acceptor.accept(stream))).await {
                        Ok(Ok(tls_stream)) => {
                            let io = FirstBytes::new(tls_stream, first_bytes, this.counters.clone());
                            // Boxed, so a plaintext connection's task is not sized for TLS state.
                            Box::pin(this.serve_io(io, peer, handler, ticket)).await;
                        }
                        Ok(Err(error)) => tracing::debug!(%peer, %error, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                }
            }
        }
    }

    /// Serves one connection until it ends: closed gracefully at shutdown, or once no
    /// request has been in flight (head or body) for `idle_timeout`. Its first bytes decide
    /// between HTTP/1.1 (`serve_http1`) and HTTP/2 (`serve_http2`).
    async fn serve_io<I, H>(&self, io: I, peer: SocketAddr, handler: H, ticket: Ticket)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        H: Handler,
    {
        let served = Arc::new(Served {
            handler,
            remote: Remote::new(peer),
            activity: Arc::new(Activity::default()),
            slot: ticket.slot.clone(),
            upgrade: Mutex::new(None),
        });
        let mut io = Rewind::new(io);
        match io.sniff().await {
            Ok(Protocol::Http1) => self.serve_http1(io, served, ticket).await,
            // Boxed, so an HTTP/1.1 connection's task is not sized for HTTP/2's state.
            Ok(Protocol::Http2) => Box::pin(self.serve_http2(io, served, ticket)).await,
            Ok(Protocol::Closed) => {}
            Err(error) => tracing::debug!(%peer, %error, "connection ended before its first request"),
        }
    }

    /// HTTP/1.1, one hyper connection at a time: after `PARK_AFTER` without a request in
    /// flight, hyper's connection (its read and write buffers, kilobytes each) is closed
    /// without touching the socket, which then waits bufferless for the client's next bytes
    /// and a new hyper connection. After a `101`, the socket goes to the upgrade's tunnel.
    async fn serve_http1<I, H>(&self, mut io: Rewind<I>, served: Arc<Served<H>>, mut ticket: Ticket)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        H: Handler,
    {
        let peer = served.remote.addr;
        let opened = tokio::time::Instant::now();
        let park_after = PARK_AFTER.min(self.limits.idle_timeout);
        loop {
            // Boxed, so the task keeps only a pointer to it (and nothing once parked).
            let mut connection = Box::new(self.http1.serve_connection(TokioIo::new(io), service(&served)));
            let mut end = End::Closed;
            let result = loop {
                tokio::select! {
                    result = std::future::poll_fn(|cx| connection.poll_without_shutdown(cx)) => break result,
                    _ = ticket.stop.wait_for(|stop| *stop), if end == End::Closed => {
                        Pin::new(&mut *connection).graceful_shutdown();
                        end = End::Stopped;
                    }
                    () = served.activity.idle_for(park_after, opened), if end == End::Closed => {
                        Pin::new(&mut *connection).graceful_shutdown();
                        end = if park_after < self.limits.idle_timeout {
                            End::Parked
                        } else {
                            self.counters.idle_closed.fetch_add(1, Relaxed);
                            End::Stopped
                        };
                    }
                }
            };
            if let Err(error) = result {
                tracing::debug!(%peer, %error, "connection ended with an error");
                return;
            }
            let parts = connection.into_parts();
            io = parts.io.into_inner();
            io.put_back(parts.read_buf);
            if let Some(upgrade) = served.upgrade.lock().ok().and_then(|mut u| u.take()) {
                let _ = upgrade.send(Box::new(io));
                return;
            }
            if end != End::Parked {
                return;
            }
            if !io.has_unread() && !self.wait_parked(&mut io, &served, &mut ticket, opened).await {
                return;
            }
        }
    }

    /// Waits, holding no buffer, for a parked connection's next bytes: `false` when it is
    /// to close instead (the peer left, shutdown, or `idle_timeout`).
    async fn wait_parked<I, H>(
        &self,
        io: &mut Rewind<I>,
        served: &Served<H>,
        ticket: &mut Ticket,
        opened: tokio::time::Instant,
    ) -> bool
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        H: Handler,
    {
        self.counters.parked.fetch_add(1, Relaxed);
        self.counters.parks.fetch_add(1, Relaxed);
        let more = tokio::select! {
            read = io.wait_for_bytes() => read.unwrap_or(false),
            _ = ticket.stop.wait_for(|stop| *stop) => false,
            () = served.activity.idle_for(self.limits.idle_timeout, opened) => {
                self.counters.idle_closed.fetch_add(1, Relaxed);
                false
            }
        };
        self.counters.parked.fetch_sub(1, Relaxed);
        more
    }

    /// HTTP/2 (prior knowledge or ALPN). A client that does not finish the graceful close
    /// (never acknowledges the GOAWAY's ping) is dropped once it has had no request in flight
    /// for `http2_keepalive_timeout` more.
    async fn serve_http2<I, H>(&self, io: Rewind<I>, served: Arc<Served<H>>, mut ticket: Ticket)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        H: Handler,
    {
        let peer = served.remote.addr;
        let activity = served.activity.clone();
        let mut connection =
            Box::pin(self.builder.serve_connection_with_upgrades(TokioIo::new(io), service(&served)).into_owned());
        let (mut closing, mut closing_idle) = (false, false);
        let (opened, mut closing_since) = (tokio::time::Instant::now(), tokio::time::Instant::now());
        let result = loop {
            tokio::select! {
                result = connection.as_mut() => break result,
                _ = ticket.stop.wait_for(|stop| *stop), if !closing => {
                    connection.as_mut().graceful_shutdown();
                    closing = true;
                }
                () = activity.idle_for(self.limits.idle_timeout, opened), if !closing => {
                    self.counters.idle_closed.fetch_add(1, Relaxed);
                    connection.as_mut().graceful_shutdown();
                    (closing, closing_idle, closing_since) = (true, true, tokio::time::Instant::now());
                }
                // A request that slipped in as the GOAWAY went out still finishes: only a
                // connection that stays without one is dropped.
                () = activity.idle_for(self.limits.http2_keepalive_timeout, closing_since), if closing_idle => {
                    tracing::debug!(%peer, "an idle connection did not close gracefully in time; dropping it");
                    return;
                }
            }
        };
        if let Err(error) = result {
            tracing::debug!(%peer, %error, "connection ended with an error");
        }
    }
}
