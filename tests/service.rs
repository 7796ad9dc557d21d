//! The continuous service, end to end: the real `tandem run` on real temp folders, driven
//! through the files and the CLI (`status`, `pause`, `resume`), checked on disk and in the
//! history. Waits poll the disk with a generous deadline; nothing here asserts a duration.

use crate::common::{stderr, stdout, Pair};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tandem::model::Side::{Left, Right};

#[cfg(unix)]
use crate::common::start_service_as;
use crate::common::{discovery, start_service as start, status, wait_for, Svc};

fn start_pair(p: &Pair) -> Svc {
    start(p, &[p.left.to_str().unwrap(), p.right.to_str().unwrap()], &[])
}

/// A config file for the pair with extra TOML lines.
fn config(p: &Pair, extra: &str) -> PathBuf {
    let f = p.dir.path().join("tandem.toml");
    std::fs::write(
        &f,
        format!(
            "[[pair]]\nname = \"t\"\nleft = {:?}\nright = {:?}\n{extra}\n",
            p.left.to_str().unwrap(),
            p.right.to_str().unwrap()
        ),
    )
    .unwrap();
    f
}

const T: Duration = Duration::from_secs(30);

/// The running service's API token.
fn api_token(p: &Pair) -> String {
    std::fs::read_to_string(format!("{}.api-token", p.state.display()))
        .unwrap()
        .trim()
        .to_string()
}

fn cli(p: &Pair, args: &[&str]) {
    let mut a = vec!["--state", p.state.to_str().unwrap()];
    a.extend_from_slice(args);
    let o = p.tandem(&a);
    assert!(o.status.success(), "tandem {args:?}: {}{}", stdout(&o), stderr(&o));
}

/// Every run recorded, oldest first.
fn runs(p: &Pair) -> Vec<serde_json::Value> {
    let o = p.tandem(&["--state", p.state.to_str().unwrap(), "history", "--json", "--limit", "100000"]);
    let mut v: Vec<serde_json::Value> = stdout(&o).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    v.reverse();
    v
}

fn total(p: &Pair, key: &str) -> u64 {
    runs(p).iter().map(|r| r["counts"][key].as_u64().unwrap()).sum()
}

/// A side's files without Tandem's temporary files (a copy may be in flight).
fn user_tree(p: &Pair, side: tandem::model::Side) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut t = p.tree(side);
    t.retain(|k, _| !(k.rsplit('/').next().unwrap().starts_with(".tandem-") && k.ends_with(".tmp")));
    t
}

/// Both sides equal and the service has nothing left to do.
fn wait_settled(p: &Pair, what: &str) {
    wait_for(what, T, || {
        if user_tree(p, Left) != user_tree(p, Right) {
            return false;
        }
        let st = status(p);
        let x = &st["pairs"][0];
        x["backlog"]["items"] == 0 && x["backlog"]["waiting_paths"] == 0 && (x["state"] == "idle" || x["state"] == "polling")
    });
}

/// Both watchers confirmed (the canary came back).
fn wait_watching(p: &Pair) {
    wait_for("events on both sides", T, || {
        status(p)["pairs"][0]["watch"]
            .as_array()
            .unwrap()
            .iter()
            .all(|w| w["mode"] == "events")
    });
}

fn temp_files(root: &Path) -> Vec<String> {
    crate::common::files_below(root, false)
        .into_keys()
        .filter(|k| k.rsplit('/').next().unwrap().starts_with(".tandem-") && k.ends_with(".tmp"))
        .collect()
}

#[test]
fn service_edits_on_either_side_arrive_on_the_other() {
    let p = Pair::new();
    p.write(Left, "before/start.txt", b"there before the service");
    let mut svc = start_pair(&p);
    // The startup reconciliation copied what was there.
    wait_for("startup copy", T, || p.read(Right, "before/start.txt").is_some());
    wait_watching(&p);
    p.write(Left, "a.txt", b"from the left");
    p.write(Right, "docs/b.txt", b"from the right");
    wait_for("both new files", T, || p.exists(Right, "a.txt") && p.exists(Left, "docs/b.txt"));
    // An edit, and a delete (to the trash on the other side).
    std::fs::write(p.path(Right, "a.txt"), b"edited on the right, longer").unwrap();
    wait_for("the edit", T, || {
        p.read(Left, "a.txt").as_deref() == Some(&b"edited on the right, longer"[..])
    });
    std::fs::remove_file(p.path(Left, "docs/b.txt")).unwrap();
    wait_for("the delete", T, || !p.exists(Right, "docs/b.txt"));
    assert_eq!(p.trash(Right).get("docs/b.txt").map(Vec::as_slice), Some(&b"from the right"[..]));
    p.assert_converged();
    let st = status(&p);
    let pair = &st["pairs"][0];
    assert_eq!(pair["watch"][0]["mode"], "events", "{st}");
    assert!(pair["last_event"]["path"].is_string(), "{st}");
    assert!(pair["ops_last_24h"].as_u64().unwrap() >= 4, "{st}");
    assert_eq!(svc.stop(), Some(0));
    assert!(!discovery(&p.state).exists(), "the discovery file is removed on a clean stop");
    // The history names what started each run.
    let triggers: Vec<String> = runs(&p).iter().map(|r| r["trigger"].as_str().unwrap().to_string()).collect();
    assert_eq!(triggers[0], "startup", "{triggers:?}");
    assert!(triggers[1..].iter().all(|t| t == "watch"), "{triggers:?}");
}

#[test]
fn service_folder_rename_of_1000_files_is_a_rename_on_the_other_side() {
    let p = Pair::new();
    for i in 0..1000 {
        p.write(Left, &format!("project/sub{}/f{i:04}.txt", i % 10), format!("file {i}").as_bytes());
    }
    let _svc = start_pair(&p);
    wait_settled(&p, "initial copy");
    let inode = |rel: &str| crate::common::file_id(&p.path(Right, rel)).unwrap();
    let before: Vec<u64> = (0..1000).map(|i| inode(&format!("project/sub{}/f{i:04}.txt", i % 10))).collect();
    let copied_before = total(&p, "copied");
    assert_eq!(copied_before, 1000);
    std::fs::rename(p.path(Left, "project"), p.path(Left, "renamed project")).unwrap();
    wait_for("the rename", T, || {
        !p.exists(Right, "project") && p.exists(Right, "renamed project")
    });
    wait_settled(&p, "all files under the new name");
    let after: Vec<u64> = (0..1000)
        .map(|i| inode(&format!("renamed project/sub{}/f{i:04}.txt", i % 10)))
        .collect();
    assert_eq!(before, after, "the files on the right were renamed, not copied");
    assert_eq!(total(&p, "copied"), copied_before, "nothing was copied again");
    assert!(total(&p, "renamed") >= 1);
    p.assert_converged();
}

/// A folder renamed a moment after an edit inside it (the edit's targeted run used to see
/// the folder gone, before the new name was reported, and trashed it: 20 files to the
/// trash, then 20 copies). `new` differs from `old` only in case for a case-only rename.
fn folder_renamed_right_after_an_edit_stays_a_rename(old: &str, new: &str, fillers: usize) {
    let p = Pair::new();
    for i in 0..20 {
        p.write(Left, &format!("{old}/sub/f{i}.dat"), format!("file {i}").as_bytes());
    }
    for i in 0..fillers {
        p.write(Left, &format!("other/g{i}.txt"), b"filler");
    }
    let _svc = start_pair(&p);
    wait_settled(&p, "initial copy");
    wait_watching(&p);
    let inode = |rel: &str| crate::common::file_id(&p.path(Right, rel)).unwrap();
    let before: Vec<u64> = (1..20).map(|i| inode(&format!("{old}/sub/f{i}.dat"))).collect();
    let copied_before = total(&p, "copied");
    std::fs::write(p.path(Left, &format!("{old}/sub/f0.dat")), vec![7u8; 500]).unwrap();
    std::thread::sleep(Duration::from_millis(30));
    std::fs::rename(p.path(Left, old), p.path(Left, new)).unwrap();
    wait_for("the rename and the edit", T, || {
        p.read(Right, &format!("{new}/sub/f0.dat")).is_some_and(|c| c == vec![7u8; 500])
            && std::fs::read_dir(&p.right).unwrap().flatten().all(|e| e.file_name() != old)
    });
    wait_settled(&p, "settled after the rename");
    let after: Vec<u64> = (1..20).map(|i| inode(&format!("{new}/sub/f{i}.dat"))).collect();
    assert_eq!(before, after, "the 19 unedited files were renamed on the right, not copied");
    assert_eq!(total(&p, "copied"), copied_before + 1, "only the edited file was copied");
    assert_eq!(total(&p, "trashed"), 0, "nothing was deleted");
    let trash: Vec<Vec<u8>> = p.trash(Right).into_values().collect();
    assert_eq!(
        trash,
        vec![b"file 0".to_vec()],
        "only the edited file's old version is in the trash"
    );
    assert!(runs(&p).iter().all(|r| r["status"] == "ok"), "{:?}", runs(&p));
    p.assert_converged();
}

#[test]
fn service_regression_a_folder_renamed_right_after_an_edit_was_trashed_and_copied_again() {
    folder_renamed_right_after_an_edit_stays_a_rename("Folder44", "Moved44", 30);
}

#[test]
fn service_regression_a_case_only_folder_rename_right_after_an_edit_was_trashed_and_copied_again() {
    if crate::common::skip_under_wine(crate::common::WINE_CASE_RENAME) {
        return;
    }
    folder_renamed_right_after_an_edit_stays_a_rename("Folder44", "folder44", 30);
}

#[test]
fn service_regression_a_folder_with_most_files_renamed_after_an_edit_tripped_the_mass_delete_guard() {
    // 20 of 25 files: deleting them would be 80% of the pair, above max_delete_percent.
    folder_renamed_right_after_an_edit_stays_a_rename("Folder44", "Moved44", 5);
}

#[test]
fn service_regression_a_folder_moved_into_a_folder_just_created_was_copied_and_trashed() {
    // Found by the randomized service test: `mkdir newA && mv B newA/` reported the new
    // folder (planned alone: its contents copied) a moment before the old name's removal
    // (then trashed), instead of one rename.
    let p = Pair::new();
    for i in 0..10 {
        p.write(Left, &format!("B/f{i}.txt"), format!("file {i}").as_bytes());
        p.write(Left, &format!("other/g{i}.txt"), b"filler");
    }
    p.write(Left, "B/sub/deep.txt", b"deep");
    let _svc = start_pair(&p);
    wait_settled(&p, "initial copy");
    wait_watching(&p);
    let inode = |rel: &str| crate::common::file_id(&p.path(Right, rel)).unwrap();
    let before: Vec<u64> = (0..10).map(|i| inode(&format!("B/f{i}.txt"))).collect();
    let copied_before = total(&p, "copied");
    std::fs::create_dir(p.path(Left, "newA")).unwrap();
    // As a shell's `mkdir newA && mv B newA/`: the move a few milliseconds later.
    std::thread::sleep(Duration::from_millis(10));
    std::fs::rename(p.path(Left, "B"), p.path(Left, "newA/B")).unwrap();
    wait_for("the move", T, || p.exists(Right, "newA/B/sub/deep.txt") && !p.exists(Right, "B"));
    wait_settled(&p, "settled after the move");
    let after: Vec<u64> = (0..10).map(|i| inode(&format!("newA/B/f{i}.txt"))).collect();
    assert_eq!(before, after, "the files on the right were moved, not copied");
    assert_eq!(total(&p, "copied"), copied_before, "nothing was copied again");
    assert_eq!(total(&p, "trashed"), 0, "nothing was trashed");
    p.assert_converged();
}

#[test]
fn service_edits_made_while_paused_arrive_after_resume() {
    let p = Pair::new();
    let _svc = start_pair(&p);
    cli(&p, &["pause"]);
    assert_eq!(status(&p)["pairs"][0]["state"], "paused");
    p.write(Left, "while paused.txt", b"written while paused");
    std::fs::create_dir_all(p.path(Right, "r")).unwrap();
    std::fs::write(p.path(Right, "r/also.txt"), b"right, paused").unwrap();
    // Give the watcher time to report them: they must wait.
    wait_for("the events to be noted", T, || {
        status(&p)["pairs"][0]["backlog"]["waiting_paths"].as_u64().unwrap() >= 2
    });
    assert!(!p.exists(Right, "while paused.txt"));
    assert!(!p.exists(Left, "r/also.txt"));
    let runs_while_paused = runs(&p).len();
    cli(&p, &["resume"]);
    wait_for("the paused edits", T, || {
        p.exists(Right, "while paused.txt") && p.exists(Left, "r/also.txt")
    });
    p.assert_converged();
    // Done from the recorded events, not by a full rescan.
    let after = runs(&p);
    assert!(after[runs_while_paused..].iter().all(|r| r["trigger"] == "watch"), "{after:?}");
    // A pair paused by name, and resumed by name.
    cli(&p, &["pause", "--pair", status(&p)["pairs"][0]["pair"].as_str().unwrap()]);
    assert_eq!(status(&p)["pairs"][0]["paused"], true);
    cli(&p, &["resume", "--pair", status(&p)["pairs"][0]["pair"].as_str().unwrap()]);
    assert_eq!(status(&p)["pairs"][0]["paused"], false);
}

#[test]
fn service_pause_survives_a_restart() {
    let p = Pair::new();
    let mut svc = start_pair(&p);
    cli(&p, &["pause"]);
    assert_eq!(svc.stop(), Some(0));
    p.write(Left, "later.txt", b"written while stopped");
    let mut svc = start_pair(&p);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(!p.exists(Right, "later.txt"), "a paused service does not sync after a restart");
    assert_eq!(status(&p)["paused_all"], true);
    cli(&p, &["resume"]);
    // The startup reconciliation it skipped while paused runs now.
    wait_for("the reconciliation", T, || p.exists(Right, "later.txt"));
    assert_eq!(svc.stop(), Some(0));
}

#[test]
fn service_restart_with_a_half_done_backlog_resumes_and_redoes_nothing() {
    let p = Pair::new();
    let n = 200;
    for i in 0..n {
        p.write(Left, &format!("batch/f{i:03}.bin"), &vec![i as u8; 50 * 1024]);
    }
    // 10 MB at 2 MB/s: about 4 s after the first second's burst.
    let slow = config(&p, "[bandwidth]\nleft_to_right = \"2 MB\"\n");
    let mut svc = start(&p, &["--config", slow.to_str().unwrap()], &[]);
    wait_for("some copies", T, || user_tree(&p, Right).len() >= 20);
    svc.kill9();
    let done_at_kill = user_tree(&p, Right).len();
    assert!(done_at_kill < n, "the backlog was half done when killed ({done_at_kill} of {n})");
    let fast = config(&p, "");
    let mut svc = start(&p, &["--config", fast.to_str().unwrap()], &[]);
    wait_settled(&p, "the rest of the backlog");
    assert_eq!(p.tree(Right).len(), n);
    assert_eq!(svc.stop(), Some(0));
    // Each file was copied at most once over both lifetimes (a copy that was in place but
    // not yet recorded at the kill is found equal, not copied again).
    let copied = total(&p, "copied");
    assert!(copied <= n as u64, "copied {copied} for {n} files");
    assert_eq!(
        copied,
        (n - done_at_kill) as u64,
        "exactly the {} files missing at the kill are copied (the killed run records no counts): none of the {done_at_kill} in place then (recorded, or renamed but not yet recorded) is copied again",
        n - done_at_kill
    );
    assert!(
        temp_files(&p.right).is_empty(),
        "leftover temporary files: {:?}",
        temp_files(&p.right)
    );
}

#[test]
fn service_sync_loop_1000_edits_make_exactly_1000_copies() {
    let p = Pair::new();
    let _svc = start_pair(&p);
    for i in 0..500 {
        std::fs::write(p.path(Left, &format!("n{i:03}.txt")), format!("left {i}")).unwrap();
    }
    wait_for("500 new files", T, || user_tree(&p, Right).len() == 500);
    for i in 0..500 {
        std::fs::write(p.path(Right, &format!("n{i:03}.txt")), format!("right edit {i}")).unwrap();
    }
    wait_for("500 edits", T, || {
        p.tree(Left).values().filter(|v| v.starts_with(b"right edit")).count() == 500
    });
    // Tandem's own writes come back as events: they must not cause any further work.
    std::thread::sleep(Duration::from_secs(2));
    let rs = runs(&p);
    let copied: u64 = rs.iter().map(|r| r["counts"]["copied"].as_u64().unwrap()).sum();
    assert_eq!(copied, 1000, "{rs:?}");
    let idle: Vec<_> = rs
        .iter()
        .filter(|r| r["trigger"] == "watch" && r["counts"]["copied"] == 0)
        .collect();
    assert!(idle.is_empty(), "runs that did nothing were recorded: {idle:?}");
    p.assert_converged();
    assert!(p.trash(Left).len() == 500, "the overwritten versions are in the left trash");
}

#[test]
fn service_small_edit_arrives_while_a_2gb_copy_is_in_flight() {
    let p = Pair::new();
    // 2 GB (sparse on the left) at 300 MB/s: several seconds in flight.
    let big = std::fs::File::create(p.path(Left, "huge.bin")).unwrap();
    big.set_len(2 << 30).unwrap();
    drop(big);
    let cfg = config(&p, "[bandwidth]\nleft_to_right = \"300 MB\"\n");
    let mut svc = start(&p, &["--config", cfg.to_str().unwrap()], &[]);
    wait_for("the large copy to start", T, || {
        status(&p)["pairs"][0]["transfers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["lane"] == "large" && t["done"].as_u64().unwrap() > 0)
    });
    p.write(Left, "small.txt", b"a small edit");
    wait_for("the small edit", T, || p.exists(Right, "small.txt"));
    assert!(!p.exists(Right, "huge.bin"), "the small edit arrived before the large copy ended");
    let st = status(&p);
    let pair = &st["pairs"][0];
    // Regression (issue 19, bug 1): with only the large copy in flight the pair said "idle"
    // with an empty backlog. The copy under way is work: syncing, one item, its bytes.
    assert_eq!(pair["state"], "syncing", "{st}");
    assert_eq!(
        (pair["backlog"]["items"].as_u64(), pair["backlog"]["large_items"].as_u64()),
        (Some(1), Some(1)),
        "the copy under way counts: {st}"
    );
    assert_eq!(pair["backlog"]["bytes"].as_u64(), Some(2 << 30), "{st}");
    let t = &pair["transfers"][0];
    assert_eq!(t["size"].as_u64(), Some(2 << 30), "{st}");
    assert!(t["bytes_per_s"].as_u64().unwrap() > 0 && t["eta_s"].as_u64().is_some(), "{st}");
    let token = api_token(&p);
    let (code, body) = http(&p, "GET", "/api/pairs/t/backlog", None, Some(token.as_str()), None);
    assert_eq!(code, 200, "{body}");
    let items: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
    assert!(
        items.iter().any(|i| i["path"] == "huge.bin"
            && i["lane"] == "large"
            && i["copying"] == true
            && i["state"] == "transferring"
            && i["done"].as_u64() > Some(0)),
        "{body}"
    );
    // A graceful stop rolls the copy in flight back: no temporary file, no partial target.
    assert_eq!(svc.stop(), Some(0));
    assert!(!p.exists(Right, "huge.bin"));
    assert!(temp_files(&p.right).is_empty(), "{:?}", temp_files(&p.right));
}

/// Each finished action is listed with its state, and a failure with its error: the
/// Backlog page's "Recently finished" (issue 15: per-item states and the error).
// Unix only: Unix permission bits make the file unreadable (Windows has only the read-only attribute).
#[cfg(unix)]
#[test]
fn service_recent_lists_done_and_failed_items_with_the_error() {
    use std::os::unix::fs::PermissionsExt;
    let p = Pair::new();
    p.write(Left, "fine.txt", b"fine");
    p.write(Left, "locked.txt", b"nobody may read this");
    std::fs::set_permissions(p.path(Left, "locked.txt"), std::fs::Permissions::from_mode(0o000)).unwrap();
    // As an ordinary user: root would read the file anyway.
    let cfg = config(&p, "");
    let _svc = start_service_as(&p, &["--config", cfg.to_str().unwrap()], &[], true);
    let token = api_token(&p);
    let recent = || -> Vec<serde_json::Value> {
        let (code, body) = http(&p, "GET", "/api/pairs/t/recent", None, Some(token.as_str()), None);
        assert_eq!(code, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    };
    wait_for("both outcomes", T, || {
        let r = recent();
        r.iter().any(|f| f["path"] == "fine.txt" && f["state"] == "done")
            && r.iter().any(|f| f["path"] == "locked.txt" && f["state"] == "failed")
    });
    let r = recent();
    let fine = r.iter().find(|f| f["path"] == "fine.txt").unwrap();
    assert_eq!(
        (fine["op"].as_str(), fine["side"].as_str(), fine["bytes"].as_u64()),
        (Some("copy"), Some("right"), Some(4)),
        "{fine}"
    );
    assert!(fine["detail"].is_null() && fine["at"].as_i64().unwrap() > 1_700_000_000, "{fine}");
    let locked = r.iter().find(|f| f["path"] == "locked.txt").unwrap();
    let detail = locked["detail"].as_str().unwrap();
    assert!(
        detail.contains("locked.txt") && detail.to_lowercase().contains("permission denied"),
        "{locked}"
    );
    assert!(p.exists(Right, "fine.txt") && !p.exists(Right, "locked.txt"));
    std::fs::set_permissions(p.path(Left, "locked.txt"), std::fs::Permissions::from_mode(0o644)).unwrap();
}

/// Regression (issue 19, bug 2): a pair whose copies failed kept a green "Up to date"
/// badge, and the error named the left (source) file although the write failed on the right.
// Unix only: Unix permission bits make the right folder unwritable (Windows has only the read-only attribute).
#[cfg(unix)]
#[test]
fn regression_failing_copies_showed_up_to_date_and_blamed_the_source_side() {
    use std::os::unix::fs::PermissionsExt;
    let p = Pair::new();
    for side in [Left, Right] {
        std::fs::create_dir_all(p.path(side, "locked")).unwrap();
    }
    p.write(Left, "locked/new.txt", b"cannot land on the right");
    std::fs::set_permissions(p.path(Right, "locked"), std::fs::Permissions::from_mode(0o555)).unwrap();
    let cfg = config(&p, "");
    // As an ordinary user: root would write into the folder anyway.
    let _svc = start_service_as(&p, &["--config", cfg.to_str().unwrap()], &[], true);
    wait_for("the failing state", T, || status(&p)["pairs"][0]["state"] == "failing");
    let st = status(&p);
    assert_eq!(st["pairs"][0]["failing"].as_u64(), Some(1), "{st}");
    let token = api_token(&p);
    let (code, body) = http(&p, "GET", "/api/pairs/t/recent", None, Some(token.as_str()), None);
    assert_eq!(code, 200, "{body}");
    let recent: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
    let failed = recent
        .iter()
        .find(|f| f["path"] == "locked/new.txt" && f["state"] == "failed")
        .expect(&body);
    let detail = failed["detail"].as_str().unwrap();
    let right = p.right.display().to_string();
    assert!(
        detail.starts_with("write ") && detail.contains(&right),
        "names the right side's file: {detail}"
    );
    assert!(!detail.contains(&p.left.display().to_string()), "not the source: {detail}");
    // Writable again: the retry copies it and the badge is honest again.
    std::fs::set_permissions(p.path(Right, "locked"), std::fs::Permissions::from_mode(0o755)).unwrap();
    wait_for("the retry", T, || p.exists(Right, "locked/new.txt"));
    wait_for("the failure gone", T, || {
        let st = status(&p);
        st["pairs"][0]["state"] == "idle" && st["pairs"][0]["failing"] == 0
    });
}

#[test]
fn service_polling_fallback_converges_when_a_side_sends_no_events() {
    let p = Pair::new();
    let cfg = config(&p, "poll_interval = \"1s\"\n");
    let _svc = start(&p, &["--config", cfg.to_str().unwrap()], &[("TANDEM_TEST_DROP_EVENTS", "1")]);
    wait_for("the fallback", T, || {
        let st = status(&p);
        st["pairs"][0]["watch"].as_array().unwrap().iter().all(|w| w["mode"] == "polling")
    });
    let st = status(&p);
    assert_eq!(st["pairs"][0]["state"], "polling", "{st}");
    assert!(
        st["pairs"][0]["watch"][0]["reason"].as_str().unwrap().contains("no file event"),
        "{st}"
    );
    p.write(Left, "polled.txt", b"seen by a scan");
    p.write(Right, "deep/polled too.txt", b"also by a scan");
    wait_for("polled changes", T, || {
        p.exists(Right, "polled.txt") && p.exists(Left, "deep/polled too.txt")
    });
    p.assert_converged();
    // Polls that find nothing are not history.
    std::thread::sleep(Duration::from_millis(2500));
    let rs = runs(&p);
    assert!(
        rs.iter()
            .all(|r| r["trigger"] != "poll" || r["counts"]["copied"].as_u64().unwrap() > 0),
        "{rs:?}"
    );
}

/// A running service over 11 synced files whose folder of 10 was then deleted on the left:
/// the mass-delete guard has paused the pair.
fn paused_by_the_mass_delete_guard() -> (Pair, Svc) {
    let p = Pair::new();
    for i in 0..10 {
        p.write(Left, &format!("keep/f{i}.txt"), b"data");
    }
    p.write(Left, "other.txt", b"stays");
    let svc = start_pair(&p);
    wait_settled(&p, "initial copy");
    std::fs::remove_dir_all(p.path(Left, "keep")).unwrap();
    wait_for("the guard", T, || status(&p)["pairs"][0]["paused"] == true);
    (p, svc)
}

#[test]
fn service_mass_delete_pauses_the_pair_until_resumed_with_consent() {
    let (p, _svc) = paused_by_the_mass_delete_guard();
    let st = status(&p);
    assert!(st["pairs"][0]["reason"].as_str().unwrap().contains("max_delete_percent"), "{st}");
    assert_eq!(st["pairs"][0]["needs_consent"], true, "{st}");
    assert_eq!(p.tree(Right).len(), 11, "nothing was deleted");
    cli(&p, &["resume", "--allow-mass-delete"]);
    wait_for("the consented deletion", T, || p.tree(Right).len() == 1);
    assert_eq!(status(&p)["pairs"][0]["needs_consent"], false);
    assert_eq!(p.trash(Right).len(), 10);
}

#[test]
fn service_regression_an_edit_after_a_guard_pause_wiped_the_pause_reason() {
    // Found under wine, where a folder's deletion is reported in several batches: the worker
    // woke for the later ones and set "paused" again without the guard's reason.
    let (p, _svc) = paused_by_the_mass_delete_guard();
    p.write(Left, "other.txt", b"edited while paused");
    wait_for("the edit to be seen", T, || {
        status(&p)["pairs"][0]["last_event"]["path"] == "other.txt"
    });
    std::thread::sleep(Duration::from_millis(500));
    let st = status(&p);
    assert!(
        st["pairs"][0]["reason"].as_str().is_some_and(|r| r.contains("max_delete_percent")),
        "{st}"
    );
}

#[test]
fn service_refuses_a_pair_another_process_is_syncing() {
    let p = Pair::new();
    let _svc = start_pair(&p);
    let o = p.sync(&[]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("pair_locked"), "{}", stderr(&o));
}

#[test]
fn service_events_tell_a_subscriber_what_happens() {
    use tandem::service::events::Event;
    let p = Pair::new();
    p.write(Left, "x.txt", b"to be copied");
    let pair = tandem::api::adhoc_pair(&p.left, &p.right).unwrap();
    let svc = tandem::service::Service::start(tandem::service::ServiceConfig {
        pairs: vec![pair],
        state: p.state.clone(),
        email: None,
        desktop: Default::default(),
        config_file: None,
    })
    .unwrap();
    let mut rx = svc.subscribe();
    wait_for("the startup copy", T, || p.exists(Right, "x.txt"));
    std::thread::sleep(Duration::from_millis(200));
    std::fs::write(p.path(Right, "x.txt"), b"edited on the right").unwrap();
    let mut seen = Vec::new();
    let deadline = Instant::now() + T;
    while Instant::now() < deadline {
        match rx.try_recv() {
            Ok(e) => {
                seen.push(serde_json::to_value(&e).unwrap()["type"].as_str().unwrap().to_string());
                if matches!(&e, Event::RunFinished { trigger, copied: 1, .. } if trigger == "watch") {
                    break;
                }
            }
            Err(tokio::sync::broadcast::error::TryRecvError::Empty) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => panic!("{e}"),
        }
    }
    svc.shutdown();
    let has = |t: &str| seen.iter().any(|s| s == t);
    for t in [
        "scan_started",
        "plan_ready",
        "action_started",
        "action_finished",
        "run_finished",
        "changes",
        "state_changed",
    ] {
        assert!(has(t), "no {t} event in {seen:?}");
    }
    assert_eq!(p.read(Left, "x.txt").as_deref(), Some(&b"edited on the right"[..]));
}

/// One raw HTTP/1.1 request to the running service: (status, body).
fn http(p: &Pair, method: &str, path: &str, host: Option<&str>, token: Option<&str>, origin: Option<&str>) -> (u16, String) {
    http_body(p, method, path, host, token, origin, "")
}

pub(crate) fn http_body(
    p: &Pair,
    method: &str,
    path: &str,
    host: Option<&str>,
    token: Option<&str>,
    origin: Option<&str>,
    body: &str,
) -> (u16, String) {
    let (code, _, body) = exchange(p, |hostport| {
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
            host.unwrap_or(hostport),
            body.len()
        );
        if let Some(t) = token {
            req.push_str(&format!("Authorization: Bearer {t}\r\n"));
        }
        if let Some(o) = origin {
            req.push_str(&format!("Origin: {o}\r\n"));
        }
        req.push_str("\r\n");
        req.push_str(body);
        req
    });
    (code, body)
}

/// Send the request `build` makes (given the service's host:port) and read the whole
/// answer: (status, head, body).
fn exchange(p: &Pair, build: impl FnOnce(&str) -> String) -> (u16, String, String) {
    let (head, body) = exchange_bytes(p, build);
    (
        head.split_whitespace().nth(1).unwrap().parse().unwrap(),
        head,
        String::from_utf8(body).unwrap(),
    )
}

/// [`exchange`] for an answer that may be binary: (head, body bytes).
fn exchange_bytes(p: &Pair, build: impl FnOnce(&str) -> String) -> (String, Vec<u8>) {
    use std::io::{Read, Write};
    let d: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(discovery(&p.state)).unwrap()).unwrap();
    let hostport = d["url"].as_str().unwrap().trim_start_matches("http://").to_string();
    let mut s = std::net::TcpStream::connect(&hostport).unwrap();
    s.write_all(build(&hostport).as_bytes()).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let at = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(out.len());
    let body = out.get(at + 4..).unwrap_or_default().to_vec();
    (String::from_utf8_lossy(&out[..at]).into_owned(), body)
}

#[test]
fn api_refuses_missing_or_wrong_token_foreign_host_and_foreign_origin() {
    let p = Pair::new();
    let _svc = start_pair(&p);
    let token = api_token(&p);
    let token = token.as_str();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(format!("{}.api-token", p.state.display()))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the token file is owner-only");
    }
    // /health needs no token and says nothing but ok and the version.
    let (code, body) = http(&p, "GET", "/health", None, None, None);
    assert_eq!(code, 200);
    assert!(body.contains("\"ok\":true"), "{body}");
    for (method, path) in [
        ("GET", "/api/status"),
        ("POST", "/api/pause"),
        ("POST", "/api/resume"),
        ("POST", "/api/sync"),
        ("GET", "/api/schedules"),
        ("GET", "/api/history"),
        ("GET", "/api/history/1"),
        ("POST", "/api/pairs/x/pause"),
        ("POST", "/api/pairs/x/resume"),
        ("POST", "/api/pairs/x/sync"),
        ("POST", "/api/pairs/x/schedules/n/pause"),
        ("POST", "/api/pairs/x/schedules/n/resume"),
        ("GET", "/api/events"),
        ("GET", "/api/conflicts"),
        ("GET", "/api/pairs/x/backlog"),
        ("GET", "/api/pairs/x/conflicts/detail?path=a"),
        ("POST", "/api/pairs/x/conflicts/resolve"),
        ("POST", "/api/pairs/x/conflicts/resolve-batch"),
        ("GET", "/api/pairs/x/file?side=left&path=a"),
        ("GET", "/api/settings"),
        ("PUT", "/api/settings"),
        ("PATCH", "/api/settings"),
        ("POST", "/api/settings/validate"),
        ("POST", "/api/test-mail"),
        ("POST", "/api/test-connection"),
        ("POST", "/api/login-link"),
        ("POST", "/api/window"),
        ("GET", "/api/no-such-route"),
    ] {
        let (code, body) = http(&p, method, path, None, None, None);
        assert_eq!(code, 401, "{method} {path} without a token: {body}");
        assert!(body.contains("\"code\":\"unauthorized\""), "{body}");
        assert_eq!(http(&p, method, path, None, Some("0123456789abcdef0123456789abcdef"), None).0, 401);
        let (code, body) = http(&p, method, path, Some("evil.example:80"), Some(token), None);
        assert_eq!(code, 403, "{method} {path} with a foreign Host: {body}");
        assert!(body.contains("bad_host"), "{body}");
    }
    let (code, body) = http(&p, "POST", "/api/pause", None, Some(token), Some("http://evil.example"));
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("bad_origin"), "{body}");
    assert_eq!(status(&p)["paused_all"], false, "the refused pause did nothing");
    // With the token: status, history as CSV, an unknown pair is a JSON 404 with a code.
    assert_eq!(http(&p, "GET", "/api/status", None, Some(token), None).0, 200);
    let (code, body) = http(&p, "GET", "/api/history?format=csv", None, Some(token), None);
    assert_eq!(code, 200);
    assert!(body.contains("run,pair,trigger,started"), "{body}");
    let (code, body) = http(&p, "POST", "/api/pairs/nope/pause", None, Some(token), None);
    assert_eq!(code, 404);
    assert!(body.contains("\"code\":\"not_found\""), "{body}");
}

#[test]
fn service_conflicts_are_listed_detailed_and_resolved_through_the_api_and_the_cli() {
    let p = Pair::new();
    let cfg = config(&p, "[conflicts]\nr1 = \"manual\"\n");
    let _svc = start(&p, &["--config", cfg.to_str().unwrap()], &[]);
    let token = api_token(&p);
    let t = Some(token.as_str());
    for f in ["a.txt", "b.txt", "c.txt", "d.txt"] {
        std::fs::write(p.path(Left, f), b"base").unwrap();
    }
    wait_settled(&p, "the base");
    for f in ["a.txt", "b.txt", "c.txt", "d.txt"] {
        p.write_at(Left, f, format!("left version of {f}").as_bytes(), 1_700_000_000);
        p.write_at(Right, f, format!("right version of {f}, newer").as_bytes(), 1_700_000_100);
    }
    let list = || -> Vec<serde_json::Value> { serde_json::from_str(&http(&p, "GET", "/api/conflicts?pair=t", None, t, None).1).unwrap() };
    wait_for("four conflicts", T, || list().len() == 4);
    assert_eq!(list()[0]["conflict"]["rule"], "R1");
    // Detail: both sides as they are now.
    let (code, body) = http(&p, "GET", "/api/pairs/t/conflicts/detail?path=a.txt", None, t, None);
    assert_eq!(code, 200, "{body}");
    let d: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(d["newer"], "right");
    assert_eq!(d["left"]["size"], "left version of a.txt".len());
    assert_eq!(d["left"]["text"], true);
    assert_ne!(d["left"]["hash"], d["right"]["hash"]);
    assert_eq!(d["record"]["rule"], "R1");
    let (code, body) = http(&p, "GET", "/api/pairs/t/file?side=right&path=a.txt", None, t, None);
    assert_eq!((code, body.as_str()), (200, "right version of a.txt, newer"));
    // Paths that would leave the root are refused; on Unix also one through a symbolic link
    // (Windows lets only privileged users or developer mode make one).
    #[cfg(unix)]
    std::os::unix::fs::symlink("/etc", p.path(Left, "etc-link")).unwrap();
    #[cfg(unix)]
    let bad_paths = ["../state.db", "/etc/passwd", "etc-link/hostname", "a.txt/../../x"];
    #[cfg(windows)]
    let bad_paths = ["../state.db", "/etc/passwd", "a.txt/../../x"];
    for bad in bad_paths {
        let (code, body) = http(&p, "GET", &format!("/api/pairs/t/file?side=left&path={bad}"), None, t, None);
        assert_eq!(code, 400, "{bad}: {body}");
        assert!(body.contains("bad_path"), "{body}");
        let (code, body) = http_body(
            &p,
            "POST",
            "/api/pairs/t/conflicts/resolve",
            None,
            t,
            None,
            &format!("{{\"path\":\"{bad}\",\"keep\":\"left\"}}"),
        );
        if !bad.starts_with("etc-link") {
            assert_eq!(code, 400, "{bad}: {body}");
        }
    }
    // Regression (found in review of the side seam): the conflict detail described a file
    // behind a symbolic link (size, time) although it lies outside the root (Unix only, as
    // the link above).
    #[cfg(unix)]
    {
        let (code, body) = http(&p, "GET", "/api/pairs/t/conflicts/detail?path=etc-link/hostname", None, t, None);
        assert_eq!(code, 200, "{body}");
        let d: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(d["left"]["exists"], false, "{body}");
        assert_eq!(d["left"].get("size"), None, "{body}");
    }
    // Keep left through the API: the right side gets the left version, the old one is trashed.
    let (code, body) = http_body(
        &p,
        "POST",
        "/api/pairs/t/conflicts/resolve",
        None,
        t,
        None,
        r#"{"path":"a.txt","keep":"left"}"#,
    );
    assert_eq!(code, 200, "{body}");
    assert_eq!(p.read(Right, "a.txt").unwrap(), b"left version of a.txt");
    assert_eq!(
        p.trash(Right).get("a.txt").map(Vec::as_slice),
        Some(&b"right version of a.txt, newer"[..])
    );
    // Keep right from the CLI while the service runs (it goes through the service).
    let o = p.tandem(&[
        "--state",
        p.state.to_str().unwrap(),
        "conflicts",
        "resolve",
        "b.txt",
        "--keep",
        "right",
        "--pair",
        "t",
    ]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("through the running service"), "{}", stdout(&o));
    assert_eq!(p.read(Left, "b.txt").unwrap(), b"right version of b.txt, newer");
    // One choice for many: keep both.
    let (code, body) = http_body(
        &p,
        "POST",
        "/api/pairs/t/conflicts/resolve-batch",
        None,
        t,
        None,
        r#"{"items":[{"path":"c.txt","keep":"both"},{"path":"d.txt","keep":"both"}]}"#,
    );
    assert_eq!(code, 200, "{body}");
    let r: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
    assert!(r.iter().all(|x| x["ok"] == true), "{body}");
    wait_for("no conflict left", T, || list().is_empty());
    for f in ["c", "d"] {
        let names: Vec<String> = p.tree(Left).into_keys().filter(|k| k.starts_with(f)).collect();
        assert_eq!(names.len(), 2, "both versions of {f}.txt kept: {names:?}");
    }
    wait_settled(&p, "both sides equal");
    // History: paged and filtered.
    let page = |q: &str| -> Vec<serde_json::Value> {
        serde_json::from_str(&http(&p, "GET", &format!("/api/history?{q}"), None, t, None).1).unwrap()
    };
    let resolves = page("trigger=resolve&limit=100");
    // Four decisions, and the refused-as-unsyncable path under the symbolic link (a run that
    // found nothing to do; no link on Windows).
    assert_eq!(resolves.len(), if cfg!(unix) { 5 } else { 4 }, "{resolves:?}");
    assert!(resolves.iter().all(|r| r["trigger"] == "resolve" && r["pair"] == "t"));
    let (a, b) = (page("trigger=resolve&limit=2"), page("trigger=resolve&limit=2&offset=2"));
    assert_eq!((a.len(), b.len()), (2, 2));
    assert!(a[1]["id"].as_i64() > b[0]["id"].as_i64(), "newest first, pages follow each other");
    assert!(page("pair=nope").is_empty());
    assert!(page("status=ok&limit=1000").iter().all(|r| r["status"] == "ok"));
}

#[test]
fn api_event_stream_reports_a_sync_and_does_not_hold_up_a_stop() {
    use std::io::{BufRead, BufReader, Write};
    let p = Pair::new();
    let mut svc = start_pair(&p);
    wait_watching(&p);
    let token = api_token(&p);
    let d: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(discovery(&p.state)).unwrap()).unwrap();
    let hostport = d["url"].as_str().unwrap().trim_start_matches("http://").to_string();
    let mut s = std::net::TcpStream::connect(&hostport).unwrap();
    s.set_read_timeout(Some(T)).unwrap();
    write!(
        s,
        "GET /api/events HTTP/1.1\r\nHost: {hostport}\r\nAuthorization: Bearer {token}\r\n\r\n"
    )
    .unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    assert!(line.starts_with("HTTP/1.1 200"), "{line}");
    std::fs::write(p.path(Left, "streamed.txt"), b"hello").unwrap();
    let mut seen = Vec::new();
    loop {
        line.clear();
        if r.read_line(&mut line).unwrap() == 0 {
            panic!("stream ended; saw {seen:?}");
        }
        if let Some(kind) = line.trim().strip_prefix("event: ") {
            seen.push(kind.to_string());
        }
        if let Some(data) = line.trim().strip_prefix("data: ") {
            let v: serde_json::Value = serde_json::from_str(data).unwrap();
            if v["type"] == "run_finished" && v["copied"] == 1 {
                break;
            }
        }
    }
    for k in [
        "changes",
        "scan_started",
        "plan_ready",
        "action_started",
        "action_finished",
        "run_finished",
    ] {
        assert!(seen.iter().any(|s| s == k), "no {k} in {seen:?}");
    }
    // An open event stream does not keep the service from stopping.
    assert_eq!(svc.stop(), Some(0));
}

/// A raw request (without the Host line, added here); returns (status, head, body).
fn raw(p: &Pair, request_line_and_headers: &str) -> (u16, String, String) {
    let (first, rest) = request_line_and_headers
        .split_once("\r\n")
        .unwrap_or((request_line_and_headers, ""));
    exchange(p, |hostport| {
        format!("{first}\r\nHost: {hostport}\r\nConnection: close\r\n{rest}\r\n")
    })
}

/// [`raw`] for an answer that may be binary: (head, body bytes).
fn raw_bytes(p: &Pair, request_line_and_headers: &str) -> (String, Vec<u8>) {
    let (first, rest) = request_line_and_headers
        .split_once("\r\n")
        .unwrap_or((request_line_and_headers, ""));
    exchange_bytes(p, |hostport| {
        format!("{first}\r\nHost: {hostport}\r\nConnection: close\r\n{rest}\r\n\r\n")
    })
}

#[test]
fn web_ui_page_is_served_without_a_token_under_a_strict_content_security_policy() {
    let p = Pair::new();
    let _svc = start_pair(&p);
    let (code, head, body) = raw(&p, "GET / HTTP/1.1");
    assert_eq!(
        code, 200,
        "the web UI is built into the binary (npm run build before cargo build): {body}"
    );
    assert!(body.contains("<title>Tandem</title>"), "{body}");
    let head = head.to_ascii_lowercase();
    assert!(head.contains("content-security-policy: default-src 'self'"), "{head}");
    assert!(
        head.contains("x-frame-options: deny") && head.contains("x-content-type-options: nosniff"),
        "{head}"
    );
    // The page holds no data: everything comes from /api with the token or the cookie.
    assert!(!body.contains(&api_token(&p)));
    // Its script and style, and any page path (the app routes itself).
    let script = body.split("src=\"").nth(1).unwrap().split('"').next().unwrap().to_string();
    let (code, head, _) = raw(&p, &format!("GET {script} HTTP/1.1"));
    assert_eq!(code, 200);
    assert!(head.to_ascii_lowercase().contains("content-type: text/javascript"), "{head}");
    assert_eq!(raw(&p, "GET /some/page HTTP/1.1").0, 200);
    // Issue 19: a browser that accepts gzip gets the compressed copy, which unpacks to the
    // same script.
    let plain = raw(&p, &format!("GET {script} HTTP/1.1")).2;
    let (head, gz) = raw_bytes(&p, &format!("GET {script} HTTP/1.1\r\nAccept-Encoding: gzip, deflate, br"));
    let head = head.to_ascii_lowercase();
    assert!(
        head.contains("content-encoding: gzip") && head.contains("vary: accept-encoding"),
        "{head}"
    );
    assert!(
        gz.starts_with(&[0x1f, 0x8b]) && gz.len() * 2 < plain.len(),
        "{} gzip bytes for {}",
        gz.len(),
        plain.len()
    );
    // Unix only: the unpacking is Debian's gzip, a program a Windows test binary under wine has not.
    #[cfg(unix)]
    {
        let mut unzip = std::process::Command::new("gzip")
            .arg("-dc")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(&mut unzip.stdin.take().unwrap(), &gz).unwrap();
        assert_eq!(unzip.wait_with_output().unwrap().stdout, plain.as_bytes());
    }
    // A foreign Host is refused for the page as for the API (DNS rebinding).
    let (code, body) = http(&p, "GET", "/", Some("evil.example:80"), None, None);
    assert_eq!(code, 403, "{body}");
    // An unknown API route is a JSON 404, not the page.
    let (code, body) = http(&p, "GET", "/api/no-such-route", None, Some(&api_token(&p)), None);
    assert_eq!(code, 404);
    assert!(body.contains("\"code\":\"not_found\""), "{body}");
}

#[test]
fn api_one_time_login_link_sets_an_http_only_cookie_once() {
    let p = Pair::new();
    let _svc = start_pair(&p);
    let o = p.tandem(&["--state", p.state.to_str().unwrap(), "login-link"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let link = stdout(&o).trim().to_string();
    let path = &link[link.find("/login").unwrap()..];
    let (code, head, _) = raw(&p, &format!("GET {path} HTTP/1.1"));
    assert_eq!(code, 303, "{head}");
    let cookie_line = head
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .unwrap()
        .to_string();
    assert!(
        cookie_line.contains("HttpOnly") && cookie_line.contains("SameSite=Strict"),
        "{cookie_line}"
    );
    let cookie = cookie_line.split_once(':').unwrap().1.split(';').next().unwrap().trim().to_string();
    // The cookie opens the API like the token does.
    let (code, _, body) = raw(&p, &format!("GET /api/status HTTP/1.1\r\nCookie: theme=dark; {cookie}\r\n"));
    assert_eq!(code, 200, "{body}");
    let (code, _, _) = raw(&p, "GET /api/status HTTP/1.1\r\nCookie: tandem_token=wrong\r\n");
    assert_eq!(code, 401);
    // A link works once; used again, it leads to the sign-in page that says so, with no cookie.
    let (code, head, _) = raw(&p, &format!("GET {path} HTTP/1.1"));
    assert_eq!(code, 303, "{head}");
    assert!(head.to_ascii_lowercase().contains("location: /?login=expired"), "{head}");
    assert!(!head.to_ascii_lowercase().contains("set-cookie"), "{head}");
    // `page` opens a page of the UI (the desktop app's first run opens Settings); anything
    // but a plain word goes to the start page, never elsewhere.
    for (page, location) in [("settings", "/#/settings"), ("http://evil.example/", "/"), ("..%2Fx", "/")] {
        let o = p.tandem(&["--state", p.state.to_str().unwrap(), "login-link"]);
        let link = stdout(&o).trim().to_string();
        let path = &link[link.find("/login").unwrap()..];
        let (code, head, _) = raw(&p, &format!("GET {path}&page={page} HTTP/1.1"));
        assert_eq!(code, 303, "{head}");
        assert!(
            head.to_ascii_lowercase().contains(&format!("location: {location}\r\n")),
            "{page}: {head}"
        );
    }
}

#[test]
fn api_window_request_to_a_headless_service_says_it_has_no_window() {
    let p = Pair::new();
    let _svc = start_pair(&p);
    let token = api_token(&p);
    let (code, body) = http(&p, "POST", "/api/window", None, Some(&token), None);
    assert_eq!(code, 409, "{body}");
    assert!(body.contains("\"code\":\"no_window\""), "{body}");
}

#[test]
fn api_settings_round_trip_keeps_comments_and_applies_live() {
    let p = Pair::new();
    let cfg = config(&p, "# keep this comment\nmax_delete_percent = 50 # and this one\n");
    let _svc = start(&p, &["--config", cfg.to_str().unwrap()], &[]);
    let pid = status(&p)["pid"].clone();
    let token = api_token(&p);
    let t = Some(token.as_str());
    let (code, body) = http(&p, "GET", "/api/settings", None, t, None);
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(v["text"].as_str().unwrap().contains("# keep this comment"));
    assert_eq!(v["raw"]["pair"][0]["name"], "t", "the values as written, for the forms");
    assert_eq!(v["config"]["pairs"][0]["name"], "t");
    // Validation names the key; nothing is written.
    let (code, body) = http_body(
        &p,
        "POST",
        "/api/settings/validate",
        None,
        t,
        None,
        r#"{"edits":[{"key":"max_delete_percent","value":500}]}"#,
    );
    assert_eq!(code, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (&v["ok"], &v["error"]["code"], &v["error"]["key"]),
        (&false.into(), &"config_invalid".into(), &"max_delete_percent".into()),
        "{body}"
    );
    let (code, body) = http_body(
        &p,
        "PATCH",
        "/api/settings",
        None,
        t,
        None,
        r#"{"edits":[{"key":"max_delete_percent","value":500}]}"#,
    );
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("config_invalid"), "{body}");
    // Edits are written with the comments kept and applied without a restart.
    let (code, body) = http_body(
        &p,
        "PATCH",
        "/api/settings",
        None,
        t,
        None,
        r#"{"edits":[{"key":"pair.t.watch","value":"poll"},{"key":"pair.t.poll_interval","value":"1s"},{"key":"max_delete_percent","value":40}]}"#,
    );
    assert_eq!(code, 200, "{body}");
    let text = std::fs::read_to_string(&cfg).unwrap();
    assert!(text.contains("# keep this comment") && text.contains("# and this one"), "{text}");
    assert!(
        text.contains("max_delete_percent = 40") && text.contains("watch = \"poll\""),
        "{text}"
    );
    let st = status(&p);
    assert_eq!(st["pid"], pid, "same process");
    assert_eq!(st["pairs"][0]["watch"][0]["mode"], "polling", "{st}");
    p.write(Left, "after the change.txt", b"still syncing");
    wait_for("a sync with the new settings", T, || p.exists(Right, "after the change.txt"));
    // A whole new text: a second pair appears.
    let other = p.dir.path().join("other");
    std::fs::create_dir_all(other.join("l")).unwrap();
    std::fs::create_dir_all(other.join("r")).unwrap();
    let text2 = format!(
        "{text}\n[[pair]]\nname = \"second\"\nleft = {:?}\nright = {:?}\n",
        other.join("l").to_str().unwrap(),
        other.join("r").to_str().unwrap()
    );
    let body = serde_json::json!({ "text": text2 }).to_string();
    let (code, answer) = http_body(&p, "PUT", "/api/settings", None, t, None, &body);
    assert_eq!(code, 200, "{answer}");
    assert_eq!(status(&p)["pairs"].as_array().unwrap().len(), 2);
    std::fs::write(other.join("l/x.txt"), b"second pair").unwrap();
    wait_for("the second pair to sync", T, || other.join("r/x.txt").exists());
}

#[test]
fn service_regression_a_vanished_root_puts_the_pair_in_error_without_spinning_and_it_recovers() {
    if crate::common::skip_under_wine(
        "wine deletes a folder only once every handle to it is closed, and the service's watcher holds one (real Windows marks it delete-pending and refuses to open it)",
    ) {
        return;
    }
    let p = Pair::new();
    let cfg = config(&p, "poll_interval = \"8s\"\n"); // the retry interval after an error
    #[cfg_attr(windows, allow(unused_variables))]
    let svc = start(&p, &["--config", cfg.to_str().unwrap()], &[]);
    wait_watching(&p);
    // Both drives go away (each root's watcher reports it: two requests for a full scan).
    std::fs::remove_dir_all(&p.right).unwrap();
    std::fs::remove_dir_all(&p.left).unwrap();
    wait_for("the error state", T, || status(&p)["pairs"][0]["state"] == "error");
    let st = status(&p);
    assert!(st["pairs"][0]["reason"].as_str().unwrap().contains("does not exist"), "{st}");
    // The bug: overdue timers woke the worker again and again while it waited to retry,
    // burning a core. Waiting costs (almost) no CPU. Unix only: the CPU time is read from
    // /proc (Windows has no /proc).
    #[cfg(unix)]
    {
        let cpu = || -> f64 {
            let stat = std::fs::read_to_string(format!("/proc/{}/stat", svc.pid())).unwrap();
            let f: Vec<&str> = stat.rsplit(')').next().unwrap().split_whitespace().collect();
            (f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()) as f64 / 100.0
        };
        let before = cpu();
        std::thread::sleep(Duration::from_secs(3));
        let used = cpu() - before;
        assert!(used < 1.0, "{used} s of CPU in 3 s while waiting to retry");
    }
    // The roots come back: the pair recovers by itself.
    std::fs::create_dir_all(&p.right).unwrap();
    std::fs::create_dir_all(&p.left).unwrap();
    p.write(Left, "back.txt", b"after the drive came back");
    wait_for("the recovery", T, || p.exists(Right, "back.txt"));
    wait_for("the idle state", T, || status(&p)["pairs"][0]["state"] != "error");
}

#[test]
fn host_with_a_window_tells_its_shell_when_a_second_launch_asks_for_it() {
    use tandem::service::events::Event;
    let p = Pair::new();
    let pair = tandem::api::adhoc_pair(&p.left, &p.right).unwrap();
    let cfg = tandem::service::ServiceConfig {
        pairs: vec![pair],
        state: p.state.clone(),
        email: None,
        config_file: None,
        desktop: Default::default(),
    };
    let opts = tandem::http::HostOptions {
        listen: "127.0.0.1:0".parse().unwrap(),
        window: true,
    };
    let host = tandem::http::Host::start(cfg, &opts).unwrap();
    let mut rx = host.service().subscribe();
    // What a second launch of the desktop app does: find the first through the discovery
    // file and ask it for its window.
    let (code, body) = tandem::http::call(&p.state, "POST", "/api/window", Some(r#"{"page":"conflicts"}"#))
        .unwrap()
        .expect("the host is found through its discovery file");
    assert_eq!(code, 204, "{body}");
    let deadline = std::time::Instant::now() + T;
    let page = loop {
        match rx.try_recv() {
            Ok(Event::ShowWindow { page }) => break page,
            Ok(_) | Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_)) => {}
            Err(_) => {
                assert!(std::time::Instant::now() < deadline, "no ShowWindow event");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    };
    assert_eq!(page.as_deref(), Some("conflicts"));
    let link = host.login_link_to("settings").unwrap();
    assert!(link.starts_with(host.url()) && link.ends_with("&page=settings"), "{link}");
    host.stop().unwrap();
    assert!(
        tandem::http::call(&p.state, "POST", "/api/window", None).unwrap().is_none(),
        "stopped: the discovery file is gone"
    );
}
