//! Secrets in the OS keyring (`keyring = "NAME"` in `[pair.remote]` and `[email]`, `tandem
//! secret set|check|delete`) against a real Secret Service, no mock: each test starts a
//! private D-Bus session bus (`dbus-daemon` with a configuration of its own: no service
//! activation, so nothing but the test's daemon answers) and `gnome-keyring-daemon
//! --foreground --unlock` with a private HOME, whose login keyring it creates and unlocks
//! with a throw-away password read on stdin (an empty one creates no keyring at all). Both
//! are killed when the test ends; the user's own keyring is never reached (every `tandem`
//! here gets the private bus's address). They come from Debian's `dbus` and
//! `gnome-keyring` (scripts/install-deps.sh); a missing one fails the test, saying so.
//! The S3 server is `rclone serve s3` from `side_s3`. Linux only: the Windows Credential
//! Manager and the macOS Keychain stores are compiled for their targets, not run here.
#![cfg(target_os = "linux")]

use crate::common::{assert_secret_nowhere, output_text, wait_for, write_local, Pair};
use crate::side_s3::{Server, AWS_VARS, KEY, SECRET};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

/// Unlocks the test's login keyring; not a secret of anything.
const KEYRING_PASSWORD: &str = "tandem-test-login-keyring";

/// A program from a Debian package, or a failing test naming the package.
fn tool(name: &str, package: &str) -> PathBuf {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .chain(["/usr/bin".into(), "/bin".into()])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("{name} is not installed: run scripts/install-deps.sh (Debian package {package}); the keyring tests need a real Secret Service")
        })
}

/// A private session bus with a GNOME Keyring on it, both killed when dropped.
struct Keyring {
    bus: Child,
    daemon: Option<Child>,
    address: String,
    dir: tempfile::TempDir,
}

impl Drop for Keyring {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for log in ["bus.log", "keyring.log"] {
                let text = std::fs::read_to_string(self.dir.path().join(log)).unwrap_or_default();
                eprintln!("--- {log}:\n{text}");
            }
        }
        self.stop_daemon();
        let _ = self.bus.kill();
        let _ = self.bus.wait();
    }
}

impl Keyring {
    fn start() -> Keyring {
        let dbus_daemon = tool("dbus-daemon", "dbus");
        let keyring_daemon = tool("gnome-keyring-daemon", "gnome-keyring");
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("bus.conf");
        std::fs::write(
            &conf,
            format!(
                r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"#,
                dir.path().join("bus").display()
            ),
        )
        .unwrap();
        let mut bus = Command::new(dbus_daemon)
            .arg(format!("--config-file={}", conf.display()))
            .args(["--nofork", "--print-address=1"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(dir.path().join("bus.log")).unwrap())
            .spawn()
            .unwrap();
        let mut address = String::new();
        std::io::BufReader::new(bus.stdout.take().unwrap()).read_line(&mut address).unwrap();
        let address = address.trim().to_string();
        assert!(
            address.starts_with("unix:"),
            "dbus-daemon printed no address: {}",
            std::fs::read_to_string(dir.path().join("bus.log")).unwrap_or_default()
        );
        let home = dir.path().join("home");
        let run = dir.path().join("run");
        std::fs::create_dir_all(&home).unwrap();
        std::fs::create_dir_all(&run).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o700)).unwrap();
        let mut daemon = Command::new(keyring_daemon)
            .args(["--foreground", "--unlock", "--components=secrets"])
            .env("DBUS_SESSION_BUS_ADDRESS", &address)
            .env("HOME", &home)
            .env("XDG_DATA_HOME", home.join(".local/share"))
            .env("XDG_CONFIG_HOME", home.join(".config"))
            .env("XDG_CACHE_HOME", home.join(".cache"))
            .env("XDG_RUNTIME_DIR", &run)
            .env_remove("DISPLAY")
            .env_remove("WAYLAND_DISPLAY")
            .stdin(Stdio::piped())
            .stdout(std::fs::File::create(dir.path().join("keyring.log")).unwrap())
            .stderr(std::fs::File::options().append(true).open(dir.path().join("keyring.log")).unwrap())
            .spawn()
            .unwrap();
        daemon.stdin.take().unwrap().write_all(KEYRING_PASSWORD.as_bytes()).unwrap();
        let mut kr = Keyring {
            bus,
            daemon: Some(daemon),
            address,
            dir,
        };
        // Ready when the daemon owns the Secret Service's name and its login keyring is the
        // default collection (new items go there).
        let dbus_send = tool("dbus-send", "dbus");
        wait_for("the Secret Service's default collection", Duration::from_secs(30), || {
            if let Some(Ok(Some(st))) = kr.daemon.as_mut().map(|d| d.try_wait()) {
                panic!("gnome-keyring-daemon exited ({st})");
            }
            let o = Command::new(&dbus_send)
                .arg(format!("--bus={}", kr.address))
                .args([
                    "--print-reply=literal",
                    "--dest=org.freedesktop.secrets",
                    "/org/freedesktop/secrets",
                    "org.freedesktop.Secret.Service.ReadAlias",
                    "string:default",
                ])
                .output()
                .unwrap();
            String::from_utf8_lossy(&o.stdout).contains("/collection/")
        });
        kr
    }

    /// The keyring goes away; the bus stays (a session without a keyring).
    fn stop_daemon(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            let _ = d.kill();
            let _ = d.wait();
        }
    }

    /// `tandem ARGS` on this bus (never the user's), without the caller's AWS variables,
    /// with `input` on stdin.
    fn tandem(&self, args: &[&str], input: Option<&str>) -> Output {
        tandem_on(&self.address, args, input)
    }
}

fn tandem_on(bus: &str, args: &[&str], input: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tandem"));
    cmd.args(args).env("TANDEM_LOG", "info").env("DBUS_SESSION_BUS_ADDRESS", bus);
    for k in AWS_VARS {
        cmd.env_remove(k);
    }
    cmd.stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    if let Some(text) = input {
        child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    }
    child.wait_with_output().unwrap()
}

/// A config with one pair: `left` with `s3://team/share` on `srv`, its secret from the
/// keyring entry `entry`.
fn s3_config(dir: &Path, left: &Path, srv: &Server, entry: &str) -> PathBuf {
    let cfg = dir.join("tandem.toml");
    std::fs::write(
        &cfg,
        format!(
            "[[pair]]\nname = \"team\"\nleft = {:?}\nright = \"s3://team/share\"\n[pair.remote]\nendpoint = {:?}\nuser = {KEY:?}\nkeyring = {entry:?}\n",
            left.to_str().unwrap(),
            srv.endpoint()
        ),
    )
    .unwrap();
    cfg
}

fn code(o: &Output) -> Option<i32> {
    o.status.code()
}

#[test]
fn keyring_secret_set_then_sync_with_s3_and_the_secret_is_nowhere() {
    let kr = Keyring::start();
    let srv = Server::rclone();
    srv.bucket("team");
    let served = srv.dir.path().join("served/team/share");
    let dir = tempfile::tempdir().unwrap();
    let left = dir.path().join("left");
    write_local(&left, "plan.txt", b"the plan");
    write_local(&left, "sub/notes.md", b"notes");
    let state = dir.path().join("state.db");
    let cfg = s3_config(dir.path(), &left, &srv, "s3-team");
    let sync = ["--state", state.to_str().unwrap(), "sync", "--config", cfg.to_str().unwrap()];

    let set = kr.tandem(&["secret", "set", "s3-team"], Some(&format!("{SECRET}\n")));
    assert_eq!(code(&set), Some(0), "{}", output_text(&set));
    assert!(output_text(&set).contains("\"tandem/s3-team\""), "{}", output_text(&set));
    let check = kr.tandem(&["secret", "check", "s3-team"], None);
    assert_eq!(code(&check), Some(0), "{}", output_text(&check));
    assert!(output_text(&check).contains("exists"), "{}", output_text(&check));

    let o = kr.tandem(&sync, None);
    assert_eq!(code(&o), Some(0), "{}", output_text(&o));
    assert_eq!(std::fs::read(served.join("plan.txt")).unwrap(), b"the plan");
    assert_eq!(std::fs::read(served.join("sub/notes.md")).unwrap(), b"notes");

    // The secret really comes from the keyring: a wrong one stored there is what the
    // server sees (refused, and not shown either).
    let wrong = "not-the-secret-4711";
    let o2 = kr.tandem(&["secret", "set", "s3-team"], Some(wrong));
    assert_eq!(code(&o2), Some(0), "{}", output_text(&o2));
    write_local(&left, "later.txt", b"later");
    let o3 = kr.tandem(&sync, None);
    assert_ne!(code(&o3), Some(0), "{}", output_text(&o3));
    assert!(
        output_text(&o3).contains("s3://team/share") && !output_text(&o3).contains(wrong),
        "{}",
        output_text(&o3)
    );
    assert!(!served.join("later.txt").exists());
    let o4 = kr.tandem(&["secret", "set", "s3-team"], Some(SECRET));
    assert_eq!(code(&o4), Some(0), "{}", output_text(&o4));
    let o5 = kr.tandem(&sync, None);
    assert_eq!(code(&o5), Some(0), "{}", output_text(&o5));
    assert_eq!(std::fs::read(served.join("later.txt")).unwrap(), b"later");

    let h = kr.tandem(&["--state", state.to_str().unwrap(), "history", "--json"], None);
    let shown = kr.tandem(&["check-config", cfg.to_str().unwrap()], None);
    assert_eq!(code(&shown), Some(0), "{}", output_text(&shown));
    assert_secret_nowhere(
        SECRET,
        dir.path(),
        None,
        &[
            &output_text(&set),
            &output_text(&check),
            &output_text(&o),
            &output_text(&o3),
            &output_text(&o5),
            &output_text(&h),
            &output_text(&shown),
        ],
    );
    assert_secret_nowhere(wrong, dir.path(), None, &[&output_text(&o3)]);
}

#[test]
fn keyring_missing_entry_or_keyring_stops_the_sync_with_exit_2_and_deletes_nothing() {
    let mut kr = Keyring::start();
    let srv = Server::rclone();
    srv.bucket("team");
    let served = srv.dir.path().join("served/team/share");
    let dir = tempfile::tempdir().unwrap();
    let left = dir.path().join("left");
    write_local(&left, "keep.txt", b"keep");
    write_local(&left, "gone.txt", b"deleted here, must stay in the bucket");
    let state = dir.path().join("state.db");
    let cfg = s3_config(dir.path(), &left, &srv, "s3-team");
    let sync = ["--state", state.to_str().unwrap(), "sync", "--config", cfg.to_str().unwrap()];
    let o = kr.tandem(&["secret", "set", "s3-team"], Some(SECRET));
    assert_eq!(code(&o), Some(0), "{}", output_text(&o));
    let o = kr.tandem(&sync, None);
    assert_eq!(code(&o), Some(0), "{}", output_text(&o));
    assert!(served.join("gone.txt").is_file());

    // A deletion waits to be synced; the entry is removed from the keyring.
    std::fs::remove_file(left.join("gone.txt")).unwrap();
    let del = kr.tandem(&["secret", "delete", "s3-team"], None);
    assert_eq!(code(&del), Some(0), "{}", output_text(&del));
    let check = kr.tandem(&["secret", "check", "s3-team"], None);
    assert_eq!(code(&check), Some(1), "{}", output_text(&check));
    assert!(output_text(&check).contains("not found"), "{}", output_text(&check));
    let missing = kr.tandem(&sync, None);
    assert_eq!(code(&missing), Some(2), "{}", output_text(&missing));
    let text = output_text(&missing);
    assert!(
        text.contains("pair team: s3://team/share (keyring = \"s3-team\"): keyring entry \"tandem/s3-team\" not found: store it with `tandem secret set s3-team` [remote_config]"),
        "{text}"
    );
    assert!(
        served.join("gone.txt").is_file() && served.join("keep.txt").is_file(),
        "nothing deleted"
    );
    assert!(left.join("keep.txt").is_file());

    // A session bus with no keyring on it, and no session bus at all: "no keyring
    // available", naming the option and the entry; still exit 2, still nothing deleted.
    kr.stop_daemon();
    let no_service = kr.tandem(&sync, None);
    let no_bus = tandem_on(&format!("unix:path={}", dir.path().join("no-bus").display()), &sync, None);
    for o in [&no_service, &no_bus] {
        assert_eq!(code(o), Some(2), "{}", output_text(o));
        let text = output_text(o);
        assert!(
            text.contains("(keyring = \"s3-team\"): keyring entry \"tandem/s3-team\": no keyring available on this machine")
                && text.contains("[remote_config]"),
            "{text}"
        );
    }
    let check = kr.tandem(&["secret", "check", "s3-team"], None);
    assert_eq!(code(&check), Some(2), "{}", output_text(&check));
    assert!(output_text(&check).contains("no keyring available"), "{}", output_text(&check));
    assert!(
        served.join("gone.txt").is_file() && served.join("keep.txt").is_file(),
        "nothing deleted"
    );
    assert_secret_nowhere(SECRET, dir.path(), None, &[&output_text(&missing), &output_text(&no_service)]);
}

#[test]
fn keyring_and_another_secret_source_together_are_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "[[pair]]\nname = \"a\"\nleft = \"/a\"\nright = \"s3://b\"\n[pair.remote]\nsecret_env = \"S3_SECRET\"\nkeyring = \"s3\"\n",
            "pair[0].remote.keyring",
        ),
        ("[remote]\nkeyring = \"s3\"\npassword_file = \"pw\"\n", "remote.keyring"),
        (
            "[email]\nhost = \"h\"\nfrom = \"a@b.c\"\npassword_env = \"SMTP\"\nkeyring = \"smtp\"\n",
            "email.keyring",
        ),
    ];
    for (text, key) in cases {
        let cfg = dir.path().join("tandem.toml");
        std::fs::write(&cfg, text).unwrap();
        let o = tandem_on("unix:path=/nonexistent", &["check-config", cfg.to_str().unwrap()], None);
        assert_eq!(code(&o), Some(2), "{text}: {}", output_text(&o));
        let e = output_text(&o);
        assert!(
            e.contains(key) && e.contains("only one of") && e.contains("[config_invalid]"),
            "{text}: {e}"
        );
    }
    // A value that is no entry name may be the secret pasted in: not repeated.
    std::fs::write(dir.path().join("tandem.toml"), "[remote]\nkeyring = \"hunter2 is my password!\"\n").unwrap();
    let o = tandem_on(
        "unix:path=/nonexistent",
        &["check-config", dir.path().join("tandem.toml").to_str().unwrap()],
        None,
    );
    assert_eq!(code(&o), Some(2), "{}", output_text(&o));
    assert!(
        output_text(&o).contains("remote.keyring") && !output_text(&o).contains("hunter2"),
        "{}",
        output_text(&o)
    );
}

#[test]
fn keyring_service_started_before_the_entry_exists_syncs_once_it_is_stored() {
    let kr = Keyring::start();
    let srv = Server::rclone();
    srv.bucket("team");
    let served = srv.dir.path().join("served/team/share");
    let p = Pair::new();
    let cfg = s3_config(p.dir.path(), &p.left, &srv, "s3-late");
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, format!("poll_interval = \"1s\"\n{text}")).unwrap();
    p.write(tandem::model::Side::Left, "waiting.txt", b"waits for the keyring");
    let _svc = crate::common::start_service(
        &p,
        &["--config", cfg.to_str().unwrap()],
        &[("DBUS_SESSION_BUS_ADDRESS", kr.address.as_str())],
    );
    let t = Duration::from_secs(60);
    let status = || {
        let o = p.tandem(&["--state", p.state.to_str().unwrap(), "status", "--json"]);
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap_or_default()
    };
    wait_for("the pair's error naming the entry", t, || {
        let st = status();
        st["pairs"][0]["state"] == "error"
            && st["pairs"][0]["reason"]
                .as_str()
                .unwrap_or("")
                .contains("keyring entry \"tandem/s3-late\" not found")
    });
    let o = kr.tandem(&["secret", "set", "s3-late"], Some(SECRET));
    assert_eq!(code(&o), Some(0), "{}", output_text(&o));
    wait_for("the copy once the entry is stored", t, || served.join("waiting.txt").is_file());
    let h = p.tandem(&["--state", p.state.to_str().unwrap(), "history", "--json"]);
    assert_secret_nowhere(SECRET, p.dir.path(), None, &[&status().to_string(), &output_text(&h)]);
}

#[test]
fn keyring_holds_the_smtp_password() {
    let kr = Keyring::start();
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens on the port: once the password is found, sending fails there.
    let port = crate::common::free_port();
    let cfg = dir.path().join("tandem.toml");
    std::fs::write(
        &cfg,
        format!("[email]\nhost = \"127.0.0.1\"\nport = {port}\nsecurity = \"none\"\nusername = \"u\"\nkeyring = \"smtp\"\nfrom = \"a@b.c\"\nto = [\"d@e.f\"]\n"),
    )
    .unwrap();
    let o = kr.tandem(&["notify-test", "--config", cfg.to_str().unwrap()], None);
    assert_eq!(code(&o), Some(1), "{}", output_text(&o));
    assert!(
        output_text(&o).contains("email.keyring: keyring entry \"tandem/smtp\" not found: store it with `tandem secret set smtp`"),
        "{}",
        output_text(&o)
    );
    let set = kr.tandem(&["secret", "set", "smtp"], Some(&format!("{SECRET}\r\n")));
    assert_eq!(code(&set), Some(0), "{}", output_text(&set));
    let o2 = kr.tandem(&["notify-test", "--config", cfg.to_str().unwrap()], None);
    assert_eq!(code(&o2), Some(1), "{}", output_text(&o2));
    assert!(
        output_text(&o2).contains(&format!("sending through 127.0.0.1:{port} failed")) && !output_text(&o2).contains("keyring"),
        "{}",
        output_text(&o2)
    );
    assert_secret_nowhere(SECRET, dir.path(), None, &[&output_text(&o), &output_text(&set), &output_text(&o2)]);
}
