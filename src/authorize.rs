//! A routed request's authorization, the same for the proxy pipeline and forward-auth: the
//! route's auth mode, the credential decision (a machine token the route accepts, else
//! Clerk's session rules), the mirrored user, the route's `require` rules, and the identity
//! headers the outcome puts on a header map (the forwarded request's, or forward-auth's
//! answer). Reads the request; never changes it.

use std::sync::Arc;

use http::{HeaderMap, HeaderValue, Request};

use crate::access::AccessRecord;
use crate::assertion::{Facts, Subject, X_CLERK_GATEWAY_ASSERTION};
use crate::auth::{Reason, policy};
use crate::browser::{self, Decision};
use crate::config::{AuthMode, Route};
use crate::cors;
use crate::identity::{Identity, Machine};
use crate::proxy::forwarding::Peer;
use crate::proxy::headers;
use crate::reject::Reject;
use crate::session::{MachineDecision, decide_machine, decide_session};
use crate::state::AppState;
use crate::users::{self, UserProfile};

/// Who a request was admitted as.
pub enum Admitted {
    /// Nobody was asked to be anyone: a public route, or a CORS preflight let through.
    Anyone,
    /// An optional route without a valid credential.
    SignedOut,
    /// A session, with its mirrored user when there is one.
    Session(Arc<Identity>, Option<Arc<UserProfile>>),
    /// A machine token, with the user it acts for when mirrored.
    Machine(Arc<Machine>, Option<Arc<UserProfile>>),
}

impl Admitted {
    /// Sets the identity headers of this outcome on `headers`: the session's or the
    /// machine token's, the route's claim headers, the mirrored user's; `X-Auth-Status:
    /// signed-out` for a signed-out one.
    pub fn set_headers(&self, state: &AppState, route: &Route, headers: &mut HeaderMap) {
        let profile = match self {
            Admitted::Anyone => return,
            Admitted::SignedOut => return headers::set_signed_out(headers, &state.headers),
            Admitted::Session(identity, profile) => {
                headers::set_identity(headers, &state.headers, &identity.values);
                profile
            }
            Admitted::Machine(machine, profile) => {
                headers::set_machine(headers, &state.headers, &machine.values);
                profile
            }
        };
        for (header, path) in &route.claim_headers {
            if let Some(value) = self.claim(path) {
                headers.insert(header.clone(), value.clone());
            }
        }
        if let Some(profile) = profile {
            headers::set_user(headers, &state.headers, &profile.values);
        }
    }

    /// Whom the identity assertion speaks of.
    pub fn subject(&self) -> Subject<'_> {
        fn email(profile: &Option<Arc<UserProfile>>) -> Option<&str> {
            profile.as_deref().and_then(|p| p.record.primary_email.as_deref())
        }
        match self {
            Admitted::Anyone => Subject::Anyone,
            Admitted::SignedOut => Subject::SignedOut,
            Admitted::Session(identity, profile) => Subject::Session(identity, email(profile)),
            Admitted::Machine(machine, profile) => Subject::Machine(machine, email(profile)),
        }
    }

    /// Adds `X-Clerk-Gateway-Assertion` for a request forwarded to `route` with `method` and
    /// `path` (as the upstream receives it), when assertions are on.
    pub fn assert(&self, state: &AppState, route: &Route, method: &str, path: &str, headers: &mut HeaderMap) {
        let Some(signer) = &state.assertion else { return };
        let audience = route.upstream.to_string();
        let facts = Facts { audience: &audience, method, path, subject: self.subject() };
        if let Some(value) = signer.sign(&facts, state.clock.now_secs()) {
            headers.insert(X_CLERK_GATEWAY_ASSERTION.clone(), value);
        }
    }

    /// The header value of claim `path` of whoever signed in, when the token had it.
    fn claim(&self, path: &str) -> Option<&HeaderValue> {
        match self {
            Admitted::Session(identity, _) => identity.claim(path),
            Admitted::Machine(machine, _) => machine.claim(path),
            Admitted::Anyone | Admitted::SignedOut => None,
        }
    }
}

/// Applies the route's auth mode, credential rules and `require` rules to `request`.
///
/// # Errors
/// The answer instead: 401 (or a redirect for a browser page load), 403, 503.
pub async fn authorize<B: Sync>(
    state: &AppState,
    peer: &Peer,
    request: &Request<B>,
    route: &Route,
    record: &mut AccessRecord,
) -> Result<Admitted, Reject> {
    if route.auth == AuthMode::Public {
        return Ok(Admitted::Anyone);
    }
    if !route.authenticate_preflight && cors::is_preflight(request.method(), request.headers()) {
        record.auth = "preflight";
        return Ok(Admitted::Anyone);
    }
    let required = route.auth == AuthMode::Required;
    if let Some(decision) = decide_machine(state, request.headers(), route.accepts, record).await {
        return match decision {
            MachineDecision::SignedIn(machine) => {
                let profile = lookup(state, machine.user_id()).await;
                check_rules(route, (&*machine).into(), profile.as_deref())?;
                Ok(Admitted::Machine(machine, profile))
            }
            MachineDecision::SignedOut { reason, token_sent } if required => {
                Err(Reject::Unauthenticated { reason, token_sent })
            }
            MachineDecision::SignedOut { .. } => Ok(Admitted::SignedOut),
            MachineDecision::Unavailable(why) => Err(Reject::Unavailable(why)),
        };
    }
    match decide_session(state, peer, request, true, record).await {
        Decision::SignedIn { identity, .. } => {
            let profile = lookup(state, Some(&identity.user_id)).await;
            check_rules(route, (&*identity).into(), profile.as_deref())?;
            Ok(Admitted::Session(identity, profile))
        }
        Decision::SignedOut { reason, token_sent, .. } if required => {
            Err(signed_out_answer(state, peer, request, reason, token_sent))
        }
        Decision::SignedOut { .. } => Ok(Admitted::SignedOut),
        Decision::Redirect { location, .. } => Err(Reject::Redirect { location }),
    }
}

async fn lookup(state: &AppState, user_id: Option<&str>) -> Option<Arc<UserProfile>> {
    match user_id {
        Some(user_id) => state.users.lookup(user_id).await,
        None => None,
    }
}

/// The route's `require` rules, on required routes only (optional ones have none).
fn check_rules(route: &Route, holder: policy::Holder<'_>, profile: Option<&UserProfile>) -> Result<(), Reject> {
    if route.auth != AuthMode::Required {
        return Ok(());
    }
    policy::check(&route.require, holder, users::public_metadata(profile)).map_err(Reject::Forbidden)
}

/// A browser page load goes to sign in (when a sign-in URL is configured); anything else
/// gets 401.
fn signed_out_answer<B>(
    state: &AppState,
    peer: &Peer,
    request: &Request<B>,
    reason: Reason,
    token_sent: bool,
) -> Reject {
    if let Some(sign_in) = &state.sign_in_url
        && browser::is_document_request(request.method(), request.headers())
    {
        let mut location = sign_in.clone();
        if let Some(url) = browser::public_url(request.headers(), request.uri(), peer.trusted, peer.scheme) {
            location.query_pairs_mut().append_pair("redirect_url", url.as_str());
        }
        if let Ok(location) = HeaderValue::try_from(location.as_str()) {
            return Reject::Redirect { location };
        }
    }
    Reject::Unauthenticated { reason, token_sent }
}
