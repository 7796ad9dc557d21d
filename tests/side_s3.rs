//! The S3 side (`tandem::side::s3::S3Side`) against real S3 servers on loopback, no mocks:
//! moto (`moto_server`: enforces conditional writes, accepts any key) and `rclone serve s3`
//! (a folder served as a bucket: checks credentials, ignores conditional writes). Both come
//! from `target/test-venv` (`scripts/install-deps.sh`); a missing one fails the test. One
//! contract (`contract`) runs against both; then connection errors (wrong credentials,
//! unknown bucket, nothing listening: each names `s3://...` and never the secret), calls
//! from inside tokio runtimes, and an end-to-end sync of a local folder with a bucket
//! through the engine's pipeline (`api::sync_with`).

use crate::common::{free_port, output_text, venv_tool, write_local, ServerProc};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tandem::api::{self, SyncRequest};
use tandem::config::{PairConfig, SyncOptions};
use tandem::model::{Entry, Kind, RelPath};
use tandem::side::local::LocalSide;
use tandem::side::s3::{S3Config, S3Side};
use tandem::side::{ChangeSource, KeepVersion, Node, Replica, VersionToken};
use tandem::state::Store;

pub(crate) const KEY: &str = "tandem-test-key";
pub(crate) const SECRET: &str = "tandem-test-secret-0123456789";

fn tool(name: &str) -> PathBuf {
    venv_tool(name).unwrap_or_else(|| {
        panic!("{name} is not installed in target/test-venv: run scripts/install-deps.sh (the S3 side's tests need moto_server and rclone)")
    })
}

/// An S3 server on loopback ([`ServerProc`]: killed when dropped) and what it enforces.
pub(crate) struct Server {
    proc: ServerProc,
    /// Whether the server keeps folder markers (`rclone serve s3` turns a marker `d/` into
    /// a file `d`: the side detects that and writes none there, so an empty folder cannot
    /// be created through it).
    markers: bool,
    /// Whether it enforces conditional writes (`If-None-Match: *`); rclone ignores them.
    conditional: bool,
}

impl std::ops::Deref for Server {
    type Target = ServerProc;
    fn deref(&self) -> &ServerProc {
        &self.proc
    }
}

impl std::ops::DerefMut for Server {
    fn deref_mut(&mut self) -> &mut ServerProc {
        &mut self.proc
    }
}

impl Server {
    fn start(name: &'static str, dir: tempfile::TempDir, cmd: Command, port: u16) -> Server {
        Server {
            proc: ServerProc::start(name, dir, cmd, port),
            markers: !name.starts_with("rclone"),
            conditional: !name.starts_with("rclone"),
        }
    }

    /// `moto_server -H 127.0.0.1 -p PORT`.
    pub(crate) fn moto() -> Server {
        let port = free_port();
        let mut cmd = Command::new(tool("moto_server"));
        cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
        Server::start("moto_server", tempfile::tempdir().unwrap(), cmd, port)
    }

    /// `rclone serve s3 DIR`: buckets are subfolders of DIR (made by `bucket`).
    pub(crate) fn rclone() -> Server {
        Server::rclone_on(free_port())
    }

    fn rclone_on(port: u16) -> Server {
        Server::rclone_with(port, &[])
    }

    /// `rclone serve s3` with more flags (`--cert`/`--key`: HTTPS).
    fn rclone_with(port: u16, extra: &[&str]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("served");
        std::fs::create_dir(&root).unwrap();
        let conf = dir.path().join("rclone.conf");
        std::fs::write(&conf, "").unwrap();
        let mut cmd = Command::new(tool("rclone"));
        cmd.arg("serve")
            .arg("s3")
            .arg(&root)
            .args(["--addr", &format!("127.0.0.1:{port}")])
            .args(["--auth-key", &format!("{KEY},{SECRET}")])
            .args(["--dir-cache-time", "1s", "-v"])
            .args(extra)
            .arg("--config")
            .arg(&conf);
        Server::start("rclone serve s3", dir, cmd, port)
    }

    pub(crate) fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Create a bucket: a subfolder for rclone, an unsigned `PUT /BUCKET` for moto (which
    /// accepts any request).
    pub(crate) fn bucket(&self, bucket: &str) {
        if self.name.starts_with("rclone") {
            std::fs::create_dir(self.dir.path().join("served").join(bucket)).unwrap();
            return;
        }
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(
            s,
            "PUT /{bucket} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.port
        )
        .unwrap();
        let mut answer = String::new();
        s.read_to_string(&mut answer).unwrap();
        let status = answer.lines().next().unwrap_or("");
        assert!(status.contains(" 200"), "PUT /{bucket} on moto: {status}");
    }

    fn config(&self, bucket: &str, prefix: &str) -> S3Config {
        S3Config {
            endpoint: self.endpoint(),
            region: "us-east-1".into(),
            bucket: bucket.into(),
            prefix: prefix.into(),
            access_key: KEY.into(),
            secret_key: SECRET.into(),
        }
    }

    pub(crate) fn side(&self, bucket: &str, prefix: &str) -> S3Side {
        S3Side::connect(self.config(bucket, prefix)).unwrap_or_else(|e| panic!("connect to {}: {e}\n{}", self.name, self.log()))
    }
}

fn rp(s: &str) -> RelPath {
    RelPath::new(s).unwrap()
}

/// Deterministic bytes that do not compress (so a part boundary bug shows).
fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn put(side: &S3Side, p: &str, content: &[u8]) {
    let mut w = side.create_new(&rp(p)).unwrap_or_else(|e| panic!("create_new {p}: {e}"));
    for c in content.chunks(100_000) {
        w.write_all(c).unwrap_or_else(|e| panic!("write {p}: {e}"));
    }
    w.finish(1_600_000_000_000_000_000, 0o644)
        .unwrap_or_else(|e| panic!("finish {p}: {e}"));
}

fn get(side: &S3Side, p: &str) -> Vec<u8> {
    let mut out = Vec::new();
    side.open_read(&rp(p))
        .unwrap_or_else(|e| panic!("open_read {p}: {e}"))
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn stat(side: &S3Side, p: &str) -> Option<Entry> {
    match side.stat(&rp(p)).unwrap_or_else(|e| panic!("stat {p}: {e}")) {
        Some(Node::Entry(e)) => Some(e),
        None => None,
        Some(other) => panic!("{p}: unexpected {other:?}"),
    }
}

fn stat_root(side: &S3Side) -> Option<Entry> {
    match side.stat(&RelPath::root()).unwrap() {
        Some(Node::Entry(e)) => Some(e),
        other => panic!("root: {other:?}"),
    }
}

fn listing(side: &S3Side, p: &str) -> BTreeMap<String, Entry> {
    let dir = if p.is_empty() { RelPath::root() } else { rp(p) };
    side.read_dir(&dir)
        .unwrap_or_else(|e| panic!("read_dir {p:?}: {e}"))
        .into_iter()
        .map(|i| {
            let e = match i.node.unwrap() {
                Node::Entry(e) => e,
                other => panic!("{p}: unexpected {other:?}"),
            };
            (i.name.unwrap(), e)
        })
        .collect()
}

fn is_dir(e: &Option<Entry>) -> bool {
    e.as_ref().is_some_and(|e| e.kind == Kind::Dir)
}

/// The side's contract, on one server (a fresh bucket).
fn contract(srv: &Server) {
    let t = Instant::now();
    srv.bucket("contract");
    let side = srv.side("contract", "");
    assert!(
        is_dir(&stat_root(&side)),
        "{}: the root of a reachable bucket is a folder",
        srv.name
    );
    assert_eq!(side.describe(&rp("a/b.txt")), "s3://contract/a/b.txt");
    assert!(side.local_root().is_none());
    let caps = side.caps();
    assert!(!caps.case_insensitive && !caps.set_mtime && !caps.modes && !caps.ids && !caps.needs_flush && !caps.cheap_listing);
    assert_eq!(caps.mtime_resolution_ns, 1_000_000_000);
    assert_eq!(caps.version, VersionToken::Etag);
    assert_eq!(caps.keep_version, KeepVersion::ServerCopy);
    assert_eq!(caps.changes, ChangeSource::Poll);
    assert!(caps.atomic_replace && caps.free_hash.is_none());

    // Write, stat, read back.
    let a = b"hello from tandem\n".to_vec();
    put(&side, "a.txt", &a);
    let ea = stat(&side, "a.txt").expect("a.txt written");
    assert_eq!((ea.kind, ea.size, ea.mode, ea.file_id), (Kind::File, a.len() as u64, 0, 0));
    assert!(ea.version != 0, "an ETag gives a version token");
    assert!(
        ea.mtime > 1_700_000_000_000_000_000 && ea.mtime % 1_000_000_000 == 0,
        "mtime is the upload time in whole seconds: {}",
        ea.mtime
    );
    assert_eq!(get(&side, "a.txt"), a);
    put(&side, "empty.txt", b"");
    assert_eq!(stat(&side, "empty.txt").unwrap().size, 0);
    assert_eq!(get(&side, "empty.txt"), b"");

    // A 5 MiB file (one PUT, streamed) and one of three multipart parts.
    side.create_dir_all(&rp("big")).unwrap();
    for (name, len) in [
        ("big/five.bin", 5 * 1024 * 1024),
        ("big/multi.bin", 2 * tandem::side::s3::PART + 12_345),
    ] {
        let d = data(len, len as u64);
        put(&side, name, &d);
        assert_eq!(stat(&side, name).unwrap().size, len as u64, "{name}");
        let back = get(&side, name);
        assert!(back == d, "{}: {name} read back differs ({} bytes of {len})", srv.name, back.len());
    }

    // create_new never overwrites.
    let err = side.create_new(&rp("a.txt")).err().expect("create_new on an existing name fails");
    assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists, "{err}");
    assert!(err.to_string().contains("s3://contract/a.txt"), "{err}");
    assert_eq!(get(&side, "a.txt"), a, "the original is intact");
    assert_eq!(stat(&side, "a.txt").unwrap().version, ea.version);
    // An object that appears during the upload: where the server enforces "only if absent"
    // (moto) the upload fails and the other object stays; rclone ignores the condition
    // (the race the side documents), and the last upload wins.
    for (name, len) in [("race-small.bin", 10_000), ("race-multipart.bin", tandem::side::s3::PART + 10_000)] {
        let mut w = side.create_new(&rp(name)).unwrap();
        w.write_all(&data(len, 11)).unwrap();
        put(&side, name, b"the other writer");
        let res = w.finish(0, 0);
        if srv.conditional {
            let e = res.expect_err("an upload does not overwrite an object that appeared meanwhile");
            assert_eq!(e.kind(), std::io::ErrorKind::AlreadyExists, "{e}");
            assert!(e.to_string().contains(&format!("s3://contract/{name}")), "{e}");
            assert_eq!(get(&side, name), b"the other writer");
        } else {
            res.unwrap();
            assert_eq!(get(&side, name).len(), len);
        }
        side.remove_file(&rp(name)).unwrap();
    }

    // Folders: markers, implicit folders, listings.
    side.create_dir_all(&rp("d/e")).unwrap();
    if srv.markers {
        assert!(is_dir(&stat(&side, "d")) && is_dir(&stat(&side, "d/e")));
    } else {
        assert!(stat(&side, "d").is_none(), "{}: no marker, no folder", srv.name);
    }
    side.create_dir_all(&rp("d/e")).unwrap(); // again: nothing to do
    put(&side, "d/f.txt", b"f");
    put(&side, "implicit/g.txt", b"g"); // a folder made only by a key below it
    assert!(is_dir(&stat(&side, "implicit")));
    assert!(stat(&side, "nothing").is_none());
    assert!(stat(&side, "d/nothing").is_none());
    let root = listing(&side, "");
    let names: Vec<&str> = root.keys().map(|s| s.as_str()).collect();
    assert_eq!(names, ["a.txt", "big", "d", "empty.txt", "implicit"], "{}", srv.name);
    assert_eq!(root["a.txt"], ea, "a listing gives the same metadata as a stat");
    assert_eq!(root["d"].kind, Kind::Dir);
    let d = listing(&side, "d");
    let want: &[&str] = if srv.markers { &["e", "f.txt"] } else { &["f.txt"] };
    assert_eq!(d.keys().map(|s| s.as_str()).collect::<Vec<_>>(), want, "no marker in the listing");
    assert_eq!((d["f.txt"].kind, d["f.txt"].size), (Kind::File, 1));
    assert_eq!(Some(d["f.txt"]), stat(&side, "d/f.txt"));
    if srv.markers {
        assert_eq!(d["e"].kind, Kind::Dir);
        assert!(listing(&side, "d/e").is_empty());
    }
    let big = listing(&side, "big");
    assert_eq!(big["five.bin"].size, 5 * 1024 * 1024);
    let err = side.read_dir(&rp("nothing")).expect_err("no such folder");
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound, "{err}");
    assert!(side.create_dir_all(&rp("a.txt/x")).is_err(), "a file is in the way");

    // An empty folder: stat, remove; a full one is not removed.
    if srv.markers {
        side.create_dir_all(&rp("empty")).unwrap();
        assert!(is_dir(&stat(&side, "empty")));
    } else {
        // Made behind the server, on the disk it serves.
        let on_disk = srv.dir.path().join("served/contract/empty");
        std::fs::create_dir(&on_disk).unwrap();
        std::thread::sleep(Duration::from_millis(1200)); // --dir-cache-time 1s
        side.remove_dir(&rp("empty")).unwrap();
        assert!(!on_disk.exists(), "{}: empty folder removed", srv.name);
        std::fs::create_dir(&on_disk).unwrap();
        std::thread::sleep(Duration::from_millis(1200));
    }
    assert_eq!(
        listing(&side, "").get("empty").map(|e| e.kind),
        Some(Kind::Dir),
        "{}: an empty folder is listed",
        srv.name
    );
    side.remove_dir(&rp("empty")).unwrap();
    assert!(stat(&side, "empty").is_none(), "{}: empty folder removed", srv.name);
    assert!(!listing(&side, "").contains_key("empty"), "{}: empty folder removed", srv.name);
    let err = side.remove_dir(&rp("d")).expect_err("a folder with keys below is not removed");
    assert!(err.to_string().contains("s3://contract/d"), "{err}");
    assert!(err.kind() == std::io::ErrorKind::DirectoryNotEmpty, "{err}");
    assert_eq!(get(&side, "d/f.txt"), b"f");

    // Rename a file; rename onto an existing file replaces it.
    side.rename(&rp("a.txt"), &rp("b.txt")).unwrap();
    assert!(stat(&side, "a.txt").is_none());
    assert_eq!(get(&side, "b.txt"), a);
    put(&side, "c.txt", b"old c");
    side.rename(&rp("b.txt"), &rp("c.txt")).unwrap();
    assert_eq!(get(&side, "c.txt"), a);
    assert!(stat(&side, "b.txt").is_none());

    // Rename a folder with its contents (a file, an empty subfolder).
    side.rename(&rp("d"), &rp("d2")).unwrap();
    assert!(stat(&side, "d").is_none(), "{}: the old folder is gone", srv.name);
    assert_eq!(get(&side, "d2/f.txt"), b"f");
    if srv.markers {
        assert!(is_dir(&stat(&side, "d2/e")), "{}: the empty subfolder moved too", srv.name);
    }
    assert!(side.rename(&rp("d2"), &rp("d2/in")).is_err(), "not into itself");

    // keep_copy: a server-side copy, never over something.
    side.create_dir_all(&rp("keep")).unwrap();
    side.keep_copy(&rp("c.txt"), &rp("keep/c.txt")).unwrap();
    assert_eq!(get(&side, "keep/c.txt"), a);
    assert_eq!(get(&side, "c.txt"), a);
    let err = side
        .keep_copy(&rp("c.txt"), &rp("keep/c.txt"))
        .expect_err("keep_copy does not overwrite");
    assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists, "{err}");

    // remove_file.
    side.remove_file(&rp("keep/c.txt")).unwrap();
    assert!(stat(&side, "keep/c.txt").is_none());
    let err = side.remove_file(&rp("keep/c.txt")).expect_err("removing a missing file fails");
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound, "{err}");
    assert!(err.to_string().contains("s3://contract/keep/c.txt"), "{err}");

    // The version token changes when the content is rewritten (same size, same second).
    let v1 = stat(&side, "c.txt").unwrap();
    let other: Vec<u8> = a.iter().map(|b| b ^ 1).collect();
    put(&side, "c.tmp", &other);
    side.rename(&rp("c.tmp"), &rp("c.txt")).unwrap();
    let v2 = stat(&side, "c.txt").unwrap();
    assert_eq!(get(&side, "c.txt"), other);
    assert!(
        v2.version != 0 && v2.version != v1.version,
        "{}: version token changed ({} -> {})",
        srv.name,
        v1.version,
        v2.version
    );

    // A writer dropped without finish leaves no object (small: never sent; large: a
    // multipart upload aborted), and the name stays free.
    for (name, len) in [
        ("dropped-small.bin", 1000),
        ("dropped-large.bin", tandem::side::s3::PART + 1_000_000),
    ] {
        let mut w = side.create_new(&rp(name)).unwrap();
        w.write_all(&data(len, 7)).unwrap();
        drop(w);
        assert!(stat(&side, name).is_none(), "{}: {name} left an object behind", srv.name);
        put(&side, name, b"again");
        assert_eq!(get(&side, name), b"again");
    }

    // Properties S3 cannot keep.
    for e in [
        side.set_mtime(&rp("c.txt"), 0).unwrap_err(),
        side.set_mode(&rp("c.txt"), 0o600).unwrap_err(),
    ] {
        assert_eq!(e.kind(), std::io::ErrorKind::Unsupported, "{e}");
        assert!(e.to_string().contains("s3://contract/c.txt"), "{e}");
    }
    side.make_durable(&[rp("c.txt")], &[RelPath::root()]).unwrap();
    assert!(side.open_read(&rp("nothing.txt")).err().unwrap().kind() == std::io::ErrorKind::NotFound);

    // A key prefix keeps everything under it.
    let pre = srv.side("contract", "/pre/fix/");
    assert_eq!(pre.describe(&rp("x.txt")), "s3://contract/pre/fix/x.txt");
    assert_eq!(pre.describe(&RelPath::root()), "s3://contract/pre/fix");
    assert!(is_dir(&stat_root(&pre)));
    assert!(listing(&pre, "").is_empty(), "{}: nothing under the prefix yet", srv.name);
    put(&pre, "x.txt", b"x");
    pre.create_dir_all(&rp("sub")).unwrap();
    put(&pre, "sub/y.txt", b"y");
    pre.rename(&rp("sub"), &rp("sub2")).unwrap();
    assert!(stat(&pre, "c.txt").is_none(), "the prefixed side does not see keys outside it");
    assert_eq!(listing(&pre, "").keys().map(|s| s.as_str()).collect::<Vec<_>>(), ["sub2", "x.txt"]);
    assert_eq!(get(&side, "pre/fix/x.txt"), b"x", "stored under the prefix");
    assert_eq!(get(&side, "pre/fix/sub2/y.txt"), b"y");
    assert!(is_dir(&stat(&side, "pre")));
    assert_eq!(get(&side, "c.txt"), other, "keys outside the prefix untouched");
    eprintln!("{}: contract passed in {:?}", srv.name, t.elapsed());
}

#[test]
fn s3_contract_on_moto() {
    contract(&Server::moto());
}

#[test]
fn s3_contract_on_rclone_serve_s3() {
    contract(&Server::rclone());
}

fn assert_clean_error(e: &std::io::Error, place: &str) {
    let text = e.to_string();
    assert!(text.contains(place), "the error names {place}: {text}");
    assert!(!text.contains(SECRET) && !text.contains("wrong-secret"), "no secret in: {text}");
    eprintln!("{text}");
}

#[test]
fn s3_connect_errors_name_the_place_and_never_the_secret() {
    // Wrong credentials (rclone checks them; moto accepts any).
    let srv = Server::rclone();
    srv.bucket("b");
    let mut cfg = srv.config("b", "some/prefix");
    cfg.secret_key = "wrong-secret-abcdef".into();
    assert!(!format!("{cfg:?}").contains("wrong-secret"), "Debug hides the secret: {cfg:?}");
    assert!(format!("{cfg:?}").contains("***"));
    let e = S3Side::connect(cfg).expect_err("wrong credentials");
    assert_clean_error(&e, "s3://b/some/prefix");
    assert_eq!(e.kind(), std::io::ErrorKind::PermissionDenied, "{e}");
    assert!(e.to_string().contains("access denied"), "{e}");

    // An unknown bucket.
    let moto = Server::moto();
    let e = S3Side::connect(moto.config("no-such-bucket", "")).expect_err("unknown bucket");
    assert_clean_error(&e, "s3://no-such-bucket");
    assert!(e.to_string().contains("no such bucket"), "{e}");

    // Nothing listening.
    let mut cfg = moto.config("b", "p");
    cfg.endpoint = format!("http://127.0.0.1:{}", free_port());
    let t = Instant::now();
    let e = S3Side::connect(cfg).expect_err("unreachable server");
    assert_clean_error(&e, "s3://b/p");
    assert!(e.to_string().contains("cannot be reached"), "{e}");
    assert!(t.elapsed() < Duration::from_secs(60), "gave up after retries: {:?}", t.elapsed());

    // A bad prefix.
    let e = S3Side::connect(moto.config("b", "a/../b")).expect_err("bad prefix");
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
}

#[test]
fn s3_side_works_when_called_from_inside_tokio_runtimes() {
    let srv = Server::moto();
    srv.bucket("runtimes");
    let side = Arc::new(srv.side("runtimes", ""));
    put(&side, "f.txt", b"from a plain thread");
    // A current-thread runtime and a worker of a multi-thread one (as the local API's
    // handlers are): blocking calls must neither panic nor deadlock.
    let ct = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let s = side.clone();
    ct.block_on(async move {
        assert!(s.stat(&rp("f.txt")).unwrap().is_some());
        put(&s, "g.txt", b"from a current-thread runtime");
    });
    let mt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let s = side.clone();
    mt.block_on(async move {
        let h = tokio::spawn(async move {
            let mut n = 0;
            // Many calls from one task (a cooperative budget must not get in the way).
            for _ in 0..300 {
                n += s.read_dir(&RelPath::root()).unwrap().len();
            }
            assert_eq!(get(&s, "g.txt"), b"from a current-thread runtime");
            n
        });
        assert_eq!(h.await.unwrap(), 600);
    });
    // The side can also be dropped on a runtime thread.
    let s = side.clone();
    drop(side);
    mt.block_on(async move { drop(s) });
}

#[test]
fn s3_end_to_end_sync_with_a_local_folder() {
    let srv = Server::moto();
    srv.bucket("sync");
    let s3 = Arc::new(srv.side("sync", "pair/one"));
    let dir = tempfile::tempdir().unwrap();
    let left = dir.path().join("left");
    write_local(&left, "a.txt", b"alpha");
    write_local(&left, "docs/b.md", b"# bee\n");
    let c = data(300_000, 3);
    write_local(&left, "docs/deep/c.bin", &c);
    std::fs::create_dir_all(left.join("empty")).unwrap();
    let local = Arc::new(LocalSide::new(&left));
    let mut store = Store::in_memory().unwrap();
    let pair = PairConfig {
        name: "s3".into(),
        left: left.clone(),
        right: PathBuf::from("s3://sync/pair/one"),
        options: SyncOptions::default(),
    };
    let mut sync = |what: &str| {
        let t = Instant::now();
        let r = api::sync_with(&mut store, &pair, &*local, &*s3, &SyncRequest::default())
            .unwrap_or_else(|e| panic!("{what}: sync failed: {e}"));
        let failed: Vec<String> = r
            .plan
            .actions
            .iter()
            .zip(&r.outcomes)
            .filter(|(_, o)| !matches!(o, Some(tandem::engine::exec::Outcome::Done { .. }) | None))
            .map(|(a, o)| format!("{a:?} -> {o:?}"))
            .collect();
        assert!(
            r.fatal.is_none() && r.counts.failed == 0 && failed.is_empty(),
            "{what}: {:?} {:?}\n{}",
            r.fatal,
            r.counts,
            failed.join("\n")
        );
        eprintln!("{what}: {} actions in {:?}", r.plan.actions.len(), t.elapsed());
        r
    };

    // Left to the bucket.
    let r1 = sync("first sync");
    assert!(r1.counts.copied >= 3, "{:?}", r1.counts);
    let at = |p: &str| {
        let mut out = Vec::new();
        s3.open_read(&rp(p))
            .unwrap_or_else(|e| panic!("{p} in the bucket: {e}"))
            .read_to_end(&mut out)
            .unwrap();
        out
    };
    assert_eq!(at("a.txt"), b"alpha");
    assert_eq!(at("docs/b.md"), b"# bee\n");
    assert!(at("docs/deep/c.bin") == c);
    assert!(
        matches!(s3.stat(&rp("empty")).unwrap(), Some(Node::Entry(e)) if e.kind == Kind::Dir),
        "the empty folder exists in the bucket"
    );

    // An edit in the bucket (another client's upload) comes back.
    let tmp = rp("docs/b.md.upload");
    let mut w = s3.create_new(&tmp).unwrap();
    w.write_all(b"# bee, edited in the bucket\n").unwrap();
    w.finish(0, 0).unwrap();
    s3.rename(&tmp, &rp("docs/b.md")).unwrap();
    let r2 = sync("second sync");
    assert_eq!(std::fs::read(left.join("docs/b.md")).unwrap(), b"# bee, edited in the bucket\n");
    assert!(r2.counts.copied >= 1, "{:?}", r2.counts);

    // Nothing changed: nothing to do.
    let r3 = sync("third sync");
    let acts: Vec<_> = r3.plan.disk_actions().collect();
    assert!(acts.is_empty(), "a sync with no change does nothing: {acts:?}");
    assert_eq!(r3.counts.copied, 0);
}

pub(crate) const AWS_VARS: [&str; 5] = [
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_REGION",
];

/// `tandem` with the S3 variables of an ad-hoc pair (and nothing from the caller's).
fn tandem_env(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    crate::common::tandem_env(args, env, &AWS_VARS)
}

fn assert_secret_nowhere(dir: &Path, secret_file: Option<&Path>, texts: &[&str]) {
    crate::common::assert_secret_nowhere(SECRET, dir, secret_file, texts)
}

#[test]
fn s3_cli_sync_with_an_s3_url_takes_credentials_from_the_environment() {
    let srv = Server::rclone();
    srv.bucket("team");
    let served = srv.dir.path().join("served/team/share");
    let dir = tempfile::tempdir().unwrap();
    let left = dir.path().join("left");
    write_local(&left, "plan.txt", b"the plan");
    write_local(&left, "sub/notes.md", b"notes");
    let state = dir.path().join("state.db");
    let endpoint = srv.endpoint();
    let good = [
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("AWS_ACCESS_KEY_ID", KEY),
        ("AWS_SECRET_ACCESS_KEY", SECRET),
    ];
    let args = [
        "--state",
        state.to_str().unwrap(),
        "sync",
        left.to_str().unwrap(),
        "s3://team/share",
    ];
    let o = tandem_env(&args, &good);
    assert_eq!(o.status.code(), Some(0), "{}", output_text(&o));
    assert_eq!(std::fs::read(served.join("plan.txt")).unwrap(), b"the plan");
    assert_eq!(std::fs::read(served.join("sub/notes.md")).unwrap(), b"notes");
    // Another client's upload to the bucket comes down.
    std::fs::write(served.join("sub/from the bucket.txt"), b"uploaded elsewhere").unwrap();
    std::thread::sleep(Duration::from_millis(1100)); // rclone's --dir-cache-time 1s
    let o2 = tandem_env(&args, &good);
    assert_eq!(o2.status.code(), Some(0), "{}", output_text(&o2));
    assert_eq!(std::fs::read(left.join("sub/from the bucket.txt")).unwrap(), b"uploaded elsewhere");
    // A wrong secret: a clear error naming the place and the key id, never the secret.
    let wrong = [
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("AWS_ACCESS_KEY_ID", KEY),
        ("AWS_SECRET_ACCESS_KEY", "not-the-secret-42"),
    ];
    let o3 = tandem_env(&args, &wrong);
    assert_ne!(o3.status.code(), Some(0));
    assert!(
        output_text(&o3).contains("s3://team/share") && !output_text(&o3).contains("not-the-secret-42"),
        "{}",
        output_text(&o3)
    );
    // No secret at all: says where one goes.
    let o4 = tandem_env(&args, &good[..2]);
    assert_eq!(o4.status.code(), Some(2), "{}", output_text(&o4));
    assert!(
        output_text(&o4).contains("AWS_SECRET_ACCESS_KEY") && output_text(&o4).contains("secret_file"),
        "{}",
        output_text(&o4)
    );
    let h = tandem_env(&["--state", state.to_str().unwrap(), "history", "--json"], &[]);
    assert_secret_nowhere(
        dir.path(),
        None,
        &[
            &output_text(&o),
            &output_text(&o2),
            &output_text(&o3),
            &output_text(&o4),
            &output_text(&h),
        ],
    );
}

/// An `https://` endpoint: the server's certificate is checked against the system's roots
/// (refused while its CA is not among them, naming the endpoint; accepted once it is, here
/// through `SSL_CERT_FILE`).
#[test]
fn s3_over_https_verifies_the_server_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = crate::common::test_ca(dir.path());
    let srv = Server::rclone_with(free_port(), &["--cert", cert.to_str().unwrap(), "--key", key.to_str().unwrap()]);
    srv.bucket("tls");
    let left = dir.path().join("left");
    write_local(&left, "ledger.csv", b"1,2,3");
    let state = dir.path().join("state.db");
    let endpoint = format!("https://127.0.0.1:{}", srv.port);
    let args = ["--state", state.to_str().unwrap(), "sync", left.to_str().unwrap(), "s3://tls/books"];
    let untrusted = dir.path().join("no-such-roots.pem");
    std::fs::write(&untrusted, "").unwrap();
    let env = |roots: &std::path::Path| {
        [
            ("AWS_ENDPOINT_URL", endpoint.clone()),
            ("AWS_ACCESS_KEY_ID", KEY.to_string()),
            ("AWS_SECRET_ACCESS_KEY", SECRET.to_string()),
            ("SSL_CERT_FILE", roots.to_str().unwrap().to_string()),
        ]
    };
    let run = |roots: &std::path::Path| {
        let e = env(roots);
        let e: Vec<(&str, &str)> = e.iter().map(|(k, v)| (*k, v.as_str())).collect();
        tandem_env(&args, &e)
    };
    let o = run(&untrusted);
    let text = output_text(&o);
    assert_eq!(o.status.code(), Some(1), "{text}");
    assert!(
        text.contains("s3://tls/books") && text.to_lowercase().contains("certificate"),
        "{text}"
    );
    assert!(!srv.dir.path().join("served/tls/books/ledger.csv").exists());
    let o = run(&ca);
    assert_eq!(o.status.code(), Some(0), "{}", output_text(&o));
    assert_eq!(std::fs::read(srv.dir.path().join("served/tls/books/ledger.csv")).unwrap(), b"1,2,3");
}

#[test]
fn s3_secret_file_must_be_private() {
    let srv = Server::rclone();
    srv.bucket("b");
    let dir = tempfile::tempdir().unwrap();
    let left = dir.path().join("left");
    std::fs::create_dir_all(&left).unwrap();
    let secret = dir.path().join("s3.secret");
    std::fs::write(&secret, format!("{SECRET}\n")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
    let cfg = dir.path().join("tandem.toml");
    std::fs::write(
        &cfg,
        format!(
            "[[pair]]\nname = \"b\"\nleft = {:?}\nright = \"s3://b/x\"\n[pair.remote]\nendpoint = {:?}\nuser = {KEY:?}\nsecret_file = \"s3.secret\"\n",
            left.to_str().unwrap(),
            srv.endpoint()
        ),
    )
    .unwrap();
    let state = dir.path().join("state.db");
    let args = ["--state", state.to_str().unwrap(), "sync", "--config", cfg.to_str().unwrap()];
    let o = tandem_env(&args, &[]);
    assert_eq!(o.status.code(), Some(2), "{}", output_text(&o));
    assert!(
        output_text(&o).contains("s3.secret") && output_text(&o).contains("chmod 600"),
        "{}",
        output_text(&o)
    );
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    write_local(&left, "ok.txt", b"ok");
    let o = tandem_env(&args, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", output_text(&o));
    assert!(srv.dir.path().join("served/b/x/ok.txt").is_file());
    assert_secret_nowhere(dir.path(), Some(&secret), &[&output_text(&o)]);
}

#[test]
fn s3_service_polls_the_bucket_and_never_shows_the_secret() {
    let srv = Server::rclone();
    srv.bucket("live");
    let served = srv.dir.path().join("served/live");
    let p = crate::common::Pair::new();
    let secret = p.dir.path().join("s3.secret");
    std::fs::write(&secret, SECRET).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let cfg = p.dir.path().join("tandem.toml");
    std::fs::write(
        &cfg,
        format!(
            "poll_interval = \"1s\"\n[[pair]]\nname = \"live\"\nleft = {:?}\nright = \"s3://live\"\n[pair.remote]\nendpoint = {:?}\nuser = {KEY:?}\nsecret_file = {:?}\n",
            p.left.to_str().unwrap(),
            srv.endpoint(),
            secret.to_str().unwrap()
        ),
    )
    .unwrap();
    p.write(tandem::model::Side::Left, "start.txt", b"there at the start");
    let _svc = crate::common::start_service(&p, &["--config", cfg.to_str().unwrap()], &[]);
    let t = Duration::from_secs(30);
    crate::common::wait_for("the startup copy to the bucket", t, || served.join("start.txt").is_file());
    let status = || {
        let o = p.tandem(&["--state", p.state.to_str().unwrap(), "status", "--json"]);
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let st: serde_json::Value = serde_json::from_str(&status()).unwrap();
    assert_eq!(st["pairs"][0]["watch"][1]["mode"], "polling", "{st}");
    let why = st["pairs"][0]["watch"][1]["reason"].as_str().unwrap();
    assert!(why.contains("polling every 1 s") && why.contains("no file events"), "{why}");
    // Another client's upload, and a local edit.
    std::fs::create_dir_all(served.join("in")).unwrap();
    std::fs::write(served.join("in/new.txt"), b"from another client").unwrap();
    p.write(tandem::model::Side::Left, "mine.txt", b"from here");
    crate::common::wait_for("both changes", t, || {
        p.read(tandem::model::Side::Left, "in/new.txt").is_some() && served.join("mine.txt").is_file()
    });
    let h = p.tandem(&["--state", p.state.to_str().unwrap(), "history", "--json"]);
    let cfg_shown = p.tandem(&["check-config", cfg.to_str().unwrap()]);
    assert_secret_nowhere(
        p.dir.path(),
        Some(&secret),
        &[&status(), &output_text(&h), &output_text(&cfg_shown)],
    );
}

#[test]
fn s3_service_started_while_the_server_is_down_syncs_once_it_answers() {
    let port = free_port();
    let p = crate::common::Pair::new();
    let cfg = p.dir.path().join("tandem.toml");
    std::fs::write(
        &cfg,
        format!(
            "poll_interval = \"1s\"\n[[pair]]\nname = \"late\"\nleft = {:?}\nright = \"s3://late/x\"\n[pair.remote]\nendpoint = \"http://127.0.0.1:{port}\"\nuser = {KEY:?}\nsecret_env = \"TANDEM_TEST_S3_SECRET\"\n",
            p.left.to_str().unwrap(),
        ),
    )
    .unwrap();
    p.write(tandem::model::Side::Left, "waiting.txt", b"waits for the server");
    let _svc = crate::common::start_service(&p, &["--config", cfg.to_str().unwrap()], &[("TANDEM_TEST_S3_SECRET", SECRET)]);
    let t = Duration::from_secs(60);
    // The service runs; the pair says why it cannot sync.
    crate::common::wait_for("the pair's error", t, || {
        let o = p.tandem(&["--state", p.state.to_str().unwrap(), "status", "--json"]);
        let st: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
        st["pairs"][0]["state"] == "error" && st["pairs"][0]["reason"].as_str().unwrap_or("").contains("s3://late/x")
    });
    // The server comes up: the next poll connects and syncs.
    let srv = Server::rclone_on(port);
    srv.bucket("late");
    crate::common::wait_for("the copy once the server answers", t, || {
        srv.dir.path().join("served/late/x/waiting.txt").is_file()
    });
}

#[test]
fn s3_kill_9_during_an_upload_leaves_no_partial_object_and_the_next_run_completes() {
    // moto: what an S3 client sees. (`rclone serve s3` writes an upload straight into the
    // served folder, where a file of the full size appears at once: not an S3 view.)
    let srv = Server::moto();
    srv.bucket("crash");
    let bucket = srv.side("crash", "x");
    let p = crate::common::Pair::new();
    let big = data(24 << 20, 7);
    write_local(&p.left, "big.bin", &big);
    write_local(&p.left, "small.txt", b"small");
    let cfg = p.dir.path().join("tandem.toml");
    let text = format!(
        "[bandwidth]\nleft_to_right = \"4 MB\"\n[[pair]]\nname = \"c\"\nleft = {:?}\nright = \"s3://crash/x\"\n[pair.remote]\nendpoint = {:?}\nuser = {KEY:?}\nsecret_env = \"TANDEM_TEST_S3_SECRET\"\n",
        p.left.to_str().unwrap(),
        srv.endpoint()
    );
    std::fs::write(&cfg, &text).unwrap();
    // The service's startup run uploads under the bandwidth limit: at 4 MB/s the 24 MiB
    // take ~6 s; the service is killed (SIGKILL) in the middle.
    let mut svc = crate::common::start_service(&p, &["--config", cfg.to_str().unwrap()], &[("TANDEM_TEST_S3_SECRET", SECRET)]);
    // New files go straight to their names (an S3 object appears whole when its upload
    // completes): the small one is there at once, the big one still streaming.
    crate::common::wait_for("the small file uploaded", Duration::from_secs(30), || {
        stat(&bucket, "small.txt").is_some()
    });
    std::thread::sleep(Duration::from_secs(2));
    svc.kill();
    assert_eq!(stat(&bucket, "big.bin"), None, "an object is visible after the kill");
    assert!(get(&bucket, "small.txt") == b"small");
    // The next run completes it.
    let o = Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args(["--state", p.state.to_str().unwrap(), "sync", "--config", cfg.to_str().unwrap()])
        .env("TANDEM_TEST_S3_SECRET", SECRET)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", output_text(&o));
    assert!(get(&bucket, "big.bin") == big);
    let names: Vec<String> = listing(&bucket, "").into_keys().filter(|k| !k.starts_with(".sync_trash")).collect();
    assert_eq!(names, ["big.bin", "small.txt"], "no temporary objects left");
}

/// `rclone serve s3` answers a HEAD after a server-side copy with the copy's time but lists
/// the file's own mtime later: every renamed-into-place upload then looked like a property
/// change on the server, and the executor's re-checks deferred copies as "changed since
/// the scan", so two-way runs with edits on both sides never converged.
#[test]
fn s3_regression_server_stamped_mtimes_made_runs_defer_and_never_converge() {
    let srv = Server::rclone();
    srv.bucket("conv");
    let served = srv.dir.path().join("served/conv/t");
    let dir = tempfile::tempdir().unwrap();
    let left = dir.path().join("left");
    for i in 0..40 {
        write_local(&left, &format!("d{}/f{i}.txt", i % 4), &data(1000 + i * 37, i as u64));
    }
    let state = dir.path().join("state.db");
    let endpoint = srv.endpoint();
    let env = [
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("AWS_ACCESS_KEY_ID", KEY),
        ("AWS_SECRET_ACCESS_KEY", SECRET),
    ];
    let sync = |extra: &[&str]| {
        let mut args = vec!["--state", state.to_str().unwrap(), "sync", left.to_str().unwrap(), "s3://conv/t"];
        args.extend_from_slice(extra);
        let o = tandem_env(&args, &env);
        assert_eq!(o.status.code(), Some(0), "{}", output_text(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    sync(&[]);
    for round in 0..2u64 {
        std::thread::sleep(Duration::from_millis(1100));
        // Edits on both sides (the server's behind rclone, as another client's), a rename.
        for i in [1u64, 5, 9] {
            write_local(
                &left,
                &format!("d{}/f{i}.txt", i % 4),
                &data(2000 + i as usize, 100 + round * 10 + i),
            );
        }
        for i in [2u64, 6] {
            std::fs::write(served.join(format!("d{}/f{i}.txt", i % 4)), data(3000, 200 + round * 10 + i)).unwrap();
        }
        let (from, to) = (format!("d3/f{}.txt", 3 + round * 4), format!("d0/moved-{round}.txt"));
        std::fs::rename(left.join(&from), left.join(&to)).unwrap();
        std::thread::sleep(Duration::from_millis(1300)); // rclone's --dir-cache-time 1s
        let out = sync(&[]);
        assert!(!out.contains("deferred"), "round {round}: {out}");
        std::thread::sleep(Duration::from_millis(1300));
        let mut l = crate::common::files_below(&left, true);
        let r = crate::common::files_below(&served, true);
        l.retain(|k, _| !k.starts_with(".sync_trash"));
        assert!(
            l == r,
            "round {round}: the sides differ: {:?}",
            l.keys().filter(|k| r.get(*k) != l.get(*k)).collect::<Vec<_>>()
        );
        let again = sync(&["--dry-run"]);
        assert!(
            again.contains("0 actions planned") || again.contains("nothing to do"),
            "round {round}: a settled pair plans again: {again}"
        );
    }
}

#[test]
fn s3_server_restarted_while_the_service_runs_changes_still_arrive() {
    let mut srv = Server::rclone();
    srv.bucket("rs");
    let served = srv.dir.path().join("served/rs");
    let p = crate::common::Pair::new();
    let cfg = p.dir.path().join("tandem.toml");
    std::fs::write(
        &cfg,
        format!(
            "poll_interval = \"1s\"\n[[pair]]\nname = \"rs\"\nleft = {:?}\nright = \"s3://rs\"\n[pair.remote]\nendpoint = {:?}\nuser = {KEY:?}\nsecret_env = \"TANDEM_TEST_S3_SECRET\"\n",
            p.left.to_str().unwrap(),
            srv.endpoint()
        ),
    )
    .unwrap();
    let _svc = crate::common::start_service(&p, &["--config", cfg.to_str().unwrap()], &[("TANDEM_TEST_S3_SECRET", SECRET)]);
    let t = Duration::from_secs(60);
    p.write(tandem::model::Side::Left, "before.txt", b"before the restart");
    crate::common::wait_for("the first upload", t, || served.join("before.txt").is_file());
    // The server goes away (SIGKILL) and comes back; meanwhile both sides change.
    srv.kill();
    p.write(tandem::model::Side::Left, "during.txt", b"written while the server was down");
    std::thread::sleep(Duration::from_secs(2));
    std::fs::write(served.join("theirs.txt"), b"uploaded by another client").unwrap();
    srv.restart();
    crate::common::wait_for("both changes after the restart", t, || {
        served.join("during.txt").is_file() && p.read(tandem::model::Side::Left, "theirs.txt").is_some()
    });
    assert_eq!(
        std::fs::read(served.join("during.txt")).unwrap(),
        b"written while the server was down"
    );
    assert_eq!(
        std::fs::read(served.join("before.txt")).unwrap(),
        b"before the restart",
        "nothing lost"
    );
}
