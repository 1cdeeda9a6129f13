//! Forward-auth mode, for teams whose ingress already proxies: `{forward_auth.path}` on the
//! proxy listener answers whether the request the ingress names may pass, and as whom, with
//! the same route table and rules as proxy mode. The original request comes from a trusted
//! proxy's `X-Original-URI`/`X-Original-URL`/`X-Original-Method` (nginx `auth_request`,
//! ingress-nginx `auth-url`) or `X-Forwarded-Uri`/`X-Forwarded-Method` (Traefik
//! ForwardAuth), or else the request itself, its path what follows the verify path (Envoy
//! `ext_authz` with `path_prefix`); named twice, or not at all, it is refused. 200 carries
//! the identity headers; a refusal is the proxy mode's 401/403, a browser's redirect a 401
//! with `Location` for nginx.

use http::header::HOST;
use http::uri::PathAndQuery;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, Uri};
use hyper::body::Incoming;

use crate::access::AccessRecord;
use crate::authorize::authorize;
use crate::body::{self, Body};
use crate::path;
use crate::proxy::forwarding::{self, Peer, X_FORWARDED_HOST};
use crate::reject::Reject;
use crate::state::AppState;

static X_ORIGINAL_URI: HeaderName = HeaderName::from_static("x-original-uri");
static X_ORIGINAL_URL: HeaderName = HeaderName::from_static("x-original-url");
static X_ORIGINAL_METHOD: HeaderName = HeaderName::from_static("x-original-method");
static X_FORWARDED_URI: HeaderName = HeaderName::from_static("x-forwarded-uri");
static X_FORWARDED_METHOD: HeaderName = HeaderName::from_static("x-forwarded-method");

/// Whether `path` (normalized) is the verify endpoint at `prefix`, or under it.
pub fn serves(prefix: &str, path: &str) -> bool {
    path.strip_prefix(prefix).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// How the ingress named the original request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Style {
    /// `X-Original-*`: nginx passes on only 2xx, 401 and 403, so a redirect goes as a 401.
    Nginx,
    /// `X-Forwarded-Uri`, or the request itself: the answer goes to the browser as it is.
    Direct,
}

/// The request the ingress asks about.
struct Original {
    method: Method,
    target: PathAndQuery,
    host: Option<HeaderValue>,
    style: Style,
}

/// Answers the ingress's question about the request it names.
///
/// # Errors
/// The refusal: 400 for an original request that cannot be read, is named twice or not at
/// all, or whose path the gateway would read otherwise; 403 (`no-route`) when no route
/// takes it; and proxy mode's 401, 403 and 503.
pub async fn handle(
    state: &AppState,
    peer: &Peer,
    request: Request<Incoming>,
    prefix: &str,
    record: &mut AccessRecord,
) -> Result<Response<Body>, Reject> {
    let original = original(&request, prefix, peer.trusted)?;
    let style = original.style;
    let view = view(&request, original)?;
    // The ingress forwards the path as it was sent, so one the gateway would read otherwise
    // (dot segments, `//`, escapes of plain characters) is refused, not judged as normalized.
    let sent = view.uri().path();
    let path = path::normalize(sent).map_err(|_| Reject::BadRequest("invalid-path"))?;
    if !path.eq_ignore_ascii_case(sent) {
        return Err(Reject::BadRequest("ambiguous-path"));
    }
    record.path = path.clone().into_owned();
    let host = forwarding::request_host(view.headers(), view.uri()).map(forwarding::host_without_port);
    let route = state.routes.find(host.as_deref(), view.method(), &path).ok_or(Reject::Denied("no-route"))?;
    record.route = Some(route.index);
    record.route_name = Some(route.name.clone());
    match authorize(state, peer, &view, route, record).await {
        Ok(admitted) => {
            let mut response = Response::new(body::empty());
            admitted.set_headers(state, route, response.headers_mut());
            // The ingress forwards the path as it was sent.
            admitted.assert(state, route, view.method().as_str(), view.uri().path(), response.headers_mut());
            Ok(response)
        }
        Err(reject @ Reject::Redirect { .. }) if style == Style::Nginx => Ok(reject.into_subrequest_response()),
        Err(reject) => Err(reject),
    }
}

/// The original method, target and host, from exactly one of the ways an ingress names
/// them, each with its own host source: `X-Original-URL` (its authority), `X-Original-URI`
/// (`Host`), `X-Forwarded-Uri` (`X-Forwarded-Host`, which Traefik sets), or the request
/// itself with the verify path taken off its path as sent (`Host`). Only a trusted peer's
/// headers count (anyone else's were removed before). Two ways at once, a header twice, or
/// none at all fail closed: a client must not be able to add a name the ingress did not
/// overwrite.
fn original(request: &Request<Incoming>, prefix: &str, trusted: bool) -> Result<Original, Reject> {
    let headers = request.headers();
    let single = |name: &HeaderName| -> Result<Option<&HeaderValue>, Reject> {
        let mut values = headers.get_all(name).iter().filter(|_| trusted);
        let first = values.next();
        if values.next().is_some() {
            return Err(Reject::BadRequest("ambiguous-original"));
        }
        Ok(first)
    };
    let (url, uri, forwarded_uri) = (single(&X_ORIGINAL_URL)?, single(&X_ORIGINAL_URI)?, single(&X_FORWARDED_URI)?);
    if [url, uri, forwarded_uri].iter().flatten().count() > 1 {
        return Err(Reject::BadRequest("ambiguous-original"));
    }
    let own_host = || headers.get(HOST).cloned();
    if let Some(url) = url {
        let uri = Uri::try_from(url.as_bytes()).map_err(|_| Reject::BadRequest("x-original-url"))?;
        let target = uri.path_and_query().cloned().ok_or(Reject::BadRequest("x-original-url"))?;
        let host = uri.authority().and_then(|a| HeaderValue::try_from(a.as_str()).ok()).or_else(own_host);
        let method = method(single(&X_ORIGINAL_METHOD)?, request.method())?;
        return Ok(Original { method, target, host, style: Style::Nginx });
    }
    if let Some(uri) = uri {
        let target = PathAndQuery::try_from(uri.as_bytes()).map_err(|_| Reject::BadRequest("x-original-uri"))?;
        let method = method(single(&X_ORIGINAL_METHOD)?, request.method())?;
        return Ok(Original { method, target, host: own_host(), style: Style::Nginx });
    }
    if let Some(uri) = forwarded_uri {
        let target = PathAndQuery::try_from(uri.as_bytes()).map_err(|_| Reject::BadRequest("x-forwarded-uri"))?;
        let method = method(single(&X_FORWARDED_METHOD)?, request.method())?;
        let host = single(&X_FORWARDED_HOST)?.cloned().or_else(own_host);
        return Ok(Original { method, target, host, style: Style::Direct });
    }
    // Envoy's form: the original path follows the verify path, exactly as sent.
    let rest = request.uri().path().strip_prefix(prefix).filter(|r| r.starts_with('/'));
    let rest = rest.ok_or(Reject::BadRequest("no-original-request"))?;
    let target = match request.uri().query() {
        Some(query) => format!("{rest}?{query}"),
        None => rest.to_owned(),
    };
    let target = PathAndQuery::try_from(target).map_err(|_| Reject::BadRequest("invalid-path"))?;
    Ok(Original { method: request.method().clone(), target, host: own_host(), style: Style::Direct })
}

fn method(named: Option<&HeaderValue>, own: &Method) -> Result<Method, Reject> {
    match named {
        Some(value) => Method::from_bytes(value.as_bytes()).map_err(|_| Reject::BadRequest("original-method")),
        None => Ok(own.clone()),
    }
}

/// The original request as the route table and Clerk's rules read it: its method, target
/// and host, and the verify request's other headers (credentials, cookies, `Accept`).
fn view(request: &Request<Incoming>, original: Original) -> Result<Request<()>, Reject> {
    if !original.target.as_str().starts_with('/') {
        return Err(Reject::BadRequest("request-target"));
    }
    let host = original.host.ok_or(Reject::BadRequest("missing-host"))?;
    if !host.to_str().is_ok_and(forwarding::is_valid_host) {
        return Err(Reject::BadRequest("invalid-host"));
    }
    let mut headers: HeaderMap = request.headers().clone();
    // The host chosen above is the one: public URLs (redirects) are built from it alone.
    headers.remove(&X_FORWARDED_HOST);
    headers.insert(HOST, host);
    let uri = Uri::from(original.target);
    let mut view = Request::new(());
    *view.method_mut() = original.method;
    *view.uri_mut() = uri;
    *view.headers_mut() = headers;
    Ok(view)
}
