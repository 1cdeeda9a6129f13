//! Who a request is, as every layer sees it: the signed-in `Identity` that `auth` produces
//! from a verified session token, the `Machine` it produces from a verified API key, M2M or
//! OAuth token, and the header values that `proxy` injects for them (their own, and the
//! mirrored user's). Plain data with no behaviour beyond building those values once, so the
//! layers that make identities and those that forward them share nothing else.

use http::HeaderValue;

use crate::ascii;
use crate::token_type::TokenType;

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

/// A verified machine token: an API key, an M2M token or an OAuth access token.
#[derive(Debug)]
pub struct Machine {
    /// Which kind of token.
    pub token_type: TokenType,
    /// The token's id (`ak_…`, `mt_…`, `oat_…`, or a JWT's `jti`; empty when it has none):
    /// what a revocation names.
    pub id: String,
    /// Who the token acts for: `user_…`, `org_…` (an organization's API key) or `mch_…`.
    pub subject: String,
    /// Its scopes (OAuth scopes; for M2M tokens, the machines it may call).
    pub scopes: Vec<String>,
    /// Milliseconds since the epoch after which the token is expired, when it expires.
    pub expires_at_ms: Option<i64>,
    /// Header values computed once.
    pub values: MachineValues,
    /// The custom claims routes copy into headers (`route[].claim_headers`), as on
    /// `Identity`.
    pub claims: Vec<(String, HeaderValue)>,
}

impl Machine {
    /// A machine identity with its header values computed.
    pub fn new(token_type: TokenType, id: String, subject: String, scopes: Vec<String>) -> Self {
        let values = MachineValues::new(token_type, &id, &subject, &scopes);
        Machine { token_type, id, subject, scopes, expires_at_ms: None, values, claims: Vec::new() }
    }

    /// The user the token acts for, when its subject is one.
    pub fn user_id(&self) -> Option<&str> {
        Some(self.subject.as_str()).filter(|s| s.starts_with("user_"))
    }

    /// The header value of claim `path`, when the token had it.
    pub fn claim(&self, path: &str) -> Option<&HeaderValue> {
        self.claims.iter().find(|(name, _)| name == path).map(|(_, value)| value)
    }
}

/// Header-ready values of a machine identity: the subject goes to `X-User-Id`, `X-Org-Id`
/// or `X-Machine-Id` by its prefix.
#[derive(Debug, Clone)]
pub struct MachineValues {
    /// `X-Auth-Token-Type`.
    pub token_type: HeaderValue,
    /// `X-Auth-Token-Id`, when the token has an id.
    pub token_id: Option<HeaderValue>,
    /// A `user_…` subject.
    pub user_id: Option<HeaderValue>,
    /// An `org_…` subject.
    pub org_id: Option<HeaderValue>,
    /// Any other subject (`mch_…`).
    pub machine_id: Option<HeaderValue>,
    /// Comma-separated scopes, when there are any.
    pub scopes: Option<HeaderValue>,
}

impl MachineValues {
    fn new(token_type: TokenType, id: &str, subject: &str, scopes: &[String]) -> Self {
        let subject_value = Some(ascii::header_value(subject));
        let (user_id, org_id, machine_id) = if subject.starts_with("user_") {
            (subject_value, None, None)
        } else if subject.starts_with("org_") {
            (None, subject_value, None)
        } else {
            (None, None, subject_value)
        };
        MachineValues {
            token_type: HeaderValue::from_static(token_type.as_str()),
            token_id: (!id.is_empty()).then(|| ascii::header_value(id)),
            user_id,
            org_id,
            machine_id,
            scopes: (!scopes.is_empty()).then(|| ascii::header_value(&scopes.join(","))),
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
