//! Upstream connections: an `http://` upstream's connection is reused once its response
//! has ended, and never one the upstream closed or whose body was left unread.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use clerk_gateway::body::{self, Body};
use clerk_gateway::server::{Handler, Remote};
use http::{Request, Response};
use hyper::body::Incoming;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::common::*;

/// An upstream that notes the gateway-side address of every request's connection: `/up/close`
/// answers with `Connection: close`, `/up/big` with a body that never ends, anything else
/// with `ok`.
#[derive(Clone, Default)]
struct Ports(Arc<Mutex<Vec<SocketAddr>>>);

impl Ports {
    fn last(&self) -> SocketAddr {
        *self.0.lock().unwrap().last().expect("no request reached the upstream")
    }
}

impl Handler for Ports {
    async fn call(&self, remote: &Remote, request: Request<Incoming>) -> Response<Body> {
        self.0.lock().unwrap().push(remote.addr);
        match request.uri().path() {
            "/up/close" => {
                let mut response = Response::new(body::full("closing"));
                response.headers_mut().insert("connection", "close".parse().unwrap());
                response
            }
            // However large a body, loopback's socket buffers may take all of it before the
            // client leaves; one that never ends is unread for certain.
            "/up/big" => {
                use futures_util::StreamExt;
                use http_body_util::BodyExt;
                let frame = hyper::body::Frame::data(bytes::Bytes::from("x"));
                let first = futures_util::stream::iter([Ok::<_, clerk_gateway::body::BoxError>(frame)]);
                let endless = first.chain(futures_util::stream::pending());
                Response::new(BodyExt::boxed(http_body_util::StreamBody::new(endless)))
            }
            _ => Response::new(body::full("ok")),
        }
    }
}

/// A gateway with one worker (each worker keeps its own connections) routing `/up/` there.
async fn gateway_to(upstream: SocketAddr) -> (TestGateway, FakeJwks) {
    let jwks = FakeJwks::with_key_a().await;
    let config = TestConfig::standard(&jwks, upstream)
        .server("workers", 1)
        .route(TestRoute::new("/up/", &format!("http://{upstream}")).auth("public"));
    (TestGateway::start(&config).await, jwks)
}

#[tokio::test]
async fn a_connection_is_reused_only_after_a_complete_response() {
    let ports = Ports::default();
    let upstream = spawn_forever(ports.clone()).await;
    let (gw, _jwks) = gateway_to(upstream).await;
    let mut seen = Vec::new();
    for _ in 0..5 {
        assert_eq!(gw.get("/up/a", &[]).await.text(), "ok");
        seen.push(ports.last());
    }
    assert!(seen.iter().all(|p| *p == seen[0]), "one connection for sequential requests: {seen:?}");

    assert_eq!(gw.get("/up/close", &[]).await.text(), "closing");
    assert_eq!(ports.last(), seen[0], "the pooled connection took it");
    assert_eq!(gw.get("/up/a", &[]).await.text(), "ok");
    let after_close = ports.last();
    assert_ne!(after_close, seen[0], "a connection the upstream closed is not reused");

    // A client that leaves after the head: that connection is mid-body and must not return.
    let head = raw_head(gw.addr, b"GET /up/big HTTP/1.1\r\nHost: t\r\n\r\n").await;
    assert_eq!(raw_status(&head), 200);
    let big = ports.last();
    assert_eq!(big, after_close);
    assert_eq!(gw.get("/up/a", &[]).await.text(), "ok");
    assert_ne!(ports.last(), big, "a connection with an unread body is not reused");
}

/// An upstream that answers each request and then closes the connection without saying
/// so, as one whose keep-alive timeout has just fired does.
async fn silently_closing_upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else { return };
            tokio::spawn(async move {
                let (mut head, mut buf) = (Vec::new(), [0u8; 1024]);
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn an_upstream_that_drops_idle_connections_costs_no_request() {
    let upstream = silently_closing_upstream().await;
    let (gw, _jwks) = gateway_to(upstream).await;
    for i in 0..20 {
        let reply = gw.get("/up/x", &[]).await;
        assert_eq!((reply.status, reply.text().as_str()), (200, "ok"), "request {i}");
    }
}
