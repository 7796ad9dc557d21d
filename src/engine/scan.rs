//! The scanner: walks one side through its [`Replica`], in parallel, reading metadata only, and
//! builds a [`Snapshot`]. Ignored names are left out; Tandem's own temporary files are
//! listed apart (for clean-up); what cannot be read, symbolic links and special files are
//! listed as unknown so the planner leaves them alone. Hashes are computed elsewhere,
//! lazily. Must not touch: SQLite, the planner's decisions, anything outside the root.

use crate::model::names::{is_temp_name, Ignore};
use crate::model::{Entry, Kind, RelPath, Snapshot};
use crate::side::{Node, Replica};
use std::sync::{Condvar, Mutex};

#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("{root}: the folder does not exist (not mounted?)")]
    RootMissing { root: String },
    #[error("{root}: not a folder")]
    RootNotDir { root: String },
    #[error("{root}: cannot read the folder: {source}")]
    RootUnreadable {
        root: String,
        #[source]
        source: std::io::Error,
    },
}

#[derive(Debug, Default)]
pub struct ScanResult {
    pub tree: Snapshot,
    /// Paths whose state could not be determined, with the reason.
    pub unknown: Vec<(RelPath, String)>,
    /// Leftover temporary files of an interrupted copy.
    pub temp_files: Vec<RelPath>,
    /// The root holds something besides the trash and temporary files (a targeted scan
    /// reads only part of the tree, so it cannot tell from `tree`).
    pub root_has_entries: bool,
}

struct Queue {
    dirs: Vec<Option<RelPath>>,
    busy: usize,
}

/// Is the root there, a folder, and readable? Returns whether it holds anything but the
/// trash and temporary files.
pub fn check_root(side: &dyn Replica) -> Result<bool, ScanError> {
    let top = RelPath::root();
    let root = || side.describe(&top);
    match side.stat(&top) {
        Ok(Some(Node::Entry(e))) if e.kind == Kind::Dir => {}
        Ok(None) => return Err(ScanError::RootMissing { root: root() }),
        Ok(Some(_)) => return Err(ScanError::RootNotDir { root: root() }),
        Err(source) => return Err(ScanError::RootUnreadable { root: root(), source }),
    }
    // Read the root here so an unreadable root is an error, not an empty tree.
    match side.read_dir(&top) {
        Ok(items) => Ok(items.iter().any(|i| {
            i.name
                .as_ref()
                .is_ok_and(|n| n != crate::model::names::TRASH_DIR && !is_temp_name(n))
        })),
        Err(source) => Err(ScanError::RootUnreadable { root: root(), source }),
    }
}

/// Walk `root` with `threads` workers.
pub fn scan(side: &dyn Replica, ignore: &Ignore, threads: usize) -> Result<ScanResult, ScanError> {
    let out = ScanResult {
        root_has_entries: check_root(side)?,
        ..Default::default()
    };
    Ok(walk(side, ignore, threads, vec![None], Vec::new(), out))
}

/// Scan only `paths` and what lies below them, plus their ancestor folders (for targeted
/// plans of the paths the watcher reported). A path that is gone yields nothing.
pub fn scan_paths(side: &dyn Replica, ignore: &Ignore, paths: &[RelPath], threads: usize) -> Result<ScanResult, ScanError> {
    let mut out = ScanResult {
        root_has_entries: check_root(side)?,
        ..Default::default()
    };
    let mut seen = std::collections::HashSet::new();
    let mut entries = Vec::new();
    let mut starts = Vec::new();
    let ci = side.caps().case_insensitive;
    let mut listings: std::collections::HashMap<Option<RelPath>, std::collections::HashSet<String>> = Default::default();
    'paths: for p in paths {
        let mut chain: Vec<RelPath> = p.ancestors().collect();
        chain.reverse();
        chain.push(p.clone());
        for (i, a) in chain.iter().enumerate() {
            let name = a.name();
            if is_temp_name(name) || ignore.is_ignored(a.as_str(), name) {
                continue 'paths;
            }
            if !seen.insert(a.clone()) {
                continue;
            }
            let last = i + 1 == chain.len();
            // Where names ignore case, a stat under another case finds a sibling: only the
            // exact name, as the folder lists it, counts.
            if ci {
                let parent = a.parent();
                let names = listings.entry(parent.clone()).or_insert_with(|| {
                    let dir = parent.clone().unwrap_or_else(RelPath::root);
                    side.read_dir(&dir)
                        .map(|items| items.into_iter().filter_map(|i| i.name.ok()).collect())
                        .unwrap_or_default()
                });
                if !names.contains(name) {
                    continue 'paths;
                }
            }
            match side.stat(a) {
                Ok(Some(Node::Entry(e))) => {
                    entries.push((a.clone(), e));
                    if e.kind != Kind::Dir {
                        continue 'paths;
                    }
                    if last {
                        starts.push(Some(a.clone()));
                    }
                }
                Ok(None) => continue 'paths,
                Ok(Some(Node::Symlink)) => {
                    out.unknown.push((a.clone(), "symbolic link: not followed, not synced".into()));
                    continue 'paths;
                }
                Ok(Some(Node::Special)) => {
                    out.unknown.push((a.clone(), "not a regular file or folder: not synced".into()));
                    continue 'paths;
                }
                Err(e) => {
                    out.unknown.push((a.clone(), format!("cannot read metadata: {e}")));
                    continue 'paths;
                }
            }
        }
    }
    // The caller passes paths none of which lies below another, so walks never overlap.
    Ok(walk(side, ignore, threads, starts, entries, out))
}

fn walk(
    side: &dyn Replica,
    ignore: &Ignore,
    threads: usize,
    starts: Vec<Option<RelPath>>,
    mut all: Vec<(RelPath, Entry)>,
    mut out: ScanResult,
) -> ScanResult {
    if starts.is_empty() {
        all.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        all.dedup_by(|a, b| a.0 == b.0);
        out.tree = Snapshot::from_sorted(all);
        return out;
    }
    let queue = Mutex::new(Queue { dirs: starts, busy: 0 });
    let cv = Condvar::new();
    // Per worker: its entries (unsorted) and what else it found.
    type Part = (Vec<(RelPath, Entry)>, ScanResult);
    let results: Mutex<Vec<Part>> = Mutex::new(Vec::new());
    let threads = threads.max(1);
    std::thread::scope(|sc| {
        for _ in 0..threads {
            sc.spawn(|| {
                let mut local_entries: Vec<(RelPath, Entry)> = Vec::new();
                let mut local = ScanResult::default();
                loop {
                    let dir = {
                        let mut q = queue.lock().unwrap();
                        loop {
                            if let Some(d) = q.dirs.pop() {
                                q.busy += 1;
                                break Some(d);
                            }
                            if q.busy == 0 {
                                break None;
                            }
                            q = cv.wait(q).unwrap();
                        }
                    };
                    let Some(dir) = dir else {
                        cv.notify_all();
                        break;
                    };
                    let subdirs = read_one(side, dir.as_ref(), ignore, &mut local_entries, &mut local);
                    let mut q = queue.lock().unwrap();
                    q.dirs.extend(subdirs.into_iter().map(Some));
                    q.busy -= 1;
                    cv.notify_all();
                }
                results.lock().unwrap().push((local_entries, local));
            });
        }
    });
    for (mut entries, mut part) in results.into_inner().unwrap() {
        out.unknown.append(&mut part.unknown);
        out.temp_files.append(&mut part.temp_files);
        all.append(&mut entries);
    }
    // Built once from sorted input (bulk construction, no rebalancing).
    all.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    all.dedup_by(|a, b| a.0 == b.0);
    out.tree = Snapshot::from_sorted(all);
    out.unknown.sort();
    out.temp_files.sort();
    out
}

/// Read one folder; returns its subfolders to walk.
fn read_one(
    side: &dyn Replica,
    dir: Option<&RelPath>,
    ignore: &Ignore,
    entries: &mut Vec<(RelPath, Entry)>,
    out: &mut ScanResult,
) -> Vec<RelPath> {
    let at = dir.cloned().unwrap_or_else(RelPath::root);
    let items = match side.read_dir(&at) {
        Ok(items) => items,
        Err(e) => {
            if let Some(d) = dir {
                out.unknown.push((d.clone(), format!("cannot read folder: {e}")));
            }
            return Vec::new();
        }
    };
    let mut subdirs = Vec::new();
    for item in items {
        let name = match item.name {
            Ok(n) => n,
            Err(lossy) => {
                if let Ok(p) = child(dir, &lossy) {
                    out.unknown.push((p, "name is not valid Unicode; not synced".into()));
                }
                continue;
            }
        };
        let rel = match child(dir, &name) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(folder = %side.describe(&at), name = %name, "skipping unusable name: {e}");
                continue;
            }
        };
        if is_temp_name(&name) {
            out.temp_files.push(rel);
            continue;
        }
        if ignore.is_ignored(rel.as_str(), &name) {
            continue;
        }
        match item.node {
            Ok(Node::Entry(e)) => {
                if e.kind == Kind::Dir {
                    subdirs.push(rel.clone());
                }
                entries.push((rel, e));
            }
            Ok(Node::Symlink) => out.unknown.push((rel, "symbolic link: not followed, not synced".into())),
            Ok(Node::Special) => out.unknown.push((rel, "not a regular file or folder: not synced".into())),
            Err(e) => out.unknown.push((rel, format!("cannot read metadata: {e}"))),
        }
    }
    subdirs
}

fn child(dir: Option<&RelPath>, name: &str) -> Result<RelPath, crate::model::BadPath> {
    match dir {
        Some(d) => d.join(name),
        None => RelPath::new(name),
    }
}
