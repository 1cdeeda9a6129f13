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

/// The event types the gateway tells apart (in metrics and in what it asks of the mirror);
/// every other type is `Other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// `user.created`.
    UserCreated,
    /// `user.updated`.
    UserUpdated,
    /// `user.deleted`.
    UserDeleted,
    /// `session.revoked`.
    SessionRevoked,
    /// `session.ended`.
    SessionEnded,
    /// `session.removed`.
    SessionRemoved,
    /// `organization.created`.
    OrganizationCreated,
    /// `organization.updated`.
    OrganizationUpdated,
    /// `organization.deleted`.
    OrganizationDeleted,
    /// `organizationMembership.created`.
    MembershipCreated,
    /// `organizationMembership.updated`.
    MembershipUpdated,
    /// `organizationMembership.deleted`.
    MembershipDeleted,
    /// Any `*.revoked` or `*.deleted` event about an API key, M2M or OAuth token (an id
    /// starting `ak_`, `mt_` or `oat_`).
    MachineTokenRevoked,
    /// Anything else (`email.created`, …).
    Other,
}

impl EventKind {
    /// Every kind, in discriminant order.
    pub const ALL: [EventKind; 14] = [
        EventKind::UserCreated,
        EventKind::UserUpdated,
        EventKind::UserDeleted,
        EventKind::SessionRevoked,
        EventKind::SessionEnded,
        EventKind::SessionRemoved,
        EventKind::OrganizationCreated,
        EventKind::OrganizationUpdated,
        EventKind::OrganizationDeleted,
        EventKind::MembershipCreated,
        EventKind::MembershipUpdated,
        EventKind::MembershipDeleted,
        EventKind::MachineTokenRevoked,
        EventKind::Other,
    ];

    /// The label of every eventkind, in `ALL` order.
    pub const NAMES: &'static [&'static str] = names_of!(EventKind);

    /// Clerk's type name (`other` for `Other`).
    pub const fn as_str(self) -> &'static str {
        match self {
            EventKind::UserCreated => "user.created",
            EventKind::UserUpdated => "user.updated",
            EventKind::UserDeleted => "user.deleted",
            EventKind::SessionRevoked => "session.revoked",
            EventKind::SessionEnded => "session.ended",
            EventKind::SessionRemoved => "session.removed",
            EventKind::OrganizationCreated => "organization.created",
            EventKind::OrganizationUpdated => "organization.updated",
            EventKind::OrganizationDeleted => "organization.deleted",
            EventKind::MembershipCreated => "organizationMembership.created",
            EventKind::MembershipUpdated => "organizationMembership.updated",
            EventKind::MembershipDeleted => "organizationMembership.deleted",
            EventKind::MachineTokenRevoked => "machineToken.revoked",
            EventKind::Other => "other",
        }
    }

    /// The kind of a `type` as Clerk sends it.
    pub fn of(event_type: &str) -> EventKind {
        let known = &EventKind::ALL[..EventKind::ALL.len() - 1];
        known.iter().copied().find(|kind| kind.as_str() == event_type).unwrap_or(EventKind::Other)
    }

    /// Position in `ALL`.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// A parsed delivery body.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    /// What kind of event it is.
    pub kind: EventKind,
    /// `type` as sent, e.g. `user.updated`.
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
    let kind = match EventKind::of(&raw.event_type) {
        EventKind::Other if revokes_machine_token(&raw.event_type, data) => EventKind::MachineTokenRevoked,
        kind => kind,
    };
    let write = match kind {
        EventKind::UserCreated | EventKind::UserUpdated => Write::UpsertUser(User::from_json(data)?.into()),
        EventKind::UserDeleted => Write::DeleteUser { id: id_field(data, "id")? },
        EventKind::SessionRevoked | EventKind::SessionEnded | EventKind::SessionRemoved => Write::RevokeSession {
            session_id: id_field(data, "id")?,
            user_id: data.get("user_id").and_then(Value::as_str).map(str::to_owned),
        },
        EventKind::OrganizationCreated | EventKind::OrganizationUpdated => {
            Write::UpsertOrg(Organization::from_json(data)?.into())
        }
        EventKind::OrganizationDeleted => Write::DeleteOrg { id: id_field(data, "id")? },
        EventKind::MembershipCreated | EventKind::MembershipUpdated => {
            Write::UpsertMembership(OrganizationMembership::from_json(data)?.into())
        }
        EventKind::MembershipDeleted => Write::DeleteMembership(OrganizationMembership::from_json(data)?.into()),
        EventKind::MachineTokenRevoked => match id_field(data, "id")? {
            id if is_machine_token_id(&id) => Write::RevokeMachineToken { id },
            _ => return Err(EventError::MissingId("id")),
        },
        EventKind::Other => Write::Nothing,
    };
    let timestamp_ms = raw.timestamp.map(|t| if t < 1_000_000_000_000 { t.saturating_mul(1000) } else { t });
    Ok(Envelope { kind, event_type: raw.event_type, timestamp_ms, write })
}

/// A `*.revoked` or `*.deleted` event whose object is a machine token.
fn revokes_machine_token(event_type: &str, data: &Value) -> bool {
    let ends = event_type.ends_with(".revoked") || event_type.ends_with(".deleted");
    ends && data.get("id").and_then(Value::as_str).is_some_and(is_machine_token_id)
}

fn is_machine_token_id(id: &str) -> bool {
    ["ak_", "mt_", "oat_"].iter().any(|prefix| id.starts_with(prefix))
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
    fn revocations_of_machine_tokens_are_told_by_their_ids() {
        for (event_type, id) in [("apiKey.revoked", "ak_1"), ("m2mToken.deleted", "mt_1"), ("x.revoked", "oat_1")] {
            let parsed = parse(&body(json!({"type": event_type, "data": {"id": id, "revoked": true}}))).unwrap();
            assert_eq!(parsed.kind, EventKind::MachineTokenRevoked, "{event_type}");
            assert_eq!(parsed.write, Write::RevokeMachineToken { id: id.into() });
        }
        let other = parse(&body(json!({"type": "apiKey.created", "data": {"id": "ak_1"}}))).unwrap();
        assert_eq!(other.write, Write::Nothing);
        let not_a_token = parse(&body(json!({"type": "role.deleted", "data": {"id": "role_1"}}))).unwrap();
        assert_eq!(not_a_token.write, Write::Nothing);
        let named = parse(&body(json!({"type": "machineToken.revoked", "data": {"id": "sess_1"}})));
        assert!(named.is_err(), "only a machine token's id is revoked this way");
    }

    #[test]
    fn kinds_follow_clerks_names() {
        for (i, kind) in EventKind::ALL.iter().enumerate() {
            assert_eq!((kind.index(), EventKind::NAMES[i]), (i, kind.as_str()));
        }
        assert_eq!(EventKind::of("organizationMembership.deleted"), EventKind::MembershipDeleted);
        assert_eq!(EventKind::of("email.created"), EventKind::Other);
        assert_eq!(EventKind::of("User.Created"), EventKind::Other);
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
