//! Sending a request upstream: the pooled client, the upstream URI, and the mapping of
//! transport failures to 502 / 504 / 413. Bodies stream through untouched.

use std::time::Duration;

use http::uri::PathAndQuery;
use http::{Request, Response, Uri, Version};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::request_body::{BodyTimeout, BodyTooLarge, RequestBody};
use crate::config::{Route, Upstream};

/// The upstream client: pooled keep-alive HTTP/1.1, plain or TLS.
pub type HttpClient = Client<HttpsConnector<HttpConnector>, RequestBody>;

/// Why a request could not be forwarded; `reject` turns each into the gateway's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardError {
    /// The path cannot be sent upstream as it is (400).
    InvalidPath,
    /// The body passed the route's `max_body` while streaming (413).
    PayloadTooLarge,
    /// The upstream refused, reset, or answered nonsense (502).
    BadGateway,
    /// The upstream did not answer in time (504).
    GatewayTimeout,
    /// The client's body stalled past `body_read_timeout` (408).
    BodyTimeout,
}

/// The upstream client could not be built.
#[derive(Debug, thiserror::Error)]
#[error("TLS roots for https upstreams: {0}")]
pub struct ClientError(#[source] rustls::Error);

/// Builds the one upstream client.
///
/// # Errors
/// `ClientError` when the platform's TLS roots cannot be set up.
pub fn client(connect_timeout: Duration) -> Result<HttpClient, ClientError> {
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    http.set_connect_timeout(Some(connect_timeout));
    http.enforce_http(false);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .try_with_platform_verifier()
        .map_err(ClientError)?
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(60))
        .pool_timer(TokioTimer::new())
        .pool_max_idle_per_host(512)
        .build(https))
}

/// The path the upstream receives: the normalized request path, without the route prefix
/// when `strip_prefix` is set, under the upstream's base path, plus the original query.
pub fn upstream_uri(upstream: &Upstream, route: &Route, path: &str, query: Option<&str>) -> Result<Uri, ForwardError> {
    let path = if route.strip_prefix { strip_prefix(&route.path, path) } else { path };
    let mut target = String::with_capacity(upstream.base_path.len() + path.len() + query.map_or(0, |q| q.len() + 1));
    target.push_str(&upstream.base_path);
    target.push_str(path);
    if let Some(query) = query {
        target.push('?');
        target.push_str(query);
    }
    let path_and_query = PathAndQuery::try_from(target).map_err(|_| ForwardError::InvalidPath)?;
    Uri::builder()
        .scheme(upstream.scheme.clone())
        .authority(upstream.authority.clone())
        .path_and_query(path_and_query)
        .build()
        .map_err(|_| ForwardError::InvalidPath)
}

/// `path` without `prefix` (which it is known to match), always starting with `/`.
fn strip_prefix<'a>(prefix: &str, path: &'a str) -> &'a str {
    let prefix = prefix.trim_end_matches('/');
    match path.get(prefix.len()..) {
        Some(rest) if rest.starts_with('/') => rest,
        _ => "/",
    }
}

/// Sends the request and waits (at most `timeout`) for the response head.
///
/// # Errors
/// `GatewayTimeout`, `PayloadTooLarge` (body over the limit mid-stream) or `BadGateway`.
pub async fn send(
    client: &HttpClient,
    mut request: Request<RequestBody>,
    timeout: Duration,
) -> Result<Response<Incoming>, ForwardError> {
    *request.version_mut() = Version::HTTP_11;
    match tokio::time::timeout(timeout, client.request(request)).await {
        Err(_) => Err(ForwardError::GatewayTimeout),
        Ok(Ok(response)) => Ok(response),
        Ok(Err(error)) => {
            if caused_by::<BodyTooLarge>(&error) {
                return Err(ForwardError::PayloadTooLarge);
            }
            if caused_by::<BodyTimeout>(&error) {
                return Err(ForwardError::BodyTimeout);
            }
            tracing::warn!(error = %error_chain(&error), "upstream request failed");
            Err(ForwardError::BadGateway)
        }
    }
}

fn caused_by<T: std::error::Error + 'static>(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(e) = current {
        if e.is::<T>() {
            return true;
        }
        current = e.source();
    }
    false
}

fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        out.push_str(": ");
        out.push_str(&e.to_string());
        source = e.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AuthMode, Requirements};

    fn route(path: &str, strip: bool) -> Route {
        Route {
            index: 0,
            name: path.into(),
            path: path.into(),
            host: None,
            methods: None,
            upstream: upstream("http://127.0.0.1:9000"),
            auth: AuthMode::Public,
            strip_prefix: strip,
            require: Requirements::default(),
            timeout: Duration::from_secs(1),
            max_body: None,
            authenticate_preflight: false,
            pass_credentials: true,
            claim_headers: Vec::new(),
            add_request_headers: Vec::new(),
            remove_request_headers: Vec::new(),
        }
    }

    fn upstream(text: &str) -> Upstream {
        let uri: Uri = text.parse().unwrap();
        Upstream {
            scheme: uri.scheme().unwrap().clone(),
            authority: uri.authority().unwrap().clone(),
            base_path: uri.path().trim_end_matches('/').into(),
        }
    }

    #[test]
    fn builds_upstream_uris() {
        let up = upstream("http://127.0.0.1:9000");
        let uri = upstream_uri(&up, &route("/api/", false), "/api/users", Some("a=1")).unwrap();
        assert_eq!(uri, "http://127.0.0.1:9000/api/users?a=1");
        let uri = upstream_uri(&up, &route("/api/", true), "/api/users", None).unwrap();
        assert_eq!(uri, "http://127.0.0.1:9000/users");
        let uri = upstream_uri(&up, &route("/api/", true), "/api", None).unwrap();
        assert_eq!(uri, "http://127.0.0.1:9000/");
        let uri = upstream_uri(&up, &route("/api", true), "/api/", None).unwrap();
        assert_eq!(uri, "http://127.0.0.1:9000/");
        let based = upstream("https://backend.internal/v1/");
        let uri = upstream_uri(&based, &route("/api/", true), "/api/users", None).unwrap();
        assert_eq!(uri, "https://backend.internal/v1/users");
    }
}
