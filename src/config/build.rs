//! Turns the raw file into `Config`: defaults and the rules of each section, and the rules
//! across sections. Routes are `routes.rs`'s, single values `values.rs`'s. Each error
//! carries the key path of the value it rejects.

use std::collections::HashSet;
use std::time::Duration;

use http::HeaderName;
use reqwest::Url;

use super::expand::EnvLookup;
use super::model::{
    AdminConfig, ClerkConfig, Config, ConfigError, FrontendProxy, IdentityHeaderNames, KeySource, MirrorConfig, Secret,
    ServerConfig, TlsFiles, WebhookConfig,
};
use super::raw::{RawAdmin, RawAuthEndpoints, RawClerk, RawConfig, RawHeaders, RawMirror, RawServer, RawWebhook};
use super::routes::{check_route_path, routes};
use super::units::parse_duration;
use super::values::{
    check_pem, check_signing_secret, duration, http_url, parse_net, secret, secs, size_value, socket_addr, timeout,
};
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
    check_route_headers(&config)?;
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

/// A route may not set an identity header by name: those come from the session only.
fn check_route_headers(config: &Config) -> Result<(), ConfigError> {
    let identity = config.headers.all();
    for route in &config.routes {
        let claims = route.claim_headers.iter().map(|(h, _)| ("claim_headers", h));
        let added = route.add_request_headers.iter().map(|(h, _)| ("add_request_headers", h));
        if let Some((key, header)) = claims.chain(added).find(|(_, h)| identity.contains(h)) {
            let path = format!("route[{}].{key}.{header}", route.index);
            return Err(ConfigError::new(path, "is an identity header: only the verified session sets it"));
        }
    }
    Ok(())
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
