//! Key handling: rotation, refetch throttling, a JWKS server that goes away after start or
//! is down at start, the TTL refresh, the Backend API's Bearer secret, and networkless PEM.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::*;

/// Valid claims `offset` seconds after `NOW`.
fn claims_at(offset: i64) -> Value {
    let t = NOW + offset;
    json!({"sub": "user_alice", "sid": "sess_1", "iss": ISSUER, "azp": APP, "iat": t, "nbf": t - 5, "exp": t + 60})
}

#[tokio::test]
async fn a_rotated_key_is_picked_up_on_its_first_use() {
    let (gw, jwks) = standard().await;
    assert_eq!(jwks.hits(), 1);
    jwks.set_keys(vec![key_a().jwk.clone(), key_b().jwk.clone()]);
    let token_b = key_b().token(&claims_at(0));
    let reply = gw.get_with_token("/api/x", &token_b).await;
    assert_eq!(reply.reason(), "jwk-kid-mismatch", "within 30 s of the last fetch, no refetch");
    assert_eq!(jwks.hits(), 1);

    gw.clock.advance(Duration::from_secs(31));
    let token_b = key_b().token(&claims_at(31));
    assert_eq!(gw.get_with_token("/api/x", &token_b).await.status, 200);
    assert_eq!(jwks.hits(), 2);
    assert_eq!(gw.get_with_token("/api/x", &key_a().token(&claims_at(31))).await.status, 200);
    assert_eq!(jwks.hits(), 2);
}

#[tokio::test]
async fn a_burst_of_unknown_kids_costs_one_fetch() {
    let (gw, jwks) = standard().await;
    gw.clock.advance(Duration::from_secs(31));
    let burst = |round: usize| {
        let gw = &gw;
        async move {
            let requests = (0..50).map(|i| {
                let header = json!({"alg": "RS256", "typ": "JWT", "kid": format!("ins_random_{round}_{i}")});
                let token = key_b().token_with_header(&header, &claims_at(31), jsonwebtoken::Algorithm::RS256);
                async move { gw.get_with_token("/api/x", &token).await.reason() }
            });
            futures_util::future::join_all(requests).await
        }
    };
    let reasons = burst(1).await;
    assert!(reasons.iter().all(|r| r == "jwk-kid-mismatch"), "{reasons:?}");
    assert_eq!(jwks.hits(), 2, "one startup fetch and one refetch for 50 unknown kids");
    burst(2).await;
    assert_eq!(jwks.hits(), 2, "throttled for 30 s");
    gw.clock.advance(Duration::from_secs(31));
    burst(3).await;
    assert_eq!(jwks.hits(), 3);
}

#[tokio::test]
async fn cached_keys_outlive_a_jwks_outage() {
    let (gw, mut jwks) = standard().await;
    jwks.stop();
    gw.clock.advance(Duration::from_secs(6 * 60));
    for _ in 0..3 {
        assert_eq!(gw.get_with_token("/api/x", &key_a().token(&claims_at(360))).await.status, 200);
    }
    eventually("a failed background refresh", async || {
        gw.metric("clerk_gateway_jwks_fetch_failures_total").await >= 1.0
    })
    .await;
    assert_eq!(gw.get_with_token("/api/x", &key_a().token(&claims_at(360))).await.status, 200);
    assert_eq!(gw.admin_get("/readyz").await.status, 200, "stale keys still count as loaded");
}

#[tokio::test]
async fn readiness_waits_for_the_first_key_set() {
    let jwks = FakeJwks::with_key_a().await;
    jwks.set_status(503);
    let upstream = spawn_upstream().await;
    let gw = TestGateway::start_unready(&TestConfig::standard(&jwks, upstream)).await;
    eventually("a failed first fetch", async || jwks.hits() >= 1).await;
    let readyz = gw.admin_get("/readyz").await;
    assert_eq!(readyz.status, 503);
    assert!(String::from_utf8_lossy(&readyz.body).contains("keys: not loaded"));
    assert_eq!(gw.admin_get("/healthz").await.status, 200, "alive while not ready");
    let reply = gw.get_with_token("/api/x", &key_a().token(&claims())).await;
    assert_eq!((reply.status, reply.reason().as_str()), (401, "jwk-remote-failed-to-load"));
    assert_eq!(gw.get("/public/x", &[]).await.status, 200, "public routes need no keys");

    jwks.set_status(200);
    gw.wait_ready().await;
    assert_eq!(gw.get_with_token("/api/x", &key_a().token(&claims())).await.status, 200);
}

#[tokio::test]
async fn a_stale_key_set_is_refreshed_in_the_background() {
    let (gw, jwks) = standard().await;
    gw.clock.advance(Duration::from_secs(5 * 60 + 1));
    let reply = gw.get_with_token("/api/x", &key_a().token(&claims_at(301))).await;
    assert_eq!(reply.status, 200, "served from the stale set while refreshing");
    eventually("the TTL refresh", async || jwks.hits() == 2).await;
}

#[tokio::test]
async fn the_backend_api_gets_the_secret_key_and_nobody_else_does() {
    let jwks = FakeJwks::with_key_a().await;
    let upstream = spawn_upstream().await;
    let bapi = TestConfig::standard(&jwks, upstream)
        .without("clerk", "jwks_url")
        .clerk("secret_key", "sk_test_abc123")
        .clerk("api_url", format!("http://{}", jwks.addr));
    let gw = TestGateway::start(&bapi).await;
    let seen = jwks.last_headers();
    assert_eq!(seen["authorization"], "Bearer sk_test_abc123");
    assert_eq!(seen["clerk-api-version"], "2026-05-12");
    assert_eq!(gw.get_with_token("/api/x", &key_a().token(&claims())).await.status, 200);
    drop(gw);

    let other = FakeJwks::with_key_a().await;
    let elsewhere = TestConfig::standard(&other, upstream).clerk("secret_key", "sk_test_abc123");
    let _gw = TestGateway::start(&elsewhere).await;
    assert!(other.hits() >= 1, "the key set came from the jwks_url");
    assert!(!other.saw_authorization(), "a jwks_url on another origin never sees the secret");
}

#[tokio::test]
async fn a_pem_key_needs_no_network() {
    let upstream = spawn_upstream().await;
    let dead = closed_port().await;
    let pem_path = format!("{}/tests/fixtures/rsa_a.pub.pem", env!("CARGO_MANIFEST_DIR"));
    let config = TestConfig::new()
        .clerk("jwt_key_file", pem_path)
        .clerk("jwks_url", format!("http://{dead}/never-fetched"))
        .clerk("issuer", ISSUER)
        .route(TestRoute::new("/api/", &format!("http://{upstream}")));
    let gw = TestGateway::start(&config).await;
    assert_eq!(gw.get_with_token("/api/x", &key_a().token(&claims())).await.status, 200);
    let no_kid = key_a().token_with_header(&json!({"alg": "RS256"}), &claims(), jsonwebtoken::Algorithm::RS256);
    assert_eq!(gw.get_with_token("/api/x", &no_kid).await.status, 200, "the PEM key ignores kid");
    let reply = gw.get_with_token("/api/x", &key_b().token(&claims())).await;
    assert_eq!(reply.reason(), "token-invalid-signature");
    assert_eq!(gw.metric("clerk_gateway_jwks_fetches_total").await, 0.0);
}

#[tokio::test]
async fn a_clock_that_steps_back_does_not_freeze_refetches() {
    let (gw, jwks) = standard().await;
    jwks.set_keys(vec![key_a().jwk.clone(), key_b().jwk.clone()]);
    gw.clock.set_ms(NOW_MS - 600_000);
    let token_b = key_b().token(&claims_at(-600));
    assert_eq!(gw.get_with_token("/api/x", &token_b).await.status, 200, "the rotated key is fetched at once");
    assert_eq!(jwks.hits(), 2);
}
