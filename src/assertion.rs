//! The signed identity assertion, `X-Clerk-Gateway-Assertion`: a short-lived JWT (EdDSA
//! over Ed25519, or ES256) stating the identity the gateway injected, the route's upstream
//! (`aud`) and a hash of the forwarded method and path (`rqh`), so a backend need not trust
//! the network alone. The key is generated at start or read from a PKCS#8 PEM file; its
//! public half is served as a JWKS (`kid` is its RFC 7638 thumbprint, the same wherever the
//! same key is loaded).

use std::path::Path;
use std::time::Duration;

use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{HeaderName, HeaderValue};
use rustls_pki_types::PrivatePkcs8KeyDer;
use rustls_pki_types::pem::PemObject;
use serde_json::{Map, Value, json};

use crate::identity::{Identity, Machine};

/// The header the assertion travels in (stripped from every client request).
pub static X_CLERK_GATEWAY_ASSERTION: HeaderName = HeaderName::from_static("x-clerk-gateway-assertion");

/// The assertion's `iss`.
pub const ISSUER: &str = "clerk-gateway";

/// Why the assertion key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum AssertionError {
    /// The file cannot be read, or holds no PKCS#8 private key.
    #[error("cannot read a PKCS#8 private key (\"BEGIN PRIVATE KEY\"): {0}")]
    Pem(#[source] rustls_pki_types::pem::Error),
    /// A key of another kind than Ed25519 or ECDSA P-256.
    #[error("expected an Ed25519 or ECDSA P-256 private key")]
    KeyKind,
    /// The system's random source failed (generating a key).
    #[error("could not generate a key")]
    Generate,
}

enum SigningKey {
    Ed25519(Ed25519KeyPair),
    P256(EcdsaKeyPair, SystemRandom),
}

/// Signs assertions with one key.
pub struct Signer {
    key: SigningKey,
    /// The protected header, base64url-encoded once.
    header: String,
    jwks: String,
    lifetime: Duration,
}

/// Whom a forwarded request was admitted as, for the assertion's claims.
#[derive(Clone, Copy)]
pub enum Subject<'a> {
    /// No credential was asked for (a public route, a preflight let through).
    Anyone,
    /// An optional route without a valid credential.
    SignedOut,
    /// A session, with the mirrored user's email when known.
    Session(&'a Identity, Option<&'a str>),
    /// A machine token, with the email of the user it acts for when known.
    Machine(&'a Machine, Option<&'a str>),
}

/// What one assertion is about.
pub struct Facts<'a> {
    /// `aud`: the route's upstream, as `gateway.toml` names it.
    pub audience: &'a str,
    /// The forwarded method.
    pub method: &'a str,
    /// The path the upstream receives, without the query.
    pub path: &'a str,
    /// Whom the request was admitted as.
    pub subject: Subject<'a>,
}

impl Signer {
    /// A signer with a new Ed25519 key, for this process alone.
    ///
    /// # Errors
    /// `Generate` when the random source fails.
    pub fn generate(lifetime: Duration) -> Result<Signer, AssertionError> {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).map_err(|_| AssertionError::Generate)?;
        let key = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).map_err(|_| AssertionError::Generate)?;
        Ok(Signer::new(SigningKey::Ed25519(key), lifetime))
    }

    /// A signer with the key in `path` (PEM, PKCS#8): Ed25519 signs EdDSA, P-256 ES256.
    ///
    /// # Errors
    /// `AssertionError` when the file holds no usable key.
    pub fn from_file(path: &Path, lifetime: Duration) -> Result<Signer, AssertionError> {
        let der = PrivatePkcs8KeyDer::from_pem_file(path).map_err(AssertionError::Pem)?;
        let der = der.secret_pkcs8_der();
        let key = match Ed25519KeyPair::from_pkcs8_maybe_unchecked(der) {
            Ok(key) => SigningKey::Ed25519(key),
            Err(_) => EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der)
                .map(|key| SigningKey::P256(key, SystemRandom::new()))
                .map_err(|_| AssertionError::KeyKind)?,
        };
        Ok(Signer::new(key, lifetime))
    }

    fn new(key: SigningKey, lifetime: Duration) -> Signer {
        let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
        // RFC 7638: the required members, in lexicographic order, no whitespace.
        let (alg, public, thumbprint_input) = match &key {
            SigningKey::Ed25519(pair) => {
                let x = b64(pair.public_key().as_ref());
                let public = json!({"kty": "OKP", "crv": "Ed25519", "x": x});
                ("EdDSA", public, format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#))
            }
            SigningKey::P256(pair, _) => {
                let point = pair.public_key().as_ref();
                let (x, y) = (b64(&point[1..33]), b64(&point[33..65]));
                let public = json!({"kty": "EC", "crv": "P-256", "x": x, "y": y});
                ("ES256", public, format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#))
            }
        };
        let kid = b64(digest(&SHA256, thumbprint_input.as_bytes()).as_ref());
        let mut jwk = public;
        jwk["kid"] = json!(kid);
        jwk["alg"] = json!(alg);
        jwk["use"] = json!("sig");
        let jwks = json!({ "keys": [jwk] }).to_string();
        let header = b64(json!({"alg": alg, "typ": "JWT", "kid": kid}).to_string().as_bytes());
        Signer { key, header, jwks, lifetime }
    }

    /// The public key set, as `/.well-known/jwks.json` serves it.
    pub fn jwks(&self) -> &str {
        &self.jwks
    }

    /// The assertion for `facts`, issued at `now_secs`.
    pub fn sign(&self, facts: &Facts<'_>, now_secs: i64) -> Option<HeaderValue> {
        let lifetime = i64::try_from(self.lifetime.as_secs()).unwrap_or(i64::MAX);
        let mut claims = identity_claims(facts.subject);
        claims.insert("iss".into(), json!(ISSUER));
        claims.insert("aud".into(), json!(facts.audience));
        claims.insert("iat".into(), json!(now_secs));
        claims.insert("exp".into(), json!(now_secs.saturating_add(lifetime)));
        claims.insert("rqh".into(), json!(request_hash(facts.method, facts.path)));
        let payload = URL_SAFE_NO_PAD.encode(Value::Object(claims).to_string());
        let signing_input = format!("{}.{payload}", self.header);
        let signature = match &self.key {
            SigningKey::Ed25519(pair) => pair.sign(signing_input.as_bytes()).as_ref().to_vec(),
            SigningKey::P256(pair, rng) => pair.sign(rng, signing_input.as_bytes()).ok()?.as_ref().to_vec(),
        };
        HeaderValue::try_from(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature))).ok()
    }
}

/// `rqh`: base64url(SHA-256("<METHOD> <path>")), the path as the upstream receives it,
/// without the query.
pub fn request_hash(method: &str, path: &str) -> String {
    URL_SAFE_NO_PAD.encode(digest(&SHA256, format!("{method} {path}").as_bytes()).as_ref())
}

/// The claims that say who: `auth` (`signed-in`, `signed-out`, `none`), and for a signed-in
/// request `token_type`, `sub`, the session's `sid` and organization, or the machine
/// token's `token_id`, `scopes` and organization, and the mirrored `email`.
fn identity_claims(subject: Subject<'_>) -> Map<String, Value> {
    let mut claims = Map::new();
    let mut put = |key: &str, value: Value| {
        claims.insert(key.to_owned(), value);
    };
    match subject {
        Subject::Anyone => put("auth", json!("none")),
        Subject::SignedOut => put("auth", json!("signed-out")),
        Subject::Session(identity, email) => {
            put("auth", json!("signed-in"));
            put("token_type", json!("session_token"));
            put("sub", json!(identity.user_id));
            put("sid", json!(identity.session_id));
            if let Some(org) = &identity.org {
                put("org_id", json!(org.id));
                put("org_role", json!(org.role));
                put("org_slug", json!(org.slug));
                put("org_permissions", json!(org.permissions));
            }
            email.into_iter().for_each(|e| put("email", json!(e)));
        }
        Subject::Machine(machine, email) => {
            put("auth", json!("signed-in"));
            put("token_type", json!(machine.token_type.as_str()));
            put("sub", json!(machine.subject));
            if !machine.id.is_empty() {
                put("token_id", json!(machine.id));
            }
            put("scopes", json!(machine.scopes));
            if machine.subject.starts_with("org_") {
                put("org_id", json!(machine.subject));
            }
            email.into_iter().for_each(|e| put("email", json!(e)));
        }
    }
    claims
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode};

    fn verify(signer: &Signer, token: &str, alg: Algorithm) -> Value {
        let jwks: jsonwebtoken::jwk::JwkSet = serde_json::from_str(signer.jwks()).unwrap();
        let key = DecodingKey::from_jwk(&jwks.keys[0]).unwrap();
        let mut validation = Validation::new(alg);
        validation.set_audience(&["http://127.0.0.1:8000"]);
        validation.set_issuer(&[ISSUER]);
        validation.validate_exp = false;
        decode::<Value>(token, &key, &validation).unwrap().claims
    }

    #[test]
    fn a_generated_key_signs_what_its_jwks_verifies() {
        let signer = Signer::generate(Duration::from_secs(30)).unwrap();
        let identity = Identity::new("user_1".into(), "sess_1".into(), None, 0);
        let facts = Facts {
            audience: "http://127.0.0.1:8000",
            method: "GET",
            path: "/api/x",
            subject: Subject::Session(&identity, Some("a@example.com")),
        };
        let token = signer.sign(&facts, 1_800_000_000).unwrap();
        let claims = verify(&signer, token.to_str().unwrap(), Algorithm::EdDSA);
        assert_eq!(claims["sub"], "user_1");
        assert_eq!(claims["sid"], "sess_1");
        assert_eq!(claims["email"], "a@example.com");
        assert_eq!(claims["exp"], 1_800_000_030);
        assert_eq!(claims["rqh"], request_hash("GET", "/api/x"));
        let other = Signer::generate(Duration::from_secs(30)).unwrap();
        assert_ne!(other.jwks(), signer.jwks(), "each process makes its own key");
    }

    #[test]
    fn a_p256_key_file_signs_es256_and_its_kid_is_the_thumbprint() {
        let path = format!("{}/tests/fixtures/ec_p256.pem", env!("CARGO_MANIFEST_DIR"));
        let signer = Signer::from_file(Path::new(&path), Duration::from_secs(60)).unwrap();
        let again = Signer::from_file(Path::new(&path), Duration::from_secs(60)).unwrap();
        assert_eq!(signer.jwks(), again.jwks(), "the same key has the same kid everywhere");
        let machine = Machine::new(crate::token_type::TokenType::ApiKey, "ak_1".into(), "org_1".into(), vec![]);
        let facts = Facts {
            audience: "http://127.0.0.1:8000",
            method: "POST",
            path: "/",
            subject: Subject::Machine(&machine, None),
        };
        let token = signer.sign(&facts, 1_800_000_000).unwrap();
        let claims = verify(&signer, token.to_str().unwrap(), Algorithm::ES256);
        assert_eq!((claims["token_type"].as_str(), claims["org_id"].as_str()), (Some("api_key"), Some("org_1")));
        let rsa = format!("{}/tests/fixtures/rsa_a.pem", env!("CARGO_MANIFEST_DIR"));
        assert!(Signer::from_file(Path::new(&rsa), Duration::from_secs(60)).is_err());
    }
}
