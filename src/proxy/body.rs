//! Body types: the one response body type (`Body`), small constructors for the gateway's
//! own answers, and `RequestBody`, the streaming inbound body with an optional size limit.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;

/// Any error a body can fail with.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Every response the gateway sends.
pub type Body = BoxBody<Bytes, BoxError>;

/// A complete body.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).map_err(|never| match never {}).boxed()
}

/// An empty body.
pub fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed()
}

/// A JSON response the gateway writes itself (`Cache-Control: no-store`).
pub fn json(status: http::StatusCode, text: impl Into<Bytes>) -> http::Response<Body> {
    let mut response = http::Response::new(full(text));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    headers.insert(http::header::CACHE_CONTROL, http::HeaderValue::from_static("no-store"));
    response
}

/// A streamed upstream response body, boxed into `Body`.
pub fn stream(incoming: Incoming) -> Body {
    incoming.map_err(BoxError::from).boxed()
}

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
