//! Upstreams for the gateway to forward to: `Echo`, which answers with what it received
//! (method, path, version, headers, body length) and splices upgrades; and `Held`, which
//! tells the test a request has arrived and answers only when the test lets it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use clerk_gateway::body::{self, Body};
use clerk_gateway::server::{ClientUpgrade, Handler, Remote};
use http::{Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

use super::servers::spawn_forever;

/// Echoes method, path, headers and body length as JSON. Special paths: `.../slow?ms=N`
/// waits first; `.../hop` answers with hop-by-hop headers; `Upgrade` requests get 101 and
/// an echoing connection.
#[derive(Clone, Default)]
pub struct Echo;

impl Handler for Echo {
    async fn call(&self, _remote: &Remote, mut request: Request<Incoming>) -> Response<Body> {
        if request.headers().contains_key("upgrade") {
            return upgrade_echo(&mut request);
        }
        let path = request.uri().path_and_query().map_or("/".to_owned(), |pq| pq.to_string());
        if path.contains("/slow") {
            let ms = path.split("ms=").nth(1).and_then(|v| v.parse().ok()).unwrap_or(2000);
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (name, value) in request.headers() {
            headers.entry(name.to_string()).or_default().push(String::from_utf8_lossy(value.as_bytes()).into());
        }
        let method = request.method().to_string();
        let version = format!("{:?}", request.version());
        let body_len = match request.into_body().collect().await {
            Ok(collected) => collected.to_bytes().len() as i64,
            Err(_) => -1,
        };
        let echo =
            json!({"method": method, "path": path, "version": version, "headers": headers, "body_len": body_len});
        let mut response = Response::new(body::full(echo.to_string()));
        response.headers_mut().insert("content-type", "application/json".parse().unwrap());
        if path.contains("/own-cors") {
            response.headers_mut().insert("access-control-allow-origin", "*".parse().unwrap());
        }
        if path.contains("/hop") {
            let h = response.headers_mut();
            h.insert("connection", "x-up-secret".parse().unwrap());
            h.insert("x-up-secret", "1".parse().unwrap());
            h.insert("keep-alive", "timeout=5".parse().unwrap());
            h.insert("proxy-authenticate", "Basic".parse().unwrap());
            h.insert("x-up-visible", "1".parse().unwrap());
        }
        response
    }
}

fn upgrade_echo(request: &mut Request<Incoming>) -> Response<Body> {
    let user = request.headers().get("x-user-id").map(|v| v.to_str().unwrap_or("").to_owned()).unwrap_or_default();
    let protocol = if request.uri().path().contains("/wrong-upgrade") {
        "h2c".to_owned()
    } else {
        request.headers()["upgrade"].to_str().unwrap_or("").to_owned()
    };
    let upgrade = request.extensions_mut().remove::<ClientUpgrade>().expect("an upgrade request carries its upgrade");
    tokio::spawn(async move {
        if let Ok(mut io) = upgrade.connection().await {
            let _ = io.write_all(format!("hello {user}\n").as_bytes()).await;
            let mut buf = [0u8; 1024];
            while let Ok(n) = io.read(&mut buf).await {
                if n == 0 || io.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        }
    });
    Response::builder()
        .status(101)
        .header("connection", "upgrade")
        .header("upgrade", protocol)
        .body(body::empty())
        .unwrap()
}

/// An echo upstream for the rest of the test.
pub async fn spawn_upstream() -> SocketAddr {
    spawn_forever(Echo).await
}

/// An upstream that holds every request until `release`: `arrived` says when one is in, so a
/// test can act while a request is known to be in flight instead of sleeping and hoping.
#[derive(Clone)]
pub struct Held {
    arrivals: Arc<watch::Sender<usize>>,
    released: Arc<watch::Sender<bool>>,
}

impl Held {
    /// Starts one on 127.0.0.1:0.
    pub async fn start() -> (Held, SocketAddr) {
        let held = Held { arrivals: Arc::new(watch::channel(0).0), released: Arc::new(watch::channel(false).0) };
        let addr = spawn_forever(held.clone()).await;
        (held, addr)
    }

    /// Resolves once at least one request has arrived (within 10 s, else the test fails).
    pub async fn arrived(&self) {
        let mut arrivals = self.arrivals.subscribe();
        tokio::time::timeout(Duration::from_secs(10), arrivals.wait_for(|n| *n > 0))
            .await
            .expect("no request reached the held upstream within 10 s")
            .unwrap();
    }

    /// Lets every held request (and every later one) answer.
    pub fn release(&self) {
        self.released.send_replace(true);
    }
}

impl Handler for Held {
    async fn call(&self, _remote: &Remote, request: Request<Incoming>) -> Response<Body> {
        self.arrivals.send_modify(|n| *n += 1);
        let mut released = self.released.subscribe();
        let _ = released.wait_for(|r| *r).await;
        let path = request.uri().path().to_owned();
        let mut response = Response::new(body::full(json!({"held": path}).to_string()));
        response.headers_mut().insert("content-type", "application/json".parse().unwrap());
        response
    }
}
