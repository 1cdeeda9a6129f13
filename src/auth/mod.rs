//! Authentication: from a session token to a signed-in `Identity`, or from a machine token
//! to a `Machine`, or to a signed-out `Reason`. Owns credential reading, the key store,
//! token and claim checks, the verified-token caches and the revocation list. Never
//! forwards requests and never touches SQLite.

pub mod cache;
pub mod claims;
pub mod credential;
pub mod jwks;
pub mod machine;
pub mod policy;
pub mod reason;
pub mod revocation;
pub mod token;

use std::sync::Arc;

pub use claims::ClaimRules;
pub use reason::Reason;

use crate::clerk_api::ClerkApi;
use crate::clock::Clock;
use crate::identity::{Identity, Machine};
use crate::metrics::Metrics;
use crate::token_type::TokenType;
use cache::TokenCache;
use jwks::KeyStore;
use machine::{MachineError, MachineSettings, MachineVerifier};
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
    machines: Arc<MachineVerifier>,
    api: Option<ClerkApi>,
}

impl Authenticator {
    /// Builds an authenticator over `keys`; `revoked` is the revocation list the webhook
    /// path feeds (session ids and machine token ids); `api` verifies opaque machine tokens.
    pub fn new(
        keys: Arc<KeyStore>,
        rules: ClaimRules,
        revoked: Arc<RevokedSessions>,
        api: Option<ClerkApi>,
        machine: MachineSettings,
        clock: Clock,
        metrics: Arc<Metrics>,
    ) -> Self {
        let cache = Arc::new(TokenCache::new(TOKEN_CACHE_CAPACITY));
        let machines = Arc::new(MachineVerifier::new(api.clone(), machine, revoked.clone(), clock.clone()));
        Authenticator { keys, rules, cache, clock, metrics, revoked, machines, api }
    }

    /// The authenticator of a reloaded configuration: `keys`, `rules` and `machine`, the
    /// same revocation list and Backend API client, and the same verified tokens when
    /// neither the keys nor the rules changed (machine tokens: when `machine` did not).
    pub fn reconfigured(&self, keys: Arc<KeyStore>, rules: ClaimRules, machine: MachineSettings) -> Self {
        let unchanged = Arc::ptr_eq(&keys, &self.keys) && rules == self.rules;
        let cache = if unchanged { self.cache.clone() } else { Arc::new(TokenCache::new(TOKEN_CACHE_CAPACITY)) };
        let (clock, metrics, revoked, api) =
            (self.clock.clone(), self.metrics.clone(), self.revoked.clone(), self.api.clone());
        let machines = if unchanged && *self.machines.settings() == machine {
            self.machines.clone()
        } else {
            Arc::new(MachineVerifier::new(api.clone(), machine, revoked.clone(), clock.clone()))
        };
        Authenticator { keys, rules, cache, clock, metrics, revoked, machines, api }
    }

    /// Verifies a machine token of `kind` (an API key, M2M or OAuth token).
    ///
    /// # Errors
    /// `MachineError::Refused` with the signed-out reason, `Unavailable` when Clerk could
    /// not answer.
    pub async fn verify_machine(&self, kind: TokenType, token: &str) -> Result<Arc<Machine>, MachineError> {
        self.machines.verify(kind, token, &self.keys).await
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
