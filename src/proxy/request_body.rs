//! `RequestBody`: the inbound body on its way upstream, streamed untouched but failing once
//! more than the route's `max_body` has passed.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;

use crate::body::BoxError;

/// The request body exceeded the route's limit while streaming.
#[derive(Debug, thiserror::Error)]
#[error("request body exceeds the route's max_body")]
pub struct BodyTooLarge;

/// The inbound request body, streamed to the upstream, failing once more than `limit` bytes
/// have passed.
#[derive(Debug)]
pub struct RequestBody {
    inner: Incoming,
    remaining: Option<u64>,
}

impl RequestBody {
    /// Wraps `inner`, allowing at most `limit` bytes when given.
    pub fn new(inner: Incoming, limit: Option<u64>) -> Self {
        RequestBody { inner, remaining: limit }
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
            Poll::Pending => return Poll::Pending,
        };
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
