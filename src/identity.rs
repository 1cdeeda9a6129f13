//! Who a request is, as every layer sees it: the signed-in `Identity` that `auth` produces
//! from a verified token, and the header values that `proxy` injects for it (the session's
//! own, and the mirrored user's). Plain data with no behaviour beyond building those values
//! once, so the layers that make identities and those that forward them share nothing else.

use http::HeaderValue;

use crate::ascii;

/// The active organization of a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Org {
    /// `org_…`.
    pub id: String,
    /// Role with the `org:` prefix.
    pub role: Option<String>,
    /// Slug.
    pub slug: Option<String>,
    /// `org:<feature>:<permission>` keys.
    pub permissions: Vec<String>,
}

/// A signed-in session.
#[derive(Debug)]
pub struct Identity {
    /// `sub`.
    pub user_id: String,
    /// `sid`.
    pub session_id: String,
    /// Active organization.
    pub org: Option<Org>,
    /// Milliseconds since the epoch after which the token is expired (skew included).
    pub valid_until_ms: i64,
    /// Header values computed once, so a cached token costs no formatting per request.
    pub values: IdentityValues,
    /// The claims routes copy into headers (`route[].claim_headers`), by claim path, as
    /// ASCII-safe header values; a claim the token lacks is absent.
    pub claims: Vec<(String, HeaderValue)>,
}

impl Identity {
    /// An identity with its header values computed.
    pub fn new(user_id: String, session_id: String, org: Option<Org>, valid_until_ms: i64) -> Self {
        let values = IdentityValues::new(&user_id, &session_id, org.as_ref());
        Identity { user_id, session_id, org, valid_until_ms, values, claims: Vec::new() }
    }

    /// The header value of claim `path`, when the token had it.
    pub fn claim(&self, path: &str) -> Option<&HeaderValue> {
        self.claims.iter().find(|(name, _)| name == path).map(|(_, value)| value)
    }
}

/// Header-ready values of an identity.
#[derive(Debug, Clone)]
pub struct IdentityValues {
    /// `sub`.
    pub user_id: HeaderValue,
    /// `sid`.
    pub session_id: HeaderValue,
    /// Organization id.
    pub org_id: Option<HeaderValue>,
    /// Organization role.
    pub org_role: Option<HeaderValue>,
    /// Organization slug.
    pub org_slug: Option<HeaderValue>,
    /// Comma-separated permissions.
    pub org_permissions: Option<HeaderValue>,
}

impl IdentityValues {
    fn new(user_id: &str, session_id: &str, org: Option<&Org>) -> Self {
        let opt = |s: Option<&String>| s.map(|s| ascii::header_value(s));
        IdentityValues {
            user_id: ascii::header_value(user_id),
            session_id: ascii::header_value(session_id),
            org_id: org.map(|o| ascii::header_value(&o.id)),
            org_role: opt(org.and_then(|o| o.role.as_ref())),
            org_slug: opt(org.and_then(|o| o.slug.as_ref())),
            org_permissions: org
                .filter(|o| !o.permissions.is_empty())
                .map(|o| ascii::header_value(&o.permissions.join(","))),
        }
    }
}

/// Header-ready values of a mirrored user: `X-User-Email`, `X-User-Metadata`, `X-User`.
#[derive(Debug, Clone)]
pub struct UserValues {
    /// The primary email, when the user has one.
    pub email: Option<HeaderValue>,
    /// Public metadata, compact ASCII JSON.
    pub metadata: HeaderValue,
    /// The public profile, compact ASCII JSON.
    pub profile: HeaderValue,
}
