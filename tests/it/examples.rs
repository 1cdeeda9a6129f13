//! The examples end to end: `examples/fastapi` (uvicorn) and `examples/express` (node), each
//! the real app server on loopback behind the real gateway binary running the example's own
//! `gateway.toml`, with tokens minted here: signed in, signed out, a spoofed header, a
//! webhook-created user's email reaching the app, the admin route refused for a member;
//! for Express also server-sent events and a WebSocket through the gateway.
//!
//! Needs the venv Python with the FastAPI example's requirements and node with the Express
//! example's `npm ci` (`.ci/run` installs both and sets `CI_REQUIRE_EXAMPLES=1`); elsewhere a
//! missing one is reported as skipped.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::*;

const APP_ORIGIN: &str = "http://localhost:3000";

fn example(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples").join(name)
}

/// Whether a tool the example needs is there; a skip is only allowed outside CI.
fn available(what: &str, ok: bool) -> bool {
    if !ok {
        assert!(std::env::var_os("CI_REQUIRE_EXAMPLES").is_none(), "CI_REQUIRE_EXAMPLES is set but {what} is missing");
        eprintln!("SKIPPED: {what} is missing; .ci/run installs it");
    }
    ok
}

/// A loopback address for the gateway's admin listener, free now, chosen before the app
/// starts: the app is told where the gateway's JWKS will be.
fn admin_address() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

/// The gateway's JWKS URL on `admin`, for the app to check assertions against.
fn jwks_url(admin: SocketAddr) -> String {
    format!("http://{admin}/.well-known/jwks.json")
}

/// The gateway binary on the example's own `gateway.toml`, in front of `app`, with its
/// admin listener on `admin`.
async fn gateway_for(name: &str, app: &ChildServer, admin: SocketAddr) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let mirror = dir.path().join("mirror.db").display().to_string();
    let upstream = format!("http://{}", app.addr);
    let key = fixture_path("rsa_a.pub.pem");
    let env = [
        ("APP_UPSTREAM", upstream.as_str()),
        ("CLERK_WEBHOOK_SIGNING_SECRET", WEBHOOK_SECRET),
        ("CLERK_GATEWAY_CLERK_JWT_KEY_FILE", key.as_str()),
        ("CLERK_GATEWAY_SERVER_LISTEN", "127.0.0.1:0"),
        ("CLERK_GATEWAY_SERVER_DRAIN_DELAY", "0s"),
        ("CLERK_GATEWAY_ADMIN_LISTEN", &admin.to_string()),
        ("CLERK_GATEWAY_MIRROR_PATH", mirror.as_str()),
    ];
    start_binary(example(name).join("gateway.toml"), dir, &env).await
}

fn token(role: &str) -> String {
    let mut claims = claims_now();
    claims["azp"] = json!(APP_ORIGIN);
    claims["o"] = json!({"id": "org_acme", "rol": role, "slg": "acme", "per": "", "fpm": ""});
    key_a().token(&claims)
}

fn bearer(token: &str) -> (&'static str, String) {
    ("authorization", format!("Bearer {token}"))
}

async fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Reply {
    send(addr, get_request(path, headers)).await
}

/// A `user.created` delivery signed now (the binary checks Svix timestamps on its clock).
async fn deliver_user_created(addr: SocketAddr) {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
    let body = event("user.created", clerk_user("user_alice", "Alice", 1_700_000_000_001, json!({"plan": "pro"})));
    let body = body.to_string().into_bytes();
    let request = Request::post("/webhooks/clerk")
        .header("host", "gateway.test")
        .header("content-type", "application/json")
        .header("svix-id", "msg_example_1")
        .header("svix-timestamp", now.to_string())
        .header("svix-signature", svix_signature(WEBHOOK_SECRET, "msg_example_1", now, &body))
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    assert_eq!(send(addr, request).await.status, 200);
}

/// What both examples promise, through the gateway at `gw` in front of the app at `app`.
async fn the_notes_api_behind_the_gateway(gw: SocketAddr, app: SocketAddr) {
    let member = token("member");
    let (auth, value) = bearer(&member);
    let signed_in = [(auth, value.as_str())];

    let me = get(gw, "/api/me", &signed_in).await;
    assert_eq!(me.status, 200, "{}", me.text());
    assert_eq!(me.json()["id"], "user_alice");
    assert_eq!(me.json()["org_role"], "org:member");

    let signed_out = get(gw, "/api/me", &[]).await;
    assert_eq!((signed_out.status, signed_out.reason().as_str()), (401, "session-token-and-uat-missing"));
    let spoofed = get(gw, "/api/me", &[("x-user-id", "user_admin")]).await;
    assert_eq!(spoofed.status, 401, "a spoofed header is no session");
    let hello = get(gw, "/hello", &[("x-user-id", "user_admin")]).await;
    assert_eq!(hello.json()["hello"], "guest", "the public route never passes a client's X-User-Id");
    let both = get(gw, "/api/me", &[signed_in[0], ("x-user-id", "user_admin")]).await;
    assert_eq!(both.json()["id"], "user_alice", "the gateway's X-User-Id replaces the client's");
    let direct = get(app, "/api/me", &[]).await;
    assert_eq!(direct.status, 401, "the app's own check refuses a request without the headers");
    let bypass = get(app, "/api/me", &[("x-user-id", "user_alice"), ("x-session-id", "sess_1")]).await;
    assert_eq!(bypass.status, 401, "headers that did not come through the gateway carry no assertion");
    let forged =
        get(app, "/api/me", &[("x-user-id", "user_alice"), ("x-clerk-gateway-assertion", "e30.e30.e30")]).await;
    assert_eq!(forged.status, 401, "a forged assertion is refused");

    let before = get(gw, "/api/profile", &signed_in).await;
    assert_eq!(before.json()["email"], Value::Null, "the mirror does not know the user yet");
    deliver_user_created(gw).await;
    let after = get(gw, "/api/profile", &signed_in).await;
    assert_eq!(after.json()["email"], "alice@example.com", "{}", after.text());
    assert_eq!(after.json()["first_name"], "Alice");
    assert_eq!(after.json()["plan"], "pro");

    let note = Request::post("/api/notes")
        .header("host", "gateway.test")
        .header("content-type", "application/json")
        .header(auth, signed_in[0].1)
        .body(Full::new(Bytes::from_static(br#"{"text":"buy milk"}"#)))
        .unwrap();
    assert_eq!(send(gw, note).await.status, 201);
    assert_eq!(get(gw, "/api/notes", &signed_in).await.json()["notes"][0]["text"], "buy milk");

    let refused = get(gw, "/api/admin/stats", &signed_in).await;
    assert_eq!(refused.status, 403, "a member is refused by the gateway's rule");
    assert_eq!(refused.json()["rule"], "org_role");
    let admin = token("admin");
    let (auth, value) = bearer(&admin);
    let stats = get(gw, "/api/admin/stats", &[(auth, value.as_str())]).await;
    assert_eq!(stats.status, 200, "{}", stats.text());
    assert_eq!(stats.json()["notes"], 1);
}

#[tokio::test]
async fn the_fastapi_example_works_behind_the_gateway() {
    let (python, has) = test_python("fastapi, uvicorn");
    if !available("a Python with fastapi and uvicorn", has) {
        return;
    }
    let launcher = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/examples/uvicorn_on_free_port.py");
    let admin = admin_address();
    let mut command = Command::new(&python);
    command.arg(launcher).arg(example("fastapi")).env("GATEWAY_JWKS_URL", jwks_url(admin));
    let app = ChildServer::start(command);
    let running = gateway_for("fastapi", &app, admin).await;
    the_notes_api_behind_the_gateway(running.proxy, app.addr).await;
    assert_eq!(running.stop().await, Some(0));
}

#[tokio::test]
async fn the_express_example_works_behind_the_gateway_with_sse_and_a_websocket() {
    let installed = example("express").join("node_modules/express").is_dir();
    let node = Command::new("node").arg("--version").output().is_ok_and(|o| o.status.success());
    if !available("node with the Express example's `npm ci`", node && installed) {
        return;
    }
    let admin = admin_address();
    let mut command = Command::new("node");
    command.arg("server.js").current_dir(example("express")).env("PORT", "0").env("GATEWAY_JWKS_URL", jwks_url(admin));
    let app = ChildServer::start(command);
    let running = gateway_for("express", &app, admin).await;
    the_notes_api_behind_the_gateway(running.proxy, app.addr).await;

    let member = token("member");
    let events = get(running.proxy, "/api/events", &[("authorization", &format!("Bearer {member}"))]).await;
    assert_eq!(events.header("content-type"), Some("text/event-stream"));
    let body = events.text();
    let ticks: Vec<&str> = body.lines().filter(|l| l.starts_with("data: ")).collect();
    assert_eq!(ticks.len(), 3, "{ticks:?}");
    assert!(ticks.iter().all(|t| t.contains("\"user\":\"user_alice\"")), "{ticks:?}");

    let mut ws = websocket(running.proxy, &member).await;
    assert_eq!(read_text_frame(&mut ws).await, "hello user_alice");
    write_text_frame(&mut ws, "ping").await;
    assert_eq!(read_text_frame(&mut ws).await, "echo: ping");
    let refused = raw_head(running.proxy, &ws_handshake(None)).await;
    assert_eq!(raw_status(&refused), 401, "no WebSocket without a session: {refused}");
    drop(ws);
    assert_eq!(running.stop().await, Some(0));
}

fn ws_handshake(token: Option<&str>) -> Vec<u8> {
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    format!(
        "GET /api/ws HTTP/1.1\r\nHost: gateway.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{auth}\r\n"
    )
    .into_bytes()
}

/// A WebSocket through the gateway, past its `101`.
async fn websocket(addr: SocketAddr, token: &str) -> tokio::net::TcpStream {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(&ws_handshake(Some(token))).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut byte)).await.unwrap().unwrap();
        assert_eq!(n, 1, "closed during the handshake: {}", String::from_utf8_lossy(&head));
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    stream
}

/// One unmasked text frame from the server (short payloads only).
async fn read_text_frame(stream: &mut tokio::net::TcpStream) -> String {
    let mut header = [0u8; 2];
    tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut header)).await.unwrap().unwrap();
    assert_eq!(header[0], 0x81, "a final text frame");
    let mut payload = vec![0u8; usize::from(header[1] & 0x7f)];
    stream.read_exact(&mut payload).await.unwrap();
    String::from_utf8(payload).unwrap()
}

/// One masked text frame, as a client must send it.
async fn write_text_frame(stream: &mut tokio::net::TcpStream, text: &str) {
    let mask = [0x12, 0x34, 0x56, 0x78];
    let mut frame = vec![0x81, 0x80 | u8::try_from(text.len()).unwrap()];
    frame.extend_from_slice(&mask);
    frame.extend(text.bytes().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    stream.write_all(&frame).await.unwrap();
}
