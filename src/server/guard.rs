//! What keeps a connection from being held for free: `FirstBytes`, an I/O wrapper that
//! fails the connection when its first bytes (enough to tell HTTP/2's preface from an
//! HTTP/1.1 request) do not come within a deadline, and `Activity`, the count of a
//! connection's requests in flight, whose `idle_for` resolves once there has been none for
//! a while.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::BodyExt;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::body::{Body, BoxError};
use crate::metrics::ConnectionCounters;

/// The HTTP/2 connection preface (RFC 9113 §3.4).
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// A connection's I/O until its protocol is known: the bytes seen so far must either stop
/// matching the HTTP/2 preface (HTTP/1.1) or complete it before the deadline.
pub struct FirstBytes<I> {
    inner: I,
    /// `Some` while the protocol is not known yet.
    deadline: Option<Pin<Box<Sleep>>>,
    seen: usize,
    counters: Arc<ConnectionCounters>,
}

impl<I> FirstBytes<I> {
    /// `inner`, which must show its protocol within `timeout` (a timeout is counted).
    pub fn new(inner: I, timeout: Duration, counters: Arc<ConnectionCounters>) -> Self {
        FirstBytes { inner, deadline: Some(Box::pin(tokio::time::sleep(timeout))), seen: 0, counters }
    }

    /// Whether the deadline passed before the protocol was known.
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        self.deadline.as_mut().is_some_and(|deadline| deadline.as_mut().poll(cx).is_ready())
    }

    /// Looks at newly read bytes; once they decide the protocol, the deadline is gone.
    fn observe(&mut self, bytes: &[u8]) {
        if self.deadline.is_none() {
            return;
        }
        let expected = &PREFACE[self.seen.min(PREFACE.len())..];
        let n = bytes.len().min(expected.len());
        self.seen += n;
        if bytes[..n] != expected[..n] || self.seen >= PREFACE.len() || bytes.is_empty() {
            self.deadline = None;
        }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for FirstBytes<I> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                this.observe(&buf.filled()[before..]);
                Poll::Ready(Ok(()))
            }
            Poll::Pending if this.expired(cx) => {
                this.deadline = None;
                this.counters.first_byte_timeouts.fetch_add(1, Ordering::Relaxed);
                Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "no request within first_byte_timeout")))
            }
            other => other,
        }
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for FirstBytes<I> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// A connection's requests in flight, kept with two atomics (no lock on the request path):
/// how many there are, and when the last one ended.
pub struct Activity {
    in_flight: AtomicUsize,
    /// When the last request ended (or the connection began), ms after `epoch`.
    last_end_ms: AtomicU64,
    epoch: Instant,
}

impl Default for Activity {
    fn default() -> Self {
        Activity { in_flight: AtomicUsize::new(0), last_end_ms: AtomicU64::new(0), epoch: Instant::now() }
    }
}

impl Activity {
    /// A request started; the returned guard ends it when dropped.
    pub fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(self.clone())
    }

    /// Resolves once no request has been in flight for `idle`, counting from `from` at the
    /// earliest (checked again every quarter of `idle` while one is).
    pub async fn idle_for(&self, idle: Duration, from: Instant) {
        loop {
            if self.in_flight.load(Ordering::Acquire) > 0 {
                tokio::time::sleep(idle / 4).await;
                continue;
            }
            let last_end = self.epoch + Duration::from_millis(self.last_end_ms.load(Ordering::Acquire));
            let deadline = last_end.max(from) + idle;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

/// One request in flight; ends when dropped.
pub struct InFlight(Arc<Activity>);

impl InFlight {
    /// `body`, keeping the request in flight until it has been sent or dropped.
    pub fn hold(self, body: Body) -> Body {
        Held { body, _in_flight: self }.boxed()
    }
}

/// A response body and the request it keeps in flight.
struct Held {
    body: Body,
    _in_flight: InFlight,
}

impl HttpBody for Held {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let activity = &self.0;
        let ended = u64::try_from(activity.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        activity.last_end_ms.store(ended, Ordering::Release);
        activity.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_preface_or_anything_else_decides() {
        let first = |()| FirstBytes::new((), Duration::from_secs(1), Arc::default());
        let mut h1 = first(());
        h1.observe(b"GET / HTTP/1.1\r\n");
        assert!(h1.deadline.is_none(), "not the preface: HTTP/1.1");
        let mut h2 = first(());
        h2.observe(&PREFACE[..10]);
        assert!(h2.deadline.is_some(), "part of the preface decides nothing");
        h2.observe(&PREFACE[10..]);
        assert!(h2.deadline.is_none(), "the whole preface: HTTP/2");
        let mut tricky = first(());
        tricky.observe(b"PRI * HTTP/1.1");
        assert!(tricky.deadline.is_none(), "a prefix that stops matching");
    }
}
