//! Configuration: reads gateway.toml (and the environment, and `*_file` secrets), expands
//! `${VAR}`, applies `CLERK_GATEWAY_<SECTION>_<KEY>` overrides, and validates everything into
//! types that cannot be invalid. Never opens sockets.
//!
//! Every error names the key path it is about (`route[2].upstream: relative URL`).

mod build;
pub mod env;
mod expand;
mod live;
mod model;
mod raw;
mod routes;
pub mod units;
mod values;

use std::path::Path;

pub use expand::EnvLookup;
pub use model::*;

impl Config {
    /// Reads and validates a config file, expanding variables from `env`.
    ///
    /// # Errors
    /// A `ConfigError` naming the key path (or the file, for I/O and syntax errors).
    pub fn load(path: &Path, env: EnvLookup<'_>) -> Result<Config, ConfigError> {
        Self::from_file_text(path, &read_file(path)?, env)
    }

    /// Validates `text`, read from `path` (named in errors that have no key path).
    ///
    /// # Errors
    /// A `ConfigError` naming the key path, or the file for syntax errors.
    pub fn from_file_text(path: &Path, text: &str, env: EnvLookup<'_>) -> Result<Config, ConfigError> {
        Self::from_toml(text, env).map_err(|mut e| {
            if e.path.is_empty() {
                e.path = path.display().to_string();
            }
            e
        })
    }

    /// Validates config text, expanding variables from `env`.
    ///
    /// # Errors
    /// A `ConfigError` naming the key path; syntax errors have an empty path and a line number.
    pub fn from_toml(text: &str, env: EnvLookup<'_>) -> Result<Config, ConfigError> {
        let mut table: toml::Table = text.parse().map_err(|e: toml::de::Error| syntax_error(text, &e))?;
        expand::expand_table(&mut table, "", env)?;
        env::apply(&mut table, env)?;
        let raw: raw::RawConfig = serde_path_to_error::deserialize(toml::Value::Table(table))
            .map_err(|e| ConfigError::new(e.path().to_string(), e.inner().message().to_owned()))?;
        build::build(raw, env)
    }
}

/// The text of a config file.
///
/// # Errors
/// A `ConfigError` naming the file when it cannot be read.
pub fn read_file(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|e| ConfigError::new(path.display().to_string(), format!("cannot read: {e}")))
}

fn syntax_error(text: &str, err: &toml::de::Error) -> ConfigError {
    let line = err.span().map_or(0, |span| text[..span.start.min(text.len())].lines().count().max(1));
    ConfigError::new("", format!("TOML syntax error at line {line}: {}", err.message().trim()))
}

/// The process environment, for `Config::load`.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}
