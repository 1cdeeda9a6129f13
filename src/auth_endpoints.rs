//! The gateway's own `/auth` endpoints, replacing the seed app's: `GET /auth/me` (the
//! signed-in user, session and organization), `POST /auth/logout` (revoke at Clerk and here,
//! clear the session cookies) and `GET /auth/login` (off to the sign-in page). The prefix is
//! configurable. Redirect targets must stay on the request's own origin.

use http::header::{CACHE_CONTROL, LOCATION, ORIGIN};
use http::{HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use reqwest::Url;
use serde_json::{Value, json};

use crate::access::AccessRecord;
use crate::body::{self, Body};
use crate::browser::{self, Decision, cookies};
use crate::proxy::forwarding::Peer;
use crate::reject::Reject;
use crate::session::decide_session;
use crate::state::AppState;

static SEC_FETCH_SITE: HeaderName = HeaderName::from_static("sec-fetch-site");

/// One of the endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthEndpoint {
    /// `GET {prefix}/me`.
    Me,
    /// `POST {prefix}/logout`.
    Logout,
    /// `GET {prefix}/login`.
    Login,
}

impl AuthEndpoint {
    /// The endpoint at `path` under `prefix`, if any.
    pub fn at(prefix: &str, path: &str) -> Option<AuthEndpoint> {
        match path.strip_prefix(prefix)? {
            "/me" => Some(AuthEndpoint::Me),
            "/logout" => Some(AuthEndpoint::Logout),
            "/login" => Some(AuthEndpoint::Login),
            _ => None,
        }
    }

    fn method(self) -> Method {
        match self {
            AuthEndpoint::Logout => Method::POST,
            AuthEndpoint::Me | AuthEndpoint::Login => Method::GET,
        }
    }

    fn allowed(self) -> &'static str {
        match self {
            AuthEndpoint::Logout => "POST",
            AuthEndpoint::Me | AuthEndpoint::Login => "GET",
        }
    }
}

/// Answers an endpoint request.
///
/// # Errors
/// A `Reject`: 405, 401 (`/me` signed out), 403 (cross-site logout), 400 (a redirect off
/// this origin).
pub async fn handle(
    state: &AppState,
    peer: &Peer,
    request: Request<Incoming>,
    endpoint: AuthEndpoint,
    record: &mut AccessRecord,
) -> Result<Response<Body>, Reject> {
    let method = endpoint.method();
    if request.method() != method && !(method == Method::GET && request.method() == Method::HEAD) {
        return Err(Reject::MethodNotAllowed(endpoint.allowed()));
    }
    let here = || browser::public_url(request.headers(), request.uri(), peer.trusted, peer.scheme);
    match endpoint {
        AuthEndpoint::Me => me(state, peer, &request, record).await,
        AuthEndpoint::Logout => logout(state, peer, &request, here().as_ref(), record).await,
        AuthEndpoint::Login => login(state, request.uri(), here().as_ref()),
    }
}

async fn me(
    state: &AppState,
    peer: &Peer,
    request: &Request<Incoming>,
    record: &mut AccessRecord,
) -> Result<Response<Body>, Reject> {
    let identity = match decide_session(state, peer, request, false, record).await {
        Decision::SignedIn { identity, .. } => identity,
        Decision::SignedOut { reason, token_sent, .. } => return Err(Reject::Unauthenticated { reason, token_sent }),
        Decision::Redirect { location, .. } => return Err(Reject::Redirect { location }),
    };
    let profile = state.users.lookup(&identity.user_id).await;
    let memberships = state.users.mirror().memberships(&identity.user_id).await.unwrap_or_default();
    let body = json!({
        "user_id": identity.user_id,
        "session_id": identity.session_id,
        "org": identity.org.as_ref().map(|o| json!({
            "id": o.id, "role": o.role, "slug": o.slug, "permissions": o.permissions,
        })),
        "user": profile.as_ref().map(|p| json!({
            "id": p.record.id,
            "username": p.record.username,
            "first_name": p.record.first_name,
            "last_name": p.record.last_name,
            "email": p.record.primary_email,
            "image_url": p.record.image_url,
            "public_metadata": p.record.public_metadata,
        })),
        "memberships": memberships.iter().map(|m| json!({
            "org_id": m.org_id, "role": m.role, "permissions": m.permissions,
        })).collect::<Vec<Value>>(),
    });
    Ok(body::json(StatusCode::OK, body.to_string()))
}

async fn logout(
    state: &AppState,
    peer: &Peer,
    request: &Request<Incoming>,
    here: Option<&Url>,
    record: &mut AccessRecord,
) -> Result<Response<Body>, Reject> {
    let by_cookie = crate::auth::credential::bearer(request.headers()).is_none();
    if by_cookie && !same_origin(request, here) {
        return Err(Reject::CrossSite);
    }
    let redirect = redirect_target(request.uri(), here)?;
    // An expired session still has to end at Clerk (else the next handshake signs the
    // browser straight back in): a token whose signature and claims check out names it.
    let identity = match decide_session(state, peer, request, false, record).await {
        Decision::SignedIn { identity, .. } => Some(identity),
        _ => match state.browser.presented_token(request.headers(), state.clock.now_secs()) {
            Some(token) => state.auth.verify_ignoring_time(token).await.ok(),
            None => None,
        },
    };
    if let Some(identity) = identity {
        if let Some(api) = state.users.api()
            && let Err(error) = api.revoke_session(&identity.session_id).await
        {
            tracing::error!(%error, "Clerk did not revoke the session; it is revoked on this gateway only");
        }
        if let Err(error) = state.users.revoke_session(&identity.session_id, Some(&identity.user_id)).await {
            tracing::error!(%error, "could not store the revocation; it holds until this gateway restarts");
        }
        tracing::info!(user_id = identity.user_id, session_id = identity.session_id, "signed out");
    }
    record.set_cookies.extend(cookies::clearing(state.browser.cookie_suffix()));
    let mut response = Response::new(body::empty());
    response.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    match redirect.and_then(|url| HeaderValue::try_from(url.as_str()).ok()) {
        Some(location) => {
            *response.status_mut() = StatusCode::SEE_OTHER;
            response.headers_mut().insert(LOCATION, location);
        }
        None => *response.status_mut() = StatusCode::NO_CONTENT,
    }
    Ok(response)
}

fn login(state: &AppState, uri: &http::Uri, here: Option<&Url>) -> Result<Response<Body>, Reject> {
    let Some(sign_in) = &state.sign_in_url else { return Err(Reject::NotFound) };
    let back = redirect_target(uri, here)?.or_else(|| here.and_then(|h| h.join("/").ok()));
    let mut location = sign_in.clone();
    if let Some(back) = back {
        location.query_pairs_mut().append_pair("redirect_url", back.as_str());
    }
    let location = HeaderValue::try_from(location.as_str()).map_err(|_| Reject::BadRequest("redirect_url"))?;
    Err(Reject::Redirect { location })
}

/// The `redirect_url` query parameter as an absolute URL on the request's own origin;
/// anything else (another host, `//evil`, `javascript:`) is refused.
fn redirect_target(uri: &http::Uri, here: Option<&Url>) -> Result<Option<Url>, Reject> {
    let Some(query) = uri.query() else { return Ok(None) };
    let Some(wanted) = browser::query_pairs(query).into_iter().find(|(k, _)| k == "redirect_url").map(|(_, v)| v)
    else {
        return Ok(None);
    };
    let here = here.ok_or(Reject::BadRequest("redirect_url"))?;
    let is_path = wanted.starts_with('/') && !wanted.starts_with("//") && !wanted.starts_with("/\\");
    let target = if is_path { here.join(&wanted).ok() } else { Url::parse(&wanted).ok() };
    match target {
        Some(target) if target.origin() == here.origin() => Ok(Some(target)),
        _ => Err(Reject::BadRequest("redirect_url")),
    }
}

/// A cookie-authenticated state change must come from this origin: `Sec-Fetch-Site:
/// same-origin`, or else an `Origin` equal to the request's own.
fn same_origin(request: &Request<Incoming>, here: Option<&Url>) -> bool {
    let headers = request.headers();
    if let Some(site) = headers.get(&SEC_FETCH_SITE) {
        return site == "same-origin";
    }
    let origin = headers.get(ORIGIN).and_then(|v| v.to_str().ok());
    match (origin, here) {
        (Some(origin), Some(here)) => Url::parse(origin).is_ok_and(|o| o.origin() == here.origin()),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_sit_under_their_prefix() {
        assert_eq!(AuthEndpoint::at("/auth", "/auth/me"), Some(AuthEndpoint::Me));
        assert_eq!(AuthEndpoint::at("/auth", "/auth/logout"), Some(AuthEndpoint::Logout));
        assert_eq!(AuthEndpoint::at("/gw/auth", "/gw/auth/login"), Some(AuthEndpoint::Login));
        assert_eq!(AuthEndpoint::at("/auth", "/auth/me/x"), None);
        assert_eq!(AuthEndpoint::at("/auth", "/authme"), None);
        assert_eq!(AuthEndpoint::at("/auth", "/auth/callback"), None);
    }

    #[test]
    fn redirects_stay_on_this_origin() {
        let here = Url::parse("https://app.example.com/auth/logout").unwrap();
        let target = |q: &str| redirect_target(&format!("/auth/logout?{q}").parse().unwrap(), Some(&here));
        assert_eq!(target("redirect_url=/bye").unwrap().unwrap().as_str(), "https://app.example.com/bye");
        assert_eq!(
            target("redirect_url=https%3A%2F%2Fapp.example.com%2Fx").unwrap().unwrap().as_str(),
            "https://app.example.com/x"
        );
        for evil in [
            "redirect_url=https://evil.com/",
            "redirect_url=//evil.com/x",
            "redirect_url=/\\evil.com",
            "redirect_url=javascript:alert(1)",
            "redirect_url=http://app.example.com/",
            "redirect_url=https://app.example.com.evil.com/",
        ] {
            assert!(target(evil).is_err(), "{evil}");
        }
        assert_eq!(target("other=1").unwrap(), None);
    }
}
