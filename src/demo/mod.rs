//! `clerk-gateway demo`: the real gateway on embedded defaults. A fresh RSA key is served as
//! a local JWKS (so the JWKS path is the one exercised), an echo upstream shows what the
//! backend receives, and the mirror lives in a temporary directory removed on exit. No
//! Clerk account, no network beyond loopback.

mod keys;
mod servers;

use std::collections::HashMap;
use std::future::pending;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::config::Config;
use crate::error::Error;
use crate::server::{self, Handler, ServeOptions};
use crate::{Clock, Listeners};
pub use keys::DemoKey;
pub use servers::{EchoUpstream, JwksServer};

const CONFIG: &str = include_str!("demo.toml");
const ISSUER: &str = "https://demo.clerk.accounts.dev";
const ORIGIN: &str = "http://localhost:3000";

/// Runs the demo until Ctrl-C (or SIGTERM).
///
/// # Errors
/// `Error` when a listener cannot be bound or the gateway fails to start.
pub async fn run(listen: SocketAddr) -> Result<(), Error> {
    let key = DemoKey::generate()?;
    let jwks = spawn_helper(JwksServer::new(key.jwks().to_string())).await?;
    let upstream = spawn_helper(EchoUpstream).await?;
    let proxy = match TcpListener::bind(listen).await {
        Ok(listener) => listener,
        Err(_) => bind_loopback().await?,
    };
    let admin = bind_loopback().await?;
    let proxy_addr = local_addr(&proxy)?;
    let admin_addr = local_addr(&admin)?;
    let dir = tempfile::tempdir().map_err(|e| Error::Runtime(format!("temporary directory: {e}")))?;
    let mirror = dir.path().join("mirror.db");
    let vars = HashMap::from([
        ("DEMO_LISTEN", proxy_addr.to_string()),
        ("DEMO_ADMIN", admin_addr.to_string()),
        ("DEMO_JWKS_URL", format!("http://{jwks}/.well-known/jwks.json")),
        ("DEMO_UPSTREAM", format!("http://{upstream}")),
        ("DEMO_MIRROR", mirror.display().to_string()),
    ]);
    let config = Config::from_toml(CONFIG, &|name| vars.get(name).cloned())?;
    let listeners = Listeners { proxy, admin };
    let gateway = tokio::spawn(crate::run(config, listeners, Clock::System, crate::cli::shutdown_signal()));
    wait_until_ready(admin_addr).await?;

    let tokens = Tokens::mint(&key)?;
    println!("clerk-gateway demo");
    println!("  gateway   http://{proxy_addr}   (admin: http://{admin_addr}/readyz and /metrics)");
    println!("  upstream  http://{upstream}   echo server: answers with the headers it received");
    println!("  keys      http://{jwks}/.well-known/jwks.json   a fresh RSA-2048 key, served as JWKS");
    println!("  routes    /api/ required   /admin/ required + org:admin   / optional");
    println!();
    tour(proxy_addr, &tokens).await;
    print_curl_lines(proxy_addr, &tokens);
    println!("Serving until Ctrl-C.");

    let result = gateway.await.map_err(|e| Error::Runtime(e.to_string()))?;
    drop(dir);
    result
}

struct Tokens {
    valid: String,
    expired: String,
}

impl Tokens {
    fn mint(key: &DemoKey) -> Result<Tokens, Error> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let claims = |iat: u64, exp: u64| {
            json!({
                "sub": "user_demo", "sid": "sess_demo", "iss": ISSUER, "azp": ORIGIN,
                "iat": iat, "nbf": iat - 5, "exp": exp, "v": 2, "fea": "o:billing",
                "o": {"id": "org_demo", "rol": "member", "slg": "demo-co", "per": "read,manage", "fpm": "1"},
            })
        };
        Ok(Tokens { valid: key.sign(&claims(now, now + 3600))?, expired: key.sign(&claims(now - 600, now - 540))? })
    }
}

/// One request the demo makes and explains.
struct Step {
    what: &'static str,
    path: &'static str,
    headers: Vec<(&'static str, String)>,
}

async fn tour(proxy: SocketAddr, tokens: &Tokens) {
    let bearer = |t: &str| ("authorization", format!("Bearer {t}"));
    let steps = [
        Step { what: "valid token", path: "/api/hello", headers: vec![bearer(&tokens.valid)] },
        Step { what: "expired token", path: "/api/hello", headers: vec![bearer(&tokens.expired)] },
        Step { what: "no token", path: "/api/hello", headers: vec![] },
        Step { what: "spoofed X-User-Id, no token", path: "/", headers: vec![("x-user-id", "user_admin".into())] },
        Step { what: "valid token, admin-only route", path: "/admin/", headers: vec![bearer(&tokens.valid)] },
    ];
    let client = reqwest::Client::builder().no_proxy().build();
    let Ok(client) = client else { return };
    println!("Tried for you (what the gateway answered, and what the upstream saw):");
    for (i, step) in steps.iter().enumerate() {
        let mut request = client.get(format!("http://{proxy}{}", step.path));
        for (name, value) in &step.headers {
            request = request.header(*name, value);
        }
        let outcome = match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let body = response.text().await.unwrap_or_default();
                format!("{status}  {}", summarize(&body))
            }
            Err(e) => format!("request failed: {e}"),
        };
        println!("  {}. {:<30} GET {:<11} -> {outcome}", i + 1, step.what, step.path);
    }
    println!();
}

/// The identity headers from an echo body, or the gateway's own JSON answer.
fn summarize(body: &str) -> String {
    let Ok(json) = serde_json::from_str::<Value>(body) else { return body.trim().to_owned() };
    let Some(headers) = json.get("headers") else { return json.to_string() };
    let shown: Vec<String> =
        ["x-user-id", "x-session-id", "x-org-id", "x-org-role", "x-org-permissions", "x-auth-status"]
            .iter()
            .filter_map(|name| match headers.get(*name).and_then(Value::as_str) {
                Some(value) => Some(format!("{name}: {value}")),
                None if *name == "x-user-id" => Some(format!("{name}: (none)")),
                None => None,
            })
            .collect();
    format!("upstream saw {}", shown.join(", "))
}

fn print_curl_lines(proxy: SocketAddr, tokens: &Tokens) {
    println!("Paste these (the valid token lasts one hour):");
    println!("  TOKEN={}", tokens.valid);
    println!("  EXPIRED={}", tokens.expired);
    println!("  curl -s http://{proxy}/api/hello -H \"Authorization: Bearer $TOKEN\"");
    println!("  curl -s --cookie \"__session=$TOKEN\" http://{proxy}/api/hello");
    println!("  curl -s -i http://{proxy}/api/hello -H \"Authorization: Bearer $EXPIRED\"");
    println!("  curl -s http://{proxy}/ -H \"X-User-Id: user_admin\"");
    println!("  curl -s -i http://{proxy}/admin/ -H \"Authorization: Bearer $TOKEN\"");
    println!();
}

async fn spawn_helper<H: Handler>(handler: H) -> Result<SocketAddr, Error> {
    let listener = bind_loopback().await?;
    let addr = local_addr(&listener)?;
    let options = ServeOptions {
        header_read_timeout: Duration::from_secs(10),
        max_header_bytes: 64 * 1024,
        tls: None,
        tls_handshake_timeout: Duration::from_secs(10),
        grace_timeout: Duration::from_secs(1),
        detached: Default::default(),
    };
    tokio::spawn(server::serve(listener, options, handler, pending::<()>()));
    Ok(addr)
}

async fn bind_loopback() -> Result<TcpListener, Error> {
    let addr: SocketAddr = ([127, 0, 0, 1], 0).into();
    TcpListener::bind(addr).await.map_err(|source| Error::Bind { addr, source })
}

fn local_addr(listener: &TcpListener) -> Result<SocketAddr, Error> {
    listener.local_addr().map_err(|e| Error::Runtime(e.to_string()))
}

async fn wait_until_ready(admin: SocketAddr) -> Result<(), Error> {
    let client = reqwest::Client::builder().no_proxy().build().map_err(|e| Error::Runtime(e.to_string()))?;
    for _ in 0..100 {
        if let Ok(response) = client.get(format!("http://{admin}/readyz")).send().await
            && response.status().is_success()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(Error::Runtime("the demo gateway did not become ready within 5 s".into()))
}
