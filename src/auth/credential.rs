//! Finding the session token in a request: `Authorization: Bearer` first, then the
//! instance's suffixed `__session_<suffix>` cookie, then `__session`. Ambiguous input (two
//! Authorization headers, two different session cookies of one name) fails closed.

use http::HeaderMap;
use http::header::{AUTHORIZATION, COOKIE};

/// What the request carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential<'a> {
    /// Nothing that could be a session token.
    Missing,
    /// A token from the Authorization header.
    Bearer(&'a str),
    /// A token from a session cookie.
    Cookie(&'a str),
    /// Credentials that cannot be read without guessing.
    Ambiguous,
}

impl Credential<'_> {
    /// Whether the client sent something it meant as a credential.
    pub fn was_sent(&self) -> bool {
        !matches!(self, Credential::Missing)
    }
}

/// The unsuffixed session cookie name.
pub const SESSION_COOKIE: &str = "__session";

/// Finds the credential. `suffixed_cookie` is `__session_<suffix>` when a publishable key
/// is configured.
pub fn extract<'a>(headers: &'a HeaderMap, suffixed_cookie: Option<&str>) -> Credential<'a> {
    match bearer(headers) {
        Some(found) => found,
        None => session_cookie(headers, suffixed_cookie),
    }
}

/// The Authorization header's token, or `None` when there is no header or it uses another
/// scheme (Basic and friends fall through to the cookie, as in Clerk's SDK).
fn bearer(headers: &HeaderMap) -> Option<Credential<'_>> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let first = values.next()?;
    if values.next().is_some() {
        return Some(Credential::Ambiguous);
    }
    let Ok(text) = first.to_str() else { return Some(Credential::Ambiguous) };
    let text = text.trim();
    match text.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => {
            let token = token.trim();
            if token.is_empty() || token.contains(' ') {
                Some(Credential::Ambiguous)
            } else {
                Some(Credential::Bearer(token))
            }
        }
        Some(_) => None,
        None if text.is_empty() || text.eq_ignore_ascii_case("bearer") => None,
        None => Some(Credential::Bearer(text)),
    }
}

fn session_cookie<'a>(headers: &'a HeaderMap, suffixed: Option<&str>) -> Credential<'a> {
    if let Some(name) = suffixed {
        match cookie_value(headers, name) {
            Credential::Missing => {}
            found => return found,
        }
    }
    cookie_value(headers, SESSION_COOKIE)
}

/// The single value of cookie `name` across every Cookie header; several different
/// non-empty values are ambiguous.
pub fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Credential<'a> {
    let mut found: Option<&'a str> = None;
    for (key, value) in cookies(headers) {
        if key != name || value.is_empty() {
            continue;
        }
        match found {
            Some(previous) if previous != value => return Credential::Ambiguous,
            _ => found = Some(value),
        }
    }
    found.map_or(Credential::Missing, Credential::Cookie)
}

/// Every `name=value` pair in the request's Cookie headers (HTTP/2 may split them).
pub fn cookies(headers: &HeaderMap) -> impl Iterator<Item = (&str, &str)> {
    headers.get_all(COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|line| line.split(';')).filter_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        let value = value.trim();
        let value = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(value);
        Some((name.trim(), value))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        for value in ["Bearer abc", "bearer abc", "BEARER  abc ", "abc"] {
            let h = headers(&[("authorization", value)]);
            assert_eq!(extract(&h, None), Credential::Bearer("abc"), "{value}");
        }
    }

    #[test]
    fn header_wins_over_cookie() {
        let h = headers(&[("authorization", "Bearer head"), ("cookie", "__session=cook")]);
        assert_eq!(extract(&h, None), Credential::Bearer("head"));
    }

    #[test]
    fn other_schemes_fall_through_to_the_cookie() {
        let h = headers(&[("authorization", "Basic dXNlcjpwYXNz"), ("cookie", "a=b; __session=cook")]);
        assert_eq!(extract(&h, None), Credential::Cookie("cook"));
        let h = headers(&[("authorization", "Basic dXNlcjpwYXNz")]);
        assert_eq!(extract(&h, None), Credential::Missing);
    }

    #[test]
    fn suffixed_cookie_is_preferred() {
        let h = headers(&[("cookie", "__session=plain; __session_QvfNY2dr=suffixed")]);
        assert_eq!(extract(&h, Some("__session_QvfNY2dr")), Credential::Cookie("suffixed"));
        assert_eq!(extract(&h, None), Credential::Cookie("plain"));
        let h = headers(&[("cookie", "__session=plain")]);
        assert_eq!(extract(&h, Some("__session_QvfNY2dr")), Credential::Cookie("plain"));
    }

    #[test]
    fn cookies_split_across_headers_are_read() {
        let h = headers(&[("cookie", "a=1"), ("cookie", "__session=tok")]);
        assert_eq!(extract(&h, None), Credential::Cookie("tok"));
    }

    #[test]
    fn ambiguity_fails_closed() {
        let two_headers = headers(&[("authorization", "Bearer a"), ("authorization", "Bearer b")]);
        assert_eq!(extract(&two_headers, None), Credential::Ambiguous);
        let two_cookies = headers(&[("cookie", "__session=a; __session=b")]);
        assert_eq!(extract(&two_cookies, None), Credential::Ambiguous);
        let same_twice = headers(&[("cookie", "__session=a"), ("cookie", "__session=a")]);
        assert_eq!(extract(&same_twice, None), Credential::Cookie("a"));
        let spaced = headers(&[("authorization", "Bearer a b")]);
        assert_eq!(extract(&spaced, None), Credential::Ambiguous);
        let empty = headers(&[("authorization", "Bearer ")]);
        assert_eq!(extract(&empty, None), Credential::Missing);
    }

    #[test]
    fn empty_cookie_is_missing() {
        let h = headers(&[("cookie", "__session=; other=1")]);
        assert_eq!(extract(&h, None), Credential::Missing);
    }
}
