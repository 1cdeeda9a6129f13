//! Which settings a running gateway can take on a reload, and which need a restart: the
//! listeners and their connection limits, the worker threads, the mirror, and the Backend
//! API client are built once at start; everything else (routes, policy, headers, keys,
//! webhook, TLS certificate files) is rebuilt by a reload.

use super::model::Config;

impl Config {
    /// The keys whose values differ between `self` (what is running) and `next` but that
    /// only a restart applies, in file order, as they are spelled in gateway.toml.
    pub fn needs_restart(&self, next: &Config) -> Vec<&'static str> {
        let (s, n) = (&self.server, &next.server);
        let (m, nm) = (&self.mirror, &next.mirror);
        let (c, nc) = (&self.clerk, &next.clerk);
        let checks = [
            ("server.listen", s.listen != n.listen),
            ("server.tls_cert", s.tls.is_some() != n.tls.is_some()),
            ("server.drain_delay", s.drain_delay != n.drain_delay),
            ("server.grace_timeout", s.grace_timeout != n.grace_timeout),
            ("server.header_read_timeout", s.header_read_timeout != n.header_read_timeout),
            ("server.tls_handshake_timeout", s.tls_handshake_timeout != n.tls_handshake_timeout),
            ("server.upstream_connect_timeout", s.upstream_connect_timeout != n.upstream_connect_timeout),
            ("server.max_header_size", s.max_header_bytes != n.max_header_bytes),
            ("server.workers", s.workers != n.workers),
            ("server.max_connections", s.max_connections != n.max_connections),
            ("server.first_byte_timeout", s.first_byte_timeout != n.first_byte_timeout),
            ("server.idle_timeout", s.idle_timeout != n.idle_timeout),
            ("server.http2_keepalive_interval", s.http2_keepalive_interval != n.http2_keepalive_interval),
            ("server.http2_keepalive_timeout", s.http2_keepalive_timeout != n.http2_keepalive_timeout),
            ("admin.listen", self.admin.listen != next.admin.listen),
            ("clerk.secret_key", c.secret_key != nc.secret_key),
            ("clerk.api_url", c.api_url != nc.api_url),
            ("clerk.api_timeout", c.api_timeout != nc.api_timeout),
            ("mirror.path", m.path != nm.path),
            ("mirror.url", m.url != nm.url),
            ("mirror.reconcile_every", m.reconcile_every != nm.reconcile_every),
            ("mirror.revocation_retention", m.revocation_retention != nm.revocation_retention),
            ("mirror.cache_size", m.cache_size != nm.cache_size),
            ("mirror.cache_ttl", m.cache_ttl != nm.cache_ttl),
            ("mirror.fetch_timeout", m.fetch_timeout != nm.fetch_timeout),
            ("assertion", self.assertion != next.assertion),
        ];
        checks.into_iter().filter(|(_, differs)| *differs).map(|(key, _)| key).collect()
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn parse(text: &str) -> Config {
        Config::from_toml(text, &|_| None).unwrap()
    }

    const BASE: &str = "[clerk]\njwt_key_file = \"tests/fixtures/rsa_a.pub.pem\"\n\
                        [[route]]\npath = \"/\"\nupstream = \"http://127.0.0.1:1\"\n";

    #[test]
    fn live_settings_need_no_restart() {
        let next = parse(&BASE.replace("/\"", "/api/\"").replace("[clerk]", "[clerk]\nclock_skew = \"9s\""));
        assert_eq!(parse(BASE).needs_restart(&next), Vec::<&str>::new());
    }

    #[test]
    fn restart_only_settings_are_named_in_file_order() {
        let next = format!("[server]\nworkers = 7\nlisten = \"127.0.0.1:9\"\n[mirror]\ncache_size = 3\n{BASE}");
        assert_eq!(parse(BASE).needs_restart(&parse(&next)), ["server.listen", "server.workers", "mirror.cache_size"]);
    }
}
