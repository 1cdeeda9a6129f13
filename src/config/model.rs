//! The validated configuration's types: `Config` and its sections, routes and secrets,
//! each one unable to hold an invalid value, and `ConfigError`, a key path with what is
//! wrong there (`ConfigErrors`: all of a file's). Parsing and validation live in `build.rs`.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, Method};
use ipnet::IpNet;
use reqwest::Url;

use crate::clerk_keys::PublishableKey;
use crate::token_type::TokenTypes;

/// A configuration problem: the key path and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// Dotted key path (`clerk.secret_key`, `route[0].upstream`), or the file name.
    pub path: String,
    /// What is wrong, in one line, never containing a secret.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() { f.write_str(&self.message) } else { write!(f, "{}: {}", self.path, self.message) }
    }
}

impl ConfigError {
    pub(crate) fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError { path: path.into(), message: message.into() }
    }
}

/// Every problem of a config, in the order of the file; never empty. Displayed on one line
/// (`a: why; b: why`), so a refused reload stays one log line; `iter` gives them one by one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(Vec<ConfigError>);

impl ConfigErrors {
    pub(super) fn new(problems: Vec<ConfigError>) -> Option<Self> {
        (!problems.is_empty()).then_some(ConfigErrors(problems))
    }

    /// The problems, in file order.
    pub fn iter(&self) -> impl Iterator<Item = &ConfigError> {
        self.0.iter()
    }
}

impl From<ConfigError> for ConfigErrors {
    fn from(problem: ConfigError) -> Self {
        ConfigErrors(vec![problem])
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

/// A secret value (key, signing secret): printable only on purpose.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// The validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `[server]`.
    pub server: ServerConfig,
    /// `[admin]`.
    pub admin: AdminConfig,
    /// `[clerk]`.
    pub clerk: ClerkConfig,
    /// `[webhook]`, when present.
    pub webhook: Option<WebhookConfig>,
    /// `[mirror]`.
    pub mirror: MirrorConfig,
    /// `[headers]`: the identity header names, defaults applied.
    pub headers: IdentityHeaderNames,
    /// `[auth_endpoints]`: the prefix of `/auth/me`, `/logout`, `/login`; `None` = off.
    pub auth_endpoints: Option<String>,
    /// `[cors]`: the policy of the gateway's own paths (`/auth/*`, 404s); `None` = off.
    pub cors: Option<Arc<CorsPolicy>>,
    /// `[machine_tokens]`.
    pub machine_tokens: MachineTokensConfig,
    /// `[forward_auth]`: the path of the verify endpoint; `None` = off.
    pub forward_auth: Option<String>,
    /// `[assertion]`, when enabled.
    pub assertion: Option<AssertionConfig>,
    /// `[[route]]`, in file order; `Route::index` is the position here.
    pub routes: Vec<Route>,
}

/// The CORS policy of a route (`[cors]` with the route's `cors` table over it): the
/// gateway answers preflights itself and is the only one to set `Access-Control-*` headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorsPolicy {
    /// The origins admitted; never empty.
    pub allow_origins: Vec<OriginPattern>,
    /// `Access-Control-Allow-Credentials: true` (cookies and `Authorization` may be sent).
    pub allow_credentials: bool,
    /// What a preflight's `Access-Control-Allow-Headers` says.
    pub allow_headers: AllowHeaders,
    /// `Access-Control-Expose-Headers`, when any are listed.
    pub expose_headers: Option<http::HeaderValue>,
    /// `Access-Control-Max-Age` in seconds, when set.
    pub max_age: Option<http::HeaderValue>,
}

/// Which origins a CORS policy admits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginPattern {
    /// `*`: any origin (never with credentials; answered as `*`).
    Any,
    /// One origin as browsers send it, lowercase: `https://app.example.com`.
    Exact(String),
    /// `https://*.example.com`: any subdomain (not the domain itself), same scheme and port.
    Subdomains {
        /// `https://`.
        scheme: String,
        /// `.example.com`, with `:port` when the pattern has one.
        suffix: String,
    },
}

/// The request headers a preflight may be told are allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowHeaders {
    /// These (`authorization, content-type` by default).
    Listed(http::HeaderValue),
    /// `["*"]`: whatever the preflight asks for.
    Requested,
}

/// The proxy listener.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    /// Address of the proxy listener.
    pub listen: SocketAddr,
    /// Certificate and key files when TLS is terminated here.
    pub tls: Option<TlsFiles>,
    /// Peers whose `X-Forwarded-*` and `X-Request-Id` headers are believed.
    pub trusted_proxies: Vec<IpNet>,
    /// After SIGTERM: how long the listener keeps accepting while readiness reports 503.
    pub drain_delay: Duration,
    /// After the drain delay: how long in-flight requests get to finish.
    pub grace_timeout: Duration,
    /// How long a client may take to send a request head.
    pub header_read_timeout: Duration,
    /// How long a TLS handshake may take.
    pub tls_handshake_timeout: Duration,
    /// How long connecting to an upstream may take.
    pub upstream_connect_timeout: Duration,
    /// Largest accepted request head; larger heads get 431.
    pub max_header_bytes: usize,
    /// Proxy worker threads, each with its own single-threaded runtime and upstream pool.
    pub workers: usize,
    /// Most connections open at once; more wait briefly, then are closed.
    pub max_connections: usize,
    /// How long a new connection may take to send its first bytes (the HTTP/2 preface, or
    /// the start of an HTTP/1.1 request).
    pub first_byte_timeout: Duration,
    /// How long a connection may stay open with no request in flight.
    pub idle_timeout: Duration,
    /// How often an HTTP/2 connection is pinged.
    pub http2_keepalive_interval: Duration,
    /// How long an HTTP/2 ping may go unanswered before the connection is closed.
    pub http2_keepalive_timeout: Duration,
    /// How long a request body may pause between two chunks.
    pub body_read_timeout: Duration,
}

/// Certificate chain and private key, both PEM.
#[derive(Debug, Clone, PartialEq)]
pub struct TlsFiles {
    /// Certificate chain.
    pub cert: PathBuf,
    /// Private key.
    pub key: PathBuf,
}

/// The admin listener (`/healthz`, `/readyz`, `/metrics`).
#[derive(Debug, Clone, PartialEq)]
pub struct AdminConfig {
    /// Address of the admin listener.
    pub listen: SocketAddr,
}

/// The Clerk instance and the token rules.
#[derive(Debug, Clone, PartialEq)]
pub struct ClerkConfig {
    /// Backend API secret key.
    pub secret_key: Option<Secret>,
    /// The instance's publishable key.
    pub publishable_key: Option<PublishableKey>,
    /// Where verification keys come from.
    pub keys: KeySource,
    /// Required `iss`, when known.
    pub issuer: Option<String>,
    /// Backend API base URL.
    pub api_url: Url,
    /// Accepted `azp` origins; empty = not checked.
    pub authorized_parties: Vec<String>,
    /// Accept tokens without `azp` even when `authorized_parties` is set.
    pub allow_missing_azp: bool,
    /// Tolerance for `exp`, `nbf` and `iat`.
    pub clock_skew: Duration,
    /// Where browsers are sent to sign in.
    pub sign_in_url: Option<Url>,
    /// Timeout for each JWKS or Backend API request.
    pub api_timeout: Duration,
    /// Where handshakes go, when not the Frontend API the publishable key names.
    pub frontend_api_url: Option<Url>,
    /// The Frontend API proxy, when one is served here.
    pub proxy: Option<FrontendProxy>,
}

/// Clerk's Frontend API proxied through this gateway (`/__clerk/*`).
#[derive(Debug, Clone, PartialEq)]
pub struct FrontendProxy {
    /// The path prefix served, e.g. `/__clerk`.
    pub path: String,
    /// The public URL of the proxy, sent as `Clerk-Proxy-Url`.
    pub url: Url,
}

/// Where the token-verification keys come from.
#[derive(Debug, Clone, PartialEq)]
pub enum KeySource {
    /// A PEM public key: no network at all.
    Pem(Secret),
    /// A JWKS endpoint, with the secret key sent as a Bearer token for the Backend API.
    Jwks {
        /// The endpoint.
        url: Url,
        /// Bearer credential (only sent to the Backend API's own origin).
        bearer: Option<Secret>,
    },
}

/// `[webhook]`.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookConfig {
    /// The path Svix posts to.
    pub path: String,
    /// The `whsec_…` signing secret.
    pub signing_secret: Secret,
    /// How long reading a whole delivery may take.
    pub body_timeout: Duration,
}

/// `[mirror]`.
#[derive(Debug, Clone, PartialEq)]
pub struct MirrorConfig {
    /// The SQLite file, or `:memory:` (unused with `url`).
    pub path: String,
    /// A Postgres database the mirror lives in instead (`postgres://…`), shared by replicas.
    pub url: Option<Secret>,
    /// How often `run` sweeps every user from the Backend API (needs the secret key).
    pub reconcile_every: Option<Duration>,
    /// How long a revoked session stays on the revocation list.
    pub revocation_retention: Duration,
    /// Most users kept in memory in front of SQLite.
    pub cache_size: usize,
    /// How long a user stays in memory without being read from SQLite again.
    pub cache_ttl: Duration,
    /// How long a request waits for a user missing from the mirror to be fetched from
    /// the Backend API before it is forwarded without enrichment.
    pub fetch_timeout: Duration,
}

/// `[machine_tokens]`: how verified API keys, M2M and OAuth tokens are remembered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineTokensConfig {
    /// How long a verified opaque token is trusted before the Backend API is asked again
    /// (never past the token's own expiry).
    pub cache_ttl: Duration,
    /// How long the Backend API's refusal of a token is remembered.
    pub refusal_ttl: Duration,
    /// How long a request waits for the Backend API to verify a token.
    pub verify_timeout: Duration,
    /// Most tokens remembered, verified and refused together.
    pub cache_size: usize,
}

/// `[assertion]`: `X-Clerk-Gateway-Assertion` on every forwarded request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssertionConfig {
    /// A PKCS#8 PEM private key (Ed25519 or P-256); `None`: a key generated at start.
    pub key_file: Option<PathBuf>,
    /// How long an assertion is valid (`exp - iat`).
    pub lifetime: Duration,
}

impl Default for MachineTokensConfig {
    fn default() -> Self {
        MachineTokensConfig {
            cache_ttl: Duration::from_secs(30),
            refusal_ttl: Duration::from_secs(60),
            verify_timeout: Duration::from_secs(3),
            cache_size: 10_000,
        }
    }
}

/// The names of every header the gateway sets for identity; all are stripped from clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityHeaderNames {
    /// `sub`.
    pub user_id: HeaderName,
    /// `sid`.
    pub session_id: HeaderName,
    /// Active organization id.
    pub org_id: HeaderName,
    /// Active organization role (`org:` prefixed).
    pub org_role: HeaderName,
    /// Active organization slug.
    pub org_slug: HeaderName,
    /// Comma-separated organization permissions.
    pub org_permissions: HeaderName,
    /// Primary email (mirror).
    pub user_email: HeaderName,
    /// Public metadata JSON (mirror).
    pub user_metadata: HeaderName,
    /// Profile JSON (mirror).
    pub user: HeaderName,
    /// `signed-in` / `signed-out`.
    pub auth_status: HeaderName,
    /// `session_token`, `api_key`, `m2m_token` or `oauth_token`.
    pub token_type: HeaderName,
    /// A machine token's id (`ak_…`, `mt_…`, `oat_…`).
    pub token_id: HeaderName,
    /// A machine token's `mch_…` subject.
    pub machine_id: HeaderName,
    /// A machine token's comma-separated scopes.
    pub scopes: HeaderName,
}

impl Config {
    /// Every header any route fills from claims: stripped from every client request, as
    /// identity headers are.
    pub fn claim_header_names(&self) -> Vec<HeaderName> {
        let mut names: Vec<HeaderName> =
            self.routes.iter().flat_map(|r| r.claim_headers.iter().map(|(h, _)| h.clone())).collect();
        names.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        names.dedup();
        names
    }

    /// Every claim path any route copies into a header, for verification to keep.
    pub fn copied_claims(&self) -> Vec<String> {
        let mut claims: Vec<String> =
            self.routes.iter().flat_map(|r| r.claim_headers.iter().map(|(_, c)| c.clone())).collect();
        claims.sort();
        claims.dedup();
        claims
    }
}

impl IdentityHeaderNames {
    /// Every configured name, for stripping.
    pub fn all(&self) -> [&HeaderName; 14] {
        [
            &self.user_id,
            &self.session_id,
            &self.org_id,
            &self.org_role,
            &self.org_slug,
            &self.org_permissions,
            &self.user_email,
            &self.user_metadata,
            &self.user,
            &self.auth_status,
            &self.token_type,
            &self.token_id,
            &self.machine_id,
            &self.scopes,
        ]
    }
}

impl Default for IdentityHeaderNames {
    fn default() -> Self {
        IdentityHeaderNames {
            user_id: HeaderName::from_static("x-user-id"),
            session_id: HeaderName::from_static("x-session-id"),
            org_id: HeaderName::from_static("x-org-id"),
            org_role: HeaderName::from_static("x-org-role"),
            org_slug: HeaderName::from_static("x-org-slug"),
            org_permissions: HeaderName::from_static("x-org-permissions"),
            user_email: HeaderName::from_static("x-user-email"),
            user_metadata: HeaderName::from_static("x-user-metadata"),
            user: HeaderName::from_static("x-user"),
            auth_status: HeaderName::from_static("x-auth-status"),
            token_type: HeaderName::from_static("x-auth-token-type"),
            token_id: HeaderName::from_static("x-auth-token-id"),
            machine_id: HeaderName::from_static("x-machine-id"),
            scopes: HeaderName::from_static("x-auth-scopes"),
        }
    }
}

/// How a route treats credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// No valid session, no entry.
    Required,
    /// Identity headers when signed in; forwarded either way.
    Optional,
    /// No verification at all (identity headers are still stripped).
    Public,
}

impl AuthMode {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMode::Required => "required",
            AuthMode::Optional => "optional",
            AuthMode::Public => "public",
        }
    }
}

/// Claim rules a route demands of a signed-in request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Requirements {
    /// The active organization role must be one of these.
    pub org_roles: Vec<String>,
    /// Every one of these permissions must be held in the active organization.
    pub permissions: Vec<String>,
    /// Every one of these scopes must be held by the machine token.
    pub scopes: Vec<String>,
    /// The user's public metadata (from the mirror) must contain this object.
    pub metadata: Option<serde_json::Value>,
}

impl Requirements {
    /// No rules at all.
    pub fn is_empty(&self) -> bool {
        self.org_roles.is_empty() && self.permissions.is_empty() && self.scopes.is_empty() && self.metadata.is_none()
    }
}

/// Where a route forwards to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    /// `http` or `https` (`http` for `h2c://` too: the scheme of the requests sent).
    pub scheme: http::uri::Scheme,
    /// Host and port.
    pub authority: http::uri::Authority,
    /// Path prefix on the upstream, without a trailing slash (`""` for none).
    pub base_path: String,
    /// `h2c://`: HTTP/2 without TLS by prior knowledge (the scheme is then `http`).
    pub h2c: bool,
}

impl fmt::Display for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.h2c { "h2c" } else { self.scheme.as_str() };
        write!(f, "{scheme}://{}{}", self.authority, self.base_path)
    }
}

/// One validated `[[route]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    /// Position in the file (0-based), used in errors.
    pub index: usize,
    /// `name`, else the host (if any) and path: the route in logs and metrics.
    pub name: Arc<str>,
    /// Path prefix, matched on segment boundaries.
    pub path: String,
    /// Host to match (lowercase, no port), if any.
    pub host: Option<String>,
    /// Methods to match, if restricted.
    pub methods: Option<Vec<Method>>,
    /// Where to forward.
    pub upstream: Upstream,
    /// Credential policy.
    pub auth: AuthMode,
    /// The kinds of token that may sign a request in (`accepts`).
    pub accepts: TokenTypes,
    /// Remove `path` from the forwarded path.
    pub strip_prefix: bool,
    /// Claim rules.
    pub require: Requirements,
    /// Deadline for the upstream's response head.
    pub timeout: Duration,
    /// Largest accepted request body.
    pub max_body: Option<u64>,
    /// Authenticate CORS preflights too (by default they are forwarded without).
    pub authenticate_preflight: bool,
    /// Forward the client's `Authorization` header and Clerk cookies upstream.
    pub pass_credentials: bool,
    /// Headers set from the verified session's claims: (header, claim path).
    pub claim_headers: Vec<(HeaderName, String)>,
    /// Headers set on every request forwarded on this route.
    pub add_request_headers: Vec<(HeaderName, http::HeaderValue)>,
    /// Client headers removed before forwarding.
    pub remove_request_headers: Vec<HeaderName>,
    /// Its CORS policy, when `[cors]` or its `cors` table admits any origin.
    pub cors: Option<Arc<CorsPolicy>>,
}
