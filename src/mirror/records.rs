//! What the mirror stores: one row type per table, mapped from the Backend API client's
//! Clerk objects (the mirror never reads Clerk's JSON itself). Timestamps are Unix ms.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::clerk_api::model::{Organization, OrganizationMembership, User};

/// A user as mirrored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UserRecord {
    /// `user_…`.
    pub id: String,
    /// The address whose id is `primary_email_address_id`.
    pub primary_email: Option<String>,
    /// Username.
    pub username: Option<String>,
    /// First name.
    pub first_name: Option<String>,
    /// Last name.
    pub last_name: Option<String>,
    /// Profile image.
    pub image_url: Option<String>,
    /// `public_metadata` (an object).
    pub public_metadata: Value,
    /// `private_metadata` (an object).
    pub private_metadata: Value,
    /// `unsafe_metadata` (an object).
    pub unsafe_metadata: Value,
    /// Creation time, ms.
    pub created_at: Option<i64>,
    /// Last update, ms: the ordering key.
    pub updated_at: i64,
}

impl From<User> for UserRecord {
    fn from(user: User) -> UserRecord {
        UserRecord {
            primary_email: user.primary_email().map(str::to_owned),
            id: user.id,
            username: user.username,
            first_name: user.first_name,
            last_name: user.last_name,
            image_url: user.image_url,
            public_metadata: object(user.public_metadata),
            private_metadata: object(user.private_metadata),
            unsafe_metadata: object(user.unsafe_metadata),
            created_at: user.created_at,
            updated_at: user.updated_at,
        }
    }
}

/// An organization as mirrored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OrgRecord {
    /// `org_…`.
    pub id: String,
    /// Name.
    pub name: Option<String>,
    /// Slug.
    pub slug: Option<String>,
    /// Image.
    pub image_url: Option<String>,
    /// `public_metadata`.
    pub public_metadata: Value,
    /// `private_metadata`.
    pub private_metadata: Value,
    /// Creation time, ms.
    pub created_at: Option<i64>,
    /// Last update, ms.
    pub updated_at: i64,
}

impl From<Organization> for OrgRecord {
    fn from(org: Organization) -> OrgRecord {
        OrgRecord {
            id: org.id,
            name: org.name,
            slug: org.slug,
            image_url: org.image_url,
            public_metadata: object(org.public_metadata),
            private_metadata: object(org.private_metadata),
            created_at: org.created_at,
            updated_at: org.updated_at,
        }
    }
}

/// A user's membership in an organization.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MembershipRecord {
    /// `orgmem_…`.
    pub id: String,
    /// The organization.
    pub org_id: String,
    /// The member.
    pub user_id: String,
    /// Role key, e.g. `org:admin`.
    pub role: String,
    /// Permission keys.
    pub permissions: Vec<String>,
    /// `public_metadata`.
    pub public_metadata: Value,
    /// Creation time, ms.
    pub created_at: Option<i64>,
    /// Last update, ms.
    pub updated_at: i64,
}

impl From<OrganizationMembership> for MembershipRecord {
    fn from(m: OrganizationMembership) -> MembershipRecord {
        MembershipRecord {
            id: m.id,
            org_id: m.organization.id,
            user_id: m.public_user_data.user_id,
            role: m.role,
            permissions: m.permissions,
            public_metadata: object(m.public_metadata),
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

/// A metadata value as an object (`null` or absent becomes `{}`).
fn object(value: Option<Value>) -> Value {
    match value {
        Some(Value::Object(map)) => Value::Object(map),
        _ => Value::Object(Map::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_clerk_user_becomes_a_record() {
        let data = json!({
            "id": "user_1", "object": "user", "username": null, "first_name": "Zoë", "last_name": "Ng",
            "image_url": "https://img/1", "primary_email_address_id": "idn_2",
            "email_addresses": [
                {"id": "idn_1", "email_address": "old@example.com"},
                {"id": "idn_2", "email_address": "zoe@example.com"}
            ],
            "public_metadata": {"plan": "pro"}, "private_metadata": null, "unsafe_metadata": {},
            "created_at": 1_654_012_591_514_i64, "updated_at": 1_654_012_591_835_i64, "banned": false
        });
        let user = UserRecord::from(User::from_json(&data).unwrap());
        assert_eq!(user.primary_email.as_deref(), Some("zoe@example.com"));
        assert_eq!(user.public_metadata, json!({"plan": "pro"}));
        assert_eq!(user.private_metadata, json!({}));
        assert_eq!(user.updated_at, 1_654_012_591_835);
    }

    #[test]
    fn memberships_and_orgs() {
        let m = MembershipRecord::from(
            OrganizationMembership::from_json(&json!({
                "id": "orgmem_1", "role": "org:admin", "permissions": ["org:billing:manage"],
                "public_metadata": {}, "organization": {"id": "org_1", "name": "Acme"},
                "public_user_data": {"user_id": "user_1", "identifier": "a@b.c"},
                "created_at": 1, "updated_at": 2
            }))
            .unwrap(),
        );
        assert_eq!((m.org_id.as_str(), m.user_id.as_str(), m.role.as_str()), ("org_1", "user_1", "org:admin"));
        let o = OrgRecord::from(
            Organization::from_json(&json!({"id": "org_1", "name": "Acme", "slug": "acme", "updated_at": 5})).unwrap(),
        );
        assert_eq!(o.slug.as_deref(), Some("acme"));
        assert_eq!(o.public_metadata, json!({}));
    }
}
