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
    let dir = tempfile::tempdir().map_err(Error::io("temporary directory"))?;
    let mirror = dir.path().join("mirror.db");
    let webhook_secret = keys::webhook_secret()?;
    let vars = HashMap::from([
        ("DEMO_LISTEN", proxy_addr.to_string()),
        ("DEMO_ADMIN", admin_addr.to_string()),
        ("DEMO_JWKS_URL", format!("http://{jwks}/.well-known/jwks.json")),
        ("DEMO_UPSTREAM", format!("http://{upstream}")),
        ("DEMO_MIRROR", mirror.display().to_string()),
        ("DEMO_WEBHOOK_SECRET", webhook_secret.clone()),
    ]);
    let config = Config::from_toml(CONFIG, &|name| vars.get(name).cloned())?;
    let listeners = Listeners { proxy, admin };
    let gateway = tokio::spawn(crate::run(config, None, listeners, Clock::System, crate::signal::shutdown_signal()));
    wait_until_ready(admin_addr).await?;

    let samples = Samples::make(&key, &webhook_secret)?;
    println!("clerk-gateway demo");
    println!("  gateway   http://{proxy_addr}   (admin: http://{admin_addr}/readyz and /metrics)");
    println!("  upstream  http://{upstream}   echo server: answers with the headers it received");
    println!("  keys      http://{jwks}/.well-known/jwks.json   a fresh RSA-2048 key, served as JWKS");
    println!("  routes    /api/ required   /admin/ required + org:admin   / optional");
    println!("  webhooks  POST http://{proxy_addr}/webhooks/clerk   Svix-signed, fed into the user mirror");
    println!();
    tour(proxy_addr, &samples).await;
    print_curl_lines(proxy_addr, &samples);
    println!("Serving until Ctrl-C (log lines are off in the demo: `demo --logs` shows them).");

    let result = gateway.await?;
    drop(dir);
    result
}

/// What the demo signs: session tokens and webhook deliveries.
struct Samples {
    valid: String,
    expired: String,
    /// The `__client_uat` cookie a browser signed in when `valid` was issued would carry.
    client_uat: u64,
    /// `user.created` for the demo user, delivered by the tour.
    created: SignedDelivery,
    /// `user.updated` for the demo user, printed for pasting.
    updated: SignedDelivery,
}

struct SignedDelivery {
    id: String,
    timestamp: i64,
    signature: String,
    body: String,
}

impl SignedDelivery {
    fn sign(secret: &str, id: &str, timestamp: i64, event: &Value) -> Result<SignedDelivery, Error> {
        let verifier = crate::webhook::svix::Verifier::new(secret)?;
        let body = event.to_string();
        let signature = verifier.signature_header(id, timestamp, body.as_bytes());
        Ok(SignedDelivery { id: id.to_owned(), timestamp, signature, body })
    }

    fn headers(&self) -> Vec<(&'static str, String)> {
        vec![
            ("content-type", "application/json".into()),
            ("svix-id", self.id.clone()),
            ("svix-timestamp", self.timestamp.to_string()),
            ("svix-signature", self.signature.clone()),
        ]
    }
}

impl Samples {
    fn make(key: &DemoKey, webhook_secret: &str) -> Result<Samples, Error> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let claims = |iat: u64, exp: u64| {
            json!({
                "sub": "user_demo", "sid": "sess_demo", "iss": ISSUER, "azp": ORIGIN,
                "iat": iat, "nbf": iat - 5, "exp": exp, "v": 2, "fea": "o:billing",
                "o": {"id": "org_demo", "rol": "member", "slg": "demo-co", "per": "read,manage", "fpm": "1"},
            })
        };
        let user = |updated_at: u64, plan: &str| {
            json!({
                "id": "user_demo", "object": "user", "first_name": "Demo", "last_name": "User", "username": "demo",
                "image_url": "https://img.clerk.com/demo", "primary_email_address_id": "idn_demo",
                "email_addresses": [{"id": "idn_demo", "object": "email_address", "email_address": "demo@example.com"}],
                "public_metadata": {"plan": plan}, "private_metadata": {}, "unsafe_metadata": {},
                "created_at": now * 1000, "updated_at": updated_at,
            })
        };
        let event =
            |kind: &str, data: Value| json!({"type": kind, "object": "event", "timestamp": now * 1000, "data": data});
        let ts = i64::try_from(now).unwrap_or(0);
        Ok(Samples {
            valid: key.sign(&claims(now, now + 3600))?,
            client_uat: now,
            expired: key.sign(&claims(now - 600, now - 540))?,
            created: SignedDelivery::sign(
                webhook_secret,
                "msg_demo_created",
                ts,
                &event("user.created", user(now * 1000, "pro")),
            )?,
            updated: SignedDelivery::sign(
                webhook_secret,
                "msg_demo_updated",
                ts,
                &event("user.updated", user(now * 1000 + 1, "enterprise")),
            )?,
        })
    }
}

/// One request the demo makes and explains.
struct Step {
    what: &'static str,
    post: Option<String>,
    path: &'static str,
    headers: Vec<(&'static str, String)>,
}

async fn tour(proxy: SocketAddr, samples: &Samples) {
    let bearer = |t: &str| vec![("authorization", format!("Bearer {t}"))];
    let get = |what, path, headers| Step { what, post: None, path, headers };
    let steps = [
        Step {
            what: "signed webhook: user.created",
            post: Some(samples.created.body.clone()),
            path: "/webhooks/clerk",
            headers: samples.created.headers(),
        },
        get("valid token", "/api/hello", bearer(&samples.valid)),
        get("expired token", "/api/hello", bearer(&samples.expired)),
        get("no token", "/api/hello", vec![]),
        get("spoofed X-User-Id, no token", "/", vec![("x-user-id", "user_admin".into())]),
        get("valid token, admin-only route", "/admin/", bearer(&samples.valid)),
    ];
    let client = reqwest::Client::builder().no_proxy().build();
    let Ok(client) = client else { return };
    println!("Tried for you (what the gateway answered, and what the upstream saw):");
    for (i, step) in steps.iter().enumerate() {
        let url = format!("http://{proxy}{}", step.path);
        let mut request = match &step.post {
            Some(body) => client.post(url).body(body.clone()),
            None => client.get(url),
        };
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
        let method = if step.post.is_some() { "POST" } else { "GET" };
        println!("  {}. {:<30} {method:<4} {:<15} -> {outcome}", i + 1, step.what, step.path);
    }
    println!();
}

/// The identity headers from an echo body, or the gateway's own JSON answer.
fn summarize(body: &str) -> String {
    let Ok(json) = serde_json::from_str::<Value>(body) else { return body.trim().to_owned() };
    let Some(headers) = json.get("headers") else { return json.to_string() };
    let shown: Vec<String> = [
        "x-user-id",
        "x-session-id",
        "x-org-role",
        "x-org-permissions",
        "x-user-email",
        "x-user-metadata",
        "x-auth-status",
    ]
    .iter()
    .filter_map(|name| match headers.get(*name).and_then(Value::as_str) {
        Some(value) => Some(format!("{name}: {value}")),
        None if *name == "x-user-id" => Some(format!("{name}: (none)")),
        None => None,
    })
    .collect();
    format!("upstream saw {}", shown.join(", "))
}

fn print_curl_lines(proxy: SocketAddr, samples: &Samples) {
    println!("Paste these (the valid token lasts one hour, the webhook signature five minutes):");
    println!("  TOKEN={}", samples.valid);
    println!("  EXPIRED={}", samples.expired);
    println!("  curl -s http://{proxy}/api/hello -H \"Authorization: Bearer $TOKEN\"");
    println!("  curl -s --cookie \"__session=$TOKEN; __client_uat={}\" http://{proxy}/api/hello", samples.client_uat);
    println!("  curl -s -i http://{proxy}/api/hello -H \"Authorization: Bearer $EXPIRED\"");
    println!("  curl -s http://{proxy}/ -H \"X-User-Id: user_admin\"");
    println!("  curl -s -i http://{proxy}/admin/ -H \"Authorization: Bearer $TOKEN\"");
    let w = &samples.updated;
    println!(
        "  curl -s http://{proxy}/webhooks/clerk -H 'svix-id: {}' -H 'svix-timestamp: {}' -H 'svix-signature: {}' -d '{}'",
        w.id, w.timestamp, w.signature, w.body
    );
    println!("  (then the first curl again: x-user-metadata now says \"enterprise\")");
    println!();
}

async fn spawn_helper<H: Handler>(handler: H) -> Result<SocketAddr, Error> {
    let listener = bind_loopback().await?;
    let addr = local_addr(&listener)?;
    tokio::spawn(server::serve(listener, ServeOptions::default(), handler, pending::<()>()));
    Ok(addr)
}

async fn bind_loopback() -> Result<TcpListener, Error> {
    let addr: SocketAddr = ([127, 0, 0, 1], 0).into();
    TcpListener::bind(addr).await.map_err(|source| Error::Bind { addr, source })
}

fn local_addr(listener: &TcpListener) -> Result<SocketAddr, Error> {
    listener.local_addr().map_err(Error::io("the listener's address"))
}

async fn wait_until_ready(admin: SocketAddr) -> Result<(), Error> {
    let client = reqwest::Client::builder().no_proxy().build().map_err(Error::HttpClient)?;
    let step = Duration::from_millis(50);
    for _ in 0..100 {
        if let Ok(response) = client.get(format!("http://{admin}/readyz")).send().await
            && response.status().is_success()
        {
            return Ok(());
        }
        tokio::time::sleep(step).await;
    }
    Err(Error::NotReady { waited: step * 100 })
}
