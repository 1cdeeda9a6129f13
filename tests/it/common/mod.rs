//! Test harness, by what it fakes: `binary` (the real binary as a child process), `keys`
//! (signing keys and tokens), `jwks` (a JWKS endpoint), `clerk` (the Backend and Frontend
//! APIs), `upstream` (an echo server and one that holds requests), `webhooks` (Svix-signed
//! deliveries), `config` (test configs built as TOML tables), `gateway` (the real gateway in
//! process, and its metrics), `logs` (every log line checked for secrets), `client` (requests
//! and replies), `servers` (loopback listeners). Everything is on 127.0.0.1:0.

#![allow(dead_code)]

mod binary;
mod clerk;
mod client;
mod config;
mod gateway;
mod jwks;
mod keys;
pub mod logs;
mod postgres;
mod processes;
mod servers;
mod upstream;
mod webhooks;

pub use binary::*;
pub use clerk::*;
pub use client::*;
pub use config::*;
pub use gateway::*;
pub use jwks::*;
pub use keys::*;
pub use postgres::*;
pub use processes::*;
pub use servers::*;
pub use upstream::*;
pub use webhooks::*;

/// The gateway's (manual) clock starts here in every in-process test.
pub const NOW: i64 = 1_800_000_000;
pub const NOW_MS: i64 = NOW * 1000;
pub const ISSUER: &str = "https://clerk.example.com";
pub const APP: &str = "https://app.example.com";
/// A production key for Frontend API `clerk.example.com` (the tokens' issuer); cookie
/// suffix `naoXFJnI`.
pub const PUBLISHABLE_KEY: &str = "pk_live_Y2xlcmsuZXhhbXBsZS5jb20k";
pub const SUFFIXED_COOKIE: &str = "__session_naoXFJnI";
pub const SUFFIXED_UAT: &str = "__client_uat_naoXFJnI";
/// A `__client_uat` value older than `claims()`' `iat`: a signed-in client.
pub const CLIENT_UAT: i64 = NOW - 10;

/// The cookies of a signed-in browser carrying `token`.
pub fn session_cookies(token: &str) -> String {
    format!("__session={token}; __client_uat={CLIENT_UAT}")
}

pub fn fixture(name: &str) -> String {
    let path = fixture_path(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Where a file of tests/fixtures is.
pub fn fixture_path(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// Captured and checked for leaks (see `logs`); per-test logs instead with
/// `RUST_LOG=clerk_gateway=debug cargo test NAME -- --nocapture`.
fn init_logs() {
    logs::init();
}
