//! Every problem a config has, collected instead of stopping at the first (one per key: the
//! first found is the cause, later ones at the same key are its echoes), then put in the
//! order their keys appear in the file.

use toml::de::{DeTable, DeValue};

use super::model::{ConfigError, ConfigErrors};

/// The problems found so far. Validation goes on past each one with a stand-in value, so
/// one run reports them all; a config with any problem is never served.
#[derive(Debug, Default)]
pub struct Problems {
    found: Vec<ConfigError>,
}

impl Problems {
    /// Notes `problem`, unless its key already has one.
    pub fn push(&mut self, problem: ConfigError) {
        if !self.found.iter().any(|p| p.path == problem.path) {
            self.found.push(problem);
        }
    }

    /// The value, or the type's default as a stand-in after noting the problem.
    pub(super) fn take<T: Default>(&mut self, result: Result<T, ConfigError>) -> T {
        self.ok(result).unwrap_or_default()
    }

    /// The value, or `None` after noting the problem.
    pub fn ok<T>(&mut self, result: Result<T, ConfigError>) -> Option<T> {
        result.map_err(|problem| self.push(problem)).ok()
    }

    /// How many problems have been noted (a step that raised it found one).
    pub(super) fn count(&self) -> usize {
        self.found.len()
    }

    /// Whether a problem was noted at `key` or under it (`clerk` covers `clerk.jwt_key`).
    pub fn about(&self, key: &str) -> bool {
        self.found
            .iter()
            .any(|p| p.path.strip_prefix(key).is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '['])))
    }

    /// Whether nothing was found.
    pub fn is_empty(&self) -> bool {
        self.found.is_empty()
    }

    /// The problems in the order their keys appear in `text` (those it does not hold, such
    /// as a value that came from the environment, after the rest), or `None` if there are none.
    pub fn in_file_order(self, text: &str) -> Option<ConfigErrors> {
        let mut found = self.found;
        if found.is_empty() {
            return None; // a sound file is not parsed again
        }
        if let Ok(document) = DeTable::parse(text) {
            let root = DeValue::Table(document.into_inner());
            // Stable: problems at the same place keep the order they were found in.
            found.sort_by_key(|p| position(&root, &p.path).unwrap_or(usize::MAX));
        }
        ConfigErrors::new(found)
    }
}

/// Where the deepest part of `path` that the document holds begins.
fn position(root: &DeValue<'_>, path: &str) -> Option<usize> {
    let mut here = root;
    let mut at = None;
    for segment in segments(path) {
        let next = match (segment, here) {
            (Segment::Key(name), DeValue::Table(table)) => {
                let exact = table.iter().find(|(k, _)| k.get_ref() == name);
                let entry = exact.or_else(|| table.iter().find(|(k, _)| k.get_ref().eq_ignore_ascii_case(name)));
                entry.map(|(key, value)| (key.span().start, value.get_ref()))
            }
            (Segment::Index(i), DeValue::Array(items)) => items.get(i).map(|item| (item.span().start, item.get_ref())),
            _ => None,
        };
        let Some((start, value)) = next else { break };
        at = Some(start);
        here = value;
    }
    at
}

/// One step of a key path.
#[derive(Debug, PartialEq)]
pub(super) enum Segment<'a> {
    Key(&'a str),
    Index(usize),
}

/// `route[2].claim_headers.X-T` as `route`, `2`, `claim_headers`, `X-T`.
pub(super) fn segments(path: &str) -> Vec<Segment<'_>> {
    let mut out = Vec::new();
    for part in path.split('.') {
        let (name, indexes) = part.split_once('[').map_or((part, ""), |(name, rest)| (name, rest));
        if !name.is_empty() {
            out.push(Segment::Key(name));
        }
        for index in indexes.split('[') {
            if let Some(Ok(i)) = index.strip_suffix(']').map(str::parse) {
                out.push(Segment::Index(i));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_split_into_keys_and_indexes() {
        use Segment::{Index, Key};
        assert_eq!(segments("route[2].claim_headers.X-T"), [Key("route"), Index(2), Key("claim_headers"), Key("X-T")]);
        assert_eq!(segments("server.trusted_proxies[0]"), [Key("server"), Key("trusted_proxies"), Index(0)]);
        assert_eq!(segments("clerk"), [Key("clerk")]);
    }

    #[test]
    fn problems_come_in_file_order_one_per_key() {
        let text = "[[route]]\npath = \"/\"\n[server]\nlisten = \"x\"\n[[route]]\nupstream = \"y\"\n";
        let mut problems = Problems::default();
        for path in ["route[1].upstream", "elsewhere", "server.listen", "route[0].path", "server.listen", "server"] {
            problems.push(ConfigError::new(path, "bad"));
        }
        assert!(problems.about("server") && problems.about("route[1]") && !problems.about("route[1].path"));
        assert!(!problems.about("serv"));
        let ordered: Vec<String> = problems.in_file_order(text).unwrap().iter().map(|p| p.path.clone()).collect();
        assert_eq!(ordered, ["route[0].path", "server", "server.listen", "route[1].upstream", "elsewhere"]);
    }
}
