//! CORS owned by the gateway: preflights answered for admitted origins (and routed by the
//! method they ask about), `Access-Control-*` on the gateway's own refusals and on forwarded
//! answers (the upstream's replaced), per-route tables over `[cors]`, and preflights still
//! forwarded where no policy applies. The browser's view is `chromium.rs`'s.

use std::net::SocketAddr;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;

use crate::common::*;

const APP_ORIGIN: &str = "https://app.example.com";

fn preflight(path: &str, origin: &str, method: &str) -> Request<Full<Bytes>> {
    Request::options(path)
        .header("host", "gateway.test")
        .header("origin", origin)
        .header("access-control-request-method", method)
        .header("access-control-request-headers", "authorization")
        .body(Full::new(Bytes::new()))
        .unwrap()
}

async fn cors_gateway(jwks: &FakeJwks, upstream: SocketAddr) -> TestGateway {
    let up = format!("http://{upstream}");
    let mut own = toml::Table::new();
    own.insert("allow_origins".into(), strings(&["https://*.partner.test"]));
    own.insert("allow_credentials".into(), false.into());
    let mut off = toml::Table::new();
    off.insert("allow_origins".into(), strings(&[]));
    let config = TestConfig::standard(jwks, upstream)
        .section("cors", "allow_origins", strings(&[APP_ORIGIN, "https://*.preview.example.com"]))
        .section("cors", "allow_credentials", true)
        .section("cors", "expose_headers", strings(&["x-request-id"]))
        .section("cors", "max_age", "10m")
        .route(TestRoute::new("/partner/", &up).set("cors", own))
        .route(TestRoute::new("/nocors/", &up).set("cors", off))
        .route(TestRoute::new("/writes/", &up).set("methods", strings(&["PUT"])));
    TestGateway::start(&config).await
}

#[tokio::test]
async fn preflights_for_admitted_origins_are_answered_by_the_gateway() {
    let jwks = FakeJwks::with_key_a().await;
    let gw = cors_gateway(&jwks, spawn_upstream().await).await;
    let answer = send(gw.addr, preflight("/api/x", APP_ORIGIN, "POST")).await;
    assert_eq!(answer.status, 204, "answered without a token and without the upstream");
    assert_eq!(answer.header("access-control-allow-origin"), Some(APP_ORIGIN));
    assert_eq!(answer.header("access-control-allow-methods"), Some("POST"));
    assert_eq!(answer.header("access-control-allow-headers"), Some("authorization, content-type"));
    assert_eq!(answer.header("access-control-allow-credentials"), Some("true"));
    assert_eq!(answer.header("access-control-max-age"), Some("600"));
    assert!(answer.body.is_empty());

    let preview = send(gw.addr, preflight("/api/x", "https://pr-7.preview.example.com", "GET")).await;
    assert_eq!(preview.header("access-control-allow-origin"), Some("https://pr-7.preview.example.com"));
    for stranger in ["https://evil.test", "https://preview.example.com", "https://app.example.com.evil.test"] {
        let refused = send(gw.addr, preflight("/api/x", stranger, "POST")).await;
        assert_eq!(refused.status, 204, "{stranger}");
        assert_eq!(refused.header("access-control-allow-origin"), None, "{stranger}");
    }
    // The preflight of a PUT finds the PUT-only route it asks about.
    let put = send(gw.addr, preflight("/writes/1", APP_ORIGIN, "PUT")).await;
    assert_eq!((put.status, put.header("access-control-allow-methods")), (204, Some("PUT")));
}

#[tokio::test]
async fn the_gateways_own_refusals_and_forwarded_answers_carry_cors_headers() {
    let jwks = FakeJwks::with_key_a().await;
    let gw = cors_gateway(&jwks, spawn_upstream().await).await;
    let refused = gw.get("/api/x", &[("origin", APP_ORIGIN)]).await;
    assert_eq!(refused.status, 401);
    assert_eq!(refused.header("access-control-allow-origin"), Some(APP_ORIGIN));
    assert_eq!(refused.header("access-control-allow-credentials"), Some("true"));
    assert_eq!(refused.header("access-control-expose-headers"), Some("x-request-id"));
    assert_eq!(refused.header("vary"), Some("Origin"));
    assert_eq!(refused.reason(), "session-token-and-uat-missing");
    let missing = gw.get("/nowhere", &[("origin", APP_ORIGIN)]).await;
    assert_eq!((missing.status, missing.header("access-control-allow-origin")), (404, Some(APP_ORIGIN)));
    let stranger = gw.get("/api/x", &[("origin", "https://evil.test")]).await;
    assert_eq!((stranger.status, stranger.header("access-control-allow-origin")), (401, None));

    let token = key_a().token(&claims());
    let forwarded =
        gw.get("/api/own-cors", &[("origin", APP_ORIGIN), ("authorization", &format!("Bearer {token}"))]).await;
    assert_eq!(forwarded.status, 200);
    let values: Vec<_> = forwarded.headers.get_all("access-control-allow-origin").iter().collect();
    assert_eq!(values, [APP_ORIGIN], "the upstream's `*` is replaced by the gateway's answer");
    let from_stranger = gw.get("/public/own-cors", &[("origin", "https://evil.test")]).await;
    assert_eq!(from_stranger.header("access-control-allow-origin"), None, "nor does it reach other origins");
}

#[tokio::test]
async fn a_routes_cors_table_overrides_the_section() {
    let jwks = FakeJwks::with_key_a().await;
    let gw = cors_gateway(&jwks, spawn_upstream().await).await;
    let partner = send(gw.addr, preflight("/partner/x", "https://a.partner.test", "GET")).await;
    assert_eq!(partner.header("access-control-allow-origin"), Some("https://a.partner.test"));
    assert_eq!(partner.header("access-control-allow-credentials"), None, "the route says no credentials");
    assert_eq!(partner.header("access-control-max-age"), Some("600"), "inherited from [cors]");
    let app = send(gw.addr, preflight("/partner/x", APP_ORIGIN, "GET")).await;
    assert_eq!(app.header("access-control-allow-origin"), None, "the route's origins replace the section's");

    // No policy on the route: the preflight goes to the upstream, as without [cors].
    let forwarded = send(gw.addr, preflight("/nocors/x", APP_ORIGIN, "GET")).await;
    assert_eq!(forwarded.status, 200);
    assert_eq!(forwarded.echo()["method"], "OPTIONS");
    assert_eq!(forwarded.header("access-control-allow-origin"), None);
}

#[test]
fn check_names_bad_cors_keys() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.toml");
    let text = format!(
        "[clerk]\njwt_key_file = \"{}\"\n[cors]\nallow_origins = [\"*\"]\nallow_credentials = true\n\
         max_age = \"soon\"\n[[route]]\npath = \"/\"\nupstream = \"http://127.0.0.1:1\"\n\
         cors = {{ allow_origins = [\"https://app.example.com/\", \"https://*.*.x.test\"], allow_headers = [\"bad header\"] }}\n",
        fixture_path("rsa_a.pub.pem")
    );
    std::fs::write(&path, text).unwrap();
    let out = gateway(&["check", "-c", path.to_str().unwrap()]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let keys: Vec<&str> =
        stderr.lines().map(|l| l.trim_start_matches("clerk-gateway: ").split(": ").next().unwrap()).collect();
    assert_eq!(
        keys,
        [
            "cors.allow_credentials",
            "cors.max_age",
            "route[0].cors.allow_origins[0]",
            "route[0].cors.allow_origins[1]",
            "route[0].cors.allow_headers[0]",
        ],
        "{stderr}"
    );
}
