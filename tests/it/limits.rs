//! No connection is held for free: one that sends nothing, or only the HTTP/2 preface, or
//! the preface and SETTINGS and then nothing, or sits idle after a request, is closed; a
//! body that stalls is cut off with 408; past `max_connections`, new connections are closed
//! at once. Each of these is counted in `/metrics`.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::*;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// An empty HTTP/2 SETTINGS frame: length 0, type 4, no flags, stream 0.
const SETTINGS: &[u8] = &[0, 0, 0, 4, 0, 0, 0, 0, 0];

async fn limited(server: &[(&str, &str)]) -> (TestGateway, FakeJwks) {
    let jwks = FakeJwks::with_key_a().await;
    let upstream = spawn_upstream().await;
    let mut config = TestConfig::standard(&jwks, upstream).webhook(":memory:");
    for (key, value) in server {
        config = config.server(key, *value);
    }
    (TestGateway::start(&config).await, jwks)
}

/// Reads until the gateway closes the connection (within 5 s, else the test fails), and
/// returns what it sent.
async fn until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return out,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => panic!("the connection is still open after 5 s"),
        }
    }
}

/// Whether a new connection is served within 5 s (a slot frees up asynchronously).
async fn served_soon(gw: &TestGateway) -> bool {
    for _ in 0..200 {
        let mut stream = TcpStream::connect(gw.addr).await.unwrap();
        let _ = stream.write_all(b"GET /public/x HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").await;
        if String::from_utf8_lossy(&until_closed(&mut stream).await).starts_with("HTTP/1.1 200") {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    false
}

#[tokio::test]
async fn connections_that_send_nothing_or_only_part_of_the_preface_are_closed() {
    let (gw, _jwks) = limited(&[("first_byte_timeout", "200ms")]).await;
    let mut silent = TcpStream::connect(gw.addr).await.unwrap();
    let mut half = TcpStream::connect(gw.addr).await.unwrap();
    half.write_all(&PREFACE[..10]).await.unwrap();
    assert!(until_closed(&mut silent).await.is_empty());
    assert!(until_closed(&mut half).await.is_empty());
    let timeouts = gw.metric(r#"clerk_gateway_connections_total{outcome="first-byte-timeout"}"#).await;
    assert_eq!(timeouts, 2.0);
    assert_eq!(gw.get("/public/x", &[]).await.status, 200, "a real request is unaffected");
}

#[tokio::test]
async fn the_preface_and_settings_then_nothing_is_closed_when_idle() {
    let (gw, _jwks) = limited(&[("idle_timeout", "300ms"), ("http2_keepalive_timeout", "300ms")]).await;
    let mut stream = TcpStream::connect(gw.addr).await.unwrap();
    stream.write_all(PREFACE).await.unwrap();
    stream.write_all(SETTINGS).await.unwrap();
    let sent = until_closed(&mut stream).await;
    let goaway = sent.windows(4).any(|w| w[3] == 7);
    assert!(goaway, "the gateway said GOAWAY before closing: {sent:?}");
    assert_eq!(gw.metric(r#"clerk_gateway_connections_total{outcome="idle-closed"}"#).await, 1.0);
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_its_request() {
    let (gw, _jwks) = limited(&[("idle_timeout", "300ms")]).await;
    let mut stream = TcpStream::connect(gw.addr).await.unwrap();
    stream.write_all(b"GET /public/x HTTP/1.1\r\nHost: t\r\n\r\n").await.unwrap();
    let answer = until_closed(&mut stream).await;
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"), "served, then closed when idle");
    assert_eq!(gw.metric(r#"clerk_gateway_connections_total{outcome="idle-closed"}"#).await, 1.0);
}

#[tokio::test]
async fn a_long_request_is_not_idle() {
    let (gw, _jwks) = limited(&[("idle_timeout", "200ms")]).await;
    let reply = gw.get("/slow/x?ms=250", &[]).await;
    assert_eq!(reply.status, 200, "a request in flight keeps its connection");
}

#[tokio::test]
async fn a_stalled_body_is_cut_off_with_408() {
    let (gw, _jwks) = limited(&[("body_read_timeout", "200ms")]).await;
    let mut stream = TcpStream::connect(gw.addr).await.unwrap();
    stream.write_all(b"POST /public/upload HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nx").await.unwrap();
    let answer = String::from_utf8_lossy(&until_closed(&mut stream).await).into_owned();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains(r#"{"error":"request_timeout"}"#), "{answer}");
    assert_eq!(gw.metric("clerk_gateway_body_timeouts_total").await, 1.0);
}

#[tokio::test]
async fn a_webhook_sent_a_byte_at_a_time_is_cut_off_with_408() {
    let jwks = FakeJwks::with_key_a().await;
    let upstream = spawn_upstream().await;
    let config = TestConfig::standard(&jwks, upstream).webhook(":memory:").section("webhook", "body_timeout", "300ms");
    let gw = TestGateway::start(&config).await;
    let mut stream = TcpStream::connect(gw.addr).await.unwrap();
    stream.write_all(b"POST /webhooks/clerk HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n").await.unwrap();
    let drip = async {
        for _ in 0..40 {
            if stream.write_all(b"{").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), drip).await.unwrap();
    let answer = String::from_utf8_lossy(&until_closed(&mut stream).await).into_owned();
    assert!(answer.starts_with("HTTP/1.1 408"), "a body that keeps trickling still has a total deadline: {answer}");
    assert_eq!(gw.metric(r#"clerk_gateway_webhook_rejections_total{reason="timeout"}"#).await, 1.0);
}

#[tokio::test]
async fn past_max_connections_new_connections_are_closed_and_counted() {
    let jwks = FakeJwks::with_key_a().await;
    let upstream = spawn_upstream().await;
    let gw = TestGateway::start(&TestConfig::standard(&jwks, upstream).server("max_connections", 3)).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut stream = TcpStream::connect(gw.addr).await.unwrap();
        stream.write_all(b"GET /public/x HTTP/1.1\r\nHost: t\r\n\r\n").await.unwrap();
        let mut buf = [0u8; 16];
        stream.read_exact(&mut buf).await.unwrap();
        held.push(stream);
    }
    let mut extra = TcpStream::connect(gw.addr).await.unwrap();
    let _ = extra.write_all(b"GET /public/x HTTP/1.1\r\nHost: t\r\n\r\n").await;
    assert!(until_closed(&mut extra).await.is_empty(), "closed without an answer");
    assert_eq!(gw.metric(r#"clerk_gateway_connections_total{outcome="refused"}"#).await, 1.0);
    assert_eq!(gw.metric("clerk_gateway_connections_open").await, 3.0);
    // Forty at once are all turned away together, not one every 100 ms.
    let started = std::time::Instant::now();
    let extras = (0..40).map(|_| async {
        let mut extra = TcpStream::connect(gw.addr).await.unwrap();
        until_closed(&mut extra).await
    });
    futures_util::future::join_all(extras).await;
    assert!(started.elapsed() < Duration::from_secs(2), "refusals do not queue behind each other");
    assert_eq!(gw.metric(r#"clerk_gateway_connections_total{outcome="refused"}"#).await, 41.0);
    drop(held.pop());
    assert!(served_soon(&gw).await, "a freed slot is used again");
}

/// Answers with ten one-byte chunks, 100 ms apart: a response longer than a short idle timeout.
#[derive(Clone)]
struct Trickle;

impl clerk_gateway::server::Handler for Trickle {
    async fn call(
        &self,
        _remote: &clerk_gateway::server::Remote,
        _request: http::Request<hyper::body::Incoming>,
    ) -> http::Response<clerk_gateway::body::Body> {
        use http_body_util::BodyExt;
        let chunks = futures_util::stream::unfold(0u32, |n| async move {
            if n == 10 {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            let frame = hyper::body::Frame::data(bytes::Bytes::from_static(b"x"));
            Some((Ok::<_, clerk_gateway::body::BoxError>(frame), n + 1))
        });
        http::Response::new(http_body_util::StreamBody::new(chunks).boxed())
    }
}

#[tokio::test]
async fn a_response_still_streaming_is_not_idle() {
    let jwks = FakeJwks::with_key_a().await;
    let trickle = spawn_forever(Trickle).await;
    let config = TestConfig::standard(&jwks, spawn_upstream().await)
        .server("idle_timeout", "200ms")
        .server("http2_keepalive_timeout", "200ms")
        .route(TestRoute::new("/trickle/", &format!("http://{trickle}")).auth("public"));
    let gw = TestGateway::start(&config).await;
    let reply = gw.get("/trickle/x", &[]).await;
    assert_eq!((reply.status, reply.body.as_ref()), (200, &b"xxxxxxxxxx"[..]), "HTTP/1.1: the whole body");
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build(hyper_util::client::legacy::connect::HttpConnector::new());
    let request = http::Request::get(format!("http://{}/trickle/x", gw.addr))
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    let response = client.request(request).await.unwrap();
    let body = http_body_util::BodyExt::collect(response.into_body()).await.unwrap().to_bytes();
    assert_eq!(body.as_ref(), b"xxxxxxxxxx", "HTTP/2: the whole body");
}

#[tokio::test]
async fn websocket_tunnels_keep_their_slot() {
    let jwks = FakeJwks::with_key_a().await;
    let upstream = spawn_upstream().await;
    let gw = TestGateway::start(&TestConfig::standard(&jwks, upstream).server("max_connections", 2)).await;
    let token = key_a().token(&claims());
    let upgrade = format!(
        "GET /api/ws HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nAuthorization: Bearer {token}\r\n\r\n"
    );
    let mut tunnels = Vec::new();
    for _ in 0..2 {
        let mut stream = TcpStream::connect(gw.addr).await.unwrap();
        stream.write_all(upgrade.as_bytes()).await.unwrap();
        let mut got = String::new();
        let mut buf = [0u8; 1024];
        while !got.contains("hello user_alice\n") {
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed early: {got}");
            got.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        tunnels.push(stream);
    }
    assert_eq!(gw.metric("clerk_gateway_connections_open").await, 2.0, "the tunnels still count");
    let mut extra = TcpStream::connect(gw.addr).await.unwrap();
    let _ = extra.write_all(b"GET /public/x HTTP/1.1\r\nHost: t\r\n\r\n").await;
    assert!(until_closed(&mut extra).await.is_empty(), "no slot left for a third connection");
    drop(tunnels.pop());
    assert!(served_soon(&gw).await, "a closed tunnel frees its slot");
}

/// A raw HTTP/2 client with one request in flight to a held upstream. It acknowledges the
/// gateway's SETTINGS, and its pings only if `answer_pings`. Returns whether the gateway
/// closed the connection within `within`.
async fn h2_client_with_a_request_in_flight(gw: &TestGateway, answer_pings: bool, within: Duration) -> bool {
    let mut stream = TcpStream::connect(gw.addr).await.unwrap();
    stream.write_all(PREFACE).await.unwrap();
    stream.write_all(SETTINGS).await.unwrap();
    // HEADERS on stream 1, END_STREAM | END_HEADERS: GET http://t/held/x, in HPACK with the
    // static table (:method GET, :scheme http) and literal :path and :authority.
    let mut block = vec![0x82, 0x86, 0x04, 7];
    block.extend_from_slice(b"/held/x");
    block.extend_from_slice(&[0x01, 1, b't']);
    let mut headers = vec![0, 0, block.len() as u8, 1, 0x05, 0, 0, 0, 1];
    headers.extend_from_slice(&block);
    stream.write_all(&headers).await.unwrap();
    let deadline = tokio::time::Instant::now() + within;
    let mut pending = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(n)) => n,
        };
        pending.extend_from_slice(&buf[..n]);
        while pending.len() >= 9 {
            let len = usize::from(pending[0]) << 16 | usize::from(pending[1]) << 8 | usize::from(pending[2]);
            if pending.len() < 9 + len {
                break;
            }
            let (kind, flags) = (pending[3], pending[4]);
            let frame: Vec<u8> = pending.drain(..9 + len).collect();
            if kind == 4 && flags & 1 == 0 {
                stream.write_all(&[0, 0, 0, 4, 1, 0, 0, 0, 0]).await.unwrap();
            }
            if kind == 6 && flags & 1 == 0 && answer_pings {
                let mut ack = vec![0, 0, 8, 6, 1, 0, 0, 0, 0];
                ack.extend_from_slice(&frame[9..]);
                stream.write_all(&ack).await.unwrap();
            }
        }
    }
}

#[tokio::test]
async fn an_http2_peer_that_stops_answering_pings_is_closed() {
    let jwks = FakeJwks::with_key_a().await;
    let (_held, held) = Held::start().await;
    let config = TestConfig::standard(&jwks, spawn_upstream().await)
        .server("http2_keepalive_interval", "200ms")
        .server("http2_keepalive_timeout", "200ms")
        .route(TestRoute::new("/held/", &format!("http://{held}")).auth("public"));
    let gw = TestGateway::start(&config).await;
    assert!(
        !h2_client_with_a_request_in_flight(&gw, true, Duration::from_millis(1500)).await,
        "a peer that answers its pings keeps its connection"
    );
    assert!(
        h2_client_with_a_request_in_flight(&gw, false, Duration::from_secs(5)).await,
        "a peer that does not is closed, even with a request in flight"
    );
    assert_eq!(gw.metric(r#"clerk_gateway_connections_total{outcome="idle-closed"}"#).await, 0.0, "not for idleness");
}

/// Reads one HTTP/1.1 response with a `content-length` from `stream`, head and body.
async fn read_response(stream: &mut TcpStream) -> String {
    let (mut got, mut buf) = (Vec::new(), [0u8; 4096]);
    loop {
        let text = String::from_utf8_lossy(&got).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length: ").map(str::to_owned))
                .and_then(|l| l.trim().parse::<usize>().ok());
            if length.is_some_and(|length| body.len() >= length) {
                return text;
            }
        }
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await.unwrap().unwrap();
        assert!(n > 0, "closed mid-response: {text}");
        got.extend_from_slice(&buf[..n]);
    }
}

/// Waits (at most 10 s) until `series` reads `value`.
async fn until_metric(gw: &TestGateway, series: &str, value: f64) {
    for _ in 0..200 {
        if gw.metric(series).await == value {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{series} never reached {value}");
}

#[tokio::test]
async fn an_idle_keep_alive_connection_lets_its_buffers_go_and_serves_on() {
    let jwks = FakeJwks::with_key_a().await;
    let upstream = spawn_upstream().await;
    let gw = TestGateway::start(&TestConfig::standard(&jwks, upstream)).await;
    let mut stream = TcpStream::connect(gw.addr).await.unwrap();
    stream.write_all(b"GET /public/one HTTP/1.1\r\nHost: t\r\n\r\n").await.unwrap();
    assert!(read_response(&mut stream).await.starts_with("HTTP/1.1 200"));
    until_metric(&gw, "clerk_gateway_connections_parked", 1.0).await;

    // The next request, its head in two pieces, wakes the connection on the same socket.
    stream.write_all(b"GET /public/two HT").await.unwrap();
    stream.write_all(b"TP/1.1\r\nHost: t\r\n\r\n").await.unwrap();
    let answer = read_response(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 200") && answer.contains("/public/two"), "{answer}");
    until_metric(&gw, "clerk_gateway_connections_parked", 1.0).await;

    // A parked connection can still be upgraded.
    let token = key_a().token(&claims());
    let upgrade = format!(
        "GET /api/ws HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nAuthorization: Bearer {token}\r\n\r\n"
    );
    check_tunnel(&mut stream, &upgrade, "hello user_alice\n").await;
    assert_eq!(gw.metric("clerk_gateway_connections_parked").await, 0.0);
}
