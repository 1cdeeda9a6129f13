//! Clerk's objects as the Backend API and webhooks send them: `User`, `Organization`,
//! `OrganizationMembership` and the verified `MachineToken`, decoded from Clerk's JSON (unknown fields ignored) and checked
//! for the ids the gateway relies on. Clerk's wire format lives here and nowhere else; what
//! the mirror keeps of these objects is the mirror's business. Timestamps are Unix ms.

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Why a Clerk object could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// Required fields are missing or mistyped.
    #[error("{object}: {source}")]
    Json {
        /// The object kind (`user`, `organization`, `membership`).
        object: &'static str,
        /// What serde found.
        #[source]
        source: serde_json::Error,
    },
    /// The id does not have the object's prefix, or could not go into a header.
    #[error("{id:?} is not a {prefix}… id")]
    Id {
        /// The id as sent.
        id: String,
        /// The prefix it should have.
        prefix: &'static str,
    },
}

/// A Clerk User object.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct User {
    /// `user_…`.
    pub id: String,
    /// Username.
    pub username: Option<String>,
    /// First name.
    pub first_name: Option<String>,
    /// Last name.
    pub last_name: Option<String>,
    /// Profile image.
    pub image_url: Option<String>,
    /// Which of `email_addresses` is the primary one.
    pub primary_email_address_id: Option<String>,
    /// Every email address.
    #[serde(default)]
    pub email_addresses: Vec<EmailAddress>,
    /// `public_metadata` (an object, or absent / `null`).
    pub public_metadata: Option<Value>,
    /// `private_metadata`.
    pub private_metadata: Option<Value>,
    /// `unsafe_metadata`.
    pub unsafe_metadata: Option<Value>,
    /// Creation time, ms.
    pub created_at: Option<i64>,
    /// Last update, ms.
    pub updated_at: i64,
}

/// One of a user's email addresses.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct EmailAddress {
    /// `idn_…`.
    pub id: String,
    /// The address.
    pub email_address: String,
}

impl User {
    /// Reads a User object.
    ///
    /// # Errors
    /// `ModelError` when `id` or `updated_at` is missing or mistyped, or the id is not a
    /// `user_…` id.
    pub fn from_json(data: &Value) -> Result<User, ModelError> {
        let user: User = decode("user", data)?;
        check_id(&user.id, "user_")?;
        Ok(user)
    }

    /// The address whose id is `primary_email_address_id`.
    pub fn primary_email(&self) -> Option<&str> {
        let primary = self.primary_email_address_id.as_deref()?;
        self.email_addresses.iter().find(|e| e.id == primary).map(|e| e.email_address.as_str())
    }
}

/// A Clerk Organization object.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Organization {
    /// `org_…`.
    pub id: String,
    /// Name.
    pub name: Option<String>,
    /// Slug.
    pub slug: Option<String>,
    /// Image.
    pub image_url: Option<String>,
    /// `public_metadata`.
    pub public_metadata: Option<Value>,
    /// `private_metadata`.
    pub private_metadata: Option<Value>,
    /// Creation time, ms.
    pub created_at: Option<i64>,
    /// Last update, ms.
    pub updated_at: i64,
}

impl Organization {
    /// Reads an Organization object.
    ///
    /// # Errors
    /// `ModelError` when required fields are missing or the id is not an `org_…` id.
    pub fn from_json(data: &Value) -> Result<Organization, ModelError> {
        let org: Organization = decode("organization", data)?;
        check_id(&org.id, "org_")?;
        Ok(org)
    }
}

/// A Clerk OrganizationMembership object.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct OrganizationMembership {
    /// `orgmem_…`.
    pub id: String,
    /// Role key, e.g. `org:admin`.
    pub role: String,
    /// Permission keys.
    #[serde(default)]
    pub permissions: Vec<String>,
    /// `public_metadata`.
    pub public_metadata: Option<Value>,
    /// The organization (only its id is read).
    pub organization: OrganizationRef,
    /// The member (only the user id is read).
    pub public_user_data: PublicUserData,
    /// Creation time, ms.
    pub created_at: Option<i64>,
    /// Last update, ms.
    pub updated_at: i64,
}

/// The organization a membership points at.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct OrganizationRef {
    /// `org_…`.
    pub id: String,
}

/// The member a membership points at.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct PublicUserData {
    /// `user_…`.
    pub user_id: String,
}

impl OrganizationMembership {
    /// Reads an OrganizationMembership object.
    ///
    /// # Errors
    /// `ModelError` when required fields are missing or mistyped.
    pub fn from_json(data: &Value) -> Result<OrganizationMembership, ModelError> {
        decode("membership", data)
    }
}

/// What the Backend API says of a machine token it verified: an `APIKey`, `M2MToken` or
/// `IdPOAuthAccessToken` object, read by the fields they share.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct MachineToken {
    /// `ak_…`, `mt_…` or `oat_…`.
    pub id: String,
    /// `user_…`, `org_…` or `mch_…`.
    pub subject: String,
    /// Scopes (absent or `null` reads as none).
    #[serde(default, deserialize_with = "null_as_default")]
    pub scopes: Vec<String>,
    /// Custom claims (API keys and M2M tokens).
    pub claims: Option<Value>,
    /// Revoked at Clerk.
    #[serde(default)]
    pub revoked: bool,
    /// Expired at Clerk.
    #[serde(default)]
    pub expired: bool,
    /// Expiry, ms; `None` for a token that never expires.
    pub expiration: Option<i64>,
}

impl MachineToken {
    /// Reads a verified machine token.
    ///
    /// # Errors
    /// `ModelError` when the id or subject is missing or cannot go into a header.
    pub fn from_json(data: &Value) -> Result<MachineToken, ModelError> {
        let token: MachineToken = decode("machine token", data)?;
        check_id(&token.id, "")?;
        check_id(&token.subject, "")?;
        Ok(token)
    }
}

fn null_as_default<'de, D: serde::Deserializer<'de>, T: Default + Deserialize<'de>>(d: D) -> Result<T, D::Error> {
    Option::<T>::deserialize(d).map(Option::unwrap_or_default)
}

fn decode<T: DeserializeOwned>(object: &'static str, data: &Value) -> Result<T, ModelError> {
    T::deserialize(data).map_err(|source| ModelError::Json { object, source })
}

fn check_id(id: &str, prefix: &'static str) -> Result<(), ModelError> {
    if id.starts_with(prefix) && !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(())
    } else {
        Err(ModelError::Id { id: id.to_owned(), prefix })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_user_and_its_primary_email() {
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
        let user = User::from_json(&data).unwrap();
        assert_eq!(user.primary_email(), Some("zoe@example.com"));
        assert_eq!(user.updated_at, 1_654_012_591_835);
    }

    #[test]
    fn malformed_users_are_refused() {
        for data in
            [json!({"id": "user_1"}), json!({"updated_at": 1}), json!({"id": "sess_1", "updated_at": 1}), json!([])]
        {
            assert!(User::from_json(&data).is_err(), "{data}");
        }
    }

    #[test]
    fn memberships_and_orgs() {
        let m = OrganizationMembership::from_json(&json!({
            "id": "orgmem_1", "role": "org:admin", "permissions": ["org:billing:manage"],
            "public_metadata": {}, "organization": {"id": "org_1", "name": "Acme"},
            "public_user_data": {"user_id": "user_1", "identifier": "a@b.c"},
            "created_at": 1, "updated_at": 2
        }))
        .unwrap();
        assert_eq!((m.organization.id.as_str(), m.public_user_data.user_id.as_str()), ("org_1", "user_1"));
        let o =
            Organization::from_json(&json!({"id": "org_1", "name": "Acme", "slug": "acme", "updated_at": 5})).unwrap();
        assert_eq!(o.slug.as_deref(), Some("acme"));
        assert!(Organization::from_json(&json!({"id": "user_1", "updated_at": 5})).is_err());
    }
}
