//! Every answer the gateway gives itself instead of forwarding (`Reject`), and the one
//! place that turns each into a response: status, fixed JSON body, and the few headers
//! (`WWW-Authenticate`, `Location`, `Allow`) an answer needs; to a gRPC request, the same
//! answer as a gRPC status a gRPC client can read. Never a token or key.

use http::header::{ALLOW, CACHE_CONTROL, CONTENT_TYPE, LOCATION, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderValue, Response, StatusCode};

use crate::auth::Reason;
use crate::auth::policy::Rule;
use crate::body::{self, Body};
use crate::proxy::ForwardError;
use crate::webhook::{Refusal, WebhookError};

static GRPC_STATUS: http::HeaderName = http::HeaderName::from_static("grpc-status");
static GRPC_MESSAGE: http::HeaderName = http::HeaderName::from_static("grpc-message");

/// The request's `Content-Type` when it is a gRPC call (`application/grpc`, `+proto`, `-web`…).
pub fn grpc_content_type(headers: &http::HeaderMap) -> Option<HeaderValue> {
    let value = headers.get(CONTENT_TYPE)?;
    let grpc = value.as_bytes().get(..16).is_some_and(|p| p.eq_ignore_ascii_case(b"application/grpc"));
    grpc.then(|| value.clone())
}

/// An answer the gateway gives instead of forwarding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reject {
    /// The path cannot be normalized without guessing.
    BadRequest(&'static str),
    /// No route matches.
    NotFound,
    /// A required route without a valid session.
    Unauthenticated {
        /// Clerk's reason.
        reason: Reason,
        /// Whether the client sent a credential (adds `error="invalid_token"`).
        token_sent: bool,
    },
    /// A browser page load sent elsewhere: to sign in, or through Clerk's handshake.
    Redirect {
        /// Where to.
        location: HeaderValue,
    },
    /// A cookie-authenticated state change from another origin (CSRF).
    CrossSite,
    /// A `require` rule failed.
    Forbidden(Rule),
    /// Refused for a reason of the gateway's own (forward-auth: no route takes the request).
    Denied(&'static str),
    /// The request body exceeds the route's `max_body`.
    PayloadTooLarge,
    /// The upstream refused or reset the connection.
    BadGateway,
    /// The upstream did not answer in time.
    GatewayTimeout,
    /// The request body did not arrive in time.
    RequestTimeout,
    /// A gateway-owned path called with another method; carries the allowed one.
    MethodNotAllowed(&'static str),
    /// A webhook delivery that failed verification or parsing.
    WebhookRejected(&'static str),
    /// The gateway could not do its own part (e.g. the mirror refused a write).
    Internal,
    /// Clerk could not verify the credential now (a Backend API outage); retry later.
    Unavailable(&'static str),
}

impl Reject {
    /// The status this answer carries.
    pub fn status(&self) -> StatusCode {
        match self {
            Reject::BadRequest(_) => StatusCode::BAD_REQUEST,
            Reject::NotFound => StatusCode::NOT_FOUND,
            Reject::Unauthenticated { .. } => StatusCode::UNAUTHORIZED,
            Reject::Redirect { .. } => StatusCode::TEMPORARY_REDIRECT,
            Reject::Forbidden(_) | Reject::CrossSite | Reject::Denied(_) => StatusCode::FORBIDDEN,
            Reject::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Reject::BadGateway => StatusCode::BAD_GATEWAY,
            Reject::GatewayTimeout => StatusCode::GATEWAY_TIMEOUT,
            Reject::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Reject::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Reject::WebhookRejected(_) => StatusCode::BAD_REQUEST,
            Reject::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            Reject::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// A fixed error name and at most one detail (its name and value), never a token or key.
    fn parts(&self) -> (&'static str, Option<(&'static str, &'static str)>) {
        match self {
            Reject::BadRequest(reason) => ("bad_request", Some(("reason", reason))),
            Reject::NotFound => ("not_found", None),
            Reject::Unauthenticated { reason, .. } => ("unauthenticated", Some(("reason", reason.as_str()))),
            Reject::Redirect { .. } => ("unauthenticated", None),
            Reject::Forbidden(rule) => ("forbidden", Some(("rule", rule.as_str()))),
            Reject::CrossSite => ("forbidden", Some(("reason", "cross-site"))),
            Reject::Denied(reason) => ("forbidden", Some(("reason", reason))),
            Reject::PayloadTooLarge => ("payload_too_large", None),
            Reject::BadGateway => ("bad_gateway", None),
            Reject::GatewayTimeout => ("gateway_timeout", None),
            Reject::RequestTimeout => ("request_timeout", None),
            Reject::MethodNotAllowed(_) => ("method_not_allowed", None),
            Reject::WebhookRejected(reason) => ("invalid_webhook", Some(("reason", reason))),
            Reject::Internal => ("internal", None),
            Reject::Unavailable(reason) => ("unavailable", Some(("reason", reason))),
        }
    }

    /// The JSON body (none for a redirect).
    fn body(&self) -> String {
        match (self, self.parts()) {
            (Reject::Redirect { .. }, _) => String::new(),
            (_, (error, None)) => format!(r#"{{"error":"{error}"}}"#),
            (_, (error, Some((key, value)))) => format!(r#"{{"error":"{error}","{key}":"{value}"}}"#),
        }
    }

    /// The gRPC status code (gRPC's own mapping of the HTTP status, sharpened where the
    /// gateway knows more: a deadline, a body too large).
    fn grpc_status(&self) -> u8 {
        match self {
            Reject::Unauthenticated { .. } | Reject::Redirect { .. } => 16,
            Reject::Forbidden(_) | Reject::CrossSite | Reject::Denied(_) => 7,
            Reject::BadGateway | Reject::GatewayTimeout | Reject::Unavailable(_) => 14,
            Reject::NotFound | Reject::MethodNotAllowed(_) => 12,
            Reject::RequestTimeout => 4,
            Reject::PayloadTooLarge => 8,
            Reject::BadRequest(_) | Reject::WebhookRejected(_) | Reject::Internal => 13,
        }
    }

    /// The answer to a gRPC request (`content_type` is its `application/grpc…`): HTTP 200
    /// with `grpc-status` and `grpc-message` in the head and no body, gRPC's Trailers-Only
    /// form, which every gRPC client reads as the call's status.
    pub fn into_grpc_response(self, content_type: HeaderValue) -> Response<Body> {
        let message = match self.parts() {
            (error, None) => error.to_owned(),
            (error, Some((_, value))) => format!("{error}: {value}"),
        };
        let mut response = Response::new(body::empty());
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, content_type);
        headers.insert(&GRPC_STATUS, HeaderValue::from(u16::from(self.grpc_status())));
        // Names and reasons are ASCII without `%`, so they need no percent-encoding.
        if let Ok(message) = HeaderValue::try_from(message) {
            headers.insert(&GRPC_MESSAGE, message);
        }
        response
    }

    /// The answer to an ingress's auth subrequest (nginx `auth_request` passes on only 2xx,
    /// 401 and 403): a redirect becomes a 401 that carries the `Location` for the ingress
    /// to send the browser to; anything else is answered as usual.
    pub fn into_subrequest_response(self) -> Response<Body> {
        let Reject::Redirect { location } = self else { return self.into_response() };
        let mut response =
            Reject::Unauthenticated { reason: Reason::SessionTokenMissing, token_sent: false }.into_response();
        *response.body_mut() = body::full(r#"{"error":"unauthenticated","reason":"sign-in"}"#);
        response.headers_mut().insert(LOCATION, location);
        response
    }

    /// Builds the response.
    pub fn into_response(self) -> Response<Body> {
        let body = self.body();
        let mut builder =
            Response::builder().status(self.status()).header(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if !body.is_empty() {
            builder = builder.header(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        match &self {
            Reject::Unauthenticated { token_sent, .. } => {
                let challenge = if *token_sent { r#"Bearer error="invalid_token""# } else { "Bearer" };
                builder = builder.header(WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
            }
            Reject::Redirect { location } => builder = builder.header(LOCATION, location.clone()),
            Reject::MethodNotAllowed(allowed) => builder = builder.header(ALLOW, HeaderValue::from_static(allowed)),
            Reject::Unavailable(_) => builder = builder.header(RETRY_AFTER, HeaderValue::from_static("1")),
            _ => {}
        }
        builder.body(body::full(body)).unwrap_or_else(|_| Response::new(body::empty()))
    }
}

impl From<ForwardError> for Reject {
    fn from(error: ForwardError) -> Reject {
        match error {
            ForwardError::InvalidPath => Reject::BadRequest("invalid-path"),
            ForwardError::PayloadTooLarge => Reject::PayloadTooLarge,
            ForwardError::BadGateway => Reject::BadGateway,
            ForwardError::GatewayTimeout => Reject::GatewayTimeout,
            ForwardError::BodyTimeout => Reject::RequestTimeout,
        }
    }
}

impl From<WebhookError> for Reject {
    fn from(error: WebhookError) -> Reject {
        match error {
            WebhookError::MethodNotAllowed => Reject::MethodNotAllowed("POST"),
            WebhookError::Refused(Refusal::TooLarge) => Reject::PayloadTooLarge,
            WebhookError::Refused(Refusal::Timeout) => Reject::RequestTimeout,
            WebhookError::Refused(refusal) => Reject::WebhookRejected(refusal.as_str()),
            WebhookError::NotStored => Reject::Internal,
            WebhookError::MirrorUnavailable => Reject::Unavailable("mirror-unavailable"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unauthenticated_answers_carry_reason_and_challenge() {
        let with_token = Reject::Unauthenticated { reason: Reason::TokenExpired, token_sent: true }.into_response();
        assert_eq!(with_token.status(), 401);
        assert_eq!(with_token.headers()[WWW_AUTHENTICATE], r#"Bearer error="invalid_token""#);
        let without =
            Reject::Unauthenticated { reason: Reason::SessionTokenMissing, token_sent: false }.into_response();
        assert_eq!(without.headers()[WWW_AUTHENTICATE], "Bearer");
        assert_eq!(
            Reject::Unauthenticated { reason: Reason::TokenExpired, token_sent: true }.body(),
            r#"{"error":"unauthenticated","reason":"token-expired"}"#
        );
    }

    #[test]
    fn every_answer_has_its_status() {
        let cases = [
            (Reject::BadRequest("invalid-path"), 400),
            (Reject::NotFound, 404),
            (Reject::Redirect { location: HeaderValue::from_static("https://x/") }, 307),
            (Reject::Forbidden(Rule::OrgRole), 403),
            (Reject::CrossSite, 403),
            (Reject::PayloadTooLarge, 413),
            (Reject::BadGateway, 502),
            (Reject::GatewayTimeout, 504),
            (Reject::RequestTimeout, 408),
            (Reject::MethodNotAllowed("POST"), 405),
            (Reject::WebhookRejected("invalid-signature"), 400),
            (Reject::Internal, 500),
        ];
        for (reject, status) in cases {
            let body = reject.body();
            assert!(body.is_empty() || serde_json::from_str::<serde_json::Value>(&body).is_ok());
            assert_eq!(reject.into_response().status(), status);
        }
        assert_eq!(Reject::Forbidden(Rule::OrgRole).body(), r#"{"error":"forbidden","rule":"org_role"}"#);
        assert_eq!(Reject::MethodNotAllowed("POST").into_response().headers()[ALLOW], "POST");
    }

    #[test]
    fn grpc_calls_get_a_grpc_status() {
        let unauthenticated = Reject::Unauthenticated { reason: Reason::SessionTokenMissing, token_sent: false };
        let cases = [
            (unauthenticated, 16, "unauthenticated: session-token-missing"),
            (Reject::Forbidden(Rule::OrgRole), 7, "forbidden: org_role"),
            (Reject::BadGateway, 14, "bad_gateway"),
            (Reject::GatewayTimeout, 14, "gateway_timeout"),
            (Reject::NotFound, 12, "not_found"),
        ];
        for (reject, code, message) in cases {
            let response = reject.into_grpc_response(HeaderValue::from_static("application/grpc+proto"));
            assert_eq!(response.status(), 200);
            assert_eq!(response.headers()["grpc-status"], code.to_string().as_str());
            assert_eq!(response.headers()["grpc-message"], message);
            assert_eq!(response.headers()[CONTENT_TYPE], "application/grpc+proto");
        }
        let mut headers = http::HeaderMap::new();
        assert_eq!(grpc_content_type(&headers), None);
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        assert_eq!(grpc_content_type(&headers), None);
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("Application/gRPC"));
        assert!(grpc_content_type(&headers).is_some());
    }

    #[test]
    fn proxy_and_webhook_errors_map_to_their_answers() {
        let forwarded = [
            (ForwardError::InvalidPath, 400),
            (ForwardError::PayloadTooLarge, 413),
            (ForwardError::BadGateway, 502),
            (ForwardError::GatewayTimeout, 504),
            (ForwardError::BodyTimeout, 408),
        ];
        for (error, status) in forwarded {
            assert_eq!(Reject::from(error).status(), status, "{error:?}");
        }
        assert_eq!(Reject::from(ForwardError::InvalidPath), Reject::BadRequest("invalid-path"));
        assert_eq!(Reject::from(WebhookError::MethodNotAllowed), Reject::MethodNotAllowed("POST"));
        assert_eq!(Reject::from(WebhookError::Refused(Refusal::TooLarge)), Reject::PayloadTooLarge);
        assert_eq!(
            Reject::from(WebhookError::Refused(Refusal::StaleTimestamp)),
            Reject::WebhookRejected("stale-timestamp")
        );
        assert_eq!(Reject::from(WebhookError::NotStored), Reject::Internal);
    }
}
