//! The access-log record of one request: filled in as the pipeline goes (route, auth
//! outcome and reason, who, normalized path, upstream time, client) and written as one line
//! on the `clerk_gateway::access` target once the response body has been sent (or dropped),
//! with the bytes that passed each way. It also carries the `Set-Cookie` values the session
//! decision wants on the answer, whatever the answer turns out to be; those are never logged.

use std::io::Write;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Method};
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::BodyExt;

use crate::body::{Body, BoxError};
use crate::identity::{Identity, Machine};
use crate::log_line::{self, Line};
use crate::metrics::{InFlightRequest, RouteMetrics};

/// What the access log (and the request metrics) learn about a request as it goes.
pub struct AccessRecord {
    /// Route index (the webhook counts as one past the last route); `None` = no route.
    pub route: Option<usize>,
    /// The route's name (`route[].name`, else its host and path), or the gateway path.
    pub route_name: Option<Arc<str>>,
    /// Authentication outcome: `signed-in`, `signed-out`, `handshake`, `preflight`, or `-`
    /// until something decides.
    pub auth: &'static str,
    /// Why a request is signed out (a reason code), else `-`.
    pub reason: &'static str,
    /// Who, once signed in with a session.
    pub identity: Option<Arc<Identity>>,
    /// Which machine token, once signed in with one.
    pub machine: Option<Arc<Machine>>,
    /// The normalized path, without the query.
    pub path: String,
    /// The client: the peer, or the address a trusted proxy names.
    pub client: Option<IpAddr>,
    /// Time to the upstream's response head, when forwarded.
    pub upstream: Option<Duration>,
    /// Request body bytes read, shared with the body on its way upstream.
    pub bytes_in: Option<Arc<AtomicU64>>,
    /// `Set-Cookie` values for the response.
    pub set_cookies: Vec<HeaderValue>,
}

impl Default for AccessRecord {
    fn default() -> Self {
        AccessRecord {
            route: None,
            route_name: None,
            auth: "-",
            reason: "-",
            identity: None,
            machine: None,
            path: String::new(),
            client: None,
            upstream: None,
            bytes_in: None,
            set_cookies: Vec::new(),
        }
    }
}

impl AccessRecord {
    /// A counter for the request body's bytes, kept here for the log line.
    pub fn count_bytes_in(&mut self) -> Arc<AtomicU64> {
        self.bytes_in.get_or_insert_with(Arc::default).clone()
    }

    /// `body`, which writes this record's line once it has been sent or dropped.
    pub fn log_after(self, line: LineFacts, body: Body) -> Body {
        Logged { body, bytes_out: 0, record: Some((self, line)) }.boxed()
    }

    fn write(&self, line: &LineFacts, bytes_out: u64) {
        if !tracing::enabled!(target: TARGET, tracing::Level::INFO) {
            return;
        }
        let micros = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let identity = self.identity.as_deref();
        let fields = Fields {
            method: line.method.as_str(),
            path: &self.path,
            route: self.route_name.as_deref().unwrap_or("-"),
            status: line.status,
            duration_us: micros(line.started.elapsed()),
            upstream_us: self.upstream.map(micros),
            bytes_in: self.bytes_in.as_ref().map_or(0, |n| n.load(Ordering::Relaxed)),
            bytes_out,
            client: self.client,
            user_id: identity.map(|i| i.user_id.as_str()).or(self.machine.as_deref().map(|m| m.subject.as_str())),
            session_id: identity.map(|i| i.session_id.as_str()),
            request_id: line.request_id.to_str().unwrap_or("-"),
            auth: self.auth,
            reason: self.reason,
        };
        match log_line::sink() {
            Some(sink) => sink.info(TARGET, "request", |l| fields.write_to(l)),
            None => fields.trace(),
        }
    }
}

/// The access log's target.
const TARGET: &str = "clerk_gateway::access";

/// One access line's fields, in the order they are written.
struct Fields<'a> {
    method: &'a str,
    path: &'a str,
    route: &'a str,
    status: u16,
    duration_us: u64,
    upstream_us: Option<u64>,
    bytes_in: u64,
    bytes_out: u64,
    client: Option<IpAddr>,
    user_id: Option<&'a str>,
    session_id: Option<&'a str>,
    request_id: &'a str,
    auth: &'a str,
    reason: &'a str,
}

impl Fields<'_> {
    /// Into a hand-formatted line (the binary's log).
    fn write_to(&self, l: &mut Line<'_>) {
        l.bare("method", self.method);
        l.bare("path", self.path);
        l.str("route", self.route);
        l.u64("status", u64::from(self.status));
        l.u64("duration_us", self.duration_us);
        if let Some(upstream) = self.upstream_us {
            l.u64("upstream_us", upstream);
        }
        l.u64("bytes_in", self.bytes_in);
        l.u64("bytes_out", self.bytes_out);
        if let Some(client) = self.client {
            let mut text = [0u8; 48];
            l.bare("client", ip_text(client, &mut text));
        }
        if let Some(user_id) = self.user_id {
            l.str("user_id", user_id);
        }
        if let Some(session_id) = self.session_id {
            l.str("session_id", session_id);
        }
        l.str("request_id", self.request_id);
        l.str("auth", self.auth);
        l.str("reason", self.reason);
    }

    /// As a `tracing` event (no sink installed: a library user, the in-process tests).
    fn trace(&self) {
        tracing::info!(
            target: TARGET,
            method = %self.method,
            path = %self.path,
            route = self.route,
            status = self.status,
            duration_us = self.duration_us,
            upstream_us = self.upstream_us,
            bytes_in = self.bytes_in,
            bytes_out = self.bytes_out,
            client = self.client.map(tracing::field::display),
            user_id = self.user_id,
            session_id = self.session_id,
            request_id = self.request_id,
            auth = self.auth,
            reason = self.reason,
            "request"
        );
    }
}

/// `ip` as text, written into `buffer` without allocating.
fn ip_text(ip: IpAddr, buffer: &mut [u8; 48]) -> &str {
    let end = match ip.to_canonical() {
        // The common case without the formatting machinery.
        IpAddr::V4(v4) => {
            let mut end = 0;
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    buffer[end] = b'.';
                    end += 1;
                }
                let mut digits = itoa::Buffer::new();
                let digits = digits.format(octet).as_bytes();
                buffer[end..end + digits.len()].copy_from_slice(digits);
                end += digits.len();
            }
            end
        }
        v6 => {
            let mut cursor = std::io::Cursor::new(&mut buffer[..]);
            let _ = write!(cursor, "{v6}");
            usize::try_from(cursor.position()).unwrap_or(0)
        }
    };
    std::str::from_utf8(&buffer[..end]).unwrap_or("-")
}

/// What the handler knows of a request besides the record.
pub struct LineFacts {
    /// The method.
    pub method: Method,
    /// The answer's status.
    pub status: u16,
    /// When the request arrived.
    pub started: Instant,
    /// Its request id.
    pub request_id: HeaderValue,
    /// Where its whole duration is recorded.
    pub metrics: RouteMetrics,
    /// Keeps it counted in flight until the line is written.
    pub in_flight: InFlightRequest,
}

/// A response body that counts what it sends and writes the access line when done.
struct Logged {
    body: Body,
    bytes_out: u64,
    record: Option<(AccessRecord, LineFacts)>,
}

impl Logged {
    fn finish(&mut self) {
        if let Some((record, line)) = self.record.take() {
            line.metrics.request_duration(record.route, line.started.elapsed());
            record.write(&line, self.bytes_out);
        }
    }
}

impl HttpBody for Logged {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                self.bytes_out += frame.data_ref().map_or(0, |d| d.len() as u64);
                if self.body.is_end_stream() {
                    self.finish();
                }
            }
            Poll::Ready(_) => self.finish(),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::ip_text;

    #[test]
    fn addresses_are_written_as_text() {
        let mut buffer = [0u8; 48];
        for (ip, text) in [
            ("203.0.113.7", "203.0.113.7"),
            ("0.0.0.0", "0.0.0.0"),
            ("255.255.255.255", "255.255.255.255"),
            ("::ffff:10.0.0.1", "10.0.0.1"),
            ("2001:db8::1", "2001:db8::1"),
            ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
        ] {
            assert_eq!(ip_text(ip.parse().unwrap(), &mut buffer), text);
        }
    }
}
