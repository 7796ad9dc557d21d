//! Root identity (SPEC §5): a root replaced by another folder (a different disk mounted at
//! the same path, or the mount gone and a stale folder left behind) stops the pair instead
//! of being synced; the one-shot CLI and the running service. A side restored from an old
//! backup stops before its older versions overwrite most of the other side.

use crate::common::{start_service, stderr, stdout, wait_for, Pair};
use std::time::Duration;
use tandem::model::Side::{Left, Right};

fn synced(n: usize) -> Pair {
    let p = Pair::new();
    for i in 0..n {
        p.write(Left, &format!("d/f{i}.txt"), format!("file {i}").as_bytes());
    }
    p.sync_ok();
    p.assert_converged();
    p
}

/// Move the right root aside and put another folder in its place, holding an old copy of
/// one file and a file of its own (what a different disk or a restored backup looks like).
fn replace_right(p: &Pair) -> std::path::PathBuf {
    let aside = p.right.with_extension("real");
    std::fs::rename(&p.right, &aside).unwrap();
    p.write(Right, "d/f0.txt", b"an old version");
    p.write(Right, "stranger.txt", b"another disk's file");
    aside
}

#[test]
fn guard_a_root_replaced_by_another_folder_stops_the_pair_and_changes_nothing() {
    let p = synced(10);
    let left_before = p.tree(Left);
    let aside = replace_right(&p);
    let stranger = p.tree(Right);
    let o = p.sync(&[]);
    assert_eq!(o.status.code(), Some(3), "{}{}", stdout(&o), stderr(&o));
    assert!(stderr(&o).contains("is not the folder this pair synced"), "{}", stderr(&o));
    assert!(stderr(&o).contains(p.right.to_str().unwrap()), "{}", stderr(&o));
    assert_eq!(p.tree(Left), left_before, "nothing reached the left side");
    assert_eq!(p.tree(Right), stranger, "the other folder was not touched");
    assert!(p.trash(Left).is_empty());
    let o = p.sync(&["--dry-run"]);
    assert_eq!(o.status.code(), Some(3), "a dry run says so too: {}", stderr(&o));
    // The real folder back: the pair syncs again.
    std::fs::remove_dir_all(&p.right).unwrap();
    std::fs::rename(&aside, &p.right).unwrap();
    let (l, r) = (p.left.to_str().unwrap(), p.right.to_str().unwrap());
    let o = p.tandem(&["sync", l, r, "--state", p.state.to_str().unwrap(), "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).lines().count() == 1, "nothing to do: {}", stdout(&o));
}

#[test]
fn guard_a_replaced_root_is_adopted_only_with_consent() {
    let p = synced(4);
    replace_right(&p);
    assert_eq!(p.sync(&[]).status.code(), Some(3));
    let o = p.sync(&["--allow-mass-delete"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    // Adopted: its marker is now the one recorded, and nothing was lost (the older f0 and
    // the left's f0 differed: a clash keeps both).
    assert!(p.right.join(".sync_trash/.tandem-root").exists());
    assert_eq!(p.sync(&[]).status.code(), Some(0));
    p.assert_converged();
    assert!(p.tree(Left).values().any(|v| v == b"an old version"));
    assert!(
        p.trash(Left).values().any(|v| v == b"file 0"),
        "the overwritten version is in the trash"
    );
}

#[test]
fn guard_a_mount_gone_with_an_empty_folder_left_stops_the_pair() {
    let p = synced(6);
    let before = p.tree(Left);
    let aside = p.right.with_extension("real");
    std::fs::rename(&p.right, &aside).unwrap();
    std::fs::create_dir(&p.right).unwrap();
    let o = p.sync(&[]);
    assert_eq!(o.status.code(), Some(3), "{}{}", stdout(&o), stderr(&o));
    assert_eq!(p.tree(Left), before);
    assert!(p.trash(Left).is_empty());
}

#[test]
fn guard_the_service_stops_a_pair_whose_root_was_replaced() {
    let p = synced(10);
    let left_before = p.tree(Left);
    let (l, r) = (p.left.to_str().unwrap().to_string(), p.right.to_str().unwrap().to_string());
    let _svc = start_service(&p, &[&l, &r], &[]);
    let state = p.state.to_str().unwrap();
    let status = || -> serde_json::Value {
        let o = p.tandem(&["--state", state, "status", "--json"]);
        serde_json::from_str(&stdout(&o)).unwrap()
    };
    wait_for("startup run", Duration::from_secs(30), || status()["pairs"][0]["state"] == "idle");
    replace_right(&p);
    let stranger = p.tree(Right);
    let o = p.tandem(&["--state", state, "sync-now"]);
    assert!(o.status.success(), "{}", stderr(&o));
    wait_for("the pair in error", Duration::from_secs(30), || {
        let s = status();
        s["pairs"][0]["state"] == "error"
            && s["pairs"][0]["reason"]
                .as_str()
                .is_some_and(|r| r.contains("is not the folder this pair synced"))
    });
    assert_eq!(p.tree(Left), left_before);
    assert_eq!(p.tree(Right), stranger);
}

#[test]
fn guard_a_side_restored_from_an_old_backup_stops_before_overwriting_with_older_versions() {
    let p = Pair::new();
    for i in 0..10 {
        p.write_at(Left, &format!("d/f{i}.txt"), format!("current {i}").as_bytes(), 1_700_000_000);
    }
    p.sync_ok();
    // The left side is restored from last month's backup: older contents, older times.
    for i in 0..8 {
        p.write_at(Left, &format!("d/f{i}.txt"), format!("last month {i}").as_bytes(), 1_697_000_000);
    }
    let right_before = p.tree(Right);
    let o = p.sync(&[]);
    assert_eq!(o.status.code(), Some(3), "{}{}", stdout(&o), stderr(&o));
    assert!(stderr(&o).contains("older versions"), "{}", stderr(&o));
    assert_eq!(p.tree(Right), right_before, "nothing was overwritten");
    let o = p.tandem(&["history", "--json", "--state", p.state.to_str().unwrap()]);
    assert!(stdout(&o).lines().next().unwrap().contains("\"stopped\""), "{}", stdout(&o));
    // With consent it goes ahead, and the newer versions are kept in the trash.
    let o = p.sync(&["--allow-mass-delete"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(p.read(Right, "d/f0.txt").as_deref(), Some(&b"last month 0"[..]));
    assert_eq!(p.trash(Right).len(), 8);
    // A few older versions (at most max_delete_percent) pass without asking.
    p.write_at(Left, "d/f9.txt", b"older f9", 1_600_000_000);
    assert_eq!(p.sync(&[]).status.code(), Some(0));
}

/// A small tmpfs mounted on a side's root for the test's lifetime. Mounting needs root:
/// CI runs as root; elsewhere these tests say so and stop early.
// Unix only: the small disk is a tmpfs mounted as root (Windows has neither).
#[cfg(unix)]
struct SmallDisk(std::path::PathBuf);

// Unix only: the small disk is a tmpfs mounted as root (Windows has neither).
#[cfg(unix)]
impl SmallDisk {
    fn mount(root: &std::path::Path, kib: u32) -> Option<SmallDisk> {
        // SAFETY: plain syscall.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: mounting a small file system for the disk-full test needs root");
            return None;
        }
        let o = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={kib}k"), "tmpfs"])
            .arg(root)
            .output()
            .unwrap();
        assert!(o.status.success(), "mount: {}", String::from_utf8_lossy(&o.stderr));
        Some(SmallDisk(root.to_path_buf()))
    }
    fn grow(&self, kib: u32) {
        let o = std::process::Command::new("mount")
            .args(["-o", &format!("remount,size={kib}k")])
            .arg(&self.0)
            .output()
            .unwrap();
        assert!(o.status.success(), "remount: {}", String::from_utf8_lossy(&o.stderr));
    }
}

// Unix only: the small disk is a tmpfs mounted as root (Windows has neither).
#[cfg(unix)]
impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

// Unix only: the small disk is a tmpfs mounted as root (Windows has neither).
#[cfg(unix)]
fn temp_files(root: &std::path::Path) -> Vec<String> {
    crate::common::files_below(root, false)
        .into_keys()
        .filter(|k| k.rsplit('/').next().unwrap().starts_with(".tandem-"))
        .filter(|k| k.ends_with(".tmp"))
        .collect()
}

// Unix only: the small disk is a tmpfs mounted as root (Windows has neither).
#[cfg(unix)]
#[test]
fn disk_full_fails_that_copy_only_removes_its_temporary_file_and_resumes_when_space_is_freed() {
    let p = Pair::new();
    let Some(disk) = SmallDisk::mount(&p.right, 512) else { return };
    for i in 0..4 {
        p.write(Left, &format!("small{i}.txt"), &vec![b's'; 20 * 1024]);
    }
    p.write(Left, "big.bin", &vec![7u8; 2 << 20]);
    let o = p.sync(&[]);
    assert_eq!(o.status.code(), Some(1), "{}{}", stdout(&o), stderr(&o));
    assert!(
        stdout(&o).contains("disk full") || stderr(&o).contains("disk full"),
        "{}{}",
        stdout(&o),
        stderr(&o)
    );
    assert!(p.exists(Right, "small3.txt"), "the other copies were done");
    assert!(!p.exists(Right, "big.bin"));
    assert!(temp_files(&p.right).is_empty(), "{:?}", temp_files(&p.right));
    // No base row for it: the next plan copies it again.
    let o = p.sync(&["--dry-run", "--json"]);
    assert!(stdout(&o).contains("\"path\":\"big.bin\""), "{}", stdout(&o));
    disk.grow(8 * 1024);
    assert_eq!(p.sync(&[]).status.code(), Some(0));
    p.assert_converged();
}

// Unix only: the small disk is a tmpfs mounted as root (Windows has neither).
#[cfg(unix)]
#[test]
fn disk_full_in_the_service_is_told_once_and_the_copy_resumes_when_space_is_freed() {
    let p = Pair::new();
    let Some(disk) = SmallDisk::mount(&p.right, 512) else { return };
    p.write(Left, "small.txt", b"fits");
    let (l, r) = (p.left.to_str().unwrap().to_string(), p.right.to_str().unwrap().to_string());
    let _svc = start_service(&p, &[&l, &r], &[]);
    wait_for("the small file", Duration::from_secs(30), || p.exists(Right, "small.txt"));
    p.write(Left, "big.bin", &vec![7u8; 2 << 20]);
    let state = p.state.to_str().unwrap();
    let status = || -> serde_json::Value {
        let o = p.tandem(&["--state", state, "status", "--json"]);
        serde_json::from_str(&stdout(&o)).unwrap()
    };
    wait_for("the pair says the disk is full", Duration::from_secs(30), || {
        status()["pairs"][0]["reason"].as_str().is_some_and(|r| r.contains("disk full"))
    });
    // Retries follow (2 s, 4 s, ...): still told once.
    std::thread::sleep(Duration::from_secs(7));
    let logs = crate::common::files_below(&p.dir.path().join("logs"), false);
    let told: usize = logs.values().map(|v| String::from_utf8_lossy(v).matches("disk_full").count()).sum();
    assert_eq!(told, 1, "the full disk is told once");
    assert!(temp_files(&p.right).is_empty(), "{:?}", temp_files(&p.right));
    disk.grow(8 * 1024);
    wait_for("the copy after space was freed", Duration::from_secs(120), || {
        p.read(Right, "big.bin").is_some_and(|c| c.len() == 2 << 20)
    });
    wait_for("the pair back to normal", Duration::from_secs(30), || {
        status()["pairs"][0]["state"] == "idle"
    });
}
