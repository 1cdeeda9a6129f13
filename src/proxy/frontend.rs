//! Clerk's Frontend API proxied through the gateway (`/__clerk/*` as Clerk documents for
//! production): the path below the prefix goes to the Frontend API with `Clerk-Proxy-Url`,
//! `Clerk-Secret-Key` and `X-Forwarded-For`; bodies and cookies stream through both ways.
//! Off unless `clerk.proxy_path` is configured.

use std::time::Duration;

use http::header::HOST;
use http::{HeaderName, HeaderValue, Request, Response, Uri};
use hyper::body::Incoming;

use super::HttpClient;
use super::body::{self, Body, RequestBody};
use super::forward::send;
use super::headers::{self, Peer};
use crate::config::FrontendProxy;
use crate::error::Reject;
use crate::state::AppState;

static CLERK_PROXY_URL: HeaderName = HeaderName::from_static("clerk-proxy-url");
static CLERK_SECRET_KEY: HeaderName = HeaderName::from_static("clerk-secret-key");

/// How long the Frontend API may take to answer.
const FAPI_TIMEOUT: Duration = Duration::from_secs(30);

/// Forwards a request under `proxy.path` to the Frontend API.
///
/// # Errors
/// `BadGateway` / `GatewayTimeout` when the Frontend API cannot be reached in time.
pub async fn forward(
    state: &AppState,
    client: &HttpClient,
    proxy: &FrontendProxy,
    peer: &Peer,
    mut request: Request<Incoming>,
    path: &str,
) -> Result<Response<Body>, Reject> {
    let base = state.browser.frontend_api().ok_or(Reject::NotFound)?;
    let rest = path.get(proxy.path.len()..).unwrap_or("").trim_start_matches('/');
    let mut target = base.join(rest).map_err(|_| Reject::BadRequest("invalid-path"))?;
    target.set_query(request.uri().query());
    let uri: Uri = target.as_str().parse().map_err(|_| Reject::BadRequest("invalid-path"))?;
    let host = uri.authority().map(|a| a.as_str().to_owned()).ok_or(Reject::BadGateway)?;
    let headers = request.headers_mut();
    headers::set_forwarded(headers, peer, None);
    headers.insert(HOST, HeaderValue::try_from(host).map_err(|_| Reject::BadGateway)?);
    if let Ok(url) = HeaderValue::try_from(proxy.url.as_str()) {
        headers.insert(CLERK_PROXY_URL.clone(), url);
    }
    if let Some(secret) = state.users.api().map(|api| api.secret())
        && let Ok(value) = HeaderValue::try_from(secret.expose())
    {
        headers.insert(CLERK_SECRET_KEY.clone(), value);
    }
    let (mut parts, incoming) = request.into_parts();
    parts.uri = uri;
    let outbound = Request::from_parts(parts, RequestBody::new(incoming, None));
    let mut response = send(client, outbound, FAPI_TIMEOUT).await?;
    headers::remove_hop_by_hop(response.headers_mut());
    Ok(response.map(body::stream))
}
