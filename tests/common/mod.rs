//! Temp-dir harness: a pair of real folders with a real SQLite state file, helpers to write
//! files with chosen mtimes, read trees back, and run the real `tandem` binary.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use tandem::model::Side;

pub const TRASH: &str = ".sync_trash";

pub struct Pair {
    pub dir: tempfile::TempDir,
    pub left: PathBuf,
    pub right: PathBuf,
    pub state: PathBuf,
}

/// Seconds since the epoch -> SystemTime.
pub fn at(secs: i64) -> std::time::SystemTime {
    std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs as u64)
}

impl Pair {
    pub fn new() -> Pair {
        let dir = tempfile::tempdir().unwrap();
        let left = dir.path().join("left");
        let right = dir.path().join("right");
        std::fs::create_dir_all(&left).unwrap();
        std::fs::create_dir_all(&right).unwrap();
        let state = dir.path().join("state.db");
        Pair { dir, left, right, state }
    }

    pub fn root(&self, side: Side) -> &Path {
        match side {
            Side::Left => &self.left,
            Side::Right => &self.right,
        }
    }

    pub fn path(&self, side: Side, rel: &str) -> PathBuf {
        self.root(side).join(rel)
    }

    /// Write a file (creating parents) and give it an mtime (seconds since the epoch).
    pub fn write_at(&self, side: Side, rel: &str, content: &[u8], mtime: i64) {
        let p = self.path(side, rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, content).unwrap();
        let f = std::fs::File::options().write(true).open(&p).unwrap();
        f.set_modified(at(mtime)).unwrap();
    }

    /// Write with a fresh distinct mtime (a user's edit "now").
    pub fn write(&self, side: Side, rel: &str, content: &[u8]) {
        static T: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(1_700_000_000);
        let t = T.fetch_add(10, std::sync::atomic::Ordering::SeqCst);
        self.write_at(side, rel, content, t);
    }

    pub fn read(&self, side: Side, rel: &str) -> Option<Vec<u8>> {
        std::fs::read(self.path(side, rel)).ok()
    }

    pub fn exists(&self, side: Side, rel: &str) -> bool {
        // Windows folders find a name in any case: there `rel` must also be spelled as on
        // disk (after a case-only rename the old spelling no longer exists).
        #[cfg(windows)]
        if !spelled_as_on_disk(self.root(side), rel) {
            return false;
        }
        std::fs::symlink_metadata(self.path(side, rel)).is_ok()
    }

    /// Every file below a side's root (trash excluded): relative path -> content.
    pub fn tree(&self, side: Side) -> BTreeMap<String, Vec<u8>> {
        files_below(self.root(side), true)
    }

    /// Every folder below a side's root (trash excluded).
    pub fn dirs(&self, side: Side) -> Vec<String> {
        let mut out = Vec::new();
        walk(self.root(side), self.root(side), &mut |rel, md, _| {
            if md.is_dir() && !rel.starts_with(TRASH) {
                out.push(rel.to_string());
            }
        });
        out.sort();
        out
    }

    /// Files in a side's trash, relative to their dated folder: path -> content.
    pub fn trash(&self, side: Side) -> BTreeMap<String, Vec<u8>> {
        let t = self.root(side).join(TRASH);
        let mut out = BTreeMap::new();
        if let Ok(rd) = std::fs::read_dir(&t) {
            for stamp in rd.flatten() {
                for (k, v) in files_below(&stamp.path(), false) {
                    out.insert(k, v);
                }
            }
        }
        out
    }

    pub fn tandem(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_tandem"))
            .args(args)
            .env("TANDEM_LOG", "warn")
            .output()
            .unwrap()
    }

    /// `tandem sync LEFT RIGHT --state STATE EXTRA...`
    pub fn sync(&self, extra: &[&str]) -> Output {
        let (l, r, s) = (
            self.left.to_str().unwrap(),
            self.right.to_str().unwrap(),
            self.state.to_str().unwrap(),
        );
        let mut args = vec!["sync", l, r, "--state", s];
        args.extend_from_slice(extra);
        self.tandem(&args)
    }

    /// Sync and insist on exit code 0.
    pub fn sync_ok(&self) -> String {
        let o = self.sync(&[]);
        assert_eq!(
            o.status.code(),
            Some(0),
            "sync failed:\n{}\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Both sides hold the same files (trash excluded).
    pub fn assert_converged(&self) {
        assert_eq!(self.tree(Side::Left), self.tree(Side::Right), "sides differ");
    }
}

/// Every component of `rel` below `root` is listed in its folder under exactly that name.
#[cfg(windows)]
fn spelled_as_on_disk(root: &Path, rel: &str) -> bool {
    let mut dir = root.to_path_buf();
    for c in rel.split('/').filter(|c| !c.is_empty()) {
        let Ok(rd) = std::fs::read_dir(&dir) else { return false };
        if !rd.flatten().any(|e| e.file_name() == c) {
            return false;
        }
        dir.push(c);
    }
    true
}

/// Whether this Windows test runs under wine, which cannot do some things real Windows
/// does (see [`skip_under_wine`]).
pub fn under_wine() -> bool {
    #[cfg(windows)]
    {
        use windows_sys::Win32::System::LibraryLoader::{GetModuleHandleA, GetProcAddress};
        // SAFETY: NUL-terminated names; the module handle is checked before use.
        unsafe {
            let ntdll = GetModuleHandleA(c"ntdll.dll".as_ptr().cast());
            !ntdll.is_null() && GetProcAddress(ntdll, c"wine_get_version".as_ptr().cast()).is_some()
        }
    }
    #[cfg(not(windows))]
    false
}

/// Skip the rest of a test under wine, saying why: it runs on Linux and on real Windows.
pub fn skip_under_wine(why: &str) -> bool {
    let skip = under_wine();
    if skip {
        eprintln!("skipped under wine: {why}");
    }
    skip
}

/// Wine renames nothing when a name changes only in case (MoveFile finds the target is the
/// source and stops); real Windows renames.
pub const WINE_CASE_RENAME: &str = "wine cannot rename a file to another case of its own name (real Windows can)";

/// A file's identity, which a rename keeps and a copy does not: the inode on Unix, the file
/// index on Windows (NTFS; wine gives the inode). Symbolic links are not followed.
#[cfg(unix)]
pub fn file_id(path: &Path) -> std::io::Result<u64> {
    use std::os::unix::fs::MetadataExt;
    Ok(std::fs::symlink_metadata(path)?.ino())
}

/// A file's identity, which a rename keeps and a copy does not: the inode on Unix, the file
/// index on Windows (NTFS; wine gives the inode). Symbolic links are not followed.
#[cfg(windows)]
pub fn file_id(path: &Path) -> std::io::Result<u64> {
    use std::os::windows::fs::OpenOptionsExt;
    use std::os::windows::io::AsRawHandle;
    use windows_sys::Win32::Storage::FileSystem::{
        GetFileInformationByHandle, BY_HANDLE_FILE_INFORMATION, FILE_FLAG_BACKUP_SEMANTICS, FILE_FLAG_OPEN_REPARSE_POINT,
    };
    // No access right is needed to read the index; a folder opens with backup semantics.
    let f = std::fs::OpenOptions::new()
        .access_mode(0)
        .custom_flags(FILE_FLAG_BACKUP_SEMANTICS | FILE_FLAG_OPEN_REPARSE_POINT)
        .open(path)?;
    // SAFETY: a valid open handle and a plain struct the call fills in.
    let info = unsafe {
        let mut info: BY_HANDLE_FILE_INFORMATION = std::mem::zeroed();
        if GetFileInformationByHandle(f.as_raw_handle(), &mut info) == 0 {
            return Err(std::io::Error::last_os_error());
        }
        info
    };
    Ok((u64::from(info.nFileIndexHigh) << 32) | u64::from(info.nFileIndexLow))
}

fn walk(root: &Path, dir: &Path, f: &mut dyn FnMut(&str, &std::fs::Metadata, &Path)) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        // Tolerates entries that vanish while it walks (a running service renames temp files).
        let Ok(md) = std::fs::symlink_metadata(&p) else { continue };
        let rel = p.strip_prefix(root).unwrap().to_string_lossy().replace('\\', "/");
        f(&rel, &md, &p);
        if md.is_dir() {
            walk(root, &p, f);
        }
    }
}

pub fn files_below(root: &Path, skip_trash: bool) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    walk(root, root, &mut |rel, md, p| {
        if md.is_file() && !(skip_trash && rel.starts_with(TRASH)) {
            if let Ok(data) = std::fs::read(p) {
                out.insert(rel.to_string(), data);
            }
        }
    });
    out
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Wait until `cond` holds, polling; fails the test after `limit`.
pub fn wait_for(what: &str, limit: std::time::Duration, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + limit;
    while !cond() {
        assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
}

/// Where a running service says how to reach it.
pub fn discovery(state: &Path) -> PathBuf {
    PathBuf::from(format!("{}.service.json", state.display()))
}

/// A running `tandem run`; killed (SIGKILL) when dropped unless stopped before (a failing
/// test must not leave a service running).
pub struct Svc {
    child: Option<std::process::Child>,
    /// Its state file (`tandem --state STATE stop` stops it on Windows).
    state: PathBuf,
}

impl Svc {
    pub fn pid(&self) -> i32 {
        self.child.as_ref().unwrap().id() as i32
    }

    /// A graceful stop, then wait for the exit; returns the exit code. SIGTERM on Unix; on
    /// Windows, which has no signal for it, `tandem --state STATE stop` (the service's API).
    pub fn stop(&mut self) -> Option<i32> {
        let mut c = self.child.take()?;
        #[cfg(unix)]
        // SAFETY: plain syscall on a pid we spawned.
        unsafe {
            libc::kill(c.id() as i32, libc::SIGTERM);
        }
        #[cfg(windows)]
        {
            let o = Command::new(env!("CARGO_BIN_EXE_tandem"))
                .args(["--state", self.state.to_str().unwrap(), "stop"])
                .env("TANDEM_LOG", "warn")
                .output()
                .unwrap();
            if !o.status.success() {
                let _ = c.kill();
                let _ = c.wait();
                panic!("tandem stop failed: {}{}", stdout(&o), stderr(&o));
            }
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            if let Some(st) = c.try_wait().unwrap() {
                return st.code();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the service did not stop within 30 s of SIGTERM (`tandem stop` on Windows)"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// kill -9: no chance to clean up (SIGKILL on Unix, TerminateProcess on Windows).
    pub fn kill9(&mut self) {
        #[cfg(unix)]
        // SAFETY: plain syscall on a pid we spawned.
        unsafe {
            libc::kill(self.pid(), libc::SIGKILL);
        }
        self.kill();
    }
}

impl Drop for Svc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Make `cmd` run without the power to bypass file permissions (tests may run as root):
/// CAP_DAC_OVERRIDE (1) and CAP_DAC_READ_SEARCH (2) are dropped from the bounding set,
/// which removes them from root's capabilities after exec. Without privileges the call
/// fails, and permissions apply anyway.
#[cfg(unix)]
pub fn without_dac_override(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: only async-signal-safe syscalls between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            for cap in [1, 2] {
                libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0);
            }
            Ok(())
        });
    }
}

/// Write a file below `root`, making its folders.
pub fn write_local(root: &Path, rel: &str, content: &[u8]) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, content).unwrap();
}

/// `tandem status --json` of the pair's state (a running service's), parsed.
pub fn status(p: &Pair) -> serde_json::Value {
    let o = p.tandem(&["--state", p.state.to_str().unwrap(), "status", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    serde_json::from_str(&stdout(&o)).unwrap()
}

/// Start `tandem --state STATE run ARGS` and wait until its API answers.
pub fn start_service(p: &Pair, args: &[&str], env: &[(&str, &str)]) -> Svc {
    start_service_as(p, args, env, false)
}

/// [`start_service`], and with `unprivileged` file permissions apply even to root.
pub fn start_service_as(p: &Pair, args: &[&str], env: &[(&str, &str)], unprivileged: bool) -> Svc {
    let _ = std::fs::remove_file(discovery(&p.state));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tandem"));
    #[cfg(unix)]
    if unprivileged {
        without_dac_override(&mut cmd);
    }
    // Windows: no capability to drop (its one caller, a test of an unreadable file, is Unix only).
    #[cfg(windows)]
    let _ = unprivileged;
    cmd.args(["--state", p.state.to_str().unwrap(), "run"])
        .args(args)
        .args(["--listen", "127.0.0.1:0", "--log-dir"])
        .arg(p.dir.path().join("logs"))
        .env("TANDEM_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = match cmd.spawn() {
        Ok(c) => c,
        // Wine's CreateProcess now and then fails with ERROR_INTERNAL_ERROR (1359) right
        // after a process was killed; a second try starts it.
        Err(e) if cfg!(windows) && e.raw_os_error() == Some(1359) => {
            std::thread::sleep(std::time::Duration::from_millis(500));
            cmd.spawn().unwrap()
        }
        Err(e) => panic!("cannot start tandem run: {e}"),
    };
    let svc = Svc {
        child: Some(child),
        state: p.state.clone(),
    };
    wait_for("the service's API", std::time::Duration::from_secs(30), || {
        discovery(&p.state).exists()
            && p.tandem(&["--state", p.state.to_str().unwrap(), "status", "--json"])
                .status
                .success()
    });
    svc
}

/// A test server or tool installed by `scripts/install-deps.sh` into `target/test-venv`
/// (rclone, moto_server, wsgidav); `None` when it is not there.
pub fn venv_tool(name: &str) -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-venv/bin").join(name);
    p.is_file().then_some(p)
}

/// A free TCP port on loopback (bound and released; the server binds it next).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `tandem ARGS` with `env` set and the variables in `unset` removed (a test must not pick
/// up the caller's credentials).
pub fn tandem_env(args: &[&str], env: &[(&str, &str)], unset: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tandem"));
    cmd.args(args).env("TANDEM_LOG", "info");
    for k in unset {
        cmd.env_remove(k);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// A command's stdout and stderr, together.
pub fn output_text(o: &Output) -> String {
    format!("{}{}", stdout(o), stderr(o))
}

/// A planted `secret` appears in none of `texts` (output, API answers) and in no file below
/// `dir` (state, logs, discovery and token files) but `secret_file`, where it belongs.
pub fn assert_secret_nowhere(secret: &str, dir: &Path, secret_file: Option<&Path>, texts: &[&str]) {
    for text in texts {
        assert!(!text.contains(secret), "the secret appears in output: {text}");
    }
    let leaks: Vec<String> = files_below(dir, false)
        .into_iter()
        .filter(|(rel, data)| Some(dir.join(rel).as_path()) != secret_file && data.windows(secret.len()).any(|w| w == secret.as_bytes()))
        .map(|(rel, _)| rel)
        .collect();
    assert!(leaks.is_empty(), "the secret is written in {leaks:?}");
}

/// A certificate authority and a server certificate it signed for `127.0.0.1` and
/// `localhost`, made with the `openssl` command in `dir`: (CA certificate, server
/// certificate, server key), PEM files.
pub fn test_ca(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let (ca, ca_key) = (dir.join("ca.pem"), dir.join("ca.key"));
    let (cert, key, csr, ext) = (
        dir.join("server.pem"),
        dir.join("server.key"),
        dir.join("server.csr"),
        dir.join("ext.cnf"),
    );
    std::fs::write(
        &ext,
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    let openssl = |cmd: &mut Command| {
        let o = cmd
            .output()
            .unwrap_or_else(|e| panic!("openssl (Debian package openssl, installed by scripts/install-deps.sh): {e}"));
        assert!(o.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&o.stderr));
    };
    openssl(
        Command::new("openssl")
            .args(["req", "-x509", "-days", "2", "-subj", "/CN=Tandem test CA"])
            .args(ec)
            .args([
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ])
            .arg("-keyout")
            .arg(&ca_key)
            .arg("-out")
            .arg(&ca),
    );
    openssl(
        Command::new("openssl")
            .args(["req", "-subj", "/CN=127.0.0.1"])
            .args(ec)
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&csr),
    );
    openssl(
        Command::new("openssl")
            .args(["x509", "-req", "-days", "2", "-CAcreateserial", "-in"])
            .arg(&csr)
            .arg("-CA")
            .arg(&ca)
            .arg("-CAkey")
            .arg(&ca_key)
            .arg("-extfile")
            .arg(&ext)
            .arg("-out")
            .arg(&cert),
    );
    (ca, cert, key)
}

/// A test server on loopback (moto, `rclone serve`, wsgidav), its output in
/// `dir/server.log`: started and waited for until its port answers, started again on the
/// same port and folder by `restart`, killed when dropped (after printing the log's last
/// lines when the test is failing).
pub struct ServerProc {
    child: std::process::Child,
    pub port: u16,
    pub name: &'static str,
    pub dir: tempfile::TempDir,
    argv: Argv,
}

/// A command line to start again: program, arguments, environment changes.
struct Argv {
    program: std::ffi::OsString,
    args: Vec<std::ffi::OsString>,
    envs: Vec<(std::ffi::OsString, Option<std::ffi::OsString>)>,
}

impl ServerProc {
    pub fn start(name: &'static str, dir: tempfile::TempDir, cmd: Command, port: u16) -> ServerProc {
        let argv = Argv {
            program: cmd.get_program().to_owned(),
            args: cmd.get_args().map(|a| a.to_owned()).collect(),
            envs: cmd.get_envs().map(|(k, v)| (k.to_owned(), v.map(|v| v.to_owned()))).collect(),
        };
        let mut s = ServerProc {
            child: Self::spawn(name, dir.path(), &argv, false),
            port,
            name,
            dir,
            argv,
        };
        s.wait_ready();
        s
    }

    fn spawn(name: &str, dir: &Path, argv: &Argv, append: bool) -> std::process::Child {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(append)
            .write(true)
            .truncate(!append)
            .open(dir.join("server.log"))
            .unwrap();
        let mut cmd = Command::new(&argv.program);
        cmd.args(&argv.args);
        for (k, v) in &argv.envs {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        cmd.stdin(std::process::Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"))
    }

    fn wait_ready(&mut self) {
        let t = std::time::Instant::now();
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], self.port));
        while std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_millis(200)).is_err() {
            if let Ok(Some(st)) = self.child.try_wait() {
                panic!("{} exited ({st}) before answering: {}", self.name, self.log());
            }
            assert!(
                t.elapsed() < std::time::Duration::from_secs(90),
                "{} did not answer on port {} within 90 s: {}",
                self.name,
                self.port,
                self.log()
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }

    /// Stop the server (SIGKILL) and wait for it to be gone.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stop the server (SIGKILL, if it runs) and start it again on the same port and folder.
    pub fn restart(&mut self) {
        self.kill();
        self.child = Self::spawn(self.name, self.dir.path(), &self.argv, true);
        self.wait_ready();
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!(
                "--- last lines of the {} log:\n{}",
                self.name,
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        self.kill();
    }
}
