//! CORS where a policy is configured: whether it admits an origin, the gateway's own answer
//! to a preflight, and the `Access-Control-*` headers on every other answer (the gateway's
//! 401s and 5xx as much as the upstream's), which the gateway alone then sets.

use http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, ACCESS_CONTROL_REQUEST_HEADERS,
    ACCESS_CONTROL_REQUEST_METHOD, ORIGIN, VARY,
};
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode};

use crate::body::{self, Body};
use crate::config::{AllowHeaders, CorsPolicy, OriginPattern};

const TRUE: HeaderValue = HeaderValue::from_static("true");
const ANY: HeaderValue = HeaderValue::from_static("*");
const VARY_ORIGIN: HeaderValue = HeaderValue::from_static("Origin");
const VARY_PREFLIGHT: HeaderValue =
    HeaderValue::from_static("Origin, Access-Control-Request-Method, Access-Control-Request-Headers");

/// A CORS preflight: `OPTIONS` with `Origin` and `Access-Control-Request-Method`.
pub fn is_preflight(method: &Method, headers: &HeaderMap) -> bool {
    method == Method::OPTIONS && headers.contains_key(ORIGIN) && headers.contains_key(ACCESS_CONTROL_REQUEST_METHOD)
}

/// The method a preflight asks about.
pub fn requested_method(headers: &HeaderMap) -> Option<Method> {
    headers.get(ACCESS_CONTROL_REQUEST_METHOD).and_then(|m| Method::from_bytes(m.as_bytes()).ok())
}

/// The `Access-Control-Allow-Origin` value for `origin`, if `policy` admits it.
pub fn allowed(policy: &CorsPolicy, origin: &HeaderValue) -> Option<HeaderValue> {
    let text = origin.to_str().ok()?;
    policy.allow_origins.iter().find_map(|pattern| match pattern {
        OriginPattern::Any if !policy.allow_credentials => Some(ANY),
        OriginPattern::Any => Some(origin.clone()),
        OriginPattern::Exact(exact) => exact.eq_ignore_ascii_case(text).then(|| origin.clone()),
        OriginPattern::Subdomains { scheme, suffix } => is_subdomain(text, scheme, suffix).then(|| origin.clone()),
    })
}

/// `https://a.b.example.com` under `https://` + `.example.com`: one or more labels before it.
fn is_subdomain(origin: &str, scheme: &str, suffix: &str) -> bool {
    let Some(rest) = strip_prefix_ignore_case(origin, scheme) else { return false };
    let Some(labels) = rest.len().checked_sub(suffix.len()).and_then(|at| {
        let (labels, tail) = rest.split_at_checked(at)?;
        tail.eq_ignore_ascii_case(suffix).then_some(labels)
    }) else {
        return false;
    };
    !labels.is_empty()
        && labels.split('.').all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let (head, rest) = text.split_at_checked(prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then_some(rest)
}

/// The gateway's answer to a preflight: 204, with the policy's headers when it admits the
/// origin (without them, the browser refuses the request it was asking about).
pub fn preflight(policy: &CorsPolicy, request: &HeaderMap) -> Response<Body> {
    let mut response = Response::new(body::empty());
    *response.status_mut() = StatusCode::NO_CONTENT;
    let headers = response.headers_mut();
    headers.insert(VARY, VARY_PREFLIGHT);
    let origin = request.get(ORIGIN).and_then(|origin| allowed(policy, origin));
    let (Some(origin), Some(method)) = (origin, request.get(ACCESS_CONTROL_REQUEST_METHOD)) else { return response };
    headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    headers.insert(ACCESS_CONTROL_ALLOW_METHODS, method.clone());
    let allow_headers = match &policy.allow_headers {
        AllowHeaders::Listed(list) => Some(list.clone()),
        AllowHeaders::Requested => request.get(ACCESS_CONTROL_REQUEST_HEADERS).cloned(),
    };
    if let Some(list) = allow_headers.filter(|l| !l.is_empty()) {
        headers.insert(ACCESS_CONTROL_ALLOW_HEADERS, list);
    }
    if policy.allow_credentials {
        headers.insert(ACCESS_CONTROL_ALLOW_CREDENTIALS, TRUE);
    }
    if let Some(age) = &policy.max_age {
        headers.insert(ACCESS_CONTROL_MAX_AGE, age.clone());
    }
    response
}

/// Sets the policy's headers on an answer to a request from `origin` (none when it is not
/// admitted), replacing any an upstream set: with a policy, the gateway is the one to decide.
pub fn decorate(policy: &CorsPolicy, origin: Option<&HeaderValue>, headers: &mut HeaderMap) {
    for name in [
        ACCESS_CONTROL_ALLOW_ORIGIN,
        ACCESS_CONTROL_ALLOW_CREDENTIALS,
        ACCESS_CONTROL_EXPOSE_HEADERS,
        ACCESS_CONTROL_ALLOW_METHODS,
        ACCESS_CONTROL_ALLOW_HEADERS,
        ACCESS_CONTROL_MAX_AGE,
    ] {
        headers.remove(name);
    }
    headers.append(VARY, VARY_ORIGIN);
    let Some(allowed) = origin.and_then(|origin| allowed(policy, origin)) else { return };
    headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, allowed);
    if policy.allow_credentials {
        headers.insert(ACCESS_CONTROL_ALLOW_CREDENTIALS, TRUE);
    }
    if let Some(expose) = &policy.expose_headers {
        headers.insert(ACCESS_CONTROL_EXPOSE_HEADERS, expose.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(origins: Vec<OriginPattern>, credentials: bool) -> CorsPolicy {
        CorsPolicy {
            allow_origins: origins,
            allow_credentials: credentials,
            allow_headers: AllowHeaders::Listed(HeaderValue::from_static("authorization, content-type")),
            expose_headers: Some(HeaderValue::from_static("x-request-id")),
            max_age: Some(HeaderValue::from_static("600")),
        }
    }

    fn subdomains() -> OriginPattern {
        OriginPattern::Subdomains { scheme: "https://".into(), suffix: ".example.com".into() }
    }

    #[test]
    fn origins_match_exactly_or_as_subdomains() {
        let p = policy(vec![OriginPattern::Exact("https://app.test".into()), subdomains()], true);
        let admits = |o: &'static str| allowed(&p, &HeaderValue::from_static(o)).is_some();
        for yes in ["https://app.test", "https://a.example.com", "https://a.b.example.com", "HTTPS://A.Example.com"] {
            assert!(admits(yes), "{yes}");
        }
        for no in [
            "https://example.com",
            "https://.example.com",
            "https://a..example.com",
            "http://a.example.com",
            "https://a.example.com:8443",
            "https://evil-example.com",
            "https://a.example.com.evil.test",
            "https://app.test.evil",
            "null",
            "",
        ] {
            assert!(!admits(no), "{no}");
        }
        assert_eq!(allowed(&p, &HeaderValue::from_static("https://app.test")).unwrap(), "https://app.test");
        let open = policy(vec![OriginPattern::Any], false);
        assert_eq!(allowed(&open, &HeaderValue::from_static("https://x.test")).unwrap(), "*");
    }

    #[test]
    fn preflights_are_answered_and_answers_decorated() {
        let p = policy(vec![subdomains()], true);
        let mut request = HeaderMap::new();
        request.insert(ORIGIN, HeaderValue::from_static("https://app.example.com"));
        request.insert(ACCESS_CONTROL_REQUEST_METHOD, HeaderValue::from_static("PUT"));
        let answer = preflight(&p, &request);
        assert_eq!(answer.status(), 204);
        let h = answer.headers();
        assert_eq!(h[ACCESS_CONTROL_ALLOW_ORIGIN], "https://app.example.com");
        assert_eq!(h[ACCESS_CONTROL_ALLOW_METHODS], "PUT");
        assert_eq!(h[ACCESS_CONTROL_ALLOW_HEADERS], "authorization, content-type");
        assert_eq!(h[ACCESS_CONTROL_ALLOW_CREDENTIALS], "true");
        assert_eq!(h[ACCESS_CONTROL_MAX_AGE], "600");
        request.insert(ORIGIN, HeaderValue::from_static("https://evil.test"));
        let refused = preflight(&p, &request);
        assert!(!refused.headers().contains_key(ACCESS_CONTROL_ALLOW_ORIGIN));

        let mut upstream = HeaderMap::new();
        upstream.insert(ACCESS_CONTROL_ALLOW_ORIGIN, ANY);
        decorate(&p, Some(&HeaderValue::from_static("https://evil.test")), &mut upstream);
        assert!(!upstream.contains_key(ACCESS_CONTROL_ALLOW_ORIGIN), "the upstream's `*` does not survive");
        assert_eq!(upstream[VARY], "Origin");
        decorate(&p, Some(&HeaderValue::from_static("https://a.example.com")), &mut upstream);
        assert_eq!(upstream[ACCESS_CONTROL_ALLOW_ORIGIN], "https://a.example.com");
        assert_eq!(upstream[ACCESS_CONTROL_EXPOSE_HEADERS], "x-request-id");
        assert_eq!(upstream[ACCESS_CONTROL_ALLOW_CREDENTIALS], "true");
    }
}
