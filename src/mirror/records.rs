//! What the mirror stores, and how Clerk's JSON (webhook `data`, Backend API responses)
//! becomes it. Timestamps are Clerk's: Unix milliseconds.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

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

#[derive(Deserialize)]
struct ClerkUser {
    id: String,
    username: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    image_url: Option<String>,
    primary_email_address_id: Option<String>,
    #[serde(default)]
    email_addresses: Vec<ClerkEmail>,
    public_metadata: Option<Value>,
    private_metadata: Option<Value>,
    unsafe_metadata: Option<Value>,
    created_at: Option<i64>,
    updated_at: i64,
}

#[derive(Deserialize)]
struct ClerkEmail {
    id: String,
    email_address: String,
}

impl UserRecord {
    /// Reads a Clerk User object.
    ///
    /// # Errors
    /// A message when required fields (`id`, `updated_at`) are missing or mistyped.
    pub fn from_clerk(data: &Value) -> Result<UserRecord, String> {
        let user: ClerkUser = serde_json::from_value(data.clone()).map_err(|e| format!("user: {e}"))?;
        check_id(&user.id, "user_")?;
        let primary_email = user.primary_email_address_id.as_ref().and_then(|primary| {
            user.email_addresses.iter().find(|e| &e.id == primary).map(|e| e.email_address.clone())
        });
        Ok(UserRecord {
            id: user.id,
            primary_email,
            username: user.username,
            first_name: user.first_name,
            last_name: user.last_name,
            image_url: user.image_url,
            public_metadata: object(user.public_metadata),
            private_metadata: object(user.private_metadata),
            unsafe_metadata: object(user.unsafe_metadata),
            created_at: user.created_at,
            updated_at: user.updated_at,
        })
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

#[derive(Deserialize)]
struct ClerkOrg {
    id: String,
    name: Option<String>,
    slug: Option<String>,
    image_url: Option<String>,
    public_metadata: Option<Value>,
    private_metadata: Option<Value>,
    created_at: Option<i64>,
    updated_at: i64,
}

impl OrgRecord {
    /// Reads a Clerk Organization object.
    ///
    /// # Errors
    /// A message when required fields are missing or mistyped.
    pub fn from_clerk(data: &Value) -> Result<OrgRecord, String> {
        let org: ClerkOrg = serde_json::from_value(data.clone()).map_err(|e| format!("organization: {e}"))?;
        check_id(&org.id, "org_")?;
        Ok(OrgRecord {
            id: org.id,
            name: org.name,
            slug: org.slug,
            image_url: org.image_url,
            public_metadata: object(org.public_metadata),
            private_metadata: object(org.private_metadata),
            created_at: org.created_at,
            updated_at: org.updated_at,
        })
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

#[derive(Deserialize)]
struct ClerkMembership {
    id: String,
    role: String,
    #[serde(default)]
    permissions: Vec<String>,
    public_metadata: Option<Value>,
    organization: IdOnly,
    public_user_data: UserIdOnly,
    created_at: Option<i64>,
    updated_at: i64,
}

#[derive(Deserialize)]
struct IdOnly {
    id: String,
}

#[derive(Deserialize)]
struct UserIdOnly {
    user_id: String,
}

impl MembershipRecord {
    /// Reads a Clerk OrganizationMembership object.
    ///
    /// # Errors
    /// A message when required fields are missing or mistyped.
    pub fn from_clerk(data: &Value) -> Result<MembershipRecord, String> {
        let m: ClerkMembership = serde_json::from_value(data.clone()).map_err(|e| format!("membership: {e}"))?;
        Ok(MembershipRecord {
            id: m.id,
            org_id: m.organization.id,
            user_id: m.public_user_data.user_id,
            role: m.role,
            permissions: m.permissions,
            public_metadata: object(m.public_metadata),
            created_at: m.created_at,
            updated_at: m.updated_at,
        })
    }
}

/// A metadata value as an object (`null` or absent becomes `{}`).
fn object(value: Option<Value>) -> Value {
    match value {
        Some(Value::Object(map)) => Value::Object(map),
        _ => Value::Object(Map::new()),
    }
}

fn check_id(id: &str, prefix: &str) -> Result<(), String> {
    if id.starts_with(prefix) && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(())
    } else {
        Err(format!("{id:?} is not a {prefix}… id"))
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
        let user = UserRecord::from_clerk(&data).unwrap();
        assert_eq!(user.primary_email.as_deref(), Some("zoe@example.com"));
        assert_eq!(user.public_metadata, json!({"plan": "pro"}));
        assert_eq!(user.private_metadata, json!({}));
        assert_eq!(user.updated_at, 1_654_012_591_835);
    }

    #[test]
    fn malformed_users_are_refused() {
        for data in
            [json!({"id": "user_1"}), json!({"updated_at": 1}), json!({"id": "sess_1", "updated_at": 1}), json!([])]
        {
            assert!(UserRecord::from_clerk(&data).is_err(), "{data}");
        }
    }

    #[test]
    fn memberships_and_orgs() {
        let m = MembershipRecord::from_clerk(&json!({
            "id": "orgmem_1", "role": "org:admin", "permissions": ["org:billing:manage"],
            "public_metadata": {}, "organization": {"id": "org_1", "name": "Acme"},
            "public_user_data": {"user_id": "user_1", "identifier": "a@b.c"},
            "created_at": 1, "updated_at": 2
        }))
        .unwrap();
        assert_eq!((m.org_id.as_str(), m.user_id.as_str(), m.role.as_str()), ("org_1", "user_1", "org:admin"));
        let o =
            OrgRecord::from_clerk(&json!({"id": "org_1", "name": "Acme", "slug": "acme", "updated_at": 5})).unwrap();
        assert_eq!(o.slug.as_deref(), Some("acme"));
    }
}
