//! Authentication: from a session token to a signed-in `Identity` or a signed-out `Reason`.
//! Owns credential reading, the key store, token and claim checks, the verified-token cache
//! and the revocation list. Never forwards requests and never touches SQLite.

pub mod cache;
pub mod claims;
pub mod credential;
pub mod jwks;
pub mod policy;
pub mod reason;
pub mod revocation;
pub mod token;

use std::sync::Arc;

pub use claims::ClaimRules;
pub use reason::Reason;

use crate::clock::Clock;
use crate::identity::Identity;
use crate::metrics::Metrics;
use cache::TokenCache;
use jwks::KeyStore;
use revocation::RevokedSessions;

/// How many verified tokens are remembered.
pub const TOKEN_CACHE_CAPACITY: usize = 65_536;

/// Verifies session tokens for one Clerk instance.
pub struct Authenticator {
    keys: Arc<KeyStore>,
    rules: ClaimRules,
    cache: Arc<TokenCache>,
    clock: Clock,
    metrics: Arc<Metrics>,
    revoked: Arc<RevokedSessions>,
}

impl Authenticator {
    /// Builds an authenticator over `keys`; `revoked` is the revocation list the webhook
    /// path feeds.
    pub fn new(
        keys: Arc<KeyStore>,
        rules: ClaimRules,
        revoked: Arc<RevokedSessions>,
        clock: Clock,
        metrics: Arc<Metrics>,
    ) -> Self {
        let cache = Arc::new(TokenCache::new(TOKEN_CACHE_CAPACITY));
        Authenticator { keys, rules, cache, clock, metrics, revoked }
    }

    /// The authenticator of a reloaded configuration: `keys` and `rules`, the same revocation
    /// list, and the same verified tokens when neither the keys nor the rules changed.
    pub fn reconfigured(&self, keys: Arc<KeyStore>, rules: ClaimRules) -> Self {
        let unchanged = Arc::ptr_eq(&keys, &self.keys) && rules == self.rules;
        let cache = if unchanged { self.cache.clone() } else { Arc::new(TokenCache::new(TOKEN_CACHE_CAPACITY)) };
        let (clock, metrics, revoked) = (self.clock.clone(), self.metrics.clone(), self.revoked.clone());
        Authenticator { keys, rules, cache, clock, metrics, revoked }
    }

    /// The key store (for readiness and background loading).
    pub fn keys(&self) -> &Arc<KeyStore> {
        &self.keys
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

    /// Verifies a token's signature and every claim rule except the time claims, without the
    /// cache or the revocation list: which session an expired token belongs to (logout).
    ///
    /// # Errors
    /// The reason the token proves nothing.
    pub async fn verify_ignoring_time(&self, token: &str) -> Result<Arc<Identity>, Reason> {
        let parsed = token::parse(token)?;
        let verify_key = self.keys.resolve(parsed.kid.as_deref()).await?;
        token::verify_signature(&parsed, &verify_key)?;
        claims::check_ignoring_time(&parsed.claims, &self.rules)
    }

    /// Cache first, then signature, then claims.
    async fn verify_token(&self, token: &str) -> Result<Arc<Identity>, Reason> {
        if token.len() > token::MAX_TOKEN_BYTES {
            return Err(Reason::TokenInvalid);
        }
        let now_ms = self.clock.now_ms();
        if let Some(identity) = self.cache.get(token, now_ms) {
            self.metrics.token_cache(true);
            return Ok(identity);
        }
        self.metrics.token_cache(false);
        let parsed = token::parse(token)?;
        let verify_key = self.keys.resolve(parsed.kid.as_deref()).await?;
        token::verify_signature(&parsed, &verify_key)?;
        let identity = claims::check(&parsed.claims, &self.rules, self.clock.now_ms())?;
        self.cache.insert(token, identity.clone());
        Ok(identity)
    }
}
