//! Judging a verified token's claims (Clerk's order: `sub`, then the gateway's `iss` and
//! token-class checks, `azp`, `exp`, `nbf`, `iat`, `sts`) and turning them into an
//! `Identity` with its organization (v2 `o` + `fea`, or v1 `org_*` claims).

use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;
use serde_json::Value;

use super::reason::Reason;
use crate::ascii;
use crate::identity::{Identity, Org};

/// The claim rules from `[clerk]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClaimRules {
    /// Required `iss`, if known.
    pub issuer: Option<String>,
    /// Accepted `azp` values; empty = not checked.
    pub authorized_parties: Vec<String>,
    /// Let tokens without `azp` through even when parties are configured.
    pub allow_missing_azp: bool,
    /// Tolerance for the time claims.
    pub clock_skew: Duration,
    /// Claim paths (`a.b` nested) kept on the identity for `route[].claim_headers`.
    pub copied_claims: Vec<String>,
}

/// Checks the claims of a token whose signature has been verified.
///
/// # Errors
/// The first rule the claims break, as Clerk names it.
pub fn check(claims: &Value, rules: &ClaimRules, now_ms: i64) -> Result<Arc<Identity>, Reason> {
    check_with(claims, rules, Some(now_ms))
}

/// Checks every rule but the time claims: for proving which session a token belongs to
/// after it expired (logout revokes that session).
///
/// # Errors
/// The first rule the claims break.
pub fn check_ignoring_time(claims: &Value, rules: &ClaimRules) -> Result<Arc<Identity>, Reason> {
    check_with(claims, rules, None)
}

fn check_with(claims: &Value, rules: &ClaimRules, now_ms: Option<i64>) -> Result<Arc<Identity>, Reason> {
    let user_id = claims.get("sub").and_then(Value::as_str).filter(|s| !s.is_empty());
    let user_id = user_id.ok_or(Reason::TokenVerificationFailed)?;
    if let Some(issuer) = &rules.issuer
        && claims.get("iss").and_then(Value::as_str) != Some(issuer.as_str())
    {
        return Err(Reason::TokenInvalidIssuer);
    }
    let session_id = claims.get("sid").and_then(Value::as_str).filter(|s| !s.is_empty());
    let session_id = match session_id {
        Some(sid) if !user_id.starts_with("mch_") => sid,
        _ => return Err(Reason::TokenTypeMismatch),
    };
    if !is_id(user_id) || !is_id(session_id) {
        return Err(Reason::TokenVerificationFailed);
    }
    check_azp(claims, rules)?;
    let valid_until_ms = check_times(claims, rules.clock_skew, now_ms)?;
    if claims.get("sts").and_then(Value::as_str) == Some("pending") {
        return Err(Reason::SessionPending);
    }
    let mut identity = Identity::new(user_id.to_owned(), session_id.to_owned(), organization(claims), valid_until_ms);
    identity.claims =
        rules.copied_claims.iter().filter_map(|path| Some((path.clone(), claim_value(claims, path)?))).collect();
    Ok(Arc::new(identity))
}

/// Claim `path` (dots into nested objects) as an ASCII-safe header value: strings as they
/// are, numbers and booleans as written, objects and arrays as compact JSON; null is none.
pub(super) fn claim_value(claims: &Value, path: &str) -> Option<HeaderValue> {
    let value = path.split('.').try_fold(claims, |v, key| v.get(key))?;
    let text = match value {
        Value::Null => return None,
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    Some(ascii::header_value(&text))
}

/// Ids go into headers verbatim, so they must be plain visible ASCII.
pub(super) fn is_id(id: &str) -> bool {
    id.len() <= 256 && id.bytes().all(|b| b.is_ascii_graphic())
}

fn check_azp(claims: &Value, rules: &ClaimRules) -> Result<(), Reason> {
    if rules.authorized_parties.is_empty() {
        return Ok(());
    }
    match claims.get("azp") {
        None | Some(Value::Null) if rules.allow_missing_azp => Ok(()),
        Some(Value::String(azp)) if rules.authorized_parties.iter().any(|p| p == azp) => Ok(()),
        _ => Err(Reason::TokenInvalidAuthorizedParties),
    }
}

/// Returns the instant (ms) until which the token stays valid; `now_ms` of `None` checks
/// only that the time claims are well formed.
pub(super) fn check_times(claims: &Value, skew: Duration, now_ms: Option<i64>) -> Result<i64, Reason> {
    let skew_ms = skew.as_millis() as f64;
    let exp_ms = time_claim(claims, "exp")?.ok_or(Reason::TokenVerificationFailed)?;
    let nbf_ms = time_claim(claims, "nbf")?;
    let iat_ms = time_claim(claims, "iat")?;
    let Some(now_ms) = now_ms else { return Ok((exp_ms + skew_ms) as i64) };
    let now = now_ms as f64;
    if exp_ms <= now - skew_ms {
        return Err(Reason::TokenExpired);
    }
    if nbf_ms.is_some_and(|nbf| nbf > now + skew_ms) {
        return Err(Reason::TokenNotActiveYet);
    }
    if iat_ms.is_some_and(|iat| iat > now + skew_ms) {
        return Err(Reason::TokenIatInTheFuture);
    }
    // `as` saturates, so an absurd `exp` becomes i64::MAX rather than wrapping.
    Ok((exp_ms + skew_ms) as i64)
}

/// A NumericDate claim in milliseconds: absent is `None`, anything but a number fails.
fn time_claim(claims: &Value, name: &str) -> Result<Option<f64>, Reason> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => n.as_f64().map(|s| Some(s * 1000.0)).ok_or(Reason::TokenVerificationFailed),
        Some(_) => Err(Reason::TokenVerificationFailed),
    }
}

fn organization(claims: &Value) -> Option<Org> {
    if claims.get("v").and_then(Value::as_i64) == Some(2) {
        let o = claims.get("o")?;
        let features = claims.get("fea").and_then(Value::as_str).unwrap_or("");
        let permissions = decode_permissions(
            features,
            o.get("per").and_then(Value::as_str).unwrap_or(""),
            o.get("fpm").and_then(Value::as_str).unwrap_or(""),
        );
        Some(Org {
            id: string(o, "id")?,
            role: string(o, "rol").map(|r| if r.starts_with("org:") { r } else { format!("org:{r}") }),
            slug: string(o, "slg"),
            permissions,
        })
    } else {
        let permissions = claims
            .get("org_permissions")
            .and_then(Value::as_array)
            .map(|list| list.iter().filter_map(Value::as_str).map(str::to_owned).collect())
            .unwrap_or_default();
        Some(Org {
            id: string(claims, "org_id")?,
            role: string(claims, "org_role"),
            slug: string(claims, "org_slug"),
            permissions,
        })
    }
}

fn string(value: &Value, key: &str) -> Option<String> {
    value.get(key).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_owned)
}

/// Most permission names a mask is decoded against; bounds the work per token.
const MAX_PERMISSIONS: usize = 1024;

/// Decodes v2 permissions: `fpm[i]` is a decimal bitmask over `per` for feature `fea[i]`,
/// bit 0 (least significant) = first permission; only `o:` features yield org permissions.
pub fn decode_permissions(fea: &str, per: &str, fpm: &str) -> Vec<String> {
    if fea.is_empty() || per.is_empty() || fpm.is_empty() {
        return Vec::new();
    }
    let perms: Vec<&str> = per.split(',').map(str::trim).take(MAX_PERMISSIONS).collect();
    let mut out = Vec::new();
    for (feature, mask) in fea.split(',').zip(fpm.split(',')) {
        let Some((scope, name)) = feature.trim().split_once(':') else { continue };
        if !scope.contains('o') || name.is_empty() {
            continue;
        }
        let Some(bits) = mask_bits(mask, perms.len()) else { continue };
        for (perm, set) in perms.iter().zip(bits) {
            if set && !perm.is_empty() {
                out.push(format!("org:{name}:{perm}"));
            }
        }
    }
    out
}

/// The low `width` bits of a non-negative decimal integer of any size, least significant
/// first. Anything but plain ASCII digits is no mask at all.
fn mask_bits(decimal: &str, width: usize) -> Option<Vec<bool>> {
    if decimal.is_empty() || decimal.len() > 400 || !decimal.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut digits: Vec<u8> = decimal.bytes().map(|b| b - b'0').collect();
    let mut bits = Vec::with_capacity(width);
    while bits.len() < width {
        let mut remainder = 0u8;
        for digit in &mut digits {
            let current = remainder * 10 + *digit;
            *digit = current / 2;
            remainder = current % 2;
        }
        bits.push(remainder == 1);
        let leading_zeros = digits.iter().take_while(|d| **d == 0).count();
        digits.drain(..leading_zeros);
        if digits.is_empty() {
            break;
        }
    }
    Some(bits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_700_000_000_000;

    fn rules() -> ClaimRules {
        ClaimRules {
            issuer: Some("https://clerk.example.com".into()),
            authorized_parties: vec!["https://app.example.com".into()],
            allow_missing_azp: false,
            clock_skew: Duration::from_secs(5),
            copied_claims: vec!["tenant_id".into(), "meta.plan".into(), "meta".into(), "missing".into()],
        }
    }

    fn base() -> Value {
        json!({
            "sub": "user_1", "sid": "sess_1", "iss": "https://clerk.example.com",
            "azp": "https://app.example.com", "exp": NOW / 1000 + 60, "iat": NOW / 1000, "nbf": NOW / 1000 - 5,
        })
    }

    fn with(key: &str, value: Value) -> Value {
        let mut claims = base();
        if value.is_null() {
            claims.as_object_mut().unwrap().remove(key);
        } else {
            claims[key] = value;
        }
        claims
    }

    #[test]
    fn a_good_session_token_passes() {
        let id = check(&base(), &rules(), NOW).unwrap();
        assert_eq!(id.user_id, "user_1");
        assert_eq!(id.session_id, "sess_1");
        assert_eq!(id.valid_until_ms, NOW + 65_000);
        assert!(id.org.is_none());
    }

    #[test]
    fn copied_claims_become_ascii_header_values() {
        let mut claims = base();
        claims["tenant_id"] = json!("t_Zoë");
        claims["meta"] = json!({ "plan": "pro", "seats": 3 });
        let identity = check(&claims, &rules(), NOW).unwrap();
        assert_eq!(identity.claim("tenant_id").unwrap(), "t_Zo\\u00eb");
        assert_eq!(identity.claim("meta.plan").unwrap(), "pro");
        assert_eq!(identity.claim("meta").unwrap(), r#"{"plan":"pro","seats":3}"#);
        assert!(identity.claim("missing").is_none() && identity.claim("sub").is_none(), "only copied claims");
    }

    #[test]
    fn each_rule_has_its_reason() {
        let s = NOW / 1000;
        let cases = [
            (with("sub", Value::Null), Reason::TokenVerificationFailed),
            (with("sub", json!(5)), Reason::TokenVerificationFailed),
            (with("iss", json!("https://evil.example.com")), Reason::TokenInvalidIssuer),
            (with("iss", Value::Null), Reason::TokenInvalidIssuer),
            (with("sid", Value::Null), Reason::TokenTypeMismatch),
            (with("sub", json!("mch_123")), Reason::TokenTypeMismatch),
            (with("sub", json!("user 1")), Reason::TokenVerificationFailed),
            (with("azp", Value::Null), Reason::TokenInvalidAuthorizedParties),
            (with("azp", json!("https://app.example.com/")), Reason::TokenInvalidAuthorizedParties),
            (with("azp", json!("https://evil.example.com")), Reason::TokenInvalidAuthorizedParties),
            (with("exp", Value::Null), Reason::TokenVerificationFailed),
            (with("exp", json!("9999999999")), Reason::TokenVerificationFailed),
            (with("exp", json!(s - 6)), Reason::TokenExpired),
            (with("exp", json!(s - 5)), Reason::TokenExpired),
            (with("nbf", json!(s + 6)), Reason::TokenNotActiveYet),
            (with("nbf", json!(true)), Reason::TokenVerificationFailed),
            (with("iat", json!(s + 6)), Reason::TokenIatInTheFuture),
            (with("iat", json!([1])), Reason::TokenVerificationFailed),
            (with("sts", json!("pending")), Reason::SessionPending),
        ];
        for (claims, reason) in cases {
            assert_eq!(check(&claims, &rules(), NOW).unwrap_err(), reason, "{claims}");
        }
    }

    #[test]
    fn skew_is_honoured() {
        let s = NOW / 1000;
        assert!(check(&with("exp", json!(s - 4)), &rules(), NOW).is_ok());
        assert!(check(&with("nbf", json!(s + 5)), &rules(), NOW).is_ok());
        assert!(check(&with("iat", json!(s + 4)), &rules(), NOW).is_ok());
    }

    #[test]
    fn azp_rules_relax_as_configured() {
        let mut r = rules();
        r.allow_missing_azp = true;
        assert!(check(&with("azp", Value::Null), &r, NOW).is_ok());
        assert!(check(&with("azp", json!("https://evil.example.com")), &r, NOW).is_err());
        r.authorized_parties.clear();
        r.allow_missing_azp = false;
        assert!(check(&with("azp", json!("https://anything")), &r, NOW).is_ok());
        r.issuer = None;
        assert!(check(&with("iss", Value::Null), &r, NOW).is_ok());
    }

    #[test]
    fn v2_organization_claims() {
        let mut claims = base();
        claims["v"] = json!(2);
        claims["fea"] = json!("o:dashboard,o:teams,u:impersonation");
        claims["o"] = json!({"id": "org_1", "rol": "admin", "slg": "acme", "per": "manage,read", "fpm": "3,2,1"});
        let id = check(&claims, &rules(), NOW).unwrap();
        let org = id.org.as_ref().unwrap();
        assert_eq!(org.id, "org_1");
        assert_eq!(org.role.as_deref(), Some("org:admin"));
        assert_eq!(org.slug.as_deref(), Some("acme"));
        assert_eq!(org.permissions, ["org:dashboard:manage", "org:dashboard:read", "org:teams:read"]);
        assert_eq!(
            id.values.org_permissions.as_ref().unwrap(),
            "org:dashboard:manage,org:dashboard:read,org:teams:read"
        );
    }

    #[test]
    fn v1_organization_claims() {
        let mut claims = base();
        claims["org_id"] = json!("org_9");
        claims["org_role"] = json!("org:member");
        claims["org_slug"] = json!("globex");
        claims["org_permissions"] = json!(["org:billing:read", 7]);
        let id = check(&claims, &rules(), NOW).unwrap();
        let org = id.org.as_ref().unwrap();
        assert_eq!(org.role.as_deref(), Some("org:member"));
        assert_eq!(org.permissions, ["org:billing:read"]);
    }

    #[test]
    fn permission_masks_follow_clerk() {
        assert_eq!(
            decode_permissions("o:leads,o:whatsapp", "read,manage", "3,1"),
            ["org:leads:read", "org:leads:manage", "org:whatsapp:read"]
        );
        let perms: Vec<String> = (0..80).map(|i| format!("p{i:02}")).collect();
        let perms = perms.join(",");
        let wide = ((1u128 << 72) | 1).to_string();
        assert_eq!(decode_permissions("o:repos", &perms, &wide), ["org:repos:p00", "org:repos:p72"]);
        for bad in ["-1", "0x1f", "1.5", "", " 3", "+3", "abc"] {
            assert!(decode_permissions("o:repos", "read,manage", bad).is_empty(), "{bad:?}");
        }
        assert_eq!(decode_permissions("o:repos", "read,manage", &((1u64 << 40) | 1).to_string()), ["org:repos:read"]);
        assert_eq!(decode_permissions("u:impersonation,o:leads", "read,manage", "1,1"), ["org:leads:read"]);
        assert_eq!(decode_permissions("o:leads", "read,manage", "1,3"), ["org:leads:read"]);
        assert!(decode_permissions("o:leads", "read", "0").is_empty());
    }

    #[test]
    fn non_ascii_org_values_are_escaped() {
        let mut claims = base();
        claims["org_id"] = json!("org_1");
        claims["org_slug"] = json!("café");
        let id = check(&claims, &rules(), NOW).unwrap();
        assert_eq!(id.values.org_slug.as_ref().unwrap(), "caf\\u00e9");
    }
}
