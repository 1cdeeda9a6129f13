//! The proxy listener's request pipeline: strip client identity headers, normalize the
//! path, dispatch gateway-owned paths (webhook, forward-auth, Frontend API proxy,
//! `/auth/*`), route, answer CORS preflights where a policy applies, authorize (a machine
//! token the route accepts, else Clerk's browser rules; `authorize.rs`), sign the identity
//! assertion, then forward; the answer gets the policy's CORS headers. Every
//! gateway answer comes back as a `Reject`, turned into a response in `reject.rs` (a gRPC
//! status for a gRPC call); every request is counted and logged here, once.

use std::sync::Arc;
use std::time::Instant;

use http::header::{CONTENT_LENGTH, HOST, ORIGIN, SET_COOKIE};
use http::{HeaderMap, HeaderValue, Method, Request, Response};
use hyper::body::Incoming;

use crate::access::{AccessRecord, LineFacts};
use crate::auth_endpoints;
use crate::authorize::authorize;
use crate::body::Body;
use crate::config::{CorsPolicy, Route};
use crate::cors;
use crate::forward_auth;
use crate::path;
use crate::proxy::forwarding::{self, Peer};
use crate::proxy::headers::{self, X_REQUEST_ID};
use crate::proxy::{self, ForwardError, HttpClient, Target};
use crate::reject::{self, Reject};
use crate::server::{Handler, Remote};
use crate::state::{AppState, Current};

/// The proxy listener's handler: the configuration serving now plus this worker's upstream
/// client.
#[derive(Clone)]
pub struct ProxyHandler {
    current: Current,
    /// Shared: every connection holds a copy of the handler.
    client: Arc<HttpClient>,
}

impl ProxyHandler {
    /// A handler over `current` forwarding through `client`.
    pub fn new(current: Current, client: HttpClient) -> Self {
        ProxyHandler { current, client: Arc::new(client) }
    }
}

impl Handler for ProxyHandler {
    async fn call(&self, remote: &Remote, request: Request<Incoming>) -> Response<Body> {
        // The whole request, response body included, runs on the configuration it began on.
        let state = self.current.load_full();
        handle(&state, &self.client, remote, request).await
    }
}

async fn handle(state: &AppState, client: &HttpClient, remote: &Remote, request: Request<Incoming>) -> Response<Body> {
    let started = Instant::now();
    let in_flight = state.metrics.request_started();
    let ip = remote.addr.ip();
    let peer = Peer { ip, address: remote.address.clone(), trusted: state.is_trusted(ip), scheme: state.scheme };
    let request_id = request_id(state, &peer, request.headers());
    let method = request.method().clone();
    let mut record = AccessRecord {
        client: Some(forwarding::client_address(request.headers(), &peer, |ip| state.is_trusted(ip))),
        ..AccessRecord::default()
    };
    let grpc = reject::grpc_content_type(request.headers());
    let origin = request.headers().get(ORIGIN).cloned();
    let mut cors_policy = state.cors.as_deref();
    let processed = process(state, client, &peer, request, request_id.clone(), &mut record, &mut cors_policy).await;
    let mut response = match processed {
        Ok(response) => response,
        Err(reject) => match grpc {
            Some(content_type) => reject.into_grpc_response(content_type),
            None => reject.into_response(),
        },
    };
    if let Some(policy) = cors_policy {
        cors::decorate(policy, origin.as_ref(), response.headers_mut());
    }
    let response_headers = response.headers_mut();
    response_headers.insert(X_REQUEST_ID.clone(), request_id.clone());
    for cookie in record.set_cookies.drain(..) {
        response_headers.append(SET_COOKIE, cookie);
    }
    let status = response.status().as_u16();
    state.route_metrics.request(record.route, status);
    let metrics = state.route_metrics.clone();
    let line = LineFacts { method, status, started, request_id, metrics, in_flight };
    response.map(|body| record.log_after(line, body))
}

/// Everything between the request and its answer; `cors_policy` ends as the CORS policy
/// the answer is to be decorated with (`None` for a path that has none, or an answer that
/// is already complete).
async fn process<'s>(
    state: &'s AppState,
    client: &HttpClient,
    peer: &Peer,
    mut request: Request<Incoming>,
    request_id: HeaderValue,
    record: &mut AccessRecord,
    cors_policy: &mut Option<&'s CorsPolicy>,
) -> Result<Response<Body>, Reject> {
    // Before anything is added: a client must not be able to name our headers in Connection.
    let upgrade = headers::sanitize_request(request.headers_mut(), &state.stripped, peer.trusted);
    check_target(&request)?;
    let path = path::normalize(request.uri().path()).map_err(|_| Reject::BadRequest("invalid-path"))?.into_owned();
    record.path.clone_from(&path);
    if let Some(endpoint) = state.webhook.as_ref().filter(|w| w.path == path) {
        *cors_policy = None;
        record.route = Some(state.routes.routes().len());
        record.route_name = Some(Arc::from("webhook"));
        let received = record.count_bytes_in();
        return Ok(endpoint.handle(request, &state.users, &state.clock, &state.metrics, &received).await?);
    }
    if let Some(prefix) = state.forward_auth.as_deref().filter(|prefix| forward_auth::serves(prefix, &path)) {
        *cors_policy = None;
        return forward_auth::handle(state, peer, request, prefix, record).await;
    }
    if let Some(fapi) = state.frontend_proxy.as_ref().filter(|p| p.serves(&path)) {
        *cors_policy = None;
        record.route_name = Some(Arc::from("frontend-api"));
        return Ok(fapi.forward(client, peer, request, &path).await?);
    }
    if let Some(endpoint) =
        state.auth_endpoints.as_deref().and_then(|prefix| auth_endpoints::AuthEndpoint::at(prefix, &path))
    {
        record.route_name = Some(Arc::from("auth-endpoints"));
        if let Some(answer) = answer_preflight(cors_policy, &request, record) {
            return Ok(answer);
        }
        return auth_endpoints::handle(state, peer, request, endpoint, record).await;
    }
    let host = forwarding::request_host(request.headers(), request.uri()).map(str::to_owned);
    let host_name = host.as_deref().map(forwarding::host_without_port);
    // A preflight belongs to the route of the request it asks about.
    let asked = cors::is_preflight(request.method(), request.headers())
        .then(|| cors::requested_method(request.headers()))
        .flatten();
    let route = asked
        .and_then(|method| state.routes.find(host_name.as_deref(), &method, &path))
        .or_else(|| state.routes.find(host_name.as_deref(), request.method(), &path))
        .ok_or(Reject::NotFound)?;
    record.route = Some(route.index);
    record.route_name = Some(route.name.clone());
    *cors_policy = route.cors.as_deref();
    if let Some(answer) = answer_preflight(cors_policy, &request, record) {
        return Ok(answer);
    }
    check_declared_length(request.headers(), route)?;
    let admitted = authorize(state, peer, &request, route, record).await?;
    admitted.set_headers(state, route, request.headers_mut());
    if state.assertion.is_some() {
        let upstream_path = proxy::forward::upstream_path(route, &path);
        let method = request.method().clone();
        admitted.assert(state, route, method.as_str(), &upstream_path, request.headers_mut());
    }
    let target = Target {
        route,
        path: &path,
        host: host.as_deref(),
        peer,
        request_id,
        upgrade,
        tunnels: &state.tunnels,
        body_read_timeout: state.body_read_timeout,
        bytes_in: (!http_body::Body::is_end_stream(request.body())).then(|| record.count_bytes_in()),
    };
    let (response, elapsed) = proxy::forward(client, request, target).await.inspect_err(|e| {
        if *e == ForwardError::BodyTimeout {
            state.metrics.body_timeout();
        }
    })?;
    state.route_metrics.upstream_latency(route.index, elapsed);
    record.upstream = Some(elapsed);
    Ok(response)
}

/// The methods a proxied request may use (`CONNECT` would turn the gateway into a tunnel).
const ALLOWED_METHODS: &str = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS, TRACE";

/// Refuses requests the router and the upstream could read differently, before routing:
/// `CONNECT`; an HTTP/1.1 request-target that is not a path (absolute-form, authority-form);
/// no host at all, or two `Host` headers; a host that is not `name[:port]`; an HTTP/2
/// `Host` that disagrees with `:authority`.
fn check_target(request: &Request<Incoming>) -> Result<(), Reject> {
    if request.method() == Method::CONNECT {
        return Err(Reject::MethodNotAllowed(ALLOWED_METHODS));
    }
    let uri = request.uri();
    let http1 = request.version() < http::Version::HTTP_2;
    if http1 && (uri.scheme().is_some() || uri.authority().is_some()) {
        return Err(Reject::BadRequest("request-target"));
    }
    let mut hosts = request.headers().get_all(HOST).iter();
    let header = hosts.next();
    if hosts.next().is_some() {
        return Err(Reject::BadRequest("duplicate-host"));
    }
    let header = header.map(|v| v.to_str().map_err(|_| Reject::BadRequest("invalid-host"))).transpose()?;
    let authority = uri.authority().map(|a| a.as_str());
    if let (Some(header), Some(authority)) = (header, authority)
        && !header.eq_ignore_ascii_case(authority)
    {
        return Err(Reject::BadRequest("host-mismatch"));
    }
    match header.or(authority) {
        None => Err(Reject::BadRequest("missing-host")),
        Some(host) if !forwarding::is_valid_host(host) => Err(Reject::BadRequest("invalid-host")),
        Some(_) => Ok(()),
    }
}

/// The gateway's own answer to a preflight when a CORS policy covers the request; it is
/// complete, so the policy is not applied to it again.
fn answer_preflight(
    cors_policy: &mut Option<&CorsPolicy>,
    request: &Request<Incoming>,
    record: &mut AccessRecord,
) -> Option<Response<Body>> {
    let policy = cors_policy.filter(|_| cors::is_preflight(request.method(), request.headers()))?;
    *cors_policy = None;
    record.auth = "preflight";
    Some(cors::preflight(policy, request.headers()))
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
