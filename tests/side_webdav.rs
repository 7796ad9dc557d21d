//! The WebDAV side (`tandem::side::webdav::WebDavSide`) against real WebDAV servers on
//! loopback, no mocks: wsgidav (enforces `If-None-Match`/`If-Match`, no settable mtimes) and
//! `rclone serve webdav` (ignores conditions, sets mtimes by PROPPATCH and `X-OC-Mtime`),
//! both from `target/test-venv` (`scripts/install-deps.sh`; a missing one skips the test and
//! says why). One contract (`contract`) runs against both; then what the probes find on each,
//! connection errors (nothing listening, a refused password, a missing folder: each names
//! the URL and never the password), a 64 MiB upload that must stream (the test process's
//! peak RSS is measured), calls from inside tokio runtimes, and end-to-end two-way syncs of a
//! local folder with a WebDAV folder through the engine's pipeline (`api::sync_with`).

use crate::common::{files_below, free_port, venv_tool, write_local, ServerProc};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tandem::api::{self, SyncRequest};
use tandem::config::{PairConfig, SyncOptions};
use tandem::model::{Entry, Kind, RelPath};
use tandem::side::local::LocalSide;
use tandem::side::webdav::{WebDavConfig, WebDavSide, SMALL};
use tandem::side::{ChangeSource, KeepVersion, Node, Replica, VersionToken};
use tandem::state::Store;

const USER: &str = "tandem-user";
const PASS: &str = "tandem-pass-0123456789";

/// A WebDAV server on loopback serving `dir/served` ([`ServerProc`]: killed when dropped)
/// and what it does.
pub(crate) struct Server {
    proc: ServerProc,
    /// Whether it checks a user and password.
    auth: bool,
    /// Whether it enforces `If-None-Match: *` / `If-Match` (wsgidav does, rclone does not).
    conditional: bool,
    /// Whether mtimes can be set (rclone: PROPPATCH `lastmodified`; wsgidav: no).
    set_mtime: bool,
}

impl std::ops::Deref for Server {
    type Target = ServerProc;
    fn deref(&self) -> &ServerProc {
        &self.proc
    }
}

/// The tool, installed by `scripts/install-deps.sh`, or a clear failure.
fn tool(name: &str) -> PathBuf {
    venv_tool(name).unwrap_or_else(|| {
        panic!("{name} is not installed in target/test-venv: run scripts/install-deps.sh (the WebDAV tests need wsgidav and rclone)")
    })
}

impl Server {
    fn start(name: &'static str, dir: tempfile::TempDir, cmd: Command, port: u16, auth: bool) -> Server {
        Server {
            proc: ServerProc::start(name, dir, cmd, port),
            auth,
            conditional: name.starts_with("wsgidav"),
            set_mtime: !name.starts_with("wsgidav"),
        }
    }

    fn served_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("served")).unwrap();
        dir
    }

    /// `wsgidav`: anonymous (`--auth anonymous`), or with a user and password from a
    /// configuration file.
    pub(crate) fn wsgidav(auth: bool) -> Server {
        let exe = tool("wsgidav");
        let port = free_port();
        let dir = Server::served_dir();
        let root = dir.path().join("served");
        let mut cmd = Command::new(exe);
        if auth {
            let conf = dir.path().join("wsgidav.yaml");
            std::fs::write(
                &conf,
                format!(
                    "host: 127.0.0.1\nport: {port}\nverbose: 3\nprovider_mapping:\n  \"/\": \"{}\"\n\
                     http_authenticator:\n  domain_controller: null\n  accept_basic: true\n  accept_digest: false\n  default_to_digest: false\n\
                     simple_dc:\n  user_mapping:\n    \"*\":\n      \"{USER}\":\n        password: \"{PASS}\"\n",
                    root.display()
                ),
            )
            .unwrap();
            cmd.arg("-c").arg(conf);
        } else {
            cmd.args([
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--auth",
                "anonymous",
                "--no-config",
                "--root",
            ])
            .arg(&root);
        }
        Server::start("wsgidav", dir, cmd, port, auth)
    }

    /// wsgidav (anonymous) started through a small Python launcher that changes it the way
    /// other servers behave: `finite_depth` refuses `PROPFIND Depth: infinity` with 403
    /// (as Apache and Nextcloud do); `flaky` answers the first request of each method to
    /// each path containing "flaky" with `503 Service Unavailable` and `Retry-After: 1`.
    fn wsgidav_variant(name: &'static str, finite_depth: bool, flaky: bool) -> Server {
        tool("wsgidav"); // installed, or a clear failure
        let python = tool("python3");
        let port = free_port();
        let dir = Server::served_dir();
        let launcher = dir.path().join("launch.py");
        std::fs::write(&launcher, LAUNCHER).unwrap();
        let mut cmd = Command::new(python);
        cmd.arg(&launcher)
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--auth",
                "anonymous",
                "--no-config",
                "--root",
            ])
            .arg(dir.path().join("served"));
        if finite_depth {
            cmd.env("TANDEM_FINITE_DEPTH", "1");
        }
        if flaky {
            cmd.env("TANDEM_FLAKY", "1");
        }
        let mut s = Server::start(name, dir, cmd, port, false);
        s.conditional = true;
        s.set_mtime = false;
        s
    }

    /// `rclone serve webdav` with a user and password.
    pub(crate) fn rclone() -> Server {
        Server::rclone_with("rclone serve webdav", &[])
    }

    fn rclone_with(name: &'static str, extra: &[&str]) -> Server {
        let exe = tool("rclone");
        let port = free_port();
        let dir = Server::served_dir();
        let conf = dir.path().join("rclone.conf");
        std::fs::write(&conf, "").unwrap();
        let mut cmd = Command::new(exe);
        cmd.arg("serve")
            .arg("webdav")
            .arg(dir.path().join("served"))
            .args(["--addr", &format!("127.0.0.1:{port}")])
            .args(["--user", USER, "--pass", PASS])
            .args(["--dir-cache-time", "1s", "-v"])
            .args(extra)
            .arg("--config")
            .arg(&conf);
        Server::start(name, dir, cmd, port, true)
    }

    /// A folder on the server's disk (made if missing).
    fn folder(&self, base: &str) -> PathBuf {
        let p = self.dir.path().join("served").join(base);
        std::fs::create_dir_all(&p).unwrap();
        p
    }

    fn config(&self, base: &str) -> WebDavConfig {
        WebDavConfig {
            endpoint: format!("http://127.0.0.1:{}/{base}", self.port),
            user: if self.auth { USER.into() } else { String::new() },
            password: if self.auth { PASS.into() } else { String::new() },
        }
    }

    pub(crate) fn side(&self, base: &str) -> WebDavSide {
        self.folder(base);
        WebDavSide::connect(self.config(base)).unwrap_or_else(|e| panic!("connect to {}: {e}\n{}", self.name, self.log()))
    }

    /// Changes made behind rclone show after its directory cache time (1 s).
    fn settle(&self) {
        if self.name.starts_with("rclone") {
            std::thread::sleep(Duration::from_millis(1300));
        }
    }
}

/// The launcher of [`Server::wsgidav_variant`]: wsgidav's own command line, with
/// `RequestServer.allow_propfind_infinite` off and/or a fault-injecting wrapper around the app.
const LAUNCHER: &str = r#"
import os, sys
import wsgidav.request_server as rs
import wsgidav.wsgidav_app as wa
if os.environ.get("TANDEM_FINITE_DEPTH"):
    orig_init = rs.RequestServer.__init__
    def init(self, provider):
        orig_init(self, provider)
        self.allow_propfind_infinite = False
    rs.RequestServer.__init__ = init
if os.environ.get("TANDEM_FLAKY"):
    orig_call = wa.WsgiDAVApp.__call__
    seen = set()
    def call(self, environ, start_response):
        key = (environ["REQUEST_METHOD"], environ.get("PATH_INFO", ""))
        if "flaky" in key[1] and key not in seen:
            seen.add(key)
            n = int(environ.get("CONTENT_LENGTH") or 0)
            if n:
                environ["wsgi.input"].read(n)
            start_response("503 Service Unavailable", [("Retry-After", "1"), ("Content-Length", "0")])
            sys.stderr.write("injected 503 for %s %s\n" % key)
            return [b""]
        return orig_call(self, environ, start_response)
    wa.WsgiDAVApp.__call__ = call
from wsgidav.server.server_cli import run
sys.argv = ["wsgidav"] + sys.argv[1:]
sys.exit(run())
"#;

fn rp(s: &str) -> RelPath {
    RelPath::new(s).unwrap()
}

/// Deterministic bytes that do not compress.
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

const MTIME: i64 = 1_600_000_000_000_000_000;

fn put(side: &WebDavSide, p: &str, content: &[u8]) {
    let mut w = side.create_new(&rp(p)).unwrap_or_else(|e| panic!("create_new {p}: {e}"));
    for c in content.chunks(100_000) {
        w.write_all(c).unwrap_or_else(|e| panic!("write {p}: {e}"));
    }
    w.finish(MTIME, 0o644).unwrap_or_else(|e| panic!("finish {p}: {e}"));
}

fn get(side: &WebDavSide, p: &str) -> Vec<u8> {
    let mut out = Vec::new();
    side.open_read(&rp(p))
        .unwrap_or_else(|e| panic!("open_read {p}: {e}"))
        .read_to_end(&mut out)
        .unwrap_or_else(|e| panic!("read {p}: {e}"));
    out
}

fn stat(side: &WebDavSide, p: &str) -> Option<Entry> {
    let at = if p.is_empty() { RelPath::root() } else { rp(p) };
    match side.stat(&at).unwrap_or_else(|e| panic!("stat {p}: {e}")) {
        Some(Node::Entry(e)) => Some(e),
        None => None,
        Some(other) => panic!("{p}: unexpected {other:?}"),
    }
}

fn listing(side: &WebDavSide, p: &str) -> BTreeMap<String, Entry> {
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

fn names(m: &BTreeMap<String, Entry>) -> Vec<&str> {
    m.keys().map(|s| s.as_str()).collect()
}

fn is_dir(e: &Option<Entry>) -> bool {
    e.as_ref().is_some_and(|e| e.kind == Kind::Dir)
}

fn no_probe_left(srv: &Server, base: &str) {
    let left: Vec<String> = std::fs::read_dir(srv.folder(base))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".tandem-probe"))
        .collect();
    assert!(left.is_empty(), "{}: probe files left behind: {left:?}", srv.name);
}

/// The side's contract, on one server (a fresh folder).
fn contract(srv: &Server) {
    let t = Instant::now();
    let disk = srv.folder("contract");
    std::fs::write(srv.dir.path().join("served/outside.txt"), b"not the side's").unwrap();
    let side = srv.side("contract");
    let url = format!("http://127.0.0.1:{}/contract", srv.port);
    no_probe_left(srv, "contract");
    assert!(is_dir(&stat(&side, "")), "{}: the base folder is a folder", srv.name);
    assert_eq!(side.describe(&RelPath::root()), url);
    assert_eq!(side.describe(&rp("a/b.txt")), format!("{url}/a/b.txt"));
    assert!(side.local_root().is_none());
    let caps = side.caps();
    assert!(!caps.case_insensitive && !caps.modes && !caps.ids && !caps.needs_flush && !caps.cheap_listing);
    assert!(!caps.atomic_replace && caps.free_hash.is_none());
    assert_eq!(caps.set_mtime, srv.set_mtime, "{}", srv.name);
    assert_eq!(caps.mtime_resolution_ns, 1_000_000_000);
    assert_eq!(caps.version, VersionToken::Etag);
    assert_eq!(caps.keep_version, KeepVersion::ServerCopy);
    assert_eq!(caps.changes, ChangeSource::Poll);

    // Write, stat, read back.
    let a = b"hello from tandem\n".to_vec();
    put(&side, "a.txt", &a);
    let ea = stat(&side, "a.txt").expect("a.txt written");
    assert_eq!((ea.kind, ea.size, ea.mode, ea.file_id), (Kind::File, a.len() as u64, 0, 0));
    assert!(ea.version != 0, "an ETag gives a version token");
    if srv.set_mtime {
        assert_eq!(ea.mtime, MTIME, "{}: finish set the mtime (whole seconds)", srv.name);
    } else {
        assert!(
            ea.mtime > 1_700_000_000_000_000_000 && ea.mtime % 1_000_000_000 == 0,
            "{}: the server's upload time in whole seconds: {}",
            srv.name,
            ea.mtime
        );
    }
    assert_eq!(get(&side, "a.txt"), a);
    assert_eq!(std::fs::read(disk.join("a.txt")).unwrap(), a, "stored in the base folder");
    put(&side, "empty.txt", b"");
    assert_eq!(stat(&side, "empty.txt").unwrap().size, 0);
    assert_eq!(get(&side, "empty.txt"), b"");

    // Sizes around the one-PUT limit and a streamed one.
    side.create_dir_all(&rp("big")).unwrap();
    for (name, len) in [
        ("big/small.bin", SMALL),
        ("big/small1.bin", SMALL + 1),
        ("big/three.bin", 3 * SMALL + 12_345),
    ] {
        let d = data(len, len as u64);
        put(&side, name, &d);
        assert_eq!(stat(&side, name).unwrap().size, len as u64, "{name}");
        assert!(get(&side, name) == d, "{}: {name} read back differs", srv.name);
    }

    // create_new never overwrites.
    let err = side.create_new(&rp("a.txt")).err().expect("create_new on an existing name fails");
    assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists, "{err}");
    assert!(err.to_string().contains(&format!("{url}/a.txt")), "{err}");
    assert_eq!(get(&side, "a.txt"), a, "the original is intact");
    // A streamed upload claims its name at once: a second writer cannot take it.
    let mut w = side.create_new(&rp("claimed.bin")).unwrap();
    w.write_all(&data(2 * SMALL, 5)).unwrap();
    let err = side.create_new(&rp("claimed.bin")).err().expect("the name is taken");
    assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists, "{err}");
    w.finish(MTIME, 0).unwrap();
    assert!(get(&side, "claimed.bin") == data(2 * SMALL, 5));
    // A file that appears while a small upload is still held back: where the server
    // enforces `If-None-Match: *` the upload fails and the other file stays; rclone ignores
    // it (the race the side documents) and the last upload wins.
    let mut w = side.create_new(&rp("race.bin")).unwrap();
    w.write_all(&data(10_000, 11)).unwrap();
    put(&side, "race.bin", b"the other writer");
    let res = w.finish(MTIME, 0);
    if srv.conditional {
        let e = res.expect_err("an upload does not overwrite a file that appeared meanwhile");
        assert_eq!(e.kind(), std::io::ErrorKind::AlreadyExists, "{e}");
        assert!(e.to_string().contains(&format!("{url}/race.bin")), "{e}");
        assert_eq!(get(&side, "race.bin"), b"the other writer");
    } else {
        res.unwrap();
        assert_eq!(get(&side, "race.bin").len(), 10_000);
    }
    side.remove_file(&rp("race.bin")).unwrap();
    // Folders and listings.
    side.create_dir_all(&rp("d/e")).unwrap();
    assert!(is_dir(&stat(&side, "d")) && is_dir(&stat(&side, "d/e")));
    side.create_dir_all(&rp("d/e")).unwrap(); // again: nothing to do
    put(&side, "d/f.txt", b"f");
    put(&side, "d/e/deep.txt", b"deep");
    assert!(stat(&side, "nothing").is_none());
    assert!(stat(&side, "d/nothing").is_none());
    assert!(stat(&side, "a.txt/below").is_none());
    let root = listing(&side, "");
    assert_eq!(names(&root), ["a.txt", "big", "claimed.bin", "d", "empty.txt"], "{}", srv.name);
    assert_eq!(root["a.txt"], ea, "a listing gives the same metadata as a stat");
    assert_eq!(root["d"].kind, Kind::Dir);
    // The subfolders right after (an infinite-depth listing answers them).
    let d = listing(&side, "d");
    assert_eq!(names(&d), ["e", "f.txt"]);
    assert_eq!(Some(d["f.txt"]), stat(&side, "d/f.txt"));
    assert_eq!(names(&listing(&side, "d/e")), ["deep.txt"]);
    assert_eq!(listing(&side, "big")["three.bin"].size, (3 * SMALL + 12_345) as u64);
    // A change through the side is seen by the next listing of a subfolder.
    let _ = listing(&side, "");
    put(&side, "d/new.txt", b"new");
    assert_eq!(names(&listing(&side, "d")), ["e", "f.txt", "new.txt"]);
    side.remove_file(&rp("d/new.txt")).unwrap();
    let err = side.read_dir(&rp("nothing")).expect_err("no such folder");
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound, "{err}");
    let err = side.read_dir(&rp("a.txt")).expect_err("not a folder");
    assert_eq!(err.kind(), std::io::ErrorKind::NotADirectory, "{err}");
    let err = side.create_dir_all(&rp("a.txt/x")).expect_err("a file is in the way");
    assert_eq!(err.kind(), std::io::ErrorKind::NotADirectory, "{err}");

    // Names that need encoding.
    let odd = "sp ace/ü #%&+;=@[x].txt";
    side.create_dir_all(&rp("sp ace")).unwrap();
    put(&side, odd, b"odd");
    assert_eq!(get(&side, odd), b"odd");
    assert_eq!(names(&listing(&side, "sp ace")), ["ü #%&+;=@[x].txt"]);
    assert!(disk.join(odd).is_file(), "stored under its own name");

    // Empty folders: removed; a full one is not (WebDAV would delete it whole).
    side.create_dir_all(&rp("empty")).unwrap();
    assert_eq!(listing(&side, "").get("empty").map(|e| e.kind), Some(Kind::Dir));
    side.remove_dir(&rp("empty")).unwrap();
    assert!(stat(&side, "empty").is_none());
    let err = side.remove_dir(&rp("d")).expect_err("a folder with files is not removed");
    assert!(err.to_string().contains(&format!("{url}/d")), "{err}");
    assert_eq!(err.kind(), std::io::ErrorKind::DirectoryNotEmpty, "{err}");
    assert_eq!(get(&side, "d/f.txt"), b"f");
    assert_eq!(side.remove_dir(&rp("a.txt")).unwrap_err().kind(), std::io::ErrorKind::NotADirectory);
    assert_eq!(side.remove_dir(&rp("nothing")).unwrap_err().kind(), std::io::ErrorKind::NotFound);

    // Renames: to a free name, onto a file (replaced), into a missing folder (refused).
    side.rename(&rp("a.txt"), &rp("b.txt")).unwrap();
    assert!(stat(&side, "a.txt").is_none());
    assert_eq!(get(&side, "b.txt"), a);
    put(&side, "c.txt", b"old c");
    side.rename(&rp("b.txt"), &rp("c.txt")).unwrap();
    assert_eq!(get(&side, "c.txt"), a);
    assert!(stat(&side, "b.txt").is_none());
    let err = side.rename(&rp("c.txt"), &rp("no/such/dir/c.txt")).expect_err("no parent folder");
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound, "{err}");
    assert_eq!(get(&side, "c.txt"), a, "the source stays");
    let err = side.rename(&rp("nothing.txt"), &rp("x.txt")).expect_err("nothing to rename");
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound, "{err}");
    assert_eq!(
        side.rename(&rp("c.txt"), &rp("d")).unwrap_err().kind(),
        std::io::ErrorKind::IsADirectory
    );
    // A folder with its contents.
    side.rename(&rp("d"), &rp("d2")).unwrap();
    assert!(stat(&side, "d").is_none(), "{}: the old folder is gone", srv.name);
    assert_eq!(get(&side, "d2/f.txt"), b"f");
    assert_eq!(get(&side, "d2/e/deep.txt"), b"deep");
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
    assert!(err.to_string().contains(&format!("{url}/keep/c.txt")), "{err}");
    assert_eq!(side.remove_file(&rp("keep")).unwrap_err().kind(), std::io::ErrorKind::IsADirectory);

    // The version token changes when the content is rewritten (another size: wsgidav's ETag
    // is inode-mtime-size, so a same-size rewrite within a second keeps it).
    let v1 = stat(&side, "c.txt").unwrap();
    put(&side, "c.tmp", b"other content, longer");
    side.rename(&rp("c.tmp"), &rp("c.txt")).unwrap();
    let v2 = stat(&side, "c.txt").unwrap();
    assert_eq!(get(&side, "c.txt"), b"other content, longer");
    assert!(v2.version != 0 && v2.version != v1.version, "{}: version token changed", srv.name);

    // A writer dropped without finish leaves no file (small: never sent; large: its PUT
    // aborted and its claim removed), and the name stays free.
    for (name, len) in [("dropped-small.bin", 1000), ("dropped-large.bin", 3 * SMALL)] {
        let mut w = side.create_new(&rp(name)).unwrap();
        w.write_all(&data(len, 7)).unwrap();
        drop(w);
        srv.settle();
        assert!(stat(&side, name).is_none(), "{}: {name} left a file behind", srv.name);
        put(&side, name, b"again");
        assert_eq!(get(&side, name), b"again");
    }

    // Properties.
    let tm = 1_500_000_000_000_000_000;
    match side.set_mtime(&rp("c.txt"), tm + 999) {
        Ok(()) => {
            assert!(srv.set_mtime, "{}: set_mtime works only where the probe said so", srv.name);
            assert_eq!(stat(&side, "c.txt").unwrap().mtime, tm, "whole seconds");
        }
        Err(e) => {
            assert!(!srv.set_mtime, "{}: {e}", srv.name);
            assert_eq!(e.kind(), std::io::ErrorKind::Unsupported, "{e}");
            assert!(e.to_string().contains(&format!("{url}/c.txt")), "{e}");
        }
    }
    let e = side.set_mode(&rp("c.txt"), 0o600).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::Unsupported, "{e}");
    side.make_durable(&[rp("c.txt")], &[RelPath::root()]).unwrap();
    assert_eq!(
        side.open_read(&rp("nothing.txt")).err().unwrap().kind(),
        std::io::ErrorKind::NotFound
    );

    // Nothing outside the base folder was touched or listed.
    assert_eq!(std::fs::read(srv.dir.path().join("served/outside.txt")).unwrap(), b"not the side's");
    assert!(!listing(&side, "").contains_key("outside.txt"));
    let tmp: Vec<_> = files_below(&disk, false).into_keys().filter(|k| k.contains(".tandem-")).collect();
    assert!(tmp.is_empty(), "{}: temporary files left: {tmp:?}", srv.name);
    eprintln!("{}: contract passed in {:?}", srv.name, t.elapsed());
}

#[test]
fn webdav_contract_on_wsgidav() {
    let srv = Server::wsgidav(false);
    contract(&srv);
}

#[test]
fn webdav_contract_on_rclone_serve_webdav() {
    let srv = Server::rclone();
    contract(&srv);
}

#[test]
fn webdav_contract_on_a_server_without_infinite_listings() {
    let srv = Server::wsgidav_variant("wsgidav (finite depth)", true, false);
    contract(&srv);
    let log = srv.log();
    assert!(
        log.lines()
            .any(|l| l.contains("PROPFIND") && l.contains("depth=infinity") && l.contains("-> 403")),
        "the side asked for an infinite listing once and was refused"
    );
    let refused = log
        .lines()
        .filter(|l| l.contains("PROPFIND") && l.contains("depth=infinity"))
        .count();
    assert_eq!(refused, 1, "after one refusal the side lists folder by folder");
    assert!(log
        .lines()
        .any(|l| l.contains("PROPFIND") && l.contains("depth=1") && l.contains("-> 207")));
}

#[test]
fn webdav_retries_temporary_failures_honouring_retry_after() {
    let srv = Server::wsgidav_variant("wsgidav (flaky)", false, true);
    let side = srv.side("base");
    let t = Instant::now();
    side.create_dir_all(&rp("flaky")).unwrap();
    put(&side, "flaky/a.txt", b"through 503s");
    let big = data(3 * SMALL, 9);
    put(&side, "flaky/big.bin", &big);
    side.rename(&rp("flaky/a.txt"), &rp("flaky/b.txt")).unwrap();
    assert_eq!(get(&side, "flaky/b.txt"), b"through 503s");
    assert!(get(&side, "flaky/big.bin") == big);
    let took = t.elapsed();
    let injected = srv.log().lines().filter(|l| l.starts_with("injected 503")).count();
    eprintln!("{injected} injected 503s (Retry-After: 1) survived in {took:?}");
    assert!(injected >= 8, "the failures were injected: {injected}");
    // Tandem's own requests wait the second the server asks for (OpenDAL's reads use their
    // own backoff).
    assert!(took >= Duration::from_secs(6), "Retry-After was honoured: {took:?}");
    assert_eq!(std::fs::read(srv.folder("base").join("flaky/b.txt")).unwrap(), b"through 503s");
    // A 4xx that cannot succeed is not retried: one request.
    let e = side.remove_file(&rp("no-such-file")).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
    let asked = srv.log().lines().filter(|l| l.contains("/base/no-such-file")).count();
    assert_eq!(asked, 1, "a 404 is final");
}

#[test]
fn webdav_probes_report_what_each_server_does() {
    let w = Server::wsgidav(false);
    let r = Server::rclone();
    let ws = w.side("probed");
    let note = ws.note().unwrap();
    eprintln!("{note}");
    assert!(note.contains(&format!("http://127.0.0.1:{}/probed", w.port)), "{note}");
    for fact in [
        "conditional writes enforced",
        "mtimes not settable",
        "X-OC-Mtime ignored",
        "case-sensitive names",
        "ETags made from time and size",
    ] {
        assert!(note.contains(fact), "wsgidav: {fact:?} not in {note}");
    }
    assert!(!ws.caps().set_mtime && !ws.caps().case_insensitive);
    assert!(ws.caps().weak_version && ws.caps().racy(), "wsgidav's ETag is mtime and size");
    no_probe_left(&w, "probed");

    let rs = r.side("probed");
    let note = rs.note().unwrap();
    eprintln!("{note}");
    for fact in [
        "conditional writes not enforced",
        "mtimes settable (PROPPATCH lastmodified)",
        "X-OC-Mtime honoured",
        "case-sensitive names",
        "ETags made from time and size",
    ] {
        assert!(note.contains(fact), "rclone: {fact:?} not in {note}");
    }
    assert!(rs.caps().set_mtime && !rs.caps().case_insensitive);
    assert!(
        rs.caps().weak_version && rs.caps().racy(),
        "rclone's default ETag is mtime and size"
    );
    assert!(!note.contains(PASS));
    no_probe_left(&r, "probed");

    // rclone with content-hash ETags: a strong version token, nothing to wait for.
    let h = Server::rclone_with("rclone serve webdav --etag-hash auto", &["--etag-hash", "auto"]);
    let hs = h.side("probed");
    let note = hs.note().unwrap();
    assert!(note.contains("ETags as version tokens"), "{note}");
    assert!(!hs.caps().weak_version && !hs.caps().racy(), "{note}");
    no_probe_left(&h, "probed");
}

#[test]
fn webdav_case_insensitive_server_is_found_and_case_renames_work() {
    // rclone's VFS finds a name in any case with --vfs-case-insensitive (as Windows and
    // macOS servers do).
    let srv = Server::rclone_with("rclone serve webdav (case-insensitive)", &["--vfs-case-insensitive"]);
    let side = srv.side("ci");
    let note = side.note().unwrap();
    eprintln!("{note}");
    assert!(side.caps().case_insensitive && note.contains("case-insensitive names"), "{note}");
    no_probe_left(&srv, "ci");
    put(&side, "Report.txt", b"report");
    assert!(stat(&side, "REPORT.TXT").is_some(), "found in any case");
    let e = side
        .create_new(&rp("report.txt"))
        .err()
        .expect("the same name in another case exists");
    assert_eq!(e.kind(), std::io::ErrorKind::AlreadyExists, "{e}");
    // A change of case only: the file keeps its content and takes the new case.
    side.rename(&rp("Report.txt"), &rp("report.TXT")).unwrap();
    srv.settle();
    let names: Vec<String> = std::fs::read_dir(srv.folder("ci"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["report.TXT"], "renamed in place, nothing left over");
    assert_eq!(get(&side, "report.TXT"), b"report");
    // A folder too.
    side.create_dir_all(&rp("Docs")).unwrap();
    put(&side, "Docs/a.txt", b"a");
    side.rename(&rp("Docs"), &rp("docs")).unwrap();
    srv.settle();
    assert_eq!(std::fs::read(srv.folder("ci").join("docs/a.txt")).unwrap(), b"a");
    assert!(!srv.dir.path().join("served/ci/Docs").exists());
}

fn assert_clean_error(e: &std::io::Error, url: &str) {
    let text = e.to_string();
    assert!(text.contains(url), "the error names {url}: {text}");
    assert!(!text.contains(PASS) && !text.contains("wrong-password"), "no password in: {text}");
    eprintln!("{text}");
}

#[test]
fn webdav_connect_errors_name_the_url_and_never_the_password() {
    let r = Server::rclone();
    let w = Server::wsgidav(true);
    for srv in [&r, &w] {
        srv.folder("base");
        // A refused password.
        let mut cfg = srv.config("base/");
        cfg.password = "wrong-password-abcdef".into();
        assert!(!format!("{cfg:?}").contains("wrong-password"), "Debug hides the password: {cfg:?}");
        assert!(format!("{cfg:?}").contains("***"));
        let e = WebDavSide::connect(cfg).expect_err("wrong password");
        let url = format!("http://127.0.0.1:{}/base", srv.port);
        assert_clean_error(&e, &url);
        assert_eq!(e.kind(), std::io::ErrorKind::PermissionDenied, "{}: {e}", srv.name);
        assert!(e.to_string().contains("access denied"), "{e}");
        // No credentials at all.
        let mut cfg = srv.config("base");
        cfg.user.clear();
        assert_eq!(WebDavSide::connect(cfg).unwrap_err().kind(), std::io::ErrorKind::PermissionDenied);
        // A missing folder.
        let e = WebDavSide::connect(srv.config("no/such folder")).expect_err("missing folder");
        assert_clean_error(&e, &format!("http://127.0.0.1:{}/no/such folder", srv.port));
        assert_eq!(e.kind(), std::io::ErrorKind::NotFound, "{}: {e}", srv.name);
        assert!(e.to_string().contains("no such folder"), "{e}");
        // A file, not a folder.
        std::fs::write(srv.folder("base").join("file.txt"), b"x").unwrap();
        let e = WebDavSide::connect(srv.config("base/file.txt")).expect_err("a file");
        assert_clean_error(&e, "/base/file.txt");
        // The right password works and leaves no probe behind.
        srv.side("base");
        no_probe_left(srv, "base");
    }
    // Nothing listening.
    let mut cfg = r.config("base");
    let port = free_port();
    cfg.endpoint = format!("http://127.0.0.1:{port}/base");
    let t = Instant::now();
    let e = WebDavSide::connect(cfg).expect_err("unreachable server");
    assert_clean_error(&e, &format!("http://127.0.0.1:{port}/base"));
    assert!(e.to_string().contains("cannot be reached"), "{e}");
    assert!(t.elapsed() < Duration::from_secs(60), "gave up after retries: {:?}", t.elapsed());
    // Credentials in the URL are refused without being repeated.
    let mut cfg = r.config("base");
    cfg.endpoint = format!("http://{USER}:{PASS}@127.0.0.1:{}/base", r.port);
    let e = WebDavSide::connect(cfg).expect_err("credentials in the URL");
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    assert_clean_error(&e, &format!("http://127.0.0.1:{}/base", r.port));
}

/// The process's peak resident set size (VmHWM), in KiB.
fn peak_rss_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/self/status")
}

#[test]
fn webdav_large_upload_streams_without_holding_the_file() {
    const MIB: usize = 1024 * 1024;
    const CHUNKS: usize = 64;
    let srv = Server::wsgidav(false);
    let side = srv.side("large");
    let chunk = |i: usize| data(MIB, 1000 + i as u64);
    let mut want = blake3::Hasher::new();
    // Touch the code paths once (a small upload), so the baseline includes them.
    put(&side, "warm.bin", &chunk(0));
    let before = peak_rss_kib();
    let t = Instant::now();
    let mut w = side.create_new(&rp("large.bin")).unwrap();
    let mut buf = vec![0u8; MIB];
    for i in 0..CHUNKS {
        buf.copy_from_slice(&chunk(i));
        want.update(&buf);
        w.write_all(&buf).unwrap();
    }
    w.finish(MTIME, 0).unwrap();
    let after = peak_rss_kib();
    let secs = t.elapsed().as_secs_f64();
    let growth_mib = (after.saturating_sub(before)) as f64 / 1024.0;
    eprintln!(
        "64 MiB upload to wsgidav in 1 MiB writes: {secs:.1} s; peak RSS {:.1} MiB -> {:.1} MiB (growth {growth_mib:.1} MiB)",
        before as f64 / 1024.0,
        after as f64 / 1024.0
    );
    // Byte for byte, on the server's disk and read back through the side.
    let on_disk = std::fs::read(srv.folder("large").join("large.bin")).unwrap();
    assert_eq!(on_disk.len(), CHUNKS * MIB);
    let want = want.finalize();
    assert_eq!(blake3::hash(&on_disk), want, "the server's copy differs");
    drop(on_disk);
    let mut r = side.open_read(&rp("large.bin")).unwrap();
    let mut h = blake3::Hasher::new();
    let mut n = 0;
    loop {
        let k = r.read(&mut buf).unwrap();
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k;
    }
    assert_eq!((n, h.finalize()), (CHUNKS * MIB, want), "read back through the side");
    assert!(
        growth_mib < 48.0,
        "the upload is not streamed: peak RSS grew by {growth_mib:.1} MiB"
    );
}

#[test]
fn webdav_side_works_when_called_from_inside_tokio_runtimes() {
    let srv = Server::rclone();
    let side = Arc::new(srv.side("runtimes"));
    put(&side, "f.txt", b"from a plain thread");
    let ct = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let s = side.clone();
    ct.block_on(async move {
        assert!(s.stat(&rp("f.txt")).unwrap().is_some());
        put(&s, "g.txt", b"from a current-thread runtime");
        put(&s, "h.bin", &data(2 * SMALL, 3));
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
            for _ in 0..100 {
                n += s.read_dir(&RelPath::root()).unwrap().len();
            }
            assert_eq!(get(&s, "g.txt"), b"from a current-thread runtime");
            n
        });
        assert_eq!(h.await.unwrap(), 300);
    });
    let s = side.clone();
    drop(side);
    mt.block_on(async move { drop(s) });
}

/// Two-way sync of a local folder with a WebDAV folder: the first sync uploads; then edits
/// on both sides, a rename and a delete; the trees converge; a sync with no change does
/// nothing.
fn end_to_end(srv: &Server) {
    let dav = Arc::new(srv.side("pair/one"));
    let right = srv.folder("pair/one");
    let dir = tempfile::tempdir().unwrap();
    let left = dir.path().join("left");
    write_local(&left, "a.txt", b"alpha");
    write_local(&left, "docs/b.md", b"# bee\n");
    let c = data(300_000, 3);
    write_local(&left, "docs/deep/c.bin", &c);
    write_local(&left, "big.bin", &data(3 * SMALL, 4));
    std::fs::create_dir_all(left.join("empty")).unwrap();
    let local = Arc::new(LocalSide::new(&left));
    let mut store = Store::in_memory().unwrap();
    let pair = PairConfig {
        name: "webdav".into(),
        left: left.clone(),
        right: PathBuf::from(dav.describe(&RelPath::root())),
        options: SyncOptions::default(),
    };
    let mut sync = |what: &str| {
        let t = Instant::now();
        let r = api::sync_with(&mut store, &pair, &*local, &*dav, &SyncRequest::default())
            .unwrap_or_else(|e| panic!("{}: {what}: sync failed: {e}", srv.name));
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
            "{}: {what}: {:?} {:?}\n{}",
            srv.name,
            r.fatal,
            r.counts,
            failed.join("\n")
        );
        eprintln!("{}: {what}: {} actions in {:?}", srv.name, r.plan.actions.len(), t.elapsed());
        r
    };
    let converged = |what: &str| {
        let l = files_below(&left, true);
        let r = files_below(&right, true);
        let lk: Vec<&String> = l.keys().collect();
        let rk: Vec<&String> = r.keys().collect();
        assert_eq!(lk, rk, "{}: {what}: the same files on both sides", srv.name);
        for (k, v) in &l {
            assert!(r[k] == *v, "{}: {what}: {k} differs", srv.name);
        }
    };

    let r1 = sync("first sync");
    assert!(r1.counts.copied >= 4, "{:?}", r1.counts);
    converged("after the first sync");
    assert!(right.join("empty").is_dir(), "the empty folder exists on the server");

    // Edits on both sides (the server's behind its back, as another client's would be).
    std::fs::write(right.join("docs/b.md"), b"# bee, edited on the server\n").unwrap();
    std::fs::write(right.join("right-new.txt"), b"made on the server").unwrap();
    std::fs::remove_file(right.join("docs/deep/c.bin")).unwrap();
    write_local(&left, "big.bin", &data(2 * SMALL + 7, 5));
    write_local(&left, "left-new.txt", b"made here");
    std::fs::create_dir_all(left.join("renamed")).unwrap();
    std::fs::rename(left.join("a.txt"), left.join("renamed/a2.txt")).unwrap();
    srv.settle();
    let r2 = sync("second sync");
    assert!(r2.counts.copied >= 3, "{:?}", r2.counts);
    converged("after edits on both sides");
    assert_eq!(std::fs::read(left.join("docs/b.md")).unwrap(), b"# bee, edited on the server\n");
    assert_eq!(std::fs::read(right.join("renamed/a2.txt")).unwrap(), b"alpha");
    assert!(!right.join("a.txt").exists() && !left.join("docs/deep/c.bin").exists());
    assert!(std::fs::read(right.join("big.bin")).unwrap() == data(2 * SMALL + 7, 5));

    // Nothing changed: nothing to do.
    srv.settle();
    let r3 = sync("third sync");
    let acts: Vec<_> = r3.plan.disk_actions().collect();
    assert!(acts.is_empty(), "{}: a sync with no change does nothing: {acts:?}", srv.name);
    converged("at the end");
}

#[test]
fn webdav_end_to_end_sync_with_wsgidav() {
    let srv = Server::wsgidav(false);
    end_to_end(&srv);
}

#[test]
fn webdav_end_to_end_sync_with_rclone_serve_webdav() {
    let srv = Server::rclone();
    end_to_end(&srv);
}

fn tandem_out(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let o = crate::common::tandem_env(args, env, &["TANDEM_WEBDAV_PASSWORD"]);
    (o.status.code(), crate::common::output_text(&o))
}

#[test]
fn webdav_cli_sync_with_a_webdav_url_takes_the_password_from_the_environment() {
    let srv = Server::rclone();
    let served = srv.folder("Docs");
    let dir = tempfile::tempdir().unwrap();
    let left = dir.path().join("left");
    std::fs::create_dir_all(left.join("sub")).unwrap();
    std::fs::write(left.join("sub/report.txt"), b"the report").unwrap();
    let state = dir.path().join("state.db");
    let url = format!("webdav+http://{USER}@127.0.0.1:{}/Docs", srv.port);
    let args = ["--state", state.to_str().unwrap(), "sync", left.to_str().unwrap(), url.as_str()];
    let (code, out) = tandem_out(&args, &[("TANDEM_WEBDAV_PASSWORD", PASS)]);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(std::fs::read(served.join("sub/report.txt")).unwrap(), b"the report");
    // A colleague's upload to the account comes down.
    std::fs::write(served.join("sub/theirs.txt"), b"uploaded elsewhere").unwrap();
    srv.settle();
    let (code, out2) = tandem_out(&args, &[("TANDEM_WEBDAV_PASSWORD", PASS)]);
    assert_eq!(code, Some(0), "{out2}");
    assert_eq!(std::fs::read(left.join("sub/theirs.txt")).unwrap(), b"uploaded elsewhere");
    // No password: says where one goes. A wrong one: names the URL, not the password.
    let (code, out3) = tandem_out(&args, &[]);
    assert_eq!(code, Some(2), "{out3}");
    assert!(out3.contains("TANDEM_WEBDAV_PASSWORD") && out3.contains("password_file"), "{out3}");
    let (code, out4) = tandem_out(&args, &[("TANDEM_WEBDAV_PASSWORD", "wrong-password-42")]);
    assert_ne!(code, Some(0), "{out4}");
    assert!(
        out4.contains(&format!("127.0.0.1:{}/Docs", srv.port)) && !out4.contains("wrong-password-42"),
        "{out4}"
    );
    let (_, hist) = tandem_out(&["--state", state.to_str().unwrap(), "history", "--json"], &[]);
    crate::common::assert_secret_nowhere(PASS, dir.path(), None, &[&out, &out2, &out3, &out4, &hist]);
}

/// `webdav://` is HTTPS, and the server's certificate is checked against the system's
/// roots: a server signed by a CA the machine does not trust is refused (naming the URL and
/// the certificate; nothing written); once the CA is among the roots (`SSL_CERT_FILE` here,
/// as a company CA installed by an admin) the same sync works.
#[test]
fn webdav_over_https_verifies_the_server_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = crate::common::test_ca(dir.path());
    let srv = Server::rclone_with(
        "rclone serve webdav (HTTPS)",
        &["--cert", cert.to_str().unwrap(), "--key", key.to_str().unwrap()],
    );
    let served = srv.folder("Secure");
    let left = dir.path().join("left");
    std::fs::create_dir_all(&left).unwrap();
    std::fs::write(left.join("contract.txt"), b"signed copy").unwrap();
    let state = dir.path().join("state.db");
    let url = format!("webdav://{USER}@127.0.0.1:{}/Secure", srv.port);
    let args = ["--state", state.to_str().unwrap(), "sync", left.to_str().unwrap(), url.as_str()];
    let untrusted = dir.path().join("no-such-roots.pem");
    std::fs::write(&untrusted, "").unwrap();
    let (code, out) = tandem_out(
        &args,
        &[("TANDEM_WEBDAV_PASSWORD", PASS), ("SSL_CERT_FILE", untrusted.to_str().unwrap())],
    );
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains(&format!("https://127.0.0.1:{}/Secure", srv.port)) && out.to_lowercase().contains("certificate"),
        "{out}"
    );
    assert!(!served.join("contract.txt").exists());
    let (code, out) = tandem_out(&args, &[("TANDEM_WEBDAV_PASSWORD", PASS), ("SSL_CERT_FILE", ca.to_str().unwrap())]);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(std::fs::read(served.join("contract.txt")).unwrap(), b"signed copy");
}

/// A `tandem run` killed (SIGKILL) in the middle of a streamed upload: nothing partial
/// appears under the file's name on the server (the body goes to a temporary name, moved
/// into place only once complete and checked), and the next run removes the leftover and
/// completes the upload.
#[test]
fn webdav_kill_9_during_an_upload_leaves_no_partial_file_and_the_next_run_completes() {
    let srv = Server::wsgidav(true);
    let served = srv.folder("crash");
    let p = crate::common::Pair::new();
    let big = data(24 << 20, 5);
    write_local(&p.left, "big.bin", &big);
    write_local(&p.left, "small.txt", b"small");
    let cfg = p.dir.path().join("tandem.toml");
    let text = format!(
        "[bandwidth]\nleft_to_right = \"4 MB\"\n[[pair]]\nname = \"c\"\nleft = {:?}\nright = \"webdav+http://{USER}@127.0.0.1:{}/crash\"\n[pair.remote]\npassword_env = \"TANDEM_TEST_DAV_PASSWORD\"\n",
        p.left.to_str().unwrap(),
        srv.port
    );
    std::fs::write(&cfg, &text).unwrap();
    // At 4 MB/s the 24 MiB take ~6 s: the service is killed in the middle.
    let env = [("TANDEM_TEST_DAV_PASSWORD", PASS)];
    let mut svc = crate::common::start_service(&p, &["--config", cfg.to_str().unwrap()], &env);
    // Copies go into place by batches: wait for the big one's temporary file to grow.
    let uploading = || {
        std::fs::read_dir(&served)
            .unwrap()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with(".tandem-") && e.metadata().is_ok_and(|m| m.len() > 4 << 20))
    };
    crate::common::wait_for("the upload under way", Duration::from_secs(30), uploading);
    svc.kill();
    let seen: Vec<(String, usize)> = files_below(&served, false).into_iter().map(|(k, v)| (k, v.len())).collect();
    assert!(
        !served.join("big.bin").exists(),
        "a file is visible under its name after the kill: {seen:?}"
    );
    let partial: Vec<String> = files_below(&served, true).into_keys().filter(|k| k.contains(".tandem-")).collect();
    assert!(!partial.is_empty(), "the kill came during the upload (a temporary file is left)");
    // The next run removes the leftover and completes the upload.
    let o = Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args(["--state", p.state.to_str().unwrap(), "sync", "--config", cfg.to_str().unwrap()])
        .env("TANDEM_TEST_DAV_PASSWORD", PASS)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", crate::common::output_text(&o));
    assert!(std::fs::read(served.join("big.bin")).unwrap() == big);
    let names: Vec<String> = files_below(&served, true).into_keys().collect();
    assert_eq!(names, ["big.bin", "small.txt"], "no temporary files left");
}

#[test]
fn webdav_service_polls_the_account() {
    let srv = Server::wsgidav(true);
    let served = srv.folder("live");
    let p = crate::common::Pair::new();
    let pw = p.dir.path().join("dav.password");
    std::fs::write(&pw, format!("{PASS}\n")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
    let cfg = p.dir.path().join("tandem.toml");
    std::fs::write(
        &cfg,
        format!(
            "poll_interval = \"1s\"\n[[pair]]\nname = \"dav\"\nleft = {:?}\nright = \"webdav+http://{USER}@127.0.0.1:{}/live\"\n[pair.remote]\npassword_file = {:?}\n",
            p.left.to_str().unwrap(),
            srv.port,
            pw.to_str().unwrap()
        ),
    )
    .unwrap();
    let _svc = crate::common::start_service(&p, &["--config", cfg.to_str().unwrap()], &[]);
    let t = Duration::from_secs(30);
    let o = p.tandem(&["--state", p.state.to_str().unwrap(), "status", "--json"]);
    let st: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(st["pairs"][0]["watch"][1]["mode"], "polling", "{st}");
    std::fs::write(served.join("from the account.txt"), b"theirs").unwrap();
    p.write(tandem::model::Side::Left, "mine.txt", b"mine");
    crate::common::wait_for("both changes", t, || {
        p.read(tandem::model::Side::Left, "from the account.txt").is_some() && served.join("mine.txt").is_file()
    });
    assert_eq!(std::fs::read(served.join("mine.txt")).unwrap(), b"mine");
}
