//! Turns the raw file into `Config`: defaults and the rules of each section, and the rules
//! across sections. Routes are `routes.rs`'s, single values `values.rs`'s. Each error
//! carries the key path of the value it rejects.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use http::HeaderName;
use reqwest::Url;

use super::cors;
use super::expand::EnvLookup;
use super::model::{
    AdminConfig, AssertionConfig, ClerkConfig, Config, ConfigError, FrontendProxy, IdentityHeaderNames, KeySource,
    MachineTokensConfig, MirrorConfig, Secret, ServerConfig, TlsFiles, WebhookConfig,
};
use super::problems::Problems;
use super::raw::{
    RawAdmin, RawAssertion, RawAuthEndpoints, RawClerk, RawConfig, RawForwardAuth, RawHeaders, RawMachineTokens,
    RawMirror, RawServer, RawWebhook, Size,
};
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

/// An address for a listener whose key has a problem: never bound, as such a config is refused.
const STAND_IN_ADDR: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0);

/// The config `raw` describes, noting every problem in `p`; with any problem, the config
/// is only a stand-in to check the rest against.
pub(super) fn build(raw: RawConfig, env: EnvLookup<'_>, p: &mut Problems) -> Config {
    let upstream_timeout =
        p.ok(timeout("server.upstream_timeout", raw.server.upstream_timeout.as_deref(), secs(30))).unwrap_or(secs(30));
    let cors = cors::section(raw.cors, p);
    let config = Config {
        cors: cors.policy.clone(),
        server: server(raw.server, p),
        admin: admin(raw.admin, p),
        clerk: clerk(raw.clerk, env, p),
        webhook: raw.webhook.and_then(|w| webhook(w, env, p)),
        mirror: mirror(raw.mirror, env, p),
        headers: headers(raw.headers, p),
        auth_endpoints: auth_endpoints(raw.auth_endpoints, p),
        machine_tokens: machine_tokens(raw.machine_tokens, p),
        forward_auth: forward_auth(raw.forward_auth, p),
        assertion: assertion(raw.assertion, p),
        routes: routes(raw.routes, upstream_timeout, &cors, p),
    };
    across_sections(&config, p);
    config
}

/// The rules that tie one section's keys to another's, checked where those keys are sound.
fn across_sections(config: &Config, p: &mut Problems) {
    let clerk = &config.clerk;
    let keys_known =
        !secret_has_problem(p, "clerk", "secret_key") && !secret_has_problem(p, "clerk", "publishable_key");
    if clerk.proxy.is_some() && keys_known && (clerk.secret_key.is_none() || clerk.publishable_key.is_none()) {
        p.push(ConfigError::new("clerk.proxy_path", "the Frontend API proxy needs secret_key and publishable_key"));
    }
    if config.mirror.reconcile_every.is_some() && keys_known && clerk.secret_key.is_none() {
        p.push(ConfigError::new("mirror.reconcile_every", "needs clerk.secret_key to read users from the Backend API"));
    }
    if keys_known && clerk.secret_key.is_none() {
        for route in config.routes.iter().filter(|r| r.accepts.any_machine()) {
            let path = format!("route[{}].accepts", route.index);
            p.push(ConfigError::new(path, "machine tokens are verified with the Backend API: needs clerk.secret_key"));
        }
    }
    let owned = [
        config.webhook.as_ref().map(|w| ("webhook.path", w.path.as_str())),
        config.auth_endpoints.as_deref().map(|a| ("auth_endpoints.prefix", a)),
    ];
    if let Some(path) = &config.forward_auth
        && let Some((key, _)) = owned.iter().flatten().find(|(_, other)| under(other, path) || under(path, other))
    {
        p.push(ConfigError::new("forward_auth.path", format!("overlaps {key}")));
    }
    if config.server.listen == config.admin.listen && config.server.listen.port() != 0 {
        p.push(ConfigError::new("admin.listen", "must differ from server.listen"));
    }
    if !p.about("headers") {
        check_route_headers(config, p);
    }
}

/// Whether `path` is `prefix` or under it, on a segment boundary.
fn under(path: &str, prefix: &str) -> bool {
    let prefix = prefix.trim_end_matches('/');
    path.strip_prefix(prefix).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// Whether a secret was given (inline or as a `_file`) but could not be used.
fn secret_has_problem(p: &Problems, section: &str, key: &str) -> bool {
    p.about(&format!("{section}.{key}")) || p.about(&format!("{section}.{key}_file"))
}

fn server(raw: RawServer, p: &mut Problems) -> ServerConfig {
    let tls = match (raw.tls_cert, raw.tls_key) {
        (Some(cert), Some(key)) => Some(TlsFiles { cert: cert.into(), key: key.into() }),
        (None, None) => None,
        (Some(_), None) => {
            p.push(ConfigError::new("server.tls_key", "required when tls_cert is set"));
            None
        }
        (None, Some(_)) => {
            p.push(ConfigError::new("server.tls_cert", "required when tls_key is set"));
            None
        }
    };
    let trusted_proxies = raw
        .trusted_proxies
        .iter()
        .enumerate()
        .filter_map(|(i, text)| {
            p.ok(parse_net(text).map_err(|m| ConfigError::new(format!("server.trusted_proxies[{i}]"), m)))
        })
        .collect();
    ServerConfig {
        listen: p
            .ok(socket_addr("server.listen", raw.listen.as_deref().unwrap_or(DEFAULT_LISTEN)))
            .unwrap_or(STAND_IN_ADDR),
        tls,
        trusted_proxies,
        drain_delay: p.take(duration("server.drain_delay", raw.drain_delay.as_deref(), secs(5))),
        grace_timeout: p.take(duration("server.grace_timeout", raw.grace_timeout.as_deref(), secs(25))),
        header_read_timeout: p.take(timeout(
            "server.header_read_timeout",
            raw.header_read_timeout.as_deref(),
            secs(10),
        )),
        tls_handshake_timeout: p.take(timeout(
            "server.tls_handshake_timeout",
            raw.tls_handshake_timeout.as_deref(),
            secs(10),
        )),
        upstream_connect_timeout: p.take(timeout(
            "server.upstream_connect_timeout",
            raw.upstream_connect_timeout.as_deref(),
            secs(5),
        )),
        max_header_bytes: p.take(max_header_bytes(raw.max_header_size)),
        workers: p.take(match raw.workers {
            None => Ok(std::thread::available_parallelism().map_or(1, |n| n.get())),
            Some(n @ 1..=256) => Ok(n),
            Some(_) => Err(ConfigError::new("server.workers", "expected 1 to 256")),
        }),
        max_connections: p.take(match raw.max_connections {
            None => Ok(DEFAULT_MAX_CONNECTIONS),
            Some(n @ 1..=1_000_000) => Ok(n),
            Some(_) => Err(ConfigError::new("server.max_connections", "expected 1 to 1000000")),
        }),
        first_byte_timeout: p.take(timeout("server.first_byte_timeout", raw.first_byte_timeout.as_deref(), secs(10))),
        idle_timeout: p.take(timeout("server.idle_timeout", raw.idle_timeout.as_deref(), secs(60))),
        http2_keepalive_interval: p.take(timeout(
            "server.http2_keepalive_interval",
            raw.http2_keepalive_interval.as_deref(),
            secs(20),
        )),
        http2_keepalive_timeout: p.take(timeout(
            "server.http2_keepalive_timeout",
            raw.http2_keepalive_timeout.as_deref(),
            secs(10),
        )),
        body_read_timeout: p.take(timeout("server.body_read_timeout", raw.body_read_timeout.as_deref(), secs(30))),
    }
}

fn max_header_bytes(size: Option<Size>) -> Result<usize, ConfigError> {
    let Some(size) = size else { return Ok(64 * 1024) };
    let bytes = size_value("server.max_header_size", size)?;
    if bytes < MIN_HEADER_BYTES {
        return Err(ConfigError::new("server.max_header_size", "must be at least 8KiB"));
    }
    usize::try_from(bytes).map_err(|_| ConfigError::new("server.max_header_size", "too large"))
}

fn admin(raw: RawAdmin, p: &mut Problems) -> AdminConfig {
    let listen = socket_addr("admin.listen", raw.listen.as_deref().unwrap_or(DEFAULT_ADMIN_LISTEN));
    AdminConfig { listen: p.ok(listen).unwrap_or(STAND_IN_ADDR) }
}

fn clerk(raw: RawClerk, env: EnvLookup<'_>, p: &mut Problems) -> ClerkConfig {
    let secret_key =
        p.take(secret("clerk", "secret_key", raw.secret_key, raw.secret_key_file, "CLERK_SECRET_KEY", env)).and_then(
            |key| p.ok(check_secret_key(&key).map_err(|m| ConfigError::new("clerk.secret_key", m))).map(|()| key),
        );
    let publishable_key = p
        .take(secret(
            "clerk",
            "publishable_key",
            raw.publishable_key,
            raw.publishable_key_file,
            "CLERK_PUBLISHABLE_KEY",
            env,
        ))
        .and_then(|pk| p.ok(PublishableKey::parse(&pk).map_err(|m| ConfigError::new("clerk.publishable_key", m))));
    let jwt_key = p
        .take(secret("clerk", "jwt_key", raw.jwt_key, raw.jwt_key_file, "CLERK_JWT_KEY", env))
        .and_then(|pem| p.ok(check_pem(&pem).map_err(|m| ConfigError::new("clerk.jwt_key", m))));
    let default_api = || Url::parse(DEFAULT_API_URL).expect("the default API URL parses");
    let api_url = p.ok(http_url("clerk.api_url", raw.api_url.as_deref().unwrap_or(DEFAULT_API_URL)));
    let api_url = api_url.unwrap_or_else(default_api);
    let secret_key = secret_key.map(Secret::new);
    let sources = Sources {
        jwt_key,
        jwks_url: raw.jwks_url,
        secret_key: secret_key.as_ref(),
        publishable_key: publishable_key.as_ref(),
    };
    let keys = key_source(sources, &api_url, p);
    let issuer = match raw.issuer.filter(|i| !i.is_empty()) {
        Some(issuer) => p.ok(http_url("clerk.issuer", &issuer)).map(|_| issuer.trim_end_matches('/').to_owned()),
        None => publishable_key.as_ref().map(PublishableKey::issuer),
    };
    let optional_url = |p: &mut Problems, key: &str, text: Option<String>| {
        text.filter(|u| !u.is_empty()).and_then(|u| p.ok(http_url(key, &u)))
    };
    ClerkConfig {
        secret_key,
        publishable_key,
        keys,
        issuer,
        api_url,
        authorized_parties: authorized_parties(raw.authorized_parties.unwrap_or_default(), p),
        allow_missing_azp: raw.allow_missing_azp.unwrap_or(false),
        clock_skew: p.take(clock_skew(raw.clock_skew.as_deref())),
        sign_in_url: optional_url(p, "clerk.sign_in_url", raw.sign_in_url),
        api_timeout: p.take(timeout("clerk.api_timeout", raw.api_timeout.as_deref(), secs(5))),
        frontend_api_url: optional_url(p, "clerk.frontend_api_url", raw.frontend_api_url).map(with_trailing_slash),
        proxy: p.take(frontend_proxy(raw.proxy_path, raw.proxy_url)),
    }
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

fn auth_endpoints(raw: RawAuthEndpoints, p: &mut Problems) -> Option<String> {
    if raw.enabled == Some(false) {
        return None;
    }
    let prefix = raw.prefix.filter(|p| !p.is_empty()).unwrap_or_else(|| "/auth".into());
    let checked = check_route_path(&prefix)
        .and_then(|()| if prefix == "/" { Err("needs a path of its own, e.g. \"/auth\"".to_owned()) } else { Ok(()) });
    p.ok(checked.map_err(|m| ConfigError::new("auth_endpoints.prefix", m)))?;
    Some(prefix.trim_end_matches('/').to_owned())
}

/// The identity assertion: off unless enabled; a lifetime of 1 s to 10 min.
fn assertion(raw: RawAssertion, p: &mut Problems) -> Option<AssertionConfig> {
    let lifetime = duration("assertion.lifetime", raw.lifetime.as_deref(), secs(30)).and_then(|d| {
        if d < secs(1) || d > secs(600) {
            Err(ConfigError::new("assertion.lifetime", "expected 1s to 10m (assertions are short-lived)"))
        } else {
            Ok(d)
        }
    });
    let lifetime = p.ok(lifetime).unwrap_or(secs(30));
    let key_file = raw.key_file.filter(|k| !k.is_empty()).map(PathBuf::from);
    (raw.enabled == Some(true)).then_some(AssertionConfig { key_file, lifetime })
}

/// The verify endpoint: off unless enabled; its path is the gateway's own (and every path
/// under it, for Envoy's `path_prefix`).
fn forward_auth(raw: RawForwardAuth, p: &mut Problems) -> Option<String> {
    let path = raw.path.filter(|p| !p.is_empty()).unwrap_or_else(|| "/_clerk_gateway/verify".into());
    let checked = check_route_path(&path)
        .and_then(|()| if path == "/" { Err("needs a path of its own".to_owned()) } else { Ok(()) });
    let path = p.ok(checked.map_err(|m| ConfigError::new("forward_auth.path", m))).map(|()| path);
    if raw.enabled != Some(true) {
        return None;
    }
    Some(path?.trim_end_matches('/').to_owned())
}

/// Session tokens live a minute; a skew of minutes would accept long-expired tokens.
fn clock_skew(text: Option<&str>) -> Result<Duration, ConfigError> {
    let skew = duration("clerk.clock_skew", text, Duration::from_secs(5))?;
    if skew > Duration::from_secs(120) {
        return Err(ConfigError::new("clerk.clock_skew", "at most 2m (session tokens live about a minute)"));
    }
    Ok(skew)
}

/// The settings a verification key can come from, first to last.
struct Sources<'a> {
    jwt_key: Option<String>,
    jwks_url: Option<String>,
    secret_key: Option<&'a Secret>,
    publishable_key: Option<&'a PublishableKey>,
}

fn key_source(sources: Sources<'_>, api_url: &Url, p: &mut Problems) -> KeySource {
    let stand_in = || KeySource::Jwks { url: api_url.clone(), bearer: None };
    if let Some(pem) = sources.jwt_key {
        return KeySource::Pem(Secret::new(pem));
    }
    if let Some(url) = sources.jwks_url.filter(|u| !u.is_empty()) {
        let Some(url) = p.ok(http_url("clerk.jwks_url", &url)) else { return stand_in() };
        // The secret key only ever goes to the Backend API's own origin.
        let bearer = sources.secret_key.filter(|_| url.origin() == api_url.origin()).cloned();
        return KeySource::Jwks { url, bearer };
    }
    if let Some(secret) = sources.secret_key {
        let url = api_url
            .join("v1/jwks")
            .map_err(|e| ConfigError::new("clerk.api_url", format!("cannot derive the JWKS URL: {e}")));
        let Some(url) = p.ok(url) else { return stand_in() };
        return KeySource::Jwks { url, bearer: Some(secret.clone()) };
    }
    if let Some(pk) = sources.publishable_key {
        let url = Url::parse(&pk.jwks_url()).map_err(|e| ConfigError::new("clerk.publishable_key", e.to_string()));
        let Some(url) = p.ok(url) else { return stand_in() };
        return KeySource::Jwks { url, bearer: None };
    }
    // A key that was given but is wrong has its own problem; this one is for no key at all.
    if !["jwt_key", "secret_key", "publishable_key"].iter().any(|k| secret_has_problem(p, "clerk", k)) {
        p.push(ConfigError::new(
            "clerk",
            "no way to verify tokens: set jwt_key, secret_key, publishable_key or jwks_url \
             (or CLERK_JWT_KEY / CLERK_SECRET_KEY / CLERK_PUBLISHABLE_KEY)",
        ));
    }
    stand_in()
}

/// `mirror.url` (or `url_file`): a `postgres://` or `postgresql://` URL, instead of `path`.
fn mirror_url(
    raw_path: Option<&str>,
    url: Option<String>,
    url_file: Option<String>,
    env: EnvLookup<'_>,
    p: &mut Problems,
) -> Option<Secret> {
    let url = p.ok(secret("mirror", "url", url, url_file, "CLERK_GATEWAY_MIRROR_URL", env)).flatten()?;
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        p.push(ConfigError::new("mirror.url", "expected postgres://user:password@host:port/database"));
        return None;
    }
    if raw_path.is_some_and(|path| !path.is_empty()) {
        p.push(ConfigError::new("mirror.url", "set path (SQLite) or url (Postgres), not both"));
        return None;
    }
    Some(Secret::new(url))
}

fn mirror(raw: RawMirror, env: EnvLookup<'_>, p: &mut Problems) -> MirrorConfig {
    let url = mirror_url(raw.path.as_deref(), raw.url, raw.url_file, env, p);
    let reconcile_every = raw.reconcile_every.filter(|r| !r.is_empty()).and_then(|r| {
        let every = parse_duration(&r).and_then(|d| {
            if d < secs(60) { Err("at least 1m (each sweep reads every user)".to_owned()) } else { Ok(d) }
        });
        p.ok(every.map_err(|m| ConfigError::new("mirror.reconcile_every", m)))
    });
    MirrorConfig {
        path: raw.path.filter(|p| !p.is_empty()).unwrap_or_else(|| DEFAULT_MIRROR_PATH.into()),
        url,
        reconcile_every,
        revocation_retention: p.take(duration(
            "mirror.revocation_retention",
            raw.revocation_retention.as_deref(),
            secs(24 * 3600),
        )),
        cache_size: match raw.cache_size {
            None => 100_000,
            Some(n @ 1..) => n,
            Some(0) => {
                p.push(ConfigError::new("mirror.cache_size", "must be at least 1"));
                1
            }
        },
        cache_ttl: p.take(duration("mirror.cache_ttl", raw.cache_ttl.as_deref(), secs(300))),
        fetch_timeout: p.take(timeout(
            "mirror.fetch_timeout",
            raw.fetch_timeout.as_deref(),
            Duration::from_millis(1500),
        )),
    }
}

fn machine_tokens(raw: RawMachineTokens, p: &mut Problems) -> MachineTokensConfig {
    let d = MachineTokensConfig::default();
    MachineTokensConfig {
        cache_ttl: p.take(duration("machine_tokens.cache_ttl", raw.cache_ttl.as_deref(), d.cache_ttl)),
        refusal_ttl: p.take(duration("machine_tokens.refusal_ttl", raw.refusal_ttl.as_deref(), d.refusal_ttl)),
        verify_timeout: p.take(timeout(
            "machine_tokens.verify_timeout",
            raw.verify_timeout.as_deref(),
            d.verify_timeout,
        )),
        cache_size: match raw.cache_size {
            None => d.cache_size,
            Some(n @ 1..) => n,
            Some(0) => {
                p.push(ConfigError::new("machine_tokens.cache_size", "must be at least 1"));
                1
            }
        },
    }
}

fn webhook(raw: RawWebhook, env: EnvLookup<'_>, p: &mut Problems) -> Option<WebhookConfig> {
    let path = raw.path.filter(|p| !p.is_empty()).unwrap_or_else(|| DEFAULT_WEBHOOK_PATH.into());
    p.ok(check_route_path(&path).map_err(|m| ConfigError::new("webhook.path", m)));
    let secret = secret(
        "webhook",
        "signing_secret",
        raw.signing_secret,
        raw.signing_secret_file,
        "CLERK_WEBHOOK_SIGNING_SECRET",
        env,
    )
    .and_then(|s| {
        s.ok_or_else(|| ConfigError::new("webhook.signing_secret", "required (or CLERK_WEBHOOK_SIGNING_SECRET)"))
    })
    .and_then(|s| check_signing_secret(&s).map(|()| s).map_err(|m| ConfigError::new("webhook.signing_secret", m)));
    let body_timeout = p.take(timeout("webhook.body_timeout", raw.body_timeout.as_deref(), secs(10)));
    Some(WebhookConfig { path, signing_secret: Secret::new(p.ok(secret)?), body_timeout })
}

/// A route may not set an identity header by name: those come from the session only.
fn check_route_headers(config: &Config, p: &mut Problems) {
    let identity = config.headers.all();
    for route in &config.routes {
        let claims = route.claim_headers.iter().map(|(h, _)| ("claim_headers", h));
        let added = route.add_request_headers.iter().map(|(h, _)| ("add_request_headers", h));
        for (key, header) in claims.chain(added).filter(|(_, h)| identity.contains(h)) {
            let path = format!("route[{}].{key}.{header}", route.index);
            p.push(ConfigError::new(path, "is an identity header: only the verified session sets it"));
        }
    }
}

fn headers(raw: RawHeaders, p: &mut Problems) -> IdentityHeaderNames {
    let d = IdentityHeaderNames::default();
    let mut name = |path: &str, value: Option<String>, default: HeaderName| {
        p.ok(header_name(path, value, &default)).unwrap_or(default)
    };
    let names = IdentityHeaderNames {
        user_id: name("headers.user_id", raw.user_id, d.user_id),
        session_id: name("headers.session_id", raw.session_id, d.session_id),
        org_id: name("headers.org_id", raw.org_id, d.org_id),
        org_role: name("headers.org_role", raw.org_role, d.org_role),
        org_slug: name("headers.org_slug", raw.org_slug, d.org_slug),
        org_permissions: name("headers.org_permissions", raw.org_permissions, d.org_permissions),
        user_email: name("headers.user_email", raw.user_email, d.user_email),
        user_metadata: name("headers.user_metadata", raw.user_metadata, d.user_metadata),
        user: name("headers.user", raw.user, d.user),
        auth_status: name("headers.auth_status", raw.auth_status, d.auth_status),
        token_type: name("headers.token_type", raw.token_type, d.token_type),
        token_id: name("headers.token_id", raw.token_id, d.token_id),
        machine_id: name("headers.machine_id", raw.machine_id, d.machine_id),
        scopes: name("headers.scopes", raw.scopes, d.scopes),
    };
    let mut seen = HashSet::new();
    if let Some(twice) = names.all().into_iter().find(|name| !seen.insert(*name)) {
        p.push(ConfigError::new("headers", format!("{twice} is used for two identity headers")));
    }
    names
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

fn header_name(path: &str, value: Option<String>, default: &HeaderName) -> Result<HeaderName, ConfigError> {
    let Some(text) = value else { return Ok(default.clone()) };
    let name = HeaderName::from_bytes(text.as_bytes())
        .map_err(|_| ConfigError::new(path, format!("{text:?} is not a valid header name")))?;
    if RESERVED_HEADERS.contains(&name.as_str()) {
        return Err(ConfigError::new(path, format!("{name} is reserved and cannot carry identity")));
    }
    Ok(name)
}

fn authorized_parties(raw: Vec<String>, p: &mut Problems) -> Vec<String> {
    let party = |i: usize, origin: String| {
        let path = format!("clerk.authorized_parties[{i}]");
        let url = http_url(&path, &origin)?;
        if origin.ends_with('/') || url.path() != "/" || url.query().is_some() {
            let hint = url.origin().ascii_serialization();
            return Err(ConfigError::new(path, format!("an origin has no path or trailing slash: {hint:?}")));
        }
        Ok(origin)
    };
    raw.into_iter().enumerate().filter_map(|(i, origin)| p.ok(party(i, origin))).collect()
}
