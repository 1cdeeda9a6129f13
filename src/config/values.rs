//! Single values of the config, each read or checked with the key path it came from:
//! secrets (inline, `_file` or a standard variable), durations and timeouts, sizes, socket
//! addresses, URLs, networks, PEM keys and Svix signing secrets.

use std::net::SocketAddr;
use std::time::Duration;

use ipnet::IpNet;
use reqwest::Url;

use super::expand::EnvLookup;
use super::model::ConfigError;
use super::raw::Size;
use super::units::{parse_duration, parse_size};

/// Reads a secret from its inline key, its `_file` key, or the standard variable.
pub(super) fn secret(
    section: &str,
    key: &str,
    inline: Option<String>,
    file: Option<String>,
    standard_var: &str,
    env: EnvLookup<'_>,
) -> Result<Option<String>, ConfigError> {
    let inline = inline.filter(|v| !v.is_empty());
    let file = file.filter(|v| !v.is_empty());
    match (inline, file) {
        (Some(_), Some(_)) => {
            Err(ConfigError::new(format!("{section}.{key}"), format!("set {key} or {key}_file, not both")))
        }
        (Some(value), None) => Ok(Some(value)),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| ConfigError::new(format!("{section}.{key}_file"), format!("cannot read {path}: {e}")))?;
            let value = text.trim().to_owned();
            if value.is_empty() {
                return Err(ConfigError::new(format!("{section}.{key}_file"), format!("{path} is empty")));
            }
            Ok(Some(value))
        }
        (None, None) => Ok(env(standard_var).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())),
    }
}

/// Accepts a PEM RSA public key; a PEM pasted into an env var with literal `\n` is repaired.
/// A private key is refused by name: the gateway only verifies, and jsonwebtoken would
/// otherwise take its bytes for a public key that fails every token at run time.
pub(super) fn check_pem(pem: &str) -> Result<String, String> {
    let pem = if pem.contains("\\n") && !pem.contains('\n') { pem.replace("\\n", "\n") } else { pem.to_owned() };
    if pem.contains("PRIVATE KEY-----") {
        return Err("this is a private key: give the instance's PEM public key (-----BEGIN PUBLIC KEY-----, \
                    Clerk dashboard > API keys > JWT public key) and keep the private key out of the gateway"
            .to_owned());
    }
    jsonwebtoken::DecodingKey::from_rsa_pem(pem.as_bytes())
        .map_err(|_| "expected a PEM RSA public key (-----BEGIN PUBLIC KEY-----)".to_owned())?;
    Ok(pem)
}

pub(super) fn check_signing_secret(secret: &str) -> Result<(), String> {
    use base64::Engine;
    let body = secret.strip_prefix("whsec_").unwrap_or(secret);
    match base64::engine::general_purpose::STANDARD.decode(body) {
        Ok(key) if !key.is_empty() => Ok(()),
        _ => Err("expected a Svix signing secret (whsec_ followed by base64)".into()),
    }
}

pub(super) fn duration(path: &str, text: Option<&str>, default: Duration) -> Result<Duration, ConfigError> {
    text.map_or(Ok(default), |t| parse_duration(t).map_err(|m| ConfigError::new(path, m)))
}

/// A deadline: zero would fail every request (or never load keys), so it is refused.
pub(super) fn timeout(path: &str, text: Option<&str>, default: Duration) -> Result<Duration, ConfigError> {
    let value = duration(path, text, default)?;
    if value.is_zero() {
        return Err(ConfigError::new(path, "a timeout of zero would fail every request"));
    }
    Ok(value)
}

pub(super) fn size_value(path: &str, size: Size) -> Result<u64, ConfigError> {
    match size {
        Size::Bytes(n) => Ok(n),
        Size::Text(t) => parse_size(&t).map_err(|m| ConfigError::new(path, m)),
    }
}

pub(super) fn socket_addr(path: &str, text: &str) -> Result<SocketAddr, ConfigError> {
    text.parse().map_err(|_| ConfigError::new(path, format!("expected ip:port like \"0.0.0.0:8080\", got {text:?}")))
}

pub(super) fn http_url(path: &str, text: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(text).map_err(|e| ConfigError::new(path, format!("{text:?} is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(ConfigError::new(path, format!("expected an absolute http(s) URL, got {text:?}")));
    }
    Ok(url)
}

pub(super) fn parse_net(text: &str) -> Result<IpNet, String> {
    text.parse::<IpNet>()
        .or_else(|_| text.parse::<std::net::IpAddr>().map(IpNet::from))
        .map_err(|_| format!("expected an IP address or CIDR like \"10.0.0.0/8\", got {text:?}"))
}

pub(super) fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}
