//! `${VAR}` and `${VAR:-default}` expansion inside every string of a parsed TOML document,
//! before it is turned into typed config. `$${` stands for a literal `${`.

use super::model::ConfigError;
use super::problems::Problems;

/// Where environment variables come from: the process, or a map in tests.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Expands every string value in `table`, in place, noting each unset variable or malformed
/// `${…}` with the key path it was found at (that value is left as written). `path` names
/// the table.
pub(super) fn expand_table(table: &mut toml::Table, path: &str, env: EnvLookup<'_>, p: &mut Problems) {
    for (key, value) in table.iter_mut() {
        let here = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
        expand_value(value, &here, env, p);
    }
}

fn expand_value(value: &mut toml::Value, path: &str, env: EnvLookup<'_>, p: &mut Problems) {
    match value {
        toml::Value::String(s) if s.contains('$') => {
            if let Some(expanded) = p.ok(expand_str(s, env).map_err(|message| ConfigError::new(path, message))) {
                *s = expanded;
            }
        }
        toml::Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                expand_value(item, &format!("{path}[{i}]"), env, p);
            }
        }
        toml::Value::Table(table) => expand_table(table, path, env, p),
        _ => {}
    }
}

/// Expands one string.
///
/// # Errors
/// A message naming the unset variable or the malformed reference.
pub fn expand_str(input: &str, env: EnvLookup<'_>) -> Result<String, String> {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        if let Some(after) = tail.strip_prefix("$${") {
            out.push_str("${");
            rest = after;
        } else if let Some(after) = tail.strip_prefix("${") {
            let end = after.find('}').ok_or_else(|| format!("unterminated ${{…}} in {input:?}"))?;
            out.push_str(&resolve(&after[..end], env)?);
            rest = &after[end + 1..];
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn resolve(reference: &str, env: EnvLookup<'_>) -> Result<String, String> {
    let (name, default) = match reference.split_once(":-") {
        Some((name, default)) => (name, Some(default)),
        None => (reference, None),
    };
    let valid = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err(format!("invalid variable name {name:?} in ${{…}}"));
    }
    match (env(name).filter(|v| !v.is_empty() || default.is_none()), default) {
        (Some(value), _) => Ok(value),
        (None, Some(default)) => Ok(default.to_owned()),
        (None, None) => Err(format!("environment variable {name} is not set")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOST" => Some("example.com".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expands_variables_and_defaults() {
        assert_eq!(expand_str("https://${HOST}/x", &env).unwrap(), "https://example.com/x");
        assert_eq!(expand_str("${NOPE:-fallback}", &env).unwrap(), "fallback");
        assert_eq!(expand_str("${EMPTY:-fallback}", &env).unwrap(), "fallback");
        assert_eq!(expand_str("${EMPTY}", &env).unwrap(), "");
        assert_eq!(expand_str("${NOPE:-}", &env).unwrap(), "");
        assert_eq!(expand_str("cost: $5 $${HOST}", &env).unwrap(), "cost: $5 ${HOST}");
    }

    #[test]
    fn errors_name_the_variable() {
        assert_eq!(
            expand_str("${CLERK_SECRET_KEY}", &env).unwrap_err(),
            "environment variable CLERK_SECRET_KEY is not set"
        );
        assert!(expand_str("${HOST", &env).unwrap_err().contains("unterminated"));
        assert!(expand_str("${1X}", &env).unwrap_err().contains("invalid variable name"));
    }

    #[test]
    fn errors_carry_the_key_path() {
        let text = "[[route]]\npath = \"${PATH_}\"\nupstream = \"${UPSTREAM}\"";
        let mut table: toml::Table = toml::from_str(text).unwrap();
        let mut problems = Problems::default();
        expand_table(&mut table, "", &env, &mut problems);
        assert_eq!(
            problems.in_file_order(text).unwrap().to_string(),
            "route[0].path: environment variable PATH_ is not set; \
             route[0].upstream: environment variable UPSTREAM is not set"
        );
    }
}
