//! Reading credentials out of headers: the `Authorization: Bearer` token, and single cookie
//! values. Ambiguous input (two Authorization headers, two different values of one cookie)
//! fails closed. Which cookie is the session cookie is `browser::cookies`' business.

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

/// The Authorization header's token, or `None` when there is no header or it uses another
/// scheme (Basic and friends fall through to the cookie, as in Clerk's SDK).
pub fn bearer(headers: &HeaderMap) -> Option<Credential<'_>> {
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
            assert_eq!(bearer(&h), Some(Credential::Bearer("abc")), "{value}");
        }
    }

    #[test]
    fn other_schemes_and_empty_bearers_are_no_header_token() {
        for value in ["Basic dXNlcjpwYXNz", "Bearer ", "", "Digest x=1"] {
            assert_eq!(bearer(&headers(&[("authorization", value)])), None, "{value:?}");
        }
        assert_eq!(bearer(&HeaderMap::new()), None);
    }

    #[test]
    fn cookies_split_across_headers_are_read() {
        let h = headers(&[("cookie", "a=1"), ("cookie", "__session=tok")]);
        assert_eq!(cookie_value(&h, "__session"), Credential::Cookie("tok"));
        assert_eq!(cookie_value(&h, "b"), Credential::Missing);
    }

    #[test]
    fn ambiguity_fails_closed() {
        let two_headers = headers(&[("authorization", "Bearer a"), ("authorization", "Bearer b")]);
        assert_eq!(bearer(&two_headers), Some(Credential::Ambiguous));
        let two_cookies = headers(&[("cookie", "__session=a; __session=b")]);
        assert_eq!(cookie_value(&two_cookies, "__session"), Credential::Ambiguous);
        let same_twice = headers(&[("cookie", "__session=a"), ("cookie", "__session=a")]);
        assert_eq!(cookie_value(&same_twice, "__session"), Credential::Cookie("a"));
        let spaced = headers(&[("authorization", "Bearer a b")]);
        assert_eq!(bearer(&spaced), Some(Credential::Ambiguous));
    }

    #[test]
    fn empty_cookie_is_missing() {
        let h = headers(&[("cookie", "__session=; other=1")]);
        assert_eq!(cookie_value(&h, "__session"), Credential::Missing);
    }
}
