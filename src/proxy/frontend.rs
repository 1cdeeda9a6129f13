//! Clerk's Frontend API proxied through the gateway (`/__clerk/*` as Clerk documents for
//! production): the path below the prefix goes to the Frontend API with `Clerk-Proxy-Url`,
//! `Clerk-Secret-Key` and `X-Forwarded-For`; bodies and cookies stream through both ways.
//! Off unless `clerk.proxy_path` is configured.

use std::time::Duration;

use http::header::HOST;
use http::{HeaderName, HeaderValue, Request, Response, Uri};
use hyper::body::Incoming;
use reqwest::Url;

use super::forward::{ForwardError, HttpClient, send};
use super::forwarding::{self, Peer};
use super::headers;
use super::request_body::RequestBody;
use crate::body::Body;
use crate::config::Secret;
use crate::router::prefix_matches;

static CLERK_PROXY_URL: HeaderName = HeaderName::from_static("clerk-proxy-url");
static CLERK_SECRET_KEY: HeaderName = HeaderName::from_static("clerk-secret-key");

/// How long the Frontend API may take to answer.
const FAPI_TIMEOUT: Duration = Duration::from_secs(30);

/// The Frontend API URL for `rest` (the path below the proxy prefix): always the base's own
/// scheme and host, the path appended below the base's. `Url::join` is not used on purpose:
/// `/__clerk/http:evil.example/x` would join to another host.
fn target_url(base: &Url, rest: &str, query: Option<&str>) -> Result<Url, ForwardError> {
    let mut target = base.clone();
    target.set_path(&format!("{}{}", base.path(), rest.trim_start_matches('/')));
    target.set_query(query);
    if target.origin() != base.origin() {
        return Err(ForwardError::InvalidPath);
    }
    Ok(target)
}

/// The Frontend API proxy: everything it needs, computed once at start-up.
pub struct FrontendApiProxy {
    /// The path prefix served, e.g. `/__clerk`.
    prefix: String,
    /// The Frontend API's base URL.
    base: Url,
    /// `Clerk-Proxy-Url`: the proxy's public URL.
    proxy_url: Option<HeaderValue>,
    /// `Clerk-Secret-Key`, when a secret key is configured.
    secret_key: Option<HeaderValue>,
    /// Longest pause allowed between two chunks of a request body.
    body_read_timeout: Duration,
}

impl FrontendApiProxy {
    /// A proxy serving `prefix` in front of the Frontend API at `base`, announcing itself as
    /// `proxy_url` and authenticating with `secret_key`.
    pub fn new(
        prefix: &str,
        proxy_url: &Url,
        base: Url,
        secret_key: Option<&Secret>,
        body_read_timeout: Duration,
    ) -> Self {
        let secret_key = secret_key.and_then(|s| HeaderValue::try_from(s.expose()).ok()).map(|mut value| {
            value.set_sensitive(true);
            value
        });
        FrontendApiProxy {
            prefix: prefix.to_owned(),
            base,
            proxy_url: HeaderValue::try_from(proxy_url.as_str()).ok(),
            secret_key,
            body_read_timeout,
        }
    }

    /// Whether `path` (normalized) is under the proxy's prefix.
    pub fn serves(&self, path: &str) -> bool {
        prefix_matches(&self.prefix, path, false)
    }

    /// Forwards a request under the prefix to the Frontend API.
    ///
    /// # Errors
    /// `BadGateway` / `GatewayTimeout` when the Frontend API cannot be reached in time.
    pub async fn forward(
        &self,
        client: &HttpClient,
        peer: &Peer,
        mut request: Request<Incoming>,
        path: &str,
    ) -> Result<Response<Body>, ForwardError> {
        let target = target_url(&self.base, path.get(self.prefix.len()..).unwrap_or(""), request.uri().query())?;
        let uri: Uri = target.as_str().parse().map_err(|_| ForwardError::InvalidPath)?;
        let host = uri.authority().map(|a| a.as_str().to_owned()).ok_or(ForwardError::BadGateway)?;
        let headers = request.headers_mut();
        forwarding::set_forwarded(headers, peer, None);
        headers.insert(HOST, HeaderValue::try_from(host).map_err(|_| ForwardError::BadGateway)?);
        if let Some(url) = &self.proxy_url {
            headers.insert(CLERK_PROXY_URL.clone(), url.clone());
        }
        if let Some(secret) = &self.secret_key {
            headers.insert(CLERK_SECRET_KEY.clone(), secret.clone());
        }
        let (mut parts, incoming) = request.into_parts();
        parts.uri = uri;
        let outbound = Request::from_parts(parts, RequestBody::new(incoming, None, self.body_read_timeout));
        let mut response = send(client.http1(), outbound, FAPI_TIMEOUT).await?;
        headers::remove_hop_by_hop(response.headers_mut());
        Ok(response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_never_leave_the_frontend_api() {
        let base = Url::parse("https://clerk.example.com/").unwrap();
        let t = |rest: &str| target_url(&base, rest, Some("a=1")).map(|u| u.to_string());
        assert_eq!(t("/v1/client").unwrap(), "https://clerk.example.com/v1/client?a=1");
        for sneaky in ["/http:evil.example/x", "/http://evil.example/x", "/https:/evil.example", "//evil.example/x"] {
            let url = t(sneaky).unwrap();
            assert!(url.starts_with("https://clerk.example.com/"), "{sneaky} -> {url}");
        }
        let local = Url::parse("http://127.0.0.1:9/fapi/").unwrap();
        assert_eq!(target_url(&local, "/v1/x", None).unwrap().as_str(), "http://127.0.0.1:9/fapi/v1/x");
    }
}
