//! The LWK's layers import one way (lwk/README.md draws the graph): every
//! `crate::` and `super::` path in `lwk/src` is resolved to the top-level
//! module it names, and a module may name only modules of its own layer or
//! of a layer below. A new top-level module must be given a layer here.
//! `cargo test -p lwk-hosttest --test layers -- --nocapture` prints the
//! edges between layers.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Layers from the bottom up, with their top-level modules.
const LAYERS: &[(&str, &[&str])] = &[
    ("errno", &["errno"]),
    ("arch", &["arch"]),
    ("kernel", &["kargs", "boot_params", "kmsg", "smp", "monitor", "panic"]),
    ("mm", &["mm"]),
    ("process", &["process", "elf"]),
    ("lwkfs", &["lwkfs"]),
    ("syscall", &["syscall"]),
    ("services", &["ikc", "timer", "probe"]),
    ("main", &["main"]),
];

/// `#[macro_export]` macros live at the crate root; their module.
const MACROS: &[(&str, &str)] = &[("printk", "kmsg")];

fn layer_of(top: &str) -> Option<usize> {
    LAYERS.iter().position(|(_, mods)| mods.contains(&top))
}

/// `lwk/src`, or another tree's copy of it in `LWK_SRC`.
fn src() -> PathBuf {
    std::env::var_os("LWK_SRC").map_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../src"), PathBuf::from)
}

fn rs_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rs_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Module path of a source file: `mm/aspace.rs` -> [mm, aspace],
/// `process/mod.rs` -> [process], `main.rs` -> [].
fn module_path(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel.iter().map(|c| c.to_string_lossy().into_owned()).collect();
    let file = parts.pop().unwrap();
    let stem = file.trim_end_matches(".rs");
    if stem != "mod" && !(parts.is_empty() && stem == "main") {
        parts.push(stem.to_string());
    }
    parts
}

/// The code of `text` without comments (line comments, doc comments and
/// block comments) and string literals' contents.
fn code_only(text: &str) -> String {
    let mut out = String::new();
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            i += 2;
            while i < b.len() && !b[i..].starts_with(b"*/") {
                i += 1;
            }
            i += 2;
        } else if b[i] == b'"' && (i == 0 || b[i - 1] != b'\'') {
            // A string literal (asm templates, messages): keep the quotes.
            out.push('"');
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' {
                    i += 1;
                }
                i += 1;
            }
            out.push('"');
            i += 1;
        } else {
            out.push(b[i] as char);
            i += 1;
        }
    }
    out
}

fn ident_at(s: &str) -> &str {
    let end = s.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(s.len());
    &s[..end]
}

/// Top-level modules named by `code` of the module at `path`.
fn references(code: &str, path: &[String]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut add = |name: &str| {
        let name = MACROS.iter().find(|(m, _)| *m == name).map_or(name, |(_, module)| module);
        if !name.is_empty() {
            out.insert(name.to_string());
        }
    };
    for (i, _) in code.match_indices("crate::") {
        if code[..i].ends_with('$') {
            continue; // `$crate::` inside a macro definition
        }
        let rest = &code[i + 7..];
        if let Some(group) = rest.strip_prefix('{') {
            let group = &group[..group.find('}').unwrap_or(group.len())];
            for item in group.split(',') {
                add(ident_at(item.trim()));
            }
        } else {
            add(ident_at(rest));
        }
    }
    for (i, _) in code.match_indices("super::") {
        if code[..i].ends_with("super::") || code[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_') {
            continue; // counted from the first `super` of a chain
        }
        let mut rest = &code[i..];
        let mut ups = 0;
        while let Some(r) = rest.strip_prefix("super::") {
            rest = r;
            ups += 1;
        }
        if ups <= path.len() && ups == path.len() {
            // Escapes the top-level module: names a module at the root.
            if let Some(group) = rest.strip_prefix('{') {
                for item in group[..group.find('}').unwrap_or(group.len())].split(',') {
                    add(ident_at(item.trim()));
                }
            } else {
                add(ident_at(rest));
            }
        }
    }
    out
}

/// Edges (from top-level module, to top-level module) of `lwk/src`.
fn edges() -> BTreeSet<(String, String)> {
    let root = src();
    let mut files = Vec::new();
    rs_files(&root, &mut files);
    assert!(files.len() > 40, "lwk/src not found at {}", root.display());
    let mut edges = BTreeSet::new();
    for f in files {
        let rel = f.strip_prefix(&root).unwrap();
        let path = module_path(rel);
        let from = path.first().cloned().unwrap_or_else(|| "main".into());
        let code = code_only(&std::fs::read_to_string(&f).unwrap());
        for to in references(&code, &path) {
            if to != from && !["core", "alloc"].contains(&to.as_str()) {
                edges.insert((from.clone(), to));
            }
        }
    }
    edges
}

#[test]
fn every_import_points_down() {
    let edges = edges();
    let mut unknown = BTreeSet::new();
    let mut up = Vec::new();
    let mut graph: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (from, to) in &edges {
        let (Some(lf), Some(lt)) = (layer_of(from), layer_of(to)) else {
            if layer_of(from).is_none() {
                unknown.insert(from.clone());
            }
            if layer_of(to).is_none() {
                unknown.insert(to.clone());
            }
            continue;
        };
        if lt > lf {
            up.push(format!("{from} ({}) -> {to} ({})", LAYERS[lf].0, LAYERS[lt].0));
        } else if lt < lf {
            graph.entry(LAYERS[lf].0).or_default().insert(LAYERS[lt].0);
        }
    }
    for (l, below) in &graph {
        println!("{l:>8} -> {}", below.iter().copied().collect::<Vec<_>>().join(", "));
    }
    assert!(unknown.is_empty(), "modules without a layer (add them to LAYERS): {unknown:?}");
    assert!(up.is_empty(), "upward imports:\n  {}", up.join("\n  "));
}

#[test]
fn the_check_sees_imports() {
    // The resolver itself: an upward import is reported, comments are not.
    let code = code_only("use crate::syscall::x; // crate::ikc\nlet a = super::super::process::Thread; crate::printk!(\"crate::timer\");");
    let refs = references(&code, &["mm".into(), "aspace".into()]);
    assert_eq!(refs, ["kmsg", "process", "syscall"].iter().map(|s| s.to_string()).collect());
    let refs = references(&code_only("use super::{phys, sched};"), &["process".into()]);
    assert_eq!(refs, ["phys", "sched"].iter().map(|s| s.to_string()).collect());
    // The real tree has edges at all (the walk found the sources).
    assert!(edges().contains(&("syscall".to_string(), "process".to_string())));
}
