//! The signed identity assertion through the real gateway: every forwarded request carries
//! `X-Clerk-Gateway-Assertion`, which the admin listener's JWKS verifies, naming the
//! injected identity, the route's upstream and the forwarded method and path; a client's
//! copy never gets through; a key file gives the same key id everywhere; forward-auth
//! answers carry one too.

use std::net::SocketAddr;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Value, json};

use crate::common::*;

async fn assertion_gateway(key_file: Option<&str>) -> (TestGateway, SocketAddr) {
    let jwks = FakeJwks::with_key_a().await;
    let upstream = spawn_upstream().await;
    let up = format!("http://{upstream}");
    let mut config = TestConfig::standard(&jwks, upstream)
        .section("assertion", "enabled", true)
        .section("forward_auth", "enabled", true)
        .route(TestRoute::new("/based/", &format!("{up}/v2")).set("strip_prefix", true));
    if let Some(file) = key_file {
        config = config.section("assertion", "key_file", file).section("assertion", "lifetime", "2m");
    }
    (TestGateway::start(&config).await, upstream)
}

/// The gateway's public keys, from its admin listener.
async fn jwks_of(gw: &TestGateway) -> JwkSet {
    let reply = gw.admin_get("/.well-known/jwks.json").await;
    assert_eq!((reply.status, reply.header("content-type")), (200, Some("application/json")));
    serde_json::from_slice(&reply.body).unwrap()
}

/// Verifies `token` as a backend would: signature by the JWKS key its `kid` names, `iss`,
/// `aud`; returns the claims.
fn verify(jwks: &JwkSet, token: &str, audience: &str) -> Value {
    let header = jsonwebtoken::decode_header(token).unwrap();
    let jwk = jwks.find(header.kid.as_deref().unwrap()).expect("the kid is in the JWKS");
    let mut validation = Validation::new(header.alg);
    validation.set_audience(&[audience]);
    validation.set_issuer(&["clerk-gateway"]);
    validation.validate_exp = false; // the gateway's clock is the tests' manual one
    jsonwebtoken::decode::<Value>(token, &DecodingKey::from_jwk(jwk).unwrap(), &validation).unwrap().claims
}

fn request_hash(method: &str, path: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, format!("{method} {path}").as_bytes());
    URL_SAFE_NO_PAD.encode(digest.as_ref())
}

#[tokio::test]
async fn every_forwarded_request_carries_an_assertion_the_jwks_verifies() {
    let (gw, upstream) = assertion_gateway(None).await;
    let jwks = jwks_of(&gw).await;
    assert_eq!(jwks.keys.len(), 1);
    let audience = format!("http://{upstream}");
    let mut token_claims = claims();
    token_claims["o"] = json!({"id": "org_acme", "rol": "admin", "slg": "acme"});
    let token = key_a().token(&token_claims);
    let forged = "eyJhbGciOiJFZERTQSJ9.e30.c2ln";
    let headers = [("authorization", format!("Bearer {token}")), ("x-clerk-gateway-assertion", forged.to_owned())];
    let borrowed: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();

    let signed_in = gw.get("/api/orders?page=2", &borrowed).await;
    let assertion = signed_in.seen("x-clerk-gateway-assertion").unwrap();
    assert!(!assertion.contains('|') && assertion != forged, "the client's copy was removed");
    let claims = verify(&jwks, &assertion, &audience);
    assert_eq!(claims["auth"], "signed-in");
    assert_eq!(claims["token_type"], "session_token");
    assert_eq!((claims["sub"].as_str(), claims["sid"].as_str()), (Some("user_alice"), Some("sess_1")));
    assert_eq!((claims["org_id"].as_str(), claims["org_role"].as_str()), (Some("org_acme"), Some("org:admin")));
    assert_eq!(claims["iat"], NOW);
    assert_eq!(claims["exp"], NOW + 30);
    assert_eq!(claims["rqh"], request_hash("GET", "/api/orders"), "method and path, without the query");

    let stripped = gw.get("/based/items", &borrowed).await;
    let claims = verify(&jwks, &stripped.seen("x-clerk-gateway-assertion").unwrap(), &format!("{audience}/v2"));
    assert_eq!(stripped.seen_path(), "/v2/items");
    assert_eq!(claims["rqh"], request_hash("GET", "/v2/items"), "the path the upstream receives");

    let public = gw.get("/public/x", &[("x-clerk-gateway-assertion", forged)]).await;
    let claims = verify(&jwks, &public.seen("x-clerk-gateway-assertion").unwrap(), &audience);
    assert_eq!((claims["auth"].as_str(), claims.get("sub")), (Some("none"), None));
    let optional = gw.get("/optional/x", &[]).await;
    let claims = verify(&jwks, &optional.seen("x-clerk-gateway-assertion").unwrap(), &audience);
    assert_eq!(claims["auth"], "signed-out");

    // Another key, or a changed request, does not verify.
    let (other, _) = assertion_gateway(None).await;
    let header = jsonwebtoken::decode_header(&assertion).unwrap();
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.validate_aud = false;
    let other_key = DecodingKey::from_jwk(&jwks_of(&other).await.keys[0]).unwrap();
    assert_eq!(header.alg, Algorithm::EdDSA);
    assert!(jsonwebtoken::decode::<Value>(&assertion, &other_key, &validation).is_err());

    // Forward-auth answers carry one for the request the ingress names.
    let verify_reply = gw.get("/_clerk_gateway/verify/api/orders", &borrowed).await;
    let claims = verify(&jwks, verify_reply.header("x-clerk-gateway-assertion").unwrap(), &audience);
    assert_eq!(
        (claims["sub"].as_str(), claims["rqh"].as_str()),
        (Some("user_alice"), Some(&*request_hash("GET", "/api/orders")))
    );
}

#[tokio::test]
async fn a_key_file_gives_every_replica_the_same_key() {
    let key = fixture_path("ec_p256.pem");
    let (a, upstream) = assertion_gateway(Some(&key)).await;
    let (b, _) = assertion_gateway(Some(&key)).await;
    let (ja, jb) = (jwks_of(&a).await, jwks_of(&b).await);
    assert_eq!(ja.keys[0].common.key_id, jb.keys[0].common.key_id);
    let reply = a.get("/api/x", &[("authorization", &format!("Bearer {}", key_a().token(&claims())))]).await;
    let assertion = reply.seen("x-clerk-gateway-assertion").unwrap();
    assert_eq!(jsonwebtoken::decode_header(&assertion).unwrap().alg, Algorithm::ES256);
    let claims = verify(&jb, &assertion, &format!("http://{upstream}"));
    assert_eq!(claims["exp"], NOW + 120);
}

#[tokio::test]
async fn without_assertions_there_is_no_jwks_and_a_client_copy_is_still_removed() {
    let (gw, _jwks) = standard().await;
    assert_eq!(gw.admin_get("/.well-known/jwks.json").await.status, 404);
    let reply = gw.get("/public/x", &[("x-clerk-gateway-assertion", "forged")]).await;
    assert_eq!(reply.seen("x-clerk-gateway-assertion"), None);
}

#[test]
fn a_bad_key_file_names_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gateway.toml");
    let text = format!(
        "[clerk]\njwt_key_file = \"{}\"\n[assertion]\nenabled = true\nkey_file = \"{}\"\nlifetime = \"1h\"\n",
        fixture_path("rsa_a.pub.pem"),
        fixture_path("rsa_a.pem"),
    );
    std::fs::write(&config, text).unwrap();
    let out = gateway(&["check", "-c", config.to_str().unwrap()]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("assertion.lifetime: expected 1s to 10m"), "{stderr}");
    assert!(stderr.contains("assertion.key_file:"), "{stderr}");
}
