//! One connection, from its first bytes to its close: TLS, the protocol sniff, HTTP/1.1
//! served by hyper and parked bufferless when idle (upgrades handed over by hand), HTTP/2 by
//! hyper-util's auto builder, the idle and shutdown closes; plus what a handler is given
//! (`Handler`, `Remote`) and the slot a connection holds among `max_connections`.

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
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot, watch};
use tokio_rustls::TlsAcceptor;
use tokio_util::task::task_tracker::TaskTrackerToken;

use super::guard::{Activity, FirstBytes};
use super::options::{ConnectionLimits, ServeOptions};
use super::rewind::{ClientIo, ClientUpgrade, Protocol, Rewind};
use crate::body::Body;
use crate::metrics::ConnectionCounters;

/// How long an HTTP/1.1 connection goes without a request before hyper's buffers for it
/// are let go (its socket stays open until `idle_timeout`).
const PARK_AFTER: Duration = Duration::from_secs(1);

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

/// One of the `max_connections` slots, held by a connection while it is open.
pub(super) struct Slot {
    _permit: OwnedSemaphorePermit,
    counters: Arc<ConnectionCounters>,
}

impl Slot {
    /// A free slot now, if there is one.
    pub(super) fn try_take(slots: &Arc<Semaphore>, counters: &Arc<ConnectionCounters>) -> Option<Slot> {
        slots.clone().try_acquire_owned().ok().map(|permit| Slot::new(permit, counters))
    }

    pub(super) fn new(permit: OwnedSemaphorePermit, counters: &Arc<ConnectionCounters>) -> Slot {
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

/// What a connection needs to take part in shutdown, and the slot it holds.
pub(super) struct Ticket {
    pub(super) stop: watch::Receiver<bool>,
    pub(super) _tracked: TaskTrackerToken,
    pub(super) slot: Arc<Slot>,
}

/// Keeps a connection's slot among the `max_connections` taken while it lives: an upgrade
/// request carries one in its extensions, so the tunnel that outlives the HTTP connection
/// still counts (the proxy moves it into the tunnel's task).
#[derive(Clone)]
pub struct ConnectionHold {
    _slot: Arc<Slot>,
}

/// Serves single connections: the shared auto builder plus TLS and the limits.
#[derive(Clone)]
pub(super) struct Connections {
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
    pub(super) fn new(options: &ServeOptions) -> Self {
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

    pub(super) fn serve<H: Handler>(
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
