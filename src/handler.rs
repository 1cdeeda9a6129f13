//! The proxy listener's request pipeline: strip client identity headers, normalize the
//! path, route, authenticate and authorize, then forward. Every gateway answer comes back
//! as a `Reject`, turned into a response in `error.rs`; every request is counted and logged
//! here, once.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use http::header::{ACCEPT, CONTENT_LENGTH, HOST};
use http::{HeaderMap, HeaderValue, Method, Request, Response};
use hyper::body::Incoming;

use crate::auth::{Outcome, policy};
use crate::config::{AuthMode, Route};
use crate::error::Reject;
use crate::path;
use crate::proxy::body::Body;
use crate::proxy::headers::{self, Peer, X_FORWARDED_HOST, X_FORWARDED_PROTO, X_REQUEST_ID};
use crate::proxy::{self, HttpClient, Target};
use crate::server::Handler;
use crate::state::AppState;
use crate::users;

static SEC_FETCH_DEST: http::HeaderName = http::HeaderName::from_static("sec-fetch-dest");

/// The proxy listener's handler: shared state plus this worker's upstream client.
#[derive(Clone)]
pub struct ProxyHandler {
    state: Arc<AppState>,
    client: HttpClient,
}

impl ProxyHandler {
    /// A handler over `state` forwarding through `client`.
    pub fn new(state: Arc<AppState>, client: HttpClient) -> Self {
        ProxyHandler { state, client }
    }
}

impl Handler for ProxyHandler {
    async fn call(&self, peer: SocketAddr, request: Request<Incoming>) -> Response<Body> {
        handle(&self.state, &self.client, peer, request).await
    }
}

/// What the access log and metrics learn about a request as it goes.
#[derive(Default)]
struct Trace {
    route: Option<usize>,
    auth: &'static str,
    path: String,
}

async fn handle(
    state: &AppState,
    client: &HttpClient,
    peer_addr: SocketAddr,
    request: Request<Incoming>,
) -> Response<Body> {
    let started = Instant::now();
    let peer = Peer { ip: peer_addr.ip(), trusted: state.is_trusted(peer_addr.ip()), scheme: state.scheme };
    let request_id = request_id(state, &peer, request.headers());
    let method = request.method().clone();
    let mut trace = Trace { auth: "-", ..Trace::default() };
    let mut response = process(state, client, &peer, request, request_id.clone(), &mut trace)
        .await
        .unwrap_or_else(Reject::into_response);
    response.headers_mut().insert(X_REQUEST_ID.clone(), request_id.clone());
    let status = response.status().as_u16();
    state.metrics.request(trace.route, status);
    tracing::info!(
        target: "clerk_gateway::access",
        %method,
        path = %trace.path,
        status,
        route = trace.route.map_or(-1, |r| r as i64),
        auth = trace.auth,
        ms = started.elapsed().as_secs_f64() * 1000.0,
        request_id = request_id.to_str().unwrap_or("-"),
        "request"
    );
    response
}

async fn process(
    state: &AppState,
    client: &HttpClient,
    peer: &Peer,
    mut request: Request<Incoming>,
    request_id: HeaderValue,
    trace: &mut Trace,
) -> Result<Response<Body>, Reject> {
    headers::strip_identity(request.headers_mut(), &state.headers);
    // Before anything is added: a client must not be able to name our headers in Connection.
    let upgrade = headers::remove_hop_by_hop(request.headers_mut());
    if request.headers().get_all(HOST).iter().nth(1).is_some() {
        return Err(Reject::BadRequest("duplicate-host"));
    }
    let path = path::normalize(request.uri().path()).map_err(|_| Reject::BadRequest("invalid-path"))?.into_owned();
    trace.path.clone_from(&path);
    if let Some(endpoint) = state.webhook.as_ref().filter(|w| w.path == path) {
        trace.route = Some(state.routes.routes().len());
        return endpoint.handle(request, &state.users, &state.clock, &state.metrics).await;
    }
    let host = headers::request_host(request.headers(), request.uri()).map(str::to_owned);
    let host_name = host.as_deref().map(headers::host_without_port);
    let route = state.routes.find(host_name.as_deref(), request.method(), &path).ok_or(Reject::NotFound)?;
    trace.route = Some(route.index);
    check_declared_length(request.headers(), route)?;
    authorize(state, peer, &mut request, route, trace).await?;
    let target =
        Target { route, path: &path, host: host.as_deref(), peer, request_id, upgrade, tunnels: &state.tunnels };
    let (response, elapsed) = proxy::forward(client, request, target).await?;
    state.metrics.upstream_latency(route.index, elapsed);
    Ok(response)
}

/// Applies the route's auth mode and rules, setting the identity headers on success.
async fn authorize(
    state: &AppState,
    peer: &Peer,
    request: &mut Request<Incoming>,
    route: &Route,
    trace: &mut Trace,
) -> Result<(), Reject> {
    if route.auth == AuthMode::Public {
        return Ok(());
    }
    let outcome = state.auth.authenticate(request.headers()).await;
    state.metrics.auth_outcome(outcome.metric_index());
    match outcome {
        Outcome::SignedIn(identity) => {
            trace.auth = "signed-in";
            let profile = state.users.lookup(&identity.user_id).await;
            if route.auth == AuthMode::Required {
                let metadata = users::public_metadata(profile.as_deref());
                policy::check(&route.require, &identity, metadata).map_err(Reject::Forbidden)?;
            }
            headers::set_identity(request.headers_mut(), &state.headers, &identity);
            if let Some(profile) = &profile {
                headers::set_user(request.headers_mut(), &state.headers, profile);
            }
            Ok(())
        }
        Outcome::SignedOut { reason, token_sent } => {
            trace.auth = reason.as_str();
            if route.auth == AuthMode::Required {
                return Err(signed_out_answer(state, peer, request, reason, token_sent));
            }
            headers::set_signed_out(request.headers_mut(), &state.headers);
            Ok(())
        }
    }
}

/// A browser page load goes to sign in (when a sign-in URL is configured); anything else
/// gets 401.
fn signed_out_answer(
    state: &AppState,
    peer: &Peer,
    request: &Request<Incoming>,
    reason: crate::auth::Reason,
    token_sent: bool,
) -> Reject {
    if let Some(sign_in) = &state.sign_in_url
        && is_document_request(request.method(), request.headers())
    {
        let mut location = sign_in.clone();
        if let Some(url) = public_url(peer, request) {
            location.query_pairs_mut().append_pair("redirect_url", &url);
        }
        if let Ok(location) = HeaderValue::try_from(location.as_str()) {
            return Reject::SignIn { location };
        }
    }
    Reject::Unauthenticated { reason, token_sent }
}

/// Clerk's test for a browser navigation: GET with `Sec-Fetch-Dest: document`/`iframe`, or
/// no `Sec-Fetch-Dest` and an `Accept` that starts with `text/html`.
pub fn is_document_request(method: &Method, headers: &HeaderMap) -> bool {
    if method != Method::GET {
        return false;
    }
    match headers.get(&SEC_FETCH_DEST) {
        Some(dest) => dest == "document" || dest == "iframe",
        None => headers.get(ACCEPT).and_then(|a| a.to_str().ok()).is_some_and(|a| a.starts_with("text/html")),
    }
}

/// The URL the client asked for, as the client saw it: scheme and host from a trusted
/// proxy's `X-Forwarded-*`, else from this connection and the `Host` header.
fn public_url(peer: &Peer, request: &Request<Incoming>) -> Option<String> {
    let headers = request.headers();
    let forwarded = |name: &http::HeaderName| {
        headers
            .get(name)
            .filter(|_| peer.trusted)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    let scheme = forwarded(&X_FORWARDED_PROTO).filter(|s| *s == "http" || *s == "https").unwrap_or(peer.scheme);
    let host = forwarded(&X_FORWARDED_HOST).or_else(|| headers::request_host(headers, request.uri()))?;
    let target = request.uri().path_and_query().map_or("/", |pq| pq.as_str());
    Some(format!("{scheme}://{host}{target}"))
}

/// 413 at once when `Content-Length` already says the body is too large.
fn check_declared_length(headers: &HeaderMap, route: &Route) -> Result<(), Reject> {
    let Some(limit) = route.max_body else { return Ok(()) };
    let declared = headers.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(length) if length > limit => Err(Reject::PayloadTooLarge),
        _ => Ok(()),
    }
}

/// A trusted proxy's `X-Request-Id` is kept; otherwise a new one is made.
fn request_id(state: &AppState, peer: &Peer, headers: &HeaderMap) -> HeaderValue {
    headers
        .get(&X_REQUEST_ID)
        .filter(|_| peer.trusted)
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.as_bytes().iter().all(u8::is_ascii_graphic))
        .cloned()
        .unwrap_or_else(|| state.new_request_id())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn document_requests_follow_clerk() {
        assert!(is_document_request(&Method::GET, &headers(&[("sec-fetch-dest", "document")])));
        assert!(is_document_request(&Method::GET, &headers(&[("sec-fetch-dest", "iframe")])));
        assert!(is_document_request(&Method::GET, &headers(&[("accept", "text/html,application/xhtml+xml")])));
        assert!(!is_document_request(&Method::GET, &headers(&[("sec-fetch-dest", "empty"), ("accept", "text/html")])));
        assert!(!is_document_request(&Method::POST, &headers(&[("sec-fetch-dest", "document")])));
        assert!(!is_document_request(&Method::GET, &headers(&[("accept", "application/json")])));
        assert!(!is_document_request(&Method::GET, &HeaderMap::new()));
    }
}
