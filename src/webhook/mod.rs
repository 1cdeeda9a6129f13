//! Clerk's webhook endpoint: read the body (at most 1 MiB), verify the Svix signature on the
//! raw bytes, parse the event, and apply it to the mirror in one transaction through the
//! user directory. A delivery that fails verification changes nothing. No proxying here.

pub mod events;
pub mod svix;

use bytes::Bytes;
use http::header::CONTENT_LENGTH;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;

use crate::body::{self, Body};
use crate::clock::Clock;
use crate::metrics::Metrics;
use crate::mirror::{Applied, Delivery, Effect};
use crate::reject::Reject;
use crate::users::Directory;
use svix::{SecretError, Verifier};

/// Largest accepted delivery.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Event types counted by name in metrics; anything else is `other`.
pub const METRIC_TYPES: &[&str] = &[
    "user.created",
    "user.updated",
    "user.deleted",
    "session.revoked",
    "session.ended",
    "session.removed",
    "organization.created",
    "organization.updated",
    "organization.deleted",
    "organizationMembership.created",
    "organizationMembership.updated",
    "organizationMembership.deleted",
    "other",
];

/// Delivery outcomes in metrics.
pub const METRIC_OUTCOMES: &[&str] = &["applied", "duplicate", "ignored", "not-mirrored", "failed"];

/// Refusal reasons, as in the 400 body, plus `too-large` (413).
pub const REJECTIONS: &[&str] =
    &["missing-headers", "stale-timestamp", "invalid-signature", "invalid-payload", "too-large"];

/// The endpoint's configuration.
pub struct WebhookEndpoint {
    /// The path Svix posts to.
    pub path: String,
    verifier: Verifier,
}

impl WebhookEndpoint {
    /// An endpoint at `path` verifying with `signing_secret`.
    ///
    /// # Errors
    /// `SecretError` when the secret is unusable.
    pub fn new(path: &str, signing_secret: &str) -> Result<WebhookEndpoint, SecretError> {
        Ok(WebhookEndpoint { path: path.to_owned(), verifier: Verifier::new(signing_secret)? })
    }

    /// Handles one request to the webhook path.
    ///
    /// # Errors
    /// A `Reject`: 405, 413, 400 with the reason, or 500 when the mirror cannot store it.
    pub async fn handle(
        &self,
        request: Request<Incoming>,
        directory: &Directory,
        clock: &Clock,
        metrics: &Metrics,
    ) -> Result<Response<Body>, Reject> {
        if request.method() != Method::POST {
            return Err(Reject::MethodNotAllowed("POST"));
        }
        let (parts, incoming) = request.into_parts();
        let refuse = |reason: &'static str| {
            metrics.webhook_rejection(REJECTIONS.iter().position(|r| *r == reason).unwrap_or(0));
            tracing::warn!(reason, "webhook delivery refused");
            if reason == "too-large" { Reject::PayloadTooLarge } else { Reject::WebhookRejected(reason) }
        };
        let declared =
            parts.headers.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > MAX_BODY_BYTES as u64) {
            return Err(refuse("too-large"));
        }
        let raw = read_body(incoming).await.map_err(refuse)?;
        let verified = self.verifier.verify(&parts.headers, &raw, clock.now_secs()).map_err(|r| refuse(r.as_str()))?;
        let envelope = events::parse(&raw).map_err(|error| {
            tracing::warn!(%error, id = verified.id, "verified webhook with an unreadable payload");
            refuse("invalid-payload")
        })?;
        let type_index = METRIC_TYPES.iter().position(|t| *t == envelope.event_type).unwrap_or(METRIC_TYPES.len() - 1);
        let event_type = envelope.event_type.clone();
        let delivery = Delivery {
            id: verified.id.clone(),
            event_type: envelope.event_type,
            at_ms: envelope.timestamp_ms.unwrap_or_else(|| clock.now_ms()),
            write: envelope.write,
        };
        let (outcome, duplicate) = match directory.apply(delivery).await {
            Ok(Applied::Duplicate) => ("duplicate", true),
            Ok(Applied::Applied(Effect::Ignored(_))) => ("ignored", false),
            Ok(Applied::Applied(Effect::NotMirrored)) => ("not-mirrored", false),
            Ok(Applied::Applied(_)) => ("applied", false),
            Err(error) => {
                metrics.webhook_event(type_index, 4);
                tracing::error!(%error, id = verified.id, event_type, "webhook delivery not stored; Svix will retry");
                return Err(Reject::Internal);
            }
        };
        metrics.webhook_event(type_index, METRIC_OUTCOMES.iter().position(|o| *o == outcome).unwrap_or(0));
        tracing::info!(id = verified.id, event_type, outcome, "webhook delivery");
        Ok(acknowledge(duplicate))
    }
}

/// Reads at most `MAX_BODY_BYTES`, stopping as soon as the limit is passed.
async fn read_body(incoming: Incoming) -> Result<Bytes, &'static str> {
    match Limited::new(incoming, MAX_BODY_BYTES).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.is::<LengthLimitError>() => Err("too-large"),
        Err(_) => Err("invalid-payload"),
    }
}

fn acknowledge(duplicate: bool) -> Response<Body> {
    let text = if duplicate { r#"{"ok":true,"duplicate":true}"# } else { r#"{"ok":true}"# };
    body::json(StatusCode::OK, text)
}
