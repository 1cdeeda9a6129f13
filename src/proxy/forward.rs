//! Sending a request upstream: which client takes it (this worker's own HTTP/1.1 pool for
//! `http://`; hyper-util's pooled clients for h2 or HTTP/1.1 by ALPN over TLS, h2c by prior
//! knowledge, and upgrades), the upstream URI, and the mapping of transport failures to
//! 502 / 504 / 413. Bodies, trailers included, stream through untouched.

use std::sync::OnceLock;
use std::time::Duration;

use http::uri::{PathAndQuery, Scheme};
use http::{Request, Response, Uri, Version};
use http_body_util::BodyExt;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::pool;
use super::request_body::{BodyTimeout, BodyTooLarge, RequestBody};
use crate::body::{self, Body, BoxError};
use crate::config::{Route, Upstream};

/// One of hyper-util's pooled clients.
pub type Pool = Client<HttpsConnector<HttpConnector>, RequestBody>;

/// The upstream clients: which one a request takes depends on its upstream's scheme and on
/// whether it asks for an upgrade.
#[derive(Clone, Debug)]
pub struct HttpClient {
    /// How long a new connection may take, on every client.
    connect_timeout: Duration,
    /// `http://` as HTTP/1.1; `https://` as h2 or HTTP/1.1, as the upstream's ALPN picks.
    negotiated: Pool,
    /// HTTP/1.1 only, TLS or not: WebSocket upgrades (HTTP/2 has no `Upgrade`) and Clerk.
    http1: Pool,
    /// `h2c://`: HTTP/2 without TLS, by prior knowledge (gRPC backends).
    h2c: Pool,
}

/// The client one request goes by.
#[derive(Clone, Copy, Debug)]
pub enum Via<'a> {
    /// This worker's HTTP/1.1 pool (`pool.rs`), with its connect timeout.
    Worker(Duration),
    /// One of hyper-util's pooled clients.
    Shared(&'a Pool),
}

impl HttpClient {
    /// The client for a request to `upstream`; `upgrade` when it asks to switch protocols.
    pub fn pick(&self, upstream: &Upstream, upgrade: bool) -> Via<'_> {
        match (upstream.h2c, upgrade) {
            (false, false) if upstream.scheme == Scheme::HTTP => Via::Worker(self.connect_timeout),
            (true, _) => Via::Shared(&self.h2c),
            (false, true) => Via::Shared(&self.http1),
            (false, false) => Via::Shared(&self.negotiated),
        }
    }

    /// The HTTP/1.1 client, TLS or not (for Clerk's Frontend API).
    pub fn http1(&self) -> Via<'_> {
        Via::Shared(&self.http1)
    }
}

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

/// Builds the upstream clients.
///
/// # Errors
/// `ClientError` when the platform's TLS roots cannot be set up.
pub fn client(connect_timeout: Duration) -> Result<HttpClient, ClientError> {
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    http.set_connect_timeout(Some(connect_timeout));
    http.enforce_http(false);
    let config = platform_tls()?;
    let tls = || Ok::<_, ClientError>(hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(config.clone()));
    let h1 = tls()?.https_or_http().enable_http1().wrap_connector(http.clone());
    let alpn = tls()?.https_or_http().enable_http1().enable_http2().wrap_connector(http);
    let pool = |http2_only: bool, connector: HttpsConnector<HttpConnector>| {
        Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_timer(TokioTimer::new())
            .pool_max_idle_per_host(512)
            .http2_only(http2_only)
            .timer(TokioTimer::new())
            .http2_keep_alive_interval(Duration::from_secs(20))
            .http2_keep_alive_timeout(Duration::from_secs(10))
            .build(connector)
    };
    Ok(HttpClient {
        connect_timeout,
        negotiated: pool(false, alpn),
        http1: pool(false, h1.clone()),
        h2c: pool(true, h1),
    })
}

/// The TLS settings for `https://` upstreams, the platform's roots: loaded once per process
/// (reading the system's certificate store takes milliseconds), shared by every worker's
/// clients.
fn platform_tls() -> Result<rustls::ClientConfig, ClientError> {
    use hyper_rustls::ConfigBuilderExt;
    static CONFIG: OnceLock<rustls::ClientConfig> = OnceLock::new();
    if let Some(config) = CONFIG.get() {
        return Ok(config.clone());
    }
    let config =
        rustls::ClientConfig::builder().try_with_platform_verifier().map_err(ClientError)?.with_no_client_auth();
    Ok(CONFIG.get_or_init(|| config).clone())
}

/// The path the upstream receives: the normalized request path, without the route prefix
/// when `strip_prefix` is set, under the upstream's base path, plus the original query.
pub fn upstream_uri(upstream: &Upstream, route: &Route, path: &str, query: Option<&str>) -> Result<Uri, ForwardError> {
    let mut target = String::with_capacity(upstream.base_path.len() + path.len() + query.map_or(0, |q| q.len() + 1));
    push_upstream_path(&mut target, upstream, route, path);
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

/// The path the upstream receives for `path` (normalized): without the route's prefix when
/// `strip_prefix` is set, under the upstream's base path; no query.
pub fn upstream_path(route: &Route, path: &str) -> String {
    let mut target = String::with_capacity(route.upstream.base_path.len() + path.len());
    push_upstream_path(&mut target, &route.upstream, route, path);
    target
}

fn push_upstream_path(target: &mut String, upstream: &Upstream, route: &Route, path: &str) {
    let path = if route.strip_prefix { strip_prefix(&route.path, path) } else { path };
    target.push_str(&upstream.base_path);
    target.push_str(path);
}

/// `path` without `prefix` (which it is known to match), always starting with `/`.
fn strip_prefix<'a>(prefix: &str, path: &'a str) -> &'a str {
    let prefix = prefix.trim_end_matches('/');
    match path.get(prefix.len()..) {
        Some(rest) if rest.starts_with('/') => rest,
        _ => "/",
    }
}

/// Sends the request by `via` and waits (at most `timeout`) for the response head.
///
/// # Errors
/// `GatewayTimeout`, `PayloadTooLarge` (body over the limit mid-stream) or `BadGateway`.
pub async fn send(
    via: Via<'_>,
    mut request: Request<RequestBody>,
    timeout: Duration,
) -> Result<Response<Body>, ForwardError> {
    // HTTP/1.1 to an HTTP/1.1 connection; an h2 connection sends whatever version as h2.
    *request.version_mut() = Version::HTTP_11;
    let exchange = async {
        match via {
            Via::Worker(connect_timeout) => match pool::send(request, connect_timeout).await {
                Ok(response) => Ok(response.map(|b| b.map_err(BoxError::from).boxed())),
                Err(error) => Err(BoxError::from(error)),
            },
            Via::Shared(client) => match client.request(request).await {
                Ok(response) => Ok(response.map(body::stream)),
                Err(error) => Err(BoxError::from(error)),
            },
        }
    };
    match tokio::time::timeout(timeout, exchange).await {
        Err(_) => Err(ForwardError::GatewayTimeout),
        Ok(Ok(response)) => Ok(response),
        Ok(Err(error)) => {
            let error: &(dyn std::error::Error + 'static) = error.as_ref();
            if caused_by::<BodyTooLarge>(error) {
                return Err(ForwardError::PayloadTooLarge);
            }
            if caused_by::<BodyTimeout>(error) {
                return Err(ForwardError::BodyTimeout);
            }
            tracing::warn!(error = %error_chain(error), "upstream request failed");
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
            accepts: crate::token_type::TokenTypes::SESSION,
            strip_prefix: strip,
            require: Requirements::default(),
            timeout: Duration::from_secs(1),
            max_body: None,
            authenticate_preflight: false,
            pass_credentials: true,
            claim_headers: Vec::new(),
            add_request_headers: Vec::new(),
            remove_request_headers: Vec::new(),
            cors: None,
        }
    }

    fn upstream(text: &str) -> Upstream {
        let uri: Uri = text.parse().unwrap();
        Upstream {
            scheme: uri.scheme().unwrap().clone(),
            authority: uri.authority().unwrap().clone(),
            base_path: uri.path().trim_end_matches('/').into(),
            h2c: false,
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
