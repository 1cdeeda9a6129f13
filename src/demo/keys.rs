//! The demo's signing key: a fresh RSA-2048 key pair, its JWKS document, and session tokens
//! signed with it. Only the demo signs tokens; the gateway itself never does.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use crate::error::Error;

/// The `kid` of the demo key (Clerk uses the instance id).
pub const KID: &str = "ins_demo";

/// A fresh Svix-style signing secret (`whsec_` + 24 random bytes, base64).
///
/// # Errors
/// `Error::Crypto` if the system has no randomness to give.
pub fn webhook_secret() -> Result<String, Error> {
    let mut bytes = [0u8; 24];
    aws_lc_rs::rand::fill(&mut bytes).map_err(Error::crypto("no randomness for the webhook secret"))?;
    Ok(format!("whsec_{}", base64::engine::general_purpose::STANDARD.encode(bytes)))
}

/// A key pair that lives as long as the demo.
pub struct DemoKey {
    pair: KeyPair,
}

impl DemoKey {
    /// Generates a new key.
    ///
    /// # Errors
    /// `Error::Crypto` if the system cannot generate a key.
    pub fn generate() -> Result<Self, Error> {
        let pair = KeyPair::generate(KeySize::Rsa2048).map_err(Error::crypto("cannot generate an RSA key"))?;
        Ok(DemoKey { pair })
    }

    /// The public half as a JWKS document, shaped like Clerk's.
    pub fn jwks(&self) -> Value {
        let public = self.pair.public_key();
        let n = URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero());
        let e = URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero());
        json!({"keys": [{"use": "sig", "kty": "RSA", "kid": KID, "alg": "RS256", "n": n, "e": e}]})
    }

    /// Signs `claims` as an RS256 session token.
    ///
    /// # Errors
    /// `Error::Crypto` if signing fails.
    pub fn sign(&self, claims: &Value) -> Result<String, Error> {
        let header = json!({"alg": "RS256", "typ": "JWT", "kid": KID});
        let input =
            format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()));
        let mut signature = vec![0; self.pair.public_modulus_len()];
        self.pair
            .sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), input.as_bytes(), &mut signature)
            .map_err(Error::crypto("cannot sign the demo token"))?;
        Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature)))
    }
}
