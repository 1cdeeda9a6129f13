//! Clerk's cookies as the server SDKs read them: which of the suffixed (`__session_<sfx>`)
//! and unsuffixed sets to trust, `__client_uat`, the dev-browser token, the handshake
//! token and nonce, and the redirect-loop counter; plus the `Set-Cookie` directives the
//! gateway itself sends.

use http::{HeaderMap, HeaderValue};

use crate::auth::credential::cookies;
use crate::auth::token;

/// Session token cookie.
pub const SESSION: &str = "__session";
/// Client "updated at" cookie: seconds of the client's last change, `0` = signed out.
pub const CLIENT_UAT: &str = "__client_uat";
/// Development instances' dev-browser token (cookie and query parameter).
pub const DEV_BROWSER: &str = "__clerk_db_jwt";
/// Handshake payload JWT (cookie in production, query parameter in development).
pub const HANDSHAKE: &str = "__clerk_handshake";
/// Handshake nonce (cookie or query parameter).
pub const HANDSHAKE_NONCE: &str = "__clerk_handshake_nonce";
/// Handshake redirect-loop counter.
pub const REDIRECT_COUNT: &str = "__clerk_redirect_count";

/// What the instance is, for cookie selection.
#[derive(Debug, Clone, Copy)]
pub struct Instance<'a> {
    /// The cookie suffix from the publishable key.
    pub suffix: &'a str,
    /// The Frontend API host (`iss` without scheme).
    pub frontend_api: &'a str,
    /// `pk_live_` instance.
    pub production: bool,
}

/// The Clerk cookies of one request.
#[derive(Debug)]
pub struct ClerkCookies<'a> {
    /// The session token cookie of the trusted set (`Err` when it is ambiguous).
    pub session: Result<Option<&'a str>, ()>,
    /// `__client_uat` of the trusted set, as seconds (`0` when missing or unreadable).
    pub client_uat: i64,
    /// Dev-browser token cookie of the trusted set.
    pub dev_browser: Option<&'a str>,
    /// Handshake token cookie.
    pub handshake: Option<&'a str>,
    /// Handshake nonce cookie.
    pub handshake_nonce: Option<&'a str>,
    /// Handshakes already attempted in the last seconds.
    pub redirect_count: u32,
    /// Whether the suffixed set is the trusted one.
    pub suffixed: bool,
    /// `iat` of the trusted session token, read without verification.
    pub session_iat: Option<i64>,
}

/// The cookie names Clerk's rules read: the first three also with the instance's suffix.
const NAMES: [&str; 6] = [SESSION, CLIENT_UAT, DEV_BROWSER, HANDSHAKE, HANDSHAKE_NONCE, REDIRECT_COUNT];
const SUFFIXABLE: usize = 3;

/// One cookie's value across the request: missing, one value (repeats of it allowed), or
/// two different values (ambiguous).
#[derive(Debug, Clone, Copy, Default)]
enum Slot<'a> {
    #[default]
    Missing,
    One(&'a str),
    Ambiguous,
}

/// The values of every cookie in `NAMES`, unsuffixed then suffixed, from one pass over the
/// Cookie headers.
struct Jar<'a>([Slot<'a>; NAMES.len() + SUFFIXABLE]);

impl<'a> Jar<'a> {
    fn read(headers: &'a HeaderMap, suffix: Option<&str>) -> Self {
        let mut jar = Jar([Slot::Missing; NAMES.len() + SUFFIXABLE]);
        for (key, value) in cookies(headers) {
            if value.is_empty() || !key.starts_with("__") {
                continue;
            }
            let Some(index) = Self::index(key, suffix) else { continue };
            let slot = &mut jar.0[index];
            *slot = match *slot {
                Slot::Missing => Slot::One(value),
                Slot::One(previous) if previous == value => Slot::One(previous),
                _ => Slot::Ambiguous,
            };
        }
        jar
    }

    /// Where cookie `key` goes: `NAMES`' index, or past them for a suffixed one.
    fn index(key: &str, suffix: Option<&str>) -> Option<usize> {
        NAMES.iter().enumerate().find_map(|(i, name)| {
            let rest = key.strip_prefix(name)?;
            match (rest, suffix) {
                ("", _) => Some(i),
                (rest, Some(suffix)) if i < SUFFIXABLE && rest.strip_prefix('_') == Some(suffix) => {
                    Some(NAMES.len() + i)
                }
                _ => None,
            }
        })
    }

    /// Cookie `NAMES[i]`, suffixed or not (`Err` when ambiguous).
    fn value(&self, i: usize, suffixed: bool) -> Result<Option<&'a str>, ()> {
        let index = if suffixed && i < SUFFIXABLE { NAMES.len() + i } else { i };
        match self.0[index] {
            Slot::Missing => Ok(None),
            Slot::One(value) => Ok(Some(value)),
            Slot::Ambiguous => Err(()),
        }
    }

    /// Cookie `NAMES[i]`, an ambiguous one read as missing.
    fn get(&self, i: usize, suffixed: bool) -> Option<&'a str> {
        self.value(i, suffixed).ok().flatten()
    }
}

/// Reads the cookies; `instance` is `None` without a publishable key (unsuffixed only).
pub fn read<'a>(headers: &'a HeaderMap, instance: Option<Instance<'_>>, now_secs: i64) -> ClerkCookies<'a> {
    let jar = Jar::read(headers, instance.map(|i| i.suffix));
    let unsuffixed_session = jar.get(0, false);
    let unsuffixed_peek = unsuffixed_session.and_then(token::peek);
    let suffixed = instance.is_some_and(|i| uses_suffixed(&jar, i, unsuffixed_peek.as_ref(), now_secs));
    let session = jar.value(0, suffixed);
    let session_iat =
        if suffixed { session.ok().flatten().and_then(token::peek) } else { unsuffixed_peek }.and_then(|p| p.iat);
    ClerkCookies {
        session_iat,
        session,
        client_uat: jar.get(1, suffixed).and_then(|v| v.trim().parse::<i64>().ok()).unwrap_or(0),
        dev_browser: jar.get(2, suffixed),
        handshake: jar.get(3, false),
        handshake_nonce: jar.get(4, false),
        redirect_count: jar.get(5, false).and_then(|v| v.parse().ok()).unwrap_or(0),
        suffixed,
    }
}

/// Clerk's rule for trusting the suffixed cookie set over the unsuffixed one (the suffix
/// keeps several Clerk apps on one site apart), in Clerk's order.
fn uses_suffixed(jar: &Jar<'_>, instance: Instance<'_>, session_claims: Option<&token::Peek>, now_secs: i64) -> bool {
    let suffixed_uat = jar.get(1, true);
    let uat = jar.get(1, false);
    let suffixed_session = jar.get(0, true);
    let session = jar.get(0, false);
    if session.is_some() {
        let Some(issuer) = session_claims.and_then(|c| c.iss.as_deref()).filter(|i| !i.is_empty()) else {
            return false;
        };
        let host = issuer.trim_start_matches("https://").trim_start_matches("http://");
        if host != instance.frontend_api {
            return true;
        }
    }
    if suffixed_uat.is_none() && suffixed_session.is_none() {
        return false;
    }
    let suffixed_claims = suffixed_session.and_then(token::peek).unwrap_or_default();
    if suffixed_uat != Some("0")
        && uat != Some("0")
        && session_claims.and_then(|c| c.iat).unwrap_or(0) > suffixed_claims.iat.unwrap_or(0)
    {
        return false;
    }
    if suffixed_uat == Some("0") && uat != Some("0") {
        return false;
    }
    if !instance.production {
        let expired = suffixed_claims.exp.is_some_and(|exp| exp <= now_secs);
        if suffixed_uat != Some("0") && uat == Some("0") && expired {
            return false;
        }
    }
    if suffixed_uat.is_none() && suffixed_session.is_some() {
        return false;
    }
    true
}

/// `Set-Cookie` for the redirect-loop counter (lives two seconds, as Clerk's does).
pub fn redirect_count(next: u32) -> HeaderValue {
    HeaderValue::try_from(format!("{REDIRECT_COUNT}={next}; SameSite=Lax; HttpOnly; Max-Age=2"))
        .unwrap_or_else(|_| HeaderValue::from_static("__clerk_redirect_count=1; Max-Age=2"))
}

/// `Set-Cookie` directives that clear the session (logout): the session token and
/// `__client_uat` (set to `0`, "signed out"), suffixed and unsuffixed.
pub fn clearing(suffix: Option<&str>) -> Vec<HeaderValue> {
    let mut names = vec![(SESSION.to_owned(), ""), (CLIENT_UAT.to_owned(), "0")];
    if let Some(suffix) = suffix {
        names.push((format!("{SESSION}_{suffix}"), ""));
        names.push((format!("{CLIENT_UAT}_{suffix}"), "0"));
    }
    names
        .into_iter()
        .filter_map(|(name, value)| {
            HeaderValue::try_from(format!("{name}={value}; Path=/; Max-Age=0; SameSite=Lax")).ok()
        })
        .collect()
}

/// The name and value of a `Set-Cookie` directive (`name=value; attributes…`).
pub fn directive_name_value(directive: &str) -> Option<(&str, &str)> {
    let pair = directive.split(';').next()?;
    let (name, value) = pair.split_once('=')?;
    Some((name.trim(), value.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    const FAPI: &str = "clerk.example.com";

    fn instance(production: bool) -> Instance<'static> {
        Instance { suffix: "abc", frontend_api: FAPI, production }
    }

    fn jwt(claims: serde_json::Value) -> String {
        format!("{}.{}.sig", URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256"}"#), URL_SAFE_NO_PAD.encode(claims.to_string()))
    }

    fn headers(cookie: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("cookie", HeaderValue::from_str(cookie).unwrap());
        h
    }

    fn ours(iat: i64) -> String {
        jwt(serde_json::json!({"iss": format!("https://{FAPI}"), "iat": iat, "exp": iat + 60}))
    }

    #[test]
    fn one_pass_reads_every_clerk_cookie_and_repeats_that_differ_are_ambiguous() {
        let h = headers(
            "app=1; __session=a; __client_uat=5; __session=a; __clerk_db_jwt_sfx=dev; __clerk_handshake=hs; \
             __clerk_handshake_nonce=n; __clerk_redirect_count=2; __client_uat_sfx=; __session_other=x",
        );
        let jar = Jar::read(&h, Some("sfx"));
        assert_eq!(jar.value(0, false), Ok(Some("a")), "a repeat of one value is that value");
        assert_eq!((jar.get(1, false), jar.get(1, true)), (Some("5"), None), "empty values do not count");
        assert_eq!((jar.get(2, false), jar.get(2, true)), (None, Some("dev")));
        assert_eq!((jar.get(3, false), jar.get(4, false), jar.get(5, false)), (Some("hs"), Some("n"), Some("2")));
        assert_eq!(jar.get(0, true), None, "another suffix is not ours");
        let twice = headers("__session=a; __session=b");
        assert_eq!(Jar::read(&twice, None).value(0, false), Err(()));
        assert_eq!(Jar::read(&headers("__session_sfx=a"), None).get(0, true), None, "no suffix without a key");
    }

    #[test]
    fn the_unsuffixed_set_without_suffixed_cookies() {
        let h = headers(&format!("__session={}; __client_uat=100", ours(100)));
        let c = read(&h, Some(instance(true)), 0);
        assert!(!c.suffixed);
        assert_eq!(c.client_uat, 100);
        assert!(c.session.unwrap().is_some());
    }

    #[test]
    fn a_foreign_unsuffixed_token_means_suffixed() {
        let foreign = jwt(serde_json::json!({"iss": "https://clerk.other.com", "iat": 5}));
        let h = headers(&format!("__session={foreign}; __session_abc={}; __client_uat_abc=9", ours(9)));
        let c = read(&h, Some(instance(true)), 0);
        assert!(c.suffixed);
        assert_eq!(c.client_uat, 9);
    }

    #[test]
    fn a_malformed_unsuffixed_token_means_unsuffixed() {
        let h = headers(&format!("__session=garbage; __session_abc={}; __client_uat_abc=9", ours(9)));
        assert!(!read(&h, Some(instance(true)), 0).suffixed);
    }

    #[test]
    fn the_newer_signed_in_set_wins() {
        let h = headers(&format!(
            "__session={}; __client_uat=1; __session_abc={}; __client_uat_abc=1",
            ours(200),
            ours(100)
        ));
        assert!(!read(&h, Some(instance(true)), 0).suffixed, "unsuffixed is newer");
        let h = headers(&format!(
            "__session={}; __client_uat=1; __session_abc={}; __client_uat_abc=1",
            ours(100),
            ours(200)
        ));
        assert!(read(&h, Some(instance(true)), 0).suffixed, "suffixed is newer");
    }

    #[test]
    fn suffixed_signed_out_but_unsuffixed_signed_in_means_unsuffixed() {
        let h = headers(&format!("__session={}; __client_uat=5; __client_uat_abc=0", ours(5)));
        assert!(!read(&h, Some(instance(true)), 0).suffixed);
    }

    #[test]
    fn development_falls_back_when_the_suffixed_token_expired() {
        let cookie = format!("__session_abc={}; __client_uat_abc=5; __client_uat=0", ours(5));
        assert!(!read(&headers(&cookie), Some(instance(false)), 1_000).suffixed);
        assert!(read(&headers(&cookie), Some(instance(true)), 1_000).suffixed, "production trusts suffixed");
    }

    #[test]
    fn a_suffixed_session_without_its_uat_means_unsuffixed() {
        let h = headers(&format!("__session_abc={}", ours(5)));
        assert!(!read(&h, Some(instance(true)), 0).suffixed);
    }

    #[test]
    fn counters_nonces_and_ambiguity() {
        let h =
            headers("__clerk_redirect_count=2; __clerk_handshake_nonce=n1; __session=a; __session=b; __client_uat=x");
        let c = read(&h, None, 0);
        assert_eq!(c.redirect_count, 2);
        assert_eq!(c.handshake_nonce, Some("n1"));
        assert!(c.session.is_err());
        assert_eq!(c.client_uat, 0, "unreadable uat counts as 0");
    }

    #[test]
    fn directives() {
        assert_eq!(directive_name_value("__session=abc.def; Path=/; Secure"), Some(("__session", "abc.def")));
        assert_eq!(directive_name_value("broken"), None);
        let cleared = clearing(Some("abc"));
        assert_eq!(cleared.len(), 4);
        assert!(cleared.iter().all(|c| c.to_str().unwrap().contains("Max-Age=0")));
    }
}
