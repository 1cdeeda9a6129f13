//! The Clerk handshake: the redirect that sends a browser to the Frontend API for fresh
//! cookies, and the resolution of what comes back (a nonce redeemed at the Backend API, or
//! a handshake JWT signed by the instance key) into `Set-Cookie` directives.

use std::sync::Arc;

use http::HeaderValue;
use reqwest::Url;
use serde_json::Value;

use super::cookies::{DEV_BROWSER, HANDSHAKE, HANDSHAKE_NONCE, SESSION, directive_name_value};
use crate::auth::jwks::KeyStore;
use crate::auth::{Reason, token};
use crate::clerk_api::{ApiError, CLERK_API_VERSION, ClerkApi};

/// Query parameters Clerk removes from the URL the browser comes back to.
const HANDSHAKE_HELP: &str = "__clerk_help";
const LEGACY_DEV_BROWSER: &str = "__dev_session";

/// What a handshake redirect needs to say.
pub struct Start<'a> {
    /// The URL the browser asked for.
    pub url: &'a Url,
    /// `__clerk_hs_reason`.
    pub reason: &'a str,
    /// Whether the suffixed cookie set is in use.
    pub suffixed_cookies: bool,
    /// The current session token, if any.
    pub session_token: Option<&'a str>,
    /// The dev-browser token (development instances).
    pub dev_browser: Option<&'a str>,
}

/// `https://<frontend-api>/v1/client/handshake?redirect_url=…&…&format=nonce`.
pub fn redirect_url(frontend_api: &Url, start: &Start<'_>) -> Option<Url> {
    let mut back = start.url.clone();
    let kept: Vec<(String, String)> = back
        .query_pairs()
        .filter(|(k, _)| k != DEV_BROWSER && k != LEGACY_DEV_BROWSER)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    set_query(&mut back, &kept);
    let mut url = frontend_api.join("v1/client/handshake").ok()?;
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("redirect_url", back.as_str());
        q.append_pair("__clerk_api_version", CLERK_API_VERSION);
        q.append_pair("suffixed_cookies", if start.suffixed_cookies { "true" } else { "false" });
        q.append_pair("__clerk_hs_reason", start.reason);
        q.append_pair("format", "nonce");
        if let Some(token) = start.session_token {
            q.append_pair(SESSION, token);
        }
        if let Some(dev) = start.dev_browser {
            q.append_pair(DEV_BROWSER, dev);
        }
    }
    Some(url)
}

/// The URL without the handshake's own query parameters (development instances send the
/// browser there once the handshake is resolved).
pub fn clean_url(url: &Url) -> Url {
    let mut clean = url.clone();
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| ![HANDSHAKE, HANDSHAKE_NONCE, HANDSHAKE_HELP, DEV_BROWSER].contains(&k.as_ref()))
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    set_query(&mut clean, &kept);
    clean
}

fn set_query(url: &mut Url, pairs: &[(String, String)]) {
    if pairs.is_empty() {
        url.set_query(None);
    } else {
        url.query_pairs_mut().clear().extend_pairs(pairs);
    }
}

/// Why a handshake that came back could not be resolved (the request then carries on as
/// if there had been none).
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// A nonce came back, but there is no secret key to redeem it with.
    #[error("a handshake nonce needs the secret key to redeem")]
    NoSecretKey,
    /// The Backend API would not hand over the nonce's payload.
    #[error("handshake payload: {0}")]
    Payload(#[source] ApiError),
    /// The handshake JWT does not verify.
    #[error("handshake token: {0}")]
    Token(Reason),
    /// The handshake JWT verified but carries no directives.
    #[error("handshake token without directives")]
    NoDirectives,
    /// Neither a nonce nor a JWT.
    #[error("no handshake")]
    Nothing,
}

impl HandshakeError {
    /// Whether the Backend API refused the nonce itself (a 4xx other than a rate limit),
    /// as opposed to being unreachable, failing or busy.
    pub fn is_refusal(&self) -> bool {
        let status = match self {
            HandshakeError::Payload(ApiError::Clerk { status, .. } | ApiError::Status(status)) => *status,
            _ => return false,
        };
        (400..500).contains(&status) && status != 429
    }
}

/// A resolved handshake: the cookies to set, and the session token among them.
pub struct Resolved {
    /// Every directive, as `Set-Cookie` values.
    pub cookies: Vec<HeaderValue>,
    /// The value of the last `__session…` directive (empty = signed out).
    pub session_token: String,
}

/// Turns a nonce (via the Backend API) or a handshake JWT into directives.
///
/// # Errors
/// `HandshakeError` when the payload cannot be fetched, the JWT does not verify, or nothing
/// usable came back; the caller then carries on as if there had been no handshake.
pub async fn resolve(
    api: Option<&ClerkApi>,
    keys: &Arc<KeyStore>,
    nonce: Option<&str>,
    jwt: Option<&str>,
) -> Result<Resolved, HandshakeError> {
    let directives = match (nonce, jwt) {
        (Some(nonce), _) => {
            let api = api.ok_or(HandshakeError::NoSecretKey)?;
            api.handshake_payload(nonce).await.map_err(HandshakeError::Payload)?
        }
        (None, Some(jwt)) => verify_handshake_jwt(keys, jwt).await?,
        (None, None) => return Err(HandshakeError::Nothing),
    };
    let mut cookies = Vec::with_capacity(directives.len());
    let mut session_token = String::new();
    for directive in &directives {
        let Ok(value) = HeaderValue::try_from(directive.as_str()) else { continue };
        if let Some((name, value)) = directive_name_value(directive)
            && name.starts_with(SESSION)
        {
            session_token = value.to_owned();
        }
        cookies.push(value);
    }
    Ok(Resolved { cookies, session_token })
}

/// Checks a handshake JWT (header, algorithm, signature with the instance keys; no time
/// claims, as in Clerk's SDK) and returns its `handshake` directives.
async fn verify_handshake_jwt(keys: &Arc<KeyStore>, jwt: &str) -> Result<Vec<String>, HandshakeError> {
    let parsed = token::parse(jwt).map_err(HandshakeError::Token)?;
    let key = keys.resolve(parsed.kid.as_deref()).await.map_err(HandshakeError::Token)?;
    token::verify_signature(&parsed, &key).map_err(HandshakeError::Token)?;
    let list = parsed.claims.get("handshake").and_then(Value::as_array).ok_or(HandshakeError::NoDirectives)?;
    Ok(list.iter().filter_map(Value::as_str).map(str::to_owned).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_redirect_carries_what_clerk_expects() {
        let fapi = Url::parse("https://clerk.example.com").unwrap();
        let url = Url::parse("https://app.example.com/dash?tab=1&__clerk_db_jwt=dev1").unwrap();
        let start = Start {
            url: &url,
            reason: "session-token-expired-refresh-non-eligible-no-refresh-cookie",
            suffixed_cookies: true,
            session_token: Some("tok"),
            dev_browser: Some("dev1"),
        };
        let to = redirect_url(&fapi, &start).unwrap();
        assert_eq!(to.path(), "/v1/client/handshake");
        let q: Vec<(String, String)> = to.query_pairs().map(|(k, v)| (k.into(), v.into())).collect();
        let get = |k: &str| q.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
        assert_eq!(get("redirect_url"), Some("https://app.example.com/dash?tab=1"));
        assert_eq!(get("__clerk_api_version"), Some("2026-05-12"));
        assert_eq!(get("suffixed_cookies"), Some("true"));
        assert_eq!(get("__clerk_hs_reason"), Some("session-token-expired-refresh-non-eligible-no-refresh-cookie"));
        assert_eq!(get("format"), Some("nonce"));
        assert_eq!(get("__session"), Some("tok"));
        assert_eq!(get("__clerk_db_jwt"), Some("dev1"));
        let local = Url::parse("http://127.0.0.1:9999/fapi/").unwrap();
        assert_eq!(redirect_url(&local, &start).unwrap().path(), "/fapi/v1/client/handshake");
    }

    #[test]
    fn the_clean_url_drops_handshake_parameters() {
        let url =
            Url::parse("http://localhost:3000/p?__clerk_handshake=x&a=1&__clerk_handshake_nonce=n&__clerk_help=1")
                .unwrap();
        assert_eq!(clean_url(&url).as_str(), "http://localhost:3000/p?a=1");
        let only = Url::parse("http://localhost:3000/p?__clerk_handshake=x").unwrap();
        assert_eq!(clean_url(&only).as_str(), "http://localhost:3000/p");
    }
}
