//! The one door to the disk. `Fs` is the trait every scan, executor and watcher call goes
//! through; `RealFs` is the operating system, `MemFs` an in-memory fake with knobs
//! (case-insensitive names, coarse mtimes, injected failures) for fast and fault tests.
//! OS-specific bits (file ids, change times, batched flushes) live here behind `cfg`, each
//! with a portable fallback. Must not touch: SQLite, the planner, policy of any kind.

use crate::model::{Entry, Kind};
use std::collections::{BTreeMap, HashSet};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// What a path is, without following symbolic links.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    Entry(Entry),
    /// A symbolic link (never followed) or junction.
    Symlink,
    /// A device, socket, FIFO...
    Special,
}

/// One item of a directory listing.
#[derive(Debug)]
pub struct DirItem {
    /// The name, or the raw name when it is not valid Unicode.
    pub name: Result<String, String>,
    pub node: io::Result<Node>,
}

/// A file being written; `finish` sets its mtime and, when `mode` is not 0, its
/// permission bits (Unix) or attribute bits (Windows: read-only), then closes it (data may
/// still be in the OS cache: durability comes from `Fs::make_durable`).
pub trait FileWriter: Write + Send {
    fn finish(self: Box<Self>, mtime_ns: i64, mode: u32) -> io::Result<()>;
}

pub trait Fs: Send + Sync {
    /// `Ok(None)` when nothing is there.
    fn stat(&self, path: &Path) -> io::Result<Option<Node>>;
    fn read_dir(&self, path: &Path) -> io::Result<Vec<DirItem>>;
    fn open_read(&self, path: &Path) -> io::Result<Box<dyn Read + Send>>;
    /// Create a new file; fails if one exists.
    fn create_new(&self, path: &Path) -> io::Result<Box<dyn FileWriter>>;
    /// Rename, replacing a file at `to` atomically where the OS allows.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Make `to` a second name of `from` (used to keep an overwritten version in the trash
    /// without a window where the target is missing).
    fn hard_link(&self, from: &Path, to: &Path) -> io::Result<()>;
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Remove an empty directory.
    fn remove_dir(&self, path: &Path) -> io::Result<()>;
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    fn set_mtime(&self, path: &Path, mtime_ns: i64) -> io::Result<()>;
    fn set_mode(&self, path: &Path, mode: u32) -> io::Result<()>;
    /// Flush written files and renames in `dirs` to stable storage (may be one call for a
    /// whole batch).
    fn make_durable(&self, files: &[PathBuf], dirs: &[PathBuf]) -> io::Result<()>;
    /// Whether names under `root` are compared without regard to case.
    fn case_insensitive(&self, root: &Path) -> bool;
    /// Whether this is the operating system's file systems (then one `make_durable` call
    /// may take paths of both roots).
    fn is_os(&self) -> bool {
        false
    }
}

/// Hash a file's content through `fs`.
pub fn hash_file(fs: &dyn Fs, path: &Path) -> io::Result<(crate::model::Hash, u64)> {
    let mut r = fs.open_read(path)?;
    let mut h = blake3::Hasher::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut n = 0u64;
    loop {
        let k = r.read(&mut buf)?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    Ok((*h.finalize().as_bytes(), n))
}

/// Remove a folder and everything in it (symbolic links are removed, never followed).
pub fn remove_tree(fs: &dyn Fs, path: &Path) -> io::Result<()> {
    for item in fs.read_dir(path)? {
        let name = item
            .name
            .map_err(|raw| io::Error::other(format!("{}: name {raw:?} is not valid Unicode", path.display())))?;
        let child = path.join(name);
        match item.node? {
            Node::Entry(e) if e.kind == Kind::Dir => remove_tree(fs, &child)?,
            _ => fs.remove_file(&child)?,
        }
    }
    fs.remove_dir(path)
}

// ------------------------------------------------------------------------------ real

/// The operating system's file systems.
#[derive(Default, Clone, Copy)]
pub struct RealFs;

fn node_of(md: &std::fs::Metadata) -> Node {
    let ft = md.file_type();
    if ft.is_symlink() {
        return Node::Symlink;
    }
    let kind = if ft.is_dir() {
        Kind::Dir
    } else if ft.is_file() {
        Kind::File
    } else {
        return Node::Special;
    };
    let mtime = md
        .modified()
        .ok()
        .and_then(|t| {
            t.duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as i64)
                .or_else(|e| Ok::<i64, ()>(-(e.duration().as_nanos() as i64)))
                .ok()
        })
        .unwrap_or(0);
    let (file_id, ctime, mode) = os_ids(md);
    Node::Entry(Entry {
        kind,
        size: if kind == Kind::File { md.len() } else { 0 },
        mtime,
        mode,
        file_id,
        ctime,
        hash: None,
    })
}

#[cfg(unix)]
fn os_ids(md: &std::fs::Metadata) -> (u64, i64, u32) {
    use std::os::unix::fs::MetadataExt;
    let id = md.ino() ^ md.dev().rotate_left(40);
    let ctime = md.ctime() * 1_000_000_000 + md.ctime_nsec();
    (id.max(1), ctime, md.mode() & 0o7777)
}

#[cfg(windows)]
fn os_ids(md: &std::fs::Metadata) -> (u64, i64, u32) {
    // Stable std offers no file index or change time on Windows: fall back to
    // size+mtime+hash detection; keep the attribute bits (read-only, hidden...).
    use std::os::windows::fs::MetadataExt;
    (0, 0, md.file_attributes() & 0x7)
}

#[cfg(not(any(unix, windows)))]
fn os_ids(_md: &std::fs::Metadata) -> (u64, i64, u32) {
    (0, 0, 0)
}

fn system_time(ns: i64) -> std::time::SystemTime {
    if ns >= 0 {
        std::time::UNIX_EPOCH + std::time::Duration::from_nanos(ns as u64)
    } else {
        std::time::UNIX_EPOCH - std::time::Duration::from_nanos(ns.unsigned_abs())
    }
}

/// The permissions `mode` (an [`Entry::mode`]) stands for: the permission bits on Unix, the
/// read-only attribute on Windows.
fn permissions(md: &std::fs::Metadata, mode: u32) -> std::fs::Permissions {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = md;
        std::fs::Permissions::from_mode(mode & 0o7777)
    }
    #[cfg(not(unix))]
    {
        let mut p = md.permissions();
        p.set_readonly(mode & 0x1 != 0);
        p
    }
}

struct RealWriter(std::io::BufWriter<std::fs::File>);

impl Write for RealWriter {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0.write(b)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl FileWriter for RealWriter {
    fn finish(self: Box<Self>, mtime_ns: i64, mode: u32) -> io::Result<()> {
        let f = self.0.into_inner().map_err(|e| e.into_error())?;
        if mode != 0 {
            // Through the open handle (fchmod): no second path lookup, no umask.
            f.set_permissions(permissions(&f.metadata()?, mode))?;
        }
        f.set_modified(system_time(mtime_ns))
    }
}

impl Fs for RealFs {
    fn stat(&self, path: &Path) -> io::Result<Option<Node>> {
        match std::fs::symlink_metadata(path) {
            Ok(md) => Ok(Some(node_of(&md))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<DirItem>> {
        let mut out = Vec::new();
        for de in std::fs::read_dir(path)? {
            let de = de?;
            let name = de.file_name();
            let name = name.into_string().map_err(|raw| raw.to_string_lossy().into_owned());
            // DirEntry::metadata does not follow symlinks (lstat/fstatat).
            let node = de.metadata().map(|md| node_of(&md));
            out.push(DirItem { name, node });
        }
        Ok(out)
    }

    fn open_read(&self, path: &Path) -> io::Result<Box<dyn Read + Send>> {
        Ok(Box::new(std::fs::File::open(path)?))
    }

    fn create_new(&self, path: &Path) -> io::Result<Box<dyn FileWriter>> {
        let f = std::fs::OpenOptions::new().write(true).create_new(true).open(path)?;
        Ok(Box::new(RealWriter(std::io::BufWriter::with_capacity(256 * 1024, f))))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn hard_link(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::hard_link(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_dir(path)
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        std::fs::create_dir_all(path)
    }

    fn set_mtime(&self, path: &Path, mtime_ns: i64) -> io::Result<()> {
        let f = std::fs::File::options()
            .write(true)
            .open(path)
            .or_else(|_| std::fs::File::open(path))?;
        f.set_modified(system_time(mtime_ns))
    }

    fn set_mode(&self, path: &Path, mode: u32) -> io::Result<()> {
        std::fs::set_permissions(path, permissions(&std::fs::symlink_metadata(path)?, mode))
    }

    fn make_durable(&self, files: &[PathBuf], dirs: &[PathBuf]) -> io::Result<()> {
        if files.is_empty() && dirs.is_empty() {
            return Ok(());
        }
        // A few files (a watcher-triggered run, one large copy): fsync just them. syncfs
        // would also wait for every other dirty page of the file system, e.g. a large
        // copy in flight in the other lane.
        #[cfg(target_os = "linux")]
        if files.len() + dirs.len() <= 32 {
            // A folder removed since (its removal is in its parent's entry, also listed) or
            // a temporary file gone (its install fails and says so) needs no flush.
            let sync = |p: &PathBuf, data_only: bool| -> io::Result<()> {
                match std::fs::File::open(p) {
                    Ok(f) if data_only => f.sync_data(),
                    Ok(f) => f.sync_all(),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                    Err(e) => Err(e),
                }
            };
            // A copy that carries a mode without read permission (0200, 0000) cannot be
            // opened by a user who is not root: one syncfs below flushes it instead.
            let mut unreadable = false;
            for f in files {
                match sync(f, true) {
                    Err(e) if e.kind() == io::ErrorKind::PermissionDenied => unreadable = true,
                    r => r?,
                }
            }
            for d in dirs {
                sync(d, false)?;
            }
            if !unreadable {
                return Ok(());
            }
        }
        #[cfg(target_os = "linux")]
        {
            // One syncfs per file system flushes a whole batch with one journal commit
            // instead of one per file. Batches usually live on one file system; group by
            // device to be exact.
            use std::os::unix::fs::MetadataExt;
            use std::os::unix::io::AsRawFd;
            let mut seen = HashSet::new();
            let parents = files.iter().filter_map(|f| f.parent());
            for p in dirs.iter().map(PathBuf::as_path).chain(parents) {
                let Ok(md) = std::fs::metadata(p) else {
                    continue;
                };
                if seen.insert(md.dev()) {
                    let d = std::fs::File::open(p)?;
                    // SAFETY: plain syscall on a valid open descriptor.
                    if unsafe { libc::syncfs(d.as_raw_fd()) } != 0 {
                        return Err(io::Error::last_os_error());
                    }
                }
            }
            Ok(())
        }
        #[cfg(not(target_os = "linux"))]
        {
            for f in files {
                std::fs::OpenOptions::new().write(true).open(f)?.sync_all()?;
            }
            #[cfg(unix)]
            for d in dirs {
                std::fs::File::open(d)?.sync_all()?;
            }
            Ok(())
        }
    }

    fn is_os(&self) -> bool {
        true
    }

    fn case_insensitive(&self, root: &Path) -> bool {
        // Probe: does the root resolve under another case?
        if let (Some(name), Some(parent)) = (root.file_name(), root.parent()) {
            let s = name.to_string_lossy();
            let flipped: String = s
                .chars()
                .map(|c| {
                    if c.is_lowercase() {
                        c.to_ascii_uppercase()
                    } else {
                        c.to_ascii_lowercase()
                    }
                })
                .collect();
            if flipped != s {
                return std::fs::symlink_metadata(parent.join(&flipped))
                    .ok()
                    .zip(std::fs::symlink_metadata(root).ok())
                    .map(|(a, b)| same_file(&a, &b))
                    .unwrap_or(false);
            }
        }
        cfg!(any(windows, target_os = "macos"))
    }
}

#[cfg(unix)]
fn same_file(a: &std::fs::Metadata, b: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    a.ino() == b.ino() && a.dev() == b.dev()
}
#[cfg(not(unix))]
fn same_file(_a: &std::fs::Metadata, _b: &std::fs::Metadata) -> bool {
    true
}

// ------------------------------------------------------------------------------ fake

/// Which call an injected failure applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FaultOp {
    Stat,
    ReadDir,
    Read,
    Create,
    Rename,
    Remove,
    SetMeta,
}

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
    faults: Mutex<Vec<(FaultOp, String)>>,
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
            faults: Mutex::new(Vec::new()),
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

    /// Fail every `op` on a path containing `needle`.
    pub fn inject_fault(&self, op: FaultOp, needle: &str) {
        self.faults.lock().unwrap().push((op, needle.to_string()));
    }

    pub fn clear_faults(&self) {
        self.faults.lock().unwrap().clear();
    }

    fn check(&self, op: FaultOp, p: &str) -> io::Result<()> {
        if self.faults.lock().unwrap().iter().any(|(o, n)| *o == op && p.contains(n.as_str())) {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("{p}: injected {op:?} failure"),
            ));
        }
        Ok(())
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
            ctime: if ids { n.ctime } else { 0 },
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

impl Fs for Arc<MemFs> {
    fn stat(&self, path: &Path) -> io::Result<Option<Node>> {
        (**self).stat(path)
    }
    fn read_dir(&self, path: &Path) -> io::Result<Vec<DirItem>> {
        (**self).read_dir(path)
    }
    fn open_read(&self, path: &Path) -> io::Result<Box<dyn Read + Send>> {
        (**self).open_read(path)
    }
    fn create_new(&self, path: &Path) -> io::Result<Box<dyn FileWriter>> {
        let p = norm(path);
        self.check(FaultOp::Create, &p)?;
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
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        (**self).rename(from, to)
    }
    fn hard_link(&self, from: &Path, to: &Path) -> io::Result<()> {
        (**self).hard_link(from, to)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        (**self).remove_file(path)
    }
    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        (**self).remove_dir(path)
    }
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        (**self).create_dir_all(path)
    }
    fn set_mtime(&self, path: &Path, mtime_ns: i64) -> io::Result<()> {
        (**self).set_mtime(path, mtime_ns)
    }
    fn set_mode(&self, path: &Path, mode: u32) -> io::Result<()> {
        (**self).set_mode(path, mode)
    }
    fn make_durable(&self, files: &[PathBuf], dirs: &[PathBuf]) -> io::Result<()> {
        (**self).make_durable(files, dirs)
    }
    fn case_insensitive(&self, root: &Path) -> bool {
        (**self).case_insensitive(root)
    }
}

impl MemFs {
    fn stat(&self, path: &Path) -> io::Result<Option<Node>> {
        let p = norm(path);
        self.check(FaultOp::Stat, &p)?;
        let nodes = self.nodes.lock().unwrap();
        Ok(nodes.get(&self.key(&p)).map(|n| Node::Entry(self.entry(n))))
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<DirItem>> {
        let p = norm(path);
        self.check(FaultOp::ReadDir, &p)?;
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
                node: self.check(FaultOp::Stat, &n.path).map(|_| Node::Entry(self.entry(n))),
            });
        }
        Ok(out)
    }

    fn open_read(&self, path: &Path) -> io::Result<Box<dyn Read + Send>> {
        let p = norm(path);
        self.check(FaultOp::Read, &p)?;
        let nodes = self.nodes.lock().unwrap();
        match nodes.get(&self.key(&p)) {
            Some(n) if n.kind == Kind::File => Ok(Box::new(io::Cursor::new(n.data.to_vec()))),
            Some(_) => Err(io::Error::other(format!("{p}: is a folder"))),
            None => Err(not_found(&p)),
        }
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let (f, t) = (norm(from), norm(to));
        self.check(FaultOp::Rename, &f)?;
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

    fn hard_link(&self, from: &Path, to: &Path) -> io::Result<()> {
        let (f, t) = (norm(from), norm(to));
        self.check(FaultOp::Create, &t)?;
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

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let p = norm(path);
        self.check(FaultOp::Remove, &p)?;
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

    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        let p = norm(path);
        self.check(FaultOp::Remove, &p)?;
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

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let p = norm(path);
        self.check(FaultOp::Create, &p)?;
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

    fn set_mtime(&self, path: &Path, mtime_ns: i64) -> io::Result<()> {
        let p = norm(path);
        self.check(FaultOp::SetMeta, &p)?;
        let ctime = self.tick() as i64;
        let mut nodes = self.nodes.lock().unwrap();
        let n = nodes.get_mut(&self.key(&p)).ok_or_else(|| not_found(&p))?;
        n.mtime = self.coarse(mtime_ns);
        n.ctime = ctime;
        Ok(())
    }

    fn set_mode(&self, path: &Path, mode: u32) -> io::Result<()> {
        let p = norm(path);
        self.check(FaultOp::SetMeta, &p)?;
        let ctime = self.tick() as i64;
        let mut nodes = self.nodes.lock().unwrap();
        let n = nodes.get_mut(&self.key(&p)).ok_or_else(|| not_found(&p))?;
        n.mode = mode;
        n.ctime = ctime;
        Ok(())
    }

    fn make_durable(&self, _files: &[PathBuf], _dirs: &[PathBuf]) -> io::Result<()> {
        Ok(())
    }

    fn case_insensitive(&self, _root: &Path) -> bool {
        self.opts.case_insensitive
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
        fs.rename(Path::new("/r/Report.txt"), Path::new("/r/report.txt")).unwrap();
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
