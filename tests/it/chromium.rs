//! End to end in a real headless Chromium: a page load through the gateway with an expired
//! session cookie follows the Clerk handshake to the fake Frontend API and back, and lands
//! on the backend's page showing the `X-User-Id` it received; a single-page app on an origin
//! `[cors]` admits reads the gateway's 401 and makes a preflighted call, one on another
//! origin can read neither.
//!
//! Needs Debian's `chromium` (`.ci/run` installs it and sets `CI_REQUIRE_CHROMIUM=1`);
//! elsewhere the test says it was skipped.

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use clerk_gateway::body::{self, Body};
use clerk_gateway::server::{Handler, Remote};
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
    async fn call(&self, _remote: &Remote, request: Request<Incoming>) -> Response<Body> {
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
    let found =
        ["/usr/bin/chromium", "/usr/bin/chromium-browser"].into_iter().find(|p| std::path::Path::new(p).exists());
    if found.is_none() {
        assert!(
            std::env::var_os("CI_REQUIRE_CHROMIUM").is_none(),
            "CI_REQUIRE_CHROMIUM is set but chromium is missing"
        );
        eprintln!("SKIPPED: chromium is not installed (apt-get install chromium); .ci/run runs this test");
    }
    found
}

/// Loads `url` in a fresh headless profile, lets its scripts run (their fetches included),
/// and returns the DOM it ends with and Chromium's stderr.
async fn dump_dom(chromium: &str, url: &str) -> (String, String) {
    let profile = tempfile::tempdir().unwrap();
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
        "--virtual-time-budget=10000",
    ])
    .arg(format!("--user-data-dir={}", profile.path().display()))
    .args(["--dump-dom", url]);
    let output = tokio::time::timeout(Duration::from_secs(60), tokio::task::spawn_blocking(move || cmd.output()))
        .await
        .expect("chromium finished within a minute")
        .unwrap()
        .expect("chromium ran");
    (String::from_utf8_lossy(&output.stdout).into_owned(), String::from_utf8_lossy(&output.stderr).into_owned())
}

#[tokio::test]
async fn a_stale_browser_session_is_refreshed_through_the_handshake() {
    let Some(chromium) = chromium() else { return };
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
    let (dom, stderr) = dump_dom(chromium, &format!("http://{}/setup", gw.addr)).await;
    assert!(
        dom.contains("backend saw X-User-Id: user_alice"),
        "the page after the handshake:\n{dom}\nstderr:\n{stderr}"
    );
    assert_eq!(bapi.count("/v1/client/handshake"), 1, "one trip to the Frontend API");
    assert_eq!(bapi.count("/v1/clients/handshake_payload"), 1, "one nonce redeemed");
}

/// A single-page app on its own origin: its script calls the gateway without a token, then
/// with one (a preflighted request), and writes what it could read.
#[derive(Clone)]
struct Spa {
    gateway: SocketAddr,
    token: String,
}

impl Handler for Spa {
    async fn call(&self, _remote: &Remote, _request: Request<Incoming>) -> Response<Body> {
        let (gateway, token) = (self.gateway, &self.token);
        let html = format!(
            r#"<!doctype html><html><body><pre id="out">pending</pre><script>
(async () => {{
  const out = [];
  try {{
    const r = await fetch("http://{gateway}/api/x");
    out.push("anonymous: " + r.status + " " + (await r.json()).reason);
  }} catch (e) {{ out.push("anonymous: unreadable " + e.name); }}
  try {{
    const r = await fetch("http://{gateway}/api/who", {{ headers: {{ Authorization: "Bearer {token}" }} }});
    out.push("signed-in: " + r.status + " " + (await r.json()).headers["x-user-id"][0]);
  }} catch (e) {{ out.push("signed-in: unreadable " + e.name); }}
  document.getElementById("out").textContent = out.join(" | ");
}})();
</script></body></html>"#
        );
        Response::builder().header("content-type", "text/html").body(body::full(html)).unwrap()
    }
}

#[tokio::test]
async fn a_page_on_an_admitted_origin_reads_the_gateways_401_and_a_stranger_cannot() {
    let Some(chromium) = chromium() else { return };
    let jwks = FakeJwks::with_key_a().await;
    let upstream = spawn_upstream().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let spa_port = listener.local_addr().unwrap().port();
    let config = TestConfig::standard(&jwks, upstream).section(
        "cors",
        "allow_origins",
        strings(&[&format!("http://*.localhost:{spa_port}")]),
    );
    let gw = TestGateway::start(&config).await;
    let spa = Spa { gateway: gw.addr, token: key_a().token(&claims()) };
    let spa_addr = serve_forever_on(listener, spa);

    // Chromium resolves every *.localhost name to the loopback address.
    let (dom, stderr) = dump_dom(chromium, &format!("http://app.localhost:{}/", spa_addr.port())).await;
    assert!(
        dom.contains("anonymous: 401 session-token-and-uat-missing | signed-in: 200 user_alice"),
        "the admitted page:\n{dom}\nstderr:\n{stderr}"
    );
    let (dom, stderr) = dump_dom(chromium, &format!("http://127.0.0.1:{}/", spa_addr.port())).await;
    assert!(
        dom.contains("anonymous: unreadable TypeError | signed-in: unreadable TypeError"),
        "the page on an origin [cors] does not admit:\n{dom}\nstderr:\n{stderr}"
    );
}
