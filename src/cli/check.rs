//! `clerk-gateway check`: validate the config, try what would otherwise fail only at run
//! time (the TLS pair, the mirror's directory), and print what it all resolves to.

use std::fmt::Write;
use std::fs::OpenOptions;
use std::path::Path;

use std::time::Duration;

use crate::Error;
use crate::assertion::Signer;
use crate::config::{self, Config, ConfigError, CorsPolicy, KeySource, OriginPattern, Problems, TlsFiles};
use crate::tls::{Certificate, TlsError};
use crate::token_type::TokenTypes;

/// Loads `path`, probes it, and prints the report.
///
/// # Errors
/// Every problem of the config and of its probes, in file order.
pub fn run(path: &Path) -> Result<(), Error> {
    let text = config::read_file(path)?;
    let (config, mut problems) = Config::validate(path, &text, &config::process_env);
    if let Some(config) = &config {
        probe(config, &mut problems);
    }
    if let Some(errors) = problems.in_file_order(&text) {
        return Err(Error::Config(errors));
    }
    let Some(config) = config else { return Ok(()) };
    let file: toml::Table = text.parse().unwrap_or_default();
    let sources = config::env::sources(&file, &config::process_env);
    print!("{}", describe(path, &config, &sources));
    Ok(())
}

/// What the config only shows to be wrong when the gateway starts; keys that already have
/// a problem are not probed.
fn probe(config: &Config, problems: &mut Problems) {
    if let Some(files) = &config.server.tls
        && !problems.about("server.tls_cert")
        && !problems.about("server.tls_key")
    {
        problems.ok(tls_pair(files));
    }
    if !problems.about("mirror.path") && config.mirror.url.is_none() {
        problems.ok(mirror_writable(&config.mirror.path));
    }
    if let Some(path) = config.assertion.as_ref().and_then(|a| a.key_file.as_ref())
        && !problems.about("assertion.key_file")
    {
        let loaded = Signer::from_file(path, Duration::from_secs(1));
        problems.ok(loaded
            .map(drop)
            .map_err(|e| ConfigError::new("assertion.key_file", format!("{}: {e}", path.display()))));
    }
}

fn tls_pair(files: &TlsFiles) -> Result<(), ConfigError> {
    Certificate::load(files).map(drop).map_err(|error| match error {
        TlsError::Certificate { path, source } => {
            ConfigError::new("server.tls_cert", format!("{}: {source}", path.display()))
        }
        TlsError::NoCertificates { path } => {
            ConfigError::new("server.tls_cert", format!("{}: no certificates found", path.display()))
        }
        TlsError::Key { path, source } => ConfigError::new("server.tls_key", format!("{}: {source}", path.display())),
        TlsError::Pair(e) => ConfigError::new("server.tls_key", format!("does not go with server.tls_cert: {e}")),
    })
}

/// SQLite needs the file writable and its directory too (for the journal beside it).
fn mirror_writable(path: &str) -> Result<(), ConfigError> {
    if path == ":memory:" {
        return Ok(());
    }
    let problem = |why: String| ConfigError::new("mirror.path", format!("{path}: {why}"));
    let file = Path::new(path);
    let dir = file.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if !dir.is_dir() {
        return Err(problem(format!("the directory {} does not exist", dir.display())));
    }
    if file.exists() {
        OpenOptions::new().write(true).open(file).map_err(|e| problem(format!("not writable: {e}")))?;
    }
    let probe = dir.join(format!(".clerk-gateway-check-{}", std::process::id()));
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .map_err(|e| problem(format!("the directory {} is not writable: {e}", dir.display())))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// The report: resolved settings, where they came from, then the route table.
pub fn describe(path: &Path, config: &Config, sources: &[(String, String)]) -> String {
    let mut out = String::new();
    let clerk = &config.clerk;
    let keys = match &clerk.keys {
        KeySource::Pem(_) => "jwt_key (PEM public key, no network)".to_owned(),
        KeySource::Jwks { url, bearer: Some(_) } => format!("JWKS {url} (with the secret key)"),
        KeySource::Jwks { url, bearer: None } => format!("JWKS {url}"),
    };
    let scheme = if config.server.tls.is_some() { "https" } else { "http" };
    let _ = writeln!(out, "configuration OK: {}", path.display());
    let mut line = |k: &str, v: String| {
        let _ = writeln!(out, "  {k:<10} {v}");
    };
    line("listen", format!("{} ({scheme})", config.server.listen));
    line("admin", config.admin.listen.to_string());
    line("keys", keys);
    line("issuer", clerk.issuer.clone().unwrap_or_else(|| "(not checked)".into()));
    let parties =
        if clerk.authorized_parties.is_empty() { "(not checked)".into() } else { clerk.authorized_parties.join(", ") };
    line("azp", parties);
    line("skew", format!("{:?}", clerk.clock_skew));
    line("sign-in", clerk.sign_in_url.as_ref().map_or_else(|| "(none: browsers get 401)".into(), |u| u.to_string()));
    let handshake = match &clerk.publishable_key {
        Some(pk) => {
            let base = clerk
                .frontend_api_url
                .as_ref()
                .map_or_else(|| format!("https://{}/", pk.frontend_api), |u| u.to_string());
            let kind = if pk.production { "production" } else { "development" };
            format!("{base}v1/client/handshake ({kind} instance)")
        }
        None => "(no publishable key: expired browser sessions are signed out)".into(),
    };
    line("handshake", handshake);
    line(
        "endpoints",
        config.auth_endpoints.as_ref().map_or_else(|| "(off)".into(), |p| format!("{p}/me {p}/logout {p}/login")),
    );
    if let Some(proxy) = &clerk.proxy {
        line("fapi proxy", format!("{}/* as {}", proxy.path, proxy.url));
    }
    let reconcile =
        config.mirror.reconcile_every.map_or_else(|| "no reconcile".into(), |d| format!("reconcile every {d:?}"));
    let mirror =
        config.mirror.url.as_ref().map_or_else(|| config.mirror.path.clone(), |u| crate::mirror::redacted(u.expose()));
    line("mirror", format!("{mirror} ({reconcile})"));
    if let Some(webhook) = &config.webhook {
        line("webhook", format!("POST {}", webhook.path));
    }
    line("forward", config.forward_auth.as_ref().map_or_else(|| "(off)".into(), |p| format!("{p} (forward-auth)")));
    let assertion = config.assertion.as_ref().map(|a| match &a.key_file {
        Some(file) => format!("X-Clerk-Gateway-Assertion, key {}, {:?}", file.display(), a.lifetime),
        None => format!("X-Clerk-Gateway-Assertion, key generated at start, {:?}", a.lifetime),
    });
    line("assertion", assertion.unwrap_or_else(|| "(off)".into()));
    line("cors", config.cors.as_deref().map_or_else(|| "(off: preflights are forwarded)".into(), cors_summary));
    let from = |env: bool| -> Vec<String> {
        let picked = sources.iter().filter(|(_, origin)| (origin != "file") == env);
        picked.map(|(key, origin)| if env { format!("{key} ({origin})") } else { key.clone() }).collect()
    };
    let (from_env, from_file) = (from(true), from(false));
    if !from_env.is_empty() {
        line("from env", from_env.join(", "));
    }
    line("from file", if from_file.is_empty() { "(nothing: all defaults)".into() } else { from_file.join(", ") });
    line("defaults", "every other key".into());
    out.push('\n');
    out.push_str(&route_table(config));
    out
}

fn cors_summary(policy: &CorsPolicy) -> String {
    let origins: Vec<String> = policy
        .allow_origins
        .iter()
        .map(|o| match o {
            OriginPattern::Any => "*".to_owned(),
            OriginPattern::Exact(origin) => origin.clone(),
            OriginPattern::Subdomains { scheme, suffix } => format!("{scheme}*{suffix}"),
        })
        .collect();
    let credentials = if policy.allow_credentials { " (with credentials)" } else { "" };
    format!("{}{credentials}", origins.join(", "))
}

fn route_table(config: &Config) -> String {
    let header = ["#", "HOST", "PATH", "METHODS", "AUTH", "REQUIRE", "UPSTREAM", "STRIP", "TIMEOUT"];
    let rows: Vec<[String; 9]> = config
        .routes
        .iter()
        .map(|r| {
            let mut require: Vec<String> = r.require.org_roles.iter().map(|x| format!("org_role={x}")).collect();
            require.extend(r.require.permissions.iter().map(|x| format!("permission={x}")));
            require.extend(r.require.scopes.iter().map(|x| format!("scope={x}")));
            require.extend(r.require.metadata.iter().map(|m| format!("metadata={m}")));
            [
                r.index.to_string(),
                r.host.clone().unwrap_or_else(|| "*".into()),
                r.path.clone(),
                r.methods
                    .as_ref()
                    .map_or_else(|| "*".into(), |m| m.iter().map(|m| m.as_str()).collect::<Vec<_>>().join(",")),
                if r.accepts == TokenTypes::SESSION {
                    r.auth.as_str().into()
                } else {
                    format!(
                        "{} ({})",
                        r.auth.as_str(),
                        r.accepts.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(",")
                    )
                },
                if require.is_empty() { "-".into() } else { require.join(" ") },
                r.upstream.to_string(),
                if r.strip_prefix { "yes".into() } else { "no".into() },
                format!("{:?}", r.timeout),
            ]
        })
        .collect();
    if rows.is_empty() {
        return "no routes: every request will get 404\n".into();
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|c| rows.iter().map(|row| row[c].len()).chain([header[c].len()]).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    let mut emit = |cells: Vec<&str>| {
        let line: Vec<String> = cells.iter().zip(&widths).map(|(cell, w)| format!("{cell:<w$}")).collect();
        let _ = writeln!(out, "{}", line.join("  ").trim_end());
    };
    emit(header.to_vec());
    for row in &rows {
        emit(row.iter().map(String::as_str).collect());
    }
    out
}
