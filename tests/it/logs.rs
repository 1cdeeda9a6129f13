//! Logs as an operator reads them: one flat JSON access line per request with who, where,
//! how long and how much; text without colour codes when stderr is not a terminal; and the
//! leak rule every log line of the suite is held to (`common::logs`).

use std::io::BufReader;
use std::process::Stdio;

use serde_json::Value;

use crate::common::*;

fn pem() -> String {
    format!("{}/tests/fixtures/rsa_a.pub.pem", env!("CARGO_MANIFEST_DIR"))
}

/// The next access line (JSON) in `running`'s log.
fn access_line(running: &Running) -> Value {
    serde_json::from_str(&running.wait_for_log("clerk_gateway::access")).unwrap()
}

#[tokio::test]
async fn each_request_has_one_flat_access_line_with_who_where_how_long_and_how_much() {
    let upstream = spawn_upstream().await;
    let config = TestConfig::new()
        .clerk("jwt_key_file", pem())
        .server("trusted_proxies", strings(&["127.0.0.1/32"]))
        .route(TestRoute::new("/api/", &format!("http://{upstream}")).set("name", "api"));
    let running = run_binary(&config, &[]).await;
    let token = key_a().token(&claims_now());
    let request = http::Request::post("/api/items?secret=query-value")
        .header("authorization", format!("Bearer {token}"))
        .header("x-forwarded-for", "203.0.113.7")
        .body(http_body_util::Full::new(bytes::Bytes::from_static(b"hello")))
        .unwrap();
    let reply = send(running.proxy, request).await;
    assert_eq!(reply.status, 200);

    let line = access_line(&running);
    assert!(line.get("fields").is_none(), "fields are at the top level: {line}");
    assert!(line["timestamp"].is_string(), "{line}");
    let text = |key: &str| line[key].as_str().unwrap_or_else(|| panic!("{key} in {line}")).to_owned();
    let number = |key: &str| line[key].as_u64().unwrap_or_else(|| panic!("{key} as an integer in {line}"));
    assert_eq!(text("method"), "POST");
    assert_eq!(text("path"), "/api/items", "no query string");
    assert_eq!(text("route"), "api", "the route's name");
    assert_eq!(number("status"), 200);
    assert!(number("upstream_us") <= number("duration_us"), "{line}");
    assert_eq!(number("bytes_in"), 5);
    assert_eq!(number("bytes_out"), reply.body.len() as u64);
    assert_eq!(text("client"), "203.0.113.7", "a trusted proxy names the client");
    assert_eq!(text("user_id"), "user_alice");
    assert_eq!(text("session_id"), "sess_1");
    assert_eq!(text("request_id"), reply.header("x-request-id").unwrap());
    assert_eq!((text("auth"), text("reason")), ("signed-in".to_owned(), "-".to_owned()));

    let reply = send(running.proxy, get_request("/api/x", &[("x-forwarded-for", "203.0.113.8")])).await;
    assert_eq!(reply.status, 401);
    let line = access_line(&running);
    assert_eq!(line["auth"], "signed-out");
    assert_eq!(line["reason"].as_str(), Some(reply.reason().as_str()), "{line}");
    assert!(line.get("user_id").is_none() && line.get("upstream_us").is_none(), "{line}");
    assert_eq!(line["bytes_out"].as_u64(), Some(reply.body.len() as u64));
    assert_eq!(line["route"], "api");
    assert_eq!(running.stop().await, Some(0));
}

#[tokio::test]
async fn an_untrusted_peer_cannot_name_the_client() {
    let upstream = spawn_upstream().await;
    let config = TestConfig::new()
        .clerk("jwt_key_file", pem())
        .route(TestRoute::new("/", &format!("http://{upstream}")).auth("public"));
    let running = run_binary(&config, &[]).await;
    send(running.proxy, get_request("/", &[("x-forwarded-for", "203.0.113.7")])).await;
    let line = access_line(&running);
    assert_eq!(line["client"], "127.0.0.1", "{line}");
    assert_eq!(line["route"], "/", "a route without a name is its path");
    assert_eq!(running.stop().await, Some(0));
}

#[tokio::test]
async fn text_logs_into_a_pipe_carry_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.toml");
    let config = TestConfig::new()
        .clerk("jwt_key_file", pem())
        .mirror("path", dir.path().join("m.db").display().to_string())
        .route(TestRoute::new("/", "http://127.0.0.1:1").auth("public"));
    std::fs::write(&path, config.to_toml()).unwrap();
    let mut child = gateway(&["run", "-c", path.to_str().unwrap()]).stderr(Stdio::piped()).spawn().unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let lines = tokio::task::spawn_blocking(move || read_until(&mut stderr, |l| l.contains("clerk-gateway listening")))
        .await
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let text = lines.concat();
    assert!(text.contains(" INFO "), "{text}");
    assert!(!text.contains('\u{1b}'), "no ANSI escape codes when stderr is a pipe: {text:?}");
}

#[test]
fn the_leak_rule_catches_tokens_cookies_keys_and_query_strings() {
    let token = key_a().token(&claims());
    for line in [
        format!("{{\"message\":\"x\",\"auth\":\"Bearer {token}\"}}"),
        format!("cookie __session={token}"),
        "secret sk_test_abc".to_owned(),
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_owned(),
        "-----BEGIN PRIVATE KEY-----".to_owned(),
        r#"{"message":"request","path":"/a?token=x"}"#.to_owned(),
    ] {
        assert!(logs::leak(&line).is_some(), "not caught: {line}");
    }
    let clean = r#"{"message":"request","path":"/api/items","user_id":"user_alice","auth":"signed-in"}"#;
    assert_eq!(logs::leak(clean), None);
}
