//! Talking to a server as a client: requests sent with their path exactly as written, a
//! fully read `Reply`, raw HTTP/1.1 bytes. Reading what the echo upstream saw fails the
//! test when the reply is not an echo, so "the upstream did not see X" cannot pass on an
//! error page.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A response, fully read.
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    /// The body as JSON, or `Null` when it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// The `reason` of a 401 body.
    pub fn reason(&self) -> String {
        self.json()["reason"].as_str().unwrap_or("").to_owned()
    }

    /// The echo upstream's answer; fails the test when the reply is anything else (the
    /// gateway's own answer, a redirect, another upstream).
    pub fn echo(&self) -> Value {
        let json = self.json();
        assert!(
            json["headers"].is_object() && json["path"].is_string(),
            "expected the echo upstream's answer, got {}: {}",
            self.status,
            String::from_utf8_lossy(&self.body)
        );
        json
    }

    /// What the echo upstream saw for `header` (all values joined by `|`), or `None` when
    /// the upstream did not get it.
    pub fn seen(&self, header: &str) -> Option<String> {
        let values = self.echo()["headers"][header.to_ascii_lowercase()].as_array()?.clone();
        Some(values.iter().filter_map(Value::as_str).collect::<Vec<_>>().join("|"))
    }

    /// The path the echo upstream saw.
    pub fn seen_path(&self) -> String {
        self.echo()["path"].as_str().unwrap_or_default().to_owned()
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

pub fn get_request(path: &str, headers: &[(&str, &str)]) -> Request<Full<Bytes>> {
    let mut builder = Request::get(path).header("host", "gateway.test");
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(Full::new(Bytes::new())).unwrap()
}

fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build(HttpConnector::new())
}

/// Sends `request` to `addr` (the URI's path is used exactly as written).
pub async fn send(addr: SocketAddr, mut request: Request<Full<Bytes>>) -> Reply {
    let pq = request.uri().path_and_query().map_or("/".to_owned(), |pq| pq.to_string());
    *request.uri_mut() = format!("http://{addr}{pq}").parse().unwrap();
    let response = client().request(request).await.expect("request failed");
    let (parts, incoming) = response.into_parts();
    let body = incoming.collect().await.map(|c| c.to_bytes()).unwrap_or_default();
    Reply { status: parts.status.as_u16(), headers: parts.headers, body }
}

/// Writes raw bytes and reads until the server closes or `Connection: close` completes.
pub async fn raw(addr: SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// Sends raw bytes and reads only the response head (for a connection that stays open,
/// like a switched protocol).
pub async fn raw_head(addr: SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let (mut out, mut buf) = (Vec::new(), [0u8; 1024]);
    while !out.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await.unwrap().unwrap();
        assert!(n > 0, "closed before the head: {}", String::from_utf8_lossy(&out));
        out.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The status code of a raw HTTP/1.1 response.
pub fn raw_status(response: &str) -> u16 {
    response.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}

/// Upgrades `stream` (an open connection to the gateway) with `request`, a WebSocket upgrade
/// to the echo upstream's `/api/ws`, and checks the tunnel both ways: the 101, the
/// upstream's greeting (`greeting`), then a ping echoed back.
pub async fn check_tunnel(stream: &mut TcpStream, request: &str, greeting: &str) {
    stream.write_all(request.as_bytes()).await.unwrap();
    let (mut got, mut buf) = (String::new(), [0u8; 4096]);
    while !got.contains(greeting) {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await.unwrap().unwrap();
        assert!(n > 0, "closed early: {got}");
        got.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(got.starts_with("HTTP/1.1 101"), "{got}");
    stream.write_all(b"ping").await.unwrap();
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await.unwrap().unwrap();
    assert_eq!(&buf[..n], b"ping");
}
