//! Environment overrides: every key of every section can be set by
//! `CLERK_GATEWAY_<SECTION>_<KEY>` (`CLERK_GATEWAY_SERVER_LISTEN`,
//! `CLERK_GATEWAY_AUTH_ENDPOINTS_PREFIX`), taking precedence over the file. Values are
//! literal (no `${VAR}` expansion); lists are comma-separated or a TOML array. Routes are
//! not sections: they come from the file only.

use super::expand::EnvLookup;
use super::model::ConfigError;
use super::problems::Problems;

/// How an override's text becomes a TOML value.
#[derive(Clone, Copy)]
enum Kind {
    /// As written.
    Text,
    /// A whole number.
    Number,
    /// A number of bytes, or a string with a unit (`64KiB`).
    Size,
    /// `true` or `false`.
    Flag,
    /// Comma-separated, or a TOML array.
    List,
}

use Kind::{Flag, List, Number, Size, Text};

/// Every section key an override may set, in file order.
const KEYS: &[(&str, &str, Kind)] = &[
    ("server", "listen", Text),
    ("server", "tls_cert", Text),
    ("server", "tls_key", Text),
    ("server", "trusted_proxies", List),
    ("server", "drain_delay", Text),
    ("server", "grace_timeout", Text),
    ("server", "header_read_timeout", Text),
    ("server", "tls_handshake_timeout", Text),
    ("server", "upstream_connect_timeout", Text),
    ("server", "upstream_timeout", Text),
    ("server", "max_header_size", Size),
    ("server", "workers", Number),
    ("server", "max_connections", Number),
    ("server", "first_byte_timeout", Text),
    ("server", "idle_timeout", Text),
    ("server", "http2_keepalive_interval", Text),
    ("server", "http2_keepalive_timeout", Text),
    ("server", "body_read_timeout", Text),
    ("admin", "listen", Text),
    ("clerk", "secret_key", Text),
    ("clerk", "secret_key_file", Text),
    ("clerk", "publishable_key", Text),
    ("clerk", "publishable_key_file", Text),
    ("clerk", "jwt_key", Text),
    ("clerk", "jwt_key_file", Text),
    ("clerk", "jwks_url", Text),
    ("clerk", "issuer", Text),
    ("clerk", "api_url", Text),
    ("clerk", "authorized_parties", List),
    ("clerk", "allow_missing_azp", Flag),
    ("clerk", "clock_skew", Text),
    ("clerk", "sign_in_url", Text),
    ("clerk", "api_timeout", Text),
    ("clerk", "frontend_api_url", Text),
    ("clerk", "proxy_path", Text),
    ("clerk", "proxy_url", Text),
    ("webhook", "path", Text),
    ("webhook", "signing_secret", Text),
    ("webhook", "signing_secret_file", Text),
    ("webhook", "body_timeout", Text),
    ("mirror", "path", Text),
    ("mirror", "url", Text),
    ("mirror", "url_file", Text),
    ("mirror", "reconcile_every", Text),
    ("mirror", "revocation_retention", Text),
    ("mirror", "cache_size", Number),
    ("mirror", "cache_ttl", Text),
    ("mirror", "fetch_timeout", Text),
    ("headers", "user_id", Text),
    ("headers", "session_id", Text),
    ("headers", "org_id", Text),
    ("headers", "org_role", Text),
    ("headers", "org_slug", Text),
    ("headers", "org_permissions", Text),
    ("headers", "user_email", Text),
    ("headers", "user_metadata", Text),
    ("headers", "user", Text),
    ("headers", "auth_status", Text),
    ("headers", "token_type", Text),
    ("headers", "token_id", Text),
    ("headers", "machine_id", Text),
    ("headers", "scopes", Text),
    ("auth_endpoints", "enabled", Flag),
    ("auth_endpoints", "prefix", Text),
    ("cors", "allow_origins", List),
    ("cors", "allow_credentials", Flag),
    ("cors", "allow_headers", List),
    ("cors", "expose_headers", List),
    ("cors", "max_age", Text),
    ("machine_tokens", "cache_ttl", Text),
    ("machine_tokens", "refusal_ttl", Text),
    ("machine_tokens", "verify_timeout", Text),
    ("machine_tokens", "cache_size", Number),
    ("forward_auth", "enabled", Flag),
    ("forward_auth", "path", Text),
    ("assertion", "enabled", Flag),
    ("assertion", "key_file", Text),
    ("assertion", "lifetime", Text),
];

/// The variable that overrides `section.key`.
fn variable(section: &str, key: &str) -> String {
    format!("CLERK_GATEWAY_{}_{}", section.to_ascii_uppercase(), key.to_ascii_uppercase())
}

/// Where each section key set anywhere came from, in file order: its variable when the
/// environment overrides it, else `file` when `file` (the config file as written) has it.
/// Keys in neither have their defaults.
pub fn sources(file: &toml::Table, env: EnvLookup<'_>) -> Vec<(String, String)> {
    let in_file = |section: &str, key: &str| file.get(section).and_then(|s| s.get(key)).is_some();
    KEYS.iter()
        .filter_map(|(section, key, _)| {
            let variable = variable(section, key);
            let origin = if env(&variable).is_some() {
                variable
            } else if in_file(section, key) {
                "file".to_owned()
            } else {
                return None;
            };
            Some((format!("{section}.{key}"), origin))
        })
        .collect()
}

/// Writes every override in `env` over `table`, noting (and skipping) each variable whose
/// value has the wrong form, with the key and the variable.
pub(super) fn apply(table: &mut toml::Table, env: EnvLookup<'_>, p: &mut Problems) {
    for (section, key, kind) in KEYS {
        let variable = variable(section, key);
        let Some(text) = env(&variable) else { continue };
        let Some(value) = value(*kind, text.trim()) else {
            p.push(ConfigError::new(format!("{section}.{key}"), format!("{variable}: {}", expected(*kind))));
            continue;
        };
        let entry = table.entry(section.to_string()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        match entry {
            toml::Value::Table(section_table) => drop(section_table.insert(key.to_string(), value)),
            _ => p.push(ConfigError::new(*section, "expected a table")),
        }
    }
}

fn value(kind: Kind, text: &str) -> Option<toml::Value> {
    match kind {
        Text => Some(toml::Value::String(text.to_owned())),
        Number => text.parse::<i64>().ok().map(toml::Value::Integer),
        Size => Some(text.parse::<i64>().map_or_else(|_| toml::Value::String(text.to_owned()), toml::Value::Integer)),
        Flag => text.parse::<bool>().ok().map(toml::Value::Boolean),
        List if text.starts_with('[') => toml::from_str::<toml::Table>(&format!("v = {text}")).ok()?.remove("v"),
        List => {
            let items = text.split(',').map(str::trim).filter(|s| !s.is_empty());
            Some(toml::Value::Array(items.map(|s| toml::Value::String(s.to_owned())).collect()))
        }
    }
}

fn expected(kind: Kind) -> &'static str {
    match kind {
        Text | Size => "expected a value",
        Number => "expected a whole number",
        Flag => "expected true or false",
        List => "expected a comma-separated list or a TOML array",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned())
    }

    #[test]
    fn overrides_win_over_the_file_and_take_each_kind() {
        let mut table: toml::Table = "[server]\nlisten = \"0.0.0.0:80\"\n".parse().unwrap();
        let vars = env(&[
            ("CLERK_GATEWAY_SERVER_LISTEN", "127.0.0.1:9"),
            ("CLERK_GATEWAY_SERVER_WORKERS", "3"),
            ("CLERK_GATEWAY_SERVER_TRUSTED_PROXIES", "10.0.0.0/8, 127.0.0.1"),
            ("CLERK_GATEWAY_SERVER_MAX_HEADER_SIZE", "32KiB"),
            ("CLERK_GATEWAY_AUTH_ENDPOINTS_ENABLED", "false"),
            ("CLERK_GATEWAY_CLERK_AUTHORIZED_PARTIES", "[\"https://a.example\"]"),
        ]);
        let mut problems = Problems::default();
        apply(&mut table, &vars, &mut problems);
        assert!(problems.is_empty());
        let expected = "[auth_endpoints]\nenabled = false\n\n[clerk]\nauthorized_parties = [\"https://a.example\"]\n\n\
                        [server]\nlisten = \"127.0.0.1:9\"\ntrusted_proxies = [\"10.0.0.0/8\", \"127.0.0.1\"]\n\
                        max_header_size = \"32KiB\"\nworkers = 3\n";
        assert_eq!(table, expected.parse::<toml::Table>().unwrap());
        let file: toml::Table = "[server]\nlisten = \"0.0.0.0:80\"\n".parse().unwrap();
        let sources = sources(&file, &vars);
        assert_eq!(sources[0], ("server.listen".to_owned(), "CLERK_GATEWAY_SERVER_LISTEN".to_owned()));
        assert_eq!(sources[1].0, "server.trusted_proxies");
    }

    /// A deserializer that only records the field names a struct asks for.
    struct FieldNames(&'static [&'static str]);

    impl<'de> serde::Deserializer<'de> for &mut FieldNames {
        type Error = serde::de::value::Error;

        fn deserialize_struct<V: serde::de::Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Self::Error> {
            self.0 = fields;
            Err(serde::de::Error::custom("names recorded"))
        }

        fn deserialize_any<V: serde::de::Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(serde::de::Error::custom("not a struct"))
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option
            unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
        }
    }

    fn fields<T: serde::de::DeserializeOwned>() -> &'static [&'static str] {
        let mut names = FieldNames(&[]);
        let _ = T::deserialize(&mut names);
        names.0
    }

    #[test]
    fn every_section_key_can_be_overridden() {
        use crate::config::raw::*;
        let sections = [
            ("server", fields::<RawServer>()),
            ("admin", fields::<RawAdmin>()),
            ("clerk", fields::<RawClerk>()),
            ("webhook", fields::<RawWebhook>()),
            ("mirror", fields::<RawMirror>()),
            ("headers", fields::<RawHeaders>()),
            ("auth_endpoints", fields::<RawAuthEndpoints>()),
            ("cors", fields::<RawCors>()),
            ("machine_tokens", fields::<RawMachineTokens>()),
            ("forward_auth", fields::<RawForwardAuth>()),
            ("assertion", fields::<RawAssertion>()),
        ];
        let mut wanted: Vec<(&str, &str)> =
            sections.iter().flat_map(|(section, keys)| keys.iter().map(move |key| (*section, *key))).collect();
        assert!(wanted.len() > 50, "the field names were read: {wanted:?}");
        let mut listed: Vec<(&str, &str)> = KEYS.iter().map(|(section, key, _)| (*section, *key)).collect();
        wanted.sort_unstable();
        listed.sort_unstable();
        assert_eq!(listed, wanted);
    }

    #[test]
    fn a_malformed_override_names_the_key_and_the_variable() {
        let mut table = toml::Table::new();
        let mut problems = Problems::default();
        let vars = env(&[("CLERK_GATEWAY_SERVER_WORKERS", "many"), ("CLERK_GATEWAY_SERVER_LISTEN", "127.0.0.1:9")]);
        apply(&mut table, &vars, &mut problems);
        let errors = problems.in_file_order("").unwrap();
        assert_eq!(errors.to_string(), "server.workers: CLERK_GATEWAY_SERVER_WORKERS: expected a whole number");
        assert_eq!(table["server"]["listen"].as_str(), Some("127.0.0.1:9"), "the sound override still applies");
    }
}
