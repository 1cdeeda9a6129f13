//! The harness's own checks fail when they should: a metric that is not exported, a reply
//! that is not the echo upstream's, a config key that is not there to remove.

use bytes::Bytes;
use http::HeaderMap;

use crate::common::*;

const METRICS: &str = "# HELP clerk_gateway_requests_total Responses by route and status.
# TYPE clerk_gateway_requests_total counter
clerk_gateway_requests_total{route=\"/api/\",status=\"200\"} 3
# TYPE clerk_gateway_upstream_duration_seconds histogram
clerk_gateway_upstream_duration_seconds_count{route=\"/api/\"} 3
# TYPE clerk_gateway_webhook_events_total counter
# TYPE clerk_gateway_jwks_fetches_total counter
clerk_gateway_jwks_fetches_total 1
";

#[test]
fn exported_series_are_read_and_sparse_zeros_are_zero() {
    let scrape = Scrape(METRICS.to_owned());
    assert_eq!(scrape.value("clerk_gateway_jwks_fetches_total"), 1.0);
    assert_eq!(scrape.value(r#"clerk_gateway_requests_total{route="/api/",status="200"}"#), 3.0);
    assert_eq!(scrape.value(r#"clerk_gateway_requests_total{route="/api/",status="404"}"#), 0.0);
    assert_eq!(scrape.value(r#"clerk_gateway_webhook_events_total{type="user.created",outcome="applied"}"#), 0.0);
}

#[test]
#[should_panic(expected = "no metric clerk_gateway_jwks_fetch_failures_total")]
fn a_metric_that_is_not_exported_fails() {
    Scrape(METRICS.to_owned()).value("clerk_gateway_jwks_fetch_failures_total");
}

#[test]
#[should_panic(expected = "is nothing the gateway counts")]
fn a_sparse_series_with_an_unknown_label_fails() {
    Scrape(METRICS.to_owned()).value(r#"clerk_gateway_webhook_events_total{type="user.created",outcome="aplied"}"#);
}

#[test]
#[should_panic(expected = "is nothing the gateway counts")]
fn a_sparse_series_of_an_unknown_route_fails() {
    Scrape(METRICS.to_owned()).value(r#"clerk_gateway_requests_total{route="/apii/",status="200"}"#);
}

#[test]
#[should_panic(expected = "not a series of clerk_gateway_requests_total")]
fn a_sparse_series_with_labels_left_out_or_swapped_fails() {
    let scrape = Scrape(METRICS.to_owned());
    let swapped = std::panic::catch_unwind(|| {
        Scrape(METRICS.to_owned()).value(r#"clerk_gateway_requests_total{status="200",route="/api/"}"#)
    });
    assert!(swapped.is_err(), "swapped labels are not a series the gateway renders");
    scrape.value(r#"clerk_gateway_requests_total{route="/api/"}"#);
}

#[test]
#[should_panic(expected = "expected the echo upstream's answer, got 401")]
fn reading_what_the_upstream_saw_on_a_gateway_answer_fails() {
    let reply = Reply {
        status: 401,
        headers: HeaderMap::new(),
        body: Bytes::from_static(br#"{"error":"unauthenticated","reason":"token-expired"}"#),
    };
    let _ = reply.seen("x-user-id");
}

#[test]
fn an_echo_says_what_it_saw_and_what_it_did_not() {
    let reply = Reply {
        status: 200,
        headers: HeaderMap::new(),
        body: Bytes::from_static(br#"{"method":"GET","path":"/x","headers":{"x-user-id":["user_1"]}}"#),
    };
    assert_eq!(reply.seen("X-User-Id").as_deref(), Some("user_1"));
    assert_eq!(reply.seen("x-user-email"), None);
    assert_eq!(reply.seen_path(), "/x");
}

#[test]
#[should_panic(expected = "[clerk] jwks_url is not in the config to remove")]
fn removing_a_key_that_is_not_there_fails() {
    let _ = TestConfig::new().without("clerk", "jwks_url");
}

#[test]
fn configs_render_to_what_the_gateway_accepts() {
    let config = TestConfig::new()
        .clerk("jwks_url", "http://127.0.0.1:1/jwks")
        .route(TestRoute::new("/api/", "http://127.0.0.1:2").require("org_role", strings(&["org:admin"])))
        .route(TestRoute::new("/", "http://127.0.0.1:2").auth("public"));
    let parsed = clerk_gateway::Config::from_toml(&config.to_toml(), &|_| None).unwrap();
    assert_eq!(parsed.routes.len(), 2);
    assert_eq!(parsed.routes[0].require.org_roles, ["org:admin"]);
    assert_eq!(parsed.routes[1].auth, clerk_gateway::config::AuthMode::Public);
}
