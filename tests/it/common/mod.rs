//! Test harness: signing keys from tests/fixtures, a fake JWKS server that counts its hits,
//! an echo upstream, the real gateway on 127.0.0.1:0 with a manual clock, and HTTP helpers
//! that send paths exactly as written.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use clerk_gateway::body::{self, Body};
use clerk_gateway::server::{self, Handler, ServeOptions};
use clerk_gateway::{Clock, Config, Error, Listeners};
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The gateway's (manual) clock starts here in every in-process test.
pub const NOW: i64 = 1_800_000_000;
pub const NOW_MS: i64 = NOW * 1000;
pub const ISSUER: &str = "https://clerk.example.com";
pub const APP: &str = "https://app.example.com";
/// A production key for Frontend API `clerk.example.com` (the tokens' issuer); cookie
/// suffix `naoXFJnI`.
pub const PUBLISHABLE_KEY: &str = "pk_live_Y2xlcmsuZXhhbXBsZS5jb20k";
pub const SUFFIXED_COOKIE: &str = "__session_naoXFJnI";
pub const SUFFIXED_UAT: &str = "__client_uat_naoXFJnI";
/// A `__client_uat` value older than `claims()`' `iat`: a signed-in client.
pub const CLIENT_UAT: i64 = NOW - 10;

/// The cookies of a signed-in browser carrying `token`.
pub fn session_cookies(token: &str) -> String {
    format!("__session={token}; __client_uat={CLIENT_UAT}")
}

pub fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// An RSA key from the fixtures, with its JWK.
pub struct TestKey {
    pub kid: String,
    pub encoding: EncodingKey,
    pub jwk: Value,
}

impl TestKey {
    fn load(file: &str, kid: &str) -> TestKey {
        use rustls_pki_types::PrivatePkcs1KeyDer;
        use rustls_pki_types::pem::PemObject;
        let pem = fixture(file);
        let der = PrivatePkcs1KeyDer::from_pem_slice(pem.as_bytes()).expect("PKCS#1 PEM");
        let pair = aws_lc_rs::rsa::KeyPair::from_der(der.secret_pkcs1_der()).expect("RSA key");
        use aws_lc_rs::signature::KeyPair as _;
        let public = pair.public_key();
        let jwk = json!({
            "use": "sig", "kty": "RSA", "kid": kid, "alg": "RS256",
            "n": URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero()),
            "e": URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero()),
        });
        TestKey { kid: kid.into(), encoding: EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap(), jwk }
    }

    /// The JWK under another kid.
    pub fn jwk_as(&self, kid: &str) -> Value {
        let mut jwk = self.jwk.clone();
        jwk["kid"] = json!(kid);
        jwk
    }

    /// A session token: RS256, `typ` JWT, this key's kid.
    pub fn token(&self, claims: &Value) -> String {
        self.token_with_header(&json!({"alg": "RS256", "typ": "JWT", "kid": self.kid}), claims, Algorithm::RS256)
    }

    /// A token with an arbitrary header, signed with `alg`.
    pub fn token_with_header(&self, header: &Value, claims: &Value, alg: Algorithm) -> String {
        sign_raw(header, claims, &self.encoding, alg)
    }
}

/// Signs `header.claims` with `key`; the header is used exactly as given.
pub fn sign_raw(header: &Value, claims: &Value, key: &EncodingKey, alg: Algorithm) -> String {
    let input = format!("{}.{}", b64(&header.to_string()), b64(&claims.to_string()));
    let signature = jsonwebtoken::crypto::sign(input.as_bytes(), key, alg).expect("sign");
    format!("{input}.{signature}")
}

pub fn b64(text: &str) -> String {
    URL_SAFE_NO_PAD.encode(text)
}

/// Key A (kid `ins_a`), the one the fake JWKS serves by default.
pub fn key_a() -> &'static TestKey {
    static KEY: OnceLock<TestKey> = OnceLock::new();
    KEY.get_or_init(|| TestKey::load("rsa_a.pem", "ins_a"))
}

/// Key B (kid `ins_b`), unknown to the JWKS unless a test adds it.
pub fn key_b() -> &'static TestKey {
    static KEY: OnceLock<TestKey> = OnceLock::new();
    KEY.get_or_init(|| TestKey::load("rsa_b.pem", "ins_b"))
}

/// Valid session-token claims at `NOW`.
pub fn claims() -> Value {
    json!({
        "sub": "user_alice", "sid": "sess_1", "iss": ISSUER, "azp": APP,
        "iat": NOW - 1, "nbf": NOW - 6, "exp": NOW + 59, "v": 2,
    })
}

/// `claims()` with `key` set (or removed, for `Value::Null`).
pub fn claims_with(key: &str, value: Value) -> Value {
    let mut c = claims();
    if value.is_null() {
        c.as_object_mut().unwrap().remove(key);
    } else {
        c[key] = value;
    }
    c
}

fn quick_options() -> ServeOptions {
    ServeOptions {
        header_read_timeout: Duration::from_secs(10),
        max_header_bytes: 256 * 1024,
        tls: None,
        tls_handshake_timeout: Duration::from_secs(5),
        grace_timeout: Duration::from_secs(1),
        detached: Default::default(),
    }
}

/// Serves `handler` on 127.0.0.1:0 until the returned sender is dropped or fired.
pub async fn spawn_server<H: Handler>(handler: H) -> (SocketAddr, oneshot::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(server::serve(listener, quick_options(), handler, async move {
        let _ = stopped.await;
    }));
    (addr, stop)
}

/// A port that refuses connections.
pub async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

// ---------------------------------------------------------------- fake JWKS

#[derive(Clone)]
struct JwksHandler {
    state: Arc<JwksState>,
}

struct JwksState {
    keys: Mutex<Vec<Value>>,
    hits: AtomicUsize,
    status: AtomicU16,
    seen_headers: Mutex<Vec<HeaderMap>>,
}

impl Handler for JwksHandler {
    async fn call(&self, _peer: SocketAddr, request: Request<Incoming>) -> Response<Body> {
        let s = &self.state;
        s.hits.fetch_add(1, Ordering::SeqCst);
        s.seen_headers.lock().unwrap().push(request.headers().clone());
        let status = s.status.load(Ordering::SeqCst);
        let body = if status == 200 {
            json!({"keys": *s.keys.lock().unwrap()}).to_string()
        } else {
            json!({"errors": [{"code": "unexpected_error", "message": "down", "long_message": "down"}]}).to_string()
        };
        let mut response = Response::new(body::full(body));
        *response.status_mut() = StatusCode::from_u16(status).unwrap();
        response
    }
}

/// A JWKS endpoint that counts requests and can be switched to failing or stopped.
pub struct FakeJwks {
    pub addr: SocketAddr,
    state: Arc<JwksState>,
    stop: Option<oneshot::Sender<()>>,
}

impl FakeJwks {
    pub async fn start(keys: Vec<Value>) -> FakeJwks {
        let state = Arc::new(JwksState {
            keys: Mutex::new(keys),
            hits: AtomicUsize::new(0),
            status: AtomicU16::new(200),
            seen_headers: Mutex::new(Vec::new()),
        });
        let (addr, stop) = spawn_server(JwksHandler { state: state.clone() }).await;
        FakeJwks { addr, state, stop: Some(stop) }
    }

    /// Serving key A only.
    pub async fn with_key_a() -> FakeJwks {
        Self::start(vec![key_a().jwk.clone()]).await
    }

    pub fn url(&self) -> String {
        format!("http://{}/v1/jwks", self.addr)
    }

    pub fn hits(&self) -> usize {
        self.state.hits.load(Ordering::SeqCst)
    }

    pub fn set_keys(&self, keys: Vec<Value>) {
        *self.state.keys.lock().unwrap() = keys;
    }

    pub fn set_status(&self, status: u16) {
        self.state.status.store(status, Ordering::SeqCst);
    }

    pub fn last_headers(&self) -> HeaderMap {
        self.state.seen_headers.lock().unwrap().last().cloned().unwrap_or_default()
    }

    /// Closes the listener: connections are refused from now on.
    pub fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

// ---------------------------------------------------------------- echo upstream

/// Echoes method, path, headers and body length as JSON. Special paths: `.../slow?ms=N`
/// waits first; `.../hop` answers with hop-by-hop headers; `Upgrade` requests get 101 and
/// an echoing connection.
#[derive(Clone, Default)]
pub struct Echo;

impl Handler for Echo {
    async fn call(&self, _peer: SocketAddr, mut request: Request<Incoming>) -> Response<Body> {
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
    let upgrade = hyper::upgrade::on(request);
    tokio::spawn(async move {
        if let Ok(upgraded) = upgrade.await {
            let mut io = TokioIo::new(upgraded);
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

pub async fn spawn_upstream() -> SocketAddr {
    let (addr, stop) = spawn_server(Echo).await;
    std::mem::forget(stop);
    addr
}

// ---------------------------------------------------------------- the gateway

pub struct TestGateway {
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub clock: Clock,
    stop: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<Result<(), Error>>>,
}

impl TestGateway {
    /// Starts the gateway on `toml` with a manual clock at `NOW_MS`, and waits until ready.
    pub async fn start(toml: &str) -> TestGateway {
        let gw = Self::start_unready(toml).await;
        gw.wait_ready().await;
        gw
    }

    /// Starts the gateway without waiting for readiness.
    pub async fn start_unready(toml: &str) -> TestGateway {
        init_logs();
        let config = Config::from_toml(toml, &|_| None).unwrap_or_else(|e| panic!("test config: {e}"));
        let proxy = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (addr, admin_addr) = (proxy.local_addr().unwrap(), admin.local_addr().unwrap());
        let clock = Clock::manual(NOW_MS);
        let (stop, stopped) = oneshot::channel::<()>();
        let handle = tokio::spawn(clerk_gateway::run(config, Listeners { proxy, admin }, clock.clone(), async move {
            let _ = stopped.await;
        }));
        TestGateway { addr, admin: admin_addr, clock, stop: Some(stop), handle: Some(handle) }
    }

    pub async fn wait_ready(&self) {
        for _ in 0..400 {
            if self.admin_get("/readyz").await.status == 200 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("gateway not ready after 10 s");
    }

    pub async fn admin_get(&self, path: &str) -> Reply {
        send(self.admin, get_request(path, &[])).await
    }

    pub async fn metrics(&self) -> String {
        String::from_utf8_lossy(&self.admin_get("/metrics").await.body).into_owned()
    }

    /// The value of one metric line (exact series name with labels).
    pub async fn metric(&self, series: &str) -> f64 {
        let text = self.metrics().await;
        text.lines().find_map(|l| l.strip_prefix(series).and_then(|rest| rest.trim().parse().ok())).unwrap_or(0.0)
    }

    pub async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        send(self.addr, get_request(path, headers)).await
    }

    /// GET with a Bearer token.
    pub async fn get_with_token(&self, path: &str, token: &str) -> Reply {
        self.get(path, &[("authorization", &format!("Bearer {token}"))]).await
    }

    /// Fires the shutdown future; returns once `run` has returned.
    pub fn trigger_shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    pub async fn stopped(&mut self) -> Result<(), Error> {
        self.handle.take().unwrap().await.unwrap()
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        if let Some(handle) = &self.handle {
            handle.abort();
        }
    }
}

/// Per-test logs, opt-in: `RUST_LOG=clerk_gateway=debug cargo test NAME -- --nocapture`.
fn init_logs() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .try_init();
    }
}

/// The standard test config: fake JWKS, issuer and azp checks, one upstream for all routes.
pub fn standard_config(jwks: &FakeJwks, upstream: SocketAddr) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
drain_delay = "0s"
grace_timeout = "5s"

[admin]
listen = "127.0.0.1:0"

[clerk]
jwks_url = "{jwks}"
publishable_key = "{PUBLISHABLE_KEY}"
issuer = "{ISSUER}"
authorized_parties = ["{APP}"]
sign_in_url = "https://accounts.example.com/sign-in"

[mirror]
path = ":memory:"

[[route]]
path = "/api/"
upstream = "http://{upstream}"

[[route]]
path = "/admin/"
upstream = "http://{upstream}"
require = {{ org_role = ["org:admin", "org:owner"] }}

[[route]]
path = "/billing/"
upstream = "http://{upstream}"
require = {{ permission = ["org:billing:manage"] }}

[[route]]
path = "/optional/"
upstream = "http://{upstream}"
auth = "optional"

[[route]]
path = "/public/"
upstream = "http://{upstream}"
auth = "public"

[[route]]
path = "/slow/"
upstream = "http://{upstream}"
auth = "public"
timeout = "300ms"

[[route]]
path = "/upload/"
upstream = "http://{upstream}"
auth = "public"
max_body = 1024

[[route]]
path = "/stripped/"
upstream = "http://{upstream}/base"
auth = "public"
strip_prefix = true

[[route]]
path = "/posts/"
methods = ["POST"]
upstream = "http://{upstream}"
auth = "public"
"#,
        jwks = jwks.url()
    )
}

/// Fake JWKS with key A, an echo upstream and the gateway on the standard config.
pub async fn standard() -> (TestGateway, FakeJwks) {
    let jwks = FakeJwks::with_key_a().await;
    let upstream = spawn_upstream().await;
    let gw = TestGateway::start(&standard_config(&jwks, upstream)).await;
    (gw, jwks)
}

// ---------------------------------------------------------------- HTTP

/// A response, fully read.
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// The `reason` of a 401 body.
    pub fn reason(&self) -> String {
        self.json()["reason"].as_str().unwrap_or("").to_owned()
    }

    /// What the echo upstream saw for `header` (all values joined by `|`), if anything.
    pub fn seen(&self, header: &str) -> Option<String> {
        let values = self.json()["headers"][header.to_ascii_lowercase()].as_array()?.clone();
        Some(values.iter().filter_map(Value::as_str).collect::<Vec<_>>().join("|"))
    }

    /// The path the echo upstream saw.
    pub fn seen_path(&self) -> String {
        self.json()["path"].as_str().unwrap_or("").to_owned()
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

/// The status code of a raw HTTP/1.1 response.
pub fn raw_status(response: &str) -> u16 {
    response.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}

// ---------------------------------------------------------------- fake Backend API

/// A scripted answer the fake Backend API gives instead of the real one.
#[derive(Clone)]
pub struct Scripted {
    /// Applies to requests whose path starts with this.
    pub path_prefix: &'static str,
    /// Skip this many matching requests first.
    pub after: usize,
    pub status: u16,
    pub retry_after: Option<u64>,
}

#[derive(Default)]
pub struct BapiState {
    /// Users newest first, as Clerk lists them.
    pub users: Mutex<Vec<Value>>,
    pub keys: Mutex<Vec<Value>>,
    pub script: Mutex<Vec<Scripted>>,
    pub requests: Mutex<Vec<String>>,
    /// While set, `GET /v1/users/{id}` waits until `release` is notified.
    pub hold_lookups: std::sync::atomic::AtomicBool,
    pub release: tokio::sync::Notify,
    /// Frontend API side: what the handshake hands out and how.
    pub handshake: Mutex<FakeHandshake>,
    /// Nonces issued by the handshake → their directives.
    pub nonces: Mutex<BTreeMap<String, Vec<String>>>,
    /// Every request with its query and headers, for assertions.
    pub seen: Mutex<Vec<(String, String, HeaderMap)>>,
}

/// How the fake Frontend API answers `GET /v1/client/handshake`.
#[derive(Clone, Default)]
pub struct FakeHandshake {
    /// The session token to hand out (`None`: the client is signed out).
    pub session_token: Option<String>,
    /// Send a handshake JWT instead of a nonce.
    pub as_jwt: bool,
    /// Deliver it as a cookie (production) instead of a query parameter.
    pub as_cookie: bool,
}

/// A fake Clerk Backend API: users (paginated by offset or starting_after), user count,
/// single users (404 in Clerk's error shape), JWKS; bearer `sk_test_fake` required.
#[derive(Clone)]
pub struct FakeBapi {
    pub addr: SocketAddr,
    pub state: Arc<BapiState>,
}

pub const FAKE_SECRET: &str = "sk_test_fake";

impl FakeBapi {
    pub async fn start(users: Vec<Value>) -> FakeBapi {
        let state = Arc::new(BapiState::default());
        *state.users.lock().unwrap() = users;
        *state.keys.lock().unwrap() = vec![key_a().jwk.clone()];
        let (addr, stop) = spawn_server(BapiHandler { state: state.clone() }).await;
        std::mem::forget(stop);
        FakeBapi { addr, state }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests seen whose path starts with `prefix`.
    pub fn count(&self, prefix: &str) -> usize {
        self.state.requests.lock().unwrap().iter().filter(|p| p.starts_with(prefix)).count()
    }

    pub fn script(&self, scripted: Scripted) {
        self.state.script.lock().unwrap().push(scripted);
    }

    pub fn set_users(&self, users: Vec<Value>) {
        *self.state.users.lock().unwrap() = users;
    }
}

#[derive(Clone)]
struct BapiHandler {
    state: Arc<BapiState>,
}

fn json_reply(status: u16, body: Value) -> Response<Body> {
    let mut response = Response::new(body::full(body.to_string()));
    *response.status_mut() = StatusCode::from_u16(status).unwrap();
    response.headers_mut().insert("content-type", "application/json".parse().unwrap());
    response
}

fn clerk_error(status: u16, code: &str) -> Response<Body> {
    json_reply(
        status,
        json!({"errors": [{"code": code, "message": code, "long_message": code}], "clerk_trace_id": "t"}),
    )
}

impl Handler for BapiHandler {
    async fn call(&self, _peer: SocketAddr, request: Request<Incoming>) -> Response<Body> {
        let s = &self.state;
        let path = request.uri().path().to_owned();
        let query: BTreeMap<String, String> = request
            .uri()
            .query()
            .unwrap_or("")
            .split('&')
            .filter_map(|kv| kv.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
            .collect();
        s.requests.lock().unwrap().push(path.clone());
        s.seen.lock().unwrap().push((
            path.clone(),
            request.uri().query().unwrap_or("").to_owned(),
            request.headers().clone(),
        ));
        if path == "/v1/client/handshake" {
            return self.handshake(request.uri());
        }
        if path == "/v1/client" || path.starts_with("/v1/client/") || path.starts_with("/v1/environment") {
            let mut response = json_reply(200, json!({"fapi": path, "query": request.uri().query()}));
            response.headers_mut().insert("set-cookie", "__client=fapi-client; Path=/; HttpOnly".parse().unwrap());
            return response;
        }
        if request.headers().get("authorization").and_then(|v| v.to_str().ok())
            != Some(&format!("Bearer {FAKE_SECRET}"))
        {
            return clerk_error(401, "clerk_key_invalid");
        }
        if path == "/v1/clients/handshake_payload" {
            let nonce = query.get("nonce").cloned().unwrap_or_default();
            return match s.nonces.lock().unwrap().remove(&nonce) {
                Some(directives) => json_reply(200, json!({"directives": directives})),
                None => clerk_error(404, "resource_not_found"),
            };
        }
        if let Some(sid) = path.strip_prefix("/v1/sessions/").and_then(|p| p.strip_suffix("/revoke")) {
            return json_reply(200, json!({"id": sid, "object": "session", "status": "revoked"}));
        }
        if let Some(scripted) = self.take_script(&path) {
            let mut response = clerk_error(scripted.status, "scripted");
            if let Some(secs) = scripted.retry_after {
                response.headers_mut().insert("retry-after", secs.to_string().parse().unwrap());
            }
            return response;
        }
        if path == "/v1/jwks" {
            return json_reply(200, json!({"keys": *s.keys.lock().unwrap()}));
        }
        if path == "/v1/users/count" {
            let n = s.users.lock().unwrap().len();
            return json_reply(200, json!({"object": "total_count", "total_count": n}));
        }
        if path == "/v1/users" {
            return self.list(&query);
        }
        if let Some(id) = path.strip_prefix("/v1/users/") {
            if s.hold_lookups.load(Ordering::SeqCst) {
                s.release.notified().await;
            }
            let user = s.users.lock().unwrap().iter().find(|u| u["id"] == id).cloned();
            return match user {
                Some(user) => json_reply(200, user),
                None => clerk_error(404, "resource_not_found"),
            };
        }
        clerk_error(404, "resource_not_found")
    }
}

impl BapiHandler {
    /// Mints fresh cookies and sends the browser back to `redirect_url` with a nonce or a
    /// handshake JWT, by query parameter or cookie.
    fn handshake(&self, uri: &http::Uri) -> Response<Body> {
        let plan = self.state.handshake.lock().unwrap().clone();
        let redirect = uri
            .query()
            .and_then(|q| url_pairs(q).into_iter().find(|(k, _)| k == "redirect_url"))
            .map(|(_, v)| v)
            .unwrap_or_default();
        let mut directives = vec!["__clerk_handshake_nonce=; Path=/; Max-Age=0".to_owned()];
        match &plan.session_token {
            Some(token) => {
                directives.push(format!("__session={token}; Path=/; SameSite=Lax"));
                directives.push(format!("__client_uat={CLIENT_UAT}; Path=/; SameSite=Lax; Max-Age=31536000"));
            }
            None => directives.push("__client_uat=0; Path=/; SameSite=Lax".to_owned()),
        }
        let (name, value) = if plan.as_jwt {
            let jwt = key_a().token_with_header(
                &json!({"alg": "RS256", "typ": "JWT", "kid": key_a().kid}),
                &json!({"handshake": directives}),
                Algorithm::RS256,
            );
            ("__clerk_handshake", jwt)
        } else {
            let nonce = format!("nonce_{}", self.state.nonces.lock().unwrap().len() + 1);
            self.state.nonces.lock().unwrap().insert(nonce.clone(), directives);
            ("__clerk_handshake_nonce", nonce)
        };
        let mut back = reqwest::Url::parse(&redirect).unwrap();
        let mut response = Response::builder().status(307);
        if plan.as_cookie {
            response = response.header("set-cookie", format!("{name}={value}; Path=/"));
        } else {
            back.query_pairs_mut().append_pair(name, &value);
        }
        response.header("location", back.as_str()).body(body::empty()).unwrap()
    }

    fn take_script(&self, path: &str) -> Option<Scripted> {
        let mut script = self.state.script.lock().unwrap();
        let i = script.iter().position(|s| path.starts_with(s.path_prefix))?;
        if script[i].after > 0 {
            script[i].after -= 1;
            return None;
        }
        Some(script.remove(i))
    }

    fn list(&self, query: &BTreeMap<String, String>) -> Response<Body> {
        let users = self.state.users.lock().unwrap();
        let limit: usize = query.get("limit").and_then(|l| l.parse().ok()).unwrap_or(10);
        let start = match (query.get("starting_after"), query.get("offset")) {
            (Some(after), _) => match users.iter().position(|u| u["id"] == after.as_str()) {
                Some(i) => i + 1,
                None => return clerk_error(422, "form_param_value_invalid"),
            },
            (None, Some(offset)) => offset.parse().unwrap_or(0),
            (None, None) => 0,
        };
        let page: Vec<Value> = users.iter().skip(start).take(limit).cloned().collect();
        json_reply(200, Value::Array(page))
    }
}

/// Decoded `key=value` pairs of a query string.
pub fn url_pairs(query: &str) -> Vec<(String, String)> {
    reqwest::Url::parse(&format!("http://x/?{query}"))
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// A Clerk User object.
pub fn clerk_user(id: &str, first_name: &str, updated_at: i64, public_metadata: Value) -> Value {
    json!({
        "id": id, "object": "user", "username": null, "first_name": first_name, "last_name": "Tester",
        "image_url": format!("https://img.example.com/{id}"), "has_image": true,
        "primary_email_address_id": format!("idn_{id}"),
        "email_addresses": [{"id": format!("idn_{id}"), "object": "email_address",
                             "email_address": format!("{}@example.com", id.trim_start_matches("user_"))}],
        "public_metadata": public_metadata, "private_metadata": {"internal": true}, "unsafe_metadata": {},
        "created_at": 1_700_000_000_000_i64, "updated_at": updated_at,
    })
}

// ---------------------------------------------------------------- webhooks

pub const WEBHOOK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// `svix-signature` for a delivery, computed here independently of the gateway.
pub fn svix_signature(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> String {
    use base64::engine::general_purpose::STANDARD;
    let key_bytes = STANDARD.decode(secret.trim_start_matches("whsec_")).unwrap();
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &key_bytes);
    let mut content = format!("{id}.{timestamp}.").into_bytes();
    content.extend_from_slice(body);
    format!("v1,{}", STANDARD.encode(aws_lc_rs::hmac::sign(&key, &content)))
}

/// An event envelope.
pub fn event(event_type: &str, data: Value) -> Value {
    json!({"data": data, "object": "event", "type": event_type, "timestamp": NOW_MS, "instance_id": "ins_test"})
}

impl TestGateway {
    /// POSTs a correctly signed delivery to `/webhooks/clerk`.
    pub async fn deliver(&self, id: &str, event: &Value) -> Reply {
        let body = event.to_string().into_bytes();
        let signature = svix_signature(WEBHOOK_SECRET, id, NOW, &body);
        let request = Request::post("/webhooks/clerk")
            .header("host", "gateway.test")
            .header("content-type", "application/json")
            .header("svix-id", id)
            .header("svix-timestamp", NOW.to_string())
            .header("svix-signature", signature)
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        send(self.addr, request).await
    }
}

/// The standard config plus a webhook endpoint (and, when given, Backend API settings).
pub fn webhook_config(jwks: &FakeJwks, upstream: SocketAddr, mirror_path: &str) -> String {
    standard_config(jwks, upstream).replace(
        "[mirror]\npath = \":memory:\"",
        &format!("[webhook]\nsigning_secret = \"{WEBHOOK_SECRET}\"\n\n[mirror]\npath = \"{mirror_path}\""),
    )
}
