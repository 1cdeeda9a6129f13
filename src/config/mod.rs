//! Configuration: reads gateway.toml (and the environment, and `*_file` secrets), expands
//! `${VAR}`, applies `CLERK_GATEWAY_<SECTION>_<KEY>` overrides, and validates everything into
//! types that cannot be invalid. Never opens sockets.
//!
//! Every error names the key path it is about (`route[2].upstream: relative URL`), and a
//! file's problems are reported all at once, in the order of the file.

mod build;
mod cors;
pub mod env;
mod expand;
mod live;
mod model;
mod problems;
mod raw;
mod routes;
pub mod units;
mod values;

use std::path::Path;

pub use expand::EnvLookup;
pub use model::*;
pub use problems::Problems;

impl Config {
    /// Reads and validates a config file, expanding variables from `env`.
    ///
    /// # Errors
    /// Every problem, each naming its key path (or the file, for I/O and syntax errors).
    pub fn load(path: &Path, env: EnvLookup<'_>) -> Result<Config, ConfigErrors> {
        Self::from_file_text(path, &read_file(path)?, env)
    }

    /// Validates `text`, read from `path` (named in errors that have no key path).
    ///
    /// # Errors
    /// Every problem, in file order, each naming its key path.
    pub fn from_file_text(path: &Path, text: &str, env: EnvLookup<'_>) -> Result<Config, ConfigErrors> {
        let (config, problems) = Self::validate(path, text, env);
        match (config, problems.in_file_order(text)) {
            (Some(config), None) => Ok(config),
            (_, Some(errors)) => Err(errors),
            (None, None) => Err(ConfigError::new(path.display().to_string(), "cannot be read").into()),
        }
    }

    /// Validates config text, expanding variables from `env`.
    ///
    /// # Errors
    /// Every problem; a syntax error has an empty path and a line number.
    pub fn from_toml(text: &str, env: EnvLookup<'_>) -> Result<Config, ConfigErrors> {
        Self::from_file_text(Path::new(""), text, env)
    }

    /// Everything `text` says and every problem in it: the config is `None` only when the
    /// file could not be read as TOML (or as the file's structure). With problems, the config
    /// holds stand-ins for the keys they are about, for `check` to probe the rest; never serve it.
    pub fn validate(path: &Path, text: &str, env: EnvLookup<'_>) -> (Option<Config>, Problems) {
        let mut problems = Problems::default();
        let mut table: toml::Table = match text.parse() {
            Ok(table) => table,
            Err(e) => {
                let mut error = syntax_error(text, &e);
                error.path = path.display().to_string();
                problems.push(error);
                return (None, problems);
            }
        };
        expand::expand_table(&mut table, "", env, &mut problems);
        env::apply(&mut table, env, &mut problems);
        let config = raw::read(table, &mut problems).map(|raw| build::build(raw, env, &mut problems));
        (config, problems)
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
