//! Clerk webhooks through the real gateway: verification failures change nothing, users
//! reach the next request's headers, updates apply in order and once, deletions and
//! revocations take effect at once, concurrency loses nothing, a restart keeps everything.

use std::net::SocketAddr;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use serde_json::{Value, json};

use crate::common::*;

async fn webhook_gateway() -> (TestGateway, FakeJwks, SocketAddr) {
    let jwks = FakeJwks::with_key_a().await;
    let upstream = spawn_upstream().await;
    let gw = TestGateway::start(&TestConfig::standard(&jwks, upstream).webhook(":memory:")).await;
    (gw, jwks, upstream)
}

fn post(headers: &[(&str, String)], body: Vec<u8>) -> Request<Full<Bytes>> {
    let mut builder = Request::post("/webhooks/clerk").header("host", "t");
    for (k, v) in headers {
        builder = builder.header(*k, v.as_str());
    }
    builder.body(Full::new(Bytes::from(body))).unwrap()
}

fn alice(updated_at: i64, name: &str) -> Value {
    event("user.updated", clerk_user("user_alice", name, updated_at, json!({"plan": "pro"})))
}

async fn mirror_users(gw: &TestGateway) -> f64 {
    gw.metric("clerk_gateway_mirror_users").await
}

#[tokio::test]
async fn deliveries_that_fail_verification_change_nothing() {
    let (gw, _jwks, _) = webhook_gateway().await;
    let body = event("user.created", clerk_user("user_alice", "A", 1, json!({}))).to_string().into_bytes();
    let sig = svix_signature(WEBHOOK_SECRET, "msg_1", NOW, &body);
    let ts = NOW.to_string();
    let wrong_secret = svix_signature("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD", "msg_1", NOW, &body);
    let cases: Vec<(Vec<(&str, String)>, &str)> = vec![
        (vec![("svix-timestamp", ts.clone()), ("svix-signature", sig.clone())], "missing-headers"),
        (vec![("svix-id", "msg_1".into()), ("svix-signature", sig.clone())], "missing-headers"),
        (vec![("svix-id", "msg_1".into()), ("svix-timestamp", ts.clone())], "missing-headers"),
        (
            vec![
                ("svix-id", "msg_1".into()),
                ("svix-timestamp", (NOW - 301).to_string()),
                ("svix-signature", svix_signature(WEBHOOK_SECRET, "msg_1", NOW - 301, &body)),
            ],
            "stale-timestamp",
        ),
        (
            vec![
                ("svix-id", "msg_1".into()),
                ("svix-timestamp", (NOW + 301).to_string()),
                ("svix-signature", svix_signature(WEBHOOK_SECRET, "msg_1", NOW + 301, &body)),
            ],
            "stale-timestamp",
        ),
        (
            vec![("svix-id", "msg_1".into()), ("svix-timestamp", ts.clone()), ("svix-signature", wrong_secret)],
            "invalid-signature",
        ),
        (
            vec![("svix-id", "msg_2".into()), ("svix-timestamp", ts.clone()), ("svix-signature", sig.clone())],
            "invalid-signature",
        ),
        (
            vec![("svix-id", "msg_1".into()), ("svix-timestamp", ts.clone()), ("svix-signature", "v1,AAAA".into())],
            "invalid-signature",
        ),
    ];
    for (headers, reason) in cases {
        let reply = send(gw.addr, post(&headers, body.clone())).await;
        assert_eq!((reply.status, reply.json()["reason"].as_str()), (400, Some(reason)), "{headers:?}");
    }
    let garbage = b"not json".to_vec();
    let signed_garbage = [
        ("svix-id", "msg_3".into()),
        ("svix-timestamp", ts.clone()),
        ("svix-signature", svix_signature(WEBHOOK_SECRET, "msg_3", NOW, &garbage)),
    ];
    let reply = send(gw.addr, post(&signed_garbage, garbage)).await;
    assert_eq!((reply.status, reply.json()["reason"].as_str()), (400, Some("invalid-payload")));
    let tampered = body.iter().map(|b| if *b == b'A' { b'B' } else { *b }).collect::<Vec<_>>();
    let reply = send(
        gw.addr,
        post(&[("svix-id", "msg_1".into()), ("svix-timestamp", ts.clone()), ("svix-signature", sig.clone())], tampered),
    )
    .await;
    assert_eq!(reply.json()["reason"], "invalid-signature", "the raw bytes are what is verified");

    assert_eq!(mirror_users(&gw).await, 0.0, "nothing was applied");
    let reply =
        send(gw.addr, post(&[("svix-id", "msg_1".into()), ("svix-timestamp", ts), ("svix-signature", sig)], body))
            .await;
    assert_eq!(reply.status, 200, "a good delivery with the same id as refused ones still applies");
    assert_eq!(mirror_users(&gw).await, 1.0);
}

#[tokio::test]
async fn methods_and_sizes() {
    let (gw, _jwks, _) = webhook_gateway().await;
    let reply = gw.get("/webhooks/clerk", &[]).await;
    assert_eq!((reply.status, reply.header("allow")), (405, Some("POST")));
    // Answered from the declared length alone: not one body byte is sent.
    let declared = "POST /webhooks/clerk HTTP/1.1\r\nHost: t\r\nContent-Length: 2097152\r\nConnection: close\r\n\r\n";
    assert_eq!(raw_status(&raw(gw.addr, declared.as_bytes()).await), 413);
    let chunked = format!(
        "POST /webhooks/clerk HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{}\r\n{:x}\r\n{}\r\n0\r\n\r\n",
        700 * 1024,
        "a".repeat(700 * 1024),
        700 * 1024,
        "b".repeat(700 * 1024)
    );
    assert_eq!(raw_status(&raw(gw.addr, chunked.as_bytes()).await), 413, "stops reading past 1 MiB without a length");
}

#[tokio::test]
async fn a_created_user_is_in_the_next_requests_headers() {
    let (gw, _jwks, _) = webhook_gateway().await;
    let token = key_a().token(&claims());
    let before = gw.get_with_token("/api/me", &token).await;
    assert_eq!(before.seen("x-user-email"), None);
    let reply = gw
        .deliver("msg_1", &event("user.created", clerk_user("user_alice", "Alice", 10, json!({"plan": "pro"}))))
        .await;
    assert_eq!((reply.status, reply.json()), (200, json!({"ok": true})));
    let after = gw.get_with_token("/api/me", &token).await;
    assert_eq!(after.seen("x-user-email").as_deref(), Some("alice@example.com"));
    assert_eq!(after.seen("x-user-metadata").as_deref(), Some(r#"{"plan":"pro"}"#));
    let profile: Value = serde_json::from_str(&after.seen("x-user").unwrap()).unwrap();
    assert_eq!(profile["first_name"], "Alice");
    assert_eq!(profile["email"], "alice@example.com");
    assert!(profile.get("private_metadata").is_none());
}

#[tokio::test]
async fn updates_apply_in_order_and_once() {
    let (gw, _jwks, _) = webhook_gateway().await;
    let token = key_a().token(&claims());
    assert_eq!(gw.deliver("msg_new", &alice(30, "Newest")).await.status, 200);
    assert_eq!(gw.deliver("msg_old", &alice(20, "Older")).await.status, 200, "acknowledged, not applied");
    let name = |r: &Reply| serde_json::from_str::<Value>(&r.seen("x-user").unwrap()).unwrap()["first_name"].clone();
    assert_eq!(name(&gw.get_with_token("/api/me", &token).await), "Newest");

    let again = gw.deliver("msg_new", &alice(30, "Newest")).await;
    assert_eq!(again.json(), json!({"ok": true, "duplicate": true}));
    let metrics = gw.metrics().await;
    assert!(
        metrics.contains(r#"clerk_gateway_webhook_events_total{type="user.updated",outcome="applied"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"clerk_gateway_webhook_events_total{type="user.updated",outcome="ignored"} 1"#));
    assert!(metrics.contains(r#"clerk_gateway_webhook_events_total{type="user.updated",outcome="duplicate"} 1"#));
}

#[tokio::test]
async fn a_deleted_user_stays_deleted() {
    let (gw, _jwks, _) = webhook_gateway().await;
    let token = key_a().token(&claims());
    gw.deliver("msg_1", &alice(10, "Alice")).await;
    let deleted = event("user.deleted", json!({"object": "user", "id": "user_alice", "deleted": true}));
    assert_eq!(gw.deliver("msg_2", &deleted).await.status, 200);
    assert_eq!(gw.get_with_token("/api/me", &token).await.seen("x-user-email"), None, "gone at once");
    assert_eq!(gw.deliver("msg_3", &alice(99, "Zombie")).await.status, 200);
    assert_eq!(gw.get_with_token("/api/me", &token).await.seen("x-user"), None, "a late update cannot resurrect");
    assert_eq!(mirror_users(&gw).await, 0.0);
}

#[tokio::test]
async fn a_revoked_session_is_signed_out_at_once() {
    let (gw, _jwks, _) = webhook_gateway().await;
    let token = key_a().token(&claims());
    assert_eq!(gw.get_with_token("/api/x", &token).await.status, 200);
    let revoked = event(
        "session.revoked",
        json!({"id": "sess_1", "object": "session", "user_id": "user_alice", "status": "revoked"}),
    );
    assert_eq!(gw.deliver("msg_r", &revoked).await.status, 200);
    let reply = gw.get_with_token("/api/x", &token).await;
    assert_eq!((reply.status, reply.reason().as_str()), (401, "session-revoked"), "the cached token too");
    let other_session = key_a().token(&claims_with("sid", json!("sess_2")));
    assert_eq!(gw.get_with_token("/api/x", &other_session).await.status, 200);
    let optional = gw.get_with_token("/optional/x", &token).await;
    assert_eq!(optional.seen("x-auth-status").as_deref(), Some("signed-out"));
}

#[tokio::test]
async fn unicode_names_and_metadata_become_ascii_headers() {
    let (gw, _jwks, _) = webhook_gateway().await;
    let mut user = clerk_user("user_alice", "Zoë 😀", 10, json!({"city": "東京", "quote": "\"hi\"\n"}));
    user["email_addresses"][0]["email_address"] = json!("zoë@exämple.com");
    gw.deliver("msg_1", &event("user.created", user)).await;
    let reply = gw.get_with_token("/api/me", &key_a().token(&claims())).await;
    assert_eq!(reply.seen("x-user-email").as_deref(), Some("zo\\u00eb@ex\\u00e4mple.com"));
    let metadata = reply.seen("x-user-metadata").unwrap();
    assert!(metadata.is_ascii());
    assert_eq!(serde_json::from_str::<Value>(&metadata).unwrap(), json!({"city": "東京", "quote": "\"hi\"\n"}));
    let profile: Value = serde_json::from_str(&reply.seen("x-user").unwrap()).unwrap();
    assert_eq!(profile["first_name"], "Zoë 😀");
}

#[tokio::test]
async fn metadata_rules_read_the_mirror() {
    let jwks = FakeJwks::with_key_a().await;
    let upstream = spawn_upstream().await;
    let plan = toml::Table::from_iter([("plan".to_owned(), toml::Value::from("pro"))]);
    let config = TestConfig::standard(&jwks, upstream)
        .webhook(":memory:")
        .route(TestRoute::new("/pro/", &format!("http://{upstream}")).require("metadata", plan));
    let gw = TestGateway::start(&config).await;
    let token = key_a().token(&claims());
    let reply = gw.get_with_token("/pro/x", &token).await;
    assert_eq!((reply.status, reply.json()["rule"].as_str()), (403, Some("metadata")), "unknown user: closed");
    gw.deliver("msg_1", &event("user.created", clerk_user("user_alice", "A", 1, json!({"plan": "free"})))).await;
    assert_eq!(gw.get_with_token("/pro/x", &token).await.status, 403);
    gw.deliver("msg_2", &event("user.updated", clerk_user("user_alice", "A", 2, json!({"plan": "pro", "seats": 3}))))
        .await;
    assert_eq!(gw.get_with_token("/pro/x", &token).await.status, 200);
}

#[tokio::test]
async fn concurrent_deliveries_lose_nothing_and_apply_nothing_twice() {
    let (gw, _jwks, _) = webhook_gateway().await;
    // 250 users, each created and then updated: 500 deliveries, sent by 8 clients, every
    // delivery sent twice (Svix retries) by two different clients.
    let deliveries: Vec<(String, Value)> = (0..250)
        .flat_map(|i| {
            let id = format!("user_{i:03}");
            [
                (format!("msg_c{i}"), event("user.created", clerk_user(&id, "created", 10, json!({"n": i})))),
                (format!("msg_u{i}"), event("user.updated", clerk_user(&id, "updated", 20, json!({"n": i})))),
            ]
        })
        .collect();
    let gw = &gw;
    let clients = (0..8).map(|client| {
        let mine: Vec<_> =
            deliveries.iter().enumerate().filter(|(i, _)| i % 4 == client % 4).map(|(_, d)| d.clone()).collect();
        async move {
            let mut statuses = Vec::new();
            let order: Box<dyn Iterator<Item = &(String, Value)>> =
                if client < 4 { Box::new(mine.iter()) } else { Box::new(mine.iter().rev()) };
            for (id, event) in order {
                statuses.push(gw.deliver(id, event).await.status);
            }
            statuses
        }
    });
    let statuses: Vec<u16> = futures_util::future::join_all(clients).await.into_iter().flatten().collect();
    assert_eq!(statuses.len(), 1000);
    assert!(statuses.iter().all(|s| *s == 200), "every delivery acknowledged");
    assert_eq!(mirror_users(gw).await, 250.0, "nothing lost");
    let scrape = gw.scrape().await;
    let value = |series: &str| scrape.value(series);
    let applied = value(r#"clerk_gateway_webhook_events_total{type="user.created",outcome="applied"}"#)
        + value(r#"clerk_gateway_webhook_events_total{type="user.updated",outcome="applied"}"#)
        + value(r#"clerk_gateway_webhook_events_total{type="user.created",outcome="ignored"}"#);
    let duplicates = value(r#"clerk_gateway_webhook_events_total{type="user.created",outcome="duplicate"}"#)
        + value(r#"clerk_gateway_webhook_events_total{type="user.updated",outcome="duplicate"}"#);
    assert_eq!((applied, duplicates), (500.0, 500.0), "each delivery applied exactly once");
    for i in [0, 127, 249] {
        let token = key_a().token(&claims_with("sub", json!(format!("user_{i:03}"))));
        let profile: Value =
            serde_json::from_str(&gw.get_with_token("/api/x", &token).await.seen("x-user").unwrap()).unwrap();
        assert_eq!(profile["first_name"], "updated", "user_{i:03}: the newer version wins whatever the order");
    }
}

#[tokio::test]
async fn a_restart_keeps_users_revocations_and_delivery_ids() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mirror.db").display().to_string();
    let jwks = FakeJwks::with_key_a().await;
    let upstream = spawn_upstream().await;
    let config = TestConfig::standard(&jwks, upstream).webhook(&path);
    let token = key_a().token(&claims());
    let mut first = TestGateway::start(&config).await;
    first.deliver("msg_1", &alice(10, "Alice")).await;
    let revoked = event("session.revoked", json!({"id": "sess_1", "user_id": "user_alice", "status": "revoked"}));
    first.deliver("msg_2", &revoked).await;
    first.trigger_shutdown();
    first.stopped().await.unwrap();

    let second = TestGateway::start(&config).await;
    assert_eq!(second.get_with_token("/api/x", &token).await.reason(), "session-revoked");
    let other = key_a().token(&claims_with("sid", json!("sess_9")));
    assert_eq!(
        second.get_with_token("/api/x", &other).await.seen("x-user-email").as_deref(),
        Some("alice@example.com")
    );
    assert_eq!(second.deliver("msg_1", &alice(10, "Alice")).await.json()["duplicate"], true);
}

#[tokio::test]
async fn a_user_seen_in_the_last_minute_costs_no_disk_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mirror.db").display().to_string();
    let jwks = FakeJwks::with_key_a().await;
    let upstream = spawn_upstream().await;
    let config = TestConfig::standard(&jwks, upstream).webhook(&path);
    let mut writer = TestGateway::start(&config).await;
    writer.deliver("msg_1", &alice(10, "Alice")).await;
    writer.trigger_shutdown();
    writer.stopped().await.unwrap();

    let gw = TestGateway::start(&config).await;
    let token = key_a().token(&claims_with("exp", json!(NOW + 3600)));
    for second in 0..5 {
        gw.clock.set_ms(NOW_MS + second * 15_000);
        let reply = gw.get_with_token("/api/x", &token).await;
        assert_eq!(reply.seen("x-user-email").as_deref(), Some("alice@example.com"));
    }
    assert_eq!(gw.metric(r#"clerk_gateway_user_lookups_total{source="mirror"}"#).await, 1.0, "one SQLite read");
    assert_eq!(
        gw.metric(r#"clerk_gateway_user_lookups_total{source="memory"}"#).await,
        4.0,
        "then memory for a minute"
    );
}

#[tokio::test]
async fn revocations_expire_after_their_retention() {
    let (gw, _jwks, _) = webhook_gateway().await;
    let long_lived = key_a().token(&claims_with("exp", json!(NOW + 3 * 86_400)));
    let revoked = event("session.ended", json!({"id": "sess_1", "user_id": "user_alice", "status": "ended"}));
    gw.deliver("msg_e", &revoked).await;
    assert_eq!(gw.get_with_token("/api/x", &long_lived).await.reason(), "session-revoked");
    gw.clock.advance(std::time::Duration::from_secs(23 * 3600));
    assert_eq!(gw.get_with_token("/api/x", &long_lived).await.reason(), "session-revoked");
    gw.clock.advance(std::time::Duration::from_secs(3600));
    assert_eq!(gw.get_with_token("/api/x", &long_lived).await.status, 200, "24 h later the entry is gone");
}

#[tokio::test]
async fn unknown_event_types_are_acknowledged() {
    let (gw, _jwks, _) = webhook_gateway().await;
    let reply = gw.deliver("msg_x", &event("email.created", json!({"id": "ema_1", "object": "email"}))).await;
    assert_eq!((reply.status, reply.json()), (200, json!({"ok": true})));
    let metrics = gw.metrics().await;
    assert!(
        metrics.contains(r#"clerk_gateway_webhook_events_total{type="other",outcome="not-mirrored"} 1"#),
        "{metrics}"
    );
    let memberships = event(
        "organizationMembership.created",
        json!({"id": "orgmem_1", "role": "org:admin", "permissions": [], "public_metadata": {},
               "organization": {"id": "org_1"}, "public_user_data": {"user_id": "user_alice"}, "updated_at": 1}),
    );
    assert_eq!(gw.deliver("msg_m", &memberships).await.status, 200);
}
