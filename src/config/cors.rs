//! `[cors]` and a route's `cors` table into a `CorsPolicy`: origins (exact or
//! `https://*.example.com`), header lists, `max_age`; each key a route sets replaces the
//! section's, and a policy that admits no origin is no policy.

use std::sync::Arc;

use http::{HeaderName, HeaderValue};
use reqwest::Url;

use super::model::{AllowHeaders, ConfigError, CorsPolicy, OriginPattern};
use super::problems::Problems;
use super::raw::RawCors;
use super::values::duration;

const EMPTY: HeaderValue = HeaderValue::from_static("");

/// `[cors]`: its keys, for routes' tables to go over, and the policy they make on their own.
pub(super) struct Section {
    keys: CorsKeys,
    /// The section's policy: the gateway's own paths', and every route's without a table.
    pub policy: Option<Arc<CorsPolicy>>,
}

/// Reads `[cors]`, noting each bad value.
pub(super) fn section(raw: RawCors, p: &mut Problems) -> Section {
    let keys = keys("cors", raw, p);
    let policy = policy(&keys, None, p);
    Section { keys, policy }
}

impl Section {
    /// The policy of the route whose `cors` table (at `at`) is `table`: the section's own,
    /// shared, when it has none.
    pub(super) fn for_route(&self, at: &str, table: Option<RawCors>, p: &mut Problems) -> Option<Arc<CorsPolicy>> {
        match table {
            None => self.policy.clone(),
            Some(table) => policy(&self.keys, Some(&keys(at, table, p)), p),
        }
    }
}

/// The keys one table sets, checked; unset keys are `None`.
#[derive(Debug, Default)]
struct CorsKeys {
    /// Where the table is (`cors`, `route[2].cors`), for problems found when merging.
    at: String,
    origins: Option<Vec<OriginPattern>>,
    credentials: Option<bool>,
    allow_headers: Option<AllowHeaders>,
    expose_headers: Option<Option<HeaderValue>>,
    max_age: Option<HeaderValue>,
}

/// Reads the table at `at`, noting each bad value.
fn keys(at: &str, raw: RawCors, p: &mut Problems) -> CorsKeys {
    let key = |name: &str| format!("{at}.{name}");
    let origins = raw.allow_origins.map(|list| {
        let each = list.iter().enumerate();
        each.filter_map(|(i, o)| {
            p.ok(origin(o).map_err(|m| ConfigError::new(format!("{}[{i}]", key("allow_origins")), m)))
        })
        .collect()
    });
    let allow_headers = raw.allow_headers.map(|names| match names.as_slice() {
        [star] if star == "*" => AllowHeaders::Requested,
        _ => AllowHeaders::Listed(p.ok(header_list(&key("allow_headers"), &names)).unwrap_or(EMPTY)),
    });
    let expose_headers =
        raw.expose_headers.map(|names| p.ok(header_list(&key("expose_headers"), &names)).filter(|v| !v.is_empty()));
    let max_age = raw.max_age.and_then(|text| {
        let age = p.ok(duration(&key("max_age"), Some(&text), std::time::Duration::ZERO))?;
        Some(HeaderValue::from(age.as_secs()))
    });
    CorsKeys { at: at.to_owned(), origins, credentials: raw.allow_credentials, allow_headers, expose_headers, max_age }
}

/// The policy of `section` with `route`'s keys over it; `None` when no origin is admitted.
fn policy(section: &CorsKeys, route: Option<&CorsKeys>, p: &mut Problems) -> Option<Arc<CorsPolicy>> {
    let pick = |get: fn(&CorsKeys) -> bool| route.filter(|r| get(r)).unwrap_or(section);
    let origins = pick(|k| k.origins.is_some()).origins.clone().unwrap_or_default();
    let credentials = pick(|k| k.credentials.is_some());
    let allow_credentials = credentials.credentials.unwrap_or(false);
    if origins.is_empty() {
        return None;
    }
    if allow_credentials && origins.contains(&OriginPattern::Any) {
        let message = "cannot be true with allow_origins = [\"*\"]: any site could act as the signed-in user";
        p.push(ConfigError::new(format!("{}.allow_credentials", credentials.at), message));
    }
    let default_headers = || AllowHeaders::Listed(HeaderValue::from_static("authorization, content-type"));
    Some(Arc::new(CorsPolicy {
        allow_origins: origins,
        allow_credentials,
        allow_headers: pick(|k| k.allow_headers.is_some()).allow_headers.clone().unwrap_or_else(default_headers),
        expose_headers: pick(|k| k.expose_headers.is_some()).expose_headers.clone().flatten(),
        max_age: pick(|k| k.max_age.is_some()).max_age.clone(),
    }))
}

/// `*`, `https://app.example.com` or `https://*.example.com[:port]`.
fn origin(text: &str) -> Result<OriginPattern, String> {
    if text == "*" {
        return Ok(OriginPattern::Any);
    }
    let (scheme, rest) =
        text.split_once("://").ok_or_else(|| format!("{text:?} is not an origin like \"https://app.example.com\""))?;
    let wildcard = rest.strip_prefix("*.");
    let probe = match wildcard {
        Some(domain) => format!("{scheme}://x.{domain}"),
        None => text.to_owned(),
    };
    let url = Url::parse(&probe).map_err(|e| format!("{text:?} is not an origin: {e}"))?;
    let serialized = url.origin().ascii_serialization();
    let stray_star = rest.contains('*') && wildcard.is_none_or(|d| d.contains('*'));
    if !matches!(url.scheme(), "http" | "https") || stray_star {
        return Err(format!("{text:?}: expected http(s)://host[:port], with at most a leading \"*.\""));
    }
    if !serialized.eq_ignore_ascii_case(&probe) {
        return Err(format!("an origin has no path, query or trailing slash: {text:?}"));
    }
    Ok(match wildcard {
        Some(_) => {
            let suffix = serialized[serialized.find("://").map_or(0, |i| i + 3) + 1..].to_owned();
            OriginPattern::Subdomains { scheme: format!("{}://", url.scheme()), suffix }
        }
        None => OriginPattern::Exact(serialized),
    })
}

/// Header names joined for a response header.
fn header_list(key: &str, names: &[String]) -> Result<HeaderValue, ConfigError> {
    let mut checked = Vec::with_capacity(names.len());
    for (i, name) in names.iter().enumerate() {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| ConfigError::new(format!("{key}[{i}]"), format!("{name:?} is not a header name")))?;
        checked.push(name.as_str().to_owned());
    }
    HeaderValue::try_from(checked.join(", ")).map_err(|_| ConfigError::new(key, "not a header value"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_exact_or_subdomain_patterns() {
        assert_eq!(origin("https://App.Example.com"), Ok(OriginPattern::Exact("https://app.example.com".into())));
        assert_eq!(origin("http://127.0.0.1:8080"), Ok(OriginPattern::Exact("http://127.0.0.1:8080".into())));
        assert_eq!(
            origin("https://*.example.com"),
            Ok(OriginPattern::Subdomains { scheme: "https://".into(), suffix: ".example.com".into() })
        );
        assert_eq!(
            origin("http://*.localhost:3000"),
            Ok(OriginPattern::Subdomains { scheme: "http://".into(), suffix: ".localhost:3000".into() })
        );
        assert_eq!(origin("*"), Ok(OriginPattern::Any));
        for bad in [
            "app.example.com",
            "https://app.example.com/",
            "https://app.example.com/x",
            "https://a.*.example.com",
            "https://*.*.example.com",
            "https://*example.com",
            "ftp://x.example.com",
            "https://app.example.com?x",
        ] {
            assert!(origin(bad).is_err(), "{bad}");
        }
    }
}
