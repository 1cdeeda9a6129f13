//! Header surgery for forwarding: hop-by-hop removal both ways (RFC 9110 §7.6.1), client
//! identity headers and an untrusted peer's forwarding claims stripped, verified identity
//! set, `X-Request-Id`. Where a request comes from (`X-Forwarded-*`, the client's address,
//! `Host`) is `forwarding.rs`'s.

use http::header::{CONNECTION, COOKIE, TE, UPGRADE};
use http::{HeaderMap, HeaderName, HeaderValue};

use crate::config::IdentityHeaderNames;
use crate::identity::{IdentityValues, MachineValues, UserValues};

/// `X-Request-Id`.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

static SIGNED_IN: HeaderValue = HeaderValue::from_static("signed-in");
static SIGNED_OUT: HeaderValue = HeaderValue::from_static("signed-out");
static SESSION_TOKEN: HeaderValue = HeaderValue::from_static("session_token");
static TRAILERS: HeaderValue = HeaderValue::from_static("trailers");
static UPGRADE_TOKEN: HeaderValue = HeaderValue::from_static("upgrade");

/// The fixed hop-by-hop set.
fn hop_by_hop() -> [&'static HeaderName; 9] {
    use http::header::{PROXY_AUTHENTICATE, PROXY_AUTHORIZATION, TRAILER, TRANSFER_ENCODING};
    [
        &CONNECTION,
        &KEEP_ALIVE,
        &PROXY_CONNECTION,
        &PROXY_AUTHENTICATE,
        &PROXY_AUTHORIZATION,
        &TE,
        &TRAILER,
        &TRANSFER_ENCODING,
        &UPGRADE,
    ]
}

/// Removes a response's hop-by-hop headers: the fixed set and every name `Connection`
/// lists. Returns the `Upgrade` value when the message asked for a protocol upgrade.
pub fn remove_hop_by_hop(headers: &mut HeaderMap) -> Option<HeaderValue> {
    sweep(headers, |_| false)
}

/// The one pass over a request's headers, before the gateway adds any: removes the
/// hop-by-hop ones (so a client cannot name the gateway's headers in `Connection`), every
/// copy and spelling of an `identity` header (see `is_identity`), and, unless the peer is a
/// trusted proxy, every forwarding claim (see `is_forwarding_claim`). Returns the `Upgrade`
/// value when the client asked for a protocol upgrade.
pub fn sanitize_request(headers: &mut HeaderMap, identity: &[HeaderName], trusted_peer: bool) -> Option<HeaderValue> {
    sweep(headers, |name| is_identity(name, identity) || (!trusted_peer && is_forwarding_claim(name)))
}

/// Removes the hop-by-hop headers and every other name `doomed` holds for, walking the
/// names once and allocating only for a name outside the fixed hop-by-hop set. `TE:
/// trailers` survives (RFC 9110 §10.1.4).
fn sweep(headers: &mut HeaderMap, doomed: impl Fn(&str) -> bool) -> Option<HeaderValue> {
    let fixed = hop_by_hop();
    let connection = headers.get_all(CONNECTION);
    let listed = |name: &str| {
        connection
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(name))
    };
    // Whether `Connection` names anything besides the fixed set (usually just `keep-alive`):
    // only then is each header looked up in it.
    let lists_others = connection.iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).any(|t| {
        let t = t.trim();
        !t.is_empty() && !t.eq_ignore_ascii_case("close") && !fixed.iter().any(|f| t.eq_ignore_ascii_case(f.as_str()))
    });
    let upgrade = headers.get(UPGRADE).filter(|_| listed("upgrade")).cloned();
    let wants_trailers = headers
        .get_all(TE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("trailers")));
    let (mut present, mut others) = (0u16, Vec::new());
    for name in headers.keys() {
        if let Some(i) = fixed.iter().position(|f| *f == name) {
            present |= 1 << i;
        } else if (lists_others && listed(name.as_str())) || doomed(name.as_str()) {
            others.push(name.clone());
        }
    }
    for (i, name) in fixed.iter().enumerate() {
        if present & (1 << i) != 0 {
            headers.remove(*name);
        }
    }
    for name in others {
        headers.remove(name);
    }
    if wants_trailers {
        headers.insert(TE, TRAILERS.clone());
    }
    upgrade
}

/// Puts back the two headers an upgrade needs after hop-by-hop removal.
pub fn restore_upgrade(headers: &mut HeaderMap, upgrade: HeaderValue) {
    headers.insert(CONNECTION, UPGRADE_TOKEN.clone());
    headers.insert(UPGRADE, upgrade);
}

/// Headers the gateway sets itself besides the identity ones.
const MANAGED: [&str; 6] =
    ["x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-request-id", "x-real-ip", "forwarded"];

/// Joins an HTTP/2 request's separate `cookie` fields into the one header HTTP/1.1
/// upstreams expect (RFC 9113 §8.2.3).
pub fn merge_cookies(headers: &mut HeaderMap) {
    let mut values = headers.get_all(COOKIE).iter();
    if values.nth(1).is_none() {
        return;
    }
    let joined: Vec<&[u8]> = headers.get_all(COOKIE).iter().map(HeaderValue::as_bytes).collect();
    if let Ok(value) = HeaderValue::from_bytes(&joined.join(&b"; "[..])) {
        headers.insert(COOKIE, value);
    }
}

/// Whether `name` is one of `names` (the identity headers and any a route fills from
/// claims) or an underscore spelling of one of them or of a header the gateway manages:
/// CGI-style backends (WSGI, Rack, PHP) read `X_User_Id` as `X-User-Id`.
fn is_identity(name: &str, names: &[HeaderName]) -> bool {
    names.iter().any(|n| dashed_eq(name, n.as_str()))
        || (name.contains('_') && MANAGED.iter().any(|m| dashed_eq(name, m)))
}

/// Whether `name` reads as `wanted` when its `_` are read as `-` (both lowercase).
fn dashed_eq(name: &str, wanted: &str) -> bool {
    name.len() == wanted.len() && dashed_prefix(name, wanted)
}

/// Whether `name` starts with `wanted`, reading `_` in `name` as `-`.
fn dashed_prefix(name: &str, wanted: &str) -> bool {
    let same = |(a, b): (&u8, &u8)| a == b || (*a == b'_' && *b == b'-');
    name.len() >= wanted.len() && name.as_bytes().iter().zip(wanted.as_bytes()).all(same)
}

/// Removes the client's `Authorization` header and Clerk's cookies (`__session*`,
/// `__client_uat*`, `__clerk_*`, `__refresh*`), keeping the application's own cookies.
pub fn remove_credentials(headers: &mut HeaderMap) {
    headers.remove(http::header::AUTHORIZATION);
    let values: Vec<&str> = headers.get_all(COOKIE).iter().filter_map(|v| v.to_str().ok()).collect();
    let cookie = values.join("; ");
    let is_clerk = |pair: &str| {
        let name = pair.split_once('=').map_or(pair, |(name, _)| name).trim();
        ["__session", "__client_uat", "__clerk_", "__refresh"].iter().any(|p| name.starts_with(p))
    };
    let kept: Vec<&str> = cookie.split(';').map(str::trim).filter(|p| !p.is_empty() && !is_clerk(p)).collect();
    match HeaderValue::from_str(&kept.join("; ")) {
        Ok(value) if !kept.is_empty() => {
            headers.insert(COOKIE, value);
        }
        _ => {
            headers.remove(COOKIE);
        }
    }
}

/// Sets the identity headers of a signed-in request.
pub fn set_identity(headers: &mut HeaderMap, names: &IdentityHeaderNames, v: &IdentityValues) {
    headers.insert(names.user_id.clone(), v.user_id.clone());
    headers.insert(names.session_id.clone(), v.session_id.clone());
    let optional = [
        (&names.org_id, &v.org_id),
        (&names.org_role, &v.org_role),
        (&names.org_slug, &v.org_slug),
        (&names.org_permissions, &v.org_permissions),
    ];
    for (name, value) in optional {
        if let Some(value) = value {
            headers.insert(name.clone(), value.clone());
        }
    }
    headers.insert(names.token_type.clone(), SESSION_TOKEN.clone());
    headers.insert(names.auth_status.clone(), SIGNED_IN.clone());
}

/// Sets the identity headers of a verified machine token: its type and id, its subject as
/// the user, organization or machine it is, its scopes.
pub fn set_machine(headers: &mut HeaderMap, names: &IdentityHeaderNames, v: &MachineValues) {
    headers.insert(names.token_type.clone(), v.token_type.clone());
    let optional = [
        (&names.token_id, &v.token_id),
        (&names.user_id, &v.user_id),
        (&names.org_id, &v.org_id),
        (&names.machine_id, &v.machine_id),
        (&names.scopes, &v.scopes),
    ];
    for (name, value) in optional {
        if let Some(value) = value {
            headers.insert(name.clone(), value.clone());
        }
    }
    headers.insert(names.auth_status.clone(), SIGNED_IN.clone());
}

/// Sets the mirror's headers for a signed-in user: email, public metadata, profile.
pub fn set_user(headers: &mut HeaderMap, names: &IdentityHeaderNames, user: &UserValues) {
    if let Some(email) = &user.email {
        headers.insert(names.user_email.clone(), email.clone());
    }
    headers.insert(names.user_metadata.clone(), user.metadata.clone());
    headers.insert(names.user.clone(), user.profile.clone());
}

/// Marks a request that goes on without a session.
pub fn set_signed_out(headers: &mut HeaderMap, names: &IdentityHeaderNames) {
    headers.insert(names.auth_status.clone(), SIGNED_OUT.clone());
}

/// Header-name prefixes and names with which a client could tell a framework where a
/// request came from, which URL or scheme it was for, or which method it "really" is
/// (Werkzeug's ProxyFix, Express's `trust proxy` and method-override, Spring's
/// `ForwardedHeaderFilter`, Tornado's `xheaders`, Rails' `RemoteIp`, IIS URL rewriting read
/// them). A method override would let a request past a route's `methods` as another method.
const FORWARDING_PREFIXES: [&str; 2] = ["x-forwarded-", "x-original-"];
const FORWARDING_NAMES: [&str; 17] = [
    "forwarded",
    "x-forwarded",
    "x-real-ip",
    "x-rewrite-url",
    "x-client-ip",
    "x-cluster-client-ip",
    "true-client-ip",
    "client-ip",
    "cf-connecting-ip",
    "fastly-client-ip",
    "x-envoy-external-address",
    "x-scheme",
    "x-url-scheme",
    "front-end-https",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

/// Whether `name` (lowercase, as `HeaderName`s are) is a forwarding claim, reading `_` as
/// `-` the way CGI-style backends do.
fn is_forwarding_claim(name: &str) -> bool {
    FORWARDING_PREFIXES.iter().any(|p| name.len() > p.len() && dashed_prefix(name, p))
        || FORWARDING_NAMES.iter().any(|n| dashed_eq(name, n))
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::super::forwarding::{Peer, set_forwarded};
    use super::*;

    fn map(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn hop_by_hop_and_connection_listed_names_go() {
        let mut h = map(&[
            ("connection", "keep-alive, X-Secret"),
            ("x-secret", "1"),
            ("keep-alive", "timeout=5"),
            ("transfer-encoding", "chunked"),
            ("te", "gzip"),
            ("proxy-authorization", "Basic x"),
            ("upgrade", "websocket"),
            ("x-keep", "yes"),
        ]);
        assert_eq!(remove_hop_by_hop(&mut h), None);
        assert_eq!(h.len(), 1);
        assert_eq!(h["x-keep"], "yes");
    }

    #[test]
    fn upgrade_and_te_trailers_survive() {
        let mut h = map(&[("connection", "Upgrade"), ("upgrade", "websocket"), ("te", "trailers, gzip")]);
        let upgrade = remove_hop_by_hop(&mut h).unwrap();
        assert_eq!(upgrade, "websocket");
        assert_eq!(h["te"], "trailers");
        restore_upgrade(&mut h, upgrade);
        assert_eq!(h["connection"], "upgrade");
    }

    fn peer(ip: IpAddr, trusted: bool, scheme: &'static str) -> Peer {
        let address = crate::server::Remote::new(std::net::SocketAddr::new(ip, 0)).address;
        Peer { ip, address, trusted, scheme }
    }

    fn identity_names() -> Vec<HeaderName> {
        IdentityHeaderNames::default().all().into_iter().cloned().collect()
    }

    #[test]
    fn identity_headers_are_stripped_in_every_case_and_copy() {
        let mut h =
            map(&[("X-User-Id", "evil"), ("x-user-id", "evil2"), ("X-AUTH-STATUS", "signed-in"), ("x-other", "1")]);
        sanitize_request(&mut h, &identity_names(), true);
        assert_eq!(h.len(), 1);
    }

    #[test]
    fn one_pass_removes_hop_by_hop_identity_and_untrusted_forwarding_together() {
        let pairs = [
            ("connection", "keep-alive, X-App-Hop"),
            ("x-app-hop", "1"),
            ("keep-alive", "timeout=5"),
            ("x-user-id", "evil"),
            ("x_session_id", "evil"),
            ("x-forwarded-for", "6.6.6.6"),
            ("x-real-ip", "6.6.6.6"),
            ("te", "trailers"),
            ("authorization", "Bearer t"),
            ("x-keep", "yes"),
        ];
        let mut untrusted = map(&pairs);
        assert_eq!(sanitize_request(&mut untrusted, &identity_names(), false), None);
        let mut left: Vec<&str> = untrusted.keys().map(HeaderName::as_str).collect();
        left.sort_unstable();
        assert_eq!(left, ["authorization", "te", "x-keep"]);
        let mut trusted = map(&pairs);
        sanitize_request(&mut trusted, &identity_names(), true);
        assert_eq!(trusted["x-forwarded-for"], "6.6.6.6", "a trusted proxy's forwarding headers stay");
        assert_eq!(trusted["x-real-ip"], "6.6.6.6");
        assert!(!trusted.contains_key("x-user-id") && !trusted.contains_key("x-app-hop"));
    }

    #[test]
    fn split_cookies_are_joined() {
        let mut h = map(&[("cookie", "a=1"), ("cookie", "__session=t"), ("x", "y")]);
        merge_cookies(&mut h);
        assert_eq!(h.get_all("cookie").iter().count(), 1);
        assert_eq!(h["cookie"], "a=1; __session=t");
    }

    #[test]
    fn underscore_spellings_are_stripped_too() {
        let mut h = map(&[
            ("x_user_id", "evil"),
            ("X_Org_Role", "org:admin"),
            ("x_forwarded_for", "1.1.1.1"),
            ("x_custom_thing", "ok"),
        ]);
        sanitize_request(&mut h, &identity_names(), true);
        assert_eq!(h.len(), 1);
        assert_eq!(h["x_custom_thing"], "ok");
    }

    #[test]
    fn forwarded_headers_from_untrusted_peers_are_replaced() {
        let mut h = map(&[("x-forwarded-for", "1.2.3.4"), ("x-forwarded-host", "evil"), ("forwarded", "for=1.2.3.4")]);
        let peer = peer("10.0.0.9".parse().unwrap(), false, "http");
        sanitize_request(&mut h, &identity_names(), peer.trusted);
        set_forwarded(&mut h, &peer, Some("app.example.com"));
        assert_eq!(h["x-forwarded-for"], "10.0.0.9");
        assert_eq!(h["x-forwarded-host"], "app.example.com");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert!(!h.contains_key("forwarded"));
    }

    #[test]
    fn every_forwarding_claim_of_an_untrusted_peer_goes() {
        let claims = [
            "x-forwarded-port",
            "x-forwarded-prefix",
            "x-forwarded-ssl",
            "x-forwarded-scheme",
            "x_forwarded_prefix",
            "x-original-url",
            "x-original-host",
            "x-rewrite-url",
            "x-real-ip",
            "x_real_ip",
            "forwarded",
            "x-forwarded",
            "x-client-ip",
            "true-client-ip",
            "client-ip",
            "cf-connecting-ip",
            "x-scheme",
            "front-end-https",
            "x-http-method-override",
        ];
        let mut h = HeaderMap::new();
        for name in claims {
            h.insert(HeaderName::from_static(name), HeaderValue::from_static("evil"));
        }
        h.insert("x-forwardedness", HeaderValue::from_static("kept"));
        h.insert("x-original", HeaderValue::from_static("kept"));
        let peer = peer("10.0.0.9".parse().unwrap(), false, "https");
        sanitize_request(&mut h, &identity_names(), peer.trusted);
        set_forwarded(&mut h, &peer, Some("app.example.com"));
        for name in claims {
            assert!(!h.contains_key(name), "{name} survived");
        }
        assert_eq!(h["x-forwardedness"], "kept");
        assert_eq!(h["x-original"], "kept");
        assert_eq!(h["x-forwarded-proto"], "https");
        let trusted = Peer { trusted: true, ..peer };
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-prefix", HeaderValue::from_static("/app"));
        sanitize_request(&mut h, &identity_names(), trusted.trusted);
        set_forwarded(&mut h, &trusted, None);
        assert_eq!(h["x-forwarded-prefix"], "/app", "a trusted proxy's claims stand");
    }
}
