//! JWT structure and signature: strict base64url segments, the JOSE header rules (alg
//! allow-list, `typ`, token category) of each class of JWT the instance signs (session,
//! M2M, OAuth access token), and the RSA signature check. Claims are decoded here but
//! judged only in `claims.rs` and `machine.rs`, after the signature has been verified.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use serde::Deserialize;
use serde_json::Value;

use super::jwks::VerifyKey;
use super::reason::Reason;

/// Tokens longer than this are refused before any decoding (Clerk's cookie budget is ~4 KB).
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// Header `cat` of session tokens.
const CATEGORY_SESSION: &str = "cl_B7d4PD111AAA";
/// Header `cat` that instances stamping every class use to mean "not categorized".
const CATEGORY_IGNORE: &str = "cl_I7d4PD111III";
/// Header `cat` of M2M JWTs.
const CATEGORY_M2M: &str = "cl_B7d4PD333AAA";

/// The classes of JWT an instance key signs, each with its own header rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwtClass {
    /// A session token: `typ` `JWT` or absent, `cat` the session's (or none, or "ignore").
    Session,
    /// An M2M token: `typ` `JWT` or absent, `cat` the M2M category or none.
    M2m,
    /// An OAuth access token: `typ` `at+jwt` or `application/at+jwt`.
    OAuth,
}

/// A token whose structure and header are acceptable; its signature is not yet checked.
#[derive(Debug)]
pub struct Parsed<'a> {
    /// `kid` from the header.
    pub kid: Option<String>,
    /// `alg` from the header, already one of RS256/RS384/RS512.
    pub alg: Algorithm,
    /// Decoded payload; not to be trusted before `verify_signature`.
    pub claims: Value,
    signing_input: &'a str,
    /// The decoded signature (decoded once, here).
    signature: Vec<u8>,
}

#[derive(Deserialize)]
struct Header {
    alg: Option<Value>,
    typ: Option<Value>,
    kid: Option<Value>,
    cat: Option<Value>,
    crit: Option<Value>,
}

/// Checks the token's shape and header.
///
/// # Errors
/// `TokenInvalid` for structure, `TokenInvalidAlgorithm` for `alg`, `TokenTypeMismatch` for
/// tokens that announce another class in their header.
pub fn parse(token: &str) -> Result<Parsed<'_>, Reason> {
    parse_as(token, JwtClass::Session)
}

/// Checks the token's shape and the header rules of `class`.
///
/// # Errors
/// As `parse`, `TokenTypeMismatch` meaning "not of `class`".
pub fn parse_as(token: &str, class: JwtClass) -> Result<Parsed<'_>, Reason> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(Reason::TokenInvalid);
    }
    let mut parts = token.split('.');
    let (Some(header_b64), Some(payload_b64), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Reason::TokenInvalid);
    };
    let header: Header = decode_json(header_b64)?;
    let claims: Value = decode_json(payload_b64)?;
    let signature = decode_segment(signature)?;
    if !claims.is_object() || signature.is_empty() {
        return Err(Reason::TokenInvalid);
    }
    check_class(&header, class)?;
    if header.crit.is_some() {
        return Err(Reason::TokenInvalid);
    }
    let alg = match header.alg.as_ref().and_then(Value::as_str) {
        Some("RS256") => Algorithm::RS256,
        Some("RS384") => Algorithm::RS384,
        Some("RS512") => Algorithm::RS512,
        _ => return Err(Reason::TokenInvalidAlgorithm),
    };
    let kid = match header.kid {
        None => None,
        Some(Value::String(kid)) => Some(kid),
        Some(_) => return Err(Reason::TokenInvalid),
    };
    let signing_input = &token[..header_b64.len() + 1 + payload_b64.len()];
    Ok(Parsed { kid, alg, claims, signing_input, signature })
}

/// Whether a `typ` names an OAuth access token.
pub fn is_access_token_type(typ: &str) -> bool {
    typ.eq_ignore_ascii_case("at+jwt") || typ.eq_ignore_ascii_case("application/at+jwt")
}

/// `typ` must be `JWT` when present (`at+jwt` for an OAuth access token, and only there);
/// a category of another class is a type mismatch.
fn check_class(header: &Header, class: JwtClass) -> Result<(), Reason> {
    let access_token = match header.typ.as_ref() {
        None => false,
        Some(Value::String(typ)) if typ == "JWT" => false,
        Some(Value::String(typ)) if is_access_token_type(typ) => true,
        Some(_) => return Err(Reason::TokenInvalid),
    };
    if access_token != (class == JwtClass::OAuth) {
        return Err(Reason::TokenTypeMismatch);
    }
    let cat = match header.cat.as_ref() {
        None => None,
        Some(Value::String(cat)) => Some(cat.as_str()),
        Some(_) => return Err(Reason::TokenTypeMismatch),
    };
    let fits = match class {
        JwtClass::Session => cat.is_none_or(|c| c == CATEGORY_SESSION || c == CATEGORY_IGNORE),
        JwtClass::M2m => cat.is_none_or(|c| c == CATEGORY_M2M),
        JwtClass::OAuth => true,
    };
    if fits { Ok(()) } else { Err(Reason::TokenTypeMismatch) }
}

/// Verifies the signature with `key`, whose declared algorithm must be the token's.
///
/// # Errors
/// `TokenInvalidAlgorithm` when the algorithms differ, `TokenInvalidSignature` when the
/// signature does not verify.
pub fn verify_signature(parsed: &Parsed<'_>, key: &VerifyKey) -> Result<(), Reason> {
    if parsed.alg != key.alg {
        return Err(Reason::TokenInvalidAlgorithm);
    }
    key.key.verify_sig(parsed.signing_input.as_bytes(), &parsed.signature).map_err(|_| Reason::TokenInvalidSignature)
}

/// The few claims Clerk's cookie rules (and its token-type routing) look at before
/// verification.
#[derive(Debug, Default, Deserialize)]
pub struct Peek {
    /// `sub`.
    pub sub: Option<String>,
    /// `iss`.
    pub iss: Option<String>,
    /// `iat`, seconds.
    pub iat: Option<i64>,
    /// `exp`, seconds.
    pub exp: Option<i64>,
}

/// Claims of a token decoded without any verification. Only for choosing between cookies,
/// as Clerk's SDK does; never for deciding who someone is.
pub fn peek(token: &str) -> Option<Peek> {
    if token.len() > MAX_TOKEN_BYTES {
        return None;
    }
    let payload = token.split('.').nth(1)?;
    let bytes = decode_segment(payload).ok()?;
    serde_json::from_slice::<Peek>(&bytes).ok()
}

/// The class a JWT announces, read without verification (Clerk's routing): `typ` `at+jwt`
/// is an OAuth access token, a `sub` starting `mch_` an M2M token, anything else a session
/// token. Only for choosing the rules that then verify it.
pub fn announced_class(token: &str) -> JwtClass {
    let header = token.split('.').next().and_then(|h| decode_json::<Header>(h).ok());
    let typ = header.as_ref().and_then(|h| h.typ.as_ref()).and_then(Value::as_str);
    if typ.is_some_and(is_access_token_type) {
        return JwtClass::OAuth;
    }
    match peek(token).and_then(|p| p.sub) {
        Some(sub) if sub.starts_with("mch_") => JwtClass::M2m,
        _ => JwtClass::Session,
    }
}

fn decode_segment(segment: &str) -> Result<Vec<u8>, Reason> {
    URL_SAFE_NO_PAD.decode(segment).map_err(|_| Reason::TokenInvalid)
}

fn decode_json<T: for<'de> Deserialize<'de>>(segment: &str) -> Result<T, Reason> {
    let bytes = decode_segment(segment)?;
    serde_json::from_slice(&bytes).map_err(|_| Reason::TokenInvalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(json: &str) -> String {
        URL_SAFE_NO_PAD.encode(json)
    }

    fn token(header: &str, payload: &str) -> String {
        format!("{}.{}.{}", b64(header), b64(payload), b64("sig"))
    }

    #[test]
    fn accepts_a_well_formed_rs256_header() {
        let t = token(r#"{"alg":"RS256","typ":"JWT","kid":"ins_1","cat":"cl_B7d4PD111AAA"}"#, r#"{"sub":"u"}"#);
        let parsed = parse(&t).unwrap();
        assert_eq!(parsed.alg, Algorithm::RS256);
        assert_eq!(parsed.kid.as_deref(), Some("ins_1"));
        assert_eq!(parsed.claims["sub"], "u");
    }

    #[test]
    fn structure_errors_are_token_invalid() {
        let good_header = b64(r#"{"alg":"RS256"}"#);
        let good_payload = b64("{}");
        let cases = [
            String::new(),
            "a.b".into(),
            "a.b.c.d".into(),
            format!("{good_header}.{good_payload}."),
            format!("{good_header}.{good_payload}.sig="),
            format!(" {good_header}.{good_payload}.{}", b64("s")),
            format!("{good_header}.{}.{}", b64("[1]"), b64("s")),
            format!("{}.{good_payload}.{}", b64("not json"), b64("s")),
            format!("{}.{good_payload}.{}", b64(r#"{"alg":"RS256","alg":"RS256"}"#), b64("s")),
            format!("{}.{good_payload}.{}", b64(r#"{"alg":"RS256","crit":["exp"]}"#), b64("s")),
            format!("{}.{good_payload}.{}", b64(r#"{"alg":"RS256","kid":5}"#), b64("s")),
            format!("{}.{good_payload}.{}", b64(r#"{"alg":"RS256","typ":"JOSE"}"#), b64("s")),
            "x".repeat(MAX_TOKEN_BYTES + 1),
        ];
        for case in cases {
            assert_eq!(parse(&case).unwrap_err(), Reason::TokenInvalid, "{case:.80}");
        }
    }

    #[test]
    fn only_rsa_pkcs1_algorithms_pass() {
        for alg in ["none", "HS256", "PS256", "ES256", "rs256", "EdDSA"] {
            let t = token(&format!(r#"{{"alg":"{alg}"}}"#), "{}");
            assert_eq!(parse(&t).unwrap_err(), Reason::TokenInvalidAlgorithm, "{alg}");
        }
        assert_eq!(parse(&token("{}", "{}")).unwrap_err(), Reason::TokenInvalidAlgorithm);
    }

    #[test]
    fn other_token_classes_are_type_mismatch() {
        for header in [
            r#"{"alg":"RS256","typ":"at+jwt"}"#,
            r#"{"alg":"RS256","typ":"application/at+jwt"}"#,
            r#"{"alg":"RS256","cat":"cl_B7d4PD222AAA"}"#,
            r#"{"alg":"RS256","cat":"cl_B7d4PD333AAA"}"#,
        ] {
            assert_eq!(parse(&token(header, "{}")).unwrap_err(), Reason::TokenTypeMismatch, "{header}");
        }
        assert!(parse(&token(r#"{"alg":"RS256","cat":"cl_I7d4PD111III"}"#, "{}")).is_ok());
    }

    #[test]
    fn each_class_has_its_own_header_rules() {
        let oauth = token(r#"{"alg":"RS256","typ":"at+jwt"}"#, "{}");
        assert!(parse_as(&oauth, JwtClass::OAuth).is_ok());
        assert_eq!(parse_as(&oauth, JwtClass::M2m).unwrap_err(), Reason::TokenTypeMismatch);
        let plain = token(r#"{"alg":"RS256","typ":"JWT"}"#, "{}");
        assert_eq!(parse_as(&plain, JwtClass::OAuth).unwrap_err(), Reason::TokenTypeMismatch);
        let m2m = token(r#"{"alg":"RS256","cat":"cl_B7d4PD333AAA"}"#, "{}");
        assert!(parse_as(&m2m, JwtClass::M2m).is_ok());
        assert!(parse_as(&plain, JwtClass::M2m).is_ok(), "tokens minted before categories have none");
        for cat in ["cl_B7d4PD111AAA", "cl_I7d4PD111III", "cl_B7d4PD222AAA"] {
            let other = token(&format!(r#"{{"alg":"RS256","cat":"{cat}"}}"#), "{}");
            assert_eq!(parse_as(&other, JwtClass::M2m).unwrap_err(), Reason::TokenTypeMismatch, "{cat}");
        }
    }
}
