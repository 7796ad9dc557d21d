//! The in-memory side: a fake file system with knobs (case-insensitive names, coarse
//! mtimes, no file ids, fixed modes, no hard links, no atomic replace) for fast unit and
//! property tests of the engine through the same seam as the local side. [`MemFs`] is the
//! file system (paths like `/l/a/b`; tests act on it as users would); [`MemSide`] is a
//! side rooted in one of its folders.

use super::{Caps, ChangeSource, DirItem, FileWriter, KeepVersion, Node, Replica, VersionToken};
use crate::model::{Entry, Kind, RelPath};
use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Clone, Debug)]
struct MemNode {
    /// The path as created (case preserved).
    path: String,
    kind: Kind,
    data: Arc<Vec<u8>>,
    mtime: i64,
    mode: u32,
    id: u64,
    ctime: i64,
}

/// Knobs of the in-memory file system.
#[derive(Clone, Debug, Default)]
pub struct MemOptions {
    /// Names differing only in case are the same file (Windows, macOS defaults).
    pub case_insensitive: bool,
    /// Stored mtimes are truncated to this many nanoseconds (2 s = FAT); 0 = exact.
    pub mtime_granularity_ns: i64,
    /// Report no file ids / change times (like a file system that has none).
    pub no_ids: bool,
    /// No hard links (FAT, many network and cloud drives): keeping an overwritten version
    /// needs a copy.
    pub no_hard_links: bool,
    /// A rename onto an existing file fails (like a side without atomic replace).
    pub no_atomic_replace: bool,
    /// Every file shows this mode and setting one is silently ignored (a FAT, SMB or FUSE
    /// cloud mount with fixed permissions).
    pub fixed_mode: Option<u32>,
}

/// In-memory file system. Paths are absolute-looking (`/l/a/b`); the root must be created
/// with `create_dir_all`. Thread-safe.
pub struct MemFs {
    opts: MemOptions,
    nodes: Mutex<BTreeMap<String, MemNode>>,
    counter: AtomicU64,
}

fn norm(p: &Path) -> String {
    let s = p.to_string_lossy().replace('\\', "/");
    let s = s.trim_end_matches('/');
    if s.is_empty() {
        "/".into()
    } else {
        s.to_string()
    }
}

fn not_found(p: &str) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("{p}: not found"))
}

impl MemFs {
    pub fn new(opts: MemOptions) -> MemFs {
        MemFs {
            opts,
            nodes: Mutex::new(BTreeMap::new()),
            counter: AtomicU64::new(1),
        }
    }

    fn key(&self, p: &str) -> String {
        if self.opts.case_insensitive {
            p.to_lowercase()
        } else {
            p.to_string()
        }
    }

    fn tick(&self) -> u64 {
        self.counter.fetch_add(1, Ordering::SeqCst)
    }

    fn coarse(&self, mtime: i64) -> i64 {
        let g = self.opts.mtime_granularity_ns;
        if g > 0 {
            mtime.div_euclid(g) * g
        } else {
            mtime
        }
    }

    fn parent_is_dir(nodes: &BTreeMap<String, MemNode>, key: &str) -> bool {
        match key.rfind('/') {
            Some(0) | None => true,
            Some(i) => nodes.get(&key[..i]).is_some_and(|n| n.kind == Kind::Dir),
        }
    }

    /// Write a whole file as a user would (creating parents), with the given mtime.
    pub fn write(&self, path: impl AsRef<Path>, data: &[u8], mtime_ns: i64) {
        let p = norm(path.as_ref());
        if let Some(parent) = Path::new(&p).parent() {
            self.create_dir_all(parent).unwrap();
        }
        let key = self.key(&p);
        let id = self.tick();
        let mut nodes = self.nodes.lock().unwrap();
        let (path_kept, id) = match nodes.get(&key) {
            Some(n) if n.kind == Kind::File => (n.path.clone(), n.id),
            _ => (p.clone(), id),
        };
        let ctime = self.tick() as i64;
        nodes.insert(
            key,
            MemNode {
                path: path_kept,
                kind: Kind::File,
                data: Arc::new(data.to_vec()),
                mtime: self.coarse(mtime_ns),
                mode: 0o644,
                id,
                ctime,
            },
        );
    }

    /// Read a whole file (None when absent or a folder).
    pub fn read(&self, path: impl AsRef<Path>) -> Option<Vec<u8>> {
        let p = norm(path.as_ref());
        let nodes = self.nodes.lock().unwrap();
        nodes.get(&self.key(&p)).filter(|n| n.kind == Kind::File).map(|n| n.data.to_vec())
    }

    /// Remove a file or a whole folder as a user would.
    pub fn remove_all(&self, path: impl AsRef<Path>) {
        let k = self.key(&norm(path.as_ref()));
        let prefix = format!("{k}/");
        self.nodes.lock().unwrap().retain(|key, _| key != &k && !key.starts_with(&prefix));
    }

    /// Every file below `root`: relative path (case as stored) -> content.
    pub fn files_under(&self, root: impl AsRef<Path>) -> BTreeMap<String, Vec<u8>> {
        let r = norm(root.as_ref());
        let prefix = format!("{}/", self.key(&r));
        self.nodes
            .lock()
            .unwrap()
            .iter()
            .filter(|(k, n)| k.starts_with(&prefix) && n.kind == Kind::File)
            .map(|(_, n)| (n.path[r.len() + 1..].to_string(), n.data.to_vec()))
            .collect()
    }

    /// Every folder below `root` (relative, case as stored).
    pub fn dirs_under(&self, root: impl AsRef<Path>) -> Vec<String> {
        let r = norm(root.as_ref());
        let prefix = format!("{}/", self.key(&r));
        self.nodes
            .lock()
            .unwrap()
            .iter()
            .filter(|(k, n)| k.starts_with(&prefix) && n.kind == Kind::Dir)
            .map(|(_, n)| n.path[r.len() + 1..].to_string())
            .collect()
    }

    fn entry(&self, n: &MemNode) -> Entry {
        let ids = !self.opts.no_ids;
        Entry {
            kind: n.kind,
            size: if n.kind == Kind::File { n.data.len() as u64 } else { 0 },
            mtime: n.mtime,
            mode: match self.opts.fixed_mode {
                Some(m) if n.kind == Kind::File => m,
                _ => n.mode,
            },
            file_id: if ids { n.id } else { 0 },
            version: if ids { n.ctime } else { 0 },
            hash: None,
        }
    }
}

struct MemWriter {
    fs: Arc<MemFs>,
    key: String,
    buf: Vec<u8>,
}

impl Write for MemWriter {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl FileWriter for MemWriter {
    fn finish(self: Box<Self>, mtime_ns: i64, mode: u32) -> io::Result<()> {
        let ctime = self.fs.tick() as i64;
        let mut nodes = self.fs.nodes.lock().unwrap();
        let n = nodes.get_mut(&self.key).ok_or_else(|| not_found(&self.key))?;
        n.data = Arc::new(self.buf);
        n.mtime = self.fs.coarse(mtime_ns);
        if mode != 0 {
            n.mode = mode;
        }
        n.ctime = ctime;
        Ok(())
    }
}

impl MemFs {
    /// Create a new file (fails if one exists); its content is set when the writer finishes.
    pub fn create_new(self: &Arc<Self>, path: &Path) -> io::Result<Box<dyn FileWriter>> {
        let p = norm(path);
        let key = self.key(&p);
        {
            let mut nodes = self.nodes.lock().unwrap();
            if nodes.contains_key(&key) {
                return Err(io::Error::new(io::ErrorKind::AlreadyExists, format!("{p}: exists")));
            }
            if !MemFs::parent_is_dir(&nodes, &key) {
                return Err(not_found(&p));
            }
            let id = self.tick();
            nodes.insert(
                key.clone(),
                MemNode {
                    path: p,
                    kind: Kind::File,
                    data: Arc::new(Vec::new()),
                    mtime: 0,
                    mode: 0o644,
                    id,
                    ctime: id as i64,
                },
            );
        }
        Ok(Box::new(MemWriter {
            fs: self.clone(),
            key,
            buf: Vec::new(),
        }))
    }
}

impl MemFs {
    pub fn stat(&self, path: &Path) -> io::Result<Option<Node>> {
        let p = norm(path);
        let nodes = self.nodes.lock().unwrap();
        Ok(nodes.get(&self.key(&p)).map(|n| Node::Entry(self.entry(n))))
    }

    pub fn read_dir(&self, path: &Path) -> io::Result<Vec<DirItem>> {
        let p = norm(path);
        let key = self.key(&p);
        let nodes = self.nodes.lock().unwrap();
        match nodes.get(&key) {
            Some(n) if n.kind == Kind::Dir => {}
            Some(_) => return Err(io::Error::other(format!("{p}: not a folder"))),
            None if key == "/" => {}
            None => return Err(not_found(&p)),
        }
        let prefix = if key == "/" { "/".to_string() } else { format!("{key}/") };
        let mut out = Vec::new();
        for (k, n) in nodes.range(prefix.clone()..) {
            if !k.starts_with(&prefix) {
                break;
            }
            let rest = &k[prefix.len()..];
            if rest.is_empty() || rest.contains('/') {
                continue;
            }
            let name = n.path.rsplit('/').next().unwrap_or("").to_string();
            out.push(DirItem {
                name: Ok(name),
                node: Ok(Node::Entry(self.entry(n))),
            });
        }
        Ok(out)
    }

    pub fn open_read(&self, path: &Path) -> io::Result<Box<dyn Read + Send>> {
        let p = norm(path);
        let nodes = self.nodes.lock().unwrap();
        match nodes.get(&self.key(&p)) {
            Some(n) if n.kind == Kind::File => Ok(Box::new(io::Cursor::new(n.data.to_vec()))),
            Some(_) => Err(io::Error::other(format!("{p}: is a folder"))),
            None => Err(not_found(&p)),
        }
    }

    pub fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let (f, t) = (norm(from), norm(to));
        let (fk, tk) = (self.key(&f), self.key(&t));
        let ctime = self.tick() as i64;
        let mut nodes = self.nodes.lock().unwrap();
        let src = nodes.get(&fk).cloned().ok_or_else(|| not_found(&f))?;
        if !MemFs::parent_is_dir(&nodes, &tk) {
            return Err(not_found(&t));
        }
        if tk.starts_with(&format!("{fk}/")) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{f}: cannot move a folder into itself"),
            ));
        }
        if fk != tk {
            if let Some(dst) = nodes.get(&tk) {
                if self.opts.no_atomic_replace {
                    return Err(io::Error::new(io::ErrorKind::AlreadyExists, format!("{t}: exists")));
                }
                if dst.kind == Kind::Dir || src.kind == Kind::Dir {
                    let empty = !nodes.keys().any(|k| k.starts_with(&format!("{tk}/")));
                    if !(dst.kind == Kind::Dir && src.kind == Kind::Dir && empty) {
                        return Err(io::Error::other(format!("{t}: target exists")));
                    }
                }
            }
        }
        // Move the node and (for folders) its whole subtree.
        let fprefix = format!("{fk}/");
        let moved: Vec<(String, MemNode)> = nodes
            .iter()
            .filter(|(k, _)| **k == fk || k.starts_with(&fprefix))
            .map(|(k, n)| (k.clone(), n.clone()))
            .collect();
        for (k, _) in &moved {
            nodes.remove(k);
        }
        for (k, mut n) in moved {
            let rest = &k[fk.len()..];
            let path_rest = &n.path[f.len()..];
            n.path = format!("{t}{path_rest}");
            if k == fk {
                n.ctime = ctime;
            }
            nodes.insert(format!("{tk}{rest}"), n);
        }
        Ok(())
    }

    pub fn hard_link(&self, from: &Path, to: &Path) -> io::Result<()> {
        if self.opts.no_hard_links {
            return Err(io::Error::new(io::ErrorKind::Unsupported, "no hard links here"));
        }
        let (f, t) = (norm(from), norm(to));
        let tk = self.key(&t);
        let mut nodes = self.nodes.lock().unwrap();
        let src = nodes.get(&self.key(&f)).cloned().ok_or_else(|| not_found(&f))?;
        if src.kind != Kind::File {
            return Err(io::Error::other(format!("{f}: not a file")));
        }
        if nodes.contains_key(&tk) {
            return Err(io::Error::new(io::ErrorKind::AlreadyExists, format!("{t}: exists")));
        }
        if !MemFs::parent_is_dir(&nodes, &tk) {
            return Err(not_found(&t));
        }
        // Contents are replaced, never edited in place, so sharing the Arc is a link.
        nodes.insert(tk, MemNode { path: t, ..src });
        Ok(())
    }

    pub fn remove_file(&self, path: &Path) -> io::Result<()> {
        let p = norm(path);
        let mut nodes = self.nodes.lock().unwrap();
        match nodes.get(&self.key(&p)) {
            Some(n) if n.kind == Kind::File => {
                nodes.remove(&self.key(&p));
                Ok(())
            }
            Some(_) => Err(io::Error::other(format!("{p}: is a folder"))),
            None => Err(not_found(&p)),
        }
    }

    pub fn remove_dir(&self, path: &Path) -> io::Result<()> {
        let p = norm(path);
        let k = self.key(&p);
        let mut nodes = self.nodes.lock().unwrap();
        match nodes.get(&k) {
            Some(n) if n.kind == Kind::Dir => {
                if nodes.keys().any(|x| x.starts_with(&format!("{k}/"))) {
                    return Err(io::Error::other(format!("{p}: folder not empty")));
                }
                nodes.remove(&k);
                Ok(())
            }
            Some(_) => Err(io::Error::other(format!("{p}: not a folder"))),
            None => Err(not_found(&p)),
        }
    }

    pub fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let p = norm(path);
        let mut nodes = self.nodes.lock().unwrap();
        let mut cur = String::new();
        for comp in p.split('/').filter(|c| !c.is_empty()) {
            cur.push('/');
            cur.push_str(comp);
            let k = self.key(&cur);
            match nodes.get(&k) {
                Some(n) if n.kind == Kind::Dir => {}
                Some(_) => return Err(io::Error::other(format!("{cur}: is a file"))),
                None => {
                    let id = self.tick();
                    nodes.insert(
                        k,
                        MemNode {
                            path: cur.clone(),
                            kind: Kind::Dir,
                            data: Arc::new(Vec::new()),
                            mtime: 0,
                            mode: 0o755,
                            id,
                            ctime: id as i64,
                        },
                    );
                }
            }
        }
        Ok(())
    }

    pub fn set_mtime(&self, path: &Path, mtime_ns: i64) -> io::Result<()> {
        let mtime = self.coarse(mtime_ns);
        self.change_meta(path, |n| n.mtime = mtime)
    }

    pub fn set_mode(&self, path: &Path, mode: u32) -> io::Result<()> {
        self.change_meta(path, |n| n.mode = mode)
    }

    /// Change a node's metadata; its change time moves, as on a real file system.
    fn change_meta(&self, path: &Path, change: impl FnOnce(&mut MemNode)) -> io::Result<()> {
        let p = norm(path);
        let ctime = self.tick() as i64;
        let mut nodes = self.nodes.lock().unwrap();
        let n = nodes.get_mut(&self.key(&p)).ok_or_else(|| not_found(&p))?;
        change(n);
        n.ctime = ctime;
        Ok(())
    }
}

/// A side rooted at a folder of a [`MemFs`] (several sides may share one).
pub struct MemSide {
    fs: Arc<MemFs>,
    root: String,
}

impl MemSide {
    pub fn new(fs: &Arc<MemFs>, root: &str) -> MemSide {
        MemSide {
            fs: fs.clone(),
            root: norm(Path::new(root)),
        }
    }

    fn path(&self, p: &RelPath) -> PathBuf {
        if p.is_root() {
            PathBuf::from(&self.root)
        } else {
            PathBuf::from(format!("{}/{}", self.root.trim_end_matches('/'), p.as_str()))
        }
    }
}

impl Replica for MemSide {
    fn caps(&self) -> Caps {
        let o = &self.fs.opts;
        Caps {
            case_insensitive: o.case_insensitive,
            mtime_resolution_ns: o.mtime_granularity_ns.max(1),
            set_mtime: true,
            modes: o.fixed_mode.is_none(),
            ids: !o.no_ids,
            version: if o.no_ids { VersionToken::None } else { VersionToken::ChangeTime },
            weak_version: false,
            free_hash: None,
            atomic_replace: !o.no_atomic_replace,
            keep_version: match (o.no_hard_links, o.no_atomic_replace) {
                (false, _) => KeepVersion::HardLink,
                (true, false) => KeepVersion::Copy,
                (true, true) => KeepVersion::MoveAside,
            },
            needs_flush: false,
            whole_uploads: false,
            cheap_listing: true,
            changes: ChangeSource::Poll,
        }
    }
    fn describe(&self, p: &RelPath) -> String {
        self.path(p).display().to_string()
    }
    fn stat(&self, p: &RelPath) -> io::Result<Option<Node>> {
        self.fs.stat(&self.path(p))
    }
    fn read_dir(&self, p: &RelPath) -> io::Result<Vec<DirItem>> {
        self.fs.read_dir(&self.path(p))
    }
    fn open_read(&self, p: &RelPath) -> io::Result<Box<dyn Read + Send>> {
        self.fs.open_read(&self.path(p))
    }
    fn create_new(&self, p: &RelPath) -> io::Result<Box<dyn FileWriter>> {
        self.fs.create_new(&self.path(p))
    }
    fn rename(&self, from: &RelPath, to: &RelPath) -> io::Result<()> {
        self.fs.rename(&self.path(from), &self.path(to))
    }
    fn keep_copy(&self, from: &RelPath, to: &RelPath) -> io::Result<()> {
        self.fs.hard_link(&self.path(from), &self.path(to))
    }
    fn remove_file(&self, p: &RelPath) -> io::Result<()> {
        self.fs.remove_file(&self.path(p))
    }
    fn remove_dir(&self, p: &RelPath) -> io::Result<()> {
        self.fs.remove_dir(&self.path(p))
    }
    fn create_dir_all(&self, p: &RelPath) -> io::Result<()> {
        self.fs.create_dir_all(&self.path(p))
    }
    fn set_mtime(&self, p: &RelPath, mtime_ns: i64) -> io::Result<()> {
        self.fs.set_mtime(&self.path(p), mtime_ns)
    }
    fn set_mode(&self, p: &RelPath, mode: u32) -> io::Result<()> {
        self.fs.set_mode(&self.path(p), mode)
    }
    fn make_durable(&self, _files: &[RelPath], _dirs: &[RelPath]) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memfs_case_insensitive_rename_keeps_one_file() {
        let fs = Arc::new(MemFs::new(MemOptions {
            case_insensitive: true,
            ..Default::default()
        }));
        fs.write("/r/Report.txt", b"x", 10);
        assert!(fs.stat(Path::new("/r/report.TXT")).unwrap().is_some());
        MemSide::new(&fs, "/r")
            .rename(&RelPath::new("Report.txt").unwrap(), &RelPath::new("report.txt").unwrap())
            .unwrap();
        assert_eq!(fs.files_under("/r").keys().collect::<Vec<_>>(), ["report.txt"]);
    }

    #[test]
    fn memfs_coarse_mtime_truncates() {
        let fs = Arc::new(MemFs::new(MemOptions {
            mtime_granularity_ns: 2_000_000_000,
            ..Default::default()
        }));
        fs.write("/r/a", b"x", 3_500_000_000);
        match fs.stat(Path::new("/r/a")).unwrap() {
            Some(Node::Entry(e)) => assert_eq!(e.mtime, 2_000_000_000),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn memfs_writer_and_folder_rename() {
        let fs = Arc::new(MemFs::new(MemOptions::default()));
        fs.create_dir_all(Path::new("/r/d")).unwrap();
        let mut w = fs.create_new(Path::new("/r/d/f")).unwrap();
        w.write_all(b"hello").unwrap();
        w.finish(42, 0o640).unwrap();
        fs.rename(Path::new("/r/d"), Path::new("/r/e")).unwrap();
        assert_eq!(fs.read("/r/e/f").unwrap(), b"hello");
        assert!(fs.read("/r/d/f").is_none());
    }
}
