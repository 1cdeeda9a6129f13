//! gateway.toml as written: serde structs that mirror the file, with unknown keys rejected.
//! Nothing here is validated beyond types; `super::build` turns these into `Config`.

use serde::Deserialize;

use super::model::ConfigError;
use super::problems::{Problems, Segment, segments};

/// Reads `table` as the file's structs, noting each unknown key or value of the wrong type
/// and reading on without it, so one pass finds them all. `None` when a problem cannot be
/// read past (it never leaves a key to drop).
pub(super) fn read(table: toml::Table, p: &mut Problems) -> Option<RawConfig> {
    let mut document = toml::Value::Table(table);
    loop {
        match serde_path_to_error::deserialize(document.clone()) {
            Ok(raw) => return Some(raw),
            Err(e) => {
                let path = e.path().to_string();
                p.push(ConfigError::new(&path, e.inner().message().to_owned()));
                if !drop_key(&mut document, &path) {
                    return None;
                }
            }
        }
    }
}

/// Removes the innermost key on `path` (`route[0].require.org_role[1]` drops `org_role`).
fn drop_key(document: &mut toml::Value, path: &str) -> bool {
    let segments = segments(path);
    let Some(last) = segments.iter().rposition(|s| matches!(s, Segment::Key(_))) else { return false };
    let mut here = document;
    for segment in &segments[..last] {
        let next = match (segment, here) {
            (Segment::Key(key), toml::Value::Table(table)) => table.get_mut(*key),
            (Segment::Index(i), toml::Value::Array(items)) => items.get_mut(*i),
            _ => None,
        };
        let Some(next) = next else { return false };
        here = next;
    }
    match (&segments[last], here) {
        (Segment::Key(key), toml::Value::Table(table)) => table.remove(*key).is_some(),
        _ => false,
    }
}

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub server: RawServer,
    #[serde(default)]
    pub admin: RawAdmin,
    #[serde(default)]
    pub clerk: RawClerk,
    pub webhook: Option<RawWebhook>,
    #[serde(default)]
    pub mirror: RawMirror,
    #[serde(default)]
    pub headers: RawHeaders,
    #[serde(default)]
    pub auth_endpoints: RawAuthEndpoints,
    #[serde(default)]
    pub cors: RawCors,
    #[serde(default)]
    pub machine_tokens: RawMachineTokens,
    #[serde(default)]
    pub forward_auth: RawForwardAuth,
    #[serde(default)]
    pub assertion: RawAssertion,
    #[serde(default, rename = "route")]
    pub routes: Vec<RawRoute>,
}

/// `[cors]`, and a route's `cors = { … }` table (each key it sets replaces the section's).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCors {
    pub allow_origins: Option<Vec<String>>,
    pub allow_credentials: Option<bool>,
    pub allow_headers: Option<Vec<String>>,
    pub expose_headers: Option<Vec<String>>,
    pub max_age: Option<String>,
}

/// `[server]`: the proxy listener and its timeouts.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub listen: Option<String>,
    pub tls_cert: Option<String>,
    pub tls_key: Option<String>,
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    pub drain_delay: Option<String>,
    pub grace_timeout: Option<String>,
    pub header_read_timeout: Option<String>,
    pub tls_handshake_timeout: Option<String>,
    pub upstream_connect_timeout: Option<String>,
    pub upstream_timeout: Option<String>,
    pub max_header_size: Option<Size>,
    pub workers: Option<usize>,
    pub max_connections: Option<usize>,
    pub first_byte_timeout: Option<String>,
    pub idle_timeout: Option<String>,
    pub http2_keepalive_interval: Option<String>,
    pub http2_keepalive_timeout: Option<String>,
    pub body_read_timeout: Option<String>,
}

/// `[admin]`: the health and metrics listener.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    pub listen: Option<String>,
}

/// `[clerk]`: the instance, its keys and the claim rules.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawClerk {
    pub secret_key: Option<String>,
    pub secret_key_file: Option<String>,
    pub publishable_key: Option<String>,
    pub publishable_key_file: Option<String>,
    pub jwt_key: Option<String>,
    pub jwt_key_file: Option<String>,
    pub jwks_url: Option<String>,
    pub issuer: Option<String>,
    pub api_url: Option<String>,
    pub authorized_parties: Option<Vec<String>>,
    pub allow_missing_azp: Option<bool>,
    pub clock_skew: Option<String>,
    pub sign_in_url: Option<String>,
    pub api_timeout: Option<String>,
    pub frontend_api_url: Option<String>,
    pub proxy_path: Option<String>,
    pub proxy_url: Option<String>,
}

/// `[webhook]`: Clerk's Svix deliveries.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWebhook {
    pub path: Option<String>,
    pub signing_secret: Option<String>,
    pub signing_secret_file: Option<String>,
    pub body_timeout: Option<String>,
}

/// `[mirror]`: the SQLite file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMirror {
    pub path: Option<String>,
    pub url: Option<String>,
    pub url_file: Option<String>,
    pub reconcile_every: Option<String>,
    pub revocation_retention: Option<String>,
    pub cache_size: Option<usize>,
    pub cache_ttl: Option<String>,
    pub fetch_timeout: Option<String>,
}

/// `[machine_tokens]`: how verified API keys, M2M and OAuth tokens are remembered.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMachineTokens {
    pub cache_ttl: Option<String>,
    pub refusal_ttl: Option<String>,
    pub verify_timeout: Option<String>,
    pub cache_size: Option<usize>,
}

/// `[assertion]`: the signed identity assertion for the upstream.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAssertion {
    pub enabled: Option<bool>,
    pub key_file: Option<String>,
    pub lifetime: Option<String>,
}

/// `[forward_auth]`: the verify endpoint an existing ingress asks.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawForwardAuth {
    pub enabled: Option<bool>,
    pub path: Option<String>,
}

/// `[auth_endpoints]`: `/auth/me`, `/auth/logout`, `/auth/login`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAuthEndpoints {
    pub enabled: Option<bool>,
    pub prefix: Option<String>,
}

/// `[headers]`: renames of the identity headers.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHeaders {
    pub user_id: Option<String>,
    pub session_id: Option<String>,
    pub org_id: Option<String>,
    pub org_role: Option<String>,
    pub org_slug: Option<String>,
    pub org_permissions: Option<String>,
    pub user_email: Option<String>,
    pub user_metadata: Option<String>,
    pub user: Option<String>,
    pub auth_status: Option<String>,
    pub token_type: Option<String>,
    pub token_id: Option<String>,
    pub machine_id: Option<String>,
    pub scopes: Option<String>,
}

/// One `[[route]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub name: Option<String>,
    pub path: Option<String>,
    pub upstream: Option<String>,
    pub host: Option<String>,
    pub auth: Option<String>,
    pub accepts: Option<OneOrMany>,
    pub methods: Option<Vec<String>>,
    pub strip_prefix: Option<bool>,
    pub require: Option<RawRequire>,
    pub timeout: Option<String>,
    pub max_body: Option<Size>,
    pub authenticate_preflight: Option<bool>,
    pub pass_credentials: Option<bool>,
    pub claim_headers: Option<toml::Table>,
    pub add_request_headers: Option<toml::Table>,
    pub remove_request_headers: Option<Vec<String>>,
    pub cors: Option<RawCors>,
}

/// A route's `require = { … }` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRequire {
    pub org_role: Option<OneOrMany>,
    pub permission: Option<OneOrMany>,
    pub scope: Option<OneOrMany>,
    pub metadata: Option<toml::Table>,
}

/// A string or a list of strings.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    /// The values as a list.
    pub fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

/// A byte size written as an integer or a string with a unit.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Size {
    Bytes(u64),
    Text(String),
}
