//! Signing keys from tests/fixtures and the session tokens they sign: key A (the one the
//! fake JWKS serves), key B (unknown unless a test adds it), and the standard claims.

use std::sync::OnceLock;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};

use super::{APP, ISSUER, NOW, fixture};

/// An RSA key from the fixtures, with its JWK.
pub struct TestKey {
    pub kid: String,
    pub encoding: EncodingKey,
    pub jwk: Value,
}

impl TestKey {
    fn load(file: &str, kid: &str) -> TestKey {
        use aws_lc_rs::signature::KeyPair as _;
        use rustls_pki_types::PrivatePkcs1KeyDer;
        use rustls_pki_types::pem::PemObject;
        let pem = fixture(file);
        let der = PrivatePkcs1KeyDer::from_pem_slice(pem.as_bytes()).expect("PKCS#1 PEM");
        let pair = aws_lc_rs::rsa::KeyPair::from_der(der.secret_pkcs1_der()).expect("RSA key");
        let public = pair.public_key();
        let jwk = json!({
            "use": "sig", "kty": "RSA", "kid": kid, "alg": "RS256",
            "n": URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero()),
            "e": URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero()),
        });
        TestKey { kid: kid.into(), encoding: EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap(), jwk }
    }

    /// The JWK under another kid.
    pub fn jwk_as(&self, kid: &str) -> Value {
        let mut jwk = self.jwk.clone();
        jwk["kid"] = json!(kid);
        jwk
    }

    /// A session token: RS256, `typ` JWT, this key's kid.
    pub fn token(&self, claims: &Value) -> String {
        self.token_with_header(&json!({"alg": "RS256", "typ": "JWT", "kid": self.kid}), claims, Algorithm::RS256)
    }

    /// A token with an arbitrary header, signed with `alg`.
    pub fn token_with_header(&self, header: &Value, claims: &Value, alg: Algorithm) -> String {
        sign_raw(header, claims, &self.encoding, alg)
    }
}

/// Signs `header.claims` with `key`; the header is used exactly as given.
pub fn sign_raw(header: &Value, claims: &Value, key: &EncodingKey, alg: Algorithm) -> String {
    let input = format!("{}.{}", b64(&header.to_string()), b64(&claims.to_string()));
    let signature = jsonwebtoken::crypto::sign(input.as_bytes(), key, alg).expect("sign");
    format!("{input}.{signature}")
}

pub fn b64(text: &str) -> String {
    URL_SAFE_NO_PAD.encode(text)
}

/// Key A (kid `ins_a`), the one the fake JWKS serves by default.
pub fn key_a() -> &'static TestKey {
    static KEY: OnceLock<TestKey> = OnceLock::new();
    KEY.get_or_init(|| TestKey::load("rsa_a.pem", "ins_a"))
}

/// Key B (kid `ins_b`), unknown to the JWKS unless a test adds it.
pub fn key_b() -> &'static TestKey {
    static KEY: OnceLock<TestKey> = OnceLock::new();
    KEY.get_or_init(|| TestKey::load("rsa_b.pem", "ins_b"))
}

/// Valid session-token claims at `NOW`.
pub fn claims() -> Value {
    json!({
        "sub": "user_alice", "sid": "sess_1", "iss": ISSUER, "azp": APP,
        "iat": NOW - 1, "nbf": NOW - 6, "exp": NOW + 59, "v": 2,
    })
}

/// Session claims valid now by the wall clock, for the binary (which runs on the system
/// clock): no `iss` or `azp`.
pub fn claims_now() -> Value {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    json!({ "sub": "user_alice", "sid": "sess_1", "iat": now - 1, "nbf": now - 6, "exp": now + 120, "v": 2 })
}

/// `claims()` with `key` set (or removed, for `Value::Null`).
pub fn claims_with(key: &str, value: Value) -> Value {
    let mut c = claims();
    if value.is_null() {
        c.as_object_mut().unwrap().remove(key);
    } else {
        c[key] = value;
    }
    c
}
