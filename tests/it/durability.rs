//! Nothing acknowledged is lost: a delivery gets 200 only once it is committed to the file
//! the gateway opened. When the file is deleted or replaced under the gateway, or the
//! database cannot be written, deliveries are answered 5xx (Svix retries them), revocations
//! still take effect in memory at once, and `/readyz` turns 503 saying why.

use serde_json::{Value, json};

use crate::common::*;

fn revoked(session: &str) -> Value {
    event("session.revoked", json!({"id": session, "object": "session", "user_id": "user_alice", "status": "revoked"}))
}

/// A gateway on a file mirror in `dir`, that file's path, its config (for restarts) and
/// the fake JWKS the config names.
async fn file_gateway(dir: &tempfile::TempDir) -> (TestGateway, String, TestConfig, FakeJwks) {
    let path = dir.path().join("mirror.db").display().to_string();
    let jwks = FakeJwks::with_key_a().await;
    let upstream = spawn_upstream().await;
    let config = TestConfig::standard(&jwks, upstream).webhook(&path);
    (TestGateway::start(&config).await, path, config, jwks)
}

/// Stops a gateway the way SIGTERM would.
async fn stop(mut gw: TestGateway) {
    gw.trigger_shutdown();
    gw.stopped().await.unwrap();
}

/// Polls `/readyz` until it is 503 and its body mentions `text`; returns that body.
async fn wait_unready(gw: &TestGateway, text: &str) -> String {
    let mut body = String::new();
    eventually(&format!("/readyz 503 mentioning {text:?}"), async || {
        let readyz = gw.admin_get("/readyz").await;
        body = String::from_utf8_lossy(&readyz.body).into_owned();
        readyz.status == 503 && body.contains(text)
    })
    .await;
    body
}

#[tokio::test]
async fn a_deleted_database_file_acknowledges_nothing_and_loses_no_revocation() {
    let dir = tempfile::tempdir().unwrap();
    let (gw, path, config, _jwks) = file_gateway(&dir).await;
    let token = key_a().token(&claims());
    let alice = event("user.created", clerk_user("user_alice", "Alice", 1, json!({})));
    assert_eq!(gw.deliver("msg_before", &alice).await.status, 200);
    assert_eq!(gw.get_with_token("/api/x", &token).await.status, 200);

    std::fs::remove_file(&path).unwrap();
    let reply = gw.deliver("msg_revoke", &revoked("sess_1")).await;
    assert_eq!((reply.status, reply.json()), (500, json!({"error": "internal"})), "not acknowledged: Svix retries");
    let reply = gw.get_with_token("/api/x", &token).await;
    assert_eq!((reply.status, reply.reason().as_str()), (401, "session-revoked"), "the revocation holds in memory");
    let body = wait_unready(&gw, "deleted").await;
    assert!(body.contains("mirror: not writable"), "{body}");
    let later = event("user.updated", clerk_user("user_alice", "Later", 2, json!({})));
    assert_eq!(gw.deliver("msg_later", &later).await.status, 500, "every later write is refused too");
    stop(gw).await;

    // After a restart Svix delivers the refused revocation again, and it sticks.
    let restarted = TestGateway::start(&config).await;
    assert_eq!(restarted.deliver("msg_revoke", &revoked("sess_1")).await.json(), json!({"ok": true}));
    let reply = restarted.get_with_token("/api/x", &token).await;
    assert_eq!(reply.reason(), "session-revoked", "no revocation was lost");
    stop(restarted).await;
    let again = TestGateway::start(&config).await;
    assert_eq!(again.get_with_token("/api/x", &token).await.reason(), "session-revoked", "it is on disk");
}

#[tokio::test]
async fn a_replaced_database_file_acknowledges_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (gw, path, _config, _jwks) = file_gateway(&dir).await;
    let other = dir.path().join("other.db");
    std::fs::write(&other, b"").unwrap();
    std::fs::rename(&other, &path).unwrap();
    assert_eq!(gw.deliver("msg_1", &revoked("sess_1")).await.status, 500);
    assert_eq!(gw.get_with_token("/api/x", &key_a().token(&claims())).await.reason(), "session-revoked");
    wait_unready(&gw, "replaced").await;
}

#[tokio::test]
async fn a_deleted_write_ahead_log_acknowledges_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (gw, path, _config, _jwks) = file_gateway(&dir).await;
    let alice = event("user.created", clerk_user("user_alice", "Alice", 1, json!({})));
    assert_eq!(gw.deliver("msg_before", &alice).await.status, 200);
    std::fs::remove_file(format!("{path}-wal")).unwrap();
    assert_eq!(gw.deliver("msg_revoke", &revoked("sess_1")).await.status, 500, "its commits would be lost");
    assert_eq!(gw.get_with_token("/api/x", &key_a().token(&claims())).await.reason(), "session-revoked");
    wait_unready(&gw, "write-ahead log").await;
}

#[tokio::test]
async fn a_locked_database_answers_5xx_and_the_revocation_still_holds() {
    let dir = tempfile::tempdir().unwrap();
    let (gw, path, config, _jwks) = file_gateway(&dir).await;
    let token = key_a().token(&claims());
    let lock = rusqlite::Connection::open(&path).unwrap();
    lock.execute_batch("BEGIN EXCLUSIVE").unwrap();

    let reply = gw.deliver("msg_revoke", &revoked("sess_1")).await;
    assert_eq!(reply.status, 500, "the write waited out busy_timeout and failed");
    let reply = gw.get_with_token("/api/x", &token).await;
    assert_eq!((reply.status, reply.reason().as_str()), (401, "session-revoked"), "the revocation holds in memory");
    wait_unready(&gw, "not writable").await;

    lock.execute_batch("ROLLBACK").unwrap();
    drop(lock);
    gw.wait_ready().await;
    let retried = gw.deliver("msg_revoke", &revoked("sess_1")).await;
    assert_eq!(retried.json(), json!({"ok": true}), "the retry is applied, not a duplicate");
    stop(gw).await;
    let restarted = TestGateway::start(&config).await;
    assert_eq!(restarted.get_with_token("/api/x", &token).await.reason(), "session-revoked", "and survives a restart");
}

#[tokio::test]
async fn a_logout_revokes_in_memory_even_when_the_mirror_cannot_store_it() {
    let dir = tempfile::tempdir().unwrap();
    let (gw, path, _config, _jwks) = file_gateway(&dir).await;
    let token = key_a().token(&claims());
    std::fs::remove_file(&path).unwrap();
    let logout = http::Request::post("/auth/logout")
        .header("host", "gateway.test")
        .header("authorization", format!("Bearer {token}"))
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    assert_eq!(send(gw.addr, logout).await.status, 204);
    assert_eq!(gw.get_with_token("/api/x", &token).await.reason(), "session-revoked");
}
