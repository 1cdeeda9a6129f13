//! The README's layer map is the code's: every module under src/ has one line in it, and
//! every `crate::` import (outside `#[cfg(test)]`) reaches a module on a lower line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Items `lib.rs` re-exports: importing them is importing the crate root.
const ROOT_ITEMS: [&str; 5] = ["Clock", "Config", "Error", "Listeners", "run"];

/// Module name → its line in the map (0 = top).
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

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
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

/// The top-level module a file under src/ belongs to (`lib` for lib.rs).
fn module_of(file: &Path) -> String {
    let relative = file.strip_prefix(root().join("src")).unwrap();
    let first = relative.components().next().unwrap().as_os_str().to_string_lossy().into_owned();
    first.trim_end_matches(".rs").to_owned()
}

/// The modules a file's code (not its tests, not its comments) names as `crate::…`.
fn imports(file: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(file).unwrap();
    let code = text.split("#[cfg(test)]").next().unwrap();
    let code: String = code.lines().filter(|l| !l.trim_start().starts_with("//")).map(|l| format!("{l}\n")).collect();
    let mut found = Vec::new();
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        let names: Vec<&str> = match rest.strip_prefix('{') {
            Some(group) => group.split('}').next().unwrap().split(',').map(|item| item.trim()).collect(),
            None => vec![rest],
        };
        for name in names {
            let ident: String = name.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            if ident.is_empty() {
                continue;
            }
            found.push(if ROOT_ITEMS.contains(&ident.as_str()) { "lib".to_owned() } else { ident });
        }
    }
    found
}

#[test]
fn every_module_imports_only_modules_below_it_in_the_readme_map() {
    let layers = layer_map();
    let mut files = Vec::new();
    rust_files(&root().join("src"), &mut files);
    let mut broken = Vec::new();
    for file in &files {
        let module = module_of(file);
        let shown = file.strip_prefix(root()).unwrap().display().to_string();
        let Some(&own) = layers.get(&module) else {
            broken.push(format!("{module} (from {shown}) has no line in the README's layer map"));
            continue;
        };
        for import in imports(file) {
            match layers.get(&import) {
                _ if import == module => {}
                Some(&line) if line > own => {}
                Some(_) => broken.push(format!("{shown} imports {import}, which is not below {module}")),
                None => broken.push(format!("{shown} imports {import}, which the map does not know")),
            }
        }
    }
    let modules: Vec<String> = files.iter().map(|f| module_of(f)).collect();
    for mapped in layers.keys() {
        if !modules.contains(mapped) {
            broken.push(format!("the map lists {mapped}, which is not in src/"));
        }
    }
    assert!(broken.is_empty(), "the layer map and the code disagree:\n{}", broken.join("\n"));
}
