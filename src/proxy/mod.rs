//! Forwarding: takes a request that has already been authenticated (it receives only the
//! identity decision's effects on headers), rewrites it for the upstream and streams the
//! answer back. Never verifies tokens.

pub mod forward;
pub mod forwarding;
pub mod frontend;
pub mod headers;
pub mod pool;
pub mod request_body;
pub mod upgrade;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use http::header::HOST;
use http::{HeaderValue, Request, Response, StatusCode, Version};
use hyper::body::Incoming;
use tokio_util::task::TaskTracker;

use crate::body::Body;
use crate::config::Route;
use crate::server::{ClientUpgrade, ConnectionHold};
pub use forward::{ForwardError, HttpClient};
use forwarding::Peer;
use request_body::RequestBody;

/// Where and how one request is forwarded.
pub struct Target<'a> {
    /// The matched route.
    pub route: &'a Route,
    /// The normalized path the route was matched on.
    pub path: &'a str,
    /// The client's host (for `X-Forwarded-Host` and HTTP/2 → HTTP/1.1 `Host`).
    pub host: Option<&'a str>,
    /// The connection the request came on.
    pub peer: &'a Peer,
    /// This request's id.
    pub request_id: HeaderValue,
    /// The `Upgrade` protocol the client asked for, from `headers::remove_hop_by_hop`.
    pub upgrade: Option<HeaderValue>,
    /// Where an upgraded connection's task is tracked.
    pub tunnels: &'a TaskTracker,
    /// Longest pause allowed between two chunks of the request body.
    pub body_read_timeout: Duration,
    /// Where the request body's bytes are counted (for the access log), when it has one.
    pub bytes_in: Option<Arc<AtomicU64>>,
}

/// Forwards `request`, whose hop-by-hop headers are already gone, and returns the
/// upstream's response with the time its head took.
///
/// # Errors
/// A `ForwardError` for an unusable path, a body over the limit, or an unreachable or slow
/// upstream.
pub async fn forward(
    client: &HttpClient,
    mut request: Request<Incoming>,
    target: Target<'_>,
) -> Result<(Response<Body>, Duration), ForwardError> {
    // Only WebSocket upgrades pass: an h2c upgrade would hand the client an HTTP/2 tunnel
    // to the upstream that no later request in it is checked on.
    let client_upgrade = match (target.upgrade, request.extensions_mut().remove::<ClientUpgrade>()) {
        (Some(protocol), Some(client))
            if request.version() == Version::HTTP_11 && protocol.as_bytes().eq_ignore_ascii_case(b"websocket") =>
        {
            headers::restore_upgrade(request.headers_mut(), protocol.clone());
            let hold = request.extensions_mut().remove::<ConnectionHold>();
            Some((protocol, client, hold))
        }
        _ => None,
    };
    if request.version() == Version::HTTP_2 {
        headers::merge_cookies(request.headers_mut());
    }
    let headers = request.headers_mut();
    apply_route_headers(headers, target.route);
    forwarding::set_forwarded(headers, target.peer, target.host);
    headers.insert(headers::X_REQUEST_ID.clone(), target.request_id);
    if !headers.contains_key(HOST)
        && let Some(host) = target.host.and_then(|h| HeaderValue::from_str(h).ok())
    {
        headers.insert(HOST, host);
    }
    let uri = forward::upstream_uri(&target.route.upstream, target.route, target.path, request.uri().query())?;
    let (mut parts, incoming) = request.into_parts();
    parts.uri = uri;
    let outbound = Request::from_parts(
        parts,
        RequestBody::new(incoming, target.route.max_body, target.body_read_timeout).counting(target.bytes_in),
    );
    let started = Instant::now();
    let via = client.pick(&target.route.upstream, client_upgrade.is_some());
    let mut response = forward::send(via, outbound, target.route.timeout).await?;
    let elapsed = started.elapsed();
    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
        let Some((protocol, client_upgrade, hold)) = client_upgrade else {
            tracing::warn!("upstream switched protocols without being asked to");
            return Err(ForwardError::BadGateway);
        };
        let answered = response.headers().get(http::header::UPGRADE);
        if !answered.is_some_and(|p| p.as_bytes().eq_ignore_ascii_case(protocol.as_bytes())) {
            tracing::warn!("upstream switched to another protocol than the one asked for");
            return Err(ForwardError::BadGateway);
        }
        upgrade::splice(client_upgrade, &mut response, target.tunnels, hold);
    } else {
        headers::remove_hop_by_hop(response.headers_mut());
    }
    Ok((response, elapsed))
}

/// The route's header control: credentials kept or removed, then its removals and additions.
fn apply_route_headers(headers: &mut http::HeaderMap, route: &crate::config::Route) {
    if !route.pass_credentials {
        headers::remove_credentials(headers);
    }
    for name in &route.remove_request_headers {
        headers.remove(name);
    }
    for (name, value) in &route.add_request_headers {
        headers.insert(name.clone(), value.clone());
    }
}
