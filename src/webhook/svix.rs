//! Svix signature verification over the raw body: `svix-id` / `svix-timestamp` /
//! `svix-signature` (or the `webhook-*` names), HMAC-SHA256 with the `whsec_` secret, a
//! ±5-minute window, any matching `v1` entry, constant-time comparison.

use aws_lc_rs::{constant_time, hmac};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::HeaderMap;

use super::outcome::Refusal;

/// Allowed distance between the signed timestamp and now.
pub const TOLERANCE_SECS: i64 = 300;

/// Why a signing secret cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// Not standard base64 after the `whsec_` prefix.
    #[error("the signing secret is not base64: {0}")]
    NotBase64(#[source] base64::DecodeError),
    /// Nothing after the prefix.
    #[error("the signing secret is empty")]
    Empty,
}

/// The signing key.
pub struct Verifier {
    key: hmac::Key,
}

/// A delivery that passed verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The message id (the same on every retry: the dedupe key).
    pub id: String,
    /// The signed timestamp, seconds.
    pub timestamp: i64,
}

impl Verifier {
    /// A verifier for `secret` (`whsec_` + standard base64; the prefix is optional).
    ///
    /// # Errors
    /// `SecretError` when the secret is empty or not base64.
    pub fn new(secret: &str) -> Result<Self, SecretError> {
        let encoded = secret.strip_prefix("whsec_").unwrap_or(secret);
        let key = STANDARD.decode(encoded).map_err(SecretError::NotBase64)?;
        if key.is_empty() {
            return Err(SecretError::Empty);
        }
        Ok(Verifier { key: hmac::Key::new(hmac::HMAC_SHA256, &key) })
    }

    /// Verifies a delivery's headers and raw body at `now_secs`.
    ///
    /// # Errors
    /// The `Refusal` to answer with.
    pub fn verify(&self, headers: &HeaderMap, body: &[u8], now_secs: i64) -> Result<Verified, Refusal> {
        let id = header(headers, "svix-id", "webhook-id").ok_or(Refusal::MissingHeaders)?;
        let timestamp = header(headers, "svix-timestamp", "webhook-timestamp").ok_or(Refusal::MissingHeaders)?;
        let signatures = header(headers, "svix-signature", "webhook-signature").ok_or(Refusal::MissingHeaders)?;
        let ts: i64 = timestamp.trim().parse().map_err(|_| Refusal::StaleTimestamp)?;
        if ts < 0 || (now_secs - ts).abs() > TOLERANCE_SECS {
            return Err(Refusal::StaleTimestamp);
        }
        let expected = self.sign(id, timestamp, body);
        let matches = signatures
            .split(' ')
            .filter_map(|entry| entry.split_once(','))
            .filter(|(version, _)| *version == "v1")
            .filter_map(|(_, signature)| STANDARD.decode(signature).ok())
            .any(|candidate| constant_time::verify_slices_are_equal(&candidate, expected.as_ref()).is_ok());
        if matches { Ok(Verified { id: id.to_owned(), timestamp: ts }) } else { Err(Refusal::InvalidSignature) }
    }

    /// HMAC-SHA256 over `id.timestamp.body`.
    pub fn sign(&self, id: &str, timestamp: &str, body: &[u8]) -> hmac::Tag {
        let mut context = hmac::Context::with_key(&self.key);
        context.update(id.as_bytes());
        context.update(b".");
        context.update(timestamp.as_bytes());
        context.update(b".");
        context.update(body);
        context.sign()
    }

    /// The `svix-signature` header value for a delivery (used by the demo and tests).
    pub fn signature_header(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        format!("v1,{}", STANDARD.encode(self.sign(id, &timestamp.to_string(), body)))
    }
}

/// The `svix-` header, else its `webhook-` alternate; non-empty visible text only.
fn header<'a>(headers: &'a HeaderMap, primary: &str, alternate: &str) -> Option<&'a str> {
    headers
        .get(primary)
        .or_else(|| headers.get(alternate))
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    const SECRET_1: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID_1: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TS_1: i64 = 1_614_265_330;

    fn headers(id: &str, ts: &str, signature: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("svix-id", HeaderValue::from_str(id).unwrap());
        h.insert("svix-timestamp", HeaderValue::from_str(ts).unwrap());
        h.insert("svix-signature", HeaderValue::from_str(signature).unwrap());
        h
    }

    fn check(secret: &str, id: &str, ts: i64, body: &[u8], signature: &str) -> Result<Verified, Refusal> {
        Verifier::new(secret).unwrap().verify(&headers(id, &ts.to_string(), signature), body, ts)
    }

    #[test]
    fn official_vectors_verify() {
        let body = br#"{"test": 2432232314}"#;
        assert!(check(SECRET_1, ID_1, TS_1, body, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=").is_ok());
        let body = br#"{"email":"test@example.com","username":"test_user"}"#;
        let sig = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";
        assert!(
            check(
                "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
                "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
                1_649_367_553,
                body,
                sig
            )
            .is_ok()
        );
    }

    #[test]
    fn official_large_payload_vectors_verify() {
        let cases = [
            (262_144, "v1,Mw4Pe2WgApuT7NSqnSq0PQPV9gbLdggCl9B865x5Xh0="),
            (262_143, "v1,NTItnqyWMoFhk2Bbe5V/BMdcFRWgcSQaTgqLHX7FC7c="),
            (1_048_576, "v1,txpEUxqWZJ5nteTnymUVa+7C4NHpBeXJ6CsBAW0c3/A="),
        ];
        for (len, sig) in cases {
            assert!(check(SECRET_1, ID_1, TS_1, &vec![b'a'; len], sig).is_ok(), "{len}");
        }
    }

    #[test]
    fn signing_reproduces_the_vector() {
        let v = Verifier::new(SECRET_1).unwrap();
        assert_eq!(
            v.signature_header(ID_1, TS_1, br#"{"test": 2432232314}"#),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn official_negative_cases_fail() {
        let body = br#"{"test": 2432232314}"#;
        let good = "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
        for bad in [
            "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=",
            "v1,",
            &format!("v1,{}", &good[..8]),
            &format!("v2,{good}"),
            good,
        ] {
            assert_eq!(check(SECRET_1, ID_1, TS_1, body, bad), Err(Refusal::InvalidSignature), "{bad}");
        }
        let mixed = format!("v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= v2,{good} v1,{good}");
        assert!(check(SECRET_1, ID_1, TS_1, body, &mixed).is_ok(), "any v1 entry may match");
        assert_eq!(
            check(SECRET_1, ID_1, TS_1, b"{\"test\": 2432232315}", &format!("v1,{good}")),
            Err(Refusal::InvalidSignature)
        );
    }

    #[test]
    fn timestamps_outside_five_minutes_fail() {
        let v = Verifier::new(SECRET_1).unwrap();
        let body = b"{}";
        for (ts, now, ok) in
            [(TS_1, TS_1 + 300, true), (TS_1, TS_1 - 300, true), (TS_1, TS_1 + 301, false), (TS_1, TS_1 - 301, false)]
        {
            let sig = v.signature_header(ID_1, ts, body);
            let result = v.verify(&headers(ID_1, &ts.to_string(), &sig), body, now);
            assert_eq!(result.is_ok(), ok, "ts {ts} now {now}");
            if !ok {
                assert_eq!(result.unwrap_err(), Refusal::StaleTimestamp);
            }
        }
        assert_eq!(v.verify(&headers(ID_1, "soon", "v1,x"), body, TS_1), Err(Refusal::StaleTimestamp));
        assert_eq!(v.verify(&headers(ID_1, "-5", "v1,x"), body, -5), Err(Refusal::StaleTimestamp));
    }

    #[test]
    fn missing_headers_fail_and_webhook_names_work() {
        let v = Verifier::new(SECRET_1).unwrap();
        let body = b"{}";
        let sig = v.signature_header(ID_1, TS_1, body);
        for drop in ["svix-id", "svix-timestamp", "svix-signature"] {
            let mut h = headers(ID_1, &TS_1.to_string(), &sig);
            h.remove(drop);
            assert_eq!(v.verify(&h, body, TS_1), Err(Refusal::MissingHeaders), "{drop}");
        }
        let mut h = HeaderMap::new();
        h.insert("webhook-id", HeaderValue::from_static(ID_1));
        h.insert("webhook-timestamp", HeaderValue::from_str(&TS_1.to_string()).unwrap());
        h.insert("webhook-signature", HeaderValue::from_str(&sig).unwrap());
        assert_eq!(v.verify(&h, body, TS_1).unwrap().id, ID_1);
    }

    #[test]
    fn empty_or_malformed_secrets_are_refused() {
        assert!(Verifier::new("").is_err());
        assert!(Verifier::new("whsec_").is_err());
        assert!(Verifier::new("whsec_!!!").is_err());
    }
}
