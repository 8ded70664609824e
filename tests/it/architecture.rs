//! The structural invariants ARCHITECTURE.md states, checked on the source
//! text of `src/`: the top-level modules form no cycle, only the store (and
//! the raft log store, which implements openraft's storage trait over the
//! cluster's types) names a storage engine, only the CLI reads the
//! environment, and no file carries more than 600 lines of non-test code.
//!
//! Test code (a trailing `#[cfg(test)] mod tests { .. }`, and files that
//! are declared `#[cfg(test)] mod name;`) is left out: tests may reach
//! anywhere.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The files allowed to name `rusqlite` or `sled`, besides `src/store/`.
const ENGINE_EXCEPTIONS: &[&str] = &["cluster/log_store.rs"];
/// The most non-test lines a source file may have.
const MAX_LINES: usize = 600;

struct Source {
    /// Relative to `src/`, with `/` separators.
    path: String,
    /// The text without its trailing test module.
    code: String,
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            walk(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
}

/// `name` of every `#[cfg(test)] mod name;` in `text`.
fn test_modules(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut lines = text.lines().map(str::trim).peekable();
    while let Some(line) = lines.next() {
        if line == "#[cfg(test)]"
            && let Some(next) = lines.peek()
            && let Some(rest) = next.strip_prefix("mod ")
            && let Some(name) = rest.strip_suffix(';')
        {
            names.push(name.to_string());
        }
    }
    names
}

/// Every non-test source file of the library and the binary.
fn sources() -> Vec<Source> {
    let root = src();
    let mut files = Vec::new();
    walk(&root, &mut files);
    let mut skipped = BTreeSet::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let dir = if file
            .file_name()
            .is_some_and(|name| name == "mod.rs" || name == "lib.rs")
        {
            file.parent().unwrap().to_path_buf()
        } else {
            file.with_extension("")
        };
        for name in test_modules(&text) {
            skipped.insert(dir.join(format!("{name}.rs")));
            skipped.insert(dir.join(&name).join("mod.rs"));
        }
    }
    files
        .into_iter()
        .filter(|file| !skipped.contains(file))
        .map(|file| {
            let text = std::fs::read_to_string(&file).unwrap();
            let code = match text.find("#[cfg(test)]\nmod tests {") {
                Some(at) => text[..at].to_string(),
                None => text,
            };
            let path = file
                .strip_prefix(&root)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            Source { path, code }
        })
        .collect()
}

/// The top-level module a file belongs to (`None` for `lib.rs`/`main.rs`).
fn top(path: &str) -> Option<String> {
    let first = path.split('/').next()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (name != "lib" && name != "main").then(|| name.to_string())
}

/// The first segment of every `crate::` path in `code`, with grouped
/// imports (`crate::{a, b::c}`) expanded; `super::` counts as `crate::`
/// in a module's root file.
fn crate_paths(code: &str, at_root: bool) -> Vec<String> {
    let mut found = Vec::new();
    let mut prefixes = vec!["crate::"];
    if at_root {
        prefixes.push("super::");
    }
    for prefix in prefixes {
        let mut rest = code;
        while let Some(at) = rest.find(prefix) {
            let before = rest[..at].chars().last();
            rest = &rest[at + prefix.len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            if let Some(group) = rest.strip_prefix('{') {
                let end = group.find('}').unwrap_or(group.len());
                for item in group[..end].split(',') {
                    let name: String = item
                        .trim()
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    found.push(name);
                }
            } else {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                found.push(name);
            }
        }
    }
    found
}

/// `pub use module::...::Name;` re-exports at the crate root, so that
/// `crate::Name` counts as a use of `module`.
fn reexports() -> BTreeMap<String, String> {
    let lib = std::fs::read_to_string(src().join("lib.rs")).unwrap();
    lib.lines()
        .filter_map(|line| line.trim().strip_prefix("pub use ")?.strip_suffix(';'))
        .filter_map(|path| {
            let (module, _) = path.split_once("::")?;
            let name = path.rsplit("::").next()?;
            Some((name.to_string(), module.to_string()))
        })
        .collect()
}

/// Module → the modules it uses, and which files make each edge.
fn module_graph() -> BTreeMap<String, BTreeMap<String, BTreeSet<String>>> {
    let sources = sources();
    let modules: BTreeSet<String> = sources.iter().filter_map(|s| top(&s.path)).collect();
    let reexports = reexports();
    let mut graph: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for source in &sources {
        let Some(from) = top(&source.path) else {
            continue;
        };
        graph.entry(from.clone()).or_default();
        let at_root = !source.path.contains('/') || source.path.ends_with("/mod.rs");
        // Comments (doc links among them) are not dependencies.
        let code: String = source
            .code
            .lines()
            .filter(|line| !line.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        for name in crate_paths(&code, at_root) {
            let to = reexports.get(&name).cloned().unwrap_or(name);
            if to != from && modules.contains(&to) {
                graph
                    .entry(from.clone())
                    .or_default()
                    .entry(to)
                    .or_default()
                    .insert(source.path.clone());
            }
        }
    }
    graph
}

/// The strongly connected components with more than one module (Tarjan).
fn cycles(graph: &BTreeMap<String, BTreeMap<String, BTreeSet<String>>>) -> Vec<Vec<String>> {
    struct Walk<'g> {
        graph: &'g BTreeMap<String, BTreeMap<String, BTreeSet<String>>>,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        on_stack: BTreeSet<&'g str>,
        found: Vec<Vec<String>>,
    }
    impl<'g> Walk<'g> {
        fn visit(&mut self, node: &'g str) {
            let next = self.index.len();
            self.index.insert(node, next);
            self.low.insert(node, next);
            self.stack.push(node);
            self.on_stack.insert(node);
            for target in self
                .graph
                .get(node)
                .into_iter()
                .flat_map(|edges| edges.keys())
            {
                let target = target.as_str();
                if !self.index.contains_key(target) {
                    self.visit(target);
                    let low = self.low[node].min(self.low[target]);
                    self.low.insert(node, low);
                } else if self.on_stack.contains(target) {
                    let low = self.low[node].min(self.index[target]);
                    self.low.insert(node, low);
                }
            }
            if self.low[node] == self.index[node] {
                let mut component = Vec::new();
                while let Some(member) = self.stack.pop() {
                    self.on_stack.remove(member);
                    component.push(member.to_string());
                    if member == node {
                        break;
                    }
                }
                if component.len() > 1 {
                    component.sort();
                    self.found.push(component);
                }
            }
        }
    }
    let mut walk = Walk {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for node in graph.keys() {
        if !walk.index.contains_key(node.as_str()) {
            walk.visit(node);
        }
    }
    walk.found
}

/// No two top-level modules import each other, directly or around a loop.
/// A failure names the modules of each cycle and the files behind each edge.
#[test]
fn top_level_modules_form_no_cycle() {
    let graph = module_graph();
    // The graph is real: the server uses the state, the state the store.
    assert!(graph["server"].contains_key("state"), "{graph:?}");
    assert!(graph["state"].contains_key("store"), "{graph:?}");
    let found = cycles(&graph);
    let explain: Vec<String> = found
        .iter()
        .flat_map(|component| {
            component.iter().flat_map(|from| {
                graph[from]
                    .iter()
                    .filter(|(to, _)| component.contains(to))
                    .map(move |(to, files)| format!("{from} -> {to} (in {files:?})"))
            })
        })
        .collect();
    assert!(
        found.is_empty(),
        "module cycles {found:?}:\n{}",
        explain.join("\n")
    );
}

/// The checker sees a cycle when there is one, through grouped imports and
/// re-exports alike.
#[test]
fn the_cycle_checker_finds_cycles() {
    assert_eq!(
        crate_paths(
            "use crate::{AppState, model::ChannelId};\nlet x = crate::store::Store;",
            false
        ),
        vec!["AppState", "model", "store"]
    );
    assert_eq!(crate_paths("use super::x;", true), vec!["x"]);
    assert!(crate_paths("use super::x;", false).is_empty());
    let mut graph: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for (from, to) in [("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")] {
        graph
            .entry(from.to_string())
            .or_default()
            .insert(to.to_string(), BTreeSet::new());
    }
    assert_eq!(cycles(&graph), vec![vec!["a", "b", "c"]]);
}

/// Only the store touches the storage engines.
#[test]
fn only_the_store_names_a_storage_engine() {
    let offenders: Vec<String> = sources()
        .into_iter()
        .filter(|source| {
            !source.path.starts_with("store/") && !ENGINE_EXCEPTIONS.contains(&source.path.as_str())
        })
        .filter(|source| source.code.contains("rusqlite") || source.code.contains("sled::"))
        .map(|source| source.path)
        .collect();
    assert!(
        offenders.is_empty(),
        "storage engines named outside store/: {offenders:?}"
    );
}

/// Only the CLI reads the environment; everything else is handed a `Config`.
#[test]
fn only_the_cli_reads_the_environment() {
    let reads = ["std::env::var", "env::var(", "env::vars", "env::var_os"];
    let offenders: Vec<String> = sources()
        .into_iter()
        .filter(|source| !source.path.starts_with("cli/"))
        .filter(|source| reads.iter().any(|read| source.code.contains(read)))
        .map(|source| source.path)
        .collect();
    assert!(
        offenders.is_empty(),
        "environment read outside cli/: {offenders:?}"
    );
}

/// No source file carries more than [`MAX_LINES`] lines of non-test code.
#[test]
fn no_file_is_too_long() {
    let long: Vec<(String, usize)> = sources()
        .into_iter()
        .map(|source| (source.path, source.code.lines().count()))
        .filter(|(_, lines)| *lines > MAX_LINES)
        .collect();
    assert!(
        long.is_empty(),
        "files over {MAX_LINES} non-test lines: {long:?}"
    );
}
