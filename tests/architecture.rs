//! The layering docs/ARCHITECTURE.md describes, checked on the source: modules import only
//! modules below them (the `crate::` graph has no cycle), the model-file container imports nothing
//! of the crate, and `cfg(feature = "cnn")` appears only where the architecture says.
//!
//! Nodes are the top-level modules of `src/` (a file or a folder), with `model::container` as a
//! node of its own (it is the bottom layer, `model/mod.rs` the top one). References are every
//! `crate::a::...` path outside comments; paths inside one node (`super::`, `self::`) are not
//! edges.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The node of a file: `model::container` for the container, else its top-level module.
fn node_of(rel: &Path) -> String {
    let parts: Vec<String> = rel
        .iter()
        .map(|s| s.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if parts.len() >= 2 && parts[0] == "model" && parts[1] == "container" {
        return "model::container".into();
    }
    parts[0].clone()
}

/// The node a `crate::` path names (`rest` is what follows `crate::`).
fn node_of_path(rest: &str) -> String {
    let mut segs = rest.split("::");
    let first = segs.next().unwrap_or("");
    match first {
        "Error" | "Result" => "error".into(),
        "model" if segs.next() == Some("container") => "model::container".into(),
        _ => first.into(),
    }
}

/// Sources of `src/` by node, comments removed.
fn sources() -> BTreeMap<String, Vec<(PathBuf, String)>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut by_node: BTreeMap<String, Vec<(PathBuf, String)>> = BTreeMap::new();
    for f in files {
        let rel = f.strip_prefix(&src).unwrap().to_path_buf();
        if rel.starts_with("cli") || rel == Path::new("main.rs") || rel == Path::new("lib.rs") {
            continue; // the binary and the crate root, above every module
        }
        let text: String = std::fs::read_to_string(&f)
            .unwrap()
            .lines()
            .map(|l| match l.find("//") {
                Some(i) => &l[..i],
                None => l,
            })
            .collect::<Vec<_>>()
            .join("\n");
        by_node.entry(node_of(&rel)).or_default().push((rel, text));
    }
    by_node
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (node, files) in sources() {
        let edges = g.entry(node.clone()).or_default();
        for (_, text) in files {
            for (i, _) in text.match_indices("crate::") {
                let rest: String = text[i + 7..]
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                    .collect();
                let target = node_of_path(&rest);
                if !target.is_empty() && target != node {
                    edges.insert(target);
                }
            }
        }
    }
    g
}

#[test]
fn module_graph_has_no_cycle() {
    let g = graph();
    // Depth-first search; a grey node reached again is a cycle.
    fn visit(
        n: &str,
        g: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        path: &mut Vec<String>,
    ) {
        match state.get(n) {
            Some(2) => return,
            Some(1) => {
                let start = path.iter().position(|p| p == n).unwrap();
                panic!("import cycle: {} -> {n}", path[start..].join(" -> "));
            }
            _ => {}
        }
        state.insert(n.into(), 1);
        path.push(n.into());
        for m in g.get(n).into_iter().flatten() {
            visit(m, g, state, path);
        }
        path.pop();
        state.insert(n.into(), 2);
    }
    let mut state = BTreeMap::new();
    for n in g.keys() {
        visit(n, &g, &mut state, &mut Vec::new());
    }
    // The graph really was read: the pipeline uses the stages' trait and the container.
    assert!(g["pipeline"].contains("stage") && g["pipeline"].contains("model::container"));
    assert!(g["model"].contains("pipeline"), "{:?}", g["model"]);
}

#[test]
fn container_imports_nothing_of_the_crate() {
    let g = graph();
    assert_eq!(g["model::container"], BTreeSet::new());
}

#[test]
fn cnn_feature_gates_only_where_documented() {
    let allowed = ["cnn", "model", "compare"];
    let mut found = BTreeSet::new();
    for (node, files) in sources() {
        for (rel, text) in files {
            if text.contains("feature = \"cnn\"") {
                assert!(
                    allowed.contains(&node.as_str()),
                    "cfg(feature = \"cnn\") in {} (not in docs/ARCHITECTURE.md's list)",
                    rel.display()
                );
                found.insert(rel.display().to_string());
            }
        }
    }
    eprintln!("cnn feature gates outside cli/ and lib.rs: {found:?}");
}
