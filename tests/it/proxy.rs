//! Forwarding: identity headers in and spoofed ones out, path normalization, hop-by-hop
//! headers, X-Forwarded-*, routing, upstream failures, bodies, HTTP/2, TLS and upgrades.

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use serde_json::json;

use crate::common::*;

const IDENTITY_HEADERS: [&str; 10] = [
    "X-User-Id",
    "X-Session-Id",
    "X-Org-Id",
    "X-Org-Role",
    "X-Org-Slug",
    "X-Org-Permissions",
    "X-User-Email",
    "X-User-Metadata",
    "X-User",
    "X-Auth-Status",
];

fn org_claims() -> serde_json::Value {
    let mut c = claims();
    c["fea"] = json!("o:billing,o:teams");
    c["o"] = json!({"id": "org_acme", "rol": "admin", "slg": "acme", "per": "manage,read", "fpm": "3,2"});
    c
}

#[tokio::test]
async fn a_signed_in_request_carries_identity_headers() {
    let (gw, _jwks) = standard().await;
    let reply = gw.get_with_token("/api/me", &key_a().token(&org_claims())).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.seen("x-user-id").as_deref(), Some("user_alice"));
    assert_eq!(reply.seen("x-session-id").as_deref(), Some("sess_1"));
    assert_eq!(reply.seen("x-org-id").as_deref(), Some("org_acme"));
    assert_eq!(reply.seen("x-org-role").as_deref(), Some("org:admin"));
    assert_eq!(reply.seen("x-org-slug").as_deref(), Some("acme"));
    assert_eq!(reply.seen("x-org-permissions").as_deref(), Some("org:billing:manage,org:billing:read,org:teams:read"));
    assert_eq!(reply.seen("x-auth-status").as_deref(), Some("signed-in"));
    assert!(reply.header("x-request-id").is_some_and(|id| id.len() == 32));
}

#[tokio::test]
async fn v1_org_claims_and_unicode_values_become_ascii_headers() {
    let (gw, _jwks) = standard().await;
    let mut c = claims();
    c.as_object_mut().unwrap().remove("v");
    c["org_id"] = json!("org_1");
    c["org_role"] = json!("org:member");
    c["org_slug"] = json!("zoë-café");
    c["org_permissions"] = json!(["org:billing:read"]);
    let reply = gw.get_with_token("/api/me", &key_a().token(&c)).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.seen("x-org-role").as_deref(), Some("org:member"));
    assert_eq!(reply.seen("x-org-slug").as_deref(), Some("zo\\u00eb-caf\\u00e9"));
    assert_eq!(reply.seen("x-org-permissions").as_deref(), Some("org:billing:read"));
}

/// Every identity header, in odd cases, twice over, and spelled with underscores (which
/// WSGI, Rack and PHP backends read as the dashed name).
fn spoofed() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for name in IDENTITY_HEADERS {
        out.push((name.to_owned(), "spoofed".to_owned()));
        out.push((name.to_ascii_uppercase(), "spoofed-again".to_owned()));
        out.push((name.replace('-', "_"), "spoofed-underscore".to_owned()));
    }
    out
}

async fn get_spoofed(gw: &TestGateway, path: &str, token: Option<&str>) -> Reply {
    let mut headers = spoofed();
    if let Some(token) = token {
        headers.push(("authorization".into(), format!("Bearer {token}")));
    }
    let refs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    gw.get(path, &refs).await
}

#[tokio::test]
async fn spoofed_identity_headers_never_reach_the_upstream() {
    let (gw, _jwks) = standard().await;
    let token = key_a().token(&claims());
    let cases = [
        ("/public/x", None, None),
        ("/optional/x", None, Some("signed-out")),
        ("/optional/x", Some("garbage"), Some("signed-out")),
        ("/optional/x", Some(token.as_str()), Some("signed-in")),
        ("/api/x", Some(token.as_str()), Some("signed-in")),
    ];
    for (path, token, status) in cases {
        let reply = get_spoofed(&gw, path, token).await;
        assert_eq!(reply.status, 200, "{path}");
        for name in IDENTITY_HEADERS {
            for spelling in [name.to_owned(), name.replace('-', "_")] {
                let seen = reply.seen(&spelling);
                assert!(!seen.as_deref().unwrap_or("").contains("spoofed"), "{path} {spelling}: {seen:?}");
            }
        }
        assert_eq!(reply.seen("x-auth-status").as_deref(), status, "{path}");
        let user = if status == Some("signed-in") { Some("user_alice") } else { None };
        assert_eq!(reply.seen("x-user-id").as_deref(), user, "{path}");
    }
}

#[tokio::test]
async fn renamed_identity_headers_are_stripped_and_set() {
    let jwks = FakeJwks::with_key_a().await;
    let upstream = spawn_upstream().await;
    let config =
        TestConfig::standard(&jwks, upstream).headers("user_id", "X-Clerk-User").headers("auth_status", "X-Clerk-Auth");
    let gw = TestGateway::start(&config).await;
    let reply = gw.get("/public/x", &[("x-clerk-user", "evil"), ("X-Clerk-Auth", "signed-in")]).await;
    assert_eq!(reply.seen("x-clerk-user"), None);
    assert_eq!(reply.seen("x-clerk-auth"), None);
    let reply = gw.get_with_token("/api/x", &key_a().token(&claims())).await;
    assert_eq!(reply.seen("x-clerk-user").as_deref(), Some("user_alice"));
    assert_eq!(reply.seen("x-clerk-auth").as_deref(), Some("signed-in"));
}

#[tokio::test]
async fn a_path_dressed_as_public_is_routed_on_its_normal_form() {
    let (gw, _jwks) = standard().await;
    for path in [
        "/public/../api/x",
        "/public/%2e%2e/api/x",
        "/public/%2E%2e/api/x",
        "/public/./../api/x",
        "//api/x",
        "/public//..//api/x",
    ] {
        let reply = gw.get(path, &[]).await;
        assert_eq!((reply.status, reply.reason().as_str()), (401, "session-token-and-uat-missing"), "{path}");
    }
    for path in [
        "/public/..%2fapi/x",
        "/public/..%2Fapi/x",
        "/public/..%5capi/x",
        "/public/%00/x",
        "/public/%zz",
        "/public/..;/api/x",
        "/api;x/y",
    ] {
        assert_eq!(gw.get(path, &[]).await.status, 400, "{path}");
    }
    let reply = gw.get("/API/x", &[]).await;
    assert_eq!(
        (reply.status, reply.reason().as_str()),
        (401, "session-token-and-uat-missing"),
        "case cannot dodge /api/"
    );
    assert_eq!(gw.get("/PUBLIC/x", &[]).await.status, 200);
    let token = key_a().token(&claims());
    let reply = gw.get_with_token("/public/%2e%2e/api/x/./y?q=%2e%2e", &token).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.seen_path(), "/api/x/y?q=%2e%2e", "the upstream gets the path that was routed on");
    let reply = gw.get("/public/a%20b/%7euser", &[]).await;
    assert_eq!(reply.seen_path(), "/public/a%20b/~user");
}

#[tokio::test]
async fn raw_request_targets_are_normalized_too() {
    let (gw, _jwks) = standard().await;
    let response = raw(gw.addr, b"GET /public/../api/x HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").await;
    assert_eq!(raw_status(&response), 401);
}

#[tokio::test]
async fn only_origin_form_requests_are_routed() {
    let (gw, _jwks) = standard().await;
    let refused = [
        ("GET http://t/public/x HTTP/1.1\r\nHost: t", 400, "absolute-form"),
        ("GET http://t/public/../api/x HTTP/1.1\r\nHost: t", 400, "absolute-form, dot segments"),
        ("CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: 127.0.0.1:22", 405, "authority-form CONNECT"),
        ("CONNECT /public/x HTTP/1.1\r\nHost: t", 405, "CONNECT to a route's path"),
        ("OPTIONS * HTTP/1.1\r\nHost: t", 400, "asterisk-form"),
    ];
    for (head, status, what) in refused {
        let response = raw(gw.addr, format!("{head}\r\nConnection: close\r\n\r\n").as_bytes()).await;
        assert_eq!(raw_status(&response), status, "{what}: {response}");
        assert!(!response.contains("\"headers\""), "{what} never reached the upstream: {response}");
    }
    let connect = raw(gw.addr, b"CONNECT /public/x HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").await;
    assert!(connect.to_ascii_lowercase().contains("allow: get, head, post"), "{connect}");
    let reply = gw.get("/public/x", &[]).await;
    assert_eq!(reply.seen_path(), "/public/x", "origin-form requests still pass");
}

#[tokio::test]
async fn hosts_the_upstream_could_read_differently_are_refused() {
    let (gw, _jwks) = standard().await;
    for host in ["t:80:81", "t:x", "t:", "t:123456", "user@t", "[::1", "t\\x", "a..b", "t:0080", ""] {
        let response =
            raw(gw.addr, format!("GET /public/x HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes())
                .await;
        assert_eq!(raw_status(&response), 400, "{host}: {response}");
        assert!(response.contains("invalid-host"), "{host}: {response}");
    }
    for head in ["GET /public/x HTTP/1.1\r\n", "GET /public/x HTTP/1.0\r\n"] {
        let response = raw(gw.addr, format!("{head}Connection: close\r\n\r\n").as_bytes()).await;
        assert_eq!(raw_status(&response), 400, "no Host: {response}");
        assert!(response.contains("missing-host"), "{response}");
    }
    for host in ["t", "t:8080", "127.0.0.1:9", "[::1]:8080", "app.example.com", "app.example.com."] {
        let response =
            raw(gw.addr, format!("GET /public/x HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes())
                .await;
        assert_eq!(raw_status(&response), 200, "{host}: {response}");
    }
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build(hyper_util::client::legacy::connect::HttpConnector::new());
    let h2 = |host: &str| {
        Request::get(format!("http://{}/public/x", gw.addr)).header("host", host).body(Full::new(Bytes::new())).unwrap()
    };
    let mismatched = client.request(h2("elsewhere.test")).await.unwrap();
    assert_eq!(mismatched.status(), 400, "an HTTP/2 Host that is not :authority");
    let same = client.request(h2(&gw.addr.to_string())).await.unwrap();
    assert_eq!(same.status(), 200, "a Host equal to :authority is fine");
}

#[tokio::test]
async fn two_host_headers_are_refused() {
    let (gw, _jwks) = standard().await;
    let reply = gw.get("/public/x", &[("host", "other.test")]).await;
    assert_eq!((reply.status, reply.reason().as_str()), (400, "duplicate-host"));
}

#[tokio::test]
async fn hop_by_hop_headers_are_removed_both_ways() {
    let (gw, _jwks) = standard().await;
    let reply = gw
        .get(
            "/public/hop",
            &[
                ("connection", "keep-alive, X-Private"),
                ("x-private", "1"),
                ("keep-alive", "timeout=9"),
                ("te", "gzip"),
                ("proxy-authorization", "Basic eA=="),
                ("proxy-connection", "keep-alive"),
                ("x-kept", "1"),
            ],
        )
        .await;
    assert_eq!(reply.status, 200);
    for name in ["x-private", "keep-alive", "te", "proxy-authorization", "proxy-connection"] {
        assert_eq!(reply.seen(name), None, "{name} reached the upstream");
    }
    assert_eq!(reply.seen("x-kept").as_deref(), Some("1"));
    assert_eq!(reply.header("x-up-secret"), None, "listed in the upstream's Connection header");
    assert_eq!(reply.header("keep-alive"), None);
    assert_eq!(reply.header("proxy-authenticate"), None);
    assert_eq!(reply.header("x-up-visible"), Some("1"));
}

#[tokio::test]
async fn connection_cannot_remove_the_headers_the_gateway_sets() {
    let (gw, _jwks) = standard().await;
    let token = key_a().token(&claims());
    let reply = gw
        .get(
            "/api/x",
            &[
                ("authorization", &format!("Bearer {token}")),
                ("connection", "X-User-Id, X-Auth-Status, X-Forwarded-For"),
            ],
        )
        .await;
    assert_eq!(reply.seen("x-user-id").as_deref(), Some("user_alice"));
    assert_eq!(reply.seen("x-auth-status").as_deref(), Some("signed-in"));
    assert_eq!(reply.seen("x-forwarded-for").as_deref(), Some("127.0.0.1"));
}

#[tokio::test]
async fn forwarded_headers_are_set_and_client_values_replaced() {
    let (gw, _jwks) = standard().await;
    let reply = gw
        .get(
            "/public/x",
            &[
                ("x-forwarded-for", "6.6.6.6"),
                ("x-forwarded-host", "evil.com"),
                ("x-request-id", "client-chosen"),
                ("forwarded", "for=6.6.6.6"),
            ],
        )
        .await;
    assert_eq!(reply.seen("x-forwarded-for").as_deref(), Some("127.0.0.1"));
    assert_eq!(reply.seen("x-forwarded-proto").as_deref(), Some("http"));
    assert_eq!(reply.seen("x-forwarded-host").as_deref(), Some("gateway.test"));
    assert_eq!(reply.seen("forwarded"), None);
    assert_eq!(reply.seen("host").as_deref(), Some("gateway.test"), "the client's Host is kept");
    let id = reply.seen("x-request-id").unwrap();
    assert_ne!(id, "client-chosen");
    assert_eq!(reply.header("x-request-id"), Some(id.as_str()));
}

/// Forwarding claims a framework would believe: where the request came from, which URL it was.
const FORWARDING_CLAIMS: [(&str, &str); 8] = [
    ("x-forwarded-port", "8443"),
    ("x-forwarded-prefix", "/evil"),
    ("x-forwarded-ssl", "on"),
    ("X_Forwarded_Prefix", "/evil"),
    ("x-original-url", "/admin"),
    ("x-rewrite-url", "/admin"),
    ("x-real-ip", "6.6.6.6"),
    ("true-client-ip", "6.6.6.6"),
];

#[tokio::test]
async fn an_untrusted_client_cannot_make_any_forwarding_claim() {
    let (gw, _jwks) = standard().await;
    let reply = gw.get("/public/x", &FORWARDING_CLAIMS).await;
    assert_eq!(reply.status, 200);
    for (name, _) in FORWARDING_CLAIMS {
        assert_eq!(reply.seen(name), None, "{name} reached the upstream");
    }
    assert_eq!(reply.seen("x-forwarded-for").as_deref(), Some("127.0.0.1"));
    assert_eq!(reply.seen("x-forwarded-proto").as_deref(), Some("http"));
    assert_eq!(reply.seen("x-forwarded-host").as_deref(), Some("gateway.test"));

    let jwks = FakeJwks::with_key_a().await;
    let upstream = spawn_upstream().await;
    let trusting = TestConfig::standard(&jwks, upstream).server("trusted_proxies", strings(&["127.0.0.0/8"]));
    let gw = TestGateway::start(&trusting).await;
    let reply = gw.get("/public/x", &FORWARDING_CLAIMS).await;
    assert_eq!(reply.seen("x-forwarded-prefix").as_deref(), Some("/evil"), "a trusted proxy's claims pass");
    assert_eq!(reply.seen("x-real-ip").as_deref(), Some("6.6.6.6"));
}

#[tokio::test]
async fn trusted_proxies_extend_the_chain_and_keep_the_request_id() {
    let jwks = FakeJwks::with_key_a().await;
    let upstream = spawn_upstream().await;
    let config = TestConfig::standard(&jwks, upstream).server("trusted_proxies", strings(&["127.0.0.0/8"]));
    let gw = TestGateway::start(&config).await;
    let reply = gw
        .get(
            "/public/x",
            &[
                ("x-forwarded-for", "203.0.113.7"),
                ("x-forwarded-proto", "https"),
                ("x-forwarded-host", "app.example.com"),
                ("x-request-id", "abc-123"),
            ],
        )
        .await;
    assert_eq!(reply.seen("x-forwarded-for").as_deref(), Some("203.0.113.7, 127.0.0.1"));
    assert_eq!(reply.seen("x-forwarded-proto").as_deref(), Some("https"));
    assert_eq!(reply.seen("x-forwarded-host").as_deref(), Some("app.example.com"));
    assert_eq!(reply.seen("x-request-id").as_deref(), Some("abc-123"));
}

#[tokio::test]
async fn routing_prefix_methods_and_strip_prefix() {
    let (gw, _jwks) = standard().await;
    let reply = gw.get("/nowhere", &[]).await;
    assert_eq!((reply.status, reply.json()), (404, json!({"error": "not_found"})));
    assert_eq!(gw.get("/publicity", &[]).await.status, 404, "prefixes end at a segment");
    assert_eq!(gw.get("/public", &[]).await.status, 200);
    let reply = gw.get("/stripped/users/7?x=1", &[]).await;
    assert_eq!(reply.seen_path(), "/base/users/7?x=1");
    assert_eq!(gw.get("/posts/1", &[]).await.status, 404, "GET is not routed to a POST-only route");
    let post = Request::post("/posts/1").header("host", "t").body(Full::new(Bytes::from_static(b"hi"))).unwrap();
    let reply = send(gw.addr, post).await;
    assert_eq!((reply.status, reply.json()["body_len"].as_i64()), (200, Some(2)));
}

#[tokio::test]
async fn require_rules_answer_403_naming_the_rule() {
    let (gw, _jwks) = standard().await;
    let member = key_a().token(&claims());
    let reply = gw.get_with_token("/admin/x", &member).await;
    assert_eq!((reply.status, reply.json()), (403, json!({"error": "forbidden", "rule": "org_role"})));
    let reply = gw.get_with_token("/billing/x", &member).await;
    assert_eq!((reply.status, reply.json()), (403, json!({"error": "forbidden", "rule": "permission"})));
    let admin = key_a().token(&org_claims());
    assert_eq!(gw.get_with_token("/admin/x", &admin).await.status, 200);
    assert_eq!(gw.get_with_token("/billing/x", &admin).await.status, 200);
}

#[tokio::test]
async fn browsers_are_sent_to_sign_in_and_apis_get_401() {
    let (gw, _jwks) = standard().await;
    let reply = gw.get("/api/page?tab=1", &[("accept", "text/html,application/xhtml+xml")]).await;
    assert_eq!(reply.status, 307);
    assert_eq!(
        reply.header("location"),
        Some("https://accounts.example.com/sign-in?redirect_url=http%3A%2F%2Fgateway.test%2Fapi%2Fpage%3Ftab%3D1")
    );
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    let reply = gw.get("/api/page", &[("sec-fetch-dest", "document")]).await;
    assert_eq!(reply.status, 307);
    for headers in
        [vec![("accept", "application/json")], vec![("sec-fetch-dest", "empty"), ("accept", "text/html")], vec![]]
    {
        let reply = gw.get("/api/page", &headers).await;
        assert_eq!((reply.status, reply.reason().as_str()), (401, "session-token-and-uat-missing"), "{headers:?}");
    }
}

#[tokio::test]
async fn an_unreachable_upstream_is_502_and_a_slow_one_504() {
    let jwks = FakeJwks::with_key_a().await;
    let upstream = spawn_upstream().await;
    let dead = closed_port().await;
    let config =
        TestConfig::standard(&jwks, upstream).route(TestRoute::new("/dead/", &format!("http://{dead}")).auth("public"));
    let gw = TestGateway::start(&config).await;
    let reply = gw.get("/dead/x", &[]).await;
    assert_eq!((reply.status, reply.json()), (502, json!({"error": "bad_gateway"})));
    let reply = gw.get("/slow/x?ms=3000", &[]).await;
    assert_eq!((reply.status, reply.json()), (504, json!({"error": "gateway_timeout"})));
    assert_eq!(gw.get("/slow/x?ms=1", &[]).await.status, 200);
    let metrics = gw.metrics().await;
    assert!(metrics.contains(r#"clerk_gateway_requests_total{route="/dead/",status="502"} 1"#), "{metrics}");
    assert!(metrics.contains(r#"clerk_gateway_requests_total{route="/slow/",status="504"} 1"#));
}

#[tokio::test]
async fn bodies_stream_through_and_limits_answer_413() {
    let (gw, _jwks) = standard().await;
    let big = Bytes::from(vec![b'x'; 8 * 1024 * 1024]);
    let post = Request::post("/public/echo").header("host", "t").body(Full::new(big)).unwrap();
    let reply = send(gw.addr, post).await;
    assert_eq!((reply.status, reply.json()["body_len"].as_i64()), (200, Some(8 * 1024 * 1024)));
    let small = Request::post("/upload/x").header("host", "t").body(Full::new(Bytes::from(vec![0u8; 1024]))).unwrap();
    assert_eq!(send(gw.addr, small).await.status, 200);
    let declared = "POST /upload/x HTTP/1.1\r\nHost: t\r\nContent-Length: 1025\r\nConnection: close\r\n\r\n";
    assert_eq!(raw_status(&raw(gw.addr, declared.as_bytes()).await), 413, "decided on the declared length");
    let chunked = format!(
        "POST /upload/x HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n800\r\n{}\r\n0\r\n\r\n",
        "y".repeat(0x800)
    );
    assert_eq!(raw_status(&raw(gw.addr, chunked.as_bytes()).await), 413);
}

#[tokio::test]
async fn http2_clients_are_served() {
    let (gw, _jwks) = standard().await;
    let client = reqwest::Client::builder().no_proxy().http2_prior_knowledge().build().unwrap();
    let token = key_a().token(&claims());
    let response = client.get(format!("http://{}/api/h2", gw.addr)).bearer_auth(&token).send().await.unwrap();
    assert_eq!(response.version(), http::Version::HTTP_2);
    assert_eq!(response.status(), 200);
    let echo: serde_json::Value = response.json().await.unwrap();
    assert_eq!(echo["headers"]["x-user-id"][0], "user_alice");
    assert_eq!(echo["version"], "HTTP/1.1", "upstreams are spoken to in HTTP/1.1");
    assert_eq!(echo["headers"]["host"][0], gw.addr.to_string(), ":authority becomes Host");
}

#[tokio::test]
async fn tls_is_terminated_with_alpn() {
    let jwks = FakeJwks::with_key_a().await;
    let upstream = spawn_upstream().await;
    let dir = format!("{}/tests/fixtures", env!("CARGO_MANIFEST_DIR"));
    let config = TestConfig::standard(&jwks, upstream)
        .server("tls_cert", format!("{dir}/tls.crt"))
        .server("tls_key", format!("{dir}/tls.key"));
    let gw = TestGateway::start(&config).await;
    let ca = reqwest::Certificate::from_pem(fixture("tls_ca.crt").as_bytes()).unwrap();
    let client =
        reqwest::Client::builder().no_proxy().tls_certs_only([ca]).resolve("localhost", gw.addr).build().unwrap();
    let url = format!("https://localhost:{}/api/tls", gw.addr.port());
    let response = client.get(&url).bearer_auth(key_a().token(&claims())).send().await.unwrap();
    assert_eq!(response.version(), http::Version::HTTP_2, "ALPN negotiated h2");
    let echo: serde_json::Value = response.json().await.unwrap();
    assert_eq!(echo["headers"]["x-forwarded-proto"][0], "https");
    assert_eq!(echo["headers"]["x-user-id"][0], "user_alice");
}

#[tokio::test]
async fn upgrades_are_spliced_after_authentication() {
    let (gw, _jwks) = standard().await;
    let token = key_a().token(&claims());
    let request = format!(
        "GET /api/ws HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nAuthorization: Bearer {token}\r\n\r\n"
    );
    let mut stream = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    check_tunnel(&mut stream, &request, "hello user_alice\n").await;

    let unauthenticated =
        "GET /api/ws HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nConnection: close\r\n\r\n";
    assert_eq!(raw_status(&raw(gw.addr, unauthenticated.as_bytes()).await), 401);
}

#[tokio::test]
async fn only_websocket_upgrades_pass() {
    let (gw, _jwks) = standard().await;
    let h2c = "GET /public/x HTTP/1.1\r\nHost: t\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n\
               HTTP2-Settings: AAMAAABkAAQAAP__\r\nConnection: close\r\n\r\n";
    let response = raw(gw.addr, h2c.as_bytes()).await;
    assert_eq!(raw_status(&response), 200, "served as a plain request");
    assert!(!response.contains("\"upgrade\""), "the upstream never saw an Upgrade header: {response}");
    let mismatched = "GET /public/wrong-upgrade HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
                      Connection: close\r\n\r\n";
    assert_eq!(raw_status(&raw(gw.addr, mismatched.as_bytes()).await), 502, "a 101 to another protocol");
}

#[tokio::test]
async fn http2_cookies_reach_the_upstream_as_one_header() {
    let (gw, _jwks) = standard().await;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build(hyper_util::client::legacy::connect::HttpConnector::new());
    let request = Request::get(format!("http://{}/public/c", gw.addr))
        .header("cookie", "a=1")
        .header("cookie", "b=2")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = client.request(request).await.unwrap();
    let body = http_body_util::BodyExt::collect(response.into_body()).await.unwrap().to_bytes();
    let echo: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(echo["headers"]["cookie"], json!(["a=1; b=2"]));
}
