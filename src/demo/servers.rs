//! The demo's two helper servers: a JWKS endpoint serving the demo key, and an echo upstream
//! that answers with the method, path and headers it received.

use std::collections::BTreeMap;
use std::sync::Arc;

use http::{Request, Response};
use hyper::body::Incoming;

use crate::body::{self, Body};
use crate::server::{Handler, Remote};

/// Serves one fixed JSON document at every path.
#[derive(Clone)]
pub struct JwksServer {
    document: Arc<String>,
}

impl JwksServer {
    /// Serves `document`.
    pub fn new(document: String) -> Self {
        JwksServer { document: Arc::new(document) }
    }
}

impl Handler for JwksServer {
    async fn call(&self, _remote: &Remote, _request: Request<Incoming>) -> Response<Body> {
        body::json(http::StatusCode::OK, self.document.as_str().to_owned())
    }
}

/// Answers every request with what it saw, as JSON.
#[derive(Clone, Default)]
pub struct EchoUpstream;

impl Handler for EchoUpstream {
    async fn call(&self, _remote: &Remote, request: Request<Incoming>) -> Response<Body> {
        let mut headers: BTreeMap<&str, String> = BTreeMap::new();
        for (name, value) in request.headers() {
            let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
            headers
                .entry(name.as_str())
                .and_modify(|existing| {
                    existing.push_str(", ");
                    existing.push_str(&value);
                })
                .or_insert(value);
        }
        let echo = serde_json::json!({
            "method": request.method().as_str(),
            "path": request.uri().path_and_query().map_or("/", |pq| pq.as_str()),
            "headers": headers,
        });
        body::json(http::StatusCode::OK, format!("{echo:#}\n"))
    }
}
