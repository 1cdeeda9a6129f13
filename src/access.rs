//! The access-log record of one request: filled in as the pipeline goes (route, auth
//! outcome, normalized path) and written as one line on the `clerk_gateway::access` target
//! once the answer is known. It also carries the `Set-Cookie` values the session decision
//! wants on that answer, whatever the answer turns out to be; those are never logged.

use std::time::Duration;

use http::{HeaderValue, Method};

/// What the access log (and the request metrics) learn about a request as it goes.
pub struct AccessRecord {
    /// Route index (the webhook counts as one past the last route); `None` = no route.
    pub route: Option<usize>,
    /// Authentication outcome label (`-` until something decides).
    pub auth: &'static str,
    /// The normalized path, without the query.
    pub path: String,
    /// `Set-Cookie` values for the response.
    pub set_cookies: Vec<HeaderValue>,
}

impl Default for AccessRecord {
    fn default() -> Self {
        AccessRecord { route: None, auth: "-", path: String::new(), set_cookies: Vec::new() }
    }
}

impl AccessRecord {
    /// Writes the access-log line: never a token, cookie or key.
    pub fn log(&self, method: &Method, status: u16, elapsed: Duration, request_id: &HeaderValue) {
        tracing::info!(
            target: "clerk_gateway::access",
            %method,
            path = %self.path,
            status,
            route = self.route.map_or(-1, |r| r as i64),
            auth = self.auth,
            ms = elapsed.as_secs_f64() * 1000.0,
            request_id = request_id.to_str().unwrap_or("-"),
            "request"
        );
    }
}
