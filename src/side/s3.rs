//! The S3 side: a bucket (and an optional key prefix) on any S3-compatible server (AWS S3,
//! MinIO, Garage, Ceph, moto, `rclone serve s3`...), reached through Apache OpenDAL's S3
//! service. [`S3Side::connect`] opens it from an [`S3Config`] (the composition roots build
//! that from the configuration; nothing else names this side).
//!
//! How S3 is mapped onto a [`Replica`]:
//! - Paths: a [`RelPath`] `a/b` is the key `PREFIX/a/b`; [`Replica::describe`] names it
//!   `s3://BUCKET/PREFIX/a/b`.
//! - Folders: S3 has none. A folder exists when a marker object `dir/` exists or any key
//!   starts with `dir/`. `create_dir_all` writes markers; `remove_dir` removes one and
//!   refuses while keys remain below it. The root (the bucket and prefix) is a folder as
//!   long as the bucket answers. A file wins over a folder of the same name (S3 allows
//!   both `a` and `a/x`). Some servers cannot hold markers (`rclone serve s3` turns `d/`
//!   into a file `d`): a probe before the first marker finds out, and there no marker is
//!   written, so a folder exists only while keys lie below it (an empty folder cannot be
//!   created through such a server; one made behind it is listed and can be removed).
//! - Metadata: size, mtime = the object's LastModified (whole seconds: a listing gives
//!   milliseconds, a HEAD whole seconds; both are cut to seconds so a re-stat equals the
//!   scan), version = the ETag folded to 64 bits, no mode, no id.
//! - Uploads stream (multipart above [`PART`]: no whole file in memory) and are created
//!   "only if absent": a HEAD first, and `If-None-Match: *` on the PUT or on completing the
//!   multipart upload, which closes the race where the server enforces it (AWS, MinIO,
//!   moto; `rclone serve s3` ignores it). A writer dropped unfinished aborts its upload.
//! - Renames are a server-side copy then a delete (for a folder, of every key below it);
//!   `keep_copy` is a server-side copy. S3's DELETE succeeds on a missing key, so
//!   `remove_file` checks with a HEAD first (a missing file is `NotFound` as elsewhere).
//! - Errors name `s3://...` and map OpenDAL's kinds to `io::ErrorKind`s; temporary
//!   failures (5xx, 429, dropped connections, timeouts) are retried with exponential
//!   backoff and jitter, every request has a time limit.
//!
//! Capabilities, and why: case-sensitive keys; mtimes can be neither set nor chosen (the
//! server stamps LastModified on upload), so `set_mtime` is false, the resolution is one
//! second, and `set_mtime`/`set_mode` answer `Unsupported` (the engine records the side as
//! it is); no modes, no ids (a rename is a copy: the object is a new one), the ETag as the
//! version token; no free hash (a multipart ETag is not an MD5 of the content); a PUT or a
//! copy replaces an object atomically, old versions are kept by a server-side copy; the
//! server commits an upload when it answers (no flush); listing costs requests; no change
//! feed (the service polls).
//!
//! The [`Replica`] trait is synchronous and is called from plain threads and from threads
//! of other tokio runtimes (the local API's handlers): every call is sent to a small tokio
//! runtime (two workers) owned by this module and waited for on a standard channel, which
//! never panics whatever the calling thread is (it blocks that thread, as a synchronous call
//! does). One runtime serves every S3 side of the process (see [`runtime`]: OpenDAL's
//! HTTP transport and its connection pool are process-wide).
//!
//! Must not touch: anything outside its bucket and prefix (every key is built from the
//! prefix and a validated [`RelPath`]), the bucket itself (never created or deleted), the
//! secret key in any message, log or `Debug` output.

use super::{Caps, ChangeSource, DirItem, FileWriter, KeepVersion, Node, Replica, VersionToken};
use crate::model::{Entry, Kind, RelPath};
use futures_util::StreamExt;
use opendal::layers::{RetryLayer, TimeoutLayer};
use opendal::options::{CopyOptions, ListOptions, ReaderOptions, WriteOptions};
use opendal::Operator;
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Once, OnceLock};
use std::time::Duration;

/// Part size of multipart uploads (S3's minimum is 5 MiB, its maximum 10,000 parts: this
/// allows objects up to 80 GB while a writer holds at most one part in memory).
pub const PART: usize = 8 * 1024 * 1024;

/// Bytes handed to OpenDAL's writer at once (it gathers them into parts).
const WRITE_BATCH: usize = 1024 * 1024;

/// Bytes a reader fetches per hop to the runtime (the HTTP body arrives in small chunks).
const READ_BATCH: usize = 1024 * 1024;

/// What [`S3Side::connect`] needs. `Debug` never shows the secret key.
#[derive(Clone, PartialEq, Eq)]
pub struct S3Config {
    /// The server, e.g. `http://127.0.0.1:9000`; empty: AWS (from the region).
    pub endpoint: String,
    /// The region (`us-east-1` when empty).
    pub region: String,
    pub bucket: String,
    /// A key prefix the side lives under, `""` or `a/b` (slashes at either end ignored).
    pub prefix: String,
    pub access_key: String,
    pub secret_key: String,
}

impl fmt::Debug for S3Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("access_key", &self.access_key)
            .field("secret_key", &"***")
            .finish()
    }
}

/// A bucket (and key prefix) on an S3-compatible server.
pub struct S3Side {
    inner: Arc<Inner>,
}

/// What the async parts need; cheap to clone into a task (the operator is an `Arc`).
struct Inner {
    op: Operator,
    bucket: String,
    /// Normalized: `""` or `a/b` (no slash at either end).
    prefix: String,
    /// Only to scrub it from messages (a server could echo it).
    secret: String,
    /// Whether the server keeps folder markers: [`MARKERS_UNKNOWN`] until the first
    /// folder is created (see [`Inner::markers`]).
    markers: AtomicU8,
}

const MARKERS_UNKNOWN: u8 = 0;
const MARKERS_KEPT: u8 = 1;
/// The server turns a marker `d/` into a file `d` (`rclone serve s3`, which serves a
/// folder on disk): no markers are written there.
const MARKERS_BECOME_FILES: u8 = 2;

impl fmt::Debug for S3Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Side").field("location", &self.inner.base()).finish()
    }
}

/// One runtime for every S3 side of the process (and every WebDAV side: `webdav.rs` shares
/// it through [`run`], with [`install_transport`]), built on first use. Shared rather than one
/// per side because OpenDAL's HTTP transport is process-wide: its connection pool keeps
/// connections whose driving tasks live on the runtime that opened them, so a runtime
/// dropped with its side would break the pooled connections another side reuses. Two worker
/// threads: the work is waiting on the network. A static is never dropped, so no runtime is
/// ever dropped on a thread where that would panic (inside another runtime).
fn runtime() -> io::Result<&'static tokio::runtime::Runtime> {
    static RT: OnceLock<Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("tandem-s3")
            .enable_all()
            .build()
            .map_err(|e| e.to_string())
    })
    .as_ref()
    .map_err(|e| io::Error::other(format!("cannot start the S3 runtime: {e}")))
}

/// Run `fut` on the S3 runtime and wait for it on this thread. A standard channel (not
/// `Runtime::block_on`, which panics on a thread of another runtime, nor a `JoinHandle`
/// polled here, whose cooperative budget could spin inside another runtime's task) works
/// from any thread. Never called from the runtime's own threads (only our tasks run there,
/// and they never call back into the side).
pub(super) fn run<T: Send + 'static>(fut: impl Future<Output = T> + Send + 'static) -> io::Result<T> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    runtime()?.spawn(async move {
        let _ = tx.send(fut.await);
    });
    rx.recv()
        .map_err(|_| io::Error::other("the S3 runtime stopped before the request finished"))
}

/// The TLS provider (ring: no second provider, no C build) and OpenDAL's default HTTP
/// transport (reqwest) are process-wide; without the transport every request fails with
/// "default HTTP transport is not installed".
pub(super) fn install_transport() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        // Err: a provider is installed already (by another part of the process): keep it.
        let _ = rustls::crypto::ring::default_provider().install_default();
        opendal_http_transport_reqwest::install_default();
    });
}

fn normalize_prefix(prefix: &str) -> io::Result<String> {
    let p = prefix.trim_matches('/');
    if p.is_empty() {
        return Ok(String::new());
    }
    if p.split('/').any(|c| c.is_empty() || c == "." || c == "..") || p.contains('\0') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("S3 key prefix {prefix:?}: empty, '.' or '..' components are not allowed"),
        ));
    }
    Ok(p.to_string())
}

impl S3Side {
    /// Open the side and check the bucket answers (one listing of at most one key): wrong
    /// credentials, an unknown bucket or an unreachable server give an error naming
    /// `s3://BUCKET/PREFIX` and the cause (never the secret key).
    pub fn connect(cfg: S3Config) -> io::Result<S3Side> {
        install_transport();
        let prefix = normalize_prefix(&cfg.prefix)?;
        let location = if prefix.is_empty() {
            format!("s3://{}", cfg.bucket)
        } else {
            format!("s3://{}/{prefix}", cfg.bucket)
        };
        if cfg.bucket.is_empty() || cfg.bucket.contains('/') {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{location}: the bucket name {:?} is not valid", cfg.bucket),
            ));
        }
        let region = if cfg.region.is_empty() { "us-east-1" } else { cfg.region.as_str() };
        // Only what the configuration says: no credentials or endpoints from the
        // environment, `~/.aws` or the EC2 metadata service.
        let mut b = opendal::services::S3::default()
            .bucket(&cfg.bucket)
            .region(region)
            .root(&format!("/{prefix}"))
            .disable_config_load()
            .disable_ec2_metadata();
        if !cfg.endpoint.is_empty() {
            b = b.endpoint(&cfg.endpoint);
        }
        if cfg.access_key.is_empty() && cfg.secret_key.is_empty() {
            b = b.skip_signature();
        } else {
            b = b.access_key_id(&cfg.access_key).secret_access_key(&cfg.secret_key);
        }
        let scrub = |s: String| scrub_secret(s, &cfg.secret_key);
        let op = Operator::new(b)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, scrub(format!("{location}: {}", err_text(&e)))))?
            // Each attempt has its own time limit (a hung connection fails, then is retried):
            // 3 minutes per I/O step, which lets a part of 8 MiB go up at 0.4 Mbit/s, and 5
            // minutes for a whole request without a body (a large server-side copy).
            .layer(
                TimeoutLayer::new()
                    .with_timeout(Duration::from_secs(300))
                    .with_io_timeout(Duration::from_secs(180)),
            )
            // Temporary failures (5xx, 429 rate limits, dropped connections, timeouts) are
            // retried with exponential backoff and jitter; permanent ones are not.
            .layer(
                RetryLayer::new()
                    .with_jitter()
                    .with_factor(2.0)
                    .with_min_delay(Duration::from_millis(200))
                    .with_max_delay(Duration::from_secs(10))
                    .with_max_times(4),
            );
        let inner = Arc::new(Inner {
            op,
            bucket: cfg.bucket.clone(),
            prefix,
            secret: cfg.secret_key.clone(),
            markers: AtomicU8::new(MARKERS_UNKNOWN),
        });
        let i = inner.clone();
        run(async move { i.first_key().await })?.map_err(|e| {
            let why = match e.kind() {
                opendal::ErrorKind::PermissionDenied => "access denied (wrong access key or secret key, or no right to list the bucket)",
                opendal::ErrorKind::ConfigInvalid | opendal::ErrorKind::NotFound => "no such bucket",
                _ if e.is_temporary() || is_transport(&e) => "the server cannot be reached",
                _ => "the server refused the request",
            };
            let endpoint = if cfg.endpoint.is_empty() { "AWS" } else { cfg.endpoint.as_str() };
            let (kind, _) = io_kind(&e);
            let msg = format!("{location}: cannot open: {why} (endpoint {endpoint}): {}", err_text(&e));
            io::Error::new(kind, scrub_secret(msg, &cfg.secret_key))
        })?;
        Ok(S3Side { inner })
    }
}

/// The text of an OpenDAL error without its context block (request and response headers,
/// long and not for users): its kind, its message, and the chain of causes.
pub(super) fn err_text(e: &opendal::Error) -> String {
    let mut s = format!("{} ({})", e.message(), e.kind());
    let mut src = std::error::Error::source(e);
    while let Some(c) = src {
        s.push_str(&format!(": {c}"));
        src = c.source();
    }
    s
}

pub(super) fn scrub_secret(s: String, secret: &str) -> String {
    if secret.len() >= 4 {
        s.replace(secret, "***")
    } else {
        s
    }
}

/// Nanoseconds of whole seconds: a listing carries milliseconds, a HEAD's Last-Modified
/// whole seconds; the same object must show the same mtime either way.
fn mtime_ns(m: &opendal::Metadata) -> i64 {
    m.last_modified()
        .map(|t| t.into_inner().as_second().saturating_mul(1_000_000_000))
        .unwrap_or(0)
}

/// The ETag folded to a non-zero 64-bit token (quotes and a weak marker ignored, as
/// servers quote it in some answers and not in others); 0 when the server gave none.
fn etag_version(m: &opendal::Metadata) -> i64 {
    match m.etag() {
        Some(t) => {
            let t = t.trim().trim_start_matches("W/").trim_matches('"');
            let h = blake3::hash(t.as_bytes());
            i64::from_le_bytes(h.as_bytes()[..8].try_into().unwrap()) | 1
        }
        None => 0,
    }
}

fn file_entry(m: &opendal::Metadata) -> Entry {
    Entry {
        kind: Kind::File,
        size: m.content_length(),
        mtime: mtime_ns(m),
        mode: 0,
        file_id: 0,
        version: etag_version(m),
        hash: None,
    }
}

/// Folders have no time, size or version of their own on S3 (a marker may or may not
/// exist): all zero, the same in a stat and in a listing.
fn dir_entry() -> Entry {
    Entry {
        kind: Kind::Dir,
        size: 0,
        mtime: 0,
        mode: 0,
        file_id: 0,
        version: 0,
        hash: None,
    }
}

/// How an OpenDAL error kind reads as an `io::ErrorKind` (what the engine branches on), and
/// a few words for the message: missing, existing, forbidden, a failed condition (distinct
/// from "exists"), rate limits and timeouts (retried first), no answer at all.
pub(super) fn io_kind(e: &opendal::Error) -> (io::ErrorKind, &'static str) {
    use opendal::ErrorKind as K;
    match e.kind() {
        K::NotFound => (io::ErrorKind::NotFound, "not found"),
        K::PermissionDenied => (io::ErrorKind::PermissionDenied, "access denied"),
        K::AlreadyExists => (io::ErrorKind::AlreadyExists, "already exists"),
        K::ConditionNotMatch => (
            io::ErrorKind::Other,
            "changed on the server meanwhile (a conditional request's precondition failed)",
        ),
        K::RateLimited => (io::ErrorKind::TimedOut, "the server is limiting requests (rate limited, retried)"),
        K::IsADirectory => (io::ErrorKind::IsADirectory, "is a folder"),
        K::NotADirectory => (io::ErrorKind::NotADirectory, "not a folder"),
        K::Unsupported => (io::ErrorKind::Unsupported, "not supported by this server"),
        K::ConfigInvalid => (io::ErrorKind::InvalidInput, "invalid configuration"),
        K::RangeNotSatisfied => (io::ErrorKind::UnexpectedEof, "range not satisfiable"),
        _ if e.message().contains("timeout") => (io::ErrorKind::TimedOut, "timed out (retried)"),
        _ if is_transport(e) => (io::ErrorKind::Other, "the server cannot be reached"),
        _ if e.is_temporary() => (io::ErrorKind::Other, "the server cannot be reached or failed (retried)"),
        _ => (io::ErrorKind::Other, "the request failed"),
    }
}

/// OpenDAL's path of a file key (relative to the prefix).
fn file_key(p: &RelPath) -> String {
    p.as_str().to_string()
}

/// OpenDAL's path of a folder (its marker key; `/` is the prefix itself).
fn dir_key(p: &RelPath) -> String {
    if p.is_root() {
        "/".to_string()
    } else {
        format!("{}/", p.as_str())
    }
}

/// No answer from the server at all (refused, unreachable, DNS, TLS): OpenDAL reports these
/// as "send http request" failures.
fn is_transport(e: &opendal::Error) -> bool {
    e.message().contains("send http request")
}

fn is_not_found(e: &opendal::Error) -> bool {
    e.kind() == opendal::ErrorKind::NotFound
}

impl Inner {
    fn base(&self) -> String {
        if self.prefix.is_empty() {
            format!("s3://{}", self.bucket)
        } else {
            format!("s3://{}/{}", self.bucket, self.prefix)
        }
    }

    fn describe(&self, p: &RelPath) -> String {
        if p.is_root() {
            self.base()
        } else {
            format!("{}/{}", self.base(), p.as_str())
        }
    }

    /// An OpenDAL error as an `io::Error` naming the place (`what` says what was being
    /// done), its kind mapped so the engine can tell missing, existing, forbidden, busy.
    fn io_err(&self, place: &str, what: &str, e: opendal::Error) -> io::Error {
        let (kind, note) = io_kind(&e);
        let msg = format!("{place}: {what}: {note}: {}", err_text(&e));
        io::Error::new(kind, scrub_secret(msg, &self.secret))
    }

    fn err(&self, p: &RelPath, what: &str, e: opendal::Error) -> io::Error {
        self.io_err(&self.describe(p), what, e)
    }

    /// The first key at or below the prefix (a listing of at most one key): `Ok` when the
    /// bucket answers.
    async fn first_key(&self) -> opendal::Result<Option<opendal::Entry>> {
        let mut l = self
            .op
            .lister_options(
                "/",
                ListOptions {
                    limit: Some(1),
                    ..Default::default()
                },
            )
            .await?;
        l.next().await.transpose()
    }

    /// Whether this server keeps folder markers. Probed once, when the first marker is
    /// needed: a marker with a random name is written, and if the server shows a file of
    /// that name without the slash instead (`rclone serve s3` does: its PUT of `d/`
    /// creates a file `d`), markers are never written again on this side; the probe's keys
    /// are removed either way.
    async fn markers(&self) -> io::Result<bool> {
        match self.markers.load(Ordering::SeqCst) {
            MARKERS_KEPT => return Ok(true),
            MARKERS_BECOME_FILES => return Ok(false),
            _ => {}
        }
        let mut b = [0u8; 8];
        getrandom::fill(&mut b).map_err(|e| io::Error::other(format!("{}: no random name for a probe: {e}", self.base())))?;
        let name = format!(".tandem-marker-probe-{}", b.iter().map(|x| format!("{x:02x}")).collect::<String>());
        let probe = RelPath::new(&name).expect("a probe name is a valid path");
        self.op
            .create_dir(&dir_key(&probe))
            .await
            .map_err(|e| self.err(&probe, "create folder", e))?;
        let became_file = self.head(&probe).await?.is_some();
        let removed = if became_file {
            self.op.delete(&file_key(&probe)).await
        } else {
            self.op.delete(&dir_key(&probe)).await
        };
        removed.map_err(|e| self.err(&probe, "remove probe", e))?;
        if became_file {
            tracing::info!(
                place = %self.base(),
                "the server turns folder markers into files: folders exist here only while keys lie below them"
            );
        }
        let v = if became_file { MARKERS_BECOME_FILES } else { MARKERS_KEPT };
        self.markers.store(v, Ordering::SeqCst);
        Ok(!became_file)
    }

    /// Write the marker of folder `d` (nothing on a server without markers).
    async fn put_marker(&self, d: &RelPath) -> io::Result<()> {
        if !self.markers().await? {
            return Ok(());
        }
        self.op.create_dir(&dir_key(d)).await.map_err(|e| self.err(d, "create folder", e))
    }

    /// Whether the folder `p` (not the root) exists: its marker or any key below it.
    async fn dir_exists(&self, p: &RelPath) -> io::Result<bool> {
        let key = dir_key(p);
        let res = async {
            let mut l = self
                .op
                .lister_options(
                    &key,
                    ListOptions {
                        limit: Some(1),
                        ..Default::default()
                    },
                )
                .await?;
            l.next().await.transpose()
        }
        .await;
        match res {
            Ok(first) => Ok(first.is_some()),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(self.err(p, "list", e)),
        }
    }

    /// HEAD of the file key `p`: `None` when no object has that key.
    async fn head(&self, p: &RelPath) -> io::Result<Option<opendal::Metadata>> {
        match self.op.stat(&file_key(p)).await {
            Ok(m) if m.is_file() => Ok(Some(m)),
            Ok(_) => Ok(None),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(self.err(p, "stat", e)),
        }
    }

    /// A file (HEAD) wins over a folder of the same name (S3 allows both `a` and `a/x`;
    /// the listing makes the same choice).
    async fn stat(&self, p: &RelPath) -> io::Result<Option<Node>> {
        if p.is_root() {
            return match self.first_key().await {
                Ok(_) => Ok(Some(Node::Entry(dir_entry()))),
                Err(e) => Err(self.err(p, "list", e)),
            };
        }
        if let Some(m) = self.head(p).await? {
            return Ok(Some(Node::Entry(file_entry(&m))));
        }
        Ok(self.dir_exists(p).await?.then(|| Node::Entry(dir_entry())))
    }

    /// One listing (delimiter `/`, all pages) of the folder: files with the listing's
    /// metadata (no HEAD per object), subfolders (common prefixes and markers) as folders,
    /// the folder's own marker left out. Keys with an empty component (`a//b`) cannot be
    /// named by a path and are left out.
    async fn read_dir(&self, p: &RelPath) -> io::Result<Vec<DirItem>> {
        let key = dir_key(p);
        let entries = match self.op.list_options(&key, ListOptions::default()).await {
            Ok(v) => v,
            Err(e) if is_not_found(&e) => Vec::new(),
            Err(e) => return Err(self.err(p, "list", e)),
        };
        let own = if p.is_root() { "/" } else { key.as_str() };
        let strip = if p.is_root() { "" } else { key.as_str() };
        let mut files = std::collections::BTreeMap::new();
        let mut dirs = std::collections::BTreeSet::new();
        let mut seen_any = false;
        for e in entries {
            let path = e.path();
            if path == own {
                seen_any = true;
                continue;
            }
            let Some(rest) = path.strip_prefix(strip) else { continue };
            seen_any = true;
            let (name, is_dir) = match rest.strip_suffix('/') {
                Some(n) => (n, true),
                None => (rest, false),
            };
            if name.is_empty() || name.contains('/') {
                continue;
            }
            if is_dir {
                dirs.insert(name.to_string());
            } else {
                files.insert(name.to_string(), file_entry(e.metadata()));
            }
        }
        if !seen_any && !p.is_root() {
            // Nothing under it: no such folder, or a file.
            return Err(match self.head(p).await? {
                Some(_) => io::Error::new(io::ErrorKind::NotADirectory, format!("{}: not a folder", self.describe(p))),
                None => io::Error::new(io::ErrorKind::NotFound, format!("{}: no such folder", self.describe(p))),
            });
        }
        let mut out = Vec::with_capacity(files.len() + dirs.len());
        for d in dirs {
            if files.contains_key(&d) {
                tracing::warn!(
                    path = %format!("{}/{}", self.describe(p), d),
                    "both a file and a folder have this name on S3: the file is synced, the keys below the folder are not"
                );
                continue;
            }
            out.push(DirItem {
                name: Ok(d),
                node: Ok(Node::Entry(dir_entry())),
            });
        }
        for (name, e) in files {
            out.push(DirItem {
                name: Ok(name),
                node: Ok(Node::Entry(e)),
            });
        }
        Ok(out)
    }

    /// Every key at or below the folder `p` (recursive listing, markers included), as
    /// OpenDAL paths.
    async fn keys_below(&self, p: &RelPath) -> io::Result<Vec<String>> {
        let opts = ListOptions {
            recursive: true,
            ..Default::default()
        };
        match self.op.list_options(&dir_key(p), opts).await {
            Ok(v) => Ok(v.into_iter().map(|e| e.path().to_string()).collect()),
            Err(e) if is_not_found(&e) => Ok(Vec::new()),
            Err(e) => Err(self.err(p, "list", e)),
        }
    }

    async fn create_dir_all(&self, p: &RelPath) -> io::Result<()> {
        if p.is_root() {
            // The bucket itself: never created here; it must answer.
            return self.first_key().await.map(|_| ()).map_err(|e| self.err(p, "list", e));
        }
        let mut chain: Vec<RelPath> = p.ancestors().collect();
        chain.reverse();
        chain.push(p.clone());
        // Top down: a marker for each folder that is not there yet (an implicit folder, one
        // only keys below it make, gets no marker: it exists). Below the first missing one
        // nothing can exist, so no more checks.
        let mut missing = false;
        for d in chain {
            if !missing {
                match self.stat(&d).await? {
                    Some(Node::Entry(e)) if e.is_dir() => continue,
                    Some(_) => {
                        return Err(io::Error::new(
                            io::ErrorKind::NotADirectory,
                            format!("{}: a file is in the way of folder {}", self.describe(&d), self.describe(p)),
                        ))
                    }
                    None => missing = true,
                }
            }
            self.put_marker(&d).await?;
        }
        Ok(())
    }

    /// Remove the folder's marker; refused while any key remains below it. (A key written
    /// below it between the check and the removal keeps the folder alive anyway: S3 folders
    /// are made by their keys.)
    async fn remove_dir(&self, p: &RelPath) -> io::Result<()> {
        if p.is_root() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{}: the root of the side is never removed", self.describe(p)),
            ));
        }
        let key = dir_key(p);
        let mut l = self
            .op
            .lister_options(
                &key,
                ListOptions {
                    recursive: true,
                    limit: Some(2),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| self.err(p, "list", e))?;
        let mut marker = false;
        while let Some(e) = l.next().await {
            let e = e.map_err(|e| self.err(p, "list", e))?;
            if e.path() == key {
                marker = true;
                continue;
            }
            let rest = e.path().strip_prefix(key.as_str()).unwrap_or(e.path());
            return Err(io::Error::new(
                io::ErrorKind::DirectoryNotEmpty,
                format!("{}: folder not empty (it still holds {rest:?})", self.describe(p)),
            ));
        }
        if !marker {
            if self.head(p).await?.is_none() && !self.markers().await? {
                // A server without markers (a folder on disk behind it): an empty folder
                // shows only in its parent's listing; a DELETE of `p/` removes it there.
                return self.op.delete(&key).await.map_err(|e| self.err(p, "remove folder", e));
            }
            return Err(match self.head(p).await? {
                Some(_) => io::Error::new(io::ErrorKind::NotADirectory, format!("{}: not a folder", self.describe(p))),
                None => io::Error::new(io::ErrorKind::NotFound, format!("{}: no such folder", self.describe(p))),
            });
        }
        self.op.delete(&key).await.map_err(|e| self.err(p, "remove folder", e))
    }

    async fn remove_file(&self, p: &RelPath) -> io::Result<()> {
        // S3's DELETE succeeds on a missing key: a HEAD first, so a missing file is
        // `NotFound` as on every other side (and a folder is not taken for a file).
        if self.head(p).await?.is_none() {
            return Err(if self.dir_exists(p).await? {
                io::Error::new(io::ErrorKind::IsADirectory, format!("{}: is a folder", self.describe(p)))
            } else {
                io::Error::new(io::ErrorKind::NotFound, format!("{}: not found", self.describe(p)))
            });
        }
        self.op.delete(&file_key(p)).await.map_err(|e| self.err(p, "delete", e))
    }

    /// A server-side copy of one object (CopyObject; multipart copy for large ones).
    async fn copy_object(&self, from: &str, to: &str, place: &RelPath) -> io::Result<()> {
        self.op
            .copy_options(from, to, CopyOptions::default())
            .await
            .map(|_| ())
            .map_err(|e| self.err(place, &format!("server-side copy of {from:?} to {to:?}"), e))
    }

    /// Copy `from` to `to` on the server, then delete `from`: for a folder every key below it
    /// (markers too), all copies first, then the deletions (a failure in between leaves
    /// both, never neither). Not atomic for folders; a file at `to` is replaced atomically.
    /// (A version written to `from` between the copy and the delete would be lost: S3 has
    /// no rename and not every server honours a conditional DELETE.)
    async fn rename(&self, from: &RelPath, to: &RelPath) -> io::Result<()> {
        if from == to {
            return Ok(());
        }
        if from.is_root() || to.is_root() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{} -> {}: the root of the side cannot be renamed",
                    self.describe(from),
                    self.describe(to)
                ),
            ));
        }
        if self.head(from).await?.is_some() {
            // A file onto a folder is refused (as on a disk).
            if self.dir_exists(to).await? {
                return Err(io::Error::new(
                    io::ErrorKind::IsADirectory,
                    format!(
                        "{}: cannot replace a folder with the file {}",
                        self.describe(to),
                        self.describe(from)
                    ),
                ));
            }
            self.copy_object(&file_key(from), &file_key(to), to).await?;
            return self
                .op
                .delete(&file_key(from))
                .await
                .map_err(|e| self.err(from, "delete after copy", e));
        }
        let keys = self.keys_below(from).await?;
        if keys.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{}: not found", self.describe(from)),
            ));
        }
        if to.starts_with(from) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{}: cannot move a folder into itself ({})", self.describe(from), self.describe(to)),
            ));
        }
        if self.head(to).await?.is_some() {
            return Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                format!(
                    "{}: cannot replace a file with the folder {}",
                    self.describe(to),
                    self.describe(from)
                ),
            ));
        }
        let to_keys = self.keys_below(to).await?;
        if to_keys.iter().any(|k| *k != dir_key(to)) {
            return Err(io::Error::new(
                io::ErrorKind::DirectoryNotEmpty,
                format!("{}: target folder not empty", self.describe(to)),
            ));
        }
        let (fk, tk) = (dir_key(from), dir_key(to));
        for k in &keys {
            let Some(rest) = k.strip_prefix(fk.as_str()) else { continue };
            let target = format!("{tk}{rest}");
            if k.ends_with('/') {
                let dir = RelPath::new(target.trim_end_matches('/'))
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{}: key {k:?}: {e}", self.describe(from))))?;
                self.put_marker(&dir).await?;
            } else {
                self.copy_object(k, &target, to).await?;
            }
        }
        // The folder itself exists at its new name even when only keys below made it.
        if !keys.contains(&fk) {
            self.put_marker(to).await?;
        }
        self.op
            .delete_iter(keys)
            .await
            .map_err(|e| self.err(from, "delete after copying to the new name", e))
    }

    /// A server-side copy of the file `from` at `to`, which must not exist. (The absence
    /// is checked by a HEAD first: a CopyObject with `If-None-Match` is not honoured by
    /// every server; `to` is a fresh trash name, so a race is not expected.)
    async fn keep_copy(&self, from: &RelPath, to: &RelPath) -> io::Result<()> {
        if self.head(from).await?.is_none() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{}: no such file to copy", self.describe(from)),
            ));
        }
        if self.head(to).await?.is_some() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{}: exists", self.describe(to)),
            ));
        }
        self.copy_object(&file_key(from), &file_key(to), to).await
    }

    /// Start an upload of `p`, which must not exist. The object is created "only if
    /// absent" (`If-None-Match: *` on the PUT or on completing the multipart upload): a
    /// server that enforces it (AWS, MinIO, moto) refuses to overwrite an object that
    /// appeared meanwhile. Some servers ignore the header (`rclone serve s3`): for them the
    /// check done first (a HEAD and a listing for a folder of that name) is the check, with
    /// a short race between it and the upload's end.
    async fn create_new(&self, p: &RelPath) -> io::Result<opendal::Writer> {
        if p.is_root() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{}: is the root folder", self.describe(p)),
            ));
        }
        // A file or a folder (keys below `p/`) in the way: S3 would take both names. Both
        // asked at once: one round trip before the upload, not two.
        let (file, dir) = tokio::join!(self.head(p), self.dir_exists(p));
        if file?.is_some() || dir? {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{}: exists", self.describe(p)),
            ));
        }
        let opts = WriteOptions {
            if_not_exists: true,
            chunk: Some(PART),
            concurrent: 1,
            ..Default::default()
        };
        self.op
            .writer_options(&file_key(p), opts)
            .await
            .map_err(|e| self.err(p, "start upload", e))
    }

    /// An error of a write that was "only if absent": a failed condition means the object
    /// exists.
    fn write_err(&self, p: &RelPath, what: &str, e: opendal::Error) -> io::Error {
        if e.kind() == opendal::ErrorKind::ConditionNotMatch {
            return io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!(
                    "{}: {what}: exists (created on the server during the upload; not overwritten)",
                    self.describe(p)
                ),
            );
        }
        self.err(p, what, e)
    }
}

/// A streamed download through OpenDAL (S3 here, WebDAV's GET too): the body is pulled
/// from the runtime in batches of about [`READ_BATCH`] bytes; never the whole object in
/// memory. `place` names the file in errors, `scrub` takes the side's secret out of them.
pub(super) struct StreamReader {
    place: String,
    scrub: Box<dyn Fn(String) -> String + Send>,
    stream: Option<opendal::FuturesBytesStream>,
    chunks: VecDeque<Chunk>,
    done: bool,
}

/// One item of OpenDAL's byte stream (`io::Result` of a chunk), named without a direct
/// `bytes` dependency.
type Chunk = <opendal::FuturesBytesStream as futures_util::Stream>::Item;

impl StreamReader {
    pub(super) fn new(
        place: String,
        stream: opendal::FuturesBytesStream,
        scrub: impl Fn(String) -> String + Send + 'static,
    ) -> StreamReader {
        StreamReader {
            place,
            scrub: Box::new(scrub),
            stream: Some(stream),
            chunks: VecDeque::new(),
            done: false,
        }
    }
}

impl Read for StreamReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            while let Some(front) = self.chunks.front_mut() {
                let chunk = match front {
                    Ok(b) => b,
                    Err(_) => {
                        let e = self.chunks.pop_front().unwrap().unwrap_err();
                        self.done = true;
                        return Err(io::Error::new(e.kind(), (self.scrub)(format!("{}: read: {e}", self.place))));
                    }
                };
                if chunk.is_empty() {
                    self.chunks.pop_front();
                    continue;
                }
                let n = buf.len().min(chunk.len());
                buf[..n].copy_from_slice(&chunk[..n]);
                let _ = chunk.split_to(n);
                if chunk.is_empty() {
                    self.chunks.pop_front();
                }
                return Ok(n);
            }
            if self.done {
                return Ok(0);
            }
            let Some(mut s) = self.stream.take() else { return Ok(0) };
            let (s, got, end) = run(async move {
                let mut got = VecDeque::new();
                let mut n = 0usize;
                let mut end = false;
                while n < READ_BATCH {
                    match s.next().await {
                        Some(Ok(b)) => {
                            n += b.len();
                            got.push_back(Ok(b));
                        }
                        Some(Err(e)) => {
                            got.push_back(Err(e));
                            end = true;
                            break;
                        }
                        None => {
                            end = true;
                            break;
                        }
                    }
                }
                (s, got, end)
            })?;
            self.stream = Some(s);
            self.chunks = got;
            self.done = end;
        }
    }
}

/// An upload in progress: bytes are handed to OpenDAL's writer in batches of
/// [`WRITE_BATCH`]; it sends a single PUT for a small file and a multipart upload (parts of
/// [`PART`]) for a large one. Dropped without `finish`, the upload is aborted (a multipart
/// upload's parts are discarded; a small file was never sent): no object appears.
struct S3Writer {
    inner: Arc<Inner>,
    path: RelPath,
    w: Option<opendal::Writer>,
    buf: Vec<u8>,
}

impl S3Writer {
    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let data = std::mem::take(&mut self.buf);
        let Some(mut w) = self.w.take() else {
            return Err(io::Error::other(format!(
                "{}: the upload failed before",
                self.inner.describe(&self.path)
            )));
        };
        let (w, res) = run(async move {
            let r = w.write(data).await;
            (w, r)
        })?;
        self.w = Some(w);
        res.map_err(|e| self.inner.write_err(&self.path, "upload", e))
    }
}

impl Write for S3Writer {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(b);
        if self.buf.len() >= WRITE_BATCH {
            self.send()?;
        }
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        // Data is committed by `finish` (an S3 object appears whole or not at all).
        Ok(())
    }
}

impl FileWriter for S3Writer {
    /// Completes the upload. S3 stamps its own LastModified and keeps no modes: `mtime_ns`
    /// and `mode` cannot be applied (`Caps::set_mtime` and `Caps::modes` say so).
    fn finish(mut self: Box<Self>, _mtime_ns: i64, _mode: u32) -> io::Result<()> {
        self.send()?;
        let Some(mut w) = self.w.take() else {
            return Err(io::Error::other(format!(
                "{}: the upload failed before",
                self.inner.describe(&self.path)
            )));
        };
        let (w, res) = run(async move {
            let r = w.close().await;
            (w, r)
        })?;
        match res {
            Ok(_) => Ok(()),
            Err(e) => {
                // Abort what is left of it (a multipart upload's parts).
                self.w = Some(w);
                Err(self.inner.write_err(&self.path, "complete upload", e))
            }
        }
    }
}

impl Drop for S3Writer {
    fn drop(&mut self) {
        if let Some(mut w) = self.w.take() {
            let path = self.inner.describe(&self.path);
            match run(async move { w.abort().await }) {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(%path, "cannot abort the unfinished upload: {}", err_text(&e)),
                Err(e) => tracing::warn!(%path, "cannot abort the unfinished upload: {e}"),
            }
        }
    }
}

fn unsupported(what: &str, place: String) -> io::Error {
    io::Error::new(io::ErrorKind::Unsupported, format!("{place}: {what}"))
}

impl S3Side {
    /// Run one async operation of `Inner` on the runtime.
    fn call<T, F, Fut>(&self, f: F) -> io::Result<T>
    where
        T: Send + 'static,
        F: FnOnce(Arc<Inner>) -> Fut,
        Fut: Future<Output = io::Result<T>> + Send + 'static,
    {
        run(f(self.inner.clone()))?
    }
}

impl Replica for S3Side {
    fn caps(&self) -> Caps {
        Caps {
            // Keys are compared byte for byte.
            case_insensitive: false,
            // LastModified is kept in whole seconds (HEAD) and stamped by the server.
            mtime_resolution_ns: 1_000_000_000,
            set_mtime: false,
            modes: false,
            // A rename is a copy: a new object, nothing survives it but the content.
            ids: false,
            version: VersionToken::Etag,
            weak_version: false,
            // A multipart upload's ETag is not the MD5 of the content.
            free_hash: None,
            // A PUT or a CopyObject replaces an object atomically.
            atomic_replace: true,
            keep_version: KeepVersion::ServerCopy,
            // The server commits an upload when it answers.
            needs_flush: false,
            // An object appears when its PUT or multipart upload completes.
            whole_uploads: true,
            cheap_listing: false,
            changes: ChangeSource::Poll,
        }
    }

    fn describe(&self, p: &RelPath) -> String {
        self.inner.describe(p)
    }

    fn note(&self) -> Option<String> {
        Some(format!(
            "S3 bucket {}: changes made on the server are found by polling; modification times are the server's upload times",
            self.inner.base()
        ))
    }

    fn stat(&self, p: &RelPath) -> io::Result<Option<Node>> {
        let p = p.clone();
        self.call(|i| async move { i.stat(&p).await })
    }

    fn read_dir(&self, p: &RelPath) -> io::Result<Vec<DirItem>> {
        let p = p.clone();
        self.call(|i| async move { i.read_dir(&p).await })
    }

    fn open_read(&self, p: &RelPath) -> io::Result<Box<dyn Read + Send>> {
        let path = p.clone();
        let stream = self.call(|i| async move {
            let key = file_key(&path);
            let r =
                i.op.reader_options(&key, ReaderOptions::default())
                    .await
                    .map_err(|e| i.err(&path, "open", e))?;
            let mut s = r.into_bytes_stream(..).await.map_err(|e| i.err(&path, "open", e))?;
            // Sends the GET now, so a missing object is an error of `open_read`.
            s.metadata().await.map_err(|e| i.err(&path, "open", e))?;
            Ok(s)
        })?;
        let secret = self.inner.secret.clone();
        Ok(Box::new(StreamReader::new(self.describe(p), stream, move |m| {
            scrub_secret(m, &secret)
        })))
    }

    fn create_new(&self, p: &RelPath) -> io::Result<Box<dyn FileWriter>> {
        let path = p.clone();
        let w = self.call(|i| async move { i.create_new(&path).await })?;
        Ok(Box::new(S3Writer {
            inner: self.inner.clone(),
            path: p.clone(),
            w: Some(w),
            buf: Vec::with_capacity(WRITE_BATCH),
        }))
    }

    fn rename(&self, from: &RelPath, to: &RelPath) -> io::Result<()> {
        let (from, to) = (from.clone(), to.clone());
        self.call(|i| async move { i.rename(&from, &to).await })
    }

    fn keep_copy(&self, from: &RelPath, to: &RelPath) -> io::Result<()> {
        let (from, to) = (from.clone(), to.clone());
        self.call(|i| async move { i.keep_copy(&from, &to).await })
    }

    fn remove_file(&self, p: &RelPath) -> io::Result<()> {
        let p = p.clone();
        self.call(|i| async move { i.remove_file(&p).await })
    }

    fn remove_dir(&self, p: &RelPath) -> io::Result<()> {
        let p = p.clone();
        self.call(|i| async move { i.remove_dir(&p).await })
    }

    fn create_dir_all(&self, p: &RelPath) -> io::Result<()> {
        let p = p.clone();
        self.call(|i| async move { i.create_dir_all(&p).await })
    }

    /// S3 has no settable modification time (LastModified is the upload's time; rewriting
    /// the object to change metadata would change it again).
    fn set_mtime(&self, p: &RelPath, _mtime_ns: i64) -> io::Result<()> {
        Err(unsupported(
            "S3 objects keep the server's upload time; it cannot be set",
            self.describe(p),
        ))
    }

    fn set_mode(&self, p: &RelPath, _mode: u32) -> io::Result<()> {
        Err(unsupported("S3 objects have no permission bits", self.describe(p)))
    }

    /// Nothing to do: an upload, copy or delete is durable when the server answers.
    fn make_durable(&self, _files: &[RelPath], _dirs: &[RelPath]) -> io::Result<()> {
        Ok(())
    }
}
