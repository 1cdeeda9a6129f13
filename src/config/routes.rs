//! `[[route]]` tables into `Route`s: paths in normal form, auth modes, `require` rules,
//! methods, upstream URLs, and the check that no two routes match the same requests.

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, Method, Uri};

use super::cors;
use super::model::{AuthMode, ConfigError, Requirements, Route, Upstream};
use super::problems::Problems;
use super::raw::{OneOrMany, RawRequire, RawRoute};
use super::values::{size_value, timeout};
use crate::token_type::{TokenType, TokenTypes};

/// The routes, each checked key by key; a route with a problem is left out (and so not
/// compared with the others).
pub(super) fn routes(
    raw: Vec<RawRoute>,
    default_timeout: Duration,
    cors: &cors::Section,
    p: &mut Problems,
) -> Vec<Route> {
    let routes: Vec<Route> =
        raw.into_iter().enumerate().filter_map(|(i, r)| route(i, r, default_timeout, cors, p)).collect();
    for (i, a) in routes.iter().enumerate() {
        if let Some(b) = routes[..i].iter().find(|b| overlaps(a, b)) {
            let host = b.host.as_deref().unwrap_or("*");
            let why = format!("matches the same requests as route[{}] ({host} {})", b.index, b.path);
            p.push(ConfigError::new(format!("route[{}]", a.index), why));
        }
    }
    routes
}

fn overlaps(a: &Route, b: &Route) -> bool {
    let methods_overlap = match (&a.methods, &b.methods) {
        (Some(x), Some(y)) => x.iter().any(|m| y.contains(m)),
        (None, None) => true,
        // A method-specific route refines a catch-all one on the same prefix.
        _ => false,
    };
    let (pa, pb) = (a.path.trim_end_matches('/'), b.path.trim_end_matches('/'));
    pa.eq_ignore_ascii_case(pb) && a.host == b.host && methods_overlap
}

fn route(
    index: usize,
    raw: RawRoute,
    default_timeout: Duration,
    cors: &cors::Section,
    p: &mut Problems,
) -> Option<Route> {
    let before = p.count();
    let at = |key: &str| format!("route[{index}].{key}");
    let required = |key: &str, value: Option<String>| value.ok_or_else(|| ConfigError::new(at(key), "required"));
    let path = p.ok(required("path", raw.path)
        .and_then(|path| check_route_path(&path).map(|()| path).map_err(|m| ConfigError::new(at("path"), m))));
    let upstream = p.ok(required("upstream", raw.upstream)
        .and_then(|text| upstream(&text).map_err(|m| ConfigError::new(at("upstream"), m))));
    let auth = p.ok(match raw.auth.as_deref().unwrap_or("required") {
        "required" => Ok(AuthMode::Required),
        "optional" => Ok(AuthMode::Optional),
        "public" => Ok(AuthMode::Public),
        other => Err(ConfigError::new(at("auth"), format!("expected required, optional or public, got {other:?}"))),
    });
    let auth = auth.unwrap_or(AuthMode::Required);
    let accepts = raw.accepts.map_or(Ok(TokenTypes::SESSION), |a| accepts(&at("accepts"), a));
    let accepts = p.ok(accepts).unwrap_or_default();
    if auth == AuthMode::Public && accepts != TokenTypes::SESSION && !p.about(&at("auth")) {
        p.push(ConfigError::new(at("accepts"), "a public route verifies no token"));
    }
    let require = p.take(requirements(&at("require"), raw.require.unwrap_or_default()));
    if !require.is_empty() && auth != AuthMode::Required && !p.about(&at("auth")) {
        p.push(ConfigError::new(at("require"), "rules need auth = \"required\""));
    }
    let host = raw.host.and_then(|h| p.ok(route_host(&h).map_err(|m| ConfigError::new(at("host"), m))));
    let name = match raw.name {
        Some(name) => p.ok(route_name(&name).map_err(|m| ConfigError::new(at("name"), m))),
        None => path.as_ref().map(|path| Arc::from(format!("{}{path}", host.as_deref().unwrap_or("")))),
    };
    let route = Route {
        index,
        host,
        methods: raw.methods.and_then(|m| p.ok(methods(&at("methods"), m))),
        auth,
        accepts,
        strip_prefix: raw.strip_prefix.unwrap_or(false),
        require,
        timeout: p.take(timeout(&at("timeout"), raw.timeout.as_deref(), default_timeout)),
        max_body: raw.max_body.and_then(|s| p.ok(size_value(&at("max_body"), s))),
        authenticate_preflight: raw.authenticate_preflight.unwrap_or(false),
        pass_credentials: raw.pass_credentials.unwrap_or(true),
        claim_headers: p.take(claim_headers(&at("claim_headers"), raw.claim_headers.unwrap_or_default())),
        add_request_headers: p
            .take(added_headers(&at("add_request_headers"), raw.add_request_headers.unwrap_or_default())),
        remove_request_headers: p.take(removed_headers(&at("remove_request_headers"), raw.remove_request_headers)),
        cors: cors.for_route(&at("cors"), raw.cors, p),
        upstream: upstream?,
        name: name?,
        path: path?,
    };
    (p.count() == before).then_some(route)
}

/// A route name: printable ASCII (spaces allowed) without quotes or backslashes, as it is a
/// metric label; at most 64 bytes.
fn route_name(name: &str) -> Result<Arc<str>, String> {
    let allowed = |b: u8| (b.is_ascii_graphic() || b == b' ') && b != b'"' && b != b'\\';
    if name.trim().is_empty() {
        Err("a name must not be empty".into())
    } else if name.len() > 64 {
        Err("at most 64 bytes".into())
    } else if !name.bytes().all(allowed) {
        Err("printable ASCII only, without quotes or backslashes".into())
    } else {
        Ok(Arc::from(name))
    }
}

/// Headers the gateway owns on every forwarded request: no route may set or remove them.
const RESERVED_HEADERS: [&str; 15] = [
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-real-ip",
    "x-request-id",
];

/// A header name a route may set (`credentials`: also not `Authorization` or `Cookie`).
fn route_header(path: &str, name: &str, credentials: bool) -> Result<HeaderName, ConfigError> {
    let header = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| ConfigError::new(path, format!("{name:?} is not a header name")))?;
    let credential = credentials && (header == http::header::AUTHORIZATION || header == http::header::COOKIE);
    if RESERVED_HEADERS.contains(&header.as_str()) || credential {
        return Err(ConfigError::new(path, format!("{header} is managed by the gateway")));
    }
    Ok(header)
}

fn claim_headers(path: &str, table: toml::Table) -> Result<Vec<(HeaderName, String)>, ConfigError> {
    table
        .into_iter()
        .map(|(name, claim)| {
            let at = format!("{path}.{name}");
            let header = route_header(&at, &name, true)?;
            let claim =
                claim.as_str().map(str::to_owned).ok_or_else(|| ConfigError::new(&at, "expected a claim name"))?;
            let valid = |c: char| c.is_ascii_alphanumeric() || "_-:.".contains(c);
            if claim.is_empty() || !claim.chars().all(valid) || claim.split('.').any(str::is_empty) {
                return Err(ConfigError::new(&at, format!("{claim:?} is not a claim name (a.b for a nested claim)")));
            }
            Ok((header, claim))
        })
        .collect()
}

fn added_headers(path: &str, table: toml::Table) -> Result<Vec<(HeaderName, http::HeaderValue)>, ConfigError> {
    table
        .into_iter()
        .map(|(name, value)| {
            let at = format!("{path}.{name}");
            let header = route_header(&at, &name, false)?;
            let value = value
                .as_str()
                .and_then(|v| http::HeaderValue::from_str(v).ok())
                .ok_or_else(|| ConfigError::new(&at, "expected a string of visible ASCII"))?;
            Ok((header, value))
        })
        .collect()
}

fn removed_headers(path: &str, names: Option<Vec<String>>) -> Result<Vec<HeaderName>, ConfigError> {
    let names = names.unwrap_or_default();
    names.iter().enumerate().map(|(i, name)| route_header(&format!("{path}[{i}]"), name, false)).collect()
}

/// `accepts`: Clerk's token type names, at least one, each once.
fn accepts(path: &str, raw: OneOrMany) -> Result<TokenTypes, ConfigError> {
    let names = raw.into_vec();
    if names.is_empty() {
        return Err(ConfigError::new(path, "an empty list accepts nothing; remove the key for session tokens only"));
    }
    let mut kinds = Vec::with_capacity(names.len());
    for (i, name) in names.iter().enumerate() {
        let kind = TokenType::from_name(name).ok_or_else(|| {
            let expected = "expected session_token, api_key, m2m_token or oauth_token";
            ConfigError::new(format!("{path}[{i}]"), format!("{expected}, got {name:?}"))
        })?;
        if kinds.contains(&kind) {
            return Err(ConfigError::new(format!("{path}[{i}]"), format!("{name} is listed twice")));
        }
        kinds.push(kind);
    }
    Ok(TokenTypes::of(kinds))
}

fn requirements(path: &str, raw: RawRequire) -> Result<Requirements, ConfigError> {
    let metadata = match raw.metadata {
        None => None,
        Some(table) if table.is_empty() => {
            return Err(ConfigError::new(format!("{path}.metadata"), "an empty table requires nothing; remove it"));
        }
        Some(table) => Some(
            serde_json::to_value(table)
                .map_err(|e| ConfigError::new(format!("{path}.metadata"), format!("not representable as JSON: {e}")))?,
        ),
    };
    let org_roles = raw.org_role.map(|r| r.into_vec()).unwrap_or_default();
    for (i, role) in org_roles.iter().enumerate() {
        if !role.starts_with("org:") || role.len() == 4 {
            return Err(ConfigError::new(format!("{path}.org_role[{i}]"), "roles look like \"org:admin\""));
        }
    }
    let permissions = raw.permission.map(|p| p.into_vec()).unwrap_or_default();
    for (i, perm) in permissions.iter().enumerate() {
        let parts: Vec<&str> = perm.split(':').collect();
        if parts.len() != 3 || parts[0] != "org" || parts[1].is_empty() || parts[2].is_empty() {
            return Err(ConfigError::new(
                format!("{path}.permission[{i}]"),
                "permissions look like \"org:<feature>:<permission>\"",
            ));
        }
    }
    let scopes = raw.scope.map(|s| s.into_vec()).unwrap_or_default();
    if let Some(i) = scopes.iter().position(|s| s.is_empty() || !s.bytes().all(|b| b.is_ascii_graphic() && b != b',')) {
        return Err(ConfigError::new(format!("{path}.scope[{i}]"), "a scope is visible ASCII without commas"));
    }
    Ok(Requirements { org_roles, permissions, scopes, metadata })
}

fn methods(path: &str, raw: Vec<String>) -> Result<Vec<Method>, ConfigError> {
    if raw.is_empty() {
        return Err(ConfigError::new(path, "an empty list matches nothing; remove the key to match every method"));
    }
    raw.iter()
        .enumerate()
        .map(|(i, m)| {
            let upper = m.to_ascii_uppercase();
            Method::from_bytes(upper.as_bytes())
                .map_err(|_| ConfigError::new(format!("{path}[{i}]"), format!("{m:?} is not an HTTP method")))
        })
        .collect()
}

fn upstream(text: &str) -> Result<Upstream, String> {
    let uri: Uri = text.parse().map_err(|_| format!("{text:?} is not a URL"))?;
    let (Some(scheme), Some(authority)) = (uri.scheme(), uri.authority()) else {
        return Err(format!("relative URL {text:?}: expected http://host:port"));
    };
    let h2c = scheme.as_str().eq_ignore_ascii_case("h2c");
    let scheme = if h2c { &http::uri::Scheme::HTTP } else { scheme };
    if scheme != &http::uri::Scheme::HTTP && scheme != &http::uri::Scheme::HTTPS {
        return Err(format!("unsupported scheme {scheme}: expected http, https or h2c"));
    }
    if uri.query().is_some() || authority.as_str().contains('@') {
        return Err("an upstream URL has no query string or user info".into());
    }
    let base_path = uri.path().trim_end_matches('/');
    if !base_path.is_empty() {
        check_route_path(base_path)?;
    }
    Ok(Upstream { scheme: scheme.clone(), authority: authority.clone(), base_path: base_path.to_owned(), h2c })
}

/// A route or webhook path must already be in the normal form requests are routed on.
pub(super) fn check_route_path(path: &str) -> Result<(), String> {
    if !path.starts_with('/') {
        return Err(format!("{path:?} must start with /"));
    }
    match crate::path::normalize(path) {
        Ok(normal) if normal == path && !path.contains(['?', '#', '%']) => Ok(()),
        _ => Err(format!("{path:?} is not a normalized path (no //, dot segments, %, ? or #)")),
    }
}

fn route_host(host: &str) -> Result<String, String> {
    let ok = !host.is_empty() && host.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-'));
    if ok { Ok(host.to_ascii_lowercase()) } else { Err(format!("{host:?} is not a host name (no port, no scheme)")) }
}
