//! Tidy tests (in the style of rust-analyzer's): they read the source and hold the
//! architecture to what ARCHITECTURE.md says. Each failure names the file, the line and the
//! rule, and says what to do instead.
//!
//! Layers, lowest first; a module may name only modules of a lower layer (and its own):
//! model < side, state < engine < config < mail < service < api < http, desktop.
//! Besides: the planner does no I/O and reads no clock; the engine reaches files only
//! through a side; the concrete local side is named only by the side module and the
//! composition roots; every module file opens with a `//!` summary.

use std::path::{Path, PathBuf};

/// Top-level modules of the library and their layer.
const LAYERS: &[(&str, u8)] = &[
    ("model", 0),
    ("side", 1),
    ("state", 1),
    ("engine", 2),
    ("config", 3),
    ("mail", 4),
    ("service", 5),
    ("api", 6),
    ("http", 7),
    ("desktop", 7),
];

fn layer(module: &str) -> Option<u8> {
    LAYERS.iter().find(|(m, _)| *m == module).map(|(_, l)| *l)
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every `.rs` file below `dir`: (path relative to the crate root, text).
fn sources(dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let rel = p.strip_prefix(root()).unwrap().to_string_lossy().replace('\\', "/");
                out.push((rel, std::fs::read_to_string(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// The library module a source file belongs to (`src/engine/plan.rs` -> "engine"); None
/// for the crate root and the binaries.
fn module_of(rel: &str) -> Option<&str> {
    let rest = rel.strip_prefix("src/")?;
    if rest.starts_with("bin/") || rest == "lib.rs" {
        return None;
    }
    Some(rest.split('/').next().unwrap().trim_end_matches(".rs"))
}

/// Code lines (comments and the `#[cfg(test)]` tail left out: unit tests may build
/// whatever they need), numbered from 1.
fn code_lines(text: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let t = line.trim_start();
        if t.starts_with("#[cfg(test)]") {
            break;
        }
        if t.starts_with("//") {
            continue;
        }
        out.push((i + 1, line));
    }
    out
}

/// The `crate::NAME` paths a line names, also inside `use crate::{a, b::c}` groups.
fn crate_refs(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = line;
    while let Some(i) = rest.find("crate::") {
        let before_ok = i == 0 || !rest.as_bytes()[i - 1].is_ascii_alphanumeric() && rest.as_bytes()[i - 1] != b'_';
        let after = &rest[i + "crate::".len()..];
        if before_ok {
            if let Some(group) = after.strip_prefix('{') {
                let end = group.find('}').unwrap_or(group.len());
                for item in group[..end].split(',') {
                    let name: String = item.trim().chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                    if !name.is_empty() {
                        out.push(name);
                    }
                }
            } else {
                let name: String = after.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                out.push(name);
            }
        }
        rest = after;
    }
    out
}

/// The rule violations in the library's source, as messages.
fn layering_violations(files: &[(String, String)]) -> Vec<String> {
    let mut bad = Vec::new();
    for (rel, text) in files {
        let Some(module) = module_of(rel) else { continue };
        let Some(own) = layer(module) else {
            bad.push(format!(
                "{rel}: module `{module}` has no layer: add it to LAYERS in tests/tidy.rs and to ARCHITECTURE.md"
            ));
            continue;
        };
        for (n, line) in code_lines(text) {
            for target in crate_refs(line) {
                if target == module {
                    continue;
                }
                match layer(&target) {
                    Some(l) if l < own => {}
                    Some(l) => bad.push(format!(
                        "{rel}:{n}: `{module}` (layer {own}) names `crate::{target}` (layer {l}): a module may only use lower layers. Move what both need down, or pass it in from above.\n    {}",
                        line.trim()
                    )),
                    None => bad.push(format!("{rel}:{n}: names unknown module `crate::{target}`")),
                }
            }
        }
    }
    bad
}

#[test]
fn tidy_layers_import_only_downward() {
    let bad = layering_violations(&sources(&root().join("src")));
    assert!(bad.is_empty(), "layering violations:\n{}", bad.join("\n"));
}

#[test]
fn tidy_layering_check_catches_an_upward_import() {
    // The check itself must fail on a forbidden import (so it cannot pass vacuously).
    let files = vec![
        ("src/engine/plan.rs".to_string(), "use crate::service::Service;\n".to_string()),
        (
            "src/model/mod.rs".to_string(),
            "use crate::{side::Node, model::Entry};\n".to_string(),
        ),
        (
            "src/service/mod.rs".to_string(),
            "use crate::engine::sync::ApiError; // fine\n".to_string(),
        ),
    ];
    let bad = layering_violations(&files);
    assert_eq!(bad.len(), 2, "{bad:#?}");
    assert!(
        bad[0].contains("src/engine/plan.rs:1") && bad[0].contains("crate::service"),
        "{}",
        bad[0]
    );
    assert!(
        bad[1].contains("src/model/mod.rs:1") && bad[1].contains("crate::side"),
        "{}",
        bad[1]
    );
}

#[test]
fn tidy_the_planner_does_no_io_and_reads_no_clock() {
    let text = std::fs::read_to_string(root().join("src/engine/plan.rs")).unwrap();
    let forbidden = [
        "std::fs",
        "std::io",
        "std::net",
        "std::env",
        "std::thread",
        "SystemTime",
        "Instant::now",
        "Local::now",
        "Utc::now",
        "crate::side",
        "crate::state",
        "rusqlite",
    ];
    let mut bad = Vec::new();
    for (n, line) in code_lines(&text) {
        for f in forbidden {
            if line.contains(f) {
                bad.push(format!(
                    "src/engine/plan.rs:{n}: `{f}`: the planner is pure (inputs in, a plan out)\n    {}",
                    line.trim()
                ));
            }
        }
        for target in crate_refs(line) {
            if target != "model" && line.contains(&format!("crate::{target}")) && !line.contains("crate::engine::plan") {
                bad.push(format!(
                    "src/engine/plan.rs:{n}: names `crate::{target}`: the planner uses only `crate::model`"
                ));
            }
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn tidy_the_engine_reaches_files_only_through_a_side() {
    let mut bad = Vec::new();
    for (rel, text) in sources(&root().join("src/engine")) {
        for (n, line) in code_lines(&text) {
            for f in ["std::fs", "File::open", "OpenOptions", "canonicalize", "notify::"] {
                if line.contains(f) {
                    bad.push(format!(
                        "{rel}:{n}: `{f}`: the engine reads and writes files through a side (`crate::side::Replica`)\n    {}",
                        line.trim()
                    ));
                }
            }
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn tidy_the_local_side_is_named_only_by_composition_roots() {
    // Who may open sides from configured locations, and who may name the local side.
    let may_open = ["src/api.rs", "src/service/mod.rs", "src/side/mod.rs"];
    let mut files = sources(&root().join("src"));
    files.extend(sources(&root().join("src-tauri/src")));
    let mut bad = Vec::new();
    for (rel, text) in &files {
        let in_side = rel.starts_with("src/side/");
        let shell = rel.starts_with("src/bin/") || rel.starts_with("src-tauri/");
        for (n, line) in code_lines(text) {
            if !in_side && !shell && (line.contains("LocalSide") || line.contains("side::local")) {
                bad.push(format!(
                    "{rel}:{n}: names the local side: only `crate::side` and the shells do; take a `&dyn Replica` instead\n    {}",
                    line.trim()
                ));
            }
            if line.contains("side::open") && !may_open.contains(&rel.as_str()) && !shell {
                bad.push(format!(
                    "{rel}:{n}: opens a side from a location: only the composition roots ({}) and the shells do\n    {}",
                    may_open.join(", "),
                    line.trim()
                ));
            }
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn tidy_every_module_file_opens_with_a_summary() {
    let mut bad = Vec::new();
    let mut files = sources(&root().join("src"));
    files.extend(sources(&root().join("src-tauri/src")));
    for (rel, text) in files {
        let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
        if !first.starts_with("//!") {
            bad.push(format!(
                "{rel}: opens with {first:?}, not a `//!` summary of what the module is and must not touch"
            ));
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}
