//! Sides: the replicas a pair keeps in step. [`Replica`] is the one door to a synced tree:
//! every scan, executor, watcher-canary, trash and preview call goes through it, with paths
//! relative to the side's root ([`RelPath`]; [`RelPath::root`] is the root itself). A side
//! declares what it can do in [`Caps`] and the engine adapts to that instead of assuming a
//! local POSIX folder. Implementations: [`local`] (a folder on this machine, the
//! operating system's file systems), [`mem`] (an in-memory fake with knobs, for fast and
//! property tests), [`fault`] (a wrapper that injects failures into any side); servers in
//! [`remote`] ([`s3`], [`webdav`]), their secrets from the OS credential store in [`keyring`].
//! Which concrete side a configured location opens is decided in [`open`], and only the
//! composition roots (the CLI, the service's start-up, the desktop shell) call it.
//! Must not touch: SQLite, the planner, policy of any kind.

pub mod fault;
pub mod keyring;
pub mod local;
pub mod mem;
pub mod remote;
pub mod s3;
pub mod webdav;
// The pure conversions are tested everywhere; the system calls exist on Windows only.
#[cfg_attr(not(windows), allow(dead_code))]
pub mod win;

use crate::model::{Entry, Hash, Kind, RelPath};
use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::Arc;

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
/// still be in a cache: durability comes from [`Replica::make_durable`]).
pub trait FileWriter: Write + Send {
    fn finish(self: Box<Self>, mtime_ns: i64, mode: u32) -> io::Result<()>;
}

/// What an entry's `version` token is: a value that changes whenever the content may have
/// changed, so change detection needs no content read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum VersionToken {
    /// None: size and mtime (and a hash when they are ambiguous) decide.
    None,
    /// The inode change time (POSIX ctime, NTFS ChangeTime): any write or rename moves it.
    ChangeTime,
    /// A server's ETag or revision id, folded to 64 bits.
    Etag,
}

/// A content hash a side can give without reading the content.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum HashKind {
    /// BLAKE3 of the content (Tandem's own; the base and the hash cache hold it).
    Blake3,
    /// MD5 (an S3 single-part ETag, many WebDAV servers).
    Md5,
    /// SHA-1 (OneDrive personal, pCloud).
    Sha1,
    /// OneDrive for Business' QuickXorHash.
    QuickXor,
}

/// How a side keeps the version a copy overwrites (SPEC: never lose a version).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeepVersion {
    /// A hard link in the trash, then an atomic replace: no moment without the file.
    HardLink,
    /// A copy made by the server (WebDAV COPY, S3 CopyObject), then a replace.
    ServerCopy,
    /// Move the old version to the trash, then move the new one in (a short moment
    /// without the file; for sides with neither links nor atomic replace).
    MoveAside,
    /// Read it back and write it into the trash (no links, but atomic replace).
    Copy,
}

/// Where a side's change notifications come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChangeSource {
    /// The OS watcher on [`Replica::local_root`] (inotify, ReadDirectoryChangesW, FSEvents).
    OsEvents,
    /// The OS watcher sees only the changes made through this machine: changes made
    /// elsewhere (on a cloud drive's server, by another client of a network share) send no
    /// events and are found by listing again (FUSE cloud mounts, NFS, SMB).
    LocalEventsOnly,
    /// A provider's change feed with a cursor (OneDrive delta, Dropbox list_folder).
    Feed,
    /// None: changes are found by listing again (S3, most WebDAV servers, FUSE mounts).
    Poll,
}

/// What a side can do. The engine reads these instead of asking what kind of side it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Caps {
    /// Names differing only in case are the same file.
    pub case_insensitive: bool,
    /// The finest mtime step the side keeps, in nanoseconds (1: exact; 1e9: whole
    /// seconds; 2e9: FAT).
    pub mtime_resolution_ns: i64,
    /// Whether written files can be given the source's mtime.
    pub set_mtime: bool,
    /// Whether permission bits are kept (POSIX modes; on Windows the read-only bit).
    pub modes: bool,
    /// Whether entries carry a stable id that survives a rename (rename detection by id).
    pub ids: bool,
    pub version: VersionToken,
    /// The `Etag` version is folded from the mtime and size (probed: a rewrite of the same
    /// size in the same second kept it, as wsgidav's and `rclone serve webdav`'s do), so it
    /// tells no more than they do.
    pub weak_version: bool,
    /// The hash a listing gives for free, if any. Two sides without a kind in common
    /// are compared by size and time first and by Tandem's BLAKE3, read through both,
    /// only when the planner cannot decide otherwise.
    pub free_hash: Option<HashKind>,
    /// Whether a rename replaces an existing file atomically.
    pub atomic_replace: bool,
    pub keep_version: KeepVersion,
    /// Whether written data needs an explicit flush to be durable (local disks); a server
    /// that commits an upload when it answers needs none.
    pub needs_flush: bool,
    /// A new file written with `create_new` appears at its name only when `finish`
    /// succeeds, whole (an S3 PUT or completed multipart upload; an interrupted one leaves
    /// nothing): a copy to a free name is written there directly, without a temporary
    /// name and a rename (on S3 a rename is a copy and a delete).
    pub whole_uploads: bool,
    /// Whether listing and reading are cheap (a local disk) or cost requests and downloads
    /// (a server, a cloud drive mounted as a folder). Where they cost, the planner takes
    /// same size and same time (within the coarser mtime step) as same content instead of
    /// reading both files.
    pub cheap_listing: bool,
    pub changes: ChangeSource,
}

impl Caps {
    /// The side's mtimes are the server's stamps, not properties (version tokens, mtimes
    /// not settable): an entry with the same size and version is the same, whatever its
    /// mtime (the planner's `server_mtimes`, the executor's re-checks).
    pub fn server_mtimes(&self) -> bool {
        self.version != VersionToken::None && !self.set_mtime
    }

    /// A rewrite that keeps the size within one mtime step can look unchanged here: no
    /// change-time token, and a version that is absent or weak (a cloud drive mounted as a
    /// folder, some WebDAV servers). The engine reads such a file only once its mtime step
    /// is over, so that any later rewrite has a later mtime (git's "racy clean" problem).
    pub fn racy(&self) -> bool {
        self.mtime_resolution_ns > 1
            && match self.version {
                VersionToken::ChangeTime => false,
                VersionToken::Etag => self.weak_version,
                VersionToken::None => true,
            }
    }
}

/// One side of a pair. Every path is relative to the side's root; `RelPath::root()` names
/// the root folder itself. Errors carry the side's full name for the path (see
/// [`Replica::describe`]) so a message says where it happened.
pub trait Replica: Send + Sync {
    fn caps(&self) -> Caps;
    /// The side's own name for a path, for messages and logs (a local path, a URL).
    fn describe(&self, p: &RelPath) -> String;
    /// The folder on this machine that holds the side, when there is one (the OS
    /// watcher watches it; nothing else may use it to reach files).
    fn local_root(&self) -> Option<&Path> {
        None
    }
    /// What the side is, when that changes how it is watched or compared and the user
    /// should know (status, log, UI): "cloud drive or FUSE mount (fuse.rclone): ...".
    fn note(&self) -> Option<String> {
        None
    }
    /// `Ok(None)` when nothing is there.
    fn stat(&self, p: &RelPath) -> io::Result<Option<Node>>;
    fn read_dir(&self, p: &RelPath) -> io::Result<Vec<DirItem>>;
    fn open_read(&self, p: &RelPath) -> io::Result<Box<dyn Read + Send>>;
    /// Create a new file; fails if one exists.
    fn create_new(&self, p: &RelPath) -> io::Result<Box<dyn FileWriter>>;
    /// Rename; replaces a file at `to` (atomically when `caps().atomic_replace`).
    fn rename(&self, from: &RelPath, to: &RelPath) -> io::Result<()>;
    /// Make `to` a copy of the file `from` without sending it through Tandem (a hard link,
    /// a server-side copy); `Unsupported` where the side has neither.
    fn keep_copy(&self, from: &RelPath, to: &RelPath) -> io::Result<()>;
    fn remove_file(&self, p: &RelPath) -> io::Result<()>;
    /// Remove an empty folder.
    fn remove_dir(&self, p: &RelPath) -> io::Result<()>;
    fn create_dir_all(&self, p: &RelPath) -> io::Result<()>;
    fn set_mtime(&self, p: &RelPath, mtime_ns: i64) -> io::Result<()>;
    fn set_mode(&self, p: &RelPath, mode: u32) -> io::Result<()>;
    /// Make written files and the folders listing them durable (may be one call for a
    /// whole batch).
    fn make_durable(&self, files: &[RelPath], dirs: &[RelPath]) -> io::Result<()>;
}

impl<T: Replica + ?Sized> Replica for Arc<T> {
    fn caps(&self) -> Caps {
        (**self).caps()
    }
    fn describe(&self, p: &RelPath) -> String {
        (**self).describe(p)
    }
    fn local_root(&self) -> Option<&Path> {
        (**self).local_root()
    }
    fn note(&self) -> Option<String> {
        (**self).note()
    }
    fn stat(&self, p: &RelPath) -> io::Result<Option<Node>> {
        (**self).stat(p)
    }
    fn read_dir(&self, p: &RelPath) -> io::Result<Vec<DirItem>> {
        (**self).read_dir(p)
    }
    fn open_read(&self, p: &RelPath) -> io::Result<Box<dyn Read + Send>> {
        (**self).open_read(p)
    }
    fn create_new(&self, p: &RelPath) -> io::Result<Box<dyn FileWriter>> {
        (**self).create_new(p)
    }
    fn rename(&self, from: &RelPath, to: &RelPath) -> io::Result<()> {
        (**self).rename(from, to)
    }
    fn keep_copy(&self, from: &RelPath, to: &RelPath) -> io::Result<()> {
        (**self).keep_copy(from, to)
    }
    fn remove_file(&self, p: &RelPath) -> io::Result<()> {
        (**self).remove_file(p)
    }
    fn remove_dir(&self, p: &RelPath) -> io::Result<()> {
        (**self).remove_dir(p)
    }
    fn create_dir_all(&self, p: &RelPath) -> io::Result<()> {
        (**self).create_dir_all(p)
    }
    fn set_mtime(&self, p: &RelPath, mtime_ns: i64) -> io::Result<()> {
        (**self).set_mtime(p, mtime_ns)
    }
    fn set_mode(&self, p: &RelPath, mode: u32) -> io::Result<()> {
        (**self).set_mode(p, mode)
    }
    fn make_durable(&self, files: &[RelPath], dirs: &[RelPath]) -> io::Result<()> {
        (**self).make_durable(files, dirs)
    }
}

/// Open the side a configured location names: a folder on this machine, or a server
/// (`s3://`, `webdav[s]://`: see [`remote`]), connecting to it now, so a wrong address or
/// credential is reported at once.
pub fn open(location: &Path, remote: &remote::RemoteOptions) -> io::Result<Arc<dyn Replica>> {
    remote::open_location(location, remote)
}

/// Open the side a configured location names for a long-running service: a server is
/// connected on first use and again after a failure ([`remote::Connecting`]).
pub fn open_lasting(location: &Path, remote: &remote::RemoteOptions) -> io::Result<Arc<dyn Replica>> {
    if remote::is_remote(location) {
        remote::parse_location(location)?;
        return Ok(Arc::new(remote::Connecting::new(location, remote)));
    }
    open(location, remote)
}

/// Hash a file's content through its side.
pub fn hash_file(side: &dyn Replica, p: &RelPath) -> io::Result<(Hash, u64)> {
    let mut r = side.open_read(p)?;
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
pub fn remove_tree(side: &dyn Replica, p: &RelPath) -> io::Result<()> {
    for item in side.read_dir(p)? {
        let name = item
            .name
            .map_err(|raw| io::Error::other(format!("{}: name {raw:?} is not valid Unicode", side.describe(p))))?;
        let child = p
            .join(&name)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
        match item.node? {
            Node::Entry(e) if e.kind == Kind::Dir => remove_tree(side, &child)?,
            _ => side.remove_file(&child)?,
        }
    }
    side.remove_dir(p)
}

/// What a path is, as an entry: a link or device where a file was expected never matches
/// an expectation (it shows as a file of impossible size and time).
pub fn stat_entry(side: &dyn Replica, p: &RelPath) -> io::Result<Option<Entry>> {
    Ok(match side.stat(p)? {
        Some(Node::Entry(e)) => Some(e),
        Some(_) => Some(Entry {
            kind: Kind::File,
            size: u64::MAX,
            mtime: i64::MIN,
            mode: 0,
            file_id: 0,
            version: 0,
            hash: None,
        }),
        None => None,
    })
}

/// What `p` is, reached without a symbolic link on the way (a link in an ancestor could
/// lead outside the root): an `InvalidInput` error when there is one; `Ok(None)` when an
/// ancestor is missing or not a folder.
pub fn stat_inside(side: &dyn Replica, p: &RelPath) -> io::Result<Option<Node>> {
    for a in p.ancestors() {
        match side.stat(&a)? {
            Some(Node::Entry(e)) if e.is_dir() => {}
            Some(Node::Entry(_)) | None => return Ok(None),
            Some(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "{}: a symbolic link on the way may lead outside the pair's folder",
                        side.describe(&a)
                    ),
                ))
            }
        }
    }
    side.stat(p)
}

/// A file's metadata and content, when `p` is a regular file of at most `max` bytes reached
/// without a symbolic link on the way ([`stat_inside`]). `Ok(None)`: nothing there, a
/// folder, a link, or too large; an `InvalidInput` error: a symbolic link on the way.
/// (Sides never follow a link at the file itself: the local side opens with `O_NOFOLLOW`.)
pub fn read_small(side: &dyn Replica, p: &RelPath, max: u64) -> io::Result<Option<(Entry, Vec<u8>)>> {
    let e = match stat_inside(side, p)? {
        Some(Node::Entry(e)) if e.is_file() && e.size <= max => e,
        _ => return Ok(None),
    };
    let mut data = Vec::with_capacity(e.size as usize);
    side.open_read(p)?.take(max + 1).read_to_end(&mut data)?;
    if data.len() as u64 > max {
        return Ok(None);
    }
    Ok(Some((e, data)))
}
