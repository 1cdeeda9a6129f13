//! A fake JWKS endpoint: serves a key set, counts its hits, remembers the headers it saw,
//! and can be switched to failing or stopped.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use clerk_gateway::body::{self, Body};
use clerk_gateway::server::{Handler, Remote};
use http::{HeaderMap, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::{Value, json};
use tokio::sync::oneshot;

use super::keys::key_a;
use super::servers::spawn_server;

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
    async fn call(&self, _remote: &Remote, request: Request<Incoming>) -> Response<Body> {
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

    /// The headers of the last request; panics when there was none.
    pub fn last_headers(&self) -> HeaderMap {
        self.state.seen_headers.lock().unwrap().last().cloned().expect("the fake JWKS was never asked")
    }

    /// Whether any request reached it with an `Authorization` header.
    pub fn saw_authorization(&self) -> bool {
        self.state.seen_headers.lock().unwrap().iter().any(|h| h.contains_key("authorization"))
    }

    /// Closes the listener: connections are refused from now on.
    pub fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
