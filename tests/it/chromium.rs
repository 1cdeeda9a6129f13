//! End to end in a real headless Chromium: a page load through the gateway with an expired
//! session cookie follows the Clerk handshake to the fake Frontend API and back, and lands
//! on the backend's page showing the `X-User-Id` it received.
//!
//! Needs Debian's `chromium` (`.ci/run` installs it and sets `CI_REQUIRE_CHROMIUM=1`);
//! elsewhere the test says it was skipped.

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use clerk_gateway::body::{self, Body};
use clerk_gateway::server::Handler;
use http::{Request, Response};
use hyper::body::Incoming;
use serde_json::json;

use crate::common::*;

/// The backend: `/setup` plants a stale Clerk session (an expired `__session`, a signed-in
/// `__client_uat`) and redirects to `/app/page`, which shows who the gateway says it is.
#[derive(Clone)]
struct App {
    expired_token: String,
}

impl Handler for App {
    async fn call(&self, _peer: SocketAddr, request: Request<Incoming>) -> Response<Body> {
        if request.uri().path() == "/setup" {
            return Response::builder()
                .status(302)
                .header("location", "/app/page")
                .header("set-cookie", format!("__session={}; Path=/; SameSite=Lax", self.expired_token))
                .header("set-cookie", format!("__client_uat={CLIENT_UAT}; Path=/; SameSite=Lax"))
                .body(body::empty())
                .unwrap();
        }
        let user = request.headers().get("x-user-id").and_then(|v| v.to_str().ok()).unwrap_or("nobody").to_owned();
        let html = format!("<!doctype html><html><body><p id=\"user\">backend saw X-User-Id: {user}</p></body></html>");
        Response::builder().header("content-type", "text/html").body(body::full(html)).unwrap()
    }
}

fn chromium() -> Option<&'static str> {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"].into_iter().find(|p| std::path::Path::new(p).exists())
}

#[tokio::test]
async fn a_stale_browser_session_is_refreshed_through_the_handshake() {
    let Some(chromium) = chromium() else {
        assert!(
            std::env::var_os("CI_REQUIRE_CHROMIUM").is_none(),
            "CI_REQUIRE_CHROMIUM is set but chromium is missing"
        );
        eprintln!("SKIPPED: chromium is not installed (apt-get install chromium); .ci/run runs this test");
        return;
    };
    let bapi = FakeBapi::start(vec![clerk_user("user_alice", "Alice", 5, json!({}))]).await;
    bapi.state.handshake.lock().unwrap().session_token = Some(key_a().token(&claims()));
    let app = App { expired_token: key_a().token(&claims_with("exp", json!(NOW - 30))) };
    let app_addr = spawn_forever(app).await;
    let config = TestConfig::new()
        .clerk("secret_key", FAKE_SECRET)
        .clerk("api_url", bapi.url())
        .clerk("frontend_api_url", bapi.url())
        .clerk("publishable_key", PUBLISHABLE_KEY)
        .route(TestRoute::new("/setup", &format!("http://{app_addr}")).auth("public"))
        .route(TestRoute::new("/app/", &format!("http://{app_addr}")));
    let gw = TestGateway::start(&config).await;
    let profile = tempfile::tempdir().unwrap();
    let url = format!("http://{}/setup", gw.addr);
    let mut cmd = Command::new(chromium);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-quic",
        "--no-first-run",
        "--no-default-browser-check",
    ])
    .arg(format!("--user-data-dir={}", profile.path().display()))
    .args(["--dump-dom", &url]);
    let output = tokio::time::timeout(Duration::from_secs(60), tokio::task::spawn_blocking(move || cmd.output()))
        .await
        .expect("chromium finished within a minute")
        .unwrap()
        .expect("chromium ran");
    let dom = String::from_utf8_lossy(&output.stdout);
    assert!(
        dom.contains("backend saw X-User-Id: user_alice"),
        "the page after the handshake:\n{dom}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(bapi.count("/v1/client/handshake"), 1, "one trip to the Frontend API");
    assert_eq!(bapi.count("/v1/clients/handshake_payload"), 1, "one nonce redeemed");
}
