//! Per-route header control: claims copied into headers (and stripped from clients like
//! every identity header, on every route), the client's credentials withheld from an
//! upstream that should not see them, and headers added and removed.

use serde_json::json;
use toml::Value;

use crate::common::*;

async fn gateway() -> (TestGateway, FakeJwks) {
    let jwks = FakeJwks::with_key_a().await;
    let up = format!("http://{}", spawn_upstream().await);
    let mut claims = toml::Table::new();
    claims.insert("X-Tenant".into(), Value::from("tenant_id"));
    claims.insert("X-Plan".into(), Value::from("meta.plan"));
    let mut added = toml::Table::new();
    added.insert("X-Env".into(), Value::from("prod"));
    let config = TestConfig::standard(&jwks, spawn_upstream().await)
        .route(TestRoute::new("/tenant/", &up).set("claim_headers", Value::Table(claims)))
        .route(
            TestRoute::new("/sealed/", &up)
                .set("pass_credentials", false)
                .set("add_request_headers", Value::Table(added))
                .set("remove_request_headers", strings(&["X-Debug"])),
        );
    (TestGateway::start(&config).await, jwks)
}

#[tokio::test]
async fn claims_become_headers_and_clients_cannot_send_them_on_any_route() {
    let (gw, _jwks) = gateway().await;
    let mut with_tenant = claims_with("tenant_id", json!("t_42"));
    with_tenant["meta"] = json!({ "plan": "pro" });
    let token = key_a().token(&with_tenant);
    let bearer = format!("Bearer {token}");
    let reply = gw.get("/tenant/x", &[("authorization", &bearer), ("x-tenant", "t_spoofed")]).await;
    assert_eq!(reply.seen("x-tenant").as_deref(), Some("t_42"), "the verified claim, not the client's");
    assert_eq!(reply.seen("x-plan").as_deref(), Some("pro"), "a nested claim");

    let no_tenant = key_a().token(&claims());
    let reply =
        gw.get("/tenant/x", &[("authorization", &format!("Bearer {no_tenant}")), ("x-tenant", "t_spoofed")]).await;
    assert_eq!(reply.seen("x-tenant"), None, "a token without the claim: no header, and the client's is gone");
    for path in ["/public/x", "/optional/x", "/sealed/x"] {
        let reply =
            gw.get(path, &[("authorization", &bearer), ("X-Tenant", "t_spoofed"), ("x_tenant", "t_spoofed")]).await;
        assert_eq!(reply.seen("x-tenant"), None, "{path}: stripped on every route");
        assert_eq!(reply.seen("x_tenant"), None, "{path}: the underscore spelling too");
    }
}

#[tokio::test]
async fn a_route_can_withhold_credentials_and_add_and_remove_headers() {
    let (gw, _jwks) = gateway().await;
    let token = key_a().token(&claims());
    let cookies = format!("{}; theme=dark; __clerk_db_jwt=dv; __client_uat_abc=1", session_cookies(&token));
    let headers = [
        ("authorization", format!("Bearer {token}")),
        ("cookie", cookies),
        ("x-debug", "1".into()),
        ("x-env", "dev".into()),
    ];
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let reply = gw.get("/sealed/x", &headers).await;
    assert_eq!(reply.seen("x-user-id").as_deref(), Some("user_alice"), "still verified");
    assert_eq!(reply.seen("authorization"), None, "the token is withheld");
    assert_eq!(reply.seen("cookie").as_deref(), Some("theme=dark"), "only the application's own cookies pass");
    assert_eq!(reply.seen("x-debug"), None, "removed");
    assert_eq!(reply.seen("x-env").as_deref(), Some("prod"), "added, over the client's");

    let reply = gw.get("/api/x", &headers).await;
    assert!(reply.seen("authorization").is_some(), "other routes pass credentials, as by default");
    assert!(reply.seen("cookie").unwrap().contains("__session="));
}
