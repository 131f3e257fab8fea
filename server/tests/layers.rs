//! The server's modules are layers (the map at the top of `src/lib.rs`): every file under
//! `src/` belongs to a top-level module (its folder, or itself), and a top-level module names
//! only the ones below it. This reads the sources and checks the graph of `crate::` paths
//! between top-level modules: no cycle, and no layer naming one above it.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// The layers, bottom first: each may name only the ones before it (and itself).
const ORDER: &[&str] = &[
    "manifest",
    "store",
    "net",
    "directory",
    "web",
    "run",
    "driver",
    "commands",
];

/// The crate root and the binary (`src/bin/`), which may use everything.
const ABOVE_ALL: &[&str] = &["lib", "bin"];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `dir`.
fn sources(dir: &Path, into: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("read src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            sources(&path, into);
        } else if path.extension().is_some_and(|e| e == "rs") {
            into.push(path);
        }
    }
}

/// The top-level module a file under `src/` belongs to: its first folder, or its own name.
fn top_of(path: &Path) -> String {
    let relative = path.strip_prefix(src()).expect("under src");
    let first = relative.components().next().expect("a component");
    let name = first.as_os_str().to_string_lossy();
    name.strip_suffix(".rs").unwrap_or(&name).to_owned()
}

/// The text without comment lines (doc links name modules without using them).
fn code(text: &str) -> String {
    text.lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn ident_at(text: &str) -> String {
    text.chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

/// The first path segment of every item in a `{ ... }` group starting just after `{` at the
/// front of `text`, at depth one.
fn group_heads(text: &str) -> Vec<String> {
    let mut heads = Vec::new();
    let mut depth = 1;
    let mut expect_head = true;
    let mut index = 0;
    let bytes = text.as_bytes();
    while index < bytes.len() && depth > 0 {
        let c = bytes[index] as char;
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 1 => expect_head = true,
            c if expect_head && depth == 1 && !c.is_whitespace() => {
                heads.push(ident_at(&text[index..]));
                expect_head = false;
            }
            _ => {}
        }
        index += 1;
    }
    heads
}

/// The first segments of every `crate::` path in `text`.
fn crate_heads(text: &str) -> Vec<String> {
    let mut heads = Vec::new();
    for (at, _) in text.match_indices("crate::") {
        let before = text[..at].chars().next_back();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue; // `dipla_crate::` and the like
        }
        let rest = &text[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            heads.extend(group_heads(group));
        } else {
            heads.push(ident_at(rest));
        }
    }
    heads
}

/// What `lib.rs` re-exports at the root, by name, to the top-level module it comes from.
fn root_names(lib: &str) -> BTreeMap<String, String> {
    let mut names = BTreeMap::new();
    for line in code(lib).lines() {
        let Some(path) = line.trim().strip_prefix("pub use ") else {
            continue;
        };
        let top = ident_at(path);
        let path = path.trim_end_matches(';');
        let items: Vec<&str> = match path.find('{') {
            Some(open) => path[open + 1..].trim_end_matches('}').split(',').collect(),
            None => vec![path.rsplit("::").next().unwrap_or(path)],
        };
        for item in items {
            let name = item.trim().rsplit(" as ").next().unwrap_or("").trim();
            if !name.is_empty() {
                names.insert(name.to_owned(), top.clone());
            }
        }
    }
    names
}

/// The graph between top-level modules: who names whom (not itself).
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    sources(&src(), &mut files);
    let tops: BTreeSet<String> = files.iter().map(|f| top_of(f)).collect();
    let lib = fs::read_to_string(src().join("lib.rs")).expect("read lib.rs");
    let roots = root_names(&lib);
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let from = top_of(file);
        if ABOVE_ALL.contains(&from.as_str()) {
            continue;
        }
        let text = code(&fs::read_to_string(file).expect("read a source"));
        for head in crate_heads(&text) {
            let to = if tops.contains(&head) {
                head
            } else if let Some(top) = roots.get(&head) {
                top.clone()
            } else {
                continue; // a re-export from another crate
            };
            if to != from {
                edges.entry(from.clone()).or_default().insert(to);
            }
        }
        edges.entry(from).or_default();
    }
    edges
}

/// A cycle in `edges`, as the modules along it, if there is one.
fn cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut found = path[at..].to_vec();
            found.push(node.to_owned());
            return Some(found);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(found) = visit(next, edges, path, done) {
                return Some(found);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    edges
        .keys()
        .find_map(|node| visit(node, edges, &mut Vec::new(), &mut done))
}

#[test]
fn every_top_level_module_has_a_layer() {
    for top in graph().keys() {
        assert!(
            ORDER.contains(&top.as_str()),
            "src/{top} is in no layer: add it to ORDER here and to the map in lib.rs"
        );
    }
}

#[test]
fn the_top_level_modules_have_no_cycle() {
    let edges = graph();
    if let Some(found) = cycle(&edges) {
        panic!("a cycle between top-level modules: {}", found.join(" -> "));
    }
}

#[test]
fn no_layer_names_one_above_it() {
    let rank = |name: &str| ORDER.iter().position(|n| *n == name);
    let mut wrong = Vec::new();
    for (from, tos) in graph() {
        for to in tos {
            if let (Some(low), Some(high)) = (rank(&from), rank(&to))
                && high > low
            {
                wrong.push(format!("{from} -> {to}"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "lower layers naming higher ones: {wrong:?}"
    );
}

#[test]
fn the_reader_sees_paths_and_groups() {
    let text = "use crate::net::state::Handle;\nuse crate::{Job, run::{serve, engine}, store};";
    assert_eq!(crate_heads(text), ["net", "Job", "run", "store"]);
    let found = cycle(&BTreeMap::from([
        ("a".to_owned(), BTreeSet::from(["b".to_owned()])),
        ("b".to_owned(), BTreeSet::from(["a".to_owned()])),
    ]));
    assert_eq!(
        found,
        Some(vec!["a".to_owned(), "b".to_owned(), "a".to_owned()])
    );
}
