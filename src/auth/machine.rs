//! Machine tokens (API keys, M2M tokens, OAuth access tokens), as Clerk's
//! `authenticateRequest({ acceptsToken })` treats them: which kind a Bearer token is by its
//! shape, then verification. Opaque tokens (`ak_`, `mt_`, `oat_`) are verified at the
//! Backend API; JWT forms locally with the instance keys. Verdicts are remembered by
//! SHA-256 of the token (refusals too, for less long), one Backend API call per token at a
//! time, under a deadline; an outage is `Unavailable`, never a sign-in. A revoked token id
//! (webhook) is refused even while remembered.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::OnceCell;

use super::cache::{TokenKey, key_of};
use super::claims::{check_times, claim_value, is_id};
use super::jwks::KeyStore;
use super::reason::Reason;
use super::revocation::RevokedSessions;
use super::token::{self, JwtClass, MAX_TOKEN_BYTES};
use crate::clerk_api::model::MachineToken;
use crate::clerk_api::{ApiError, ClerkApi};
use crate::clock::{self, Clock};
use crate::config::MachineTokensConfig;
use crate::identity::Machine;
use crate::token_type::TokenType;

/// Why a machine token did not sign a request in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MachineError {
    /// The token proves nothing: signed out, for this reason.
    Refused(Reason),
    /// Clerk could not say (an outage, a refused secret key): 503, with this reason.
    Unavailable(&'static str),
}

impl From<Reason> for MachineError {
    fn from(reason: Reason) -> Self {
        MachineError::Refused(reason)
    }
}

/// The kind of an opaque machine token, by its prefix (Clerk's, and Python's legacy `m2m_`).
pub fn opaque_kind(token: &str) -> Option<TokenType> {
    if token.starts_with("ak_") {
        Some(TokenType::ApiKey)
    } else if token.starts_with("mt_") || token.starts_with("m2m_") {
        Some(TokenType::M2mToken)
    } else if token.starts_with("oat_") {
        Some(TokenType::OAuthToken)
    } else {
        None
    }
}

/// The kind of a Bearer token, read without verification: an opaque prefix, else the class
/// a JWT announces (`typ` `at+jwt`, `sub` `mch_…`), else a session token.
pub fn kind_of(token: &str) -> TokenType {
    opaque_kind(token).unwrap_or_else(|| match token::announced_class(token) {
        JwtClass::M2m => TokenType::M2mToken,
        JwtClass::OAuth => TokenType::OAuthToken,
        JwtClass::Session => TokenType::SessionToken,
    })
}

/// How verdicts are remembered, and what a machine identity keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineSettings {
    /// How long a valid opaque token is trusted before Clerk is asked again.
    pub cache_ttl: Duration,
    /// How long a refusal is remembered.
    pub refusal_ttl: Duration,
    /// How long a request waits for the Backend API.
    pub verify_timeout: Duration,
    /// Most verdicts remembered.
    pub capacity: usize,
    /// Tolerance for a JWT's time claims.
    pub clock_skew: Duration,
    /// Claim paths kept for `route[].claim_headers`.
    pub copied_claims: Vec<String>,
}

impl MachineSettings {
    /// The settings of `[machine_tokens]`, with `[clerk]`'s clock skew and the claims routes
    /// copy.
    pub fn new(tokens: &MachineTokensConfig, clock_skew: Duration, copied_claims: Vec<String>) -> Self {
        MachineSettings {
            cache_ttl: tokens.cache_ttl,
            refusal_ttl: tokens.refusal_ttl,
            verify_timeout: tokens.verify_timeout,
            capacity: tokens.cache_size,
            clock_skew,
            copied_claims,
        }
    }
}

/// A remembered verdict, trusted until `until_ms`.
#[derive(Clone)]
struct Verdict {
    outcome: Result<Arc<Machine>, Reason>,
    until_ms: i64,
}

/// One Backend API verification in flight; everyone asking for the same token waits on it.
type Flight = Arc<OnceCell<Result<Verdict, &'static str>>>;

/// Most Backend API verifications in flight at once, all tokens together.
const MAX_CALLS: usize = 32;

/// Removes a flight from the table when the last request holding it lets go.
struct Leaving<'a> {
    table: &'a Mutex<HashMap<TokenKey, Flight>>,
    key: TokenKey,
    flight: &'a Flight,
}

impl Drop for Leaving<'_> {
    fn drop(&mut self) {
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        // Two holders left: the table and this request.
        if table.get(&self.key).is_some_and(|f| Arc::ptr_eq(f, self.flight)) && Arc::strong_count(self.flight) <= 2 {
            table.remove(&self.key);
        }
    }
}

/// Verifies machine tokens for one Clerk instance.
pub struct MachineVerifier {
    api: Option<ClerkApi>,
    settings: MachineSettings,
    verdicts: quick_cache::sync::Cache<TokenKey, Verdict>,
    in_flight: Mutex<HashMap<TokenKey, Flight>>,
    calls: tokio::sync::Semaphore,
    revoked: Arc<RevokedSessions>,
    clock: Clock,
}

impl MachineVerifier {
    /// A verifier asking `api` about opaque tokens; `revoked` holds revoked token ids.
    pub fn new(api: Option<ClerkApi>, settings: MachineSettings, revoked: Arc<RevokedSessions>, clock: Clock) -> Self {
        let verdicts = quick_cache::sync::Cache::new(settings.capacity.max(1));
        let calls = tokio::sync::Semaphore::new(MAX_CALLS);
        MachineVerifier { api, settings, verdicts, in_flight: Mutex::default(), calls, revoked, clock }
    }

    /// The settings it was built with (a reload with the same ones keeps its verdicts).
    pub fn settings(&self) -> &MachineSettings {
        &self.settings
    }

    /// Verifies `token`, already known to be of `kind`, checking JWT forms with `keys`.
    ///
    /// # Errors
    /// `Refused` with the signed-out reason, or `Unavailable` when Clerk could not answer.
    pub async fn verify(
        &self,
        kind: TokenType,
        token: &str,
        keys: &Arc<KeyStore>,
    ) -> Result<Arc<Machine>, MachineError> {
        if token.len() > MAX_TOKEN_BYTES || kind == TokenType::SessionToken {
            return Err(Reason::TokenInvalid.into());
        }
        let key = key_of(token);
        let now_ms = self.clock.now_ms();
        let verdict = match self.verdicts.get(&key).filter(|v| v.until_ms > now_ms) {
            Some(verdict) => verdict,
            None if opaque_kind(token).is_some() => self.ask_clerk(kind, token, key).await?,
            None => self.verify_jwt(kind, token, key, keys).await?,
        };
        let machine = verdict.outcome?;
        if !machine.id.is_empty() && self.revoked.contains(&machine.id, now_ms) {
            return Err(Reason::TokenRevoked.into());
        }
        Ok(machine)
    }

    /// A JWT form, verified here: the class's header rules, the signature, then the claims.
    /// Valid ones are remembered until they expire.
    async fn verify_jwt(
        &self,
        kind: TokenType,
        token: &str,
        key: TokenKey,
        keys: &Arc<KeyStore>,
    ) -> Result<Verdict, MachineError> {
        let class = if kind == TokenType::M2mToken { JwtClass::M2m } else { JwtClass::OAuth };
        let parsed = token::parse_as(token, class)?;
        let verify_key = keys.resolve(parsed.kid.as_deref()).await?;
        token::verify_signature(&parsed, &verify_key)?;
        let machine = self.machine_of_claims(kind, &parsed.claims)?;
        let until_ms = machine.expires_at_ms.unwrap_or(i64::MAX);
        let verdict = Verdict { outcome: Ok(Arc::new(machine)), until_ms };
        self.verdicts.insert(key, verdict.clone());
        Ok(verdict)
    }

    /// A verified M2M or OAuth JWT's claims as a machine identity.
    fn machine_of_claims(&self, kind: TokenType, claims: &Value) -> Result<Machine, Reason> {
        let subject = claims.get("sub").and_then(Value::as_str).filter(|s| is_id(s) && !s.is_empty());
        let subject = subject.ok_or(Reason::TokenVerificationFailed)?;
        if (kind == TokenType::M2mToken) != subject.starts_with("mch_") {
            return Err(Reason::TokenTypeMismatch);
        }
        let valid_until_ms = check_times(claims, self.settings.clock_skew, Some(self.clock.now_ms()))?;
        let id = claims.get("jti").and_then(Value::as_str).filter(|s| is_id(s)).unwrap_or("");
        let scopes = checked_scopes(jwt_scopes(kind, claims))?;
        let mut machine = Machine::new(kind, id.to_owned(), subject.to_owned(), scopes);
        machine.expires_at_ms = Some(valid_until_ms);
        machine.claims = self.copied(claims);
        Ok(machine)
    }

    /// The claims `route[].claim_headers` copy, from `claims`.
    fn copied(&self, claims: &Value) -> Vec<(String, http::HeaderValue)> {
        let copied = self.settings.copied_claims.iter();
        copied.filter_map(|path| Some((path.clone(), claim_value(claims, path)?))).collect()
    }

    /// An opaque token, verified at the Backend API: one call per token at a time, whose
    /// verdict (valid, or refused) is remembered.
    async fn ask_clerk(&self, kind: TokenType, token: &str, key: TokenKey) -> Result<Verdict, MachineError> {
        let flight = {
            let mut in_flight = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
            in_flight.entry(key).or_default().clone()
        };
        // Leaves the table with the last request waiting on it, answered or not (a client
        // that goes away must not leave its token's entry behind).
        let _leaving = Leaving { table: &self.in_flight, key, flight: &flight };
        let answer = flight.get_or_init(|| self.call_clerk(kind, token, key)).await.clone();
        answer.map_err(MachineError::Unavailable)
    }

    async fn call_clerk(&self, kind: TokenType, token: &str, key: TokenKey) -> Result<Verdict, &'static str> {
        let Some(api) = &self.api else { return Err("secret-key-missing") };
        let deadline = tokio::time::Instant::now() + self.settings.verify_timeout;
        // At most `MAX_CALLS` at once: a flood of made-up tokens must not spend the Backend
        // API's rate limit that real ones need.
        let permit = tokio::time::timeout_at(deadline, self.calls.acquire()).await;
        let Ok(Ok(_permit)) = permit else {
            tracing::warn!(kind = kind.as_str(), "too many machine tokens waiting for the Backend API");
            return Err("clerk-api-unavailable");
        };
        let asked = tokio::time::timeout_at(deadline, api.verify_machine_token(kind, token)).await;
        let now_ms = self.clock.now_ms();
        let refused = |reason: Reason| Verdict {
            outcome: Err(reason),
            until_ms: now_ms + clock::millis(self.settings.refusal_ttl),
        };
        let verdict = match asked {
            Err(_) => {
                tracing::warn!(kind = kind.as_str(), "the Backend API did not verify a machine token in time");
                return Err("clerk-api-unavailable");
            }
            Ok(Ok(found)) => self.verdict_of(kind, found, now_ms).unwrap_or_else(refused),
            Ok(Err(error)) => match refusal_of(&error) {
                Ok(reason) => refused(reason),
                Err(unavailable) => {
                    tracing::warn!(%error, kind = kind.as_str(), "the Backend API could not verify a machine token");
                    return Err(unavailable);
                }
            },
        };
        self.verdicts.insert(key, verdict.clone());
        Ok(verdict)
    }

    /// What Clerk's answer makes of a token: refused when revoked or expired, else trusted
    /// for the cache TTL, never past its expiry.
    fn verdict_of(&self, kind: TokenType, found: MachineToken, now_ms: i64) -> Result<Verdict, Reason> {
        if found.revoked {
            return Err(Reason::TokenRevoked);
        }
        if found.expired || found.expiration.is_some_and(|at| at <= now_ms) {
            return Err(Reason::TokenExpired);
        }
        let mut machine = Machine::new(kind, found.id, found.subject, checked_scopes(found.scopes)?);
        machine.expires_at_ms = found.expiration;
        machine.claims = found.claims.as_ref().map(|c| self.copied(c)).unwrap_or_default();
        let until_ms = found.expiration.unwrap_or(i64::MAX).min(now_ms + clock::millis(self.settings.cache_ttl));
        Ok(Verdict { outcome: Ok(Arc::new(machine)), until_ms })
    }
}

/// A Backend API failure as a refusal of the token (Clerk does not know it) or as
/// unavailability (Clerk could not say, or refused the gateway's secret key).
fn refusal_of(error: &ApiError) -> Result<Reason, &'static str> {
    let status = match error {
        ApiError::Clerk { status, .. } | ApiError::Status(status) => *status,
        _ => return Err("clerk-api-unavailable"),
    };
    match status {
        400 | 404 | 422 => Ok(Reason::TokenInvalid),
        401 | 403 => {
            tracing::error!("the Backend API refused the secret key; machine tokens cannot be verified");
            Err("secret-key-invalid")
        }
        _ => Err("clerk-api-unavailable"),
    }
}

/// A JWT's scopes as Clerk reads them: an M2M token's `scopes` (space-separated) else its
/// `aud`; an OAuth token's `scp` (a list) else its `scope` (space-separated).
fn jwt_scopes(kind: TokenType, claims: &Value) -> Vec<String> {
    let (spaced, listed) = if kind == TokenType::M2mToken { ("scopes", "aud") } else { ("scope", "scp") };
    let list = |v: &Value| v.as_array().map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect());
    let split = |v: &Value| v.as_str().map(|s| s.split_whitespace().map(str::to_owned).collect());
    let (first, second) = if kind == TokenType::M2mToken {
        (claims.get(spaced).and_then(split), claims.get(listed).and_then(list))
    } else {
        (claims.get(listed).and_then(list), claims.get(spaced).and_then(split))
    };
    first.or(second).unwrap_or_default()
}

/// Scopes go into `X-Auth-Scopes` joined by commas, so each must be visible ASCII without
/// one: anything else would be split otherwise by the upstream than by `require.scope`.
fn checked_scopes(scopes: Vec<String>) -> Result<Vec<String>, Reason> {
    let plain = |s: &String| !s.is_empty() && s.len() <= 256 && s.bytes().all(|b| b.is_ascii_graphic() && b != b',');
    if scopes.iter().all(plain) { Ok(scopes) } else { Err(Reason::TokenVerificationFailed) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn kinds_follow_clerks_prefixes_and_jwt_classes() {
        use base64::Engine;
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let jwt = |h: &str, p: &str| format!("{}.{}.{}", b64(h), b64(p), b64("sig"));
        assert_eq!(kind_of("ak_123"), TokenType::ApiKey);
        assert_eq!(kind_of("mt_123"), TokenType::M2mToken);
        assert_eq!(kind_of("m2m_123"), TokenType::M2mToken);
        assert_eq!(kind_of("oat_123"), TokenType::OAuthToken);
        assert_eq!(kind_of(&jwt(r#"{"typ":"at+jwt"}"#, r#"{"sub":"user_1"}"#)), TokenType::OAuthToken);
        assert_eq!(kind_of(&jwt(r#"{"typ":"JWT"}"#, r#"{"sub":"mch_1"}"#)), TokenType::M2mToken);
        assert_eq!(kind_of(&jwt(r#"{"typ":"JWT"}"#, r#"{"sub":"user_1"}"#)), TokenType::SessionToken);
        assert_eq!(kind_of("garbage"), TokenType::SessionToken);
    }

    #[test]
    fn a_flight_leaves_the_table_with_its_last_holder() {
        let table: Mutex<HashMap<TokenKey, Flight>> = Mutex::default();
        let key = key_of("ak_1");
        let first = table.lock().unwrap().entry(key).or_default().clone();
        let second = table.lock().unwrap().get(&key).unwrap().clone();
        drop(Leaving { table: &table, key, flight: &first });
        assert!(table.lock().unwrap().contains_key(&key), "another request still waits on it");
        drop(first);
        drop(Leaving { table: &table, key, flight: &second });
        assert!(table.lock().unwrap().is_empty(), "a cancelled verification leaves nothing behind");
        assert_eq!(checked_scopes(vec!["a,b".into()]), Err(Reason::TokenVerificationFailed));
        assert!(checked_scopes(vec!["read:users".into()]).is_ok());
    }

    #[test]
    fn scopes_are_read_as_clerk_reads_them() {
        let m2m = json!({"scopes": "mch_a mch_b", "aud": ["mch_c"]});
        assert_eq!(jwt_scopes(TokenType::M2mToken, &m2m), ["mch_a", "mch_b"]);
        assert_eq!(jwt_scopes(TokenType::M2mToken, &json!({"aud": ["mch_c"]})), ["mch_c"]);
        let oauth = json!({"scp": ["read"], "scope": "write admin"});
        assert_eq!(jwt_scopes(TokenType::OAuthToken, &oauth), ["read"]);
        assert_eq!(jwt_scopes(TokenType::OAuthToken, &json!({"scope": "write admin"})), ["write", "admin"]);
        assert!(jwt_scopes(TokenType::OAuthToken, &json!({})).is_empty());
    }

    #[test]
    fn backend_api_failures_refuse_the_token_only_when_clerk_does_not_know_it() {
        let clerk = |status| ApiError::Clerk {
            status,
            code: String::new(),
            message: String::new(),
            long_message: String::new(),
        };
        assert_eq!(refusal_of(&clerk(404)), Ok(Reason::TokenInvalid));
        assert_eq!(refusal_of(&ApiError::Status(422)), Ok(Reason::TokenInvalid));
        assert_eq!(refusal_of(&clerk(401)), Err("secret-key-invalid"));
        assert_eq!(refusal_of(&clerk(429)), Err("clerk-api-unavailable"));
        assert_eq!(refusal_of(&ApiError::Status(503)), Err("clerk-api-unavailable"));
        assert_eq!(refusal_of(&ApiError::Shape("x")), Err("clerk-api-unavailable"));
    }
}
