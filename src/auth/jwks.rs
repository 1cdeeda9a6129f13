//! Verification keys: a PEM key, or a JWKS endpoint whose key set is cached in an
//! `ArcSwap` (read without locks), refreshed after a 5-minute TTL in the background and on
//! an unknown `kid` (single-flight, at most once per 30 s). A failed refresh keeps the last
//! good set. Keys are parsed once, when they load. Never verifies tokens or touches requests.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use aws_lc_rs::signature::{self, ParsedPublicKey};
use jsonwebtoken::Algorithm;
use reqwest::Url;
use serde::Deserialize;
use tokio::sync::Notify;

use super::reason::Reason;
use crate::clerk_api::CLERK_API_VERSION;
use crate::clock::Clock;
use crate::config::{KeySource, Secret};
use crate::metrics::Metrics;

/// How long a fetched key set is fresh.
pub const KEYS_TTL: Duration = Duration::from_secs(5 * 60);
/// Least time between two fetches triggered by traffic (unknown kid or stale set).
pub const MIN_REFETCH_INTERVAL: Duration = Duration::from_secs(30);
/// Largest JWKS document accepted.
const MAX_JWKS_BYTES: usize = 1024 * 1024;
/// Smallest RSA modulus accepted, in bytes (2048 bits).
const MIN_MODULUS_BYTES: usize = 256;

/// One verification key and the algorithm it is declared for, parsed once when its key
/// set loads (a verification then costs the RSA operation alone).
pub struct VerifyKey {
    /// RS256, RS384 or RS512.
    pub alg: Algorithm,
    /// The public key, ready for `alg`.
    pub key: ParsedPublicKey,
}

impl VerifyKey {
    /// The key in `der` (PKCS#1 `RSAPublicKey` or `SubjectPublicKeyInfo`) for `alg`; `None`
    /// when it is not an RSA public key or `alg` not RS256/384/512. (A signature by a key
    /// outside 2048 to 8192 bits never verifies.)
    pub fn new(alg: Algorithm, der: &[u8]) -> Option<VerifyKey> {
        let scheme = match alg {
            Algorithm::RS256 => &signature::RSA_PKCS1_2048_8192_SHA256,
            Algorithm::RS384 => &signature::RSA_PKCS1_2048_8192_SHA384,
            Algorithm::RS512 => &signature::RSA_PKCS1_2048_8192_SHA512,
            _ => return None,
        };
        ParsedPublicKey::new(scheme, der).ok().map(|key| VerifyKey { alg, key })
    }
}

/// PKCS#1 `RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }` in DER,
/// from a JWK's big-endian `n` and `e`.
fn rsa_public_key_der(n: &[u8], e: &[u8]) -> Vec<u8> {
    fn push_len(out: &mut Vec<u8>, len: usize) {
        match len {
            0..=0x7f => out.push(len as u8),
            0x80..=0xff => out.extend([0x81, len as u8]),
            _ => out.extend([0x82, (len >> 8) as u8, len as u8]),
        }
    }
    fn integer(magnitude: &[u8]) -> Vec<u8> {
        let digits: &[u8] = match magnitude.iter().position(|b| *b != 0) {
            Some(first) => &magnitude[first..],
            None => &[0],
        };
        let pad = digits[0] & 0x80 != 0;
        let mut out = vec![0x02];
        push_len(&mut out, digits.len() + usize::from(pad));
        if pad {
            out.push(0);
        }
        out.extend_from_slice(digits);
        out
    }
    let body = [integer(n), integer(e)].concat();
    let mut out = vec![0x30];
    push_len(&mut out, body.len());
    out.extend(body);
    out
}

/// The DER inside a PEM block, whatever its label.
fn pem_der(pem: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    let body: String = pem
        .lines()
        .map(str::trim)
        .skip_while(|l| !l.starts_with("-----BEGIN "))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END "))
        .collect();
    base64::engine::general_purpose::STANDARD.decode(body).ok()
}

/// A loaded set of keys.
struct KeySet {
    by_kid: HashMap<String, Arc<VerifyKey>>,
    /// The PEM key, which matches any `kid`.
    any: Option<Arc<VerifyKey>>,
    loaded_at_ms: i64,
}

/// Why the key store could not be built.
#[derive(Debug, thiserror::Error)]
pub enum KeyStoreError {
    /// The PEM `jwt_key` is not an RSA public key aws-lc accepts (the config has already
    /// checked it, so this is a key built elsewhere).
    #[error("jwt_key: not a usable RSA public key")]
    Unusable,
}

/// Why a JWKS fetch failed (for logs; requests only ever see a `Reason`).
#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    /// The request itself failed (connect, timeout, TLS).
    #[error("request failed: {0}")]
    Request(#[from] reqwest::Error),
    /// A non-2xx answer.
    #[error("HTTP {status}{}", code.as_ref().map(|c| format!(" ({c})")).unwrap_or_default())]
    Status {
        /// HTTP status.
        status: u16,
        /// Clerk's error code, e.g. `clerk_key_invalid`.
        code: Option<String>,
    },
    /// The document is larger than 1 MiB.
    #[error("invalid JWKS: document larger than 1 MiB")]
    TooLarge,
    /// The document is not a JWKS.
    #[error("invalid JWKS: {0}")]
    NotJwks(#[source] serde_json::Error),
    /// The document has no key the gateway can use.
    #[error("invalid JWKS: no usable RSA signing keys")]
    NoUsableKeys,
}

/// The key cache.
pub struct KeyStore {
    current: ArcSwapOption<KeySet>,
    fetcher: Option<Fetcher>,
    clock: Clock,
    metrics: Arc<Metrics>,
    in_flight: AtomicBool,
    fetch_done: Notify,
    last_attempt_ms: AtomicI64,
}

impl KeyStore {
    /// Builds the store; a PEM source is loaded at once, a JWKS source by `load_until_ready`.
    ///
    /// # Errors
    /// `KeyStoreError::Unusable` when the PEM key is not a usable RSA public key.
    pub fn new(
        source: &KeySource,
        client: reqwest::Client,
        clock: Clock,
        metrics: Arc<Metrics>,
    ) -> Result<Self, KeyStoreError> {
        let store = |current, fetcher| KeyStore {
            current: ArcSwapOption::new(current),
            fetcher,
            clock: clock.clone(),
            metrics: metrics.clone(),
            in_flight: AtomicBool::new(false),
            fetch_done: Notify::new(),
            last_attempt_ms: AtomicI64::new(i64::MIN / 2),
        };
        match source {
            KeySource::Pem(pem) => {
                let key = pem_der(pem.expose()).and_then(|der| VerifyKey::new(Algorithm::RS256, &der));
                let set = KeySet {
                    by_kid: HashMap::new(),
                    any: Some(Arc::new(key.ok_or(KeyStoreError::Unusable)?)),
                    loaded_at_ms: i64::MAX,
                };
                Ok(store(Some(Arc::new(set)), None))
            }
            KeySource::Jwks { url, bearer } => {
                Ok(store(None, Some(Fetcher { client, url: url.clone(), bearer: bearer.clone() })))
            }
        }
    }

    /// Whether a key set is loaded (readiness).
    pub fn is_ready(&self) -> bool {
        self.current.load().is_some()
    }

    /// The key for `kid`, refetching the set (within limits) when the kid is unknown.
    ///
    /// # Errors
    /// `JwkRemoteFailedToLoad` when no set was ever loaded, `JwkKidMismatch` when the kid
    /// is missing or unknown.
    pub async fn resolve(self: &Arc<Self>, kid: Option<&str>) -> Result<Arc<VerifyKey>, Reason> {
        match self.lookup(kid) {
            Ok(key) => {
                self.refresh_if_stale();
                return Ok(key);
            }
            Err(Reason::JwkKidMismatch) if kid.is_some() => {}
            Err(reason) => return Err(reason),
        }
        if self.in_flight.load(Ordering::Acquire) || self.refetch_allowed() {
            self.start_fetch();
            self.wait_for_fetch().await;
        }
        self.lookup(kid)
    }

    fn lookup(&self, kid: Option<&str>) -> Result<Arc<VerifyKey>, Reason> {
        let guard = self.current.load();
        let set = guard.as_ref().ok_or(Reason::JwkRemoteFailedToLoad)?;
        if let Some(any) = &set.any {
            return Ok(any.clone());
        }
        kid.and_then(|k| set.by_kid.get(k)).cloned().ok_or(Reason::JwkKidMismatch)
    }

    /// At most one traffic-triggered fetch per `MIN_REFETCH_INTERVAL`. A clock that stepped
    /// back (NTP, a restored VM) makes the last attempt look like the future: allow a fetch
    /// rather than freeze refreshes until the clock catches up.
    fn refetch_allowed(&self) -> bool {
        let since = self.clock.now_ms().saturating_sub(self.last_attempt_ms.load(Ordering::Acquire));
        !(0..MIN_REFETCH_INTERVAL.as_millis() as i64).contains(&since)
    }

    /// Starts a background refresh when the set is older than the TTL.
    fn refresh_if_stale(self: &Arc<Self>) {
        let Some(set) = self.current.load_full() else { return };
        let age = self.clock.now_ms().saturating_sub(set.loaded_at_ms);
        let stale = !(0..KEYS_TTL.as_millis() as i64).contains(&age);
        if self.fetcher.is_some() && stale && self.refetch_allowed() {
            self.start_fetch();
        }
    }

    /// Spawns one fetch unless one is already running. The fetch runs in its own task so a
    /// client that goes away cannot leave it half done.
    fn start_fetch(self: &Arc<Self>) {
        if self.fetcher.is_none() || self.in_flight.swap(true, Ordering::AcqRel) {
            return;
        }
        self.last_attempt_ms.store(self.clock.now_ms(), Ordering::Release);
        let store = self.clone();
        tokio::spawn(async move {
            store.fetch_and_store().await;
            store.in_flight.store(false, Ordering::Release);
            store.fetch_done.notify_waiters();
        });
    }

    async fn wait_for_fetch(&self) {
        loop {
            let done = self.fetch_done.notified();
            tokio::pin!(done);
            done.as_mut().enable();
            if !self.in_flight.load(Ordering::Acquire) {
                return;
            }
            done.await;
        }
    }

    async fn fetch_and_store(&self) -> bool {
        let Some(fetcher) = &self.fetcher else { return true };
        let result = fetcher.fetch().await;
        self.metrics.jwks_fetch(result.is_ok());
        match result {
            Ok(by_kid) => {
                tracing::info!(keys = by_kid.len(), url = %fetcher.url, "JWKS loaded");
                let loaded_at_ms = self.clock.now_ms();
                self.current.store(Some(Arc::new(KeySet { by_kid, any: None, loaded_at_ms })));
                true
            }
            Err(error) => {
                let kept = if self.is_ready() { "keeping the last good key set" } else { "no keys yet" };
                tracing::warn!(%error, url = %fetcher.url, "JWKS fetch failed; {kept}");
                false
            }
        }
    }

    /// One fetch (or the one already running), then whether a key set is loaded: a reload
    /// swaps in a new key source only once it can verify. At once for a PEM key.
    pub async fn load_once(self: &Arc<Self>) -> bool {
        if !self.is_ready() {
            self.start_fetch();
            self.wait_for_fetch().await;
        }
        self.is_ready()
    }

    /// Fetches until a key set is loaded, backing off from 250 ms to 5 s. Returns at once
    /// for a PEM key.
    pub async fn load_until_ready(self: Arc<Self>) {
        let mut backoff = Duration::from_millis(250);
        while !self.is_ready() {
            if !self.in_flight.load(Ordering::Acquire) {
                self.start_fetch();
            }
            self.wait_for_fetch().await;
            if self.is_ready() {
                break;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }
}

struct Fetcher {
    client: reqwest::Client,
    url: Url,
    bearer: Option<Secret>,
}

#[derive(Deserialize)]
struct JwksDocument {
    keys: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct ErrorDocument {
    errors: Vec<ErrorItem>,
}

#[derive(Deserialize)]
struct ErrorItem {
    code: String,
}

impl Fetcher {
    async fn fetch(&self) -> Result<HashMap<String, Arc<VerifyKey>>, JwksError> {
        let mut request = self.client.get(self.url.clone()).header("Clerk-API-Version", CLERK_API_VERSION);
        if let Some(secret) = &self.bearer {
            request = request.bearer_auth(secret.expose());
        }
        let mut response = request.send().await?;
        let status = response.status();
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err(JwksError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        if !status.is_success() {
            let code = serde_json::from_slice::<ErrorDocument>(&body)
                .ok()
                .and_then(|d| d.errors.into_iter().next())
                .map(|e| e.code);
            return Err(JwksError::Status { status: status.as_u16(), code });
        }
        let document: JwksDocument = serde_json::from_slice(&body).map_err(JwksError::NotJwks)?;
        let keys: HashMap<_, _> = document.keys.iter().filter_map(parse_jwk).collect();
        if keys.is_empty() {
            return Err(JwksError::NoUsableKeys);
        }
        Ok(keys)
    }
}

/// One JWK, if it is an RSA signing key with a `kid` and an algorithm we accept.
fn parse_jwk(jwk: &serde_json::Value) -> Option<(String, Arc<VerifyKey>)> {
    let field = |name: &str| jwk.get(name).and_then(serde_json::Value::as_str);
    if field("kty") != Some("RSA") || field("use").is_some_and(|u| u != "sig") {
        return None;
    }
    let alg = match field("alg").unwrap_or("RS256") {
        "RS256" => Algorithm::RS256,
        "RS384" => Algorithm::RS384,
        "RS512" => Algorithm::RS512,
        _ => return None,
    };
    let (kid, n, e) = (field("kid")?, field("n")?, field("e")?);
    use base64::Engine;
    let modulus = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(n).ok()?;
    let significant = modulus.iter().skip_while(|b| **b == 0).count();
    if significant < MIN_MODULUS_BYTES {
        tracing::warn!(kid, "ignoring a JWKS key shorter than 2048 bits");
        return None;
    }
    let exponent = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(e).ok()?;
    let key = VerifyKey::new(alg, &rsa_public_key_der(&modulus, &exponent))?;
    Some((kid.to_owned(), Arc::new(key)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn modulus(bytes: usize) -> String {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(vec![0xC5; bytes])
    }

    #[test]
    fn jwk_components_become_pkcs1_der() {
        let der = rsa_public_key_der(&[0x00, 0x80, 0x01], &[0x01, 0x00, 0x01]);
        assert_eq!(der, [0x30, 0x0a, 0x02, 0x03, 0x00, 0x80, 0x01, 0x02, 0x03, 0x01, 0x00, 0x01]);
        let long = rsa_public_key_der(&[0x7f; 300], &[0x03]);
        assert_eq!(&long[..8], &[0x30, 0x82, 0x01, 0x33, 0x02, 0x82, 0x01, 0x2c], "long-form lengths");
        // The fixture's PEM (SubjectPublicKeyInfo) and the same key as JWK components agree.
        let pem =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/rsa_a.pub.pem")).unwrap();
        let spki = pem_der(&pem).unwrap();
        let pkcs1 = &spki[spki.len() - 270..];
        assert_eq!(&pkcs1[..4], &[0x30, 0x82, 0x01, 0x0a], "a 2048-bit RSAPublicKey ends the SPKI");
        let (n, e) = (&pkcs1[9..9 + 256], &pkcs1[pkcs1.len() - 3..]);
        assert_eq!(rsa_public_key_der(n, e), pkcs1);
        assert!(VerifyKey::new(Algorithm::RS256, &spki).is_some() && VerifyKey::new(Algorithm::RS256, pkcs1).is_some());
        assert!(VerifyKey::new(Algorithm::RS256, b"not der").is_none());
        assert!(VerifyKey::new(Algorithm::HS256, &spki).is_none(), "RSA algorithms only");
    }

    #[test]
    fn only_rsa_signing_keys_are_kept() {
        let n = modulus(256);
        let ok = json!({"kty":"RSA","kid":"ins_1","alg":"RS256","use":"sig","n":n,"e":"AQAB"});
        assert_eq!(parse_jwk(&ok).map(|(kid, k)| (kid, k.alg)), Some(("ins_1".into(), Algorithm::RS256)));
        let no_alg = json!({"kty":"RSA","kid":"k","n":n,"e":"AQAB"});
        assert_eq!(parse_jwk(&no_alg).unwrap().1.alg, Algorithm::RS256);
        let rejected = [
            json!({"kty":"EC","kid":"k","crv":"P-256","x":"a","y":"b"}),
            json!({"kty":"RSA","kid":"k","use":"enc","n":n,"e":"AQAB"}),
            json!({"kty":"RSA","kid":"k","alg":"PS256","n":n,"e":"AQAB"}),
            json!({"kty":"RSA","alg":"RS256","n":n,"e":"AQAB"}),
            json!({"kty":"RSA","kid":"k","alg":"RS256","n":modulus(128),"e":"AQAB"}),
            json!({"kty":"RSA","kid":"k","alg":"RS256","n":"!!","e":"AQAB"}),
        ];
        for jwk in rejected {
            assert!(parse_jwk(&jwk).is_none(), "{jwk}");
        }
    }
}
