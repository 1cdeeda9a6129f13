//! Clerk key formats: what a publishable key says (Frontend API host, production or
//! development, cookie suffix) and the shape checks for secret keys. Pure functions.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD_PAD_INDIFFERENT, URL_SAFE_NO_PAD};

/// A parsed `pk_test_…` / `pk_live_…` key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublishableKey {
    /// The key as configured; it is public, so it may be printed.
    pub raw: String,
    /// The Frontend API host, e.g. `clerk.example.com` or `slug.clerk.accounts.dev`.
    pub frontend_api: String,
    /// `pk_live_` keys belong to production instances.
    pub production: bool,
    /// The suffix Clerk appends to cookie names for this instance (`__session_<suffix>`).
    pub cookie_suffix: String,
}

impl PublishableKey {
    /// Parses a publishable key.
    ///
    /// # Errors
    /// A short message when the prefix, the base64 or the encoded host is wrong.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let (production, encoded) = if let Some(rest) = raw.strip_prefix("pk_live_") {
            (true, rest)
        } else if let Some(rest) = raw.strip_prefix("pk_test_") {
            (false, rest)
        } else {
            return Err("expected a Clerk publishable key starting with pk_test_ or pk_live_".into());
        };
        let decoded = STANDARD_PAD_INDIFFERENT
            .decode(encoded)
            .map_err(|_| "the publishable key's payload is not valid base64".to_owned())?;
        let text =
            String::from_utf8(decoded).map_err(|_| "the publishable key does not encode a host name".to_owned())?;
        let host = text
            .strip_suffix('$')
            .filter(|h| is_host(h))
            .ok_or_else(|| "the publishable key does not encode a Frontend API host".to_owned())?;
        Ok(PublishableKey {
            raw: raw.to_owned(),
            frontend_api: host.to_ascii_lowercase(),
            production,
            cookie_suffix: cookie_suffix(raw),
        })
    }

    /// The default session-token issuer: the Frontend API URL.
    pub fn issuer(&self) -> String {
        format!("https://{}", self.frontend_api)
    }

    /// The Frontend API's public JWKS endpoint.
    pub fn jwks_url(&self) -> String {
        format!("https://{}/.well-known/jwks.json", self.frontend_api)
    }
}

/// Clerk's cookie suffix: the first 8 characters of URL-safe base64 of SHA-1(publishable key).
pub fn cookie_suffix(publishable_key: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, publishable_key.as_bytes());
    let mut encoded = URL_SAFE_NO_PAD.encode(digest.as_ref());
    encoded.truncate(8);
    encoded
}

/// Checks the shape of a secret key without ever echoing it.
///
/// # Errors
/// A message that does not contain the key.
pub fn check_secret_key(key: &str) -> Result<(), String> {
    let ok = (key.starts_with("sk_test_") || key.starts_with("sk_live_"))
        && key.len() > 8
        && key.bytes().all(|b| b.is_ascii_graphic());
    if ok { Ok(()) } else { Err("expected a Clerk secret key starting with sk_test_ or sk_live_".into()) }
}

fn is_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_suffix_matches_clerk_vectors() {
        assert_eq!(cookie_suffix("pk_test_Y2xlcmsuY2xlcmsuZGV2JA"), "QvfNY2dr");
        assert_eq!(cookie_suffix("pk_live_ZmFrZS1jbGVyay10ZXN0LmNsZXJrLmFjY291bnRzLmRldiQ="), "qReyu04C");
        assert_eq!(cookie_suffix("pk_test_ZW5vdWdoLWFscGFjYS04Mi5jbGVyay5hY2NvdW50cy5sY2xjbGVyay5jb20k"), "jtYvyt_H");
    }

    #[test]
    fn parses_the_frontend_api_host() {
        let pk = PublishableKey::parse("pk_test_Y2xlcmsuY2xlcmsuZGV2JA").unwrap();
        assert_eq!(pk.frontend_api, "clerk.clerk.dev");
        assert!(!pk.production);
        assert_eq!(pk.issuer(), "https://clerk.clerk.dev");
        assert_eq!(pk.jwks_url(), "https://clerk.clerk.dev/.well-known/jwks.json");
        let live = PublishableKey::parse("pk_live_ZmFrZS1jbGVyay10ZXN0LmNsZXJrLmFjY291bnRzLmRldiQ=").unwrap();
        assert_eq!(live.frontend_api, "fake-clerk-test.clerk.accounts.dev");
        assert!(live.production);
    }

    #[test]
    fn rejects_malformed_keys() {
        for bad in ["", "sk_test_abc", "pk_test_", "pk_test_!!!", "pk_test_aGVsbG8", "pk_test_JA"] {
            assert!(PublishableKey::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn secret_key_shape() {
        assert!(check_secret_key("sk_test_abc123").is_ok());
        assert!(check_secret_key("sk_live_abc123").is_ok());
        for bad in ["", "sk_test_", "pk_test_abc", "sk_test_a b", "whsec_abc"] {
            assert!(check_secret_key(bad).is_err(), "{bad:?}");
        }
    }
}
