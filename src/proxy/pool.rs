//! The per-worker pool of HTTP/1.1 connections to `http://` upstreams, on
//! `hyper::client::conn`: each worker thread keeps its idle connections in a table of its
//! own (no lock, no hashing: a short list of upstreams, newest connection first), a
//! connection goes back once its response body has ended, and a request that a connection
//! dropped before sending it is sent again on a new one.

use std::cell::RefCell;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::HOST;
use http::uri::Authority;
use http::{HeaderValue, Request, Response, Uri};
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::request_body::RequestBody;

/// Idle connections kept per upstream and worker; one more is closed instead.
const MAX_IDLE: usize = 512;
/// How long a connection may sit idle before it is closed rather than reused.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

type Sender = SendRequest<RequestBody>;

/// One upstream's idle connections, the newest last.
struct Upstream {
    authority: Authority,
    idle: Vec<(Sender, Instant)>,
}

thread_local! {
    static IDLE: RefCell<Vec<Upstream>> = const { RefCell::new(Vec::new()) };
}

/// Why a request got no response head.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The upstream could not be connected to.
    #[error("connecting to the upstream: {0}")]
    Connect(#[source] std::io::Error),
    /// Connecting took longer than the connect timeout.
    #[error("connecting to the upstream timed out")]
    ConnectTimeout,
    /// The exchange failed (the request body's own error is among its sources).
    #[error(transparent)]
    Http(#[from] hyper::Error),
}

/// Sends `request` (an absolute URI, `http://`) over an idle connection to its authority, or
/// a new one, and returns the response head; its body gives the connection back when it ends.
///
/// # Errors
/// `SendError` when the upstream cannot be reached or the exchange fails.
pub async fn send(
    mut request: Request<RequestBody>,
    connect_timeout: Duration,
) -> Result<Response<Returning>, SendError> {
    let mut parts = std::mem::take(request.uri_mut()).into_parts();
    let authority = parts.authority.take().ok_or(SendError::Connect(std::io::ErrorKind::InvalidInput.into()))?;
    *request.uri_mut() = parts.path_and_query.map_or_else(|| Uri::from_static("/"), Uri::from);
    if !request.headers().contains_key(HOST)
        && let Ok(host) = HeaderValue::from_str(authority.as_str())
    {
        request.headers_mut().insert(HOST, host);
    }
    let mut sender = match checkout(&authority).await {
        Some(sender) => sender,
        None => connect(&authority, connect_timeout).await?,
    };
    let response = match sender.try_send_request(request).await {
        Ok(response) => response,
        Err(mut error) => match error.take_message() {
            // Closed under us before a byte of it went out: a fresh connection takes it.
            Some(request) => {
                sender = connect(&authority, connect_timeout).await?;
                sender.send_request(request).await?
            }
            None => return Err(error.into_error().into()),
        },
    };
    Ok(response.map(|body| Returning { body, lease: Some((authority, sender)) }))
}

/// The newest idle connection to `authority` that is still open and ready, closing any
/// that are not (or have idled past `IDLE_TIMEOUT`, with all older ones).
async fn checkout(authority: &Authority) -> Option<Sender> {
    loop {
        let (mut sender, since) = IDLE
            .try_with(|idle| {
                let mut idle = idle.borrow_mut();
                let upstream = idle.iter_mut().find(|u| u.authority == *authority)?;
                upstream.idle.pop()
            })
            .ok()??;
        if since.elapsed() > IDLE_TIMEOUT {
            let _ = IDLE.try_with(|idle| idle.borrow_mut().retain(|u| u.authority != *authority));
            return None;
        }
        if !sender.is_closed() && sender.ready().await.is_ok() {
            return Some(sender);
        }
    }
}

/// Opens a new connection to `authority` and drives it in a task of its own.
async fn connect(authority: &Authority, timeout: Duration) -> Result<Sender, SendError> {
    let host = authority.host().trim_start_matches('[').trim_end_matches(']');
    let port = authority.port_u16().unwrap_or(80);
    let stream = tokio::time::timeout(timeout, TcpStream::connect((host, port)))
        .await
        .map_err(|_| SendError::ConnectTimeout)?
        .map_err(SendError::Connect)?;
    stream.set_nodelay(true).map_err(SendError::Connect)?;
    let (sender, connection) = http1::Builder::new().handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%error, "upstream connection closed with an error");
        }
    });
    Ok(sender)
}

/// Puts a connection whose exchange has ended back among this worker's idle ones.
fn give_back(authority: Authority, sender: Sender) {
    if sender.is_closed() {
        return;
    }
    let _ = IDLE.try_with(|idle| {
        let mut idle = idle.borrow_mut();
        let index = match idle.iter().position(|u| u.authority == authority) {
            Some(index) => index,
            None => {
                idle.push(Upstream { authority, idle: Vec::new() });
                idle.len() - 1
            }
        };
        let upstream = &mut idle[index].idle;
        if upstream.len() < MAX_IDLE {
            upstream.push((sender, Instant::now()));
        }
    });
}

/// An upstream response body that gives its connection back to the pool once it has ended;
/// one dropped before its end takes the connection with it.
pub struct Returning {
    body: Incoming,
    lease: Option<(Authority, Sender)>,
}

impl Returning {
    fn release(&mut self) {
        if let Some((authority, sender)) = self.lease.take() {
            give_back(authority, sender);
        }
    }
}

impl HttpBody for Returning {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let frame = ready!(Pin::new(&mut this.body).poll_frame(cx));
        match &frame {
            None => this.release(),
            Some(Err(_)) => this.lease = None,
            Some(Ok(_)) => {}
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for Returning {
    fn drop(&mut self) {
        if self.body.is_end_stream() {
            self.release();
        }
    }
}
