//! The local side: a folder on this machine, through the operating system's file systems.
//! OS-specific bits (file ids, change times, batched flushes, permissions) live here
//! behind `cfg`, each with a portable fallback.

use super::{Caps, ChangeSource, DirItem, FileWriter, KeepVersion, Node, Replica, VersionToken};
use crate::model::{Entry, Kind, RelPath};
use std::collections::HashSet;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// A folder on this machine, reached through the operating system's file systems.
pub struct LocalSide {
    root: PathBuf,
    /// Probed once the root is there (`None` until then).
    case_insensitive: std::sync::OnceLock<bool>,
}

impl LocalSide {
    pub fn new(root: impl Into<PathBuf>) -> LocalSide {
        LocalSide {
            root: root.into(),
            case_insensitive: std::sync::OnceLock::new(),
        }
    }

    /// The native path of `p`, built component by component (a `/` is never handed to the
    /// OS inside a Windows verbatim path).
    fn path(&self, p: &RelPath) -> PathBuf {
        let mut out = self.root.clone();
        for c in p.as_str().split('/').filter(|c| !c.is_empty()) {
            out.push(c);
        }
        out
    }

    fn probe_case(&self) -> bool {
        if let Some(v) = self.case_insensitive.get() {
            return *v;
        }
        match probe_case_insensitive(&self.root) {
            Some(v) => *self.case_insensitive.get_or_init(|| v),
            // The root is not there (yet): the platform's default, not remembered.
            None => cfg!(any(windows, target_os = "macos")),
        }
    }
}

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
    let (file_id, version, mode) = os_ids(md);
    Node::Entry(Entry {
        kind,
        size: if kind == Kind::File { md.len() } else { 0 },
        mtime,
        mode,
        file_id,
        version,
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

impl Replica for LocalSide {
    fn stat(&self, p: &RelPath) -> io::Result<Option<Node>> {
        let path = &self.path(p);
        match std::fs::symlink_metadata(path) {
            Ok(md) => Ok(Some(node_of(&md))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn read_dir(&self, p: &RelPath) -> io::Result<Vec<DirItem>> {
        let path = &self.path(p);
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

    fn open_read(&self, p: &RelPath) -> io::Result<Box<dyn Read + Send>> {
        let path = &self.path(p);
        let mut o = std::fs::OpenOptions::new();
        o.read(true);
        // A symbolic link put where a file was is never followed (it could lead anywhere).
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::custom_flags(&mut o, libc::O_NOFOLLOW);
        Ok(Box::new(o.open(path)?))
    }

    fn create_new(&self, p: &RelPath) -> io::Result<Box<dyn FileWriter>> {
        let path = &self.path(p);
        let f = std::fs::OpenOptions::new().write(true).create_new(true).open(path)?;
        Ok(Box::new(RealWriter(std::io::BufWriter::with_capacity(256 * 1024, f))))
    }

    fn rename(&self, from: &RelPath, to: &RelPath) -> io::Result<()> {
        let (from, to) = (&self.path(from), &self.path(to));
        std::fs::rename(from, to)
    }

    fn keep_copy(&self, from: &RelPath, to: &RelPath) -> io::Result<()> {
        let (from, to) = (&self.path(from), &self.path(to));
        std::fs::hard_link(from, to)
    }

    fn remove_file(&self, p: &RelPath) -> io::Result<()> {
        let path = &self.path(p);
        std::fs::remove_file(path)
    }

    fn remove_dir(&self, p: &RelPath) -> io::Result<()> {
        let path = &self.path(p);
        std::fs::remove_dir(path)
    }

    fn create_dir_all(&self, p: &RelPath) -> io::Result<()> {
        let path = &self.path(p);
        std::fs::create_dir_all(path)
    }

    fn set_mtime(&self, p: &RelPath, mtime_ns: i64) -> io::Result<()> {
        let path = &self.path(p);
        let f = std::fs::File::options()
            .write(true)
            .open(path)
            .or_else(|_| std::fs::File::open(path))?;
        f.set_modified(system_time(mtime_ns))
    }

    fn set_mode(&self, p: &RelPath, mode: u32) -> io::Result<()> {
        let path = &self.path(p);
        std::fs::set_permissions(path, permissions(&std::fs::symlink_metadata(path)?, mode))
    }

    fn make_durable(&self, files: &[RelPath], dirs: &[RelPath]) -> io::Result<()> {
        let files: Vec<PathBuf> = files.iter().map(|p| self.path(p)).collect();
        let dirs: Vec<PathBuf> = dirs.iter().map(|p| self.path(p)).collect();
        let (files, dirs) = (&files[..], &dirs[..]);
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

    fn caps(&self) -> Caps {
        Caps {
            case_insensitive: self.probe_case(),
            mtime_resolution_ns: 1,
            set_mtime: true,
            modes: cfg!(unix),
            ids: cfg!(unix),
            version: if cfg!(unix) { VersionToken::ChangeTime } else { VersionToken::None },
            // BLAKE3 comes from the state's hash cache, not from the side.
            free_hash: None,
            atomic_replace: true,
            keep_version: KeepVersion::HardLink,
            needs_flush: true,
            cheap_listing: true,
            changes: ChangeSource::OsEvents,
        }
    }

    fn describe(&self, p: &RelPath) -> String {
        self.path(p).display().to_string()
    }

    fn local_root(&self) -> Option<&Path> {
        Some(&self.root)
    }
}

/// Does the root resolve under another case? `None` when the root is not there.
fn probe_case_insensitive(root: &Path) -> Option<bool> {
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
            let here = std::fs::symlink_metadata(root).ok()?;
            return Some(std::fs::symlink_metadata(parent.join(&flipped)).is_ok_and(|a| same_file(&a, &here)));
        }
    }
    std::fs::symlink_metadata(root).ok()?;
    Some(cfg!(any(windows, target_os = "macos")))
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
