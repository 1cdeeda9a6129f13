//! Draining in process: readiness flips at once, the listener keeps accepting through the
//! drain delay, and in-flight requests finish before `run` returns.

use std::time::Duration;

use crate::common::*;

#[tokio::test]
async fn shutdown_drains_then_finishes_in_flight_requests() {
    let jwks = FakeJwks::with_key_a().await;
    let upstream = spawn_upstream().await;
    let (held, held_addr) = Held::start().await;
    let config = TestConfig::standard(&jwks, upstream)
        .server("drain_delay", "2s")
        .route(TestRoute::new("/slowly/", &format!("http://{held_addr}")).auth("public"));
    let mut gw = TestGateway::start(&config).await;
    let addr = gw.addr;
    let slow = tokio::spawn(async move { send(addr, get_request("/slowly/x", &[])).await });
    held.arrived().await;

    gw.trigger_shutdown();
    let mut flipped = false;
    for _ in 0..100 {
        if gw.admin_get("/readyz").await.status == 503 {
            flipped = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(flipped, "readiness turned 503");
    assert!(String::from_utf8_lossy(&gw.admin_get("/readyz").await.body).contains("shutdown: draining"));
    assert_eq!(gw.get("/public/x", &[]).await.status, 200, "new requests are still served while draining");
    wait_until_refused(addr).await;
    assert!(!slow.is_finished(), "past the drain delay, the in-flight request is still held upstream");
    held.release();
    assert_eq!(slow.await.unwrap().status, 200, "the in-flight request completed");
    gw.stopped().await.unwrap();
    assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "the listener is closed");
}

#[tokio::test]
async fn an_open_websocket_gets_the_grace_period() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut gw, _jwks) = standard().await;
    let token = key_a().token(&claims());
    let mut stream = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let upgrade = format!(
        "GET /api/ws HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nAuthorization: Bearer {token}\r\n\r\n"
    );
    stream.write_all(upgrade.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let mut got = String::new();
    while !got.contains("hello user_alice\n") {
        let n = stream.read(&mut buf).await.unwrap();
        assert!(n > 0);
        got.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    gw.trigger_shutdown();
    wait_until_refused(gw.addr).await;
    stream.write_all(b"still there?").await.unwrap();
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await.unwrap().unwrap();
    assert_eq!(&buf[..n], b"still there?", "the tunnel outlives the start of shutdown");
    drop(stream);
    tokio::time::timeout(Duration::from_secs(4), gw.stopped()).await.expect("stops once the tunnel closes").unwrap();
}

/// Waits until the listener at `addr` is gone: shutdown has stopped accepting.
async fn wait_until_refused(addr: std::net::SocketAddr) {
    eventually("the listener to close", async || tokio::net::TcpStream::connect(addr).await.is_err()).await;
}
