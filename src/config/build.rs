//! Turns the raw file into `Config`: defaults, secrets from files and standard variables,
//! and every validation rule. Each error carries the key path of the value it rejects.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use http::{HeaderName, Method, Uri};
use ipnet::IpNet;
use reqwest::Url;

use super::expand::EnvLookup;
use super::model::{
    AdminConfig, AuthMode, ClerkConfig, Config, ConfigError, FrontendProxy, IdentityHeaderNames, KeySource,
    MirrorConfig, Requirements, Route, Secret, ServerConfig, TlsFiles, Upstream, WebhookConfig,
};
use super::raw::{
    RawAdmin, RawAuthEndpoints, RawClerk, RawConfig, RawHeaders, RawMirror, RawRequire, RawRoute, RawServer,
    RawWebhook, Size,
};
use super::units::{parse_duration, parse_size};
use crate::clerk_keys::{PublishableKey, check_secret_key};

const DEFAULT_LISTEN: &str = "0.0.0.0:8080";
/// Open connections at most, by default: well below a container's usual 64k descriptors.
const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:9090";
const DEFAULT_API_URL: &str = "https://api.clerk.com";
const DEFAULT_WEBHOOK_PATH: &str = "/webhooks/clerk";
const DEFAULT_MIRROR_PATH: &str = "clerk-gateway.db";
const MIN_HEADER_BYTES: u64 = 8 * 1024;

pub(super) fn build(raw: RawConfig, env: EnvLookup<'_>) -> Result<Config, ConfigError> {
    let upstream_timeout =
        timeout("server.upstream_timeout", raw.server.upstream_timeout.as_deref(), Duration::from_secs(30))?;
    let server = server(raw.server)?;
    let config = Config {
        server,
        admin: admin(raw.admin)?,
        clerk: clerk(raw.clerk, env)?,
        webhook: raw.webhook.map(|w| webhook(w, env)).transpose()?,
        mirror: mirror(raw.mirror)?,
        headers: headers(raw.headers)?,
        auth_endpoints: auth_endpoints(raw.auth_endpoints)?,
        routes: routes(raw.routes, upstream_timeout)?,
    };
    if config.clerk.proxy.is_some() && (config.clerk.secret_key.is_none() || config.clerk.publishable_key.is_none()) {
        return Err(ConfigError::new(
            "clerk.proxy_path",
            "the Frontend API proxy needs secret_key and publishable_key",
        ));
    }
    if config.mirror.reconcile_every.is_some() && config.clerk.secret_key.is_none() {
        return Err(ConfigError::new(
            "mirror.reconcile_every",
            "needs clerk.secret_key to read users from the Backend API",
        ));
    }
    if config.server.listen == config.admin.listen && config.server.listen.port() != 0 {
        return Err(ConfigError::new("admin.listen", "must differ from server.listen"));
    }
    Ok(config)
}

fn server(raw: RawServer) -> Result<ServerConfig, ConfigError> {
    let tls = match (raw.tls_cert, raw.tls_key) {
        (Some(cert), Some(key)) => Some(TlsFiles { cert: cert.into(), key: key.into() }),
        (None, None) => None,
        (Some(_), None) => return Err(ConfigError::new("server.tls_key", "required when tls_cert is set")),
        (None, Some(_)) => return Err(ConfigError::new("server.tls_cert", "required when tls_key is set")),
    };
    let trusted_proxies = raw
        .trusted_proxies
        .iter()
        .enumerate()
        .map(|(i, text)| parse_net(text).map_err(|m| ConfigError::new(format!("server.trusted_proxies[{i}]"), m)))
        .collect::<Result<_, _>>()?;
    let max_header_bytes = match raw.max_header_size {
        None => 64 * 1024,
        Some(size) => {
            let bytes = size_value("server.max_header_size", size)?;
            if bytes < MIN_HEADER_BYTES {
                return Err(ConfigError::new("server.max_header_size", "must be at least 8KiB"));
            }
            usize::try_from(bytes).map_err(|_| ConfigError::new("server.max_header_size", "too large"))?
        }
    };
    Ok(ServerConfig {
        listen: socket_addr("server.listen", raw.listen.as_deref().unwrap_or(DEFAULT_LISTEN))?,
        tls,
        trusted_proxies,
        drain_delay: duration("server.drain_delay", raw.drain_delay.as_deref(), Duration::from_secs(5))?,
        grace_timeout: duration("server.grace_timeout", raw.grace_timeout.as_deref(), Duration::from_secs(25))?,
        header_read_timeout: timeout(
            "server.header_read_timeout",
            raw.header_read_timeout.as_deref(),
            Duration::from_secs(10),
        )?,
        tls_handshake_timeout: timeout(
            "server.tls_handshake_timeout",
            raw.tls_handshake_timeout.as_deref(),
            Duration::from_secs(10),
        )?,
        upstream_connect_timeout: timeout(
            "server.upstream_connect_timeout",
            raw.upstream_connect_timeout.as_deref(),
            Duration::from_secs(5),
        )?,
        max_header_bytes,
        workers: match raw.workers {
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
            Some(n @ 1..=256) => n,
            Some(_) => return Err(ConfigError::new("server.workers", "expected 1 to 256")),
        },
        max_connections: match raw.max_connections {
            None => DEFAULT_MAX_CONNECTIONS,
            Some(n @ 1..=1_000_000) => n,
            Some(_) => return Err(ConfigError::new("server.max_connections", "expected 1 to 1000000")),
        },
        first_byte_timeout: timeout("server.first_byte_timeout", raw.first_byte_timeout.as_deref(), secs(10))?,
        idle_timeout: timeout("server.idle_timeout", raw.idle_timeout.as_deref(), secs(60))?,
        http2_keepalive_interval: timeout(
            "server.http2_keepalive_interval",
            raw.http2_keepalive_interval.as_deref(),
            secs(20),
        )?,
        http2_keepalive_timeout: timeout(
            "server.http2_keepalive_timeout",
            raw.http2_keepalive_timeout.as_deref(),
            secs(10),
        )?,
        body_read_timeout: timeout("server.body_read_timeout", raw.body_read_timeout.as_deref(), secs(30))?,
    })
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn admin(raw: RawAdmin) -> Result<AdminConfig, ConfigError> {
    Ok(AdminConfig { listen: socket_addr("admin.listen", raw.listen.as_deref().unwrap_or(DEFAULT_ADMIN_LISTEN))? })
}

fn clerk(raw: RawClerk, env: EnvLookup<'_>) -> Result<ClerkConfig, ConfigError> {
    let secret_key = secret("clerk", "secret_key", raw.secret_key, raw.secret_key_file, "CLERK_SECRET_KEY", env)?;
    if let Some(key) = &secret_key {
        check_secret_key(key).map_err(|m| ConfigError::new("clerk.secret_key", m))?;
    }
    let publishable_key = secret(
        "clerk",
        "publishable_key",
        raw.publishable_key,
        raw.publishable_key_file,
        "CLERK_PUBLISHABLE_KEY",
        env,
    )?
    .map(|pk| PublishableKey::parse(&pk).map_err(|m| ConfigError::new("clerk.publishable_key", m)))
    .transpose()?;
    let jwt_key = secret("clerk", "jwt_key", raw.jwt_key, raw.jwt_key_file, "CLERK_JWT_KEY", env)?
        .map(|pem| check_pem(&pem).map_err(|m| ConfigError::new("clerk.jwt_key", m)))
        .transpose()?;
    let api_url = http_url("clerk.api_url", raw.api_url.as_deref().unwrap_or(DEFAULT_API_URL))?;
    let secret_key = secret_key.map(Secret::new);
    let keys = key_source(jwt_key, raw.jwks_url, &api_url, secret_key.as_ref(), publishable_key.as_ref())?;
    let issuer = match raw.issuer.filter(|i| !i.is_empty()) {
        Some(issuer) => Some(http_url("clerk.issuer", &issuer).map(|_| issuer.trim_end_matches('/').to_owned())?),
        None => publishable_key.as_ref().map(PublishableKey::issuer),
    };
    Ok(ClerkConfig {
        secret_key,
        publishable_key,
        keys,
        issuer,
        api_url,
        authorized_parties: authorized_parties(raw.authorized_parties.unwrap_or_default())?,
        allow_missing_azp: raw.allow_missing_azp.unwrap_or(false),
        clock_skew: clock_skew(raw.clock_skew.as_deref())?,
        sign_in_url: raw
            .sign_in_url
            .filter(|u| !u.is_empty())
            .map(|u| http_url("clerk.sign_in_url", &u))
            .transpose()?,
        api_timeout: timeout("clerk.api_timeout", raw.api_timeout.as_deref(), Duration::from_secs(5))?,
        frontend_api_url: raw
            .frontend_api_url
            .filter(|u| !u.is_empty())
            .map(|u| http_url("clerk.frontend_api_url", &u).map(with_trailing_slash))
            .transpose()?,
        proxy: frontend_proxy(raw.proxy_path, raw.proxy_url)?,
    })
}

fn with_trailing_slash(mut url: Url) -> Url {
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    url
}

fn frontend_proxy(path: Option<String>, url: Option<String>) -> Result<Option<FrontendProxy>, ConfigError> {
    match (path.filter(|p| !p.is_empty()), url.filter(|u| !u.is_empty())) {
        (None, None) => Ok(None),
        (Some(path), Some(url)) => {
            check_route_path(&path).map_err(|m| ConfigError::new("clerk.proxy_path", m))?;
            if path == "/" {
                return Err(ConfigError::new(
                    "clerk.proxy_path",
                    "the proxy needs a path of its own, e.g. \"/__clerk\"",
                ));
            }
            let url = http_url("clerk.proxy_url", &url)?;
            Ok(Some(FrontendProxy { path: path.trim_end_matches('/').to_owned(), url }))
        }
        (Some(_), None) => {
            Err(ConfigError::new("clerk.proxy_url", "required with proxy_path (the proxy's public URL)"))
        }
        (None, Some(_)) => Err(ConfigError::new("clerk.proxy_path", "required with proxy_url")),
    }
}

fn auth_endpoints(raw: RawAuthEndpoints) -> Result<Option<String>, ConfigError> {
    if raw.enabled == Some(false) {
        return Ok(None);
    }
    let prefix = raw.prefix.filter(|p| !p.is_empty()).unwrap_or_else(|| "/auth".into());
    check_route_path(&prefix).map_err(|m| ConfigError::new("auth_endpoints.prefix", m))?;
    if prefix == "/" {
        return Err(ConfigError::new("auth_endpoints.prefix", "needs a path of its own, e.g. \"/auth\""));
    }
    Ok(Some(prefix.trim_end_matches('/').to_owned()))
}

/// Session tokens live a minute; a skew of minutes would accept long-expired tokens.
fn clock_skew(text: Option<&str>) -> Result<Duration, ConfigError> {
    let skew = duration("clerk.clock_skew", text, Duration::from_secs(5))?;
    if skew > Duration::from_secs(120) {
        return Err(ConfigError::new("clerk.clock_skew", "at most 2m (session tokens live about a minute)"));
    }
    Ok(skew)
}

fn key_source(
    jwt_key: Option<String>,
    jwks_url: Option<String>,
    api_url: &Url,
    secret_key: Option<&Secret>,
    publishable_key: Option<&PublishableKey>,
) -> Result<KeySource, ConfigError> {
    if let Some(pem) = jwt_key {
        return Ok(KeySource::Pem(Secret::new(pem)));
    }
    if let Some(url) = jwks_url.filter(|u| !u.is_empty()) {
        let url = http_url("clerk.jwks_url", &url)?;
        // The secret key only ever goes to the Backend API's own origin.
        let bearer = secret_key.filter(|_| url.origin() == api_url.origin()).cloned();
        return Ok(KeySource::Jwks { url, bearer });
    }
    if let Some(secret) = secret_key {
        let url = api_url
            .join("v1/jwks")
            .map_err(|e| ConfigError::new("clerk.api_url", format!("cannot derive the JWKS URL: {e}")))?;
        return Ok(KeySource::Jwks { url, bearer: Some(secret.clone()) });
    }
    if let Some(pk) = publishable_key {
        let url = Url::parse(&pk.jwks_url()).map_err(|e| ConfigError::new("clerk.publishable_key", e.to_string()))?;
        return Ok(KeySource::Jwks { url, bearer: None });
    }
    Err(ConfigError::new(
        "clerk",
        "no way to verify tokens: set jwt_key, secret_key, publishable_key or jwks_url \
         (or CLERK_JWT_KEY / CLERK_SECRET_KEY / CLERK_PUBLISHABLE_KEY)",
    ))
}

fn mirror(raw: RawMirror) -> Result<MirrorConfig, ConfigError> {
    let reconcile_every = raw
        .reconcile_every
        .filter(|r| !r.is_empty())
        .map(|r| parse_duration(&r).map_err(|m| ConfigError::new("mirror.reconcile_every", m)))
        .transpose()?;
    if reconcile_every.is_some_and(|d| d < Duration::from_secs(60)) {
        return Err(ConfigError::new("mirror.reconcile_every", "at least 1m (each sweep reads every user)"));
    }
    Ok(MirrorConfig {
        path: raw.path.filter(|p| !p.is_empty()).unwrap_or_else(|| DEFAULT_MIRROR_PATH.into()),
        reconcile_every,
        revocation_retention: duration(
            "mirror.revocation_retention",
            raw.revocation_retention.as_deref(),
            Duration::from_secs(24 * 3600),
        )?,
        cache_size: match raw.cache_size {
            None => 100_000,
            Some(n @ 1..) => n,
            Some(0) => return Err(ConfigError::new("mirror.cache_size", "must be at least 1")),
        },
        cache_ttl: duration("mirror.cache_ttl", raw.cache_ttl.as_deref(), Duration::from_secs(300))?,
        fetch_timeout: timeout("mirror.fetch_timeout", raw.fetch_timeout.as_deref(), Duration::from_millis(1500))?,
    })
}

fn webhook(raw: RawWebhook, env: EnvLookup<'_>) -> Result<WebhookConfig, ConfigError> {
    let path = raw.path.filter(|p| !p.is_empty()).unwrap_or_else(|| DEFAULT_WEBHOOK_PATH.into());
    check_route_path(&path).map_err(|m| ConfigError::new("webhook.path", m))?;
    let secret = secret(
        "webhook",
        "signing_secret",
        raw.signing_secret,
        raw.signing_secret_file,
        "CLERK_WEBHOOK_SIGNING_SECRET",
        env,
    )?
    .ok_or_else(|| ConfigError::new("webhook.signing_secret", "required (or CLERK_WEBHOOK_SIGNING_SECRET)"))?;
    check_signing_secret(&secret).map_err(|m| ConfigError::new("webhook.signing_secret", m))?;
    let body_timeout = timeout("webhook.body_timeout", raw.body_timeout.as_deref(), Duration::from_secs(10))?;
    Ok(WebhookConfig { path, signing_secret: Secret::new(secret), body_timeout })
}

fn headers(raw: RawHeaders) -> Result<IdentityHeaderNames, ConfigError> {
    let d = IdentityHeaderNames::default();
    let names = IdentityHeaderNames {
        user_id: header_name("headers.user_id", raw.user_id, d.user_id)?,
        session_id: header_name("headers.session_id", raw.session_id, d.session_id)?,
        org_id: header_name("headers.org_id", raw.org_id, d.org_id)?,
        org_role: header_name("headers.org_role", raw.org_role, d.org_role)?,
        org_slug: header_name("headers.org_slug", raw.org_slug, d.org_slug)?,
        org_permissions: header_name("headers.org_permissions", raw.org_permissions, d.org_permissions)?,
        user_email: header_name("headers.user_email", raw.user_email, d.user_email)?,
        user_metadata: header_name("headers.user_metadata", raw.user_metadata, d.user_metadata)?,
        user: header_name("headers.user", raw.user, d.user)?,
        auth_status: header_name("headers.auth_status", raw.auth_status, d.auth_status)?,
    };
    let mut seen = HashSet::new();
    for name in names.all() {
        if !seen.insert(name.clone()) {
            return Err(ConfigError::new("headers", format!("{name} is used for two identity headers")));
        }
    }
    Ok(names)
}

/// Headers the gateway or HTTP itself owns; none may be renamed into an identity header.
const RESERVED_HEADERS: &[&str] = &[
    "authorization",
    "connection",
    "content-length",
    "content-type",
    "cookie",
    "forwarded",
    "host",
    "keep-alive",
    "proxy-authorization",
    "proxy-connection",
    "set-cookie",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-request-id",
];

fn header_name(path: &str, value: Option<String>, default: HeaderName) -> Result<HeaderName, ConfigError> {
    let Some(text) = value else { return Ok(default) };
    let name = HeaderName::from_bytes(text.as_bytes())
        .map_err(|_| ConfigError::new(path, format!("{text:?} is not a valid header name")))?;
    if RESERVED_HEADERS.contains(&name.as_str()) {
        return Err(ConfigError::new(path, format!("{name} is reserved and cannot carry identity")));
    }
    Ok(name)
}

fn routes(raw: Vec<RawRoute>, default_timeout: Duration) -> Result<Vec<Route>, ConfigError> {
    let routes =
        raw.into_iter().enumerate().map(|(i, r)| route(i, r, default_timeout)).collect::<Result<Vec<_>, _>>()?;
    for (i, a) in routes.iter().enumerate() {
        if let Some(b) = routes[..i].iter().find(|b| overlaps(a, b)) {
            return Err(ConfigError::new(
                format!("route[{i}]"),
                format!(
                    "matches the same requests as route[{}] ({} {})",
                    b.index,
                    b.host.as_deref().unwrap_or("*"),
                    b.path
                ),
            ));
        }
    }
    Ok(routes)
}

fn overlaps(a: &Route, b: &Route) -> bool {
    let methods_overlap = match (&a.methods, &b.methods) {
        (Some(x), Some(y)) => x.iter().any(|m| y.contains(m)),
        (None, None) => true,
        // A method-specific route refines a catch-all one on the same prefix.
        _ => false,
    };
    let (pa, pb) = (a.path.trim_end_matches('/'), b.path.trim_end_matches('/'));
    pa.eq_ignore_ascii_case(pb) && a.host == b.host && methods_overlap
}

fn route(index: usize, raw: RawRoute, default_timeout: Duration) -> Result<Route, ConfigError> {
    let at = |key: &str| format!("route[{index}].{key}");
    check_route_path(&raw.path).map_err(|m| ConfigError::new(at("path"), m))?;
    let auth = match raw.auth.as_deref().unwrap_or("required") {
        "required" => AuthMode::Required,
        "optional" => AuthMode::Optional,
        "public" => AuthMode::Public,
        other => {
            return Err(ConfigError::new(at("auth"), format!("expected required, optional or public, got {other:?}")));
        }
    };
    let require = requirements(&at("require"), raw.require.unwrap_or_default())?;
    if !require.is_empty() && auth != AuthMode::Required {
        return Err(ConfigError::new(at("require"), "rules need auth = \"required\""));
    }
    Ok(Route {
        index,
        host: raw.host.map(|h| route_host(&h).map_err(|m| ConfigError::new(at("host"), m))).transpose()?,
        methods: raw.methods.map(|m| methods(&at("methods"), m)).transpose()?,
        upstream: upstream(&raw.upstream).map_err(|m| ConfigError::new(at("upstream"), m))?,
        auth,
        strip_prefix: raw.strip_prefix.unwrap_or(false),
        require,
        timeout: timeout(&at("timeout"), raw.timeout.as_deref(), default_timeout)?,
        max_body: raw.max_body.map(|s| size_value(&at("max_body"), s)).transpose()?,
        authenticate_preflight: raw.authenticate_preflight.unwrap_or(false),
        path: raw.path,
    })
}

fn requirements(path: &str, raw: RawRequire) -> Result<Requirements, ConfigError> {
    let metadata = match raw.metadata {
        None => None,
        Some(table) if table.is_empty() => {
            return Err(ConfigError::new(format!("{path}.metadata"), "an empty table requires nothing; remove it"));
        }
        Some(table) => Some(
            serde_json::to_value(table)
                .map_err(|e| ConfigError::new(format!("{path}.metadata"), format!("not representable as JSON: {e}")))?,
        ),
    };
    let org_roles = raw.org_role.map(|r| r.into_vec()).unwrap_or_default();
    for (i, role) in org_roles.iter().enumerate() {
        if !role.starts_with("org:") || role.len() == 4 {
            return Err(ConfigError::new(format!("{path}.org_role[{i}]"), "roles look like \"org:admin\""));
        }
    }
    let permissions = raw.permission.map(|p| p.into_vec()).unwrap_or_default();
    for (i, perm) in permissions.iter().enumerate() {
        let parts: Vec<&str> = perm.split(':').collect();
        if parts.len() != 3 || parts[0] != "org" || parts[1].is_empty() || parts[2].is_empty() {
            return Err(ConfigError::new(
                format!("{path}.permission[{i}]"),
                "permissions look like \"org:<feature>:<permission>\"",
            ));
        }
    }
    Ok(Requirements { org_roles, permissions, metadata })
}

fn methods(path: &str, raw: Vec<String>) -> Result<Vec<Method>, ConfigError> {
    if raw.is_empty() {
        return Err(ConfigError::new(path, "an empty list matches nothing; remove the key to match every method"));
    }
    raw.iter()
        .enumerate()
        .map(|(i, m)| {
            let upper = m.to_ascii_uppercase();
            Method::from_bytes(upper.as_bytes())
                .map_err(|_| ConfigError::new(format!("{path}[{i}]"), format!("{m:?} is not an HTTP method")))
        })
        .collect()
}

fn upstream(text: &str) -> Result<Upstream, String> {
    let uri: Uri = text.parse().map_err(|_| format!("{text:?} is not a URL"))?;
    let (Some(scheme), Some(authority)) = (uri.scheme(), uri.authority()) else {
        return Err(format!("relative URL {text:?}: expected http://host:port"));
    };
    if scheme != &http::uri::Scheme::HTTP && scheme != &http::uri::Scheme::HTTPS {
        return Err(format!("unsupported scheme {scheme}: expected http or https"));
    }
    if uri.query().is_some() || authority.as_str().contains('@') {
        return Err("an upstream URL has no query string or user info".into());
    }
    let base_path = uri.path().trim_end_matches('/');
    if !base_path.is_empty() {
        check_route_path(base_path)?;
    }
    Ok(Upstream { scheme: scheme.clone(), authority: authority.clone(), base_path: base_path.to_owned() })
}

/// A route or webhook path must already be in the normal form requests are routed on.
fn check_route_path(path: &str) -> Result<(), String> {
    if !path.starts_with('/') {
        return Err(format!("{path:?} must start with /"));
    }
    match crate::path::normalize(path) {
        Ok(normal) if normal == path && !path.contains(['?', '#', '%']) => Ok(()),
        _ => Err(format!("{path:?} is not a normalized path (no //, dot segments, %, ? or #)")),
    }
}

fn route_host(host: &str) -> Result<String, String> {
    let ok = !host.is_empty() && host.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-'));
    if ok { Ok(host.to_ascii_lowercase()) } else { Err(format!("{host:?} is not a host name (no port, no scheme)")) }
}

fn authorized_parties(raw: Vec<String>) -> Result<Vec<String>, ConfigError> {
    raw.into_iter()
        .enumerate()
        .map(|(i, origin)| {
            let path = format!("clerk.authorized_parties[{i}]");
            let url = http_url(&path, &origin)?;
            if origin.ends_with('/') || url.path() != "/" || url.query().is_some() {
                let hint = url.origin().ascii_serialization();
                return Err(ConfigError::new(path, format!("an origin has no path or trailing slash: {hint:?}")));
            }
            Ok(origin)
        })
        .collect()
}

/// Reads a secret from its inline key, its `_file` key, or the standard variable.
fn secret(
    section: &str,
    key: &str,
    inline: Option<String>,
    file: Option<String>,
    standard_var: &str,
    env: EnvLookup<'_>,
) -> Result<Option<String>, ConfigError> {
    let inline = inline.filter(|v| !v.is_empty());
    let file = file.filter(|v| !v.is_empty());
    match (inline, file) {
        (Some(_), Some(_)) => {
            Err(ConfigError::new(format!("{section}.{key}"), format!("set {key} or {key}_file, not both")))
        }
        (Some(value), None) => Ok(Some(value)),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| ConfigError::new(format!("{section}.{key}_file"), format!("cannot read {path}: {e}")))?;
            let value = text.trim().to_owned();
            if value.is_empty() {
                return Err(ConfigError::new(format!("{section}.{key}_file"), format!("{path} is empty")));
            }
            Ok(Some(value))
        }
        (None, None) => Ok(env(standard_var).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())),
    }
}

/// Accepts a PEM RSA public key; a PEM pasted into an env var with literal `\n` is repaired.
fn check_pem(pem: &str) -> Result<String, String> {
    let pem = if pem.contains("\\n") && !pem.contains('\n') { pem.replace("\\n", "\n") } else { pem.to_owned() };
    jsonwebtoken::DecodingKey::from_rsa_pem(pem.as_bytes())
        .map_err(|_| "expected a PEM RSA public key (-----BEGIN PUBLIC KEY-----)".to_owned())?;
    Ok(pem)
}

fn check_signing_secret(secret: &str) -> Result<(), String> {
    use base64::Engine;
    let body = secret.strip_prefix("whsec_").unwrap_or(secret);
    match base64::engine::general_purpose::STANDARD.decode(body) {
        Ok(key) if !key.is_empty() => Ok(()),
        _ => Err("expected a Svix signing secret (whsec_ followed by base64)".into()),
    }
}

fn duration(path: &str, text: Option<&str>, default: Duration) -> Result<Duration, ConfigError> {
    text.map_or(Ok(default), |t| parse_duration(t).map_err(|m| ConfigError::new(path, m)))
}

/// A deadline: zero would fail every request (or never load keys), so it is refused.
fn timeout(path: &str, text: Option<&str>, default: Duration) -> Result<Duration, ConfigError> {
    let value = duration(path, text, default)?;
    if value.is_zero() {
        return Err(ConfigError::new(path, "a timeout of zero would fail every request"));
    }
    Ok(value)
}

fn size_value(path: &str, size: Size) -> Result<u64, ConfigError> {
    match size {
        Size::Bytes(n) => Ok(n),
        Size::Text(t) => parse_size(&t).map_err(|m| ConfigError::new(path, m)),
    }
}

fn socket_addr(path: &str, text: &str) -> Result<SocketAddr, ConfigError> {
    text.parse().map_err(|_| ConfigError::new(path, format!("expected ip:port like \"0.0.0.0:8080\", got {text:?}")))
}

fn http_url(path: &str, text: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(text).map_err(|e| ConfigError::new(path, format!("{text:?} is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(ConfigError::new(path, format!("expected an absolute http(s) URL, got {text:?}")));
    }
    Ok(url)
}

fn parse_net(text: &str) -> Result<IpNet, String> {
    text.parse::<IpNet>()
        .or_else(|_| text.parse::<std::net::IpAddr>().map(IpNet::from))
        .map_err(|_| format!("expected an IP address or CIDR like \"10.0.0.0/8\", got {text:?}"))
}
