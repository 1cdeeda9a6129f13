//! Where a request comes from: the peer (`Peer`), the `X-Forwarded-For/Proto/Host` a
//! forwarded request carries, the client's address behind trusted proxies, and the `Host`
//! a request names (its one form, `name[:port]`).

use std::net::IpAddr;

use http::header::HOST;
use http::{HeaderMap, HeaderName, HeaderValue};

/// `X-Forwarded-For`.
pub static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// `X-Forwarded-Proto`.
pub static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
/// `X-Forwarded-Host`.
pub static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
/// What the gateway knows about the connection a request came on.
pub struct Peer {
    /// Client address.
    pub ip: IpAddr,
    /// That address as `X-Forwarded-For` writes it (IPv4-mapped IPv6 as IPv4).
    pub address: HeaderValue,
    /// Whether that address is a trusted proxy.
    pub trusted: bool,
    /// `https` when TLS was terminated here.
    pub scheme: &'static str,
}

/// Sets `X-Forwarded-For/Proto/Host` on a request `sanitize_request` has been through. A
/// trusted peer's values are kept (its address appended to the chain); anyone else's are
/// gone by now, with every other forwarding claim it made, and are set afresh.
pub fn set_forwarded(headers: &mut HeaderMap, peer: &Peer, host: Option<&str>) {
    let chain = if peer.trusted && headers.contains_key(&X_FORWARDED_FOR) {
        let previous: Vec<&str> = headers.get_all(&X_FORWARDED_FOR).iter().filter_map(|v| v.to_str().ok()).collect();
        let address = peer.address.to_str().unwrap_or_default();
        HeaderValue::try_from(format!("{}, {address}", previous.join(", "))).ok()
    } else {
        Some(peer.address.clone())
    };
    if let Some(value) = chain {
        headers.insert(X_FORWARDED_FOR.clone(), value);
    }
    if !headers.contains_key(&X_FORWARDED_PROTO) {
        headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static(peer.scheme));
    }
    if !headers.contains_key(&X_FORWARDED_HOST)
        && let Some(value) = host.and_then(|h| HeaderValue::from_str(h).ok())
    {
        headers.insert(X_FORWARDED_HOST.clone(), value);
    }
}

/// The address a request comes from: the peer's, or, when the peer is a trusted proxy, the
/// right-most `X-Forwarded-For` entry that is not itself a trusted proxy (entries further
/// left were written by the client and prove nothing). Entries may carry a port
/// (`203.0.113.7:51234`, `[2001:db8::1]:443`, as some load balancers write them); one that
/// is not an address stops the walk at the last trusted hop.
pub fn client_address(headers: &HeaderMap, peer: &Peer, is_trusted: impl Fn(IpAddr) -> bool) -> IpAddr {
    if !peer.trusted {
        return peer.ip;
    }
    let hops: Vec<&str> =
        headers.get_all(&X_FORWARDED_FOR).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).collect();
    let mut last_trusted = peer.ip;
    for hop in hops.iter().rev() {
        match forwarded_address(hop.trim()) {
            Some(ip) if is_trusted(ip) => last_trusted = ip,
            Some(ip) => return ip,
            None => {
                tracing::debug!(hop, "an X-Forwarded-For entry that is not an address");
                break;
            }
        }
    }
    last_trusted
}

/// An `X-Forwarded-For` entry's address: `ip`, `ip:port` (IPv4) or `[ipv6]:port`.
fn forwarded_address(hop: &str) -> Option<IpAddr> {
    if let Ok(ip) = hop.parse() {
        return Some(ip);
    }
    if let Some(rest) = hop.strip_prefix('[') {
        return rest.split_once(']').and_then(|(ip, _)| ip.parse().ok());
    }
    let (ip, port) = hop.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    ip.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

/// The host the client addressed: the `Host` header, or the URI authority (HTTP/2).
pub fn request_host<'a>(headers: &'a HeaderMap, uri: &'a http::Uri) -> Option<&'a str> {
    headers.get(HOST).and_then(|v| v.to_str().ok()).or_else(|| uri.authority().map(|a| a.as_str()))
}

/// Whether `host` is a plain `name[:port]` or `[ipv6][:port]`: dot-separated labels of
/// letters, digits, `-` and `_` (no empty label but an optional single trailing dot), at
/// most one port from 1 to 65535 written without leading zeros, no user info. Anything else
/// (`a:1:2`, `a:x`, `user@a`, `a b`, `a..b`, `a:080`) a framework might parse as another
/// host than the router did.
pub fn is_valid_host(host: &str) -> bool {
    let (name, port) = match host.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((ip, after)) => {
                let port = after.strip_prefix(':');
                if !after.is_empty() && port.is_none() {
                    return false;
                }
                return ip.parse::<std::net::Ipv6Addr>().is_ok() && port.is_none_or(is_port);
            }
            None => return false,
        },
        None => match host.split_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (host, None),
        },
    };
    let labels = name.strip_suffix('.').unwrap_or(name);
    let label_ok =
        |label: &str| !label.is_empty() && label.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b));
    labels.split('.').all(label_ok) && port.is_none_or(is_port)
}

fn is_port(port: &str) -> bool {
    !port.starts_with('0') && port.bytes().all(|b| b.is_ascii_digit()) && port.parse::<u16>().is_ok_and(|p| p > 0)
}

/// `host` without its port or a trailing dot, lowercased.
pub fn host_without_port(host: &str) -> String {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else {
        host.rsplit_once(':').filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit())).map_or(host, |(h, _)| h)
    };
    name.trim_end_matches('.').to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    fn peer(ip: IpAddr, trusted: bool, scheme: &'static str) -> Peer {
        let address = crate::server::Remote::new(std::net::SocketAddr::new(ip, 0)).address;
        Peer { ip, address, trusted, scheme }
    }

    #[test]
    fn forwarded_headers_from_trusted_peers_are_extended() {
        let mut h = map(&[
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "public.example.com"),
        ]);
        let peer = peer("10.0.0.9".parse().unwrap(), true, "http");
        set_forwarded(&mut h, &peer, Some("internal:8080"));
        assert_eq!(h["x-forwarded-for"], "1.2.3.4, 10.0.0.9");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(h["x-forwarded-host"], "public.example.com");
    }

    #[test]
    fn hosts_are_a_name_and_at_most_one_numeric_port() {
        for good in [
            "app.example.com",
            "app.example.com:8443",
            "app.example.com.",
            "localhost:1",
            "10.0.0.1:80",
            "[::1]",
            "[::1]:8080",
            "my_host",
        ] {
            assert!(is_valid_host(good), "{good}");
        }
        for bad in [
            "",
            "app.example.com:",
            "app.example.com:x",
            "app.example.com:80:81",
            "app.example.com:99999",
            "app.example.com:080800",
            "user@app.example.com",
            "app example.com",
            "app.example.com/x",
            "[::1",
            "[::1]x",
            "[::1]:",
            "[zz]:80",
            "app\\x",
            "a..b",
            ".",
            "a.example.com..",
            ".a.example.com",
            "a:0",
            "a:00080",
        ] {
            assert!(!is_valid_host(bad), "{bad:?}");
        }
    }

    #[test]
    fn the_client_is_the_first_untrusted_hop_from_the_right() {
        let trusted = |ip: IpAddr| ip.to_string().starts_with("10.");
        let mut h = HeaderMap::new();
        h.append("x-forwarded-for", HeaderValue::from_static("6.6.6.6, 203.0.113.7"));
        h.append("x-forwarded-for", HeaderValue::from_static("10.0.0.2"));
        let proxy = peer("10.0.0.1".parse().unwrap(), true, "http");
        assert_eq!(client_address(&h, &proxy, trusted), "203.0.113.7".parse::<IpAddr>().unwrap());
        let direct = peer("198.51.100.1".parse().unwrap(), false, "http");
        assert_eq!(client_address(&h, &direct, trusted), direct.ip, "an untrusted peer's header is ignored");
        let mut odd = HeaderMap::new();
        odd.insert("x-forwarded-for", HeaderValue::from_static("203.0.113.7, unknown"));
        assert_eq!(client_address(&odd, &proxy, trusted), proxy.ip);
        let mut ported = HeaderMap::new();
        ported.insert("x-forwarded-for", HeaderValue::from_static("[2001:db8::7]:443, 203.0.113.7:51234"));
        assert_eq!(client_address(&ported, &proxy, trusted), "203.0.113.7".parse::<IpAddr>().unwrap());
        ported.insert("x-forwarded-for", HeaderValue::from_static("[2001:db8::7]:443, 10.0.0.3:80"));
        assert_eq!(client_address(&ported, &proxy, trusted), "2001:db8::7".parse::<IpAddr>().unwrap());
        assert_eq!(client_address(&HeaderMap::new(), &proxy, trusted), proxy.ip);
    }

    #[test]
    fn hosts_lose_their_port() {
        assert_eq!(host_without_port("API.example.com:8080"), "api.example.com");
        assert_eq!(host_without_port("example.com"), "example.com");
        assert_eq!(host_without_port("[::1]:8080"), "::1");
        assert_eq!(host_without_port("api.example.com.:443"), "api.example.com");
    }
}
