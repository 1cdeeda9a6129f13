//! Machine tokens through the real gateway, against the fake Backend API: API keys, M2M and
//! OAuth tokens (opaque and JWT) sign in only where a route accepts them, with their own
//! headers; every refusal names its reason; verdicts are remembered (one Backend API call
//! per token, even under a burst), an outage is a 503 that signs nobody in, scope rules
//! hold, and a revocation webhook or a refused re-verify signs the token out.

use std::sync::atomic::Ordering;
use std::time::Duration;

use jsonwebtoken::Algorithm;
use serde_json::{Value, json};

use crate::common::*;

const API_KEYS: &str = "/v1/api_keys/verify";
const M2M: &str = "/v1/m2m_tokens/verify";
const OAUTH: &str = "/v1/oauth_applications/access_tokens/verify";

/// Clerk's verified-token object (the fields APIKey, M2MToken and IdPOAuthAccessToken share).
fn clerk_token(id: &str, subject: &str, scopes: &[&str], claims: Value) -> Value {
    json!({
        "object": "api_key", "id": id, "type": "api_key", "name": "ci", "subject": subject,
        "scopes": scopes, "claims": claims, "revoked": false, "revocation_reason": null,
        "expired": false, "expiration": null, "created_by": null,
        "created_at": NOW_MS - 1000, "updated_at": NOW_MS - 1000,
    })
}

fn with(mut object: Value, key: &str, value: Value) -> Value {
    object[key] = value;
    object
}

async fn machine_gateway(bapi: &FakeBapi) -> TestGateway {
    let upstream = spawn_upstream().await;
    let jwks = FakeJwks::with_key_a().await;
    let up = format!("http://{upstream}");
    let mut claim_headers = toml::Table::new();
    claim_headers.insert("x-team".into(), "team".into());
    let config = TestConfig::standard(&jwks, upstream)
        .webhook(":memory:")
        .backend_api(bapi)
        .section("machine_tokens", "verify_timeout", "300ms")
        .route(TestRoute::new("/machines/", &up).set("accepts", strings(&["api_key", "m2m_token", "oauth_token"])))
        .route(
            TestRoute::new("/mixed/", &up)
                .set("accepts", strings(&["session_token", "api_key"]))
                .set("claim_headers", toml::Value::Table(claim_headers)),
        )
        .route(TestRoute::new("/writers/", &up).set("accepts", "api_key").require("scope", strings(&["write"])))
        .route(TestRoute::new("/maybe/", &up).auth("optional").set("accepts", strings(&["api_key"])));
    TestGateway::start(&config).await
}

async fn bapi_with_alice() -> FakeBapi {
    FakeBapi::start(vec![clerk_user("user_alice", "Alice", 5, json!({"plan": "pro"}))]).await
}

fn m2m_jwt(claims: Value) -> String {
    let header = json!({"alg": "RS256", "typ": "JWT", "kid": key_a().kid, "cat": "cl_B7d4PD333AAA"});
    key_a().token_with_header(&header, &claims, Algorithm::RS256)
}

fn oauth_jwt(claims: Value) -> String {
    key_a().token_with_header(&json!({"alg": "RS256", "typ": "at+jwt", "kid": key_a().kid}), &claims, Algorithm::RS256)
}

#[tokio::test]
async fn each_kind_of_machine_token_signs_in_with_its_own_headers() {
    let bapi = bapi_with_alice().await;
    bapi.machine_token(
        API_KEYS,
        "ak_alice",
        clerk_token("ak_1", "user_alice", &["read", "write"], json!({"team": "a"})),
    );
    bapi.machine_token(API_KEYS, "ak_acme", clerk_token("ak_2", "org_acme", &[], Value::Null));
    bapi.machine_token(M2M, "mt_worker", clerk_token("mt_1", "mch_worker", &["mch_billing"], Value::Null));
    bapi.machine_token(OAUTH, "oat_app", clerk_token("oat_1", "user_alice", &["profile"], Value::Null));
    let gw = machine_gateway(&bapi).await;
    let spoofed = [("x-machine-id", "mch_evil"), ("x-auth-token-type", "api_key"), ("x-auth-scopes", "admin")];

    let alice = gw.get("/machines/a", &[("authorization", "Bearer ak_alice"), spoofed[0], spoofed[2]]).await;
    assert_eq!(alice.status, 200);
    assert_eq!(alice.seen("x-auth-token-type").as_deref(), Some("api_key"));
    assert_eq!(alice.seen("x-auth-token-id").as_deref(), Some("ak_1"));
    assert_eq!(alice.seen("x-user-id").as_deref(), Some("user_alice"));
    assert_eq!(alice.seen("x-auth-scopes").as_deref(), Some("read,write"));
    assert_eq!(alice.seen("x-auth-status").as_deref(), Some("signed-in"));
    assert_eq!(alice.seen("x-user-email").as_deref(), Some("alice@example.com"), "the mirror enriches it");
    assert_eq!((alice.seen("x-machine-id"), alice.seen("x-session-id")), (None, None));

    let acme = gw.get("/machines/a", &[("authorization", "Bearer ak_acme")]).await;
    assert_eq!(acme.seen("x-org-id").as_deref(), Some("org_acme"));
    assert_eq!((acme.seen("x-user-id"), acme.seen("x-auth-scopes")), (None, None));

    let worker = gw.get("/machines/a", &[("authorization", "Bearer mt_worker")]).await;
    assert_eq!(worker.seen("x-auth-token-type").as_deref(), Some("m2m_token"));
    assert_eq!(worker.seen("x-machine-id").as_deref(), Some("mch_worker"));
    assert_eq!(worker.seen("x-auth-scopes").as_deref(), Some("mch_billing"));

    let app = gw.get("/machines/a", &[("authorization", "Bearer oat_app")]).await;
    assert_eq!(app.seen("x-auth-token-type").as_deref(), Some("oauth_token"));
    assert_eq!(app.seen("x-user-id").as_deref(), Some("user_alice"));

    let calls = bapi.count("/v1/api_keys/") + bapi.count("/v1/m2m_tokens/") + bapi.count("/v1/oauth_applications/");
    let m2m = m2m_jwt(
        json!({"sub": "mch_worker", "jti": "mt_j1", "scopes": "mch_a mch_b", "iat": NOW - 1, "exp": NOW + 600}),
    );
    let jwt_worker = gw.get("/machines/a", &[("authorization", &format!("Bearer {m2m}"))]).await;
    assert_eq!(jwt_worker.seen("x-machine-id").as_deref(), Some("mch_worker"));
    assert_eq!(jwt_worker.seen("x-auth-scopes").as_deref(), Some("mch_a,mch_b"));
    assert_eq!(jwt_worker.seen("x-auth-token-id").as_deref(), Some("mt_j1"));
    let oauth =
        oauth_jwt(json!({"sub": "user_alice", "client_id": "c", "scp": ["email"], "iat": NOW - 1, "exp": NOW + 600}));
    let jwt_app = gw.get("/machines/a", &[("authorization", &format!("Bearer {oauth}"))]).await;
    assert_eq!(jwt_app.seen("x-auth-token-type").as_deref(), Some("oauth_token"));
    assert_eq!(jwt_app.seen("x-auth-scopes").as_deref(), Some("email"));
    let after = bapi.count("/v1/api_keys/") + bapi.count("/v1/m2m_tokens/") + bapi.count("/v1/oauth_applications/");
    assert_eq!(after, calls, "JWT forms are verified locally");

    // A route for sessions and API keys takes both, and copies a key's custom claims.
    let mixed = gw.get("/mixed/a", &[("authorization", "Bearer ak_alice")]).await;
    assert_eq!(mixed.seen("x-team").as_deref(), Some("a"));
    let session = gw.get_with_token("/mixed/a", &key_a().token(&claims())).await;
    assert_eq!(session.seen("x-auth-token-type").as_deref(), Some("session_token"));
    assert_eq!(session.seen("x-session-id").as_deref(), Some("sess_1"));
    let session_elsewhere = gw
        .get("/api/a", &[("authorization", &format!("Bearer {}", key_a().token(&claims()))), spoofed[0], spoofed[1]])
        .await;
    assert_eq!(session_elsewhere.seen("x-auth-token-type").as_deref(), Some("session_token"));
    assert_eq!(session_elsewhere.seen("x-machine-id"), None, "client-sent machine headers are stripped");
}

#[tokio::test]
async fn every_refusal_names_its_reason() {
    let bapi = bapi_with_alice().await;
    let key = clerk_token("ak_1", "user_alice", &[], Value::Null);
    bapi.machine_token(API_KEYS, "ak_revoked", with(key.clone(), "revoked", json!(true)));
    bapi.machine_token(API_KEYS, "ak_expired", with(key.clone(), "expired", json!(true)));
    bapi.machine_token(API_KEYS, "ak_lapsed", with(key.clone(), "expiration", json!(NOW_MS - 1)));
    bapi.machine_token(API_KEYS, "ak_good", key);
    let gw = machine_gateway(&bapi).await;
    let session = key_a().token(&claims());
    let expired_m2m = m2m_jwt(json!({"sub": "mch_1", "iat": NOW - 700, "exp": NOW - 600}));
    let forged_m2m = key_b().token_with_header(
        &json!({"alg": "RS256", "kid": key_a().kid, "cat": "cl_B7d4PD333AAA"}),
        &json!({"sub": "mch_1", "iat": NOW - 1, "exp": NOW + 600}),
        Algorithm::RS256,
    );
    let m2m_as_session_cat = key_a().token_with_header(
        &json!({"alg": "RS256", "kid": key_a().kid, "cat": "cl_B7d4PD111AAA"}),
        &json!({"sub": "mch_1", "iat": NOW - 1, "exp": NOW + 600}),
        Algorithm::RS256,
    );
    type Case<'a> = (&'a str, Vec<(&'a str, String)>, &'a str);
    let cases: Vec<Case> = vec![
        ("/machines/a", vec![("authorization", "Bearer ak_unknown".into())], "token-invalid"),
        ("/machines/a", vec![("authorization", "Bearer ak_revoked".into())], "token-revoked"),
        ("/machines/a", vec![("authorization", "Bearer ak_expired".into())], "token-expired"),
        ("/machines/a", vec![("authorization", "Bearer ak_lapsed".into())], "token-expired"),
        ("/machines/a", vec![("authorization", format!("Bearer {expired_m2m}"))], "token-expired"),
        ("/machines/a", vec![("authorization", format!("Bearer {forged_m2m}"))], "token-invalid-signature"),
        ("/machines/a", vec![("authorization", format!("Bearer {m2m_as_session_cat}"))], "token-type-mismatch"),
        ("/machines/a", vec![("authorization", format!("Bearer {session}"))], "token-type-mismatch"),
        ("/machines/a", vec![], "token-missing"),
        ("/machines/a", vec![("cookie", session_cookies(&session))], "token-missing"),
        ("/api/a", vec![("authorization", "Bearer ak_good".into())], "token-type-mismatch"),
        ("/api/a", vec![("authorization", "Bearer mt_anything".into())], "token-type-mismatch"),
        ("/api/a", vec![("authorization", format!("Bearer {expired_m2m}"))], "token-type-mismatch"),
        ("/mixed/a", vec![("authorization", "Bearer oat_anything".into())], "token-type-mismatch"),
    ];
    for (path, headers, reason) in cases {
        let borrowed: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let reply = gw.get(path, &borrowed).await;
        assert_eq!((reply.status, reply.reason()), (401, reason.to_owned()), "{path} {headers:?}");
        assert!(!String::from_utf8_lossy(&reply.body).contains("ak_"), "the body never echoes a token");
    }
    let asked = bapi.count(API_KEYS);
    for _ in 0..3 {
        assert_eq!(gw.get("/machines/a", &[("authorization", "Bearer ak_unknown")]).await.reason(), "token-invalid");
    }
    assert_eq!(bapi.count(API_KEYS), asked, "a refusal is remembered");
    let optional = gw.get("/maybe/a", &[("authorization", "Bearer ak_unknown")]).await;
    assert_eq!(optional.seen("x-auth-status").as_deref(), Some("signed-out"));
    assert_eq!(optional.seen("x-user-id"), None);
}

#[tokio::test]
async fn a_backend_api_outage_is_a_503_that_signs_nobody_in() {
    let bapi = bapi_with_alice().await;
    bapi.machine_token(API_KEYS, "ak_good", clerk_token("ak_1", "user_alice", &[], Value::Null));
    let gw = machine_gateway(&bapi).await;
    bapi.script(Scripted { path_prefix: API_KEYS, after: 0, status: 503, retry_after: None });
    let down = gw.get("/machines/a", &[("authorization", "Bearer ak_good")]).await;
    assert_eq!(down.status, 503);
    assert_eq!(down.json(), json!({"error": "unavailable", "reason": "clerk-api-unavailable"}));
    assert_eq!(down.headers["retry-after"], "1");
    assert_eq!(gw.metric(r#"clerk_gateway_auth_total{outcome="unavailable"}"#).await, 1.0);
    let up = gw.get("/machines/a", &[("authorization", "Bearer ak_good")]).await;
    assert_eq!(up.seen("x-user-id").as_deref(), Some("user_alice"), "an outage is not remembered");

    bapi.state.hold_verifications.store(true, Ordering::SeqCst);
    let stalled = gw.get("/maybe/a", &[("authorization", "Bearer ak_never_seen")]).await;
    assert_eq!((stalled.status, stalled.reason()), (503, "clerk-api-unavailable".to_owned()), "optional routes too");
    bapi.state.hold_verifications.store(false, Ordering::SeqCst);
    bapi.state.release.notify_waiters();

    bapi.script(Scripted { path_prefix: API_KEYS, after: 0, status: 401, retry_after: None });
    let refused_key = gw.get("/machines/a", &[("authorization", "Bearer ak_other")]).await;
    assert_eq!((refused_key.status, refused_key.reason()), (503, "secret-key-invalid".to_owned()));
}

#[tokio::test]
async fn a_burst_of_one_new_token_costs_one_verification() {
    let bapi = bapi_with_alice().await;
    bapi.machine_token(API_KEYS, "ak_burst", clerk_token("ak_9", "user_alice", &[], Value::Null));
    let gw = machine_gateway(&bapi).await;
    bapi.state.hold_verifications.store(true, Ordering::SeqCst);
    let burst =
        futures_util::future::join_all((0..20).map(|_| gw.get("/machines/a", &[("authorization", "Bearer ak_burst")])));
    let release = async {
        eventually("the first verification reaches Clerk", async || bapi.count(API_KEYS) == 1).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        bapi.state.hold_verifications.store(false, Ordering::SeqCst);
        bapi.state.release.notify_waiters();
    };
    let (replies, ()) = tokio::join!(burst, release);
    assert!(replies.iter().all(|r| r.seen("x-auth-token-id").as_deref() == Some("ak_9")));
    assert_eq!(bapi.count(API_KEYS), 1);
}

#[tokio::test]
async fn scope_rules_hold_and_revocations_sign_a_token_out() {
    let bapi = bapi_with_alice().await;
    bapi.machine_token(API_KEYS, "ak_reader", clerk_token("ak_r", "user_alice", &["read"], Value::Null));
    bapi.machine_token(API_KEYS, "ak_writer", clerk_token("ak_w", "user_alice", &["read", "write"], Value::Null));
    let gw = machine_gateway(&bapi).await;
    let reader = gw.get("/writers/a", &[("authorization", "Bearer ak_reader")]).await;
    assert_eq!((reader.status, reader.json()), (403, json!({"error": "forbidden", "rule": "scope"})));
    let writer = gw.get("/writers/a", &[("authorization", "Bearer ak_writer")]).await;
    assert_eq!(writer.status, 200);

    // A webhook revokes the key at once, though its verdict is still remembered.
    let asked = bapi.count(API_KEYS);
    let delivered = gw.deliver("msg_revoke", &event("apiKey.revoked", json!({"id": "ak_w", "revoked": true}))).await;
    assert_eq!(delivered.status, 200);
    let revoked = gw.get("/writers/a", &[("authorization", "Bearer ak_writer")]).await;
    assert_eq!((revoked.status, revoked.reason()), (401, "token-revoked".to_owned()));
    assert_eq!(bapi.count(API_KEYS), asked, "no call was needed");

    // Past the cache TTL the key is asked about again; Clerk now refuses it.
    assert_eq!(gw.get("/machines/a", &[("authorization", "Bearer ak_reader")]).await.status, 200);
    bapi.machine_token(
        API_KEYS,
        "ak_reader",
        with(clerk_token("ak_r", "user_alice", &["read"], Value::Null), "revoked", json!(true)),
    );
    assert_eq!(gw.get("/machines/a", &[("authorization", "Bearer ak_reader")]).await.status, 200, "still trusted");
    gw.clock.advance(Duration::from_secs(31));
    let refused = gw.get("/machines/a", &[("authorization", "Bearer ak_reader")]).await;
    assert_eq!((refused.status, refused.reason()), (401, "token-revoked".to_owned()));
}

#[test]
fn accepts_is_checked_key_by_key() {
    let parse = |routes: &str, clerk: &str| {
        let text = format!("[clerk]\njwt_key = '''{}'''\n{clerk}\n{routes}", fixture("rsa_a.pub.pem"));
        clerk_gateway::Config::from_toml(&text, &|_| None).map(|_| ()).unwrap_err().to_string()
    };
    let route =
        |accepts: &str| format!("[[route]]\npath = \"/a/\"\nupstream = \"http://127.0.0.1:1\"\naccepts = {accepts}\n");
    assert!(
        parse(&route(r#"["api_key"]"#), "")
            .contains("route[0].accepts: machine tokens are verified with the Backend API")
    );
    let with_key = "secret_key = \"sk_test_x\"";
    assert!(
        parse(&route(r#"["api_key", "apikey"]"#), with_key).contains("route[0].accepts[1]: expected session_token")
    );
    assert!(
        parse(&route(r#"["api_key", "api_key"]"#), with_key).contains("route[0].accepts[1]: api_key is listed twice")
    );
    assert!(parse(&route("[]"), with_key).contains("route[0].accepts: an empty list accepts nothing"));
    let public = format!("{}auth = \"public\"\n", route(r#"["api_key"]"#));
    assert!(parse(&public, with_key).contains("route[0].accepts: a public route verifies no token"));
}
