//! Prometheus counters and histograms on atomics: no lock on the request path. Owns the
//! text rendering; knows outcome names and event types only as the strings it was given at
//! start-up, and route labels as each configuration (the first, and every reload) names them.

use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwapOption;

/// Upper bounds (seconds) of the upstream latency histogram.
const LATENCY_BUCKETS: [f64; 14] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Status codes 100–599, one counter each.
const STATUS_SLOTS: usize = 500;

/// A latency histogram over `LATENCY_BUCKETS`.
#[derive(Default)]
struct Histogram {
    buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    fn observe(&self, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        if let Some(i) = LATENCY_BUCKETS.iter().position(|bound| secs <= *bound) {
            self.buckets[i].fetch_add(1, Relaxed);
        }
        self.count.fetch_add(1, Relaxed);
        self.sum_micros.fetch_add(u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX), Relaxed);
    }

    /// The `_bucket`, `_sum` and `_count` lines of series `name{route="label"}`.
    fn render(&self, out: &mut String, name: &str, label: &str) {
        let mut cumulative = 0;
        for (bound, bucket) in LATENCY_BUCKETS.iter().zip(&self.buckets) {
            cumulative += bucket.load(Relaxed);
            let _ = writeln!(out, "{name}_bucket{{route=\"{label}\",le=\"{bound}\"}} {cumulative}");
        }
        let count = self.count.load(Relaxed);
        let sum = self.sum_micros.load(Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_bucket{{route=\"{label}\",le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "{name}_sum{{route=\"{label}\"}} {sum}");
        let _ = writeln!(out, "{name}_count{{route=\"{label}\"}} {count}");
    }
}

struct RouteStats {
    label: String,
    /// Forwards upstream (and so has an upstream latency histogram).
    proxied: bool,
    statuses: Box<[AtomicU64]>,
    /// Time to the upstream's response head.
    upstream: Histogram,
    /// Time from the request's arrival to the last byte of the response.
    total: Histogram,
}

impl RouteStats {
    fn new(label: String, proxied: bool) -> Self {
        RouteStats {
            label,
            proxied,
            statuses: (0..STATUS_SLOTS).map(|_| AtomicU64::new(0)).collect(),
            upstream: Histogram::default(),
            total: Histogram::default(),
        }
    }
}

/// The per-route series of one configuration, addressed by route index: one slot per
/// configured route, the webhook path when configured, and a last one for requests no route
/// matched. A route kept by a reload (same label) keeps counting into the same series.
#[derive(Clone)]
pub struct RouteMetrics {
    slots: Arc<[Arc<RouteStats>]>,
}

impl RouteMetrics {
    /// Counts a response for route `route` (`None` = no route matched).
    pub fn request(&self, route: Option<usize>, status: u16) {
        let stats = self.slot(route);
        if let Some(slot) = usize::from(status).checked_sub(100).and_then(|i| stats.statuses.get(i)) {
            slot.fetch_add(1, Relaxed);
        }
    }

    /// Records how long an upstream took to answer with a response head.
    pub fn upstream_latency(&self, route: usize, elapsed: Duration) {
        self.slot(Some(route)).upstream.observe(elapsed);
    }

    /// Records how long a whole request took, to the last byte of its response.
    pub fn request_duration(&self, route: Option<usize>, elapsed: Duration) {
        self.slot(route).total.observe(elapsed);
    }

    fn slot(&self, route: Option<usize>) -> &RouteStats {
        let last = self.slots.len() - 1;
        &self.slots[route.map_or(last, |r| r.min(last))]
    }
}

/// A request in flight, counted in `clerk_gateway_requests_in_flight` while this lives.
pub struct InFlightRequest(Arc<Metrics>);

impl Drop for InFlightRequest {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Relaxed);
    }
}

/// A counter with a fixed set of label combinations, addressed by index.
struct Family {
    name: &'static str,
    help: &'static str,
    series: Vec<(String, AtomicU64)>,
}

impl Family {
    /// One label, one series per value.
    fn new(name: &'static str, help: &'static str, label: &str, values: &[&'static str]) -> Self {
        let series = values.iter().map(|v| (format!("{label}=\"{}\"", escape_label(v)), AtomicU64::new(0))).collect();
        Family { name, help, series }
    }

    /// Two labels: series `i * second.len() + j` is (`first[i]`, `second[j]`).
    fn new2(
        name: &'static str,
        help: &'static str,
        first: (&str, &[&'static str]),
        second: (&str, &[&'static str]),
    ) -> Self {
        let mut series = Vec::with_capacity(first.1.len() * second.1.len());
        for a in first.1 {
            for b in second.1 {
                let labels = format!("{}=\"{}\",{}=\"{}\"", first.0, escape_label(a), second.0, escape_label(b));
                series.push((labels, AtomicU64::new(0)));
            }
        }
        Family { name, help, series }
    }

    fn inc(&self, index: usize) {
        if let Some((_, counter)) = self.series.get(index) {
            counter.fetch_add(1, Relaxed);
        }
    }

    fn render(&self, out: &mut String, skip_zero: bool) {
        let _ = writeln!(out, "# HELP {} {}\n# TYPE {} counter", self.name, self.help, self.name);
        for (labels, value) in &self.series {
            let value = value.load(Relaxed);
            if value > 0 || !skip_zero {
                let _ = writeln!(out, "{}{{{labels}}} {value}", self.name);
            }
        }
    }
}

/// What became of connections on one listener, counted by the server (which knows nothing
/// else of metrics).
#[derive(Debug, Default)]
pub struct ConnectionCounters {
    /// Connections open now.
    pub open: AtomicI64,
    /// Connections accepted and served.
    pub accepted: AtomicU64,
    /// Connections closed at once because `max_connections` were open.
    pub refused: AtomicU64,
    /// Connections closed because their first bytes did not come in time.
    pub first_byte_timeouts: AtomicU64,
    /// Connections closed after `idle_timeout` without a request.
    pub idle_closed: AtomicU64,
    /// HTTP/1.1 connections open and idle with hyper's buffers let go.
    pub parked: AtomicI64,
    /// Times a connection has parked (not exported: it paces the memory release).
    pub parks: AtomicU64,
}

impl ConnectionCounters {
    fn render(&self, out: &mut String) {
        let name = "clerk_gateway_connections_open";
        let _ = writeln!(
            out,
            "# HELP {name} Proxy connections open now.\n# TYPE {name} gauge\n{name} {}",
            self.open.load(Relaxed)
        );
        let name = "clerk_gateway_connections_parked";
        let _ = writeln!(
            out,
            "# HELP {name} Idle HTTP/1.1 proxy connections holding no request buffers.\n# TYPE {name} gauge\n{name} {}",
            self.parked.load(Relaxed)
        );
        let name = "clerk_gateway_connections_total";
        let _ = writeln!(out, "# HELP {name} Proxy connections by what became of them.\n# TYPE {name} counter");
        for (outcome, counter) in [
            ("accepted", &self.accepted),
            ("refused", &self.refused),
            ("first-byte-timeout", &self.first_byte_timeouts),
            ("idle-closed", &self.idle_closed),
        ] {
            let _ = writeln!(out, "{name}{{outcome=\"{outcome}\"}} {}", counter.load(Relaxed));
        }
    }
}

/// Where a user lookup was answered: memory, SQLite, the Backend API, or nowhere.
pub const USER_SOURCES: &[&str] = &["memory", "mirror", "backend-api", "none"];

/// The label sets metrics are built with.
pub struct Labels {
    /// Authentication outcomes, in index order.
    pub auth_outcomes: Vec<&'static str>,
    /// Webhook event types, in index order.
    pub webhook_types: &'static [&'static str],
    /// Webhook delivery outcomes, in index order.
    pub webhook_outcomes: &'static [&'static str],
    /// Webhook rejection reasons, in index order.
    pub webhook_rejections: &'static [&'static str],
}

/// Every metric the gateway exports.
pub struct Metrics {
    /// Every route series any configuration has had, in the order they first appeared; the
    /// request path counts through `RouteMetrics` and never takes this lock.
    routes: Mutex<Vec<Arc<RouteStats>>>,
    /// The slot of requests no route matched.
    unrouted: Arc<RouteStats>,
    /// Reloads applied and refused.
    reloads: [AtomicU64; 2],
    /// The loaded config file's hash, when it came from a file.
    config_hash: ArcSwapOption<String>,
    /// Requests whose response has not been fully sent yet.
    in_flight: AtomicI64,
    auth: Family,
    webhook_events: Family,
    webhook_outcomes_per_type: usize,
    webhook_rejections: Family,
    user_lookups: Family,
    token_cache_hits: AtomicU64,
    token_cache_misses: AtomicU64,
    jwks_fetches: AtomicU64,
    jwks_failures: AtomicU64,
    connections: Arc<ConnectionCounters>,
    body_timeouts: AtomicU64,
}

impl Metrics {
    /// Builds every series.
    pub fn new(labels: Labels) -> Self {
        let unrouted = Arc::new(RouteStats::new("none".into(), false));
        Metrics {
            routes: Mutex::new(Vec::new()),
            unrouted,
            reloads: [AtomicU64::new(0), AtomicU64::new(0)],
            config_hash: ArcSwapOption::empty(),
            in_flight: AtomicI64::new(0),
            auth: Family::new(
                "clerk_gateway_auth_total",
                "Authentication outcomes by reason.",
                "outcome",
                &labels.auth_outcomes,
            ),
            webhook_events: Family::new2(
                "clerk_gateway_webhook_events_total",
                "Verified webhook deliveries by event type and outcome.",
                ("type", labels.webhook_types),
                ("outcome", labels.webhook_outcomes),
            ),
            webhook_outcomes_per_type: labels.webhook_outcomes.len(),
            webhook_rejections: Family::new(
                "clerk_gateway_webhook_rejections_total",
                "Webhook deliveries refused before anything changed, by reason.",
                "reason",
                labels.webhook_rejections,
            ),
            user_lookups: Family::new(
                "clerk_gateway_user_lookups_total",
                "Where signed-in users' profiles came from.",
                "source",
                USER_SOURCES,
            ),
            token_cache_hits: AtomicU64::new(0),
            token_cache_misses: AtomicU64::new(0),
            jwks_fetches: AtomicU64::new(0),
            jwks_failures: AtomicU64::new(0),
            connections: Arc::default(),
            body_timeouts: AtomicU64::new(0),
        }
    }

    /// The proxy listener's connection counters, for the server to count into.
    pub fn connections(&self) -> &Arc<ConnectionCounters> {
        &self.connections
    }

    /// Counts a request whose body stalled past `body_read_timeout` (or a webhook past its
    /// `body_timeout`).
    pub fn body_timeout(&self) {
        self.body_timeouts.fetch_add(1, Relaxed);
    }

    /// Counts a user lookup by where it was answered (an index into `USER_SOURCES`).
    pub fn user_lookup(&self, source: usize) {
        self.user_lookups.inc(source);
    }

    /// The route series for one configuration: `routes` (labels in config order, each
    /// forwarding upstream) and the webhook path. Series whose label an earlier configuration
    /// had are shared with it.
    pub fn route_metrics(&self, routes: &[String], webhook_route: Option<&str>) -> RouteMetrics {
        let mut registry = self.routes.lock().unwrap_or_else(PoisonError::into_inner);
        let wanted = routes.iter().map(|r| (r.as_str(), true)).chain(webhook_route.map(|w| (w, false)));
        let mut slots: Vec<Arc<RouteStats>> = wanted
            .map(|(label, proxied)| {
                let known = registry.iter().find(|s| s.label == label && s.proxied == proxied);
                known.cloned().unwrap_or_else(|| {
                    let stats = Arc::new(RouteStats::new(label.to_owned(), proxied));
                    registry.push(stats.clone());
                    stats
                })
            })
            .collect();
        slots.push(self.unrouted.clone());
        RouteMetrics { slots: slots.into() }
    }

    /// Counts a request in flight until the guard is dropped (once its response is sent).
    pub fn request_started(self: &Arc<Self>) -> InFlightRequest {
        self.in_flight.fetch_add(1, Relaxed);
        InFlightRequest(self.clone())
    }

    /// Counts a configuration reload, applied or refused.
    pub fn config_reload(&self, applied: bool) {
        self.reloads[usize::from(!applied)].fetch_add(1, Relaxed);
    }

    /// Notes the hash of the config file now serving.
    pub fn config_loaded(&self, hash: String) {
        self.config_hash.store(Some(Arc::new(hash)));
    }

    /// Counts an authentication outcome by its index in `Labels::auth_outcomes`.
    pub fn auth_outcome(&self, index: usize) {
        self.auth.inc(index);
    }

    /// Counts a verified delivery by type index and outcome index.
    pub fn webhook_event(&self, type_index: usize, outcome_index: usize) {
        self.webhook_events.inc(type_index * self.webhook_outcomes_per_type + outcome_index);
    }

    /// Counts a refused delivery by reason index.
    pub fn webhook_rejection(&self, index: usize) {
        self.webhook_rejections.inc(index);
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

    /// The Prometheus text exposition of everything, plus `gauges` measured by the caller
    /// (`(name, help, value)`).
    pub fn render(&self, gauges: &[(&str, &str, f64)]) -> String {
        let mut out = String::with_capacity(8192);
        let mut routes = self.routes.lock().unwrap_or_else(PoisonError::into_inner).clone();
        routes.push(self.unrouted.clone());
        render_requests(&mut out, &routes);
        render_latency(&mut out, &routes);
        self.auth.render(&mut out, false);
        self.webhook_events.render(&mut out, true);
        self.webhook_rejections.render(&mut out, false);
        self.user_lookups.render(&mut out, false);
        counter(&mut out, "clerk_gateway_token_cache_hits_total", "Verified-token cache hits.", &self.token_cache_hits);
        counter(
            &mut out,
            "clerk_gateway_token_cache_misses_total",
            "Verified-token cache misses.",
            &self.token_cache_misses,
        );
        counter(&mut out, "clerk_gateway_jwks_fetches_total", "JWKS fetch attempts.", &self.jwks_fetches);
        counter(&mut out, "clerk_gateway_jwks_fetch_failures_total", "JWKS fetches that failed.", &self.jwks_failures);
        self.connections.render(&mut out);
        counter(
            &mut out,
            "clerk_gateway_body_timeouts_total",
            "Requests whose body did not arrive in time (408).",
            &self.body_timeouts,
        );
        self.render_reloads(&mut out);
        let name = "clerk_gateway_requests_in_flight";
        let in_flight = self.in_flight.load(Relaxed);
        let _ = writeln!(
            out,
            "# HELP {name} Requests whose response is not fully sent yet.\n# TYPE {name} gauge\n{name} {in_flight}"
        );
        let name = "clerk_gateway_build_info";
        let _ = writeln!(
            out,
            "# HELP {name} The running build.\n# TYPE {name} gauge\n{name}{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );
        for (name, help, value) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}");
        }
        out
    }

    fn render_reloads(&self, out: &mut String) {
        let name = "clerk_gateway_config_reloads_total";
        let _ = writeln!(out, "# HELP {name} Configuration reloads by result.\n# TYPE {name} counter");
        for (result, counter) in ["applied", "refused"].iter().zip(&self.reloads) {
            let _ = writeln!(out, "{name}{{result=\"{result}\"}} {}", counter.load(Relaxed));
        }
        if let Some(hash) = self.config_hash.load_full() {
            let name = "clerk_gateway_config_info";
            let _ = writeln!(
                out,
                "# HELP {name} The configuration serving now (hash: SHA-256 of the file, first 16 hex digits).\n\
                 # TYPE {name} gauge\n{name}{{hash=\"{}\"}} 1",
                escape_label(&hash)
            );
        }
    }
}

fn render_requests(out: &mut String, routes: &[Arc<RouteStats>]) {
    out.push_str("# HELP clerk_gateway_requests_total Responses by route and status.\n");
    out.push_str("# TYPE clerk_gateway_requests_total counter\n");
    for stats in routes {
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

fn render_latency(out: &mut String, routes: &[Arc<RouteStats>]) {
    let name = "clerk_gateway_upstream_duration_seconds";
    let _ = writeln!(out, "# HELP {name} Time to the upstream's response head.\n# TYPE {name} histogram");
    for stats in routes.iter().filter(|s| s.proxied) {
        stats.upstream.render(out, name, &escape_label(&stats.label));
    }
    let name = "clerk_gateway_request_duration_seconds";
    let _ = writeln!(
        out,
        "# HELP {name} Time from a request's arrival to its response's last byte.\n# TYPE {name} histogram"
    );
    for stats in routes {
        stats.total.render(out, name, &escape_label(&stats.label));
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
        let m = Metrics::new(Labels {
            auth_outcomes: vec!["signed-in", "token-expired"],
            webhook_types: &["user.created", "other"],
            webhook_outcomes: &["applied", "duplicate"],
            webhook_rejections: &["invalid-signature"],
        });
        let r = m.route_metrics(&["/api/".into()], Some("/webhooks/clerk"));
        r.request(Some(0), 200);
        r.request(Some(0), 200);
        r.request(None, 404);
        r.request(Some(0), 42);
        m.auth_outcome(1);
        r.upstream_latency(0, Duration::from_millis(3));
        m.jwks_fetch(false);
        m.webhook_event(1, 1);
        m.webhook_rejection(0);
        let text = m.render(&[("clerk_gateway_mirror_users", "Users.", 7.0)]);
        assert!(text.contains("clerk_gateway_requests_total{route=\"/api/\",status=\"200\"} 2"));
        assert!(text.contains("clerk_gateway_requests_total{route=\"none\",status=\"404\"} 1"));
        assert!(text.contains("clerk_gateway_auth_total{outcome=\"token-expired\"} 1"));
        assert!(text.contains("clerk_gateway_auth_total{outcome=\"signed-in\"} 0"));
        assert!(text.contains("le=\"0.0025\"} 0"));
        assert!(text.contains("le=\"0.005\"} 1"));
        assert!(text.contains("clerk_gateway_upstream_duration_seconds_count{route=\"/api/\"} 1"));
        assert!(text.contains("clerk_gateway_jwks_fetch_failures_total 1"));
        assert!(text.contains("clerk_gateway_webhook_events_total{type=\"other\",outcome=\"duplicate\"} 1"));
        assert!(!text.contains("type=\"user.created\""), "zero webhook series are left out");
        assert!(text.contains("clerk_gateway_webhook_rejections_total{reason=\"invalid-signature\"} 1"));
        assert!(text.contains("clerk_gateway_mirror_users 7"));
        assert!(!text.contains("upstream_duration_seconds_count{route=\"/webhooks/clerk\"}"));
        assert!(text.contains("clerk_gateway_request_duration_seconds_count{route=\"/webhooks/clerk\"} 0"));
        r.request(Some(1), 200);
        assert!(m.render(&[]).contains("clerk_gateway_requests_total{route=\"/webhooks/clerk\",status=\"200\"} 1"));
    }

    #[test]
    fn a_reload_keeps_counting_into_the_routes_it_keeps() {
        let m = Metrics::new(Labels {
            auth_outcomes: vec![],
            webhook_types: &[],
            webhook_outcomes: &[],
            webhook_rejections: &[],
        });
        let first = m.route_metrics(&["/a/".into(), "/b/".into()], None);
        first.request(Some(1), 200);
        let second = m.route_metrics(&["/b/".into(), "/c/".into()], None);
        second.request(Some(0), 200);
        second.request(Some(1), 201);
        m.config_reload(true);
        m.config_reload(false);
        m.config_loaded("00ff".into());
        let text = m.render(&[]);
        assert!(text.contains("clerk_gateway_requests_total{route=\"/b/\",status=\"200\"} 2"), "{text}");
        assert!(text.contains("clerk_gateway_requests_total{route=\"/c/\",status=\"201\"} 1"), "{text}");
        assert!(text.contains("clerk_gateway_upstream_duration_seconds_count{route=\"/a/\"} 0"), "{text}");
        assert!(text.contains("clerk_gateway_config_reloads_total{result=\"applied\"} 1"), "{text}");
        assert!(text.contains("clerk_gateway_config_reloads_total{result=\"refused\"} 1"), "{text}");
        assert!(text.contains("clerk_gateway_config_info{hash=\"00ff\"} 1"), "{text}");
    }
}
