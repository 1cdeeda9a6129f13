//! Browser sessions: one test per row of Clerk's cookie decision table, the handshake round
//! trip by nonce and by handshake token, the loop guard, `/auth/me`, `/auth/logout`,
//! `/auth/login`, CORS preflights and the Frontend API proxy, against a fake Clerk.

use serde_json::json;

use crate::common::*;

const PROD_KEY: &str = PUBLISHABLE_KEY;
const DEV_KEY: &str = "pk_test_Y2xlcmsuZXhhbXBsZS5jb20k";
const DOCUMENT: (&str, &str) = ("sec-fetch-dest", "document");

async fn browser_gateway(bapi: &FakeBapi, publishable_key: &str) -> TestGateway {
    TestGateway::start(&browser_config(bapi, publishable_key).await).await
}

/// The fake Clerk as Backend and Frontend API, a required `/app/`, an optional `/maybe/`,
/// and a `/strict/` route that authenticates preflights too.
async fn browser_config(bapi: &FakeBapi, publishable_key: &str) -> TestConfig {
    let upstream = format!("http://{}", spawn_upstream().await);
    TestConfig::new()
        .clerk("secret_key", FAKE_SECRET)
        .clerk("api_url", bapi.url())
        .clerk("frontend_api_url", bapi.url())
        .clerk("publishable_key", publishable_key)
        .clerk("authorized_parties", strings(&[APP]))
        .clerk("sign_in_url", "https://accounts.example.com/sign-in")
        .route(TestRoute::new("/app/", &upstream))
        .route(TestRoute::new("/maybe/", &upstream).auth("optional"))
        .route(TestRoute::new("/strict/", &upstream).set("authenticate_preflight", true))
}

/// The Frontend API proxy at `/__clerk`.
fn with_frontend_api_proxy(config: TestConfig) -> TestConfig {
    config.clerk("proxy_path", "/__clerk").clerk("proxy_url", "https://app.example.com/__clerk")
}

async fn fake() -> FakeBapi {
    FakeBapi::start(vec![clerk_user("user_alice", "Alice", 5, json!({"plan": "pro"}))]).await
}

fn set_cookies(reply: &Reply) -> Vec<String> {
    reply.headers.get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_owned()).collect()
}

/// The handshake URL's query parameters (panics unless the reply redirects to the fake).
fn handshake_params(reply: &Reply, bapi: &FakeBapi) -> Vec<(String, String)> {
    assert_eq!(reply.status, 307, "{}", String::from_utf8_lossy(&reply.body));
    let location = reqwest::Url::parse(reply.header("location").unwrap()).unwrap();
    assert!(location.as_str().starts_with(&format!("{}/v1/client/handshake?", bapi.url())), "{location}");
    location.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn expired() -> String {
    key_a().token(&claims_with("exp", json!(NOW - 30)))
}

async fn document(gw: &TestGateway, path: &str, cookie: &str) -> Reply {
    gw.get(path, &[DOCUMENT, ("cookie", cookie)]).await
}

async fn api_call(gw: &TestGateway, path: &str, cookie: &str) -> Reply {
    gw.get(path, &[("sec-fetch-dest", "empty"), ("cookie", cookie)]).await
}

// ------------------------------------------------------------------ the decision table

#[tokio::test]
async fn c1_a_nonce_in_the_url_is_redeemed_and_served() {
    let bapi = fake().await;
    let gw = browser_gateway(&bapi, PROD_KEY).await;
    let fresh = key_a().token(&claims());
    bapi.state
        .nonces
        .lock()
        .unwrap()
        .insert("n1".into(), vec![format!("__session={fresh}; Path=/"), format!("__client_uat={CLIENT_UAT}; Path=/")]);
    let reply = document(&gw, "/app/page?__clerk_handshake_nonce=n1", &format!("__session={}", expired())).await;
    assert_eq!(reply.status, 200, "production serves the request at once");
    assert_eq!(reply.seen("x-user-id").as_deref(), Some("user_alice"));
    let cookies = set_cookies(&reply);
    assert!(cookies.iter().any(|c| c.starts_with(&format!("__session={fresh}"))), "{cookies:?}");
    assert!(cookies.iter().any(|c| c.starts_with("__client_uat=")));
    assert_eq!(bapi.count("/v1/clients/handshake_payload"), 1);
}

#[tokio::test]
async fn c1_a_handshake_token_cookie_is_verified_and_applied() {
    let bapi = fake().await;
    let gw = browser_gateway(&bapi, PROD_KEY).await;
    let fresh = key_a().token(&claims());
    let jwt = key_a().token_with_header(
        &json!({"alg": "RS256", "typ": "JWT", "kid": "ins_a"}),
        &json!({"handshake": [format!("__session={fresh}; Path=/")]}),
        jsonwebtoken::Algorithm::RS256,
    );
    let reply = document(&gw, "/app/page", &format!("__clerk_handshake={jwt}")).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.seen("x-user-id").as_deref(), Some("user_alice"));
    let forged = key_b().token_with_header(
        &json!({"alg": "RS256", "kid": "ins_a"}),
        &json!({"handshake": [format!("__session={fresh}; Path=/")]}),
        jsonwebtoken::Algorithm::RS256,
    );
    let reply = api_call(&gw, "/app/page", &format!("__clerk_handshake={forged}")).await;
    assert_eq!(reply.status, 401, "a handshake token that does not verify is ignored");
    assert!(set_cookies(&reply).is_empty(), "and none of its cookies are set");
}

#[tokio::test]
async fn c1_an_unknown_nonce_falls_through() {
    let bapi = fake().await;
    let gw = browser_gateway(&bapi, PROD_KEY).await;
    let reply = api_call(&gw, "/app/page?__clerk_handshake_nonce=nope", "").await;
    assert_eq!((reply.status, reply.reason().as_str()), (401, "session-token-and-uat-missing"));
}

#[tokio::test]
async fn c1_development_goes_back_to_the_clean_url() {
    let bapi = fake().await;
    let gw = browser_gateway(&bapi, DEV_KEY).await;
    let fresh = key_a().token(&claims());
    bapi.state.nonces.lock().unwrap().insert("n2".into(), vec![format!("__session={fresh}; Path=/")]);
    let reply = document(&gw, "/app/page?tab=2&__clerk_handshake_nonce=n2", "__clerk_db_jwt=dev1").await;
    assert_eq!(reply.status, 307);
    assert_eq!(reply.header("location"), Some("http://gateway.test/app/page?tab=2"));
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    assert!(set_cookies(&reply).iter().any(|c| c.starts_with("__session=")));
}

#[tokio::test]
async fn c3_a_dev_browser_token_in_the_url_is_synced() {
    let bapi = fake().await;
    let gw = browser_gateway(&bapi, DEV_KEY).await;
    let reply = document(&gw, "/app/page?x=1&__clerk_db_jwt=dev9", "").await;
    let params = handshake_params(&reply, &bapi);
    assert_eq!(param(&params, "__clerk_hs_reason"), Some("dev-browser-sync"));
    assert_eq!(param(&params, "__clerk_db_jwt"), Some("dev9"));
    assert_eq!(param(&params, "redirect_url"), Some("http://gateway.test/app/page?x=1"));
}

#[tokio::test]
async fn c4_development_without_a_dev_browser() {
    let bapi = fake().await;
    let gw = browser_gateway(&bapi, DEV_KEY).await;
    let params = handshake_params(&document(&gw, "/app/page", "").await, &bapi);
    assert_eq!(param(&params, "__clerk_hs_reason"), Some("dev-browser-missing"));
    let reply = api_call(&gw, "/app/page", "").await;
    assert_eq!(reply.reason(), "session-token-and-uat-missing", "API calls are told about the credential");
}

#[tokio::test]
async fn c5_no_session_and_no_client() {
    let bapi = fake().await;
    let gw = browser_gateway(&bapi, PROD_KEY).await;
    let reply = document(&gw, "/app/page", "").await;
    assert_eq!(reply.status, 307);
    assert!(reply.header("location").unwrap().starts_with("https://accounts.example.com/sign-in?redirect_url="));
    assert_eq!(api_call(&gw, "/app/page", "").await.reason(), "session-token-and-uat-missing");
}

#[tokio::test]
async fn c6_a_session_cookie_without_client_uat() {
    let bapi = fake().await;
    let prod = browser_gateway(&bapi, PROD_KEY).await;
    let good = key_a().token(&claims());
    let reply = document(&prod, "/app/page", &format!("__session={good}; __client_uat=0")).await;
    assert!(reply.header("location").unwrap().starts_with("https://accounts.example.com/"), "no client to refresh");
    assert_eq!(
        api_call(&prod, "/app/page", &format!("__session={good}")).await.reason(),
        "session-token-but-no-client-uat"
    );
    let dev = browser_gateway(&bapi, DEV_KEY).await;
    let params =
        handshake_params(&document(&dev, "/app/page", &format!("__session={good}; __clerk_db_jwt=d")).await, &bapi);
    assert_eq!(param(&params, "__clerk_hs_reason"), Some("session-token-but-no-client-uat"), "development is eager");
}

#[tokio::test]
async fn c7_a_client_without_a_session_cookie() {
    let bapi = fake().await;
    let gw = browser_gateway(&bapi, PROD_KEY).await;
    let cookie = format!("__client_uat={CLIENT_UAT}");
    let params = handshake_params(&document(&gw, "/app/page", &cookie).await, &bapi);
    assert_eq!(param(&params, "__clerk_hs_reason"), Some("client-uat-but-no-session-token"));
    assert_eq!(param(&params, "__session"), None);
    assert_eq!(api_call(&gw, "/app/page", &cookie).await.reason(), "client-uat-but-no-session-token");
}

#[tokio::test]
async fn c8_an_undecodable_session_cookie() {
    let bapi = fake().await;
    let gw = browser_gateway(&bapi, PROD_KEY).await;
    let cookie = format!("__session=not-a-jwt; __client_uat={CLIENT_UAT}");
    assert_eq!(api_call(&gw, "/app/page", &cookie).await.reason(), "token-invalid");
    let reply = document(&gw, "/app/page", &cookie).await;
    assert!(reply.header("location").unwrap().starts_with("https://accounts.example.com/"), "signed out, no handshake");
}

#[tokio::test]
async fn c9_a_machine_token_in_the_cookie() {
    let bapi = fake().await;
    let gw = browser_gateway(&bapi, PROD_KEY).await;
    let machine = key_a().token(&claims_with("sub", json!("mch_1")));
    let reply = api_call(&gw, "/app/page", &session_cookies(&machine)).await;
    assert_eq!(reply.reason(), "token-type-mismatch");
}

#[tokio::test]
async fn c10_a_token_older_than_the_client() {
    let bapi = fake().await;
    let gw = browser_gateway(&bapi, PROD_KEY).await;
    let cookie = format!("__session={}; __client_uat={}", key_a().token(&claims()), NOW + 2);
    let params = handshake_params(&document(&gw, "/app/page", &cookie).await, &bapi);
    assert_eq!(param(&params, "__clerk_hs_reason"), Some("session-token-iat-before-client-uat"));
    assert_eq!(api_call(&gw, "/app/page", &cookie).await.reason(), "session-token-iat-before-client-uat");
}

#[tokio::test]
async fn c11_a_good_session_cookie_is_signed_in() {
    let bapi = fake().await;
    let gw = browser_gateway(&bapi, PROD_KEY).await;
    let reply = document(&gw, "/app/page", &session_cookies(&key_a().token(&claims()))).await;
    assert_eq!((reply.status, reply.seen("x-user-id").as_deref()), (200, Some("user_alice")));
    assert!(set_cookies(&reply).is_empty());
}

#[tokio::test]
async fn c12_an_expired_session_cookie_goes_through_the_handshake() {
    let bapi = fake().await;
    let gw = browser_gateway(&bapi, PROD_KEY).await;
    let token = expired();
    let reply = document(&gw, "/app/page?q=1", &session_cookies(&token)).await;
    let params = handshake_params(&reply, &bapi);
    assert_eq!(
        param(&params, "__clerk_hs_reason"),
        Some("session-token-expired-refresh-non-eligible-no-refresh-cookie")
    );
    assert_eq!(param(&params, "redirect_url"), Some("http://gateway.test/app/page?q=1"));
    assert_eq!(param(&params, "__session"), Some(token.as_str()));
    assert_eq!(param(&params, "suffixed_cookies"), Some("false"));
    assert_eq!(param(&params, "format"), Some("nonce"));
    assert_eq!(param(&params, "__clerk_api_version"), Some("2026-05-12"));
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    assert_eq!(set_cookies(&reply), ["__clerk_redirect_count=1; SameSite=Lax; HttpOnly; Max-Age=2"]);
    let reply = api_call(&gw, "/app/page", &session_cookies(&token)).await;
    assert_eq!((reply.status, reply.reason().as_str()), (401, "token-expired"), "fetch/XHR get 401");
    let nbf = key_a().token(&claims_with("nbf", json!(NOW + 60)));
    let params = handshake_params(&document(&gw, "/app/page", &session_cookies(&nbf)).await, &bapi);
    assert_eq!(param(&params, "__clerk_hs_reason"), Some("session-token-nbf"));
}

#[tokio::test]
async fn c13_other_failures_sign_out() {
    let bapi = fake().await;
    let gw = browser_gateway(&bapi, PROD_KEY).await;
    let forged =
        key_b().token_with_header(&json!({"alg": "RS256", "kid": "ins_a"}), &claims(), jsonwebtoken::Algorithm::RS256);
    let cookie = session_cookies(&forged);
    assert_eq!(api_call(&gw, "/app/page", &cookie).await.reason(), "token-invalid-signature");
    assert!(
        document(&gw, "/app/page", &cookie)
            .await
            .header("location")
            .unwrap()
            .starts_with("https://accounts.example.com/")
    );
}

#[tokio::test]
async fn the_suffixed_cookie_set_is_honoured() {
    let bapi = fake().await;
    let gw = browser_gateway(&bapi, PROD_KEY).await;
    let token = key_a().token(&claims());
    let reply = api_call(&gw, "/app/page", &format!("{SUFFIXED_COOKIE}={token}; {SUFFIXED_UAT}={CLIENT_UAT}")).await;
    assert_eq!(reply.status, 200);
    let params = handshake_params(
        &document(&gw, "/app/page", &format!("{SUFFIXED_COOKIE}={}; {SUFFIXED_UAT}={CLIENT_UAT}", expired())).await,
        &bapi,
    );
    assert_eq!(param(&params, "suffixed_cookies"), Some("true"));
}

#[tokio::test]
async fn the_loop_guard_gives_up_after_three_handshakes() {
    let bapi = fake().await;
    let gw = browser_gateway(&bapi, PROD_KEY).await;
    let cookie = |n: u32| format!("{}; __clerk_redirect_count={n}", session_cookies(&expired()));
    let reply = document(&gw, "/app/page", &cookie(2)).await;
    handshake_params(&reply, &bapi);
    assert_eq!(set_cookies(&reply), ["__clerk_redirect_count=3; SameSite=Lax; HttpOnly; Max-Age=2"]);
    let reply = document(&gw, "/app/page", &cookie(3)).await;
    assert!(reply.header("location").unwrap().starts_with("https://accounts.example.com/sign-in"), "sign in instead");
    let api = api_call(&gw, "/app/page", &cookie(3)).await;
    assert_eq!((api.status, api.reason().as_str()), (401, "token-expired"));
}

#[tokio::test]
async fn optional_routes_refresh_browsers_too_and_forward_everyone_else() {
    let bapi = fake().await;
    let gw = browser_gateway(&bapi, PROD_KEY).await;
    handshake_params(&document(&gw, "/maybe/page", &session_cookies(&expired())).await, &bapi);
    let reply = api_call(&gw, "/maybe/page", &session_cookies(&expired())).await;
    assert_eq!((reply.status, reply.seen("x-auth-status").as_deref()), (200, Some("signed-out")));
}

#[tokio::test]
async fn a_bearer_token_never_triggers_a_handshake() {
    let bapi = fake().await;
    let gw = browser_gateway(&bapi, PROD_KEY).await;
    let reply = gw.get("/app/page", &[DOCUMENT, ("authorization", &format!("Bearer {}", expired()))]).await;
    assert!(reply.header("location").unwrap().starts_with("https://accounts.example.com/"));
}

// ------------------------------------------------------------------ round trips

/// Follows one redirect to the fake Frontend API and returns where it sends the browser,
/// plus the cookies it set.
async fn through_fapi(bapi: &FakeBapi, location: &str) -> (String, Vec<String>) {
    let url = reqwest::Url::parse(location).unwrap();
    let path = format!("{}?{}", url.path(), url.query().unwrap_or(""));
    let reply = send(bapi.addr, get_request(&path, &[])).await;
    assert_eq!(reply.status, 307);
    (reply.header("location").unwrap().to_owned(), set_cookies(&reply))
}

fn path_of(url: &str) -> String {
    let url = reqwest::Url::parse(url).unwrap();
    format!("{}{}", url.path(), url.query().map(|q| format!("?{q}")).unwrap_or_default())
}

#[tokio::test]
async fn a_round_trip_by_nonce_refreshes_a_stale_tab() {
    let bapi = fake().await;
    bapi.state.handshake.lock().unwrap().session_token = Some(key_a().token(&claims()));
    let gw = browser_gateway(&bapi, PROD_KEY).await;
    let first = document(&gw, "/app/dashboard", &session_cookies(&expired())).await;
    let (back, _) = through_fapi(&bapi, first.header("location").unwrap()).await;
    assert!(back.starts_with("http://gateway.test/app/dashboard?__clerk_handshake_nonce="), "{back}");
    let done = document(&gw, &path_of(&back), &session_cookies(&expired())).await;
    assert_eq!(done.status, 200);
    assert_eq!(done.seen("x-user-id").as_deref(), Some("user_alice"));
    assert!(set_cookies(&done).iter().any(|c| c.starts_with("__session=")), "the fresh token is set");
}

#[tokio::test]
async fn a_round_trip_by_handshake_token_in_development() {
    let bapi = fake().await;
    {
        let mut plan = bapi.state.handshake.lock().unwrap();
        plan.session_token = Some(key_a().token(&claims()));
        plan.as_jwt = true;
    }
    let gw = browser_gateway(&bapi, DEV_KEY).await;
    let cookie = format!("{}; __clerk_db_jwt=dev1", session_cookies(&expired()));
    let first = document(&gw, "/app/dashboard", &cookie).await;
    let (back, _) = through_fapi(&bapi, first.header("location").unwrap()).await;
    assert!(back.contains("__clerk_handshake="), "{back}");
    let resolved = document(&gw, &path_of(&back), &cookie).await;
    assert_eq!((resolved.status, resolved.header("location")), (307, Some("http://gateway.test/app/dashboard")));
    let fresh = set_cookies(&resolved)
        .into_iter()
        .find_map(|c| c.strip_prefix("__session=").map(|v| v.split(';').next().unwrap().to_owned()))
        .unwrap();
    let done =
        document(&gw, "/app/dashboard", &format!("__session={fresh}; __client_uat={CLIENT_UAT}; __clerk_db_jwt=dev1"))
            .await;
    assert_eq!((done.status, done.seen("x-user-id").as_deref()), (200, Some("user_alice")));
}

#[tokio::test]
async fn a_round_trip_by_handshake_cookie_in_production() {
    let bapi = fake().await;
    {
        let mut plan = bapi.state.handshake.lock().unwrap();
        plan.session_token = Some(key_a().token(&claims()));
        plan.as_jwt = true;
        plan.as_cookie = true;
    }
    let gw = browser_gateway(&bapi, PROD_KEY).await;
    let first = document(&gw, "/app/dashboard", &session_cookies(&expired())).await;
    let (back, fapi_cookies) = through_fapi(&bapi, first.header("location").unwrap()).await;
    assert_eq!(back, "http://gateway.test/app/dashboard", "nothing in the URL");
    let handshake =
        fapi_cookies.iter().find_map(|c| c.split(';').next().filter(|p| p.starts_with("__clerk_handshake="))).unwrap();
    let done = document(&gw, "/app/dashboard", &format!("{}; {handshake}", session_cookies(&expired()))).await;
    assert_eq!((done.status, done.seen("x-user-id").as_deref()), (200, Some("user_alice")));
    assert!(set_cookies(&done).iter().any(|c| c.starts_with("__session=")));
}

#[tokio::test]
async fn the_redirect_url_is_the_public_url_behind_trusted_proxies_only() {
    let bapi = fake().await;
    let cookie = session_cookies(&expired());
    let headers =
        [DOCUMENT, ("x-forwarded-proto", "https"), ("x-forwarded-host", "app.example.com"), ("cookie", &cookie)];
    let untrusting = browser_gateway(&bapi, PROD_KEY).await;
    let params = handshake_params(&untrusting.get("/app/p", &headers).await, &bapi);
    assert_eq!(
        param(&params, "redirect_url"),
        Some("http://gateway.test/app/p"),
        "an untrusted peer's X-Forwarded-* are ignored"
    );
    let trusting =
        TestGateway::start(&browser_config(&bapi, PROD_KEY).await.server("trusted_proxies", strings(&["127.0.0.1"])))
            .await;
    let params = handshake_params(&trusting.get("/app/p", &headers).await, &bapi);
    assert_eq!(param(&params, "redirect_url"), Some("https://app.example.com/app/p"));
}

#[tokio::test]
async fn a_signed_out_client_comes_back_signed_out() {
    let bapi = fake().await;
    let gw = browser_gateway(&bapi, PROD_KEY).await;
    let first = document(&gw, "/app/page", &session_cookies(&expired())).await;
    let (back, _) = through_fapi(&bapi, first.header("location").unwrap()).await;
    let reply = document(&gw, &path_of(&back), &session_cookies(&expired())).await;
    assert!(reply.header("location").unwrap().starts_with("https://accounts.example.com/sign-in"), "then sign-in");
    assert!(set_cookies(&reply).iter().any(|c| c.starts_with("__client_uat=0")));
}

// ------------------------------------------------------------------ /auth endpoints

#[tokio::test]
async fn auth_me_describes_the_signed_in_user() {
    let bapi = fake().await;
    let gw = browser_gateway(&bapi, PROD_KEY).await;
    let mut c = claims();
    c["fea"] = json!("o:billing");
    c["o"] = json!({"id": "org_1", "rol": "admin", "slg": "acme", "per": "manage", "fpm": "1"});
    let reply = gw.get_with_token("/auth/me", &key_a().token(&c)).await;
    assert_eq!(reply.status, 200);
    let me = reply.json();
    assert_eq!(me["user_id"], "user_alice");
    assert_eq!(me["session_id"], "sess_1");
    assert_eq!(
        me["org"],
        json!({"id": "org_1", "role": "org:admin", "slug": "acme", "permissions": ["org:billing:manage"]})
    );
    assert_eq!(me["user"]["email"], "alice@example.com", "filled from the Backend API");
    assert_eq!(me["memberships"], json!([]));
    assert!(me["user"].get("private_metadata").is_none());
    let reply = gw.get("/auth/me", &[]).await;
    assert_eq!((reply.status, reply.reason().as_str()), (401, "session-token-and-uat-missing"));
    assert_eq!(
        gw.get("/auth/me", &[DOCUMENT, ("cookie", &session_cookies(&expired()))]).await.status,
        401,
        "no handshake for JSON"
    );
}

#[tokio::test]
async fn logout_revokes_at_clerk_and_here() {
    let bapi = fake().await;
    let gw = browser_gateway(&bapi, PROD_KEY).await;
    let token = key_a().token(&claims());
    assert_eq!(gw.get_with_token("/app/x", &token).await.status, 200);
    let logout = http::Request::post("/auth/logout")
        .header("host", "gateway.test")
        .header("authorization", format!("Bearer {token}"))
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    let reply = send(gw.addr, logout).await;
    assert_eq!(reply.status, 204);
    assert_eq!(bapi.count("/v1/sessions/sess_1/revoke"), 1);
    let cleared = set_cookies(&reply);
    assert!(cleared.iter().any(|c| c.starts_with("__session=;") && c.contains("Max-Age=0")), "{cleared:?}");
    assert!(cleared.iter().any(|c| c.starts_with(&format!("{SUFFIXED_COOKIE}=;"))));
    let after = gw.get_with_token("/app/x", &token).await;
    assert_eq!((after.status, after.reason().as_str()), (401, "session-revoked"), "the same token is refused");
}

fn logout_by_cookie(
    token: &str,
    extra: &[(&str, &str)],
    query: &str,
) -> http::Request<http_body_util::Full<bytes::Bytes>> {
    let mut builder = http::Request::post(format!("/auth/logout{query}"))
        .header("host", "gateway.test")
        .header("cookie", session_cookies(token));
    for (k, v) in extra {
        builder = builder.header(*k, *v);
    }
    builder.body(http_body_util::Full::new(bytes::Bytes::new())).unwrap()
}

#[tokio::test]
async fn cookie_logouts_must_be_same_origin_and_redirect_on_site() {
    let bapi = fake().await;
    let gw = browser_gateway(&bapi, PROD_KEY).await;
    let token = key_a().token(&claims());
    for extra in [
        vec![("origin", "https://evil.example.com")],
        vec![("sec-fetch-site", "cross-site")],
        vec![("sec-fetch-site", "same-site")],
        vec![],
    ] {
        let reply = send(gw.addr, logout_by_cookie(&token, &extra, "")).await;
        assert_eq!((reply.status, reply.json()["reason"].as_str()), (403, Some("cross-site")), "{extra:?}");
    }
    assert_eq!(bapi.count("/v1/sessions/"), 0, "nothing was revoked");
    for evil in ["https://evil.example.com/", "//evil.example.com/x", "/\\evil.example.com", "javascript:alert(1)"] {
        let query = format!("?redirect_url={}", url_encode(evil));
        let reply = send(gw.addr, logout_by_cookie(&token, &[("origin", "http://gateway.test")], &query)).await;
        assert_eq!(reply.status, 400, "{evil}");
    }
    let reply =
        send(gw.addr, logout_by_cookie(&token, &[("sec-fetch-site", "same-origin")], "?redirect_url=/bye")).await;
    assert_eq!((reply.status, reply.header("location")), (303, Some("http://gateway.test/bye")));
    assert_eq!(bapi.count("/v1/sessions/sess_1/revoke"), 1);
    let reply = send(gw.addr, logout_by_cookie(&token, &[("origin", "http://gateway.test")], "")).await;
    assert_eq!(reply.status, 204, "logging out again is fine");
    assert_eq!(gw.get("/auth/logout", &[]).await.header("allow"), Some("POST"));
}

fn url_encode(text: &str) -> String {
    let mut url = reqwest::Url::parse("http://x/").unwrap();
    url.query_pairs_mut().append_pair("v", text);
    url.query().unwrap().trim_start_matches("v=").to_owned()
}

#[tokio::test]
async fn login_sends_browsers_to_sign_in_on_site_only() {
    let bapi = fake().await;
    let gw = browser_gateway(&bapi, PROD_KEY).await;
    let reply = gw.get("/auth/login?redirect_url=/app/after", &[]).await;
    assert_eq!(reply.status, 307);
    assert_eq!(
        reply.header("location"),
        Some("https://accounts.example.com/sign-in?redirect_url=http%3A%2F%2Fgateway.test%2Fapp%2Fafter")
    );
    let plain = gw.get("/auth/login", &[]).await;
    assert_eq!(
        plain.header("location"),
        Some("https://accounts.example.com/sign-in?redirect_url=http%3A%2F%2Fgateway.test%2F")
    );
    assert_eq!(
        gw.get(&format!("/auth/login?redirect_url={}", url_encode("https://evil.example.com")), &[]).await.status,
        400
    );
}

#[tokio::test]
async fn the_endpoints_can_move_or_be_turned_off() {
    let bapi = fake().await;
    let moved = TestGateway::start(&browser_config(&bapi, PROD_KEY).await.auth_endpoints("prefix", "/gw")).await;
    assert_eq!(moved.get_with_token("/gw/me", &key_a().token(&claims())).await.status, 200);
    assert_eq!(moved.get("/auth/me", &[]).await.status, 404, "no route there any more");
    let off = TestGateway::start(&browser_config(&bapi, PROD_KEY).await.auth_endpoints("enabled", false)).await;
    assert_eq!(off.get("/auth/me", &[]).await.status, 404);
}

// ------------------------------------------------------------------ CORS and the FAPI proxy

#[tokio::test]
async fn preflights_pass_unless_the_route_says_otherwise() {
    let bapi = fake().await;
    let gw = browser_gateway(&bapi, PROD_KEY).await;
    let preflight = |path: &str| {
        http::Request::options(path)
            .header("host", "gateway.test")
            .header("origin", "https://app.example.com")
            .header("access-control-request-method", "POST")
            .header("x-user-id", "spoofed")
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .unwrap()
    };
    let reply = send(gw.addr, preflight("/app/x")).await;
    assert_eq!(reply.status, 200, "forwarded without authentication");
    assert_eq!(reply.json()["method"], "OPTIONS");
    assert_eq!(reply.seen("x-user-id"), None);
    assert_eq!(send(gw.addr, preflight("/strict/x")).await.status, 401);
    let plain_options = http::Request::options("/app/x")
        .header("host", "t")
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    assert_eq!(send(gw.addr, plain_options).await.status, 401, "only real preflights pass");
}

#[tokio::test]
async fn the_frontend_api_proxy_forwards_with_clerk_headers() {
    let bapi = fake().await;
    let gw = TestGateway::start(&with_frontend_api_proxy(browser_config(&bapi, PROD_KEY).await)).await;
    let reply =
        gw.get("/__clerk/v1/client?_clerk_js_version=5", &[("cookie", "__client=abc"), ("x-user-id", "spoofed")]).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json(), json!({"fapi": "/v1/client", "query": "_clerk_js_version=5"}));
    assert!(set_cookies(&reply).iter().any(|c| c.starts_with("__client=fapi-client")), "FAPI cookies come back");
    let (_, _, headers) =
        bapi.state.seen.lock().unwrap().iter().rev().find(|(p, _, _)| p == "/v1/client").cloned().unwrap();
    assert_eq!(headers["clerk-proxy-url"], "https://app.example.com/__clerk");
    assert_eq!(headers["clerk-secret-key"], FAKE_SECRET);
    assert_eq!(headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(headers["host"], bapi.addr.to_string());
    assert!(!headers.contains_key("x-user-id"));
}

// ------------------------------------------------------------------ review follow-ups

#[tokio::test]
async fn logout_with_an_expired_cookie_still_ends_the_session_at_clerk() {
    let bapi = fake().await;
    let gw = browser_gateway(&bapi, PROD_KEY).await;
    let stale = expired();
    let reply = send(gw.addr, logout_by_cookie(&stale, &[("sec-fetch-site", "same-origin")], "")).await;
    assert_eq!(reply.status, 204);
    assert_eq!(bapi.count("/v1/sessions/sess_1/revoke"), 1, "the expired token names the session to revoke");
    let forged =
        key_b().token_with_header(&json!({"alg": "RS256", "kid": "ins_a"}), &claims(), jsonwebtoken::Algorithm::RS256);
    send(gw.addr, logout_by_cookie(&forged, &[("sec-fetch-site", "same-origin")], "")).await;
    assert_eq!(bapi.count("/v1/sessions/"), 1, "a token that does not verify revokes nothing");
}

#[tokio::test]
async fn the_frontend_api_proxy_cannot_be_pointed_elsewhere() {
    let bapi = fake().await;
    let elsewhere = FakeJwks::start(vec![]).await;
    let gw = TestGateway::start(&with_frontend_api_proxy(browser_config(&bapi, PROD_KEY).await)).await;
    for sneaky in [format!("/__clerk/http:{}/x", elsewhere.addr), format!("/__clerk/http:/{}/x", elsewhere.addr)] {
        gw.get(&sneaky, &[]).await;
    }
    assert_eq!(elsewhere.hits(), 0, "the secret key never leaves for another host");
    assert!(bapi.count("/http:") >= 1, "the odd path went to the Frontend API, as a path");
}

#[tokio::test]
async fn nonces_are_redeemed_only_on_page_loads_and_refusals_are_remembered() {
    let bapi = fake().await;
    let gw = browser_gateway(&bapi, PROD_KEY).await;
    for _ in 0..5 {
        api_call(&gw, "/app/x?__clerk_handshake_nonce=junk", "").await;
    }
    assert_eq!(bapi.count("/v1/clients/handshake_payload"), 0, "fetch/XHR never cost a Backend API call");
    for _ in 0..5 {
        document(&gw, "/app/x", "__clerk_handshake_nonce=stale").await;
    }
    assert_eq!(bapi.count("/v1/clients/handshake_payload"), 1, "a refused nonce is remembered");
}

#[tokio::test]
async fn production_takes_the_handshake_token_from_its_cookie_only() {
    let bapi = fake().await;
    let gw = browser_gateway(&bapi, PROD_KEY).await;
    let attacker = key_a().token(&claims_with("sub", json!("user_mallory")));
    let jwt = key_a().token_with_header(
        &json!({"alg": "RS256", "typ": "JWT", "kid": "ins_a"}),
        &json!({"handshake": [format!("__session={attacker}; Path=/")]}),
        jsonwebtoken::Algorithm::RS256,
    );
    let reply = document(&gw, &format!("/app/x?__clerk_handshake={jwt}"), "").await;
    assert!(set_cookies(&reply).iter().all(|c| !c.starts_with("__session=")), "a link cannot plant a session");
    assert_eq!(reply.status, 307, "not forwarded: the page load is signed out");
    let location = reply.header("location").unwrap();
    assert!(location.starts_with("https://accounts.example.com/sign-in"), "sent to sign in: {location}");
}

#[tokio::test]
async fn one_client_flooding_fabricated_nonces_cannot_starve_real_users() {
    let bapi = fake().await;
    bapi.state.handshake.lock().unwrap().session_token = Some(key_a().token(&claims()));
    let config = browser_config(&bapi, PROD_KEY).await.server("trusted_proxies", strings(&["127.0.0.1"]));
    let gw = TestGateway::start(&config).await;
    let stale = session_cookies(&expired());
    let mut returns = Vec::new();
    for user in 0..20 {
        let client = format!("203.0.113.{user}");
        let first = gw.get("/app/page", &[DOCUMENT, ("cookie", &stale), ("x-forwarded-for", &client)]).await;
        let (back, _) = through_fapi(&bapi, first.header("location").unwrap()).await;
        returns.push((client, path_of(&back)));
    }
    // The manual clock stands still: the flood and the real returns share one second.
    let gw = &gw;
    let flood = (0..90).map(|i| {
        let path = format!("/app/page?__clerk_handshake_nonce=fabricated_{i}");
        async move { gw.get(&path, &[DOCUMENT, ("x-forwarded-for", "6.6.6.6")]).await.status }
    });
    let stale = &stale;
    let users = returns.iter().map(|(client, path)| async move {
        let reply = gw.get(path, &[DOCUMENT, ("cookie", stale), ("x-forwarded-for", client)]).await;
        reply.status == 200 && reply.seen("x-user-id").as_deref() == Some("user_alice")
    });
    let (_, signed_in) =
        futures_util::future::join(futures_util::future::join_all(flood), futures_util::future::join_all(users)).await;
    let succeeded = signed_in.iter().filter(|ok| **ok).count();
    assert_eq!(succeeded, 20, "every real user's handshake return signed them in");
    let redeemed = bapi.count("/v1/clients/handshake_payload");
    assert!(redeemed <= 20 + 5, "the flood cost at most one client's budget: {redeemed} redemptions");
    let malformed = gw.get("/app/page?__clerk_handshake_nonce=%3Cscript%3E", &[DOCUMENT]).await;
    assert_eq!(malformed.status, 307, "signed out, sent to sign in");
    assert_eq!(bapi.count("/v1/clients/handshake_payload"), redeemed, "a nonce that cannot be valid costs nothing");
}
