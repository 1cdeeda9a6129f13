//! The adversarial token table: every verification rule, each with its exact status and
//! Clerk reason, through the real gateway.

use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};

use crate::common::*;

struct Case {
    name: &'static str,
    headers: Vec<(String, String)>,
    status: u16,
    reason: &'static str,
}

fn bearer(name: &'static str, token: String, status: u16, reason: &'static str) -> Case {
    Case { name, headers: vec![("authorization".into(), format!("Bearer {token}"))], status, reason }
}

fn headers(name: &'static str, headers: Vec<(&str, String)>, status: u16, reason: &'static str) -> Case {
    Case { name, headers: headers.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(), status, reason }
}

fn rs256_header() -> Value {
    json!({"alg": "RS256", "typ": "JWT", "kid": "ins_a"})
}

fn with_header(header: Value) -> String {
    key_a().token_with_header(&header, &claims(), Algorithm::RS256)
}

fn signed(claims: Value) -> String {
    key_a().token(&claims)
}

fn segments(token: &str) -> Vec<String> {
    token.split('.').map(str::to_owned).collect()
}

fn cases() -> Vec<Case> {
    let a = key_a();
    let good = a.token(&claims());
    let parts = segments(&good);
    let (h, p, s) = (&parts[0], &parts[1], &parts[2]);
    let public_pem = fixture("rsa_a.pub.pem");
    let ec = EncodingKey::from_ec_pem(fixture("ec_p256.pem").as_bytes()).unwrap();
    let flipped = {
        let mut sig: Vec<char> = s.chars().collect();
        sig[100] = if sig[100] == 'A' { 'B' } else { 'A' };
        sig.into_iter().collect::<String>()
    };
    let foreign = key_a().token(&claims_with("iss", json!("https://clerk.other-app.com")));
    let mut template = claims_with("sid", Value::Null);
    template.as_object_mut().unwrap().remove("v");
    vec![
        bearer("valid bearer token", good.clone(), 200, ""),
        headers("valid session cookie", vec![("cookie", session_cookies(&good))], 200, ""),
        headers(
            "the suffixed set wins over another instance's unsuffixed token",
            vec![("cookie", format!("__session={foreign}; {SUFFIXED_COOKIE}={good}; {SUFFIXED_UAT}={CLIENT_UAT}"))],
            200,
            "",
        ),
        headers(
            "a malformed unsuffixed token means the unsuffixed set (signed out)",
            vec![(
                "cookie",
                format!(
                    "__session=garbage; __client_uat={CLIENT_UAT}; {SUFFIXED_COOKIE}={good}; {SUFFIXED_UAT}={CLIENT_UAT}"
                ),
            )],
            401,
            "token-invalid",
        ),
        headers(
            "a session cookie without __client_uat",
            vec![("cookie", format!("__session={good}"))],
            401,
            "session-token-but-no-client-uat",
        ),
        headers(
            "__client_uat=0 means signed out",
            vec![("cookie", format!("__session={good}; __client_uat=0"))],
            401,
            "session-token-but-no-client-uat",
        ),
        headers(
            "__client_uat without a session cookie",
            vec![("cookie", format!("__client_uat={CLIENT_UAT}"))],
            401,
            "client-uat-but-no-session-token",
        ),
        headers(
            "a token older than the client's last change",
            vec![("cookie", format!("__session={good}; __client_uat={}", NOW + 1))],
            401,
            "session-token-iat-before-client-uat",
        ),
        bearer(
            "alg none, empty signature",
            format!("{}.{p}.", b64(r#"{"alg":"none","typ":"JWT"}"#)),
            401,
            "token-invalid",
        ),
        bearer(
            "alg none with a signature",
            format!("{}.{p}.{s}", b64(r#"{"alg":"none"}"#)),
            401,
            "token-invalid-algorithm",
        ),
        bearer(
            "HS256 signed with the public key",
            sign_raw(
                &json!({"alg":"HS256","typ":"JWT","kid":"ins_a"}),
                &claims(),
                &EncodingKey::from_secret(public_pem.as_bytes()),
                Algorithm::HS256,
            ),
            401,
            "token-invalid-algorithm",
        ),
        bearer(
            "PS256",
            a.token_with_header(&json!({"alg":"PS256","kid":"ins_a"}), &claims(), Algorithm::PS256),
            401,
            "token-invalid-algorithm",
        ),
        bearer(
            "ES256",
            sign_raw(&json!({"alg":"ES256","kid":"ins_a"}), &claims(), &ec, Algorithm::ES256),
            401,
            "token-invalid-algorithm",
        ),
        bearer("lowercase rs256", with_header(json!({"alg":"rs256","kid":"ins_a"})), 401, "token-invalid-algorithm"),
        bearer("alg missing", with_header(json!({"kid":"ins_a"})), 401, "token-invalid-algorithm"),
        bearer(
            "RS512 while the key is declared RS256",
            a.token_with_header(&json!({"alg":"RS512","kid":"ins_a"}), &claims(), Algorithm::RS512),
            401,
            "token-invalid-algorithm",
        ),
        bearer(
            "wrong key under the known kid",
            key_b().token_with_header(&rs256_header(), &claims(), Algorithm::RS256),
            401,
            "token-invalid-signature",
        ),
        bearer("unknown kid", key_b().token(&claims()), 401, "jwk-kid-mismatch"),
        bearer("missing kid", with_header(json!({"alg":"RS256","typ":"JWT"})), 401, "jwk-kid-mismatch"),
        bearer(
            "tampered payload",
            format!("{h}.{}.{s}", b64(&claims_with("sub", json!("user_mallory")).to_string())),
            401,
            "token-invalid-signature",
        ),
        bearer(
            "tampered header",
            format!("{}.{p}.{s}", b64(r#"{"alg":"RS256","typ":"JWT","kid":"ins_a","x":1}"#)),
            401,
            "token-invalid-signature",
        ),
        bearer("truncated signature", format!("{h}.{p}.{}", &s[..s.len() - 2]), 401, "token-invalid-signature"),
        bearer("bit-flipped signature", format!("{h}.{p}.{flipped}"), 401, "token-invalid-signature"),
        bearer("expired outside the skew", signed(claims_with("exp", json!(NOW - 6))), 401, "token-expired"),
        bearer("expired exactly at the skew", signed(claims_with("exp", json!(NOW - 5))), 401, "token-expired"),
        bearer("expired inside the skew", signed(claims_with("exp", json!(NOW - 4))), 200, ""),
        bearer("nbf beyond the skew", signed(claims_with("nbf", json!(NOW + 6))), 401, "token-not-active-yet"),
        bearer("nbf inside the skew", signed(claims_with("nbf", json!(NOW + 5))), 200, ""),
        bearer("iat in the future", signed(claims_with("iat", json!(NOW + 6))), 401, "token-iat-in-the-future"),
        bearer("azp missing", signed(claims_with("azp", Value::Null)), 401, "token-invalid-authorized-parties"),
        bearer(
            "azp wrong",
            signed(claims_with("azp", json!("https://evil.example.com"))),
            401,
            "token-invalid-authorized-parties",
        ),
        bearer(
            "azp with a trailing slash",
            signed(claims_with("azp", json!("https://app.example.com/"))),
            401,
            "token-invalid-authorized-parties",
        ),
        bearer("iss wrong", signed(claims_with("iss", json!("https://clerk.evil.com"))), 401, "token-invalid-issuer"),
        bearer("iss missing", signed(claims_with("iss", Value::Null)), 401, "token-invalid-issuer"),
        bearer(
            "iss with a trailing slash",
            signed(claims_with("iss", json!("https://clerk.example.com/"))),
            401,
            "token-invalid-issuer",
        ),
        bearer("sid missing", signed(claims_with("sid", Value::Null)), 401, "token-type-mismatch"),
        bearer("machine token", signed(claims_with("sub", json!("mch_2abc"))), 401, "token-type-mismatch"),
        bearer(
            "JWT template category",
            with_header(json!({"alg":"RS256","kid":"ins_a","cat":"cl_B7d4PD222AAA"})),
            401,
            "token-type-mismatch",
        ),
        bearer(
            "M2M category",
            with_header(json!({"alg":"RS256","kid":"ins_a","cat":"cl_B7d4PD333AAA"})),
            401,
            "token-type-mismatch",
        ),
        bearer("JWT template without a category", signed(template), 401, "token-type-mismatch"),
        bearer(
            "OAuth access token",
            with_header(json!({"alg":"RS256","kid":"ins_a","typ":"at+jwt"})),
            401,
            "token-type-mismatch",
        ),
        bearer("typ not JWT", with_header(json!({"alg":"RS256","kid":"ins_a","typ":"JOSE"})), 401, "token-invalid"),
        bearer("two segments", format!("{h}.{p}"), 401, "token-invalid"),
        bearer("four segments", format!("{good}.{s}"), 401, "token-invalid"),
        bearer("not a JWT at all", "not-a-jwt".into(), 401, "token-invalid"),
        bearer("padded segment", format!("{h}.{p}=.{s}"), 401, "token-invalid"),
        bearer(
            "standard base64 alphabet",
            format!("{h}.{p}.{}", s.replace('_', "/").replace('-', "+")),
            401,
            "token-invalid",
        ),
        bearer("header is not JSON", format!("{}.{p}.{s}", b64("not json")), 401, "token-invalid"),
        bearer("payload is a JSON array", format!("{h}.{}.{s}", b64("[1,2]")), 401, "token-invalid"),
        bearer(
            "duplicate alg in the header",
            format!("{}.{p}.{s}", b64(r#"{"alg":"RS256","alg":"none","kid":"ins_a"}"#)),
            401,
            "token-invalid",
        ),
        bearer("crit header", with_header(json!({"alg":"RS256","kid":"ins_a","crit":["exp"]})), 401, "token-invalid"),
        bearer(
            "exp as a string",
            signed(claims_with("exp", json!((NOW + 60).to_string()))),
            401,
            "token-verification-failed",
        ),
        bearer("nbf as a string", signed(claims_with("nbf", json!("yesterday"))), 401, "token-verification-failed"),
        bearer("iat as a boolean", signed(claims_with("iat", json!(true))), 401, "token-verification-failed"),
        bearer("exp missing", signed(claims_with("exp", Value::Null)), 401, "token-verification-failed"),
        bearer("sub missing", signed(claims_with("sub", Value::Null)), 401, "token-verification-failed"),
        bearer("sub is a number", signed(claims_with("sub", json!(42))), 401, "token-verification-failed"),
        bearer(
            "sub with a newline",
            signed(claims_with("sub", json!("user_1\r\nx-admin: 1"))),
            401,
            "token-verification-failed",
        ),
        bearer("pending session", signed(claims_with("sts", json!("pending"))), 401, "session-pending"),
        bearer("absurdly large token", format!("{h}.{}.{s}", "A".repeat(20_000)), 401, "token-invalid"),
        bearer(
            "jku pointing elsewhere is ignored",
            key_b().token_with_header(
                &json!({"alg":"RS256","kid":"ins_a","jku":"https://evil.example.com/jwks"}),
                &claims(),
                Algorithm::RS256,
            ),
            401,
            "token-invalid-signature",
        ),
        bearer(
            "embedded jwk is ignored",
            key_b().token_with_header(
                &json!({"alg":"RS256","kid":"ins_a","jwk": key_b().jwk}),
                &claims(),
                Algorithm::RS256,
            ),
            401,
            "token-invalid-signature",
        ),
        headers(
            "two Authorization headers",
            vec![("authorization", format!("Bearer {good}")), ("authorization", format!("Bearer {good}"))],
            401,
            "token-invalid",
        ),
        headers(
            "two different session cookies",
            vec![("cookie", format!("__session={good}; __session=x"))],
            401,
            "token-invalid",
        ),
        headers(
            "Bearer wins over a bad cookie",
            vec![("authorization", format!("Bearer {good}")), ("cookie", "__session=garbage".into())],
            200,
            "",
        ),
        headers(
            "a bad Bearer is not rescued by a good cookie",
            vec![("authorization", "Bearer garbage".into()), ("cookie", session_cookies(&good))],
            401,
            "token-invalid",
        ),
        headers("no credential", vec![], 401, "session-token-and-uat-missing"),
        headers("empty Bearer", vec![("authorization", "Bearer ".into())], 401, "session-token-and-uat-missing"),
        headers(
            "Basic credentials only",
            vec![("authorization", "Basic dXNlcjpwYXNz".into())],
            401,
            "session-token-and-uat-missing",
        ),
        bearer("space inside the token", format!("{h}.{p} .{s}"), 401, "token-invalid"),
    ]
}

#[tokio::test]
async fn adversarial_tokens_get_exact_answers() {
    let (gw, _jwks) = standard().await;
    let cases = cases();
    assert!(cases.len() >= 60, "the table keeps at least 60 cases");
    let mut failures = Vec::new();
    for case in &cases {
        let headers: Vec<(&str, &str)> = case.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let reply = gw.get("/api/check", &headers).await;
        let body = String::from_utf8_lossy(&reply.body);
        let ok = reply.status == case.status
            && (case.status != 401 || reply.reason() == case.reason)
            && (case.status != 200 || reply.seen("x-user-id").as_deref() == Some("user_alice"));
        if !ok {
            failures.push(format!("{}: got {} {body}", case.name, reply.status));
            continue;
        }
        if reply.status == 401 {
            let challenge = reply.header("www-authenticate").unwrap_or("");
            let sent = case.headers.iter().any(|(k, v)| k == "authorization" || v.contains("__session"))
                && case.reason != "session-token-and-uat-missing";
            let expected = if sent { r#"Bearer error="invalid_token""# } else { "Bearer" };
            if challenge != expected {
                failures.push(format!("{}: WWW-Authenticate {challenge:?}", case.name));
            }
            for (_, value) in &case.headers {
                let token = value.trim_start_matches("Bearer ");
                if token.len() > 20 && body.contains(token) {
                    failures.push(format!("{}: the body echoes the token", case.name));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), cases.len(), failures.join("\n"));
}

#[tokio::test]
async fn a_head_over_the_limit_is_431_not_a_crash() {
    let (gw, _jwks) = standard().await;
    let huge = format!("Bearer {}", "A".repeat(100 * 1024));
    let reply = gw.get("/api/x", &[("authorization", &huge)]).await;
    assert_eq!(reply.status, 431);
    assert_eq!(gw.get("/public/x", &[]).await.status, 200, "the gateway still serves");
}

#[tokio::test]
async fn garbage_header_bytes_are_a_401_never_a_500() {
    let (gw, _jwks) = standard().await;
    let requests: [&[u8]; 4] = [
        b"GET /api/x HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer \xff\xfe\xfd\r\nConnection: close\r\n\r\n",
        b"GET /api/x HTTP/1.1\r\nHost: t\r\nCookie: __session=\xc3\x28; a=\x80\r\nConnection: close\r\n\r\n",
        b"GET /api/x HTTP/1.1\r\nHost: t\r\nAuthorization: \r\nConnection: close\r\n\r\n",
        b"GET /api/x HTTP/1.1\r\nHost: t\r\nCookie: ;;;==;__session\r\nConnection: close\r\n\r\n",
    ];
    for request in requests {
        let response = raw(gw.addr, request).await;
        assert_eq!(raw_status(&response), 401, "{}", String::from_utf8_lossy(request));
    }
}

#[tokio::test]
async fn a_verified_token_is_not_verified_again() {
    let (gw, _jwks) = standard().await;
    let token = key_a().token(&claims());
    for _ in 0..3 {
        assert_eq!(gw.get_with_token("/api/x", &token).await.status, 200);
    }
    assert_eq!(gw.metric("clerk_gateway_token_cache_misses_total").await, 1.0);
    assert_eq!(gw.metric("clerk_gateway_token_cache_hits_total").await, 2.0);
}

#[tokio::test]
async fn a_cached_token_still_expires() {
    let (gw, _jwks) = standard().await;
    let token = key_a().token(&claims_with("exp", json!(NOW + 10)));
    assert_eq!(gw.get_with_token("/api/x", &token).await.status, 200);
    gw.clock.advance(std::time::Duration::from_secs(14));
    assert_eq!(gw.get_with_token("/api/x", &token).await.status, 200, "inside the skew");
    gw.clock.advance(std::time::Duration::from_secs(1));
    let reply = gw.get_with_token("/api/x", &token).await;
    assert_eq!((reply.status, reply.reason().as_str()), (401, "token-expired"));
}
