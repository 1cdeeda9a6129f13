//! The one response body type every listener sends (`Body`), and small constructors for
//! the gateway's own answers and for streamed upstream bodies. No I/O, no policy.

use bytes::Bytes;
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
