//! Clerk's webhook endpoint: read the body (at most 1 MiB), verify the Svix signature on the
//! raw bytes, parse the event, and apply it to the mirror in one transaction through the
//! user directory. A delivery that fails verification changes nothing. No proxying here.

/// The `as_str` of every variant of `$kind`, in `$kind::ALL` order: the metric labels,
/// computed at compile time so they cannot drift from the enum.
macro_rules! names_of {
    ($kind:ident) => {
        &{
            let mut names = [""; $kind::ALL.len()];
            let mut i = 0;
            while i < names.len() {
                names[i] = $kind::ALL[i].as_str();
                i += 1;
            }
            names
        }
    };
}

pub mod events;
pub mod outcome;
pub mod svix;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::header::CONTENT_LENGTH;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;

use crate::body::{self, Body};
use crate::clock::Clock;
use crate::metrics::Metrics;
use crate::mirror::{Applied, Delivery, Effect};
use crate::users::Directory;
use events::EventKind;
pub use outcome::{Outcome, Refusal};
use svix::{SecretError, Verifier};

/// Largest accepted delivery.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The endpoint's configuration.
pub struct WebhookEndpoint {
    /// The path Svix posts to.
    pub path: String,
    verifier: Verifier,
    /// How long reading a whole delivery may take.
    body_timeout: Duration,
}

/// Why the endpoint did not acknowledge a delivery; `reject` turns each into its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookError {
    /// Not a POST (405).
    MethodNotAllowed,
    /// Refused before anything changed (400, or 413 for `TooLarge`).
    Refused(Refusal),
    /// Verified, but the mirror could not store it (500, so Svix retries).
    NotStored,
    /// Verified, but the mirror's database cannot be reached now (503, so Svix retries).
    MirrorUnavailable,
}

impl WebhookEndpoint {
    /// An endpoint at `path` verifying with `signing_secret`.
    ///
    /// # Errors
    /// `SecretError` when the secret is unusable.
    pub fn new(path: &str, signing_secret: &str, body_timeout: Duration) -> Result<WebhookEndpoint, SecretError> {
        Ok(WebhookEndpoint { path: path.to_owned(), verifier: Verifier::new(signing_secret)?, body_timeout })
    }

    /// Handles one request to the webhook path: verify, then apply through `directory`.
    ///
    /// The delivery's size is added to `received` (for the access log).
    ///
    /// # Errors
    /// A `WebhookError`: not a POST, refused (with the reason), or not stored.
    pub async fn handle(
        &self,
        request: Request<Incoming>,
        directory: &Directory,
        clock: &Clock,
        metrics: &Metrics,
        received: &AtomicU64,
    ) -> Result<Response<Body>, WebhookError> {
        if request.method() != Method::POST {
            return Err(WebhookError::MethodNotAllowed);
        }
        let refuse = |refusal: Refusal| {
            metrics.webhook_rejection(refusal.index());
            if refusal == Refusal::Timeout {
                metrics.body_timeout();
            }
            tracing::warn!(reason = refusal.as_str(), "webhook delivery refused");
            WebhookError::Refused(refusal)
        };
        let (delivery, kind) = self.receive(request, clock, received).await.map_err(refuse)?;
        let (id, event_type) = (delivery.id.clone(), delivery.event_type.clone());
        let outcome = match directory.apply(delivery).await {
            Ok(Applied::Duplicate) => Outcome::Duplicate,
            Ok(Applied::Applied(Effect::Ignored(_))) => Outcome::Ignored,
            Ok(Applied::Applied(Effect::NotMirrored)) => Outcome::NotMirrored,
            Ok(Applied::Applied(_)) => Outcome::Applied,
            Err(error) => {
                metrics.webhook_event(kind.index(), Outcome::Failed.index());
                tracing::error!(%error, id, event_type, "webhook delivery not stored; Svix will retry");
                return Err(if error.is_unreachable() {
                    WebhookError::MirrorUnavailable
                } else {
                    WebhookError::NotStored
                });
            }
        };
        metrics.webhook_event(kind.index(), outcome.index());
        tracing::info!(id, event_type, outcome = outcome.as_str(), "webhook delivery");
        Ok(acknowledge(outcome == Outcome::Duplicate))
    }

    /// Reads, verifies and parses a delivery; nothing has changed when this fails.
    async fn receive(
        &self,
        request: Request<Incoming>,
        clock: &Clock,
        received: &AtomicU64,
    ) -> Result<(Delivery, EventKind), Refusal> {
        let (parts, incoming) = request.into_parts();
        let declared =
            parts.headers.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > MAX_BODY_BYTES as u64) {
            return Err(Refusal::TooLarge);
        }
        let raw =
            tokio::time::timeout(self.body_timeout, read_body(incoming)).await.map_err(|_| Refusal::Timeout)??;
        received.fetch_add(raw.len() as u64, Ordering::Relaxed);
        let verified = self.verifier.verify(&parts.headers, &raw, clock.now_secs())?;
        let envelope = events::parse(&raw).map_err(|error| {
            tracing::warn!(%error, id = verified.id, "verified webhook with an unreadable payload");
            Refusal::InvalidPayload
        })?;
        let delivery = Delivery {
            id: verified.id,
            event_type: envelope.event_type,
            at_ms: envelope.timestamp_ms.unwrap_or_else(|| clock.now_ms()),
            write: envelope.write,
        };
        Ok((delivery, envelope.kind))
    }
}

/// Reads at most `MAX_BODY_BYTES`, stopping as soon as the limit is passed.
async fn read_body(incoming: Incoming) -> Result<Bytes, Refusal> {
    match Limited::new(incoming, MAX_BODY_BYTES).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.is::<LengthLimitError>() => Err(Refusal::TooLarge),
        Err(_) => Err(Refusal::InvalidPayload),
    }
}

fn acknowledge(duplicate: bool) -> Response<Body> {
    let text = if duplicate { r#"{"ok":true,"duplicate":true}"# } else { r#"{"ok":true}"# };
    body::json(StatusCode::OK, text)
}
