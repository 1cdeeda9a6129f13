//! The Backend API client: one reqwest client with timeouts, `Authorization: Bearer
//! <secret_key>`, Clerk's error bodies as typed errors, 429 answered by waiting out
//! `Retry-After`, 5xx and transport errors retried with jittered backoff. Never called per
//! proxied request except to fill a user the mirror lacks. Clerk's objects are decoded into
//! `model`'s types; what anyone stores of them is not this module's business.

use std::time::Duration;

use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;
use serde_json::Value;

use crate::config::Secret;
use crate::token_type::TokenType;
use model::{MachineToken, ModelError, User};

pub mod model;

/// The Backend API version the gateway speaks (sent as `Clerk-API-Version`, and as the
/// handshake's `__clerk_api_version`).
pub const CLERK_API_VERSION: &str = "2026-05-12";

/// Attempts per request before giving up on 5xx or transport errors.
const MAX_ATTEMPTS: u32 = 5;
/// 429 answers waited out per request before giving up.
const MAX_RATE_LIMIT_WAITS: u32 = 20;
/// Longest `Retry-After` honoured.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// A Backend API failure.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No answer (connect, timeout, TLS) after retries.
    #[error("request failed: {0}")]
    Transport(#[from] reqwest::Error),
    /// Clerk answered with an error body.
    #[error("HTTP {status} {code}: {message}")]
    Clerk {
        /// HTTP status.
        status: u16,
        /// First error's `code`, e.g. `resource_not_found`.
        code: String,
        /// First error's `message`.
        message: String,
        /// First error's `long_message`.
        long_message: String,
    },
    /// A non-2xx answer without Clerk's error shape.
    #[error("HTTP {0}")]
    Status(u16),
    /// A 2xx answer that is not JSON.
    #[error("unexpected response: {0}")]
    Json(#[source] serde_json::Error),
    /// A 2xx answer without what the endpoint returns.
    #[error("unexpected response: {0}")]
    Shape(&'static str),
    /// `api_url` cannot take the endpoint's path.
    #[error("api_url: {0}")]
    Url(#[source] url::ParseError),
    /// `api_url` cannot have path segments (`data:` and the like).
    #[error("api_url cannot be a base")]
    NotABase,
    /// A Clerk object that cannot be read.
    #[error("unexpected response: {0}")]
    Model(#[from] ModelError),
}

#[derive(Deserialize)]
struct ErrorBody {
    errors: Vec<ErrorItem>,
}

#[derive(Deserialize)]
struct ErrorItem {
    code: String,
    message: String,
    #[serde(default)]
    long_message: String,
}

/// Where a page of users starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cursor {
    /// `offset=N`.
    Offset(u64),
    /// `starting_after=<user id>` (newest first, `offset` 0).
    After(Option<String>),
}

/// The client.
#[derive(Clone)]
pub struct ClerkApi {
    client: reqwest::Client,
    base: Url,
    secret: Secret,
}

impl ClerkApi {
    /// A client for the Backend API at `api_url`.
    pub fn new(client: reqwest::Client, api_url: &Url, secret: Secret) -> Self {
        let mut base = api_url.clone();
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        ClerkApi { client, base, secret }
    }

    /// `GET /v1/users/{id}`; `None` on 404.
    ///
    /// # Errors
    /// `ApiError` for anything but a user or a 404.
    pub async fn user(&self, id: &str) -> Result<Option<User>, ApiError> {
        let mut url = self.url("v1/users/")?;
        url.path_segments_mut().map_err(|()| ApiError::NotABase)?.pop_if_empty().push(id);
        match self.get_json(url).await? {
            None => Ok(None),
            Some(json) => Ok(Some(User::from_json(&json)?)),
        }
    }

    /// `GET /v1/users` with `limit` (1–500) from `cursor`. Users Clerk returns in a shape
    /// the mirror cannot read are skipped with a warning.
    ///
    /// # Errors
    /// `ApiError` when the page cannot be fetched.
    pub async fn users_page(&self, limit: u32, cursor: &Cursor) -> Result<Vec<User>, ApiError> {
        let mut url = self.url("v1/users")?;
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("limit", &limit.clamp(1, 500).to_string());
            match cursor {
                Cursor::Offset(offset) => {
                    query.append_pair("offset", &offset.to_string());
                }
                Cursor::After(after) => {
                    query.append_pair("order_by", "-created_at");
                    if let Some(after) = after {
                        query.append_pair("starting_after", after);
                    }
                }
            }
        }
        let json = self.get_json(url).await?.ok_or(ApiError::Status(404))?;
        let items = json.as_array().ok_or_else(|| ApiError::Shape("expected a JSON array of users"))?;
        Ok(items
            .iter()
            .filter_map(|item| match User::from_json(item) {
                Ok(user) => Some(user),
                Err(error) => {
                    tracing::warn!(%error, "skipping a user the mirror cannot read");
                    None
                }
            })
            .collect())
    }

    /// `GET /v1/users/count`.
    ///
    /// # Errors
    /// `ApiError` when the count cannot be fetched.
    pub async fn user_count(&self) -> Result<u64, ApiError> {
        let json = self.get_json(self.url("v1/users/count")?).await?.ok_or(ApiError::Status(404))?;
        json.get("total_count").and_then(Value::as_u64).ok_or_else(|| ApiError::Shape("no total_count"))
    }

    /// `GET /v1/clients/handshake_payload?nonce=…`: the `Set-Cookie` directives of a
    /// handshake that came back with a nonce.
    ///
    /// # Errors
    /// `ApiError` when the nonce is unknown or the payload malformed.
    pub async fn handshake_payload(&self, nonce: &str) -> Result<Vec<String>, ApiError> {
        let mut url = self.url("v1/clients/handshake_payload")?;
        url.query_pairs_mut().append_pair("nonce", nonce);
        // A browser waits on this: one attempt, no waiting out rate limits.
        let response = self.authed(Method::GET, url).send().await?;
        let status = response.status();
        let body = response.bytes().await?;
        if !status.is_success() {
            return Err(clerk_error(status, &body));
        }
        let json: Value = serde_json::from_slice(&body).map_err(ApiError::Json)?;
        let directives =
            json.get("directives").and_then(Value::as_array).ok_or_else(|| ApiError::Shape("no directives"))?;
        Ok(directives.iter().filter_map(Value::as_str).map(str::to_owned).collect())
    }

    /// Verifies an opaque machine token of `kind`: `POST /v1/api_keys/verify {secret}`,
    /// `/v1/m2m_tokens/verify {token}` or `/v1/oauth_applications/access_tokens/verify
    /// {access_token}`. One attempt: a request waits on it.
    ///
    /// # Errors
    /// `ApiError::Clerk` with status 404 when Clerk does not know the token; any other
    /// `ApiError` when Clerk refused the secret key or could not answer.
    pub async fn verify_machine_token(&self, kind: TokenType, token: &str) -> Result<MachineToken, ApiError> {
        let (path, field) = match kind {
            TokenType::ApiKey => ("v1/api_keys/verify", "secret"),
            TokenType::M2mToken => ("v1/m2m_tokens/verify", "token"),
            TokenType::OAuthToken => ("v1/oauth_applications/access_tokens/verify", "access_token"),
            TokenType::SessionToken => return Err(ApiError::Shape("session tokens are verified locally")),
        };
        let body = serde_json::json!({ field: token });
        let response = self.authed(Method::POST, self.url(path)?).json(&body).send().await?;
        let status = response.status();
        let body = response.bytes().await?;
        if !status.is_success() {
            return Err(clerk_error(status, &body));
        }
        let json: Value = serde_json::from_slice(&body).map_err(ApiError::Json)?;
        Ok(MachineToken::from_json(&json)?)
    }

    /// `POST /v1/sessions/{id}/revoke`.
    ///
    /// # Errors
    /// `ApiError` when Clerk refuses or cannot be reached.
    pub async fn revoke_session(&self, session_id: &str) -> Result<(), ApiError> {
        let mut url = self.url("v1/sessions/")?;
        url.path_segments_mut().map_err(|()| ApiError::NotABase)?.pop_if_empty().push(session_id).push("revoke");
        let response = self.authed(Method::POST, url).send().await?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let body = response.bytes().await?;
        Err(clerk_error(status, &body))
    }

    /// A request carrying the secret key and the pinned API version.
    fn authed(&self, method: Method, url: Url) -> reqwest::RequestBuilder {
        self.client
            .request(method, url)
            .bearer_auth(self.secret.expose())
            .header("Clerk-API-Version", CLERK_API_VERSION)
    }

    fn url(&self, path: &str) -> Result<Url, ApiError> {
        self.base.join(path).map_err(ApiError::Url)
    }

    /// GETs JSON with retries; `None` on 404.
    async fn get_json(&self, url: Url) -> Result<Option<Value>, ApiError> {
        let mut failures = 0u32;
        let mut waits = 0u32;
        loop {
            let sent = self.authed(Method::GET, url.clone()).send().await;
            let response = match sent {
                Ok(response) => response,
                Err(error) if failures + 1 < MAX_ATTEMPTS => {
                    tracing::debug!(%error, "Backend API request failed; retrying");
                    failures += 1;
                    tokio::time::sleep(backoff(failures)).await;
                    continue;
                }
                Err(error) => return Err(error.into()),
            };
            let status = response.status();
            if status == StatusCode::TOO_MANY_REQUESTS && waits < MAX_RATE_LIMIT_WAITS {
                waits += 1;
                let wait = retry_after(response.headers());
                tracing::info!(wait = ?wait, "Backend API rate limit; waiting as Retry-After asks");
                tokio::time::sleep(wait).await;
                continue;
            }
            if status.is_server_error() && failures + 1 < MAX_ATTEMPTS {
                failures += 1;
                tokio::time::sleep(backoff(failures)).await;
                continue;
            }
            if status == StatusCode::NOT_FOUND {
                return Ok(None);
            }
            let body = response.bytes().await?;
            if !status.is_success() {
                return Err(clerk_error(status, &body));
            }
            return serde_json::from_slice(&body).map(Some).map_err(ApiError::Json);
        }
    }
}

fn clerk_error(status: StatusCode, body: &[u8]) -> ApiError {
    match serde_json::from_slice::<ErrorBody>(body).ok().and_then(|b| b.errors.into_iter().next()) {
        Some(e) => {
            ApiError::Clerk { status: status.as_u16(), code: e.code, message: e.message, long_message: e.long_message }
        }
        None => ApiError::Status(status.as_u16()),
    }
}

/// `Retry-After` in seconds (Clerk's form), default 1 s, at most a minute.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Duration {
    headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(Duration::from_secs(1), Duration::from_secs)
        .min(MAX_RETRY_AFTER)
}

/// 200 ms · 2^(n-1), times a random factor in [0.5, 1.5).
fn backoff(attempt: u32) -> Duration {
    let base = Duration::from_millis(200) * 2u32.saturating_pow(attempt.saturating_sub(1).min(6));
    let mut byte = [0u8; 1];
    let _ = aws_lc_rs::rand::fill(&mut byte);
    base.mul_f64(0.5 + f64::from(byte[0]) / 256.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_read_in_seconds_and_capped() {
        let mut h = reqwest::header::HeaderMap::new();
        assert_eq!(retry_after(&h), Duration::from_secs(1));
        h.insert("retry-after", "3".parse().unwrap());
        assert_eq!(retry_after(&h), Duration::from_secs(3));
        h.insert("retry-after", "86400".parse().unwrap());
        assert_eq!(retry_after(&h), MAX_RETRY_AFTER);
    }

    #[test]
    fn backoff_grows_with_jitter() {
        for attempt in 1..6 {
            let d = backoff(attempt);
            let base = 200.0 * f64::from(2u32.pow(attempt - 1));
            assert!(d.as_secs_f64() * 1000.0 >= base * 0.5 && d.as_secs_f64() * 1000.0 < base * 1.5);
        }
    }

    #[test]
    fn clerk_error_bodies_are_typed() {
        let body = br#"{"errors":[{"code":"resource_not_found","message":"not found","long_message":"No user"}],"clerk_trace_id":"x"}"#;
        match clerk_error(StatusCode::UNPROCESSABLE_ENTITY, body) {
            ApiError::Clerk { status, code, .. } => assert_eq!((status, code.as_str()), (422, "resource_not_found")),
            other => panic!("{other}"),
        }
        assert!(matches!(clerk_error(StatusCode::BAD_GATEWAY, b"<html>"), ApiError::Status(502)));
    }
}
