//! The admin listener: `/healthz` (the process serves), `/readyz` (keys loaded, a write
//! through the mirror's writer reaches its file, not draining), `/metrics` (Prometheus
//! text) and, with `[assertion]` on, `/.well-known/jwks.json` (the assertion's public key).
//! No auth, no routing, no proxying.

use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use crate::body::{self, Body};
use crate::server::{Handler, Remote};
use crate::state::Current;

/// The admin listener's handler.
#[derive(Clone)]
pub struct AdminHandler {
    current: Current,
}

impl AdminHandler {
    /// A handler over the configuration serving now.
    pub fn new(current: Current) -> Self {
        AdminHandler { current }
    }
}

impl Handler for AdminHandler {
    async fn call(&self, _remote: &Remote, request: Request<Incoming>) -> Response<Body> {
        if request.method() != Method::GET && request.method() != Method::HEAD {
            return text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n".into());
        }
        match request.uri().path() {
            "/healthz" => text(StatusCode::OK, "ok\n".into()),
            "/readyz" => self.readyz().await,
            "/metrics" => {
                let state = self.current.load_full();
                let users = state.users.mirror().count_users().await.map_or(f64::NAN, |n| n as f64);
                let gauges = [("clerk_gateway_mirror_users", "Live users in the mirror.", users)];
                let mut metrics = state.metrics.render(&gauges);
                crate::process::render(&mut metrics);
                let mut response = text(StatusCode::OK, metrics);
                response
                    .headers_mut()
                    .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
                response
            }
            "/.well-known/jwks.json" => match &self.current.load().assertion {
                Some(signer) => {
                    let mut response = Response::new(body::full(signer.jwks().to_owned()));
                    let headers = response.headers_mut();
                    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                    // A key generated at start changes with each restart; verifiers refetch
                    // on an unknown kid, and soon anyway.
                    headers.insert(CACHE_CONTROL, HeaderValue::from_static("max-age=60"));
                    response
                }
                None => text(StatusCode::NOT_FOUND, "assertions are off\n".into()),
            },
            _ => text(StatusCode::NOT_FOUND, "not found\n".into()),
        }
    }
}

impl AdminHandler {
    async fn readyz(&self) -> Response<Body> {
        let state = self.current.load_full();
        let keys = state.auth.keys().is_ready();
        let draining = state.is_draining();
        let mirror = state.users.mirror();
        let failing = mirror.readiness().await;
        let ready = state.is_ready() && failing.is_none();
        let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
        let mirror_line = match failing {
            None => format!("open ({})", mirror.path()),
            Some(reason) => format!("not writable ({}): {reason}", mirror.path()),
        };
        let body = format!(
            "{}\nkeys: {}\nmirror: {mirror_line}\nshutdown: {}\n",
            if status == StatusCode::OK { "ready" } else { "not ready" },
            if keys { "loaded" } else { "not loaded" },
            if draining { "draining" } else { "no" },
        );
        text(status, body)
    }
}

fn text(status: StatusCode, body: String) -> Response<Body> {
    let mut response = Response::new(body::full(body));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    response
}
