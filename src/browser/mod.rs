//! Browser sessions, as Clerk's `authenticateRequest` decides them: a Bearer header is
//! verified on its own; otherwise the cookie path walks Clerk's decision table (handshake
//! resolution, dev-browser rules, `__client_uat` against the session cookie, then the token)
//! and answers signed in, signed out, or "redirect through the handshake". Owns the public
//! URL of a request too. Never forwards requests.

pub mod budget;
pub mod cookies;
pub mod handshake;

use std::net::IpAddr;
use std::sync::Arc;

use http::{HeaderMap, HeaderName, HeaderValue};
use reqwest::Url;

use crate::auth::credential::{self, Credential};
use crate::auth::{Authenticator, Reason};
use crate::cache::ExpiringMap;
use crate::clerk_api::ClerkApi;
use crate::clerk_keys::PublishableKey;
use crate::identity::Identity;
use budget::NonceBudget;
use cookies::{ClerkCookies, Instance};

/// How many handshakes in a row before giving up (Clerk's loop guard).
const MAX_REDIRECTS: u32 = 3;

static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// What to do with a request.
#[derive(Debug)]
pub enum Decision {
    /// A valid session; `cookies` are `Set-Cookie` values for the response.
    SignedIn {
        /// Who.
        identity: Arc<Identity>,
        /// Handshake directives to pass on.
        cookies: Vec<HeaderValue>,
    },
    /// No valid session.
    SignedOut {
        /// Clerk's reason.
        reason: Reason,
        /// The client offered a credential.
        token_sent: bool,
        /// Handshake directives to pass on.
        cookies: Vec<HeaderValue>,
    },
    /// Send the browser elsewhere: to the handshake, or back to the clean URL after one.
    Redirect {
        /// Where.
        location: HeaderValue,
        /// `Set-Cookie` values (loop counter, handshake directives).
        cookies: Vec<HeaderValue>,
    },
}

impl Decision {
    /// Metric labels of every decision: `signed-in`, each reason, `handshake`, and
    /// `unavailable` (a machine token Clerk could not verify; see `UNAVAILABLE_METRIC`).
    pub fn metric_names() -> Vec<&'static str> {
        std::iter::once("signed-in")
            .chain(Reason::ALL.iter().map(|r| r.as_str()))
            .chain(["handshake", "unavailable"])
            .collect()
    }

    /// The position of `unavailable` in `metric_names`.
    pub const UNAVAILABLE_METRIC: usize = Reason::ALL.len() + 2;

    /// The `Set-Cookie` values the decision wants on the response.
    pub fn cookies_mut(&mut self) -> &mut Vec<HeaderValue> {
        match self {
            Decision::SignedIn { cookies, .. }
            | Decision::SignedOut { cookies, .. }
            | Decision::Redirect { cookies, .. } => cookies,
        }
    }

    /// This decision's position in `metric_names`.
    pub fn metric_index(&self) -> usize {
        match self {
            Decision::SignedIn { .. } => 0,
            Decision::SignedOut { reason, .. } => reason.index() + 1,
            Decision::Redirect { .. } => Reason::ALL.len() + 1,
        }
    }
}

/// The parts of a request the decision looks at.
pub struct RequestInfo<'a> {
    /// Request headers.
    pub headers: &'a HeaderMap,
    /// The request target (for Clerk's query parameters).
    pub uri: &'a http::Uri,
    /// The URL the client asked for, computed only when a redirect needs it.
    pub public_url: &'a (dyn Fn() -> Option<Url> + Sync),
    /// A browser page load (GET document/iframe, or HTML accepted): may be redirected.
    pub eligible: bool,
    /// The client's address (behind trusted proxies, the one they forwarded for), computed
    /// only when a nonce is to be redeemed.
    pub client: &'a (dyn Fn() -> IpAddr + Sync),
    /// Seconds since the epoch.
    pub now_secs: i64,
}

/// The instance facts of a publishable key, handshakes going to `frontend_api_url` when set.
fn instance(publishable_key: Option<&PublishableKey>, frontend_api_url: Option<&Url>) -> Option<InstanceInfo> {
    publishable_key.and_then(|pk| {
        let frontend_api = match frontend_api_url {
            Some(url) => url.clone(),
            None => Url::parse(&format!("https://{}/", pk.frontend_api)).ok()?,
        };
        Some(InstanceInfo {
            suffix: pk.cookie_suffix.clone(),
            frontend_api_host: pk.frontend_api.clone(),
            frontend_api,
            production: pk.production,
        })
    })
}

/// The instance facts the cookie path needs.
struct InstanceInfo {
    suffix: String,
    frontend_api_host: String,
    /// Where handshakes go (the Frontend API, or `frontend_api_url`).
    frontend_api: Url,
    production: bool,
}

/// Browser-session decisions for one Clerk instance.
pub struct Browser {
    instance: Option<InstanceInfo>,
    api: Option<ClerkApi>,
    /// Nonces the Backend API refused lately, so a stale nonce cookie costs one call.
    /// Shared with the `Browser` of every reloaded configuration.
    refused_nonces: Arc<ExpiringMap<String, ()>>,
    /// How many nonces are redeemed per second, in all and per client; shared like
    /// `refused_nonces`, so a reload does not hand out a fresh budget.
    nonce_budget: Arc<NonceBudget>,
}

impl Browser {
    /// Built from the publishable key (without one, cookies are read unsuffixed and no
    /// handshake is possible), a Frontend API override, and the Backend API client.
    pub fn new(
        publishable_key: Option<&PublishableKey>,
        frontend_api_url: Option<&Url>,
        api: Option<ClerkApi>,
    ) -> Self {
        Browser {
            instance: instance(publishable_key, frontend_api_url),
            api,
            refused_nonces: Arc::new(ExpiringMap::new(10_000)),
            nonce_budget: Arc::default(),
        }
    }

    /// The browser rules of a reloaded configuration: its publishable key and Frontend API
    /// override, the same Backend API client, nonce memory and budgets.
    pub fn reconfigured(&self, publishable_key: Option<&PublishableKey>, frontend_api_url: Option<&Url>) -> Self {
        Browser {
            instance: instance(publishable_key, frontend_api_url),
            api: self.api.clone(),
            refused_nonces: self.refused_nonces.clone(),
            nonce_budget: self.nonce_budget.clone(),
        }
    }

    /// Where handshakes (and the Frontend API proxy) go.
    pub fn frontend_api(&self) -> Option<&Url> {
        self.instance.as_ref().map(|i| &i.frontend_api)
    }

    /// The session token a request presents (Bearer header, else the trusted session
    /// cookie), whatever its state.
    pub fn presented_token<'a>(&self, headers: &'a HeaderMap, now_secs: i64) -> Option<&'a str> {
        if let Some(Credential::Bearer(token)) = credential::bearer(headers) {
            return Some(token);
        }
        let instance = self.cookie_instance();
        cookies::read(headers, instance, now_secs).session.ok().flatten()
    }

    fn cookie_instance(&self) -> Option<Instance<'_>> {
        self.instance.as_ref().map(|i| Instance {
            suffix: &i.suffix,
            frontend_api: &i.frontend_api_host,
            production: i.production,
        })
    }

    /// The cookie suffix, when a publishable key is configured.
    pub fn cookie_suffix(&self) -> Option<&str> {
        self.instance.as_ref().map(|i| i.suffix.as_str())
    }

    /// Decides a request as Clerk's `authenticateRequest` does: Bearer header first, else
    /// the cookie path.
    pub async fn authenticate_request(&self, auth: &Authenticator, request: &RequestInfo<'_>) -> Decision {
        match credential::bearer(request.headers) {
            Some(Credential::Bearer(token)) => return verified(auth.verify(token).await, Vec::new()),
            Some(_) => return signed_out(Reason::TokenInvalid, true),
            None => {}
        }
        self.cookie_path(auth, request).await
    }

    async fn cookie_path(&self, auth: &Authenticator, request: &RequestInfo<'_>) -> Decision {
        let instance = self.cookie_instance();
        let jar = cookies::read(request.headers, instance, request.now_secs);
        let query = |name: &str| query_param(request.uri, name);
        let development = self.instance.as_ref().is_some_and(|i| !i.production);
        // A handshake is resolved only on the page load it redirected: that is where Clerk
        // sends the browser back. The handshake JWT travels in the URL on development
        // instances only; production gets it as a cookie.
        if request.eligible {
            let nonce = query(cookies::HANDSHAKE_NONCE).or_else(|| jar.handshake_nonce.map(str::to_owned));
            let jwt_in_query = if development { query(cookies::HANDSHAKE) } else { None };
            let handshake_jwt = jwt_in_query.or_else(|| jar.handshake.map(str::to_owned));
            let nonce = nonce.filter(|n| self.may_redeem(n, (request.client)(), request.now_secs));
            if (nonce.is_some() || handshake_jwt.is_some())
                && let Some(decision) = self.resolve(auth, request, nonce.as_deref(), handshake_jwt.as_deref()).await
            {
                return decision;
            }
        }
        let dev_in_query = query(cookies::DEV_BROWSER);
        let hs =
            Handshake { browser: self, request, jar: &jar, dev_browser: dev_in_query.as_deref().or(jar.dev_browser) };
        let development = self.instance.as_ref().is_some_and(|i| !i.production);
        if development && request.eligible {
            if dev_in_query.is_some() {
                return hs.or_signed_out(Reason::DevBrowserSync, Reason::DevBrowserSync);
            }
            if jar.dev_browser.is_none() {
                return hs.or_signed_out(Reason::DevBrowserMissing, Reason::DevBrowserMissing);
            }
        }
        let Ok(session) = jar.session else { return signed_out(Reason::TokenInvalid, true) };
        let session = match (session, jar.client_uat > 0) {
            (None, false) => return signed_out(Reason::SessionTokenAndUatMissing, false),
            (Some(_), false) => {
                return hs.or_signed_out(Reason::SessionTokenWithoutClientUat, Reason::SessionTokenWithoutClientUat);
            }
            (None, true) => {
                return hs.or_signed_out(Reason::ClientUatWithoutSessionToken, Reason::ClientUatWithoutSessionToken);
            }
            (Some(token), true) => token,
        };
        if jar.session_iat.is_some_and(|iat| iat < jar.client_uat) {
            return hs.or_signed_out(Reason::SessionTokenIatBeforeClientUat, Reason::SessionTokenIatBeforeClientUat);
        }
        match auth.verify(session).await {
            Ok(identity) => Decision::SignedIn { identity, cookies: Vec::new() },
            Err(reason @ (Reason::TokenExpired | Reason::TokenNotActiveYet | Reason::TokenIatInTheFuture)) => {
                hs.or_signed_out(reason, reason)
            }
            Err(reason) => signed_out(reason, true),
        }
    }

    /// Whether a nonce may be redeemed now: not refused lately, and within the budgets
    /// (see `budget`); anything else is treated as no handshake.
    fn may_redeem(&self, nonce: &str, client: IpAddr, now_secs: i64) -> bool {
        if self.refused_nonces.get(nonce, now_secs * 1000).is_some() {
            return false;
        }
        match self.nonce_budget.take(nonce, client, now_secs) {
            Ok(()) => true,
            Err(refusal) => {
                tracing::debug!(?refusal, %client, "handshake nonce not redeemed");
                false
            }
        }
    }

    /// Resolves a handshake that came back; `None` (carry on) when it cannot be.
    async fn resolve(
        &self,
        auth: &Authenticator,
        request: &RequestInfo<'_>,
        nonce: Option<&str>,
        jwt: Option<&str>,
    ) -> Option<Decision> {
        let instance = self.instance.as_ref()?;
        let resolved = match handshake::resolve(self.api.as_ref(), auth.keys(), nonce, jwt).await {
            Ok(resolved) => resolved,
            Err(error) => {
                // Only the Backend API saying "no such nonce" marks the nonce and its client;
                // an outage or a rate limit is nobody's fault.
                if let Some(nonce) = nonce.filter(|_| error.is_refusal()) {
                    let now = request.now_secs * 1000;
                    self.refused_nonces.insert(nonce.to_owned(), (), now + 60_000, now);
                    self.nonce_budget.refused((request.client)(), request.now_secs);
                }
                tracing::warn!(%error, "could not resolve the Clerk handshake; continuing without it");
                return None;
            }
        };
        let decision = if resolved.session_token.is_empty() {
            Decision::SignedOut { reason: Reason::SessionTokenMissing, token_sent: false, cookies: resolved.cookies }
        } else {
            match auth.verify(&resolved.session_token).await {
                Ok(identity) => Decision::SignedIn { identity, cookies: resolved.cookies },
                Err(reason) => {
                    tracing::warn!(reason = reason.as_str(), "the handshake's session token does not verify");
                    return None;
                }
            }
        };
        // Development instances get the handshake in the URL: send the browser back to the
        // same URL without it. Production continues with the request.
        if !instance.production
            && let Some(url) = (request.public_url)()
            && let Ok(location) = HeaderValue::try_from(handshake::clean_url(&url).as_str())
        {
            let mut decision = decision;
            return Some(Decision::Redirect { location, cookies: std::mem::take(decision.cookies_mut()) });
        }
        Some(decision)
    }
}

/// A would-be handshake: taken when the request may be redirected, else signed out.
struct Handshake<'a> {
    browser: &'a Browser,
    request: &'a RequestInfo<'a>,
    jar: &'a ClerkCookies<'a>,
    dev_browser: Option<&'a str>,
}

impl Handshake<'_> {
    /// Redirects through the handshake when the request is a browser page load, the
    /// instance is known, the loop guard allows it, and there is a client to refresh
    /// (`__client_uat` > 0, or any development instance); otherwise signs out with `reason`.
    fn or_signed_out(&self, handshake_reason: Reason, reason: Reason) -> Decision {
        let token_sent = matches!(self.jar.session, Ok(Some(_)) | Err(_));
        let Some(instance) = self.browser.instance.as_ref() else { return signed_out(reason, token_sent) };
        let Some(url) = (self.request.public_url)() else { return signed_out(reason, token_sent) };
        let has_client = self.jar.client_uat > 0 || !instance.production;
        if !self.request.eligible || !has_client || self.jar.redirect_count >= MAX_REDIRECTS {
            if self.jar.redirect_count >= MAX_REDIRECTS {
                tracing::warn!(
                    "Clerk handshake redirect loop; check that the publishable and secret keys belong to one instance"
                );
            }
            return signed_out(reason, token_sent);
        }
        let start = handshake::Start {
            url: &url,
            reason: handshake_reason.handshake_reason(),
            suffixed_cookies: self.jar.suffixed,
            session_token: self.jar.session.ok().flatten(),
            dev_browser: if instance.production { None } else { self.dev_browser },
        };
        match handshake::redirect_url(&instance.frontend_api, &start)
            .and_then(|u| HeaderValue::try_from(u.as_str()).ok())
        {
            Some(location) => {
                Decision::Redirect { location, cookies: vec![cookies::redirect_count(self.jar.redirect_count + 1)] }
            }
            None => signed_out(reason, token_sent),
        }
    }
}

/// A Clerk query parameter of the request target (they all start with `__clerk`).
fn query_param(uri: &http::Uri, name: &str) -> Option<String> {
    let query = uri.query().filter(|q| q.contains("__clerk"))?;
    query_pairs(query).into_iter().find(|(k, _)| k == name).map(|(_, v)| v)
}

/// The decoded `name=value` pairs of a query string.
pub fn query_pairs(query: &str) -> Vec<(String, String)> {
    Url::parse(&format!("http://q/?{query}"))
        .map(|u| u.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect())
        .unwrap_or_default()
}

fn signed_out(reason: Reason, token_sent: bool) -> Decision {
    Decision::SignedOut { reason, token_sent, cookies: Vec::new() }
}

fn verified(result: Result<Arc<Identity>, Reason>, cookies: Vec<HeaderValue>) -> Decision {
    match result {
        Ok(identity) => Decision::SignedIn { identity, cookies },
        Err(reason) => Decision::SignedOut { reason, token_sent: true, cookies },
    }
}

static SEC_FETCH_DEST: HeaderName = HeaderName::from_static("sec-fetch-dest");

/// Clerk's test for a browser page load (the only requests a handshake or sign-in redirect
/// may answer): GET with `Sec-Fetch-Dest: document`/`iframe`, or no `Sec-Fetch-Dest` and an
/// `Accept` that starts with `text/html`.
pub fn is_document_request(method: &http::Method, headers: &HeaderMap) -> bool {
    if method != http::Method::GET {
        return false;
    }
    match headers.get(&SEC_FETCH_DEST) {
        Some(dest) => dest == "document" || dest == "iframe",
        None => {
            headers.get(http::header::ACCEPT).and_then(|a| a.to_str().ok()).is_some_and(|a| a.starts_with("text/html"))
        }
    }
}

/// The URL the client asked for, as the client saw it: scheme and host from a trusted
/// proxy's `X-Forwarded-*` (first value), else from this connection and the `Host` header.
pub fn public_url(headers: &HeaderMap, uri: &http::Uri, trusted_peer: bool, scheme: &str) -> Option<Url> {
    let forwarded = |name: &HeaderName| {
        headers
            .get(name)
            .filter(|_| trusted_peer)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    let scheme = forwarded(&X_FORWARDED_PROTO).filter(|s| *s == "http" || *s == "https").unwrap_or(scheme);
    let host = forwarded(&X_FORWARDED_HOST)
        .or_else(|| headers.get(http::header::HOST).and_then(|v| v.to_str().ok()))
        .or_else(|| uri.authority().map(|a| a.as_str()))?;
    let target = uri.path_and_query().map_or("/", |pq| pq.as_str());
    Url::parse(&format!("{scheme}://{host}{target}")).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn document_requests_follow_clerk() {
        use http::Method;
        assert!(is_document_request(&Method::GET, &headers(&[("sec-fetch-dest", "document")])));
        assert!(is_document_request(&Method::GET, &headers(&[("sec-fetch-dest", "iframe")])));
        assert!(is_document_request(&Method::GET, &headers(&[("accept", "text/html,application/xhtml+xml")])));
        assert!(!is_document_request(&Method::GET, &headers(&[("sec-fetch-dest", "empty"), ("accept", "text/html")])));
        assert!(!is_document_request(&Method::POST, &headers(&[("sec-fetch-dest", "document")])));
        assert!(!is_document_request(&Method::GET, &headers(&[("accept", "application/json")])));
        assert!(!is_document_request(&Method::GET, &HeaderMap::new()));
    }

    #[test]
    fn public_urls_trust_only_trusted_proxies() {
        let mut h = HeaderMap::new();
        h.insert("host", HeaderValue::from_static("internal:8080"));
        h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        h.insert("x-forwarded-host", HeaderValue::from_static("app.example.com, proxy"));
        let uri: http::Uri = "/p?q=1".parse().unwrap();
        assert_eq!(public_url(&h, &uri, true, "http").unwrap().as_str(), "https://app.example.com/p?q=1");
        assert_eq!(public_url(&h, &uri, false, "http").unwrap().as_str(), "http://internal:8080/p?q=1");
        assert!(public_url(&HeaderMap::new(), &uri, false, "http").is_none());
    }
}
