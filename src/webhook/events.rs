//! Clerk's webhook envelope, parsed into the `mirror::Write` each event type asks for.
//! Parsing only: how a write is applied (ordering, tombstones) is decided in `mirror::store`.

use serde::Deserialize;
use serde_json::Value;

use crate::clerk_api::model::{ModelError, Organization, OrganizationMembership, User};
use crate::mirror::Write;

/// Why a verified body is an `invalid-payload`.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    /// Not JSON, or no `type` / `data`.
    #[error("envelope: {0}")]
    Envelope(#[source] serde_json::Error),
    /// A known type whose `data` is not the Clerk object it should be.
    #[error(transparent)]
    Object(#[from] ModelError),
    /// A deletion or revocation without the id it is about.
    #[error("data.{0} missing")]
    MissingId(&'static str),
}

/// A parsed delivery body.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    /// `type`, e.g. `user.updated`.
    pub event_type: String,
    /// The envelope `timestamp` in milliseconds (Clerk sends ms; seconds are accepted).
    pub timestamp_ms: Option<i64>,
    /// What the event asks of the mirror.
    pub write: Write,
}

#[derive(Deserialize)]
struct RawEnvelope {
    #[serde(rename = "type")]
    event_type: String,
    data: Value,
    timestamp: Option<i64>,
}

/// Parses a verified body.
///
/// # Errors
/// `EventError`: not JSON, no `type` / `data`, or a known type whose data is malformed.
pub fn parse(body: &[u8]) -> Result<Envelope, EventError> {
    let raw: RawEnvelope = serde_json::from_slice(body).map_err(EventError::Envelope)?;
    let data = &raw.data;
    let write = match raw.event_type.as_str() {
        "user.created" | "user.updated" => Write::UpsertUser(User::from_json(data)?.into()),
        "user.deleted" => Write::DeleteUser { id: id_field(data, "id")? },
        "session.revoked" | "session.ended" | "session.removed" => Write::RevokeSession {
            session_id: id_field(data, "id")?,
            user_id: data.get("user_id").and_then(Value::as_str).map(str::to_owned),
        },
        "organization.created" | "organization.updated" => Write::UpsertOrg(Organization::from_json(data)?.into()),
        "organization.deleted" => Write::DeleteOrg { id: id_field(data, "id")? },
        "organizationMembership.created" | "organizationMembership.updated" => {
            Write::UpsertMembership(OrganizationMembership::from_json(data)?.into())
        }
        "organizationMembership.deleted" => Write::DeleteMembership(OrganizationMembership::from_json(data)?.into()),
        _ => Write::Nothing,
    };
    let timestamp_ms = raw.timestamp.map(|t| if t < 1_000_000_000_000 { t.saturating_mul(1000) } else { t });
    Ok(Envelope { event_type: raw.event_type, timestamp_ms, write })
}

fn id_field(data: &Value, key: &'static str) -> Result<String, EventError> {
    data.get(key)
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned)
        .ok_or(EventError::MissingId(key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(v: Value) -> Vec<u8> {
        v.to_string().into_bytes()
    }

    #[test]
    fn timestamps_in_seconds_or_milliseconds() {
        let ms =
            parse(&body(json!({"type": "email.created", "data": {}, "timestamp": 1_654_012_591_835_i64}))).unwrap();
        assert_eq!(ms.timestamp_ms, Some(1_654_012_591_835));
        let s = parse(&body(json!({"type": "email.created", "data": {}, "timestamp": 1_716_883_200}))).unwrap();
        assert_eq!(s.timestamp_ms, Some(1_716_883_200_000));
        assert_eq!(s.write, Write::Nothing);
    }

    #[test]
    fn known_types_become_events() {
        let deleted =
            parse(&body(json!({"type": "user.deleted", "data": {"id": "user_1", "deleted": true, "object": "user"}})));
        assert_eq!(deleted.unwrap().write, Write::DeleteUser { id: "user_1".into() });
        let revoked = parse(&body(
            json!({"type": "session.revoked", "data": {"id": "sess_1", "user_id": "user_1", "status": "revoked"}}),
        ));
        assert_eq!(
            revoked.unwrap().write,
            Write::RevokeSession { session_id: "sess_1".into(), user_id: Some("user_1".into()) }
        );
        let org = parse(&body(json!({"type": "organization.deleted", "data": {"id": "org_1", "deleted": true}})));
        assert_eq!(org.unwrap().write, Write::DeleteOrg { id: "org_1".into() });
    }

    #[test]
    fn malformed_payloads_are_refused() {
        for bad in [
            b"not json".to_vec(),
            body(json!({"data": {}})),
            body(json!({"type": "user.updated"})),
            body(json!({"type": "user.updated", "data": {"id": "user_1"}})),
            body(json!({"type": "user.deleted", "data": {}})),
        ] {
            assert!(parse(&bad).is_err(), "{}", String::from_utf8_lossy(&bad));
        }
    }
}
