//! Authentication: from request headers to a signed-in `Identity` or a signed-out `Reason`.
//! Owns credential extraction, the key store, token and claim checks, and the verified-token
//! cache. Never forwards requests and never touches SQLite.

pub mod cache;
pub mod claims;
pub mod credential;
pub mod jwks;
pub mod policy;
pub mod reason;
pub mod revocation;
pub mod token;

use std::sync::Arc;

use http::HeaderMap;

pub use claims::{ClaimRules, Identity};
use credential::Credential;
pub use reason::Reason;

use crate::clock::Clock;
use crate::metrics::Metrics;
use cache::TokenCache;
use jwks::KeyStore;
use revocation::RevokedSessions;

/// How many verified tokens are remembered.
pub const TOKEN_CACHE_CAPACITY: usize = 65_536;

/// The result of authenticating a request.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// A valid session.
    SignedIn(Arc<Identity>),
    /// No valid session, and why; `token_sent` says whether the client offered a credential.
    SignedOut {
        /// Clerk's reason.
        reason: Reason,
        /// The request carried something meant as a credential.
        token_sent: bool,
    },
}

impl Outcome {
    /// Metric labels of every outcome: `signed-in`, then each reason in index order.
    pub fn metric_names() -> Vec<&'static str> {
        std::iter::once("signed-in").chain(Reason::ALL.iter().map(|r| r.as_str())).collect()
    }

    /// This outcome's position in `metric_names`.
    pub fn metric_index(&self) -> usize {
        match self {
            Outcome::SignedIn(_) => 0,
            Outcome::SignedOut { reason, .. } => reason.index() + 1,
        }
    }
}

/// Verifies session tokens for one Clerk instance.
pub struct Authenticator {
    keys: Arc<KeyStore>,
    rules: ClaimRules,
    cache: TokenCache,
    clock: Clock,
    metrics: Arc<Metrics>,
    suffixed_cookie: Option<String>,
    revoked: Arc<RevokedSessions>,
}

impl Authenticator {
    /// Builds an authenticator over `keys`. `cookie_suffix` comes from the publishable key;
    /// `revoked` is the revocation list the webhook path feeds.
    pub fn new(
        keys: Arc<KeyStore>,
        rules: ClaimRules,
        cookie_suffix: Option<&str>,
        revoked: Arc<RevokedSessions>,
        clock: Clock,
        metrics: Arc<Metrics>,
    ) -> Self {
        Authenticator {
            keys,
            rules,
            cache: TokenCache::new(TOKEN_CACHE_CAPACITY),
            clock,
            metrics,
            suffixed_cookie: cookie_suffix.map(|s| format!("{}_{s}", credential::SESSION_COOKIE)),
            revoked,
        }
    }

    /// The key store (for readiness and background loading).
    pub fn keys(&self) -> &Arc<KeyStore> {
        &self.keys
    }

    /// Authenticates a request by its headers.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Outcome {
        let credential = credential::extract(headers, self.suffixed_cookie.as_deref());
        let token_sent = credential.was_sent();
        let result = match credential {
            Credential::Missing => Err(Reason::SessionTokenMissing),
            Credential::Ambiguous => Err(Reason::TokenInvalid),
            Credential::Bearer(token) | Credential::Cookie(token) => self.verify(token).await,
        };
        match result {
            Ok(identity) => Outcome::SignedIn(identity),
            Err(reason) => Outcome::SignedOut { reason, token_sent },
        }
    }

    /// Verifies one session token and checks its session is not revoked.
    ///
    /// # Errors
    /// The signed-out reason.
    pub async fn verify(&self, token: &str) -> Result<Arc<Identity>, Reason> {
        let identity = self.verify_token(token).await?;
        if self.revoked.contains(&identity.session_id, self.clock.now_ms()) {
            return Err(Reason::SessionRevoked);
        }
        Ok(identity)
    }

    /// Cache first, then signature, then claims.
    async fn verify_token(&self, token: &str) -> Result<Arc<Identity>, Reason> {
        if token.len() > token::MAX_TOKEN_BYTES {
            return Err(Reason::TokenInvalid);
        }
        let key = cache::key_of(token);
        let now_ms = self.clock.now_ms();
        if let Some(identity) = self.cache.get(&key, now_ms) {
            self.metrics.token_cache(true);
            return Ok(identity);
        }
        self.metrics.token_cache(false);
        let parsed = token::parse(token)?;
        let verify_key = self.keys.resolve(parsed.kid.as_deref()).await?;
        token::verify_signature(&parsed, &verify_key)?;
        let identity = claims::check(&parsed.claims, &self.rules, self.clock.now_ms())?;
        self.cache.insert(key, identity.clone(), now_ms);
        Ok(identity)
    }
}
