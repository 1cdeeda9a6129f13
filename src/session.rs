//! The credential decision for one request on the proxy listener: machine tokens first,
//! where the route accepts them (Clerk's `acceptsToken`), else Clerk's session rules
//! (`browser`), with handshakes allowed only for browser page loads the caller may
//! redirect. The outcome is counted in metrics and noted in the access record, with the
//! cookies it wants set.

use std::sync::Arc;

use http::{HeaderMap, Request};

use crate::access::AccessRecord;
use crate::auth::Reason;
use crate::auth::credential::{self, Credential};
use crate::auth::machine::{self, MachineError};
use crate::browser::{self, Decision, RequestInfo};
use crate::identity::Machine;
use crate::proxy::forwarding::{self, Peer};
use crate::state::AppState;
use crate::token_type::{TokenType, TokenTypes};

/// Decides the session of `request`: signed in, signed out, or a redirect through Clerk's
/// handshake (never when `may_redirect` is false). Counts the outcome and keeps the cookies
/// it wants set in `record`.
pub async fn decide_session<B: Sync>(
    state: &AppState,
    peer: &Peer,
    request: &Request<B>,
    may_redirect: bool,
    record: &mut AccessRecord,
) -> Decision {
    let public_url = || browser::public_url(request.headers(), request.uri(), peer.trusted, peer.scheme);
    let client = || forwarding::client_address(request.headers(), peer, |ip| state.is_trusted(ip));
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

/// What the machine-token path made of a request.
#[derive(Debug)]
pub enum MachineDecision {
    /// A verified machine token.
    SignedIn(Arc<Machine>),
    /// No machine token that proves anything.
    SignedOut {
        /// Why.
        reason: Reason,
        /// The client offered a credential.
        token_sent: bool,
    },
    /// Clerk could not verify the token now: 503 with this reason.
    Unavailable(&'static str),
}

/// The machine-token decision for a route accepting `accepts`, as Clerk's
/// `authenticateRequest({ acceptsToken })` makes it: only the Authorization header counts;
/// a token of a kind the route does not accept is `token-type-mismatch`. `None` when the
/// request is the session path's to decide (sessions are accepted, and the header holds no
/// machine token). Counts the outcome and notes it in `record`.
pub async fn decide_machine(
    state: &AppState,
    headers: &HeaderMap,
    accepts: TokenTypes,
    record: &mut AccessRecord,
) -> Option<MachineDecision> {
    let sessions = accepts.contains(TokenType::SessionToken);
    let signed_out = |reason, token_sent| MachineDecision::SignedOut { reason, token_sent };
    let decision = match credential::bearer(headers) {
        Some(Credential::Bearer(token)) => {
            // Routes for sessions only look no further than an opaque prefix (no decoding).
            let kind = if accepts.any_machine() { machine::kind_of(token) } else { machine::opaque_kind(token)? };
            if kind == TokenType::SessionToken && sessions {
                return None;
            }
            if !accepts.contains(kind) {
                signed_out(Reason::TokenTypeMismatch, true)
            } else {
                match state.auth.verify_machine(kind, token).await {
                    Ok(machine) => MachineDecision::SignedIn(machine),
                    Err(MachineError::Refused(reason)) => signed_out(reason, true),
                    Err(MachineError::Unavailable(why)) => MachineDecision::Unavailable(why),
                }
            }
        }
        _ if sessions => return None,
        Some(_) => signed_out(Reason::TokenInvalid, true),
        None => signed_out(Reason::TokenMissing, false),
    };
    (record.auth, record.reason) = match &decision {
        MachineDecision::SignedIn(machine) => {
            state.metrics.auth_outcome(0);
            record.machine = Some(machine.clone());
            ("signed-in", "-")
        }
        MachineDecision::SignedOut { reason, .. } => {
            state.metrics.auth_outcome(reason.index() + 1);
            ("signed-out", reason.as_str())
        }
        MachineDecision::Unavailable(why) => {
            state.metrics.auth_outcome(Decision::UNAVAILABLE_METRIC);
            ("unavailable", *why)
        }
    };
    Some(decision)
}
