//! The README's layer map is the code's: every module under src/ has one line in it, every
//! import (outside the trailing `#[cfg(test)] mod tests`) reaches a module on a lower line,
//! and inside a folder the files import each other without a cycle and never their own
//! `mod.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Items `lib.rs` re-exports: importing them is importing the crate root.
const ROOT_ITEMS: [&str; 5] = ["Clock", "Config", "Error", "Listeners", "run"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Top-level module name → its line in the map (0 = top).
fn layer_map() -> BTreeMap<String, usize> {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let start = readme.find("The code in layers, top to bottom").expect("the README has the layer map");
    let block = readme[start..].split("```text\n").nth(1).and_then(|b| b.split("```").next()).unwrap();
    let mut layers = BTreeMap::new();
    for (line_no, line) in block.lines().enumerate() {
        let modules = line.split("  ").next().unwrap();
        for module in modules.split_whitespace() {
            let name = module.trim_end_matches('/').trim_end_matches(".rs").to_owned();
            assert!(layers.insert(name, line_no).is_none(), "{module} is on two lines of the map");
        }
    }
    layers
}

/// One source file: where it sits in the module tree and what its code says.
struct Source {
    /// Path shown in failures.
    shown: String,
    /// Module path: `[]` for lib.rs, `["auth"]` for auth/mod.rs, `["auth", "jwks"]` for
    /// auth/jwks.rs, `["handler"]` for handler.rs.
    module: Vec<String>,
    /// Whether it is a folder's `mod.rs` (or lib.rs): it names its children bare.
    is_parent: bool,
    /// The code, without the tests module and whole-line comments.
    code: String,
}

impl Source {
    fn top(&self) -> &str {
        self.module.first().map_or("lib", String::as_str)
    }

    /// The file's name inside its folder (`mod` for mod.rs), when it is in a folder.
    fn name_in_folder(&self) -> Option<&str> {
        match (self.module.len(), self.is_parent) {
            (1, true) => Some("mod"),
            (2, false) => Some(&self.module[1]),
            _ => None,
        }
    }
}

fn sources() -> Vec<Source> {
    let mut files = Vec::new();
    rust_files(&root().join("src"), &mut files);
    files.iter().map(|file| read_source(file)).collect()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn read_source(file: &Path) -> Source {
    let relative = file.strip_prefix(root().join("src")).unwrap();
    let mut module: Vec<String> =
        relative.components().map(|c| c.as_os_str().to_string_lossy().trim_end_matches(".rs").to_owned()).collect();
    let last = module.pop().unwrap();
    let is_parent = last == "mod" || (module.is_empty() && last == "lib");
    if !is_parent {
        module.push(last);
    }
    let text = std::fs::read_to_string(file).unwrap();
    let code = text.split("#[cfg(test)]\nmod tests").next().unwrap();
    let code = code.lines().filter(|l| !l.trim_start().starts_with("//")).map(|l| format!("{l}\n")).collect();
    Source { shown: file.strip_prefix(root()).unwrap().display().to_string(), module, is_parent, code }
}

/// Every path the use-tree at the start of `text` names: `a::b`, `{a, b::c}`,
/// `a::{b, c::{d, e}}`, …
fn tree_paths(text: &str) -> Vec<Vec<String>> {
    match text.strip_prefix('{') {
        Some(group) => top_level_items(group).into_iter().flat_map(use_paths).collect(),
        None => use_paths(text),
    }
}

/// Every path a use-tree starting with an identifier names.
fn use_paths(text: &str) -> Vec<Vec<String>> {
    let ident: String = text.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
    if ident.is_empty() {
        return Vec::new();
    }
    let rest = &text[ident.len()..];
    let Some(rest) = rest.strip_prefix("::") else { return vec![vec![ident]] };
    let children = tree_paths(rest);
    if children.is_empty() {
        return vec![vec![ident]];
    }
    children.into_iter().map(|child| std::iter::once(ident.clone()).chain(child).collect()).collect()
}

/// The comma-separated items of a `{…}` group whose opening brace is already consumed.
fn top_level_items(group: &str) -> Vec<&str> {
    let (mut depth, mut start, mut items) = (0usize, 0usize, Vec::new());
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => {
                items.push(group[start..i].trim());
                return items;
            }
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(group[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    items
}

/// Every module path (absolute, from the crate root) the file's code names.
fn imports(source: &Source, top_modules: &BTreeSet<String>) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    let code = source.code.as_str();
    for (at, _) in code.match_indices("crate::") {
        found.extend(tree_paths(&code[at + "crate::".len()..]));
    }
    for (at, _) in code.match_indices("super::") {
        let preceded = code[..at].ends_with("super::");
        if preceded {
            continue;
        }
        let mut rest = &code[at..];
        let mut base = source.module.clone();
        while let Some(after) = rest.strip_prefix("super::") {
            base.pop();
            rest = after;
        }
        found.extend(tree_paths(rest).into_iter().map(|p| base.iter().cloned().chain(p).collect()));
    }
    if source.is_parent {
        // A parent names its children bare: `state::AppState`, `writer::Writer`.
        let children = children_of(source, top_modules);
        for (at, _) in code.match_indices("::") {
            let before = &code[..at];
            let name_start = before.rfind(|c: char| !(c.is_alphanumeric() || c == '_')).map_or(0, |i| i + 1);
            let name = &before[name_start..];
            if children.contains(name) && !before[..name_start].ends_with("::") {
                found.push(source.module.iter().cloned().chain([name.to_owned()]).collect());
            }
        }
    }
    found
}

/// The modules a parent file declares.
fn children_of(source: &Source, top_modules: &BTreeSet<String>) -> BTreeSet<String> {
    if source.module.is_empty() {
        return top_modules.clone();
    }
    source
        .code
        .lines()
        .filter_map(|l| l.trim().trim_start_matches("pub ").strip_prefix("mod "))
        .map(|m| m.trim_end_matches(';').to_owned())
        .collect()
}

#[test]
fn every_module_imports_only_modules_below_it_in_the_readme_map() {
    let layers = layer_map();
    let sources = sources();
    let tops: BTreeSet<String> = sources.iter().map(|s| s.top().to_owned()).collect();
    let mut broken = BTreeSet::new();
    for source in &sources {
        let own = source.top();
        let Some(&own_line) = layers.get(own) else {
            broken.insert(format!("{own} (from {}) has no line in the README's layer map", source.shown));
            continue;
        };
        for path in imports(source, &tops) {
            let target = match path.first().map(String::as_str) {
                None => "lib",
                Some(first) if ROOT_ITEMS.contains(&first) => "lib",
                Some(first) => first,
            };
            let problem = match layers.get(target) {
                _ if target == own => continue,
                Some(&line) if line > own_line => continue,
                Some(_) => "is not below",
                None => "is not in the map, unlike",
            };
            broken.insert(format!("{} imports {target}, which {problem} {own}", source.shown));
        }
    }
    for mapped in layers.keys() {
        if !tops.contains(mapped) {
            broken.insert(format!("the map lists {mapped}, which is not in src/"));
        }
    }
    let broken: Vec<String> = broken.into_iter().collect();
    assert!(broken.is_empty(), "the layer map and the code disagree:\n{}", broken.join("\n"));
}

#[test]
fn files_in_a_folder_import_each_other_downward_and_never_their_mod_rs() {
    let sources = sources();
    let tops: BTreeSet<String> = sources.iter().map(|s| s.top().to_owned()).collect();
    let mut broken = Vec::new();
    let mut edges: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for source in &sources {
        let Some(name) = source.name_in_folder() else { continue };
        let folder = source.top().to_owned();
        let siblings: BTreeSet<String> = sources
            .iter()
            .filter(|s| s.top() == folder)
            .filter_map(|s| s.name_in_folder())
            .map(str::to_owned)
            .collect();
        for path in imports(source, &tops) {
            if path.first() != Some(&folder) || path.len() < 2 {
                continue;
            }
            let target = if siblings.contains(&path[1]) { path[1].clone() } else { "mod".to_owned() };
            if target == name {
                continue;
            }
            if target == "mod" {
                broken.push(format!("{} imports {} from its folder's mod.rs", source.shown, path.join("::")));
            }
            edges.entry((folder.clone(), name.to_owned())).or_default().insert(target);
        }
    }
    for ((folder, from), targets) in &edges {
        for to in targets {
            if reaches(&edges, folder, to, from, &mut BTreeSet::new()) {
                broken.push(format!("{folder}/{from} imports {folder}/{to}, which leads back to it (a cycle)"));
            }
        }
    }
    assert!(broken.is_empty(), "files inside folders:\n{}", broken.join("\n"));
}

/// Whether `from` reaches `to` along `edges` inside `folder`.
fn reaches(
    edges: &BTreeMap<(String, String), BTreeSet<String>>,
    folder: &str,
    from: &str,
    to: &str,
    seen: &mut BTreeSet<String>,
) -> bool {
    if from == to {
        return true;
    }
    if !seen.insert(from.to_owned()) {
        return false;
    }
    let next = edges.get(&(folder.to_owned(), from.to_owned()));
    next.is_some_and(|targets| targets.iter().any(|t| reaches(edges, folder, t, to, seen)))
}

#[test]
fn use_trees_are_read_whole() {
    let paths = tree_paths("{auth::{self, Identity}, proxy::X, body};\n");
    let firsts: Vec<&str> = paths.iter().map(|p| p[0].as_str()).collect();
    assert_eq!(firsts, ["auth", "auth", "proxy", "body"]);
    let nested = tree_paths("a::{b::{c, d}, e};");
    assert_eq!(nested.len(), 3);
    assert!(nested.iter().all(|p| p[0] == "a"));
    assert_eq!(use_paths("state::AppState;"), [vec!["state".to_owned(), "AppState".to_owned()]]);
}
