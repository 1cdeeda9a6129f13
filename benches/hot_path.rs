//! The per-request and per-delivery work around token verification (which `verify.rs`
//! measures): the browser cookie path (Clerk's cookies read, then the decision: signed in
//! with a cached token, or a stale session sent through the handshake), the header surgery
//! of a forwarded request (identity strip, identity and `X-Forwarded-*` injection), route
//! matching in a table of 1,000 prefixes (a hit scanned last, a miss), and the webhook
//! path: Svix verification of a 10 KiB body, parsing a `user.updated` event, and applying it
//! to the SQLite mirror (one FULL-synchronous WAL commit, so mostly the disk's fsync); and
//! machine tokens (an M2M JWT first seen and cached) and signing the identity assertion.
//!
//!   cargo bench --bench hot_path
//!   cargo bench --bench hot_path -- --warm-up-time 1 --measurement-time 2   (quicker)
//!   cargo bench --bench hot_path -- route/                                   (one group)

use std::hint::black_box;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use clerk_gateway::Clock;
use clerk_gateway::assertion::{Facts, Signer, Subject};
use clerk_gateway::auth::machine::MachineSettings;
use clerk_gateway::auth::revocation::RevokedSessions;
use clerk_gateway::auth::{Authenticator, ClaimRules, jwks::KeyStore};
use clerk_gateway::browser::{self, Browser, Decision, RequestInfo, cookies};
use clerk_gateway::clerk_keys::PublishableKey;
use clerk_gateway::config::{Config, IdentityHeaderNames, KeySource, MachineTokensConfig, Secret};
use clerk_gateway::identity::{Identity, Org};
use clerk_gateway::metrics::{Labels, Metrics};
use clerk_gateway::mirror::{Applied, Delivery, Effect, Mirror, Write};
use clerk_gateway::proxy::forwarding::{self, Peer};
use clerk_gateway::proxy::headers;
use clerk_gateway::router::RouteTable;
use clerk_gateway::server::Remote;
use clerk_gateway::token_type::TokenType;
use clerk_gateway::webhook::events::{self, EventKind};
use clerk_gateway::webhook::svix::Verifier;
use clerk_gateway::webhook::{Outcome, Refusal};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

const NOW_S: i64 = 1_800_000_000;
const NOW_MS: i64 = NOW_S * 1000;
/// The Frontend API host the publishable key encodes (and the tokens' issuer).
const FAPI: &str = "clerk.example.com";
const WEBHOOK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const USER_AGENT: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 \
                          Safari/537.36";
const ACCEPT: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8";

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn metrics() -> Arc<Metrics> {
    Arc::new(Metrics::new(Labels {
        auth_outcomes: Decision::metric_names(),
        webhook_types: EventKind::NAMES,
        webhook_outcomes: Outcome::NAMES,
        webhook_rejections: Refusal::NAMES,
    }))
}

fn authenticator(clock: &Clock) -> Authenticator {
    let metrics = metrics();
    let source = KeySource::Pem(Secret::new(fixture("rsa_a.pub.pem")));
    let keys = KeyStore::new(&source, reqwest::Client::new(), clock.clone(), metrics.clone()).unwrap();
    let rules = ClaimRules { issuer: Some(format!("https://{FAPI}")), ..ClaimRules::default() };
    let machines = MachineSettings::new(&MachineTokensConfig::default(), Duration::from_secs(5), Vec::new());
    let revoked = Arc::new(RevokedSessions::default());
    Authenticator::new(Arc::new(keys), rules, revoked, None, machines, clock.clone(), metrics)
}

/// A production session token as Clerk issues it, signed with the fixture key.
fn session_token() -> String {
    let claims = json!({
        "iss": format!("https://{FAPI}"), "sub": "user_2bench", "sid": "sess_2bench", "azp": "https://app.example.com",
        "iat": NOW_S - 1, "nbf": NOW_S - 6, "exp": NOW_S + 59, "v": 2,
        "o": {"id": "org_2bench", "rol": "admin", "slg": "bench", "per": "manage,read", "fpm": "3,2"},
    });
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("ins_bench".into());
    let key = EncodingKey::from_rsa_pem(fixture("rsa_a.pem").as_bytes()).unwrap();
    jsonwebtoken::encode(&header, &claims, &key).unwrap()
}

/// A browser page load: `Host`, `User-Agent`, `Accept`, and `cookie`.
fn page_load(cookie: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(http::header::HOST, HeaderValue::from_static("app.example.com"));
    h.insert(http::header::USER_AGENT, HeaderValue::from_static(USER_AGENT));
    h.insert(http::header::ACCEPT, HeaderValue::from_static(ACCEPT));
    h.insert(http::header::COOKIE, HeaderValue::from_str(cookie).unwrap());
    h
}

/// The cookie path as `session::decide_session` drives it, minus the metrics and the access
/// record: document-request test, cookie reading, Clerk's decision table, and (signed in)
/// the token check.
async fn decide(browser: &Browser, auth: &Authenticator, headers: &HeaderMap, uri: &Uri, clock: &Clock) -> Decision {
    let public_url = || browser::public_url(headers, uri, false, "https");
    let client = || IpAddr::from([203, 0, 113, 7]);
    let info = RequestInfo {
        headers,
        uri,
        public_url: &public_url,
        client: &client,
        eligible: browser::is_document_request(&Method::GET, headers),
        now_secs: clock.now_secs(),
    };
    browser.authenticate_request(auth, &info).await
}

fn cookie_path(c: &mut Criterion) {
    let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let clock = Clock::manual(NOW_MS);
    let auth = authenticator(&clock);
    let key = PublishableKey::parse(&format!("pk_live_{}", STANDARD.encode(format!("{FAPI}$")))).unwrap();
    let browser = Browser::new(Some(&key), None, None);
    let instance = cookies::Instance { suffix: &key.cookie_suffix, frontend_api: &key.frontend_api, production: true };
    let token = session_token();
    let app_cookies = "_ga=GA1.1.123456789.1700000000; theme=dark; locale=en-GB";
    let uri: Uri = "/dashboard/projects?tab=recent".parse().unwrap();

    // Signed in: `__client_uat` older than the token's `iat`, the token verified a moment ago.
    let fresh = page_load(&format!("{app_cookies}; __client_uat={}; __session={token}", NOW_S - 3600));
    // Stale: the client changed after the token was issued (`iat` < `__client_uat`).
    let stale = page_load(&format!("{app_cookies}; __client_uat={NOW_S}; __session={token}"));

    let signed_in = runtime.block_on(decide(&browser, &auth, &fresh, &uri, &clock));
    assert!(matches!(signed_in, Decision::SignedIn { .. }), "{signed_in:?}");
    let handshake = runtime.block_on(decide(&browser, &auth, &stale, &uri, &clock));
    assert!(matches!(handshake, Decision::Redirect { .. }), "{handshake:?}");

    c.bench_function("browser/read cookies (__session + __client_uat)", |b| {
        b.iter(|| cookies::read(black_box(&fresh), Some(instance), NOW_S).client_uat);
    });
    c.bench_function("browser/decide: signed in (token cached)", |b| {
        b.iter(|| runtime.block_on(decide(&browser, &auth, black_box(&fresh), &uri, &clock)));
    });
    c.bench_function("browser/decide: handshake (iat < __client_uat)", |b| {
        b.iter(|| runtime.block_on(decide(&browser, &auth, black_box(&stale), &uri, &clock)));
    });
}

fn header_surgery(c: &mut Criterion) {
    let mut request = page_load(&format!("_ga=GA1.1.123456789.1700000000; theme=dark; __session={}", session_token()));
    request.insert(http::header::AUTHORIZATION, HeaderValue::from_static("Bearer eyJhbGciOiJSUzI1NiJ9.e30.sig"));
    request.insert(HeaderName::from_static("x-user-id"), HeaderValue::from_static("user_spoofed"));
    request.insert(http::header::CONNECTION, HeaderValue::from_static("keep-alive"));
    let names = IdentityHeaderNames::default();
    let stripped: Vec<HeaderName> = names.all().into_iter().cloned().collect();
    let org = Org {
        id: "org_2bench".into(),
        role: Some("org:admin".into()),
        slug: Some("bench".into()),
        permissions: vec!["org:projects:manage".into(), "org:projects:read".into()],
    };
    let identity = Identity::new("user_2bench".into(), "sess_2bench".into(), Some(org), NOW_MS + 60_000);
    let ip = IpAddr::from([203, 0, 113, 7]);
    let peer = Peer { ip, address: Remote::new(SocketAddr::new(ip, 51_234)).address, trusted: false, scheme: "https" };

    let mut check = request.clone();
    headers::sanitize_request(&mut check, &stripped, peer.trusted);
    assert!(!check.contains_key("x-user-id") && !check.contains_key("connection"));

    c.bench_function("headers/sanitize + set_identity + set_forwarded", |b| {
        b.iter_batched(
            || request.clone(),
            |mut h| {
                let upgrade = headers::sanitize_request(&mut h, black_box(&stripped), peer.trusted);
                headers::set_identity(&mut h, &names, &identity.values);
                forwarding::set_forwarded(&mut h, &peer, Some("app.example.com"));
                (h, upgrade)
            },
            BatchSize::SmallInput,
        );
    });
}

fn route_match(c: &mut Criterion) {
    const ROUTES: usize = 1000;
    let mut toml = String::from("[clerk]\njwks_url = \"http://127.0.0.1:1/jwks\"\n");
    for i in 0..ROUTES {
        toml.push_str(&format!("[[route]]\npath = \"/api/svc{i:04}/\"\nupstream = \"http://127.0.0.1:{}\"\n", 1 + i));
    }
    let config = Config::from_toml(&toml, &|_| None).unwrap();
    let table = RouteTable::new(config.routes);
    let host = Some("app.example.com");
    // Every prefix has the same length, so the table keeps config order: the last-declared
    // route is the last one both passes (exact case, folded case) try.
    let last = "/api/svc0999/users/42";
    let first = "/api/svc0000/users/42";
    let miss = "/static/app.js";
    assert_eq!(table.find(host, &Method::GET, last).map(|r| r.index), Some(ROUTES - 1));
    assert_eq!(table.find(host, &Method::GET, first).map(|r| r.index), Some(0));
    assert!(table.find(host, &Method::GET, miss).is_none());

    c.bench_function("route/1000 prefixes: last-declared", |b| {
        b.iter(|| table.find(host, &Method::GET, black_box(last)).map(|r| r.index));
    });
    c.bench_function("route/1000 prefixes: first-declared", |b| {
        b.iter(|| table.find(host, &Method::GET, black_box(first)).map(|r| r.index));
    });
    c.bench_function("route/1000 prefixes: no match", |b| {
        b.iter(|| table.find(host, &Method::GET, black_box(miss)).map(|r| r.index));
    });
}

/// A Clerk User object, as webhooks carry it (the shape of `tests/it/common/clerk.rs`).
fn clerk_user(id: &str, updated_at: i64, public_metadata: Value) -> Value {
    json!({
        "id": id, "object": "user", "username": null, "first_name": "Bench", "last_name": "Tester",
        "image_url": format!("https://img.example.com/{id}"), "has_image": true,
        "primary_email_address_id": format!("idn_{id}"),
        "email_addresses": [{"id": format!("idn_{id}"), "object": "email_address",
                             "email_address": format!("{}@example.com", id.trim_start_matches("user_"))}],
        "public_metadata": public_metadata, "private_metadata": {"internal": true}, "unsafe_metadata": {},
        "created_at": 1_700_000_000_000_i64, "updated_at": updated_at,
    })
}

fn event(event_type: &str, data: Value) -> Value {
    json!({"data": data, "object": "event", "type": event_type, "timestamp": NOW_MS, "instance_id": "ins_bench"})
}

fn svix_headers(id: &str, timestamp: i64, signature: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert("svix-id", HeaderValue::from_str(id).unwrap());
    h.insert("svix-timestamp", HeaderValue::from_str(&timestamp.to_string()).unwrap());
    h.insert("svix-signature", HeaderValue::from_str(signature).unwrap());
    h
}

fn webhook(c: &mut Criterion) {
    const BODY_BYTES: usize = 10 * 1024;
    let verifier = Verifier::new(WEBHOOK_SECRET).unwrap();
    let padded = |pad: usize| {
        let metadata = json!({"plan": "pro", "notes": "x".repeat(pad)});
        event("user.updated", clerk_user("user_2bench", NOW_MS, metadata)).to_string().into_bytes()
    };
    let body = padded(BODY_BYTES - padded(0).len());
    assert_eq!(body.len(), BODY_BYTES);
    let id = "msg_2benchAQM9LWM0D4loKWxJek";
    let signed = svix_headers(id, NOW_S, &verifier.signature_header(id, NOW_S, &body));
    assert_eq!(verifier.verify(&signed, &body, NOW_S).map(|v| v.timestamp), Ok(NOW_S));

    c.bench_function("webhook/svix verify (10 KiB)", |b| {
        b.iter(|| verifier.verify(black_box(&signed), black_box(&body), NOW_S).is_ok());
    });

    let update = event("user.updated", clerk_user("user_2bench", NOW_MS, json!({"plan": "pro", "seats": 3})));
    let update = update.to_string().into_bytes();
    c.bench_function("webhook/parse user.updated", |b| b.iter(|| events::parse(black_box(&update)).unwrap().kind));

    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let mirror = runtime.block_on(Mirror::open(":memory:", Clock::manual(NOW_MS), Duration::from_secs(3600))).unwrap();
    let envelope = events::parse(&update).unwrap();
    let template = Delivery {
        id: String::new(),
        event_type: envelope.event_type,
        at_ms: envelope.timestamp_ms.unwrap(),
        write: envelope.write,
    };
    // Each delivery has a new svix id (else it is a duplicate) and a newer `updated_at`
    // (else it is stale or the same version): every one changes the user's row.
    let mut n = 0_i64;
    let mut next = move || {
        n += 1;
        let mut delivery = template.clone();
        delivery.id = format!("msg_bench_{n}");
        if let Write::UpsertUser(user) = &mut delivery.write {
            user.updated_at = NOW_MS + n;
        }
        delivery
    };
    let applied = runtime.block_on(mirror.apply(next())).unwrap();
    assert!(matches!(applied, Applied::Applied(Effect::UserChanged(_))), "{applied:?}");

    let mut group = c.benchmark_group("webhook");
    group.sample_size(20);
    group.bench_function("apply user.updated (one mirror commit)", |b| {
        b.iter_batched(&mut next, |d| runtime.block_on(mirror.apply(d)).unwrap(), BatchSize::SmallInput);
    });
    group.finish();
}

/// Machine tokens and the identity assertion: an M2M JWT verified on first sight (RSA) and
/// from the verdict cache, and signing `X-Clerk-Gateway-Assertion` (Ed25519, and ES256 with
/// the fixture P-256 key) for a signed-in session.
fn machine_and_assertion(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let clock = Clock::manual(NOW_MS);
    let auth = authenticator(&clock);
    let claims =
        json!({"sub": "mch_bench", "jti": "mt_bench", "scopes": "mch_a mch_b", "iat": NOW_S - 1, "exp": NOW_S + 3600});
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("ins_bench".into());
    let key = EncodingKey::from_rsa_pem(fixture("rsa_a.pem").as_bytes()).unwrap();
    let m2m = jsonwebtoken::encode(&header, &claims, &key).unwrap();
    let verified = runtime.block_on(auth.verify_machine(TokenType::M2mToken, &m2m)).unwrap();
    assert_eq!(verified.subject, "mch_bench");
    let mut group = c.benchmark_group("machine");
    group.bench_function("M2M JWT, cached verdict", |b| {
        b.iter(|| runtime.block_on(auth.verify_machine(TokenType::M2mToken, black_box(&m2m))).unwrap());
    });
    group.bench_function("M2M JWT, first sight (RSA)", |b| {
        b.iter_batched(
            || authenticator(&clock),
            |fresh| runtime.block_on(fresh.verify_machine(TokenType::M2mToken, black_box(&m2m))).unwrap(),
            BatchSize::SmallInput,
        );
    });
    group.finish();

    let identity = Identity::new("user_2bench".into(), "sess_2bench".into(), None, NOW_MS + 60_000);
    let facts = Facts {
        audience: "http://127.0.0.1:8000",
        method: "GET",
        path: "/api/orders",
        subject: Subject::Session(&identity, Some("bench@example.com")),
    };
    let ed25519 = Signer::generate(Duration::from_secs(30)).unwrap();
    let p256_path = format!("{}/tests/fixtures/ec_p256.pem", env!("CARGO_MANIFEST_DIR"));
    let p256 = Signer::from_file(std::path::Path::new(&p256_path), Duration::from_secs(30)).unwrap();
    let mut group = c.benchmark_group("assertion");
    group.bench_function("sign EdDSA", |b| b.iter(|| ed25519.sign(black_box(&facts), NOW_S).unwrap()));
    group.bench_function("sign ES256", |b| b.iter(|| p256.sign(black_box(&facts), NOW_S).unwrap()));
    group.finish();
}

criterion_group!(benches, cookie_path, header_surgery, route_match, webhook, machine_and_assertion);
criterion_main!(benches);
