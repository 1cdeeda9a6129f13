//! What a verified webhook delivery asks of the mirror (`Write`, inside a `Delivery`), and
//! what applying it did (`Applied`, `Effect`) for the in-memory caches to follow, here and
//! (`FleetEvent`, through a shared Postgres mirror) on every other replica. Plain data:
//! applying is the writer's business.

use super::records::{MembershipRecord, OrgRecord, UserRecord};
use super::store::Upsert;

/// A change a webhook event asks of the mirror.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// `user.created` / `user.updated`.
    UpsertUser(UserRecord),
    /// `user.deleted`.
    DeleteUser {
        /// `user_…`.
        id: String,
    },
    /// `session.revoked` / `ended` / `removed`.
    RevokeSession {
        /// `sess_…`.
        session_id: String,
        /// The session's user, when known.
        user_id: Option<String>,
    },
    /// A machine token revoked or deleted: nothing to store, a verdict to forget.
    RevokeMachineToken {
        /// `ak_…`, `mt_…` or `oat_…`.
        id: String,
    },
    /// `organization.created` / `updated`.
    UpsertOrg(OrgRecord),
    /// `organization.deleted`.
    DeleteOrg {
        /// `org_…`.
        id: String,
    },
    /// `organizationMembership.created` / `updated`.
    UpsertMembership(MembershipRecord),
    /// `organizationMembership.deleted`.
    DeleteMembership(MembershipRecord),
    /// An event type the mirror does not keep.
    Nothing,
}

/// A verified delivery, ready to apply.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// `svix-id`: the dedupe key.
    pub id: String,
    /// The event type, for the record.
    pub event_type: String,
    /// When the event happened (envelope timestamp, else receipt), ms.
    pub at_ms: i64,
    /// What to do.
    pub write: Write,
}

/// What applying a delivery did.
#[derive(Debug, Clone, PartialEq)]
pub enum Applied {
    /// The same `svix-id` was applied before: nothing done.
    Duplicate,
    /// Applied, with this effect.
    Applied(Effect),
}

/// The effect of an applied delivery, for in-memory caches to follow.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// A user row is now this record.
    UserChanged(Box<UserRecord>),
    /// A user is now a tombstone.
    UserDeleted(String),
    /// A session is revoked until `until_ms`.
    SessionRevoked {
        /// `sess_…`.
        session_id: String,
        /// End of the revocation's retention, ms.
        until_ms: i64,
    },
    /// An organization or membership row changed.
    Stored,
    /// Ignored under the ordering rule (stale) or because of a tombstone.
    Ignored(Upsert),
    /// An event type the mirror does not keep.
    NotMirrored,
}

/// A change another replica (or this one) committed to a shared mirror, for this replica's
/// in-memory caches to follow.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FleetEvent {
    /// A session or machine token id is revoked until `until_ms`.
    Revoked {
        /// `sess_…`, `ak_…`, `mt_…` or `oat_…`.
        id: String,
        /// End of the revocation's retention, ms.
        until_ms: i64,
    },
    /// A user's row changed or went away: forget what is cached of it.
    User {
        /// `user_…`.
        id: String,
    },
    /// The feed was down and is back: events may have been missed, so reload the
    /// revocations and forget every cached user.
    Resync,
}
