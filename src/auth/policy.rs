//! A route's `require` rules judged against whoever signed in (a session or a machine
//! token): any one of the listed organization roles, every listed permission, every listed
//! scope, the mirrored user's metadata. A rule a kind of token cannot meet fails closed.

use serde_json::Value;

use crate::config::Requirements;
use crate::identity::{Identity, Machine, Org};

/// What the rules are judged against.
#[derive(Clone, Copy)]
pub struct Holder<'a> {
    /// The session's active organization (machine tokens have none).
    pub org: Option<&'a Org>,
    /// A machine token's scopes (sessions have none).
    pub scopes: &'a [String],
}

impl<'a> From<&'a Identity> for Holder<'a> {
    fn from(identity: &'a Identity) -> Self {
        Holder { org: identity.org.as_ref(), scopes: &[] }
    }
}

impl<'a> From<&'a Machine> for Holder<'a> {
    fn from(machine: &'a Machine) -> Self {
        Holder { org: None, scopes: &machine.scopes }
    }
}

/// The rule a request failed, named as in the config (and the 403 body).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// `require.org_role`.
    OrgRole,
    /// `require.permission`.
    Permission,
    /// `require.scope`.
    Scope,
    /// `require.metadata`.
    Metadata,
}

impl Rule {
    /// The config key.
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::OrgRole => "org_role",
            Rule::Permission => "permission",
            Rule::Scope => "scope",
            Rule::Metadata => "metadata",
        }
    }
}

/// Checks `require` against the holder's active organization and scopes and the user's
/// public metadata from the mirror (`None` when the user is not mirrored: metadata rules
/// fail).
///
/// # Errors
/// The first rule that is not met.
pub fn check(require: &Requirements, holder: Holder<'_>, public_metadata: Option<&Value>) -> Result<(), Rule> {
    let org = holder.org;
    if !require.org_roles.is_empty() {
        let role = org.and_then(|o| o.role.as_deref());
        if !role.is_some_and(|r| require.org_roles.iter().any(|wanted| wanted == r)) {
            return Err(Rule::OrgRole);
        }
    }
    let held = org.map_or(&[][..], |o| o.permissions.as_slice());
    if !require.permissions.iter().all(|wanted| held.contains(wanted)) {
        return Err(Rule::Permission);
    }
    if !require.scopes.iter().all(|wanted| holder.scopes.contains(wanted)) {
        return Err(Rule::Scope);
    }
    if let Some(wanted) = &require.metadata
        && !public_metadata.is_some_and(|actual| contains(actual, wanted))
    {
        return Err(Rule::Metadata);
    }
    Ok(())
}

/// `actual` contains `wanted`: every key of a wanted object is present with a value that
/// contains the wanted one; anything else must be equal.
pub fn contains(actual: &Value, wanted: &Value) -> bool {
    match (actual, wanted) {
        (Value::Object(actual), Value::Object(wanted)) => {
            wanted.iter().all(|(key, w)| actual.get(key).is_some_and(|a| contains(a, w)))
        }
        _ => actual == wanted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::claims::{ClaimRules, check as check_claims};
    use serde_json::json;

    fn identity(org: Option<(&str, &[&str])>) -> std::sync::Arc<Identity> {
        let mut claims = json!({"sub": "user_1", "sid": "sess_1", "exp": 4_000_000_000_i64});
        if let Some((role, perms)) = org {
            claims["org_id"] = json!("org_1");
            claims["org_role"] = json!(role);
            claims["org_permissions"] = json!(perms);
        }
        check_claims(&claims, &ClaimRules::default(), 0).unwrap()
    }

    fn rules(roles: &[&str], perms: &[&str]) -> Requirements {
        Requirements {
            org_roles: roles.iter().map(|s| s.to_string()).collect(),
            permissions: perms.iter().map(|s| s.to_string()).collect(),
            ..Requirements::default()
        }
    }

    fn check_identity(require: &Requirements, identity: &Identity, metadata: Option<&Value>) -> Result<(), Rule> {
        check(require, identity.into(), metadata)
    }

    #[test]
    fn scopes_are_all_of_and_only_machine_tokens_hold_them() {
        use crate::token_type::TokenType;
        let scopes = |s: &[&str]| s.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let require = Requirements { scopes: scopes(&["read", "write"]), ..Requirements::default() };
        let both = Machine::new(TokenType::OAuthToken, "oat_1".into(), "user_1".into(), scopes(&["write", "read"]));
        let one = Machine::new(TokenType::OAuthToken, "oat_2".into(), "user_1".into(), scopes(&["read"]));
        assert_eq!(check(&require, (&both).into(), None), Ok(()));
        assert_eq!(check(&require, (&one).into(), None), Err(Rule::Scope));
        assert_eq!(check_identity(&require, &identity(None), None), Err(Rule::Scope));
        let roles = rules(&["org:admin"], &[]);
        assert_eq!(check(&roles, (&both).into(), None), Err(Rule::OrgRole), "machine tokens have no org role");
    }

    #[test]
    fn roles_are_any_of() {
        let admin = identity(Some(("org:admin", &[])));
        assert_eq!(check_identity(&rules(&["org:owner", "org:admin"], &[]), &admin, None), Ok(()));
        assert_eq!(check_identity(&rules(&["org:owner"], &[]), &admin, None), Err(Rule::OrgRole));
        assert_eq!(check_identity(&rules(&["org:admin"], &[]), &identity(None), None), Err(Rule::OrgRole));
    }

    #[test]
    fn permissions_are_all_of() {
        let member = identity(Some(("org:member", &["org:billing:read", "org:billing:manage"])));
        assert_eq!(check_identity(&rules(&[], &["org:billing:read", "org:billing:manage"]), &member, None), Ok(()));
        assert_eq!(
            check_identity(&rules(&[], &["org:billing:read", "org:teams:read"]), &member, None),
            Err(Rule::Permission)
        );
        assert_eq!(check_identity(&rules(&[], &["org:billing:read"]), &identity(None), None), Err(Rule::Permission));
        assert_eq!(check_identity(&Requirements::default(), &identity(None), None), Ok(()));
    }

    #[test]
    fn metadata_is_a_subset_match() {
        let wanted = json!({"plan": "pro", "flags": {"beta": true}});
        let require = Requirements { metadata: Some(wanted), ..Requirements::default() };
        let id = identity(None);
        let full = json!({"plan": "pro", "flags": {"beta": true, "x": 1}, "seats": 5});
        assert_eq!(check_identity(&require, &id, Some(&full)), Ok(()));
        for actual in [
            json!({"plan": "free", "flags": {"beta": true}}),
            json!({"plan": "pro"}),
            json!({"plan": "pro", "flags": {"beta": "true"}}),
        ] {
            assert_eq!(check_identity(&require, &id, Some(&actual)), Err(Rule::Metadata), "{actual}");
        }
        assert_eq!(check_identity(&require, &id, None), Err(Rule::Metadata), "an unmirrored user fails closed");
        assert!(contains(&json!([1, 2]), &json!([1, 2])));
        assert!(!contains(&json!([1, 2, 3]), &json!([1, 2])));
    }
}
