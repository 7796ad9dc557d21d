//! The local side: a folder on this machine, through the operating system's file systems.
//! OS-specific bits (file ids, change times, batched flushes, permissions) live here
//! behind `cfg`, each with a portable fallback.
//!
//! A folder can be a cloud drive or a network share mounted as a folder (pCloud Drive,
//! `rclone mount`, OneDrive's FUSE clients, NFS, SMB). Such a root is detected ([`Mount`]:
//! the file system type from `statfs` and `/proc/self/mountinfo`) and described honestly in
//! [`Caps`]: the OS watcher sees only writes made through this machine (changes made on the
//! server send no events, so the service also polls), inode numbers and change times are not
//! stable across remounts (no ids, no version token: they would make every file look changed
//! and be hashed, i.e. downloaded), reading is a download (`cheap_listing` false), and how
//! finely mtimes are kept, and whether they can be set at all, is probed by writing a
//! temporary file once.

use super::{Caps, ChangeSource, DirItem, FileWriter, KeepVersion, Node, Replica, VersionToken};
use crate::model::{Entry, Kind, RelPath};
#[cfg(target_os = "linux")]
use std::collections::HashSet;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// A folder on this machine, reached through the operating system's file systems.
pub struct LocalSide {
    root: PathBuf,
    /// Probed once the root is there (`None` until then).
    case_insensitive: std::sync::OnceLock<bool>,
    /// What the root is mounted as, probed once the root is there.
    mount: std::sync::OnceLock<Option<Mount>>,
    /// What its file system keeps, probed once the root is there.
    volume: std::sync::OnceLock<Volume>,
}

/// What the root's file system keeps.
#[derive(Clone, Copy, Debug)]
struct Volume {
    /// Stable file ids and change times (Unix file systems, NTFS, ReFS; not FAT or exFAT).
    ids: bool,
    /// Hard links (the trash keeps a replaced version by one).
    hard_links: bool,
}

/// A root on a file system whose content lives elsewhere: a FUSE file system (most cloud
/// drives mounted as folders) or a network file system.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    /// The file system type as the mount table names it (`fuse.rclone`, `nfs4`, `cifs`),
    /// or as `statfs` does when the table cannot be read.
    pub fstype: String,
    pub kind: MountKind,
    /// Probed: the finest mtime step kept (ns), and whether an mtime can be set at all.
    pub mtime_resolution_ns: i64,
    pub set_mtime: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MountKind {
    /// FUSE: a cloud drive client, rclone mount, sshfs...
    Fuse,
    /// NFS, SMB/CIFS, AFS, 9P, Ceph...
    Network,
}

impl LocalSide {
    pub fn new(root: impl Into<PathBuf>) -> LocalSide {
        LocalSide {
            root: root.into(),
            case_insensitive: std::sync::OnceLock::new(),
            mount: std::sync::OnceLock::new(),
            volume: std::sync::OnceLock::new(),
        }
    }

    fn volume(&self) -> Volume {
        if let Some(v) = self.volume.get() {
            return *v;
        }
        #[cfg(windows)]
        if let Some(v) = super::win::volume(&self.root) {
            return *self.volume.get_or_init(|| Volume {
                ids: v.ids(),
                hard_links: v.hard_links,
            });
        }
        // Unix file systems keep both (a FAT stick's "inodes" are stable while mounted).
        Volume {
            ids: cfg!(unix),
            hard_links: cfg!(unix),
        }
    }

    /// An entry as this root's file system can vouch for it: no id or change time where
    /// they are not stable.
    fn vouched(&self, node: Node) -> Node {
        match node {
            Node::Entry(e) if !self.volume().ids => Node::Entry(Entry {
                file_id: 0,
                version: 0,
                ..e
            }),
            n => n,
        }
    }

    /// What the root is mounted as (`None`: a local disk, or the root is not there yet).
    /// Probed once, when the root is first there.
    pub fn mount(&self) -> Option<&Mount> {
        if let Some(m) = self.mount.get() {
            return m.as_ref();
        }
        std::fs::symlink_metadata(&self.root).ok()?;
        self.mount.get_or_init(|| detect_mount(&self.root)).as_ref()
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
    // The id and change time come from the folder listing or the handle
    // (`super::win`); here only the carried attributes.
    use std::os::windows::fs::MetadataExt;
    (0, 0, super::win::mode_of(md.file_attributes()))
}

/// A file open in another program that Windows will not share: "busy", said plainly (the
/// executor defers it and the next run tries again).
fn busy(e: io::Error, path: &Path) -> io::Error {
    #[cfg(windows)]
    if super::win::in_use(&e) {
        return io::Error::new(
            io::ErrorKind::ResourceBusy,
            format!(
                "{}: in use by another program (it does not share the file); tried again later",
                path.display()
            ),
        );
    }
    let _ = path;
    e
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
/// read-only attribute elsewhere (Windows sets its attributes through `super::win`).
#[cfg(not(windows))]
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

/// Give an open file `mode`: its permission bits on Unix, its carried attributes on Windows.
fn set_mode_of(f: &std::fs::File, mode: u32) -> io::Result<()> {
    #[cfg(windows)]
    {
        super::win::set_attributes_handle(f, mode)
    }
    #[cfg(not(windows))]
    {
        // Through the open handle (fchmod): no second path lookup, no umask.
        f.set_permissions(permissions(&f.metadata()?, mode))
    }
}

struct RealWriter(std::io::BufWriter<std::fs::File>, bool);

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
            set_mode_of(&f, mode)?;
        }
        // A mount that cannot keep an mtime keeps its own (`Caps::set_mtime`).
        if !self.1 {
            return Ok(());
        }
        f.set_modified(system_time(mtime_ns))
    }
}

impl Replica for LocalSide {
    fn stat(&self, p: &RelPath) -> io::Result<Option<Node>> {
        let path = &self.path(p);
        #[allow(unused_mut)]
        let mut node = match std::fs::symlink_metadata(path) {
            Ok(md) => node_of(&md),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        #[cfg(windows)]
        if let Node::Entry(e) = &mut node {
            match super::win::ids(path) {
                Ok((id, changed, attributes)) => {
                    (e.file_id, e.version, e.mode) = (id, changed, super::win::mode_of(attributes));
                }
                Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(err) => return Err(err),
            }
        }
        Ok(Some(self.vouched(node)))
    }

    fn read_dir(&self, p: &RelPath) -> io::Result<Vec<DirItem>> {
        let path = &self.path(p);
        #[cfg(windows)]
        {
            // One enumeration with ids and change times (std's listing has neither).
            return Ok(super::win::read_dir(path)?
                .into_iter()
                .map(|(name, node)| DirItem {
                    name,
                    node: Ok(self.vouched(node)),
                })
                .collect());
        }
        #[allow(unreachable_code)]
        let mut out = Vec::new();
        for de in std::fs::read_dir(path)? {
            let de = de?;
            let name = de.file_name();
            let name = name.into_string().map_err(|raw| raw.to_string_lossy().into_owned());
            // DirEntry::metadata does not follow symlinks (lstat/fstatat).
            let node = de.metadata().map(|md| self.vouched(node_of(&md)));
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
        // FILE_FLAG_OPEN_REPARSE_POINT: the same on Windows.
        #[cfg(windows)]
        std::os::windows::fs::OpenOptionsExt::custom_flags(&mut o, 0x0020_0000);
        Ok(Box::new(o.open(path).map_err(|e| busy(e, path))?))
    }

    fn create_new(&self, p: &RelPath) -> io::Result<Box<dyn FileWriter>> {
        let path = &self.path(p);
        let f = std::fs::OpenOptions::new().write(true).create_new(true).open(path)?;
        let set_mtime = self.mount().is_none_or(|m| m.set_mtime);
        Ok(Box::new(RealWriter(std::io::BufWriter::with_capacity(256 * 1024, f), set_mtime)))
    }

    fn rename(&self, from: &RelPath, to: &RelPath) -> io::Result<()> {
        let (from, to) = (&self.path(from), &self.path(to));
        std::fs::rename(from, to).map_err(|e| busy(e, from))
    }

    fn keep_copy(&self, from: &RelPath, to: &RelPath) -> io::Result<()> {
        let (from, to) = (&self.path(from), &self.path(to));
        std::fs::hard_link(from, to)
    }

    fn remove_file(&self, p: &RelPath) -> io::Result<()> {
        let path = &self.path(p);
        std::fs::remove_file(path).map_err(|e| busy(e, path))
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
        if self.mount().is_some_and(|m| !m.set_mtime) {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("{}: this mount keeps its own modification times", path.display()),
            ));
        }
        let f = std::fs::File::options()
            .write(true)
            .open(path)
            .or_else(|_| std::fs::File::open(path))?;
        f.set_modified(system_time(mtime_ns))
    }

    fn set_mode(&self, p: &RelPath, mode: u32) -> io::Result<()> {
        let path = &self.path(p);
        #[cfg(windows)]
        {
            use std::os::windows::fs::MetadataExt;
            super::win::set_attributes(path, std::fs::symlink_metadata(path)?.file_attributes(), mode)
        }
        #[cfg(not(windows))]
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
        let vol = self.volume();
        let local = Caps {
            case_insensitive: self.probe_case(),
            mtime_resolution_ns: 1,
            set_mtime: true,
            modes: true,
            ids: vol.ids,
            version: if vol.ids { VersionToken::ChangeTime } else { VersionToken::None },
            weak_version: false,
            // BLAKE3 comes from the state's hash cache, not from the side.
            free_hash: None,
            atomic_replace: true,
            // FAT and exFAT (and some network shares) have no hard links: a copy instead.
            keep_version: if vol.hard_links { KeepVersion::HardLink } else { KeepVersion::Copy },
            needs_flush: true,
            whole_uploads: false,
            cheap_listing: true,
            changes: ChangeSource::OsEvents,
        };
        match self.mount() {
            None => local,
            // Inode numbers and change times of a FUSE or network mount are the client's
            // (renumbered at every mount, moved by a metadata refresh): as ids or version
            // tokens they would make files look changed and be read, which is a download.
            Some(m) => Caps {
                mtime_resolution_ns: m.mtime_resolution_ns,
                set_mtime: m.set_mtime,
                ids: false,
                version: VersionToken::None,
                weak_version: false,
                cheap_listing: false,
                changes: ChangeSource::LocalEventsOnly,
                ..local
            },
        }
    }

    fn note(&self) -> Option<String> {
        self.mount().map(|m| match m.kind {
            MountKind::Fuse => format!("cloud drive or FUSE mount ({}): server-side changes send no events", m.fstype),
            MountKind::Network => format!("network share ({}): changes made elsewhere send no events", m.fstype),
        })
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

/// File system magic numbers (`statfs` f_type, linux/magic.h) of FUSE and network file systems.
#[cfg(target_os = "linux")]
const REMOTE_MAGIC: [(i64, &str, MountKind); 10] = [
    (0x6573_5546, "fuse", MountKind::Fuse),
    (0x6969, "nfs", MountKind::Network),
    (0x517B, "smb", MountKind::Network),
    (0xFF53_4D42, "cifs", MountKind::Network),
    (0xFE53_4D42, "smb2", MountKind::Network),
    (0x7375_7245, "coda", MountKind::Network),
    (0x5346_414F, "afs", MountKind::Network),
    (0x6B41_4653, "afs", MountKind::Network),
    (0x0102_1997, "9p", MountKind::Network),
    (0x00C3_6400, "ceph", MountKind::Network),
];

/// Is `root` on a FUSE or network file system? Then probe its mtimes.
#[cfg(target_os = "linux")]
fn detect_mount(root: &Path) -> Option<Mount> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(root.as_os_str().as_bytes()).ok()?;
    // SAFETY: statfs fills the zeroed struct we own; the path is a valid C string.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    let magic = st.f_type as i64 & 0xFFFF_FFFF;
    let &(_, magic_name, kind) = REMOTE_MAGIC.iter().find(|(m, ..)| *m == magic)?;
    let table = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let real = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
    let fstype = mount_fstype(&table, &real).unwrap_or_else(|| magic_name.to_string());
    let (mtime_resolution_ns, set_mtime) = probe_mtime(root);
    Some(Mount {
        fstype,
        kind,
        mtime_resolution_ns,
        set_mtime,
    })
}

/// Windows: a network drive (a mapped share, a UNC path) is a network mount.
#[cfg(windows)]
fn detect_mount(root: &Path) -> Option<Mount> {
    let v = super::win::volume(root).filter(|v| v.remote)?;
    let (mtime_resolution_ns, set_mtime) = probe_mtime(root);
    Some(Mount {
        fstype: format!("network drive, {}", v.fs),
        kind: MountKind::Network,
        mtime_resolution_ns,
        set_mtime,
    })
}

/// Other systems: no detection yet (macOS: statfs f_fstypename).
#[cfg(not(any(target_os = "linux", windows)))]
fn detect_mount(_root: &Path) -> Option<Mount> {
    None
}

/// The file system type of the mount holding `path` (the longest mount point above it) in a
/// `/proc/self/mountinfo` text: `36 35 98:0 / /mnt/x rw,noatime - fuse.rclone remote: rw`.
pub fn mount_fstype(mountinfo: &str, path: &Path) -> Option<String> {
    let mut best: Option<(usize, String)> = None;
    for line in mountinfo.lines() {
        let mut fields = line.split(' ');
        let Some(point) = fields.nth(4) else { continue };
        let Some(fstype) = line.split(" - ").nth(1).and_then(|t| t.split(' ').next()) else {
            continue;
        };
        let point = unescape_mount_point(point);
        let under = path.starts_with(&point);
        if under && best.as_ref().is_none_or(|(len, _)| point.as_os_str().len() >= *len) {
            best = Some((point.as_os_str().len(), fstype.to_string()));
        }
    }
    best.map(|(_, t)| t)
}

/// Mount points escape space, tab, newline and backslash as `\040`-style octal.
fn unescape_mount_point(s: &str) -> PathBuf {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)) {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStringExt;
        PathBuf::from(std::ffi::OsString::from_vec(out))
    }
    #[cfg(not(unix))]
    PathBuf::from(String::from_utf8_lossy(&out).into_owned())
}

/// The mtime step a mount keeps and whether it can be set: write a temporary file (a
/// Tandem temp name, never synced), give it an mtime with nanoseconds and read it back.
/// Unwritable roots count as whole seconds, not settable.
#[cfg_attr(not(any(target_os = "linux", windows)), allow(dead_code))]
fn probe_mtime(root: &Path) -> (i64, bool) {
    const PROBE_NS: i64 = 1_600_000_000_123_456_789;
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = format!(
        "{}probe-{}-{n}{}",
        crate::model::names::TEMP_PREFIX,
        std::process::id(),
        crate::model::names::TEMP_SUFFIX
    );
    let path = root.join(name);
    let got = (|| -> io::Result<i64> {
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).open(&path)?;
        f.write_all(b"t")?;
        let r = f.set_modified(system_time(PROBE_NS));
        drop(f);
        r?;
        match node_of(&std::fs::symlink_metadata(&path)?) {
            Node::Entry(e) => Ok(e.mtime),
            _ => Err(io::Error::other("the probe file is not a file")),
        }
    })();
    let _ = std::fs::remove_file(&path);
    match got {
        Ok(t) => mtime_step(PROBE_NS, t),
        Err(e) => {
            tracing::debug!("{}: mtime probe failed: {e}", root.display());
            (1_000_000_000, false)
        }
    }
}

/// What became of an mtime `set` when read back as `got`: the step it was truncated to, or
/// "not settable" when it is not `set` at any step up to FAT's two seconds.
pub fn mtime_step(set: i64, got: i64) -> (i64, bool) {
    for step in [1, 1_000, 1_000_000, 10_000_000, 1_000_000_000, 2_000_000_000] {
        let floor = set - set.rem_euclid(step);
        // Rounded up (FAT rounds to the next two seconds) counts too.
        if got == floor || (step > 1 && got == floor + step) {
            return (step, true);
        }
    }
    (1_000_000_000, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_fstype_takes_the_longest_mount_point_above_the_path() {
        let table = "22 1 0:21 / / rw - ext4 /dev/sda1 rw\n\
                     40 22 0:40 / /mnt rw - tmpfs tmpfs rw\n\
                     41 40 0:41 / /mnt/pcloud\\040drive rw,nosuid - fuse.pcloud pCloud rw\n\
                     42 40 0:42 / /mnt/pc rw - nfs4 srv:/x rw\n";
        let check = |p: &str, want: &str| assert_eq!(mount_fstype(table, Path::new(p)).as_deref(), Some(want), "{p}");
        check("/home/u", "ext4");
        check("/mnt/pcloud drive/Docs", "fuse.pcloud");
        check("/mnt/pcloud drive", "fuse.pcloud");
        // A prefix of a name is not a parent folder.
        check("/mnt/pcx", "tmpfs");
        check("/mnt/pc/a", "nfs4");
    }

    #[test]
    fn regression_a_nested_path_under_a_verbatim_root_kept_its_forward_slashes() {
        // Windows does not translate `/` inside a `\\?\` path (wine does): a relative path
        // joined whole onto a canonicalized root named no file on real Windows.
        let root = if cfg!(windows) { r"\\?\C:\Share" } else { "/srv/share" };
        let got = LocalSide::new(root).path(&RelPath::new("a/b/c.txt").unwrap());
        let sep = std::path::MAIN_SEPARATOR;
        assert_eq!(got.as_os_str().to_string_lossy(), format!("{root}{sep}a{sep}b{sep}c.txt"));
    }

    #[test]
    fn mtime_step_names_the_truncation_or_says_unsettable() {
        let set = 1_600_000_000_123_456_789;
        assert_eq!(mtime_step(set, set), (1, true));
        assert_eq!(mtime_step(set, 1_600_000_000_123_456_000), (1_000, true));
        assert_eq!(mtime_step(set, 1_600_000_000_000_000_000), (1_000_000_000, true));
        // FAT: two seconds, rounded up.
        assert_eq!(mtime_step(set, 1_600_000_002_000_000_000), (2_000_000_000, true));
        // The mount kept "now" instead.
        assert_eq!(mtime_step(set, 1_700_000_000_000_000_000), (1_000_000_000, false));
    }
}
