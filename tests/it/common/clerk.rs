//! A fake Clerk: the Backend API (users by offset or cursor, user count, single users with
//! Clerk's 404 shape, JWKS, handshake payloads, session revocation, machine-token
//! verification, scripted failures; the secret key `sk_test_fake` required) and the Frontend API's handshake and client paths,
//! on one loopback server that records every request.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use clerk_gateway::body::{self, Body};
use clerk_gateway::server::{Handler, Remote};
use http::{HeaderMap, Request, Response, StatusCode};
use hyper::body::Incoming;
use jsonwebtoken::Algorithm;
use serde_json::{Value, json};

use super::CLIENT_UAT;
use super::keys::key_a;
use super::servers::spawn_forever;

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
    /// Machine tokens the verify endpoints know: (endpoint path, token) → Clerk's object.
    pub machine_tokens: Mutex<BTreeMap<(String, String), Value>>,
    /// While set, the verify endpoints wait until `release` is notified (or forever).
    pub hold_verifications: std::sync::atomic::AtomicBool,
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
        let addr = spawn_forever(BapiHandler { state: state.clone() }).await;
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

    /// Makes `POST {endpoint}` (e.g. `/v1/api_keys/verify`) answer `object` for `token`.
    pub fn machine_token(&self, endpoint: &str, token: &str, object: Value) {
        self.state.machine_tokens.lock().unwrap().insert((endpoint.to_owned(), token.to_owned()), object);
    }
}

/// The body field each machine-token verify endpoint reads the token from.
const VERIFY_ENDPOINTS: [(&str, &str); 3] = [
    ("/v1/api_keys/verify", "secret"),
    ("/v1/m2m_tokens/verify", "token"),
    ("/v1/oauth_applications/access_tokens/verify", "access_token"),
];

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
    async fn call(&self, _remote: &Remote, request: Request<Incoming>) -> Response<Body> {
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
        if let Some((_, field)) = VERIFY_ENDPOINTS.iter().find(|(p, _)| *p == path) {
            return self.verify_machine_token(request, &path, field).await;
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
    /// Clerk's machine-token verification: the object for a known token, else 404.
    async fn verify_machine_token(&self, request: Request<Incoming>, path: &str, field: &str) -> Response<Body> {
        use http_body_util::BodyExt;
        let body = request.into_body().collect().await.unwrap().to_bytes();
        let token = serde_json::from_slice::<Value>(&body).ok().and_then(|v| v[field].as_str().map(str::to_owned));
        if self.state.hold_verifications.load(Ordering::SeqCst) {
            self.state.release.notified().await;
        }
        let known = token.and_then(|t| self.state.machine_tokens.lock().unwrap().get(&(path.to_owned(), t)).cloned());
        match known {
            Some(object) => json_reply(200, object),
            None => clerk_error(404, "resource_not_found"),
        }
    }

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
