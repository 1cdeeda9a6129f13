//! `AppState`: everything a request needs from one configuration, built at start-up and
//! again by each reload, sharing what outlives reloads (mirror, metrics, revocations, the
//! drain flag). Constructors and small accessors only; behaviour lives in the modules it holds.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use http::{HeaderName, HeaderValue};
use ipnet::IpNet;
use reqwest::Url;
use tokio_util::task::TaskTracker;

use crate::assertion::{self, Signer};
use crate::auth::jwks::KeyStore;
use crate::auth::machine::MachineSettings;
use crate::auth::revocation::RevokedSessions;
use crate::auth::{Authenticator, ClaimRules};
use crate::browser::{Browser, Decision};
use crate::clerk_api::ClerkApi;
use crate::clock::Clock;
use crate::config::{AssertionConfig, Config, ConfigError, CorsPolicy, IdentityHeaderNames, KeySource};
use crate::error::Error;
use crate::metrics::{Labels, Metrics, RouteMetrics};
use crate::mirror::{FileError, Mirror};
use crate::proxy::frontend::FrontendApiProxy;
use crate::proxy::{HttpClient, forward};
use crate::router::RouteTable;
use crate::users::{Directory, DirectorySettings};
use crate::webhook::events::EventKind;
use crate::webhook::{Outcome, Refusal, WebhookEndpoint};

/// What a request needs from one configuration: built at start-up, and again by each
/// reload, which swaps the whole of it at once (`Current`). A request holds the one it
/// started with until it ends, so a reload never changes the rules under it.
pub struct AppState {
    /// The route table.
    pub routes: RouteTable,
    /// `[cors]`: the CORS policy of the gateway's own paths and of requests no route takes.
    pub cors: Option<Arc<CorsPolicy>>,
    /// The per-route series of this route table.
    pub route_metrics: RouteMetrics,
    /// Session verification.
    pub auth: Authenticator,
    /// Clerk's browser-session rules (cookies, handshake).
    pub browser: Browser,
    /// The prefix of `/auth/me` and friends, when enabled.
    pub auth_endpoints: Option<String>,
    /// The path of the forward-auth verify endpoint, when enabled.
    pub forward_auth: Option<String>,
    /// The Frontend API proxy, when configured.
    pub frontend_proxy: Option<FrontendApiProxy>,
    /// Mirrored users, in front of the SQLite mirror (one for the life of the process).
    pub users: Arc<Directory>,
    /// The webhook endpoint, when `[webhook]` is configured.
    pub webhook: Option<WebhookEndpoint>,
    /// All metrics (one set for the life of the process).
    pub metrics: Arc<Metrics>,
    /// Identity header names.
    pub headers: IdentityHeaderNames,
    /// Every header a client may not send: the identity headers and those routes fill from
    /// claims, stripped from every request.
    pub stripped: Vec<HeaderName>,
    /// Where browsers go to sign in.
    pub sign_in_url: Option<Url>,
    /// `https` when TLS is terminated here, else `http`.
    pub scheme: &'static str,
    /// The time source.
    pub clock: Clock,
    /// Upgraded connections (WebSockets), tracked so shutdown can wait for them.
    pub tunnels: TaskTracker,
    /// Longest pause allowed between two chunks of a proxied request body.
    pub body_read_timeout: Duration,
    /// The identity assertion's signer, when `[assertion]` is on (one key per process).
    pub assertion: Option<Arc<Signer>>,
    trusted_proxies: Vec<IpNet>,
    process: Arc<Process>,
}

/// The configuration serving now, swapped whole by a reload.
pub type Current = Arc<ArcSwap<AppState>>;

/// What outlives every reload: the drain flag, request ids, the clients built at start.
struct Process {
    draining: AtomicBool,
    request_id_prefix: u64,
    request_counter: AtomicU64,
    upstream_connect_timeout: Duration,
    api_client: reqwest::Client,
    assertion: Option<Arc<Signer>>,
}

/// The parts of an `AppState` that every configuration shares.
struct Shared {
    users: Arc<Directory>,
    metrics: Arc<Metrics>,
    clock: Clock,
    tunnels: TaskTracker,
    process: Arc<Process>,
}

impl AppState {
    /// Builds the first state: HTTP clients, key store, mirror, user directory, metrics.
    ///
    /// # Errors
    /// `Error` when the mirror cannot be opened or a client cannot be built.
    pub async fn build(config: &Config, clock: Clock) -> Result<Arc<AppState>, Error> {
        let metrics = Arc::new(Metrics::new(Labels {
            auth_outcomes: Decision::metric_names(),
            webhook_types: EventKind::NAMES,
            webhook_outcomes: Outcome::NAMES,
            webhook_rejections: Refusal::NAMES,
        }));
        let api_client = api_client(config)?;
        let keys = KeyStore::new(&config.clerk.keys, api_client.clone(), clock.clone(), metrics.clone())?;
        let revoked = Arc::new(RevokedSessions::default());
        let users =
            Arc::new(directory(config, api_client.clone(), revoked.clone(), clock.clone(), metrics.clone()).await?);
        let restored = match users.load_revocations().await {
            Ok(restored) => restored,
            // A shared mirror not reachable yet: its change feed reloads them once it is.
            Err(error) if users.mirror().is_shared() => {
                tracing::warn!(%error, "revocations not loaded yet; they are once the mirror is reachable");
                0
            }
            Err(source) => return Err(FileError::new(users.mirror().path(), source).into()),
        };
        tracing::debug!(restored, "revocations restored from the mirror");
        users.follow_fleet();
        let api = users.api().cloned();
        let auth = Authenticator::new(
            Arc::new(keys),
            claim_rules(config),
            revoked,
            api,
            machine_settings(config),
            clock.clone(),
            metrics.clone(),
        );
        let browser = Browser::new(
            config.clerk.publishable_key.as_ref(),
            config.clerk.frontend_api_url.as_ref(),
            users.api().cloned(),
        );
        let process = Arc::new(Process {
            draining: AtomicBool::new(false),
            request_id_prefix: random_u64(),
            request_counter: AtomicU64::new(0),
            upstream_connect_timeout: config.server.upstream_connect_timeout,
            api_client,
            assertion: config.assertion.as_ref().map(signer).transpose()?.map(Arc::new),
        });
        let shared = Shared { users, metrics, clock, tunnels: TaskTracker::new(), process };
        Ok(Arc::new(Self::assemble(config, auth, browser, shared)?))
    }

    /// The state for a reloaded `config`, verifying with `keys` (this state's own store when
    /// the key source did not change; see `new_key_store`). Shares the mirror, metrics,
    /// revocations, clients and drain flag with this one; settings that only a restart
    /// applies (`Config::needs_restart`) are not read.
    ///
    /// # Errors
    /// `Error` when a part of `config` cannot be built (the webhook secret, the Frontend API
    /// proxy).
    pub fn reconfigured(&self, config: &Config, keys: Arc<KeyStore>) -> Result<AppState, Error> {
        let auth = self.auth.reconfigured(keys, claim_rules(config), machine_settings(config));
        let browser =
            self.browser.reconfigured(config.clerk.publishable_key.as_ref(), config.clerk.frontend_api_url.as_ref());
        let shared = Shared {
            users: self.users.clone(),
            metrics: self.metrics.clone(),
            clock: self.clock.clone(),
            tunnels: self.tunnels.clone(),
            process: self.process.clone(),
        };
        Self::assemble(config, auth, browser, shared)
    }

    /// A key store for `source`, not yet loaded (PEM keys are, at once).
    ///
    /// # Errors
    /// `Error::Keys` when a PEM key cannot be parsed.
    pub fn new_key_store(&self, source: &KeySource) -> Result<Arc<KeyStore>, Error> {
        let client = self.process.api_client.clone();
        Ok(Arc::new(KeyStore::new(source, client, self.clock.clone(), self.metrics.clone())?))
    }

    fn assemble(config: &Config, auth: Authenticator, browser: Browser, shared: Shared) -> Result<AppState, Error> {
        let frontend_proxy = frontend_proxy(config, &browser)?;
        let webhook = match &config.webhook {
            Some(w) => Some(WebhookEndpoint::new(&w.path, w.signing_secret.expose(), w.body_timeout)?),
            None => None,
        };
        let labels: Vec<String> = config.routes.iter().map(|r| r.name.to_string()).collect();
        let route_metrics = shared.metrics.route_metrics(&labels, config.webhook.as_ref().map(|w| w.path.as_str()));
        Ok(AppState {
            routes: RouteTable::new(config.routes.clone()),
            cors: config.cors.clone(),
            route_metrics,
            auth,
            browser,
            users: shared.users,
            webhook,
            auth_endpoints: config.auth_endpoints.clone(),
            forward_auth: config.forward_auth.clone(),
            frontend_proxy,
            metrics: shared.metrics,
            headers: config.headers.clone(),
            stripped: config
                .headers
                .all()
                .into_iter()
                .chain([&assertion::X_CLERK_GATEWAY_ASSERTION])
                .cloned()
                .chain(config.claim_header_names())
                .collect(),
            sign_in_url: config.clerk.sign_in_url.clone(),
            scheme: if config.server.tls.is_some() { "https" } else { "http" },
            clock: shared.clock,
            tunnels: shared.tunnels,
            body_read_timeout: config.server.body_read_timeout,
            assertion: shared.process.assertion.clone(),
            trusted_proxies: config.server.trusted_proxies.clone(),
            process: shared.process,
        })
    }

    /// A new pooled upstream client; each proxy worker has its own, so a request and its
    /// upstream connection are served by the same thread.
    ///
    /// # Errors
    /// `Error::UpstreamClient` when TLS roots cannot be loaded.
    pub fn upstream_client(&self) -> Result<HttpClient, Error> {
        Ok(forward::client(self.process.upstream_connect_timeout)?)
    }

    /// Ready to take traffic: keys loaded, not draining (the mirror is judged apart, by
    /// `Mirror::readiness`, which may write).
    pub fn is_ready(&self) -> bool {
        !self.is_draining() && self.auth.keys().is_ready()
    }

    /// Whether shutdown has begun.
    pub fn is_draining(&self) -> bool {
        self.process.draining.load(Ordering::Acquire)
    }

    /// Flips readiness to 503 for good (for every configuration, reloaded or not).
    pub fn begin_drain(&self) {
        self.process.draining.store(true, Ordering::Release);
    }

    /// Whether `ip` is a trusted proxy.
    pub fn is_trusted(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.trusted_proxies.iter().any(|net| net.contains(&ip))
    }

    /// A fresh request id: a per-process random prefix and a counter, as 32 hex digits.
    pub fn new_request_id(&self) -> HeaderValue {
        let n = self.process.request_counter.fetch_add(1, Ordering::Relaxed);
        let mut id = [0u8; 32];
        hex_into(&mut id[..16], self.process.request_id_prefix);
        hex_into(&mut id[16..], n);
        // One allocation that the id's copies (request, response, access log) share.
        HeaderValue::from_maybe_shared(bytes::Bytes::from_owner(id)).unwrap_or_else(|_| HeaderValue::from_static("0"))
    }
}

/// Writes `n` as lowercase hex, zero-padded to fill `out` (16 bytes for a `u64`).
fn hex_into(out: &mut [u8], n: u64) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (i, byte) in out.iter_mut().rev().enumerate() {
        *byte = DIGITS[((n >> (4 * i)) & 0xf) as usize];
    }
}

fn claim_rules(config: &Config) -> ClaimRules {
    ClaimRules {
        issuer: config.clerk.issuer.clone(),
        authorized_parties: config.clerk.authorized_parties.clone(),
        allow_missing_azp: config.clerk.allow_missing_azp,
        clock_skew: config.clerk.clock_skew,
        copied_claims: config.copied_claims(),
    }
}

fn machine_settings(config: &Config) -> MachineSettings {
    MachineSettings::new(&config.machine_tokens, config.clerk.clock_skew, config.copied_claims())
}

/// The assertion signer: the key file's key, else one generated now.
///
/// # Errors
/// `Error::Config` naming `assertion.key_file` when the file holds no usable key.
fn signer(config: &AssertionConfig) -> Result<Signer, Error> {
    let signer = match &config.key_file {
        Some(path) => Signer::from_file(path, config.lifetime)
            .map_err(|e| ConfigError::new("assertion.key_file", format!("{}: {e}", path.display())))?,
        None => Signer::generate(config.lifetime).map_err(|e| ConfigError::new("assertion", e.to_string()))?,
    };
    Ok(signer)
}

/// The one HTTP client for Clerk (JWKS and Backend API).
///
/// # Errors
/// `Error::HttpClient` when the client cannot be built.
pub fn api_client(config: &Config) -> Result<reqwest::Client, Error> {
    reqwest::Client::builder()
        .timeout(config.clerk.api_timeout)
        .connect_timeout(config.clerk.api_timeout)
        .user_agent(concat!("clerk-gateway/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(Error::HttpClient)
}

/// The Backend API client, when a secret key is configured.
pub fn clerk_api(config: &Config, client: reqwest::Client) -> Option<ClerkApi> {
    config.clerk.secret_key.clone().map(|secret| ClerkApi::new(client, &config.clerk.api_url, secret))
}

async fn directory(
    config: &Config,
    client: reqwest::Client,
    revoked: Arc<RevokedSessions>,
    clock: Clock,
    metrics: Arc<Metrics>,
) -> Result<Directory, Error> {
    let mirror = Mirror::from_config(&config.mirror, clock.clone()).await?;
    let settings = DirectorySettings {
        cache_size: config.mirror.cache_size,
        ttl: config.mirror.cache_ttl,
        fetch_timeout: config.mirror.fetch_timeout,
        revocation_retention: config.mirror.revocation_retention,
    };
    Ok(Directory::new(mirror, clerk_api(config, client), revoked, clock, metrics, settings))
}

/// The Frontend API proxy, when `clerk.proxy_path` is set.
///
/// # Errors
/// `Error::Config` when the Frontend API's URL is not known.
fn frontend_proxy(config: &Config, browser: &Browser) -> Result<Option<FrontendApiProxy>, Error> {
    let Some(proxy) = &config.clerk.proxy else { return Ok(None) };
    let base = browser.frontend_api().cloned().ok_or_else(|| {
        ConfigError::new("clerk.proxy_path", "the Frontend API proxy needs the Frontend API's URL (publishable_key)")
    })?;
    let secret = config.clerk.secret_key.as_ref();
    Ok(Some(FrontendApiProxy::new(&proxy.path, &proxy.url, base, secret, config.server.body_read_timeout)))
}

fn random_u64() -> u64 {
    let mut bytes = [0u8; 8];
    // A fixed prefix only makes ids less unique across processes; it is not a secret.
    let _ = aws_lc_rs::rand::fill(&mut bytes);
    u64::from_le_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::hex_into;

    #[test]
    fn ids_are_zero_padded_lowercase_hex() {
        let mut out = [0u8; 16];
        hex_into(&mut out, 0xabc);
        assert_eq!(&out, b"0000000000000abc");
        hex_into(&mut out, u64::MAX);
        assert_eq!(&out, b"ffffffffffffffff");
        hex_into(&mut out, 0x0123_4567_89ab_cdef);
        assert_eq!(&out, b"0123456789abcdef");
    }
}
