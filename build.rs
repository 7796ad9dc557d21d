//! Embeds the built web UI (`ui/dist`, made by `npm run build`) into the library, so one
//! `tandem` binary serves it. Without a build the service serves a page saying how to make
//! one; the API works either way.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let dist = root.join("ui").join("dist");
    println!("cargo:rerun-if-changed=build.rs");
    let mut files = Vec::new();
    if dist.is_dir() {
        println!("cargo:rerun-if-changed={}", dist.display());
        walk(&dist, &mut files);
    } else {
        // Rebuild once the UI is built.
        println!("cargo:rerun-if-changed={}", root.join("ui").display());
    }
    files.sort();
    let mut out =
        String::from("/// The web UI's files: (path from the site root, contents).\npub static UI_FILES: &[(&str, &[u8])] = &[\n");
    for f in &files {
        let rel = f.strip_prefix(&dist).unwrap().to_string_lossy().replace('\\', "/");
        writeln!(out, "    ({:?}, include_bytes!({:?})),", format!("/{rel}"), f.display().to_string()).unwrap();
    }
    out.push_str("];\n");
    let dest = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("ui_files.rs");
    std::fs::write(dest, out).unwrap();
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(&p, out);
        } else {
            out.push(p);
        }
    }
}
