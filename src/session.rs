//! The session decision for one request on the proxy listener: Clerk's rules (`browser`),
//! with handshakes allowed only for browser page loads the caller may redirect. The outcome
//! is counted in metrics and noted in the access record, with the cookies it wants set.

use http::Request;
use hyper::body::Incoming;

use crate::access::AccessRecord;
use crate::browser::{self, Decision, RequestInfo};
use crate::proxy::headers::{self, Peer};
use crate::state::AppState;

/// Decides the session of `request`: signed in, signed out, or a redirect through Clerk's
/// handshake (never when `may_redirect` is false). Counts the outcome and keeps the cookies
/// it wants set in `record`.
pub async fn decide_session(
    state: &AppState,
    peer: &Peer,
    request: &Request<Incoming>,
    may_redirect: bool,
    record: &mut AccessRecord,
) -> Decision {
    let public_url = || browser::public_url(request.headers(), request.uri(), peer.trusted, peer.scheme);
    let client = || headers::client_address(request.headers(), peer, |ip| state.is_trusted(ip));
    let info = RequestInfo {
        headers: request.headers(),
        uri: request.uri(),
        public_url: &public_url,
        client: &client,
        eligible: may_redirect && browser::is_document_request(request.method(), request.headers()),
        now_secs: state.clock.now_secs(),
    };
    let mut decision = state.browser.authenticate_request(&state.auth, &info).await;
    state.metrics.auth_outcome(decision.metric_index());
    record.set_cookies.append(decision.cookies_mut());
    (record.auth, record.reason) = match &decision {
        Decision::SignedIn { identity, .. } => {
            record.identity = Some(identity.clone());
            ("signed-in", "-")
        }
        Decision::SignedOut { reason, .. } => ("signed-out", reason.as_str()),
        Decision::Redirect { .. } => ("handshake", "-"),
    };
    decision
}
