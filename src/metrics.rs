//! Prometheus counters and histograms on atomics: no lock on the request path. Owns the
//! text rendering; knows route labels and outcome names only as strings it was given.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Upper bounds (seconds) of the upstream latency histogram.
const LATENCY_BUCKETS: [f64; 14] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Status codes 100–599, one counter each.
const STATUS_SLOTS: usize = 500;

struct RouteStats {
    label: String,
    statuses: Box<[AtomicU64]>,
    latency_buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    latency_count: AtomicU64,
    latency_sum_micros: AtomicU64,
}

impl RouteStats {
    fn new(label: String) -> Self {
        RouteStats {
            label,
            statuses: (0..STATUS_SLOTS).map(|_| AtomicU64::new(0)).collect(),
            latency_buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            latency_count: AtomicU64::new(0),
            latency_sum_micros: AtomicU64::new(0),
        }
    }
}

/// Every metric the gateway exports.
pub struct Metrics {
    /// One slot per configured route, plus a last one for requests no route matched.
    routes: Vec<RouteStats>,
    auth_names: Vec<&'static str>,
    auth: Box<[AtomicU64]>,
    token_cache_hits: AtomicU64,
    token_cache_misses: AtomicU64,
    jwks_fetches: AtomicU64,
    jwks_failures: AtomicU64,
}

impl Metrics {
    /// Builds the table for these route labels and auth outcome names.
    pub fn new(route_labels: Vec<String>, auth_outcomes: Vec<&'static str>) -> Self {
        let mut routes: Vec<RouteStats> = route_labels.into_iter().map(RouteStats::new).collect();
        routes.push(RouteStats::new("none".into()));
        Metrics {
            routes,
            auth: auth_outcomes.iter().map(|_| AtomicU64::new(0)).collect(),
            auth_names: auth_outcomes,
            token_cache_hits: AtomicU64::new(0),
            token_cache_misses: AtomicU64::new(0),
            jwks_fetches: AtomicU64::new(0),
            jwks_failures: AtomicU64::new(0),
        }
    }

    /// Counts a response for route `route` (`None` = no route matched).
    pub fn request(&self, route: Option<usize>, status: u16) {
        let stats = self.route_stats(route);
        if let Some(slot) = usize::from(status).checked_sub(100).and_then(|i| stats.statuses.get(i)) {
            slot.fetch_add(1, Relaxed);
        }
    }

    /// Records how long an upstream took to answer with a response head.
    pub fn upstream_latency(&self, route: usize, elapsed: Duration) {
        let stats = self.route_stats(Some(route));
        let secs = elapsed.as_secs_f64();
        if let Some(i) = LATENCY_BUCKETS.iter().position(|bound| secs <= *bound) {
            stats.latency_buckets[i].fetch_add(1, Relaxed);
        }
        stats.latency_count.fetch_add(1, Relaxed);
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        stats.latency_sum_micros.fetch_add(micros, Relaxed);
    }

    /// Counts an authentication outcome by its index in the names given to `new`.
    pub fn auth_outcome(&self, index: usize) {
        if let Some(slot) = self.auth.get(index) {
            slot.fetch_add(1, Relaxed);
        }
    }

    /// Counts a verified-token cache lookup.
    pub fn token_cache(&self, hit: bool) {
        let counter = if hit { &self.token_cache_hits } else { &self.token_cache_misses };
        counter.fetch_add(1, Relaxed);
    }

    /// Counts a JWKS fetch and whether it failed.
    pub fn jwks_fetch(&self, ok: bool) {
        self.jwks_fetches.fetch_add(1, Relaxed);
        if !ok {
            self.jwks_failures.fetch_add(1, Relaxed);
        }
    }

    fn route_stats(&self, route: Option<usize>) -> &RouteStats {
        let last = self.routes.len() - 1;
        &self.routes[route.map_or(last, |r| r.min(last))]
    }

    /// The Prometheus text exposition of everything.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        self.render_requests(&mut out);
        self.render_latency(&mut out);
        out.push_str("# HELP clerk_gateway_auth_total Authentication outcomes by reason.\n");
        out.push_str("# TYPE clerk_gateway_auth_total counter\n");
        for (name, count) in self.auth_names.iter().zip(self.auth.iter()) {
            let _ = writeln!(out, "clerk_gateway_auth_total{{outcome=\"{name}\"}} {}", count.load(Relaxed));
        }
        counter(&mut out, "clerk_gateway_token_cache_hits_total", "Verified-token cache hits.", &self.token_cache_hits);
        counter(
            &mut out,
            "clerk_gateway_token_cache_misses_total",
            "Verified-token cache misses.",
            &self.token_cache_misses,
        );
        counter(&mut out, "clerk_gateway_jwks_fetches_total", "JWKS fetch attempts.", &self.jwks_fetches);
        counter(&mut out, "clerk_gateway_jwks_fetch_failures_total", "JWKS fetches that failed.", &self.jwks_failures);
        out
    }

    fn render_requests(&self, out: &mut String) {
        out.push_str("# HELP clerk_gateway_requests_total Responses by route and status.\n");
        out.push_str("# TYPE clerk_gateway_requests_total counter\n");
        for stats in &self.routes {
            for (i, slot) in stats.statuses.iter().enumerate() {
                let n = slot.load(Relaxed);
                if n > 0 {
                    let _ = writeln!(
                        out,
                        "clerk_gateway_requests_total{{route=\"{}\",status=\"{}\"}} {n}",
                        escape_label(&stats.label),
                        i + 100
                    );
                }
            }
        }
    }

    fn render_latency(&self, out: &mut String) {
        out.push_str("# HELP clerk_gateway_upstream_duration_seconds Time to the upstream's response head.\n");
        out.push_str("# TYPE clerk_gateway_upstream_duration_seconds histogram\n");
        for stats in &self.routes[..self.routes.len() - 1] {
            let label = escape_label(&stats.label);
            let mut cumulative = 0;
            for (bound, bucket) in LATENCY_BUCKETS.iter().zip(&stats.latency_buckets) {
                cumulative += bucket.load(Relaxed);
                let _ = writeln!(
                    out,
                    "clerk_gateway_upstream_duration_seconds_bucket{{route=\"{label}\",le=\"{bound}\"}} {cumulative}"
                );
            }
            let count = stats.latency_count.load(Relaxed);
            let sum = stats.latency_sum_micros.load(Relaxed) as f64 / 1e6;
            let _ = writeln!(
                out,
                "clerk_gateway_upstream_duration_seconds_bucket{{route=\"{label}\",le=\"+Inf\"}} {count}"
            );
            let _ = writeln!(out, "clerk_gateway_upstream_duration_seconds_sum{{route=\"{label}\"}} {sum}");
            let _ = writeln!(out, "clerk_gateway_upstream_duration_seconds_count{{route=\"{label}\"}} {count}");
        }
    }
}

fn counter(out: &mut String, name: &str, help: &str, value: &AtomicU64) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}", value.load(Relaxed));
}

fn escape_label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_what_was_counted() {
        let m = Metrics::new(vec!["/api/".into()], vec!["signed-in", "token-expired"]);
        m.request(Some(0), 200);
        m.request(Some(0), 200);
        m.request(None, 404);
        m.request(Some(0), 42);
        m.auth_outcome(1);
        m.upstream_latency(0, Duration::from_millis(3));
        m.jwks_fetch(false);
        let text = m.render();
        assert!(text.contains("clerk_gateway_requests_total{route=\"/api/\",status=\"200\"} 2"));
        assert!(text.contains("clerk_gateway_requests_total{route=\"none\",status=\"404\"} 1"));
        assert!(text.contains("clerk_gateway_auth_total{outcome=\"token-expired\"} 1"));
        assert!(text.contains("clerk_gateway_auth_total{outcome=\"signed-in\"} 0"));
        assert!(text.contains("le=\"0.0025\"} 0"));
        assert!(text.contains("le=\"0.005\"} 1"));
        assert!(text.contains("clerk_gateway_upstream_duration_seconds_count{route=\"/api/\"} 1"));
        assert!(text.contains("clerk_gateway_jwks_fetch_failures_total 1"));
    }
}
