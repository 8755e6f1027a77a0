//! The relay's source files import each other without a circle: each module's `crate::…` and `super::…` paths
//! (and a folder's `mod.rs` naming its own children) are edges of a graph, which must have no cycle. A circle means
//! a shared type lives in the wrong file; the failure names the files around it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Every module of `server/src` by its path (`session::shards`, `session` for `session/mod.rs`), with its text up
/// to its unit tests (a test may reach anywhere).
fn modules() -> BTreeMap<String, String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = BTreeMap::new();
    let mut dirs = vec![src.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let relative = path.strip_prefix(&src).unwrap().with_extension("");
            let mut parts: Vec<String> = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if matches!(
                parts.last().map(String::as_str),
                Some("mod" | "lib" | "main")
            ) {
                parts.pop();
            }
            if parts.is_empty() {
                // The crate roots declare modules and import nothing of them.
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let code = text.split("#[cfg(test)]").next().unwrap_or_default();
            out.insert(parts.join("::"), code.to_string());
        }
    }
    out
}

/// The modules a path names: the longest known module that `segments` starts with.
fn resolve(segments: &[&str], known: &BTreeMap<String, String>) -> Option<String> {
    (1..=segments.len())
        .rev()
        .map(|n| segments[..n].join("::"))
        .find(|candidate| known.contains_key(candidate))
}

/// Each module's imports of other modules.
fn edges(known: &BTreeMap<String, String>) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (module, text) in known {
        let parent: Vec<&str> = module.split("::").collect();
        let parent = &parent[..parent.len() - 1];
        let mut targets = BTreeSet::new();
        for line in text.lines() {
            let line = line.trim_start();
            if line.starts_with("//") {
                continue;
            }
            for (prefix, base) in [("crate::", Vec::new()), ("super::", parent.to_vec())] {
                for (at, _) in line.match_indices(prefix) {
                    let before = line[..at].chars().next_back();
                    if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                        continue;
                    }
                    let path: Vec<&str> = line[at + prefix.len()..]
                        .split("::")
                        .map(|s| {
                            s.split(|c: char| !(c.is_alphanumeric() || c == '_'))
                                .next()
                                .unwrap_or_default()
                        })
                        .take_while(|s| !s.is_empty())
                        .collect();
                    let mut segments = base.clone();
                    segments.extend(path);
                    targets.extend(resolve(&segments, known));
                }
            }
            // A folder's `mod.rs` using its children by name: `use shards::ShardStreams;`.
            if let Some(rest) = line
                .strip_prefix("use ")
                .or_else(|| line.strip_prefix("pub use "))
            {
                let first = rest.split("::").next().unwrap_or_default();
                targets.extend(resolve(&[module.as_str(), first], known));
            }
        }
        targets.remove(module);
        out.insert(module.clone(), targets);
    }
    out
}

/// A cycle through `edges`, if there is one, as the modules along it.
fn cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit(
        module: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        marks: &mut BTreeMap<String, Mark>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match marks.get(module) {
            Some(Mark::Done) => return None,
            Some(Mark::Open) => {
                let from = path.iter().position(|m| m == module).unwrap();
                let mut cycle = path[from..].to_vec();
                cycle.push(module.to_string());
                return Some(cycle);
            }
            None => {}
        }
        marks.insert(module.to_string(), Mark::Open);
        path.push(module.to_string());
        for next in edges.get(module).into_iter().flatten() {
            if let Some(cycle) = visit(next, edges, marks, path) {
                return Some(cycle);
            }
        }
        path.pop();
        marks.insert(module.to_string(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    edges
        .keys()
        .find_map(|module| visit(module, edges, &mut marks, &mut Vec::new()))
}

#[test]
fn the_relays_modules_import_each_other_without_a_circle() {
    let known = modules();
    assert!(known.len() > 20, "{:?}", known.keys());
    let edges = edges(&known);
    // The reader sees imports at all: a session reaches the backlog.
    assert!(edges["session"].len() > 3, "{:?}", edges["session"]);
    if let Some(cycle) = cycle(&edges) {
        panic!(
            "modules import each other in a circle: {}",
            cycle.join(" → ")
        );
    }
}
