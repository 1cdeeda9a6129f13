//! `RequestBody`: the inbound body on its way upstream, streamed untouched but failing once
//! more than the route's `max_body` has passed, or when the client pauses longer than
//! `body_read_timeout` between two chunks.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::time::Sleep;

use crate::body::BoxError;

/// The request body exceeded the route's limit while streaming.
#[derive(Debug, thiserror::Error)]
#[error("request body exceeds the route's max_body")]
pub struct BodyTooLarge;

/// The client paused longer than `body_read_timeout` between two chunks of its body.
#[derive(Debug, thiserror::Error)]
#[error("request body stalled past body_read_timeout")]
pub struct BodyTimeout;

/// The inbound request body, streamed to the upstream, failing once more than `limit` bytes
/// have passed or the client pauses longer than `idle` between chunks.
#[derive(Debug)]
pub struct RequestBody {
    inner: Incoming,
    remaining: Option<u64>,
    idle: Duration,
    /// Made at the first wait for a chunk (a body that is all there never needs one).
    stall: Option<Pin<Box<Sleep>>>,
    /// Whether the upstream asked for the next chunk and the client has not sent it: the
    /// clock runs only then, not while the upstream is slow to take what it was sent.
    waiting: bool,
    /// Bytes passed so far, for whoever reads them after the body is gone.
    counted: Option<Arc<AtomicU64>>,
}

impl RequestBody {
    /// Wraps `inner`, allowing at most `limit` bytes when given and `idle` between chunks.
    pub fn new(inner: Incoming, limit: Option<u64>, idle: Duration) -> Self {
        RequestBody { inner, remaining: limit, idle, stall: None, waiting: false, counted: None }
    }

    /// Adds every data byte that passes to `counter`.
    pub fn counting(mut self, counter: Option<Arc<AtomicU64>>) -> Self {
        self.counted = counter;
        self
    }

    /// Whether the client has kept the upstream waiting too long for the next chunk (the
    /// clock starts at the first poll that finds nothing).
    fn stalled(&mut self, cx: &mut Context<'_>) -> bool {
        if !self.waiting {
            self.waiting = true;
            let deadline = tokio::time::Instant::now() + self.idle;
            match self.stall.as_mut() {
                Some(stall) => stall.as_mut().reset(deadline),
                None => self.stall = Some(Box::pin(tokio::time::sleep_until(deadline))),
            }
        }
        self.stall.as_mut().is_some_and(|stall| stall.as_mut().poll(cx).is_ready())
    }
}

impl HttpBody for RequestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let frame = match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => frame,
            Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending if self.stalled(cx) => return Poll::Ready(Some(Err(BodyTimeout.into()))),
            Poll::Pending => return Poll::Pending,
        };
        self.waiting = false;
        if let (Some(counted), Some(data)) = (&self.counted, frame.data_ref()) {
            counted.fetch_add(data.len() as u64, Ordering::Relaxed);
        }
        if let (Some(remaining), Some(data)) = (self.remaining.as_mut(), frame.data_ref()) {
            let len = data.len() as u64;
            if len > *remaining {
                return Poll::Ready(Some(Err(BodyTooLarge.into())));
            }
            *remaining -= len;
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
