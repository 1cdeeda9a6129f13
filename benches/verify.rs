//! Token verification: a token seen for the first time (structure, RSA signature, claims;
//! the path every fresh token takes), one seen a moment ago (the verified-token cache), and
//! the cache key alone.
//!
//!   cargo bench --bench verify

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use clerk_gateway::Clock;
use clerk_gateway::auth::cache::key_of;
use clerk_gateway::auth::machine::MachineSettings;
use clerk_gateway::auth::revocation::RevokedSessions;
use clerk_gateway::auth::{Authenticator, ClaimRules, jwks::KeyStore};
use clerk_gateway::config::{KeySource, MachineTokensConfig, Secret};
use clerk_gateway::metrics::{Labels, Metrics};
use criterion::{Criterion, criterion_group, criterion_main};
use jsonwebtoken::{Algorithm, EncodingKey, Header};

const NOW_S: i64 = 1_800_000_000;

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn authenticator() -> Authenticator {
    let labels =
        Labels { auth_outcomes: Vec::new(), webhook_types: &[], webhook_outcomes: &[], webhook_rejections: &[] };
    let metrics = Arc::new(Metrics::new(labels));
    let clock = Clock::manual(NOW_S * 1000);
    let source = KeySource::Pem(Secret::new(fixture("rsa_a.pub.pem")));
    let keys = KeyStore::new(&source, reqwest::Client::new(), clock.clone(), metrics.clone()).unwrap();
    let machines = MachineSettings::new(&MachineTokensConfig::default(), Duration::from_secs(5), Vec::new());
    let revoked = Arc::new(RevokedSessions::default());
    Authenticator::new(Arc::new(keys), ClaimRules::default(), revoked, None, machines, clock, metrics)
}

fn token() -> String {
    let claims = serde_json::json!({
        "sub": "user_bench", "sid": "sess_bench", "iat": NOW_S - 1, "nbf": NOW_S - 6, "exp": NOW_S + 59, "v": 2,
        "o": {"id": "org_bench", "rol": "admin", "slg": "bench", "per": "manage,read", "fpm": "3,2"}, "fea": "o:billing,o:reports",
    });
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("ins_bench".into());
    let key = EncodingKey::from_rsa_pem(fixture("rsa_a.pem").as_bytes()).unwrap();
    jsonwebtoken::encode(&header, &claims, &key).unwrap()
}

fn verification(c: &mut Criterion) {
    let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let auth = authenticator();
    let token = token();
    runtime.block_on(auth.verify(&token)).expect("the bench token verifies");
    c.bench_function("verify/first-sight (RSA, no cache)", |b| {
        b.iter(|| runtime.block_on(auth.verify_ignoring_time(black_box(&token))).unwrap());
    });
    c.bench_function("verify/cached", |b| b.iter(|| runtime.block_on(auth.verify(black_box(&token))).unwrap()));
    c.bench_function("verify/cache key (SHA-256 of the token)", |b| b.iter(|| key_of(black_box(&token))));
}

criterion_group!(benches, verification);
criterion_main!(benches);
