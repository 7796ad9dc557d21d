//! Integration tests of the real `tandem` binary on real temp folders: every rule of SPEC §3
//! (R1-R17 with their options), the safety guards of §5, bad inputs, and the CLI contract
//! (dry run, JSON lines, history, temporary files). Times are explicit (`write_at`) so that
//! "newer" and clash names are deterministic.

use crate::common::{stderr, stdout, Pair, TRASH};
use serde_json::Value;
use std::collections::BTreeMap;
#[cfg(unix)]
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tandem::model::Side::{self, Left, Right};

/// Base time of synced files (2020-09-13).
const T0: i64 = 1_600_000_000;
/// An edit after the sync.
const T1: i64 = 1_650_000_000;
/// A later edit.
const T2: i64 = 1_650_000_600;

// ------------------------------------------------------------------ helpers

fn code(o: &Output) -> i32 {
    o.status.code().expect("tandem was killed by a signal")
}

fn show(o: &Output) -> String {
    format!("exit {:?}\n--- stdout\n{}--- stderr\n{}", o.status.code(), stdout(o), stderr(o))
}

fn assert_exit(o: &Output, expected: i32) {
    assert_eq!(code(o), expected, "unexpected exit code\n{}", show(o));
}

/// Every stdout line parsed as JSON.
fn json_lines(o: &Output) -> Vec<Value> {
    stdout(o)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l:?}\n{}", show(o))))
        .collect()
}

/// The `summary` object that must close `--json` output.
fn summary(o: &Output) -> Value {
    let lines = json_lines(o);
    let last = lines.last().unwrap_or_else(|| panic!("no JSON output\n{}", show(o)));
    last.get("summary")
        .cloned()
        .unwrap_or_else(|| panic!("last line is not a summary: {last}"))
}

fn n(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or_else(|| panic!("{key} missing or not a number in {v}"))
}

/// `sync --json`, insisting on `expected_exit`; returns the summary and the action lines.
fn sync_json(p: &Pair, extra: &[&str], expected_exit: i32) -> (Value, Vec<Value>) {
    let mut args = vec!["--json"];
    args.extend_from_slice(extra);
    let o = p.sync(&args);
    assert_exit(&o, expected_exit);
    let mut lines = json_lines(&o);
    let s = summary(&o);
    lines.pop();
    (s, lines)
}

/// Actions of a JSON run with this op and rule.
fn ops<'a>(lines: &'a [Value], op: &str) -> Vec<&'a Value> {
    lines.iter().filter(|l| l["op"] == op).collect()
}

/// Sync twice: the first must succeed, the second must find nothing to do.
fn sync_settled(p: &Pair) {
    p.sync_ok();
    let (s, _) = sync_json(p, &[], 0);
    assert_eq!(n(&s, "actions"), 0, "a second sync still had work: {s}");
    p.assert_converged();
}

fn canon(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap()
}

/// A config file with one pair named "p" over the Pair's folders; `pair_body` goes inside
/// the `[[pair]]` table (plain keys first, then sub-tables like `[pair.conflicts]`).
fn config(p: &Pair, pair_body: &str) -> PathBuf {
    let text = format!(
        "state = '{}'\n\n[[pair]]\nname = \"p\"\nleft = '{}'\nright = '{}'\n{pair_body}\n",
        p.state.display(),
        canon(&p.left).display(),
        canon(&p.right).display()
    );
    let f = p.dir.path().join("tandem.toml");
    std::fs::write(&f, text).unwrap();
    f
}

fn sync_cfg(p: &Pair, cfg: &Path, extra: &[&str]) -> Output {
    let (c, s) = (cfg.to_str().unwrap(), p.state.to_str().unwrap());
    let mut args = vec!["sync", "--config", c, "--state", s];
    args.extend_from_slice(extra);
    p.tandem(&args)
}

fn sync_cfg_json(p: &Pair, cfg: &Path, expected_exit: i32) -> (Value, Vec<Value>) {
    let o = sync_cfg(p, cfg, &["--json"]);
    assert_exit(&o, expected_exit);
    let mut lines = json_lines(&o);
    let s = summary(&o);
    lines.pop();
    (s, lines)
}

fn state_arg(p: &Pair) -> &str {
    p.state.to_str().unwrap()
}

/// Open conflicts as `(path, rule)`.
fn open_conflicts(p: &Pair) -> Vec<(String, String)> {
    let o = p.tandem(&["conflicts", "list", "--json", "--state", state_arg(p)]);
    assert_exit(&o, 0);
    json_lines(&o)
        .iter()
        .map(|v| {
            (
                v["conflict"]["path"].as_str().unwrap().to_string(),
                v["conflict"]["rule"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn resolve(p: &Pair, cfg: &Path, path: &str, keep: &str) -> Output {
    p.tandem(&[
        "conflicts",
        "resolve",
        path,
        "--keep",
        keep,
        "--state",
        state_arg(p),
        "--config",
        cfg.to_str().unwrap(),
    ])
}

/// The file's identity (its inode; on Windows its file index).
fn ino(p: &Pair, side: Side, rel: &str) -> u64 {
    crate::common::file_id(&p.path(side, rel)).unwrap_or_else(|e| panic!("{side} {rel}: {e}"))
}

fn mtime_s(p: &Pair, side: Side, rel: &str) -> i64 {
    let m = std::fs::metadata(p.path(side, rel)).unwrap().modified().unwrap();
    m.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

fn set_mtime(p: &Pair, side: Side, rel: &str, secs: i64) {
    let f = std::fs::File::options().write(true).open(p.path(side, rel)).unwrap();
    f.set_modified(crate::common::at(secs)).unwrap();
}

fn remove(p: &Pair, side: Side, rel: &str) {
    let path = p.path(side, rel);
    if path.is_dir() {
        std::fs::remove_dir_all(path).unwrap();
    } else {
        std::fs::remove_file(path).unwrap();
    }
}

fn rename(p: &Pair, side: Side, from: &str, to: &str) {
    let t = p.path(side, to);
    std::fs::create_dir_all(t.parent().unwrap()).unwrap();
    std::fs::rename(p.path(side, from), t).unwrap();
}

/// The clash name SPEC §3 asks for: `stem_clash_YYYYMMDDHHMM[-n].ext`, local time of `mtime`.
fn clash_name(rel: &str, mtime: i64, n: u32) -> String {
    use chrono::TimeZone;
    let stamp = chrono::Local
        .timestamp_opt(mtime, 0)
        .single()
        .unwrap()
        .format("%Y%m%d%H%M")
        .to_string();
    let (dir, name) = match rel.rfind('/') {
        Some(i) => (&rel[..=i], &rel[i + 1..]),
        None => ("", rel),
    };
    let (stem, ext) = match name.rfind('.') {
        Some(i) if i > 0 => (&name[..i], &name[i..]),
        _ => (name, ""),
    };
    let suffix = if n > 1 { format!("-{n}") } else { String::new() };
    format!("{dir}{stem}_clash_{stamp}{suffix}{ext}")
}

/// Paths of a tree whose name is a clash copy.
fn clash_files(tree: &BTreeMap<String, Vec<u8>>) -> Vec<String> {
    tree.keys().filter(|k| k.contains("_clash_")).cloned().collect()
}

/// The dated folders of a side's trash; each must be named `YYYY-MM-DD_HHMMSS`.
fn trash_stamps(p: &Pair, side: Side) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(p.root(side).join(TRASH)) else {
        return Vec::new();
    };
    // Beside the dated folders: the root's identity marker.
    let mut out: Vec<String> = rd
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != ".tandem-root")
        .collect();
    for s in &out {
        let b = s.as_bytes();
        let ok = b.len() == 17
            && b.iter().enumerate().all(|(i, c)| match i {
                4 | 7 => *c == b'-',
                10 => *c == b'_',
                _ => c.is_ascii_digit(),
            });
        assert!(ok, "trash folder {s:?} is not named YYYY-MM-DD_HHMMSS");
    }
    out.sort();
    out
}

/// Every temporary copy file (`.tandem-*.tmp`) below a root, trash included.
fn temp_files(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                stack.push(e.path());
            } else if name.starts_with(".tandem-") && name.ends_with(".tmp") {
                out.push(e.path());
            }
        }
    }
    out
}

/// A synced pair holding `files` (path, content) with mtime T0 plus `fillers` extra files,
/// so that deleting a few stays under the mass-delete guard.
fn synced_pair(files: &[(&str, &[u8])], fillers: usize) -> Pair {
    let p = Pair::new();
    for (rel, content) in files {
        p.write_at(Left, rel, content, T0);
    }
    for i in 0..fillers {
        p.write_at(Left, &format!("filler/f{i}.txt"), format!("filler {i}").as_bytes(), T0);
    }
    sync_settled(&p);
    p
}

/// The whole visible state of a pair: both trees, both trashes, mtimes.
fn snapshot(p: &Pair) -> Vec<(String, Vec<u8>, i64)> {
    let mut out = Vec::new();
    for side in [Left, Right] {
        for (k, v) in crate::common::files_below(p.root(side), false) {
            let m = mtime_s(p, side, &k);
            out.push((format!("{side}/{k}"), v, m));
        }
        for d in p.dirs(side) {
            out.push((format!("{side}/{d}/"), Vec::new(), 0));
        }
    }
    out
}

// ------------------------------------------------------------------ R1

#[test]
fn r1_clash_newer_keeps_name_older_kept_as_clash_copy_on_both_sides() {
    let p = synced_pair(&[("docs/a.txt", b"base")], 0);
    p.write_at(Left, "docs/a.txt", b"left edit, older", T1);
    p.write_at(Right, "docs/a.txt", b"right edit, newer", T2);
    let (s, _) = sync_json(&p, &[], 0);
    let clash = clash_name("docs/a.txt", T1, 1);
    for side in [Left, Right] {
        assert_eq!(p.read(side, "docs/a.txt").unwrap(), b"right edit, newer", "{side}");
        assert_eq!(
            p.read(side, &clash).as_deref(),
            Some(&b"left edit, older"[..]),
            "{side}: no {clash}"
        );
    }
    assert_eq!(mtime_s(&p, Left, "docs/a.txt"), T2);
    assert_eq!(mtime_s(&p, Right, &clash), T1);
    assert_eq!(clash_files(&p.tree(Left)), vec![clash]);
    assert_eq!(s["status"], "ok");
    assert!(
        open_conflicts(&p).is_empty(),
        "a clash handled by the rules is not an open conflict"
    );
    sync_settled(&p);
}

#[test]
fn r1_clash_name_already_taken_gets_dash_2() {
    let taken = clash_name("a.txt", T1, 1);
    let p = synced_pair(&[("a.txt", b"base"), (&taken, b"an older clash copy")], 0);
    p.write_at(Left, "a.txt", b"left, older", T1);
    p.write_at(Right, "a.txt", b"right, newer!", T2);
    p.sync_ok();
    let second = clash_name("a.txt", T1, 2);
    for side in [Left, Right] {
        assert_eq!(
            p.read(side, &taken).unwrap(),
            b"an older clash copy",
            "{side}: the existing clash copy was touched"
        );
        assert_eq!(p.read(side, &second).as_deref(), Some(&b"left, older"[..]), "{side}: no {second}");
        assert_eq!(p.read(side, "a.txt").unwrap(), b"right, newer!");
    }
    sync_settled(&p);
}

#[test]
fn r1_newer_wins_overwrites_older_and_keeps_it_in_trash() {
    let p = synced_pair(&[("a.txt", b"base")], 0);
    let cfg = config(&p, "[pair.conflicts]\nr1 = \"newer-wins\"");
    p.write_at(Left, "a.txt", b"left, newer", T2);
    p.write_at(Right, "a.txt", b"right, older", T1);
    let (s, _) = sync_cfg_json(&p, &cfg, 0);
    assert_eq!(n(&s, "copied"), 1, "{s}");
    for side in [Left, Right] {
        assert_eq!(p.read(side, "a.txt").unwrap(), b"left, newer");
        assert!(clash_files(&p.tree(side)).is_empty(), "newer-wins makes no clash copy");
    }
    assert_eq!(
        p.trash(Right).get("a.txt").map(Vec::as_slice),
        Some(&b"right, older"[..]),
        "older version not in the right trash"
    );
    assert_eq!(trash_stamps(&p, Right).len(), 1);
    let o = sync_cfg(&p, &cfg, &[]);
    assert_exit(&o, 0);
    assert!(stdout(&o).contains("in sync"), "{}", show(&o));
}

/// A pair in conflict under `r1 = "manual"`: left older, right newer.
fn manual_r1_conflict() -> (Pair, PathBuf) {
    let p = synced_pair(&[("a.txt", b"base")], 0);
    let cfg = config(&p, "[pair.conflicts]\nr1 = \"manual\"");
    p.write_at(Left, "a.txt", b"left version", T1);
    p.write_at(Right, "a.txt", b"right version, newer", T2);
    let (s, _) = sync_cfg_json(&p, &cfg, 0);
    assert_eq!(n(&s, "conflicts"), 1, "{s}");
    assert_eq!(n(&s, "actions"), 0, "manual must touch nothing: {s}");
    (p, cfg)
}

#[test]
fn r1_manual_touches_nothing_and_raises_a_conflict() {
    let (p, cfg) = manual_r1_conflict();
    assert_eq!(p.read(Left, "a.txt").unwrap(), b"left version");
    assert_eq!(p.read(Right, "a.txt").unwrap(), b"right version, newer");
    assert_eq!((mtime_s(&p, Left, "a.txt"), mtime_s(&p, Right, "a.txt")), (T1, T2));
    assert!(p.trash(Left).is_empty() && p.trash(Right).is_empty());
    assert_eq!(open_conflicts(&p), vec![("a.txt".to_string(), "R1".to_string())]);
    let o = p.tandem(&["conflicts", "list", "--state", state_arg(&p)]);
    assert!(stdout(&o).contains("a.txt") && stdout(&o).contains("R1"), "{}", show(&o));
    let st = p.tandem(&["status", "--json", "--state", state_arg(&p)]);
    assert_exit(&st, 0);
    let v: Value = serde_json::from_str(stdout(&st).trim()).unwrap();
    assert_eq!(v[0]["open_conflicts"], 1, "{v}");
    // Syncing again raises the same conflict and still touches nothing.
    let (s, _) = sync_cfg_json(&p, &cfg, 0);
    assert_eq!(n(&s, "actions"), 0);
    assert_eq!(p.read(Left, "a.txt").unwrap(), b"left version");
    assert_eq!(open_conflicts(&p).len(), 1);
}

#[test]
fn r1_manual_resolve_keep_left_copies_left_and_trashes_right() {
    let (p, cfg) = manual_r1_conflict();
    let o = resolve(&p, &cfg, "a.txt", "left");
    assert_exit(&o, 0);
    for side in [Left, Right] {
        assert_eq!(p.read(side, "a.txt").unwrap(), b"left version", "{side}");
        assert!(clash_files(&p.tree(side)).is_empty());
    }
    assert_eq!(p.trash(Right).get("a.txt").map(Vec::as_slice), Some(&b"right version, newer"[..]));
    assert!(open_conflicts(&p).is_empty());
    let (s, _) = sync_cfg_json(&p, &cfg, 0);
    assert_eq!(n(&s, "actions"), 0, "{s}");
}

#[test]
fn r1_manual_resolve_keep_right_copies_right_and_trashes_left() {
    let (p, cfg) = manual_r1_conflict();
    let o = resolve(&p, &cfg, "a.txt", "right");
    assert_exit(&o, 0);
    for side in [Left, Right] {
        assert_eq!(p.read(side, "a.txt").unwrap(), b"right version, newer", "{side}");
    }
    assert_eq!(p.trash(Left).get("a.txt").map(Vec::as_slice), Some(&b"left version"[..]));
    assert!(open_conflicts(&p).is_empty());
    let (s, _) = sync_cfg_json(&p, &cfg, 0);
    assert_eq!(n(&s, "actions"), 0, "{s}");
}

#[test]
fn r1_manual_resolve_keep_both_makes_clash_copy_of_older() {
    let (p, cfg) = manual_r1_conflict();
    let o = resolve(&p, &cfg, "a.txt", "both");
    assert_exit(&o, 0);
    let clash = clash_name("a.txt", T1, 1);
    for side in [Left, Right] {
        assert_eq!(p.read(side, "a.txt").unwrap(), b"right version, newer", "{side}");
        assert_eq!(p.read(side, &clash).as_deref(), Some(&b"left version"[..]), "{side}: no {clash}");
    }
    assert!(open_conflicts(&p).is_empty());
    let (s, _) = sync_cfg_json(&p, &cfg, 0);
    assert_eq!(n(&s, "actions"), 0, "{s}");
    p.assert_converged();
}

#[test]
fn r1_equal_changed_on_both_sides_with_same_content_copies_nothing() {
    let p = synced_pair(&[("a.txt", b"base")], 0);
    let (il, ir) = (ino(&p, Left, "a.txt"), ino(&p, Right, "a.txt"));
    p.write_at(Left, "a.txt", b"the same new content", T1);
    p.write_at(Right, "a.txt", b"the same new content", T2);
    let (s, lines) = sync_json(&p, &[], 0);
    assert_eq!(n(&s, "copied"), 0, "{s}");
    assert_eq!(n(&s, "actions"), 0, "{s}");
    assert!(ops(&lines, "copy").is_empty());
    assert_eq!((ino(&p, Left, "a.txt"), ino(&p, Right, "a.txt")), (il, ir));
    assert!(clash_files(&p.tree(Left)).is_empty() && clash_files(&p.tree(Right)).is_empty());
    assert!(p.trash(Left).is_empty() && p.trash(Right).is_empty());
    p.assert_converged();
    // The new base was recorded: nothing to do, nothing hashed into a conflict.
    let (s, lines) = sync_json(&p, &[], 0);
    assert_eq!(n(&s, "actions"), 0, "{s}");
    assert!(lines.iter().all(|l| l["op"] != "conflict"));
}

// ------------------------------------------------------------------ R2

#[test]
fn r2_new_on_both_sides_with_different_content_makes_clash_copy() {
    let p = Pair::new();
    p.write_at(Left, "new.txt", b"left new, newer", T2);
    p.write_at(Right, "new.txt", b"right new, older", T1);
    let (s, _) = sync_json(&p, &[], 0);
    assert_eq!(s["status"], "ok");
    let clash = clash_name("new.txt", T1, 1);
    for side in [Left, Right] {
        assert_eq!(p.read(side, "new.txt").unwrap(), b"left new, newer", "{side}");
        assert_eq!(
            p.read(side, &clash).as_deref(),
            Some(&b"right new, older"[..]),
            "{side}: no {clash}"
        );
    }
    sync_settled(&p);
}

#[test]
fn r2_newer_wins_option_overwrites_older_into_trash() {
    let p = Pair::new();
    let cfg = config(&p, "[pair.conflicts]\nr2 = \"newer-wins\"");
    p.write_at(Left, "new.txt", b"left new, older", T1);
    p.write_at(Right, "new.txt", b"right new, newer", T2);
    let (s, _) = sync_cfg_json(&p, &cfg, 0);
    assert_eq!(n(&s, "copied"), 1, "{s}");
    for side in [Left, Right] {
        assert_eq!(p.read(side, "new.txt").unwrap(), b"right new, newer");
        assert!(clash_files(&p.tree(side)).is_empty());
    }
    assert_eq!(p.trash(Left).get("new.txt").map(Vec::as_slice), Some(&b"left new, older"[..]));
}

#[test]
fn r2_manual_option_raises_conflict_and_touches_nothing() {
    let p = Pair::new();
    let cfg = config(&p, "[pair.conflicts]\nr2 = \"manual\"");
    p.write_at(Left, "new.txt", b"left new", T1);
    p.write_at(Right, "new.txt", b"right new!", T2);
    let (s, _) = sync_cfg_json(&p, &cfg, 0);
    assert_eq!(n(&s, "actions"), 0, "{s}");
    assert_eq!(p.read(Left, "new.txt").unwrap(), b"left new");
    assert_eq!(p.read(Right, "new.txt").unwrap(), b"right new!");
    assert_eq!(open_conflicts(&p), vec![("new.txt".to_string(), "R2".to_string())]);
}

#[test]
fn r2_new_on_both_sides_with_same_content_copies_nothing() {
    let p = Pair::new();
    p.write_at(Left, "same.txt", b"identical", T1);
    p.write_at(Right, "same.txt", b"identical", T2);
    let (s, _) = sync_json(&p, &[], 0);
    assert_eq!(n(&s, "copied"), 0, "{s}");
    assert!(clash_files(&p.tree(Left)).is_empty() && clash_files(&p.tree(Right)).is_empty());
    let (s, _) = sync_json(&p, &[], 0);
    assert_eq!(n(&s, "actions"), 0, "{s}");
}

// ------------------------------------------------------------------ R3-R10

#[test]
fn r3_left_change_overwrites_right_and_old_right_goes_to_trash() {
    let p = synced_pair(&[("d/a.txt", b"old")], 0);
    p.write_at(Left, "d/a.txt", b"new left content", T1);
    let (s, _) = sync_json(&p, &[], 0);
    assert_eq!(n(&s, "copied"), 1, "{s}");
    assert_eq!(p.read(Right, "d/a.txt").unwrap(), b"new left content");
    assert_eq!(mtime_s(&p, Right, "d/a.txt"), T1, "mtime not preserved");
    assert_eq!(p.trash(Right).get("d/a.txt").map(Vec::as_slice), Some(&b"old"[..]));
    assert!(p.trash(Left).is_empty());
    sync_settled(&p);
}

#[test]
fn r4_right_change_overwrites_left_and_old_left_goes_to_trash() {
    let p = synced_pair(&[("d/a.txt", b"old")], 0);
    p.write_at(Right, "d/a.txt", b"new right content", T1);
    let (s, _) = sync_json(&p, &[], 0);
    assert_eq!(n(&s, "copied"), 1, "{s}");
    assert_eq!(p.read(Left, "d/a.txt").unwrap(), b"new right content");
    assert_eq!(mtime_s(&p, Left, "d/a.txt"), T1);
    assert_eq!(p.trash(Left).get("d/a.txt").map(Vec::as_slice), Some(&b"old"[..]));
    assert!(p.trash(Right).is_empty());
    sync_settled(&p);
}

#[test]
fn r5_deleted_left_changed_right_restores_right_version_on_left() {
    let p = synced_pair(&[("d/a.txt", b"old")], 4);
    remove(&p, Left, "d/a.txt");
    p.write_at(Right, "d/a.txt", b"changed on right", T1);
    p.sync_ok();
    for side in [Left, Right] {
        assert_eq!(p.read(side, "d/a.txt").unwrap(), b"changed on right", "{side}");
    }
    sync_settled(&p);
}

#[test]
fn r6_deleted_right_changed_left_restores_left_version_on_right() {
    let p = synced_pair(&[("d/a.txt", b"old")], 4);
    remove(&p, Right, "d/a.txt");
    p.write_at(Left, "d/a.txt", b"changed on left", T1);
    p.sync_ok();
    for side in [Left, Right] {
        assert_eq!(p.read(side, "d/a.txt").unwrap(), b"changed on left", "{side}");
    }
    sync_settled(&p);
}

#[test]
fn r7_deleted_left_unchanged_right_moves_right_copy_to_trash() {
    let p = synced_pair(&[("sub/deep/a.txt", b"to be deleted"), ("sub/keep.txt", b"keep")], 4);
    remove(&p, Left, "sub/deep/a.txt");
    let (s, _) = sync_json(&p, &[], 0);
    assert_eq!(n(&s, "trashed"), 1, "{s}");
    assert!(!p.exists(Right, "sub/deep/a.txt"));
    assert_eq!(
        p.trash(Right).get("sub/deep/a.txt").map(Vec::as_slice),
        Some(&b"to be deleted"[..]),
        "not in the trash under its relative path"
    );
    assert_eq!(trash_stamps(&p, Right).len(), 1);
    assert_eq!(p.read(Right, "sub/keep.txt").unwrap(), b"keep");
    sync_settled(&p);
}

#[test]
fn r8_deleted_right_unchanged_left_moves_left_copy_to_trash() {
    let p = synced_pair(&[("sub/a.txt", b"to be deleted")], 4);
    remove(&p, Right, "sub/a.txt");
    let (s, _) = sync_json(&p, &[], 0);
    assert_eq!(n(&s, "trashed"), 1, "{s}");
    assert!(!p.exists(Left, "sub/a.txt"));
    assert_eq!(p.trash(Left).get("sub/a.txt").map(Vec::as_slice), Some(&b"to be deleted"[..]));
    trash_stamps(&p, Left);
    sync_settled(&p);
}

#[test]
fn r9_new_on_left_is_copied_with_its_folders_and_mtime() {
    let p = Pair::new();
    p.write_at(Left, "x/y/z.txt", b"deep new file", T1);
    p.write_at(Left, "top.txt", b"top", T2);
    std::fs::create_dir_all(p.path(Left, "empty/folder")).unwrap();
    let (s, _) = sync_json(&p, &[], 0);
    assert_eq!(n(&s, "copied"), 2, "{s}");
    assert_eq!(p.read(Right, "x/y/z.txt").unwrap(), b"deep new file");
    assert_eq!(mtime_s(&p, Right, "x/y/z.txt"), T1);
    assert_eq!(mtime_s(&p, Right, "top.txt"), T2);
    assert!(p.path(Right, "empty/folder").is_dir(), "empty folder not created");
    assert_eq!(p.dirs(Left), p.dirs(Right));
    sync_settled(&p);
}

#[test]
fn r10_new_on_right_is_copied_to_left() {
    let p = Pair::new();
    p.write_at(Right, "x/y/z.txt", b"deep new file", T1);
    let (s, _) = sync_json(&p, &[], 0);
    assert_eq!(n(&s, "copied"), 1, "{s}");
    assert_eq!(p.read(Left, "x/y/z.txt").unwrap(), b"deep new file");
    assert_eq!(mtime_s(&p, Left, "x/y/z.txt"), T1);
    sync_settled(&p);
}

#[test]
fn soft_delete_keeps_small_files_in_trash_and_deletes_larger_ones_outright() {
    let big = vec![b'B'; 5000];
    let big2 = vec![b'C'; 5000];
    let p = synced_pair(&[("small.txt", b"small"), ("big.bin", &big), ("big2.bin", &big2)], 5);
    let cfg = config(&p, "soft_delete_max_bytes = 1000");
    remove(&p, Left, "small.txt");
    remove(&p, Left, "big.bin");
    p.write_at(Left, "big2.bin", &vec![b'D'; 6000], T1);
    let o = sync_cfg(&p, &cfg, &[]);
    assert_exit(&o, 0);
    assert!(!p.exists(Right, "small.txt") && !p.exists(Right, "big.bin"));
    assert_eq!(p.read(Right, "big2.bin").unwrap(), vec![b'D'; 6000]);
    let trash = p.trash(Right);
    assert_eq!(trash.get("small.txt").map(Vec::as_slice), Some(&b"small"[..]));
    assert!(
        !trash.contains_key("big.bin"),
        "a file over soft_delete_max_bytes went to the trash"
    );
    assert!(
        !trash.contains_key("big2.bin"),
        "an overwritten file over soft_delete_max_bytes went to the trash"
    );
}

// ------------------------------------------------------------------ R11 / R12

#[test]
fn r11_mtime_only_change_on_left_sets_mtime_on_right_without_copy() {
    let p = synced_pair(&[("a.txt", b"unchanged content")], 0);
    let ir = ino(&p, Right, "a.txt");
    set_mtime(&p, Left, "a.txt", T1);
    let (s, lines) = sync_json(&p, &[], 0);
    assert_eq!(n(&s, "copied"), 0, "{s}");
    assert_eq!(n(&s, "props"), 1, "{s}");
    assert_eq!(ops(&lines, "set_props")[0]["rule"], "R11");
    assert_eq!(mtime_s(&p, Right, "a.txt"), T1);
    assert_eq!(ino(&p, Right, "a.txt"), ir, "the right file was re-copied");
    assert!(p.trash(Right).is_empty());
    sync_settled(&p);
}

#[test]
fn r12_mtime_only_change_on_right_sets_mtime_on_left_without_copy() {
    let p = synced_pair(&[("a.txt", b"unchanged content")], 0);
    let il = ino(&p, Left, "a.txt");
    set_mtime(&p, Right, "a.txt", T1);
    let (s, lines) = sync_json(&p, &[], 0);
    assert_eq!(n(&s, "copied"), 0, "{s}");
    assert_eq!(ops(&lines, "set_props")[0]["rule"], "R12");
    assert_eq!(mtime_s(&p, Left, "a.txt"), T1);
    assert_eq!(ino(&p, Left, "a.txt"), il);
    sync_settled(&p);
}

// Unix only: Unix permission bits (Windows has only the read-only attribute).
#[cfg(unix)]
#[test]
fn r11_mode_only_change_on_left_is_applied_on_right() {
    let p = synced_pair(&[("run.sh", b"#!/bin/sh\n")], 0);
    let ir = ino(&p, Right, "run.sh");
    std::fs::set_permissions(p.path(Left, "run.sh"), std::fs::Permissions::from_mode(0o750)).unwrap();
    let (s, _) = sync_json(&p, &[], 0);
    assert_eq!(n(&s, "copied"), 0, "{s}");
    let mode = std::fs::metadata(p.path(Right, "run.sh")).unwrap().mode() & 0o777;
    assert_eq!(mode, 0o750);
    assert_eq!(ino(&p, Right, "run.sh"), ir);
    sync_settled(&p);
}

// Unix only: Unix permission bits (Windows has only the read-only attribute).
#[cfg(unix)]
fn mode(p: &Pair, side: Side, rel: &str) -> u32 {
    std::fs::metadata(p.path(side, rel)).unwrap().mode() & 0o7777
}

// Unix only: Unix permission bits (Windows has only the read-only attribute).
#[cfg(unix)]
fn chmod(p: &Pair, side: Side, rel: &str, mode: u32) {
    std::fs::set_permissions(p.path(side, rel), std::fs::Permissions::from_mode(mode)).unwrap();
}

// Unix only: its one caller is a test of Unix permission bits.
#[cfg(unix)]
fn append(p: &Pair, side: Side, rel: &str, more: &[u8]) {
    use std::io::Write;
    std::fs::OpenOptions::new()
        .append(true)
        .open(p.path(side, rel))
        .unwrap()
        .write_all(more)
        .unwrap();
}

// Unix only: Unix permission bits (Windows has only the read-only attribute).
#[cfg(unix)]
#[test]
fn regression_a_copy_did_not_carry_the_mode_and_the_sides_stayed_different() {
    let p = Pair::new();
    p.write_at(Left, "a.sh", b"x\n", T0);
    chmod(&p, Left, "a.sh", 0o755);
    p.write_at(Left, "private.txt", b"p\n", T0);
    chmod(&p, Left, "private.txt", 0o600);
    sync_settled(&p);
    assert_eq!((mode(&p, Left, "a.sh"), mode(&p, Right, "a.sh")), (0o755, 0o755));
    assert_eq!(mode(&p, Right, "private.txt"), 0o600);
}

// Unix only: Unix permission bits (Windows has only the read-only attribute).
#[cfg(unix)]
#[test]
fn regression_an_edit_dropped_the_executable_bit_on_the_other_side() {
    let p = Pair::new();
    p.write_at(Left, "c.sh", b"c\n", T0);
    sync_settled(&p);
    chmod(&p, Left, "c.sh", 0o755);
    sync_settled(&p);
    assert_eq!(mode(&p, Right, "c.sh"), 0o755);
    append(&p, Left, "c.sh", b"c2\n");
    sync_settled(&p);
    assert_eq!((mode(&p, Left, "c.sh"), mode(&p, Right, "c.sh")), (0o755, 0o755));
    // chmod 700 and an append on one side: the other gets both.
    chmod(&p, Right, "c.sh", 0o700);
    append(&p, Right, "c.sh", b"c3\n");
    sync_settled(&p);
    assert_eq!(p.read(Left, "c.sh").unwrap(), b"c\nc2\nc3\n");
    assert_eq!((mode(&p, Left, "c.sh"), mode(&p, Right, "c.sh")), (0o700, 0o700));
}

// Unix only: Unix permission bits (Windows has only the read-only attribute).
#[cfg(unix)]
#[test]
fn regression_a_mode_change_on_one_side_was_dropped_by_a_content_change_on_the_other() {
    let p = synced_pair(&[("run.sh", b"#!/bin/sh\n")], 0);
    chmod(&p, Left, "run.sh", 0o755);
    p.write_at(Right, "run.sh", b"#!/bin/sh\necho new\n", T1);
    let (s, _) = sync_json(&p, &[], 0);
    assert_eq!(n(&s, "copied"), 1, "{s}");
    assert_eq!(p.read(Left, "run.sh").unwrap(), b"#!/bin/sh\necho new\n");
    assert_eq!((mode(&p, Left, "run.sh"), mode(&p, Right, "run.sh")), (0o755, 0o755));
    assert_eq!(p.trash(Left).get("run.sh").map(Vec::as_slice), Some(&b"#!/bin/sh\n"[..]));
    sync_settled(&p);
    // And the other way round.
    chmod(&p, Right, "run.sh", 0o750);
    p.write_at(Left, "run.sh", b"#!/bin/sh\necho newer\n", T2);
    sync_settled(&p);
    assert_eq!(p.read(Right, "run.sh").unwrap(), b"#!/bin/sh\necho newer\n");
    assert_eq!((mode(&p, Left, "run.sh"), mode(&p, Right, "run.sh")), (0o750, 0o750));
}

// Unix only: Unix permission bits (Windows has only the read-only attribute).
#[cfg(unix)]
#[test]
fn regression_a_base_with_two_modes_for_one_content_converges() {
    // What an older Tandem left behind: a copy with the default mode, recorded as synced.
    let p = synced_pair(&[("tool.sh", b"#!/bin/sh\n"), ("notes.txt", b"n")], 0);
    chmod(&p, Left, "tool.sh", 0o755);
    sync_settled(&p);
    chmod(&p, Right, "tool.sh", 0o644);
    let db = rusqlite::Connection::open(&p.state).unwrap();
    let n_rows = db
        .execute("UPDATE base SET r_mode = 420, r_version = 0 WHERE path = 'tool.sh'", [])
        .unwrap();
    assert_eq!(n_rows, 1);
    drop(db);
    // The mode that is not a creation default wins (0755 over 0644), whichever side holds it.
    let (s, lines) = sync_json(&p, &[], 0);
    assert_eq!(n(&s, "copied"), 0, "{s}");
    let props = ops(&lines, "set_props");
    assert_eq!(props.len(), 1, "{lines:?}");
    assert_eq!(props[0]["side"], "right");
    assert_eq!((mode(&p, Left, "tool.sh"), mode(&p, Right, "tool.sh")), (0o755, 0o755));
    sync_settled(&p);
}

#[test]
fn r11_case_only_rename_on_left_renames_right_in_place() {
    if crate::common::skip_under_wine(crate::common::WINE_CASE_RENAME) {
        return;
    }
    let p = synced_pair(&[("Docs/Report.TXT", b"report")], 0);
    let ir = ino(&p, Right, "Docs/Report.TXT");
    rename(&p, Left, "Docs/Report.TXT", "Docs/report.txt");
    let (s, lines) = sync_json(&p, &[], 0);
    assert_eq!(n(&s, "copied"), 0, "{s}");
    let renames = ops(&lines, "rename");
    assert_eq!(renames.len(), 1, "{lines:?}");
    assert_eq!(renames[0]["rule"], "R11");
    assert!(!p.exists(Right, "Docs/Report.TXT"));
    assert_eq!(ino(&p, Right, "Docs/report.txt"), ir, "renamed by copying");
    assert!(p.trash(Right).is_empty());
    sync_settled(&p);
}

#[test]
fn r12_case_only_rename_on_right_renames_left_in_place() {
    if crate::common::skip_under_wine(crate::common::WINE_CASE_RENAME) {
        return;
    }
    let p = synced_pair(&[("readme.md", b"readme")], 0);
    let il = ino(&p, Left, "readme.md");
    rename(&p, Right, "readme.md", "README.md");
    let (s, lines) = sync_json(&p, &[], 0);
    assert_eq!(n(&s, "copied"), 0, "{s}");
    assert_eq!(ops(&lines, "rename")[0]["rule"], "R12");
    assert!(!p.exists(Left, "readme.md"));
    assert_eq!(ino(&p, Left, "README.md"), il);
    sync_settled(&p);
}

// ------------------------------------------------------------------ R13

/// Both sides changed only the mtime: left to T1, right to T2 (newer).
fn r13_pair(body: &str) -> (Pair, PathBuf, u64, u64) {
    let p = synced_pair(&[("a.txt", b"same bytes")], 0);
    let cfg = config(&p, body);
    set_mtime(&p, Left, "a.txt", T1);
    set_mtime(&p, Right, "a.txt", T2);
    let (il, ir) = (ino(&p, Left, "a.txt"), ino(&p, Right, "a.txt"));
    (p, cfg, il, ir)
}

#[test]
fn r13_default_newer_change_wins() {
    let (p, cfg, il, ir) = r13_pair("");
    let (s, lines) = sync_cfg_json(&p, &cfg, 0);
    assert_eq!(n(&s, "copied"), 0, "{s}");
    assert_eq!(ops(&lines, "set_props")[0]["rule"], "R13");
    assert_eq!((mtime_s(&p, Left, "a.txt"), mtime_s(&p, Right, "a.txt")), (T2, T2));
    assert_eq!((ino(&p, Left, "a.txt"), ino(&p, Right, "a.txt")), (il, ir));
    let (s, _) = sync_cfg_json(&p, &cfg, 0);
    assert_eq!(n(&s, "actions"), 0, "{s}");
}

#[test]
fn r13_left_wins_option() {
    let (p, cfg, il, ir) = r13_pair("[pair.conflicts]\nr13 = \"left-wins\"");
    let (s, _) = sync_cfg_json(&p, &cfg, 0);
    assert_eq!(n(&s, "copied"), 0, "{s}");
    assert_eq!((mtime_s(&p, Left, "a.txt"), mtime_s(&p, Right, "a.txt")), (T1, T1));
    assert_eq!((ino(&p, Left, "a.txt"), ino(&p, Right, "a.txt")), (il, ir));
    let (s, _) = sync_cfg_json(&p, &cfg, 0);
    assert_eq!(n(&s, "actions"), 0, "{s}");
}

#[test]
fn r13_manual_option_raises_conflict_and_touches_nothing() {
    let (p, cfg, _, _) = r13_pair("[pair.conflicts]\nr13 = \"manual\"");
    let (s, _) = sync_cfg_json(&p, &cfg, 0);
    assert_eq!(n(&s, "actions"), 0, "{s}");
    assert_eq!((mtime_s(&p, Left, "a.txt"), mtime_s(&p, Right, "a.txt")), (T1, T2));
    assert_eq!(open_conflicts(&p), vec![("a.txt".to_string(), "R13".to_string())]);
}

#[test]
fn r13_manual_resolve_keep_right_applies_right_properties_on_left() {
    let (p, cfg, il, _) = r13_pair("[pair.conflicts]\nr13 = \"manual\"");
    let (s, _) = sync_cfg_json(&p, &cfg, 0);
    assert_eq!(n(&s, "conflicts"), 1, "{s}");
    let o = resolve(&p, &cfg, "a.txt", "right");
    assert_exit(&o, 0);
    assert!(open_conflicts(&p).is_empty());
    assert_eq!(
        (mtime_s(&p, Left, "a.txt"), mtime_s(&p, Right, "a.txt")),
        (T2, T2),
        "keep right did not give the left file the right file's properties"
    );
    assert_eq!(ino(&p, Left, "a.txt"), il, "re-copied instead of applying properties");
}

#[test]
fn r13_case_changed_differently_on_both_sides_left_wins_keeps_one_name_without_copy() {
    if crate::common::skip_under_wine(crate::common::WINE_CASE_RENAME) {
        return;
    }
    let p = synced_pair(&[("File.txt", b"one file, two case changes")], 3);
    let cfg = config(&p, "[pair.conflicts]\nr13 = \"left-wins\"");
    rename(&p, Left, "File.txt", "file.txt");
    rename(&p, Right, "File.txt", "FILE.txt");
    let (il, ir) = (ino(&p, Left, "file.txt"), ino(&p, Right, "FILE.txt"));
    let (s, _) = sync_cfg_json(&p, &cfg, 0);
    assert_eq!(n(&s, "copied"), 0, "a case change was synced by copying data: {s}");
    for side in [Left, Right] {
        let names: Vec<String> = p.tree(side).into_keys().filter(|k| k.eq_ignore_ascii_case("file.txt")).collect();
        assert_eq!(names, vec!["file.txt".to_string()], "{side}: the left name did not win");
    }
    assert_eq!((ino(&p, Left, "file.txt"), ino(&p, Right, "file.txt")), (il, ir));
}

#[test]
fn r13_case_changed_differently_on_both_sides_default_keeps_one_name() {
    let p = synced_pair(&[("File.txt", b"one file, two case changes")], 3);
    rename(&p, Left, "File.txt", "file.txt");
    rename(&p, Right, "File.txt", "FILE.txt");
    p.sync_ok();
    for side in [Left, Right] {
        let names: Vec<String> = p.tree(side).into_keys().filter(|k| k.eq_ignore_ascii_case("file.txt")).collect();
        assert_eq!(names.len(), 1, "{side}: both case variants kept as two files: {names:?}");
    }
    sync_settled(&p);
}

// ------------------------------------------------------------------ R14

#[test]
fn r14_file_rename_on_left_is_renamed_on_right_not_copied() {
    let p = synced_pair(&[("docs/a.txt", b"some content to keep")], 3);
    let ir = ino(&p, Right, "docs/a.txt");
    rename(&p, Left, "docs/a.txt", "docs/b.txt");
    let (s, lines) = sync_json(&p, &[], 0);
    assert_eq!(n(&s, "copied"), 0, "{s}");
    assert_eq!(n(&s, "renamed"), 1, "{s}");
    assert_eq!(ops(&lines, "rename")[0]["rule"], "R14");
    assert!(!p.exists(Right, "docs/a.txt"));
    assert_eq!(ino(&p, Right, "docs/b.txt"), ir, "re-copied instead of renamed");
    assert!(p.trash(Right).is_empty(), "a rename must not trash anything");
    sync_settled(&p);
}

#[test]
fn r14_file_move_on_right_into_new_folder_is_renamed_on_left() {
    let p = synced_pair(&[("x/a.txt", b"moving file")], 3);
    let il = ino(&p, Left, "x/a.txt");
    rename(&p, Right, "x/a.txt", "y/z/a.txt");
    let (s, _) = sync_json(&p, &[], 0);
    assert_eq!(n(&s, "copied"), 0, "{s}");
    assert!(!p.exists(Left, "x/a.txt"));
    assert_eq!(ino(&p, Left, "y/z/a.txt"), il);
    sync_settled(&p);
}

#[test]
fn r14_folder_move_of_200_files_is_renamed_on_other_side_keeping_inodes() {
    let p = Pair::new();
    for i in 0..200 {
        p.write_at(
            Left,
            &format!("proj/sub{}/f{i}.txt", i % 10),
            format!("file {i} of the project").as_bytes(),
            T0 + i,
        );
    }
    p.write_at(Left, "other.txt", b"other", T0);
    sync_settled(&p);
    let before: BTreeMap<String, u64> = p
        .tree(Right)
        .keys()
        .filter(|k| k.starts_with("proj/"))
        .map(|k| (k.clone(), ino(&p, Right, k)))
        .collect();
    assert_eq!(before.len(), 200);
    rename(&p, Left, "proj", "archive/proj-2024");
    let (s, _) = sync_json(&p, &[], 0);
    assert_eq!(n(&s, "copied"), 0, "the moved folder was re-copied: {s}");
    assert_eq!(n(&s, "trashed") + n(&s, "deleted"), 0, "{s}");
    assert!(!p.exists(Right, "proj"));
    for (k, i) in &before {
        let moved = k.replacen("proj/", "archive/proj-2024/", 1);
        assert_eq!(ino(&p, Right, &moved), *i, "{moved} is not the renamed {k}");
    }
    assert!(p.trash(Right).is_empty());
    sync_settled(&p);
}

#[test]
fn r14_rename_on_left_while_right_edited_keeps_the_edit_under_the_new_name() {
    let p = synced_pair(&[("a.txt", b"original")], 3);
    rename(&p, Left, "a.txt", "b.txt");
    p.write_at(Right, "a.txt", b"edited on the right", T1);
    p.sync_ok();
    for side in [Left, Right] {
        assert!(!p.exists(side, "a.txt"), "{side}");
        assert_eq!(p.read(side, "b.txt").unwrap(), b"edited on the right", "{side}");
    }
    sync_settled(&p);
}

#[test]
fn r14_folder_rename_on_left_while_right_added_a_file_inside() {
    let p = synced_pair(&[("proj/f1.txt", b"1"), ("proj/sub/f2.txt", b"2")], 3);
    let ir = ino(&p, Right, "proj/sub/f2.txt");
    rename(&p, Left, "proj", "proj2");
    p.write_at(Right, "proj/new.txt", b"added on the right", T1);
    let (s, _) = sync_json(&p, &[], 0);
    assert_eq!(n(&s, "copied"), 1, "only the new file needs copying: {s}");
    for side in [Left, Right] {
        assert!(!p.exists(side, "proj"), "{side}");
        assert_eq!(p.read(side, "proj2/new.txt").unwrap(), b"added on the right", "{side}");
        assert_eq!(p.read(side, "proj2/sub/f2.txt").unwrap(), b"2");
    }
    assert_eq!(ino(&p, Right, "proj2/sub/f2.txt"), ir);
    sync_settled(&p);
}

// ------------------------------------------------------------------ R15

#[test]
fn r15_deleted_on_both_sides_is_forgotten() {
    let p = synced_pair(&[("a.txt", b"gone on both")], 3);
    remove(&p, Left, "a.txt");
    remove(&p, Right, "a.txt");
    let (s, _) = sync_json(&p, &[], 0);
    assert_eq!(n(&s, "actions"), 0, "{s}");
    assert!(!p.exists(Left, "a.txt") && !p.exists(Right, "a.txt"));
    assert!(p.trash(Left).is_empty() && p.trash(Right).is_empty());
    // Forgotten: a later file of that name is simply new.
    p.write_at(Right, "a.txt", b"reborn", T1);
    let (s, lines) = sync_json(&p, &[], 0);
    assert_eq!(n(&s, "copied"), 1, "{s}");
    assert_eq!(ops(&lines, "copy")[0]["rule"], "R10");
    assert_eq!(p.read(Left, "a.txt").unwrap(), b"reborn");
}

// ------------------------------------------------------------------ R16

#[test]
fn r16_file_on_left_folder_on_right_folder_keeps_name_file_becomes_clash_copy() {
    let p = Pair::new();
    p.write_at(Left, "thing", b"I am a file", T1);
    p.write_at(Right, "thing/inside.txt", b"I am in a folder", T2);
    let (s, _) = sync_json(&p, &[], 0);
    assert_eq!(s["status"], "ok");
    let clash = clash_name("thing", T1, 1);
    for side in [Left, Right] {
        assert!(p.path(side, "thing").is_dir(), "{side}: the folder lost its name");
        assert_eq!(p.read(side, "thing/inside.txt").unwrap(), b"I am in a folder");
        assert_eq!(p.read(side, &clash).as_deref(), Some(&b"I am a file"[..]), "{side}: no {clash}");
    }
    sync_settled(&p);
}

#[test]
fn r16_synced_file_replaced_by_folder_on_right() {
    let p = synced_pair(&[("doc", b"was a file")], 3);
    remove(&p, Right, "doc");
    p.write_at(Right, "doc/now-a-folder.txt", b"folder content", T1);
    p.sync_ok();
    let clash = clash_name("doc", T0, 1);
    for side in [Left, Right] {
        assert!(p.path(side, "doc").is_dir(), "{side}");
        assert_eq!(p.read(side, "doc/now-a-folder.txt").unwrap(), b"folder content");
        assert_eq!(
            p.read(side, &clash).as_deref(),
            Some(&b"was a file"[..]),
            "{side}: the file version is lost"
        );
    }
    sync_settled(&p);
}

#[test]
fn r16_synced_folder_replaced_by_file_on_left_keeps_folder_and_file() {
    let p = synced_pair(&[("x/a.txt", b"a"), ("x/b.txt", b"b")], 3);
    remove(&p, Left, "x");
    p.write_at(Left, "x", b"now a file", T1);
    p.sync_ok();
    let clash = clash_name("x", T1, 1);
    for side in [Left, Right] {
        assert!(p.path(side, "x").is_dir(), "{side}: the folder lost its name");
        assert_eq!(p.read(side, "x/a.txt").unwrap(), b"a", "{side}");
        assert_eq!(p.read(side, "x/b.txt").unwrap(), b"b", "{side}");
        assert_eq!(p.read(side, &clash).as_deref(), Some(&b"now a file"[..]), "{side}");
    }
    sync_settled(&p);
}

// ------------------------------------------------------------------ R17

#[test]
fn r17_folder_deleted_left_while_right_added_and_changed_files_inside() {
    let p = synced_pair(
        &[
            ("d/a.txt", b"a unchanged"),
            ("d/b.txt", b"b before"),
            ("d/c.txt", b"c unchanged"),
            ("d/sub/e.txt", b"e unchanged"),
        ],
        8,
    );
    remove(&p, Left, "d");
    p.write_at(Right, "d/b.txt", b"b changed on right", T1);
    p.write_at(Right, "d/new.txt", b"added on right", T1);
    let (s, _) = sync_json(&p, &[], 0);
    assert_eq!(s["status"], "ok");
    for side in [Left, Right] {
        assert!(p.path(side, "d").is_dir(), "{side}: folder not kept");
        assert_eq!(p.read(side, "d/b.txt").unwrap(), b"b changed on right", "{side}");
        assert_eq!(p.read(side, "d/new.txt").unwrap(), b"added on right", "{side}");
        for gone in ["d/a.txt", "d/c.txt", "d/sub/e.txt"] {
            assert!(!p.exists(side, gone), "{side}: unchanged {gone} was not deleted");
        }
    }
    let trash = p.trash(Right);
    for gone in ["d/a.txt", "d/c.txt", "d/sub/e.txt"] {
        assert!(trash.contains_key(gone), "{gone} not in the right trash: {:?}", trash.keys());
    }
    sync_settled(&p);
}

// ------------------------------------------------------------------ guards

#[test]
fn guard_missing_root_exits_3_and_deletes_nothing() {
    for side in [Left, Right] {
        let p = synced_pair(&[("a.txt", b"a"), ("b/c.txt", b"c")], 2);
        let other = side.other();
        let before = p.tree(other);
        let root = p.root(side).to_path_buf();
        let aside = root.with_extension("unmounted");
        std::fs::rename(&root, &aside).unwrap();
        let o = p.sync(&[]);
        assert_exit(&o, 3);
        assert!(
            stderr(&o).contains(root.to_str().unwrap()),
            "the message does not name the missing folder\n{}",
            show(&o)
        );
        assert_eq!(p.tree(other), before, "{other} side changed while {side} was missing");
        assert!(p.trash(other).is_empty());
        assert!(!root.exists(), "the missing root was re-created");
        let h = p.tandem(&["history", "--json", "--state", state_arg(&p)]);
        let last: Value = serde_json::from_str(stdout(&h).lines().next().unwrap()).unwrap();
        assert_eq!(last["status"], "stopped", "{last}");
        std::fs::rename(&aside, &root).unwrap();
        sync_settled(&p);
        assert_eq!(p.tree(side), before);
    }
}

#[test]
fn guard_emptied_root_exits_3_and_deletes_nothing() {
    let p = synced_pair(&[("a.txt", b"a"), ("b.txt", b"b"), ("c.txt", b"c")], 0);
    let before = p.tree(Left);
    for f in ["a.txt", "b.txt", "c.txt"] {
        remove(&p, Right, f);
    }
    let o = p.sync(&[]);
    assert_exit(&o, 3);
    assert!(stderr(&o).contains("empty"), "{}", show(&o));
    assert_eq!(p.tree(Left), before);
    assert!(p.trash(Left).is_empty());
}

#[test]
fn guard_mass_delete_exits_3_then_passes_with_allow_mass_delete() {
    let p = synced_pair(&[], 10);
    for i in 0..6 {
        remove(&p, Left, &format!("filler/f{i}.txt"));
    }
    let o = p.sync(&[]);
    assert_exit(&o, 3);
    assert!(
        stderr(&o).contains("max_delete_percent") && stderr(&o).contains("--allow-mass-delete"),
        "{}",
        show(&o)
    );
    assert_eq!(p.tree(Right).len(), 10, "files deleted despite the guard");
    assert!(p.trash(Right).is_empty());
    let (s, _) = sync_json(&p, &["--allow-mass-delete"], 0);
    assert_eq!(n(&s, "trashed"), 6, "{s}");
    assert_eq!(p.tree(Right).len(), 4);
    assert_eq!(p.trash(Right).len(), 6);
    sync_settled(&p);
}

#[test]
fn guard_mass_delete_allows_exactly_max_delete_percent() {
    let p = synced_pair(&[], 10);
    for i in 0..5 {
        remove(&p, Left, &format!("filler/f{i}.txt"));
    }
    let (s, _) = sync_json(&p, &[], 0);
    assert_eq!(n(&s, "trashed"), 5, "{s}");
}

#[test]
fn guard_lost_state_file_never_deletes_and_turns_differences_into_clash_copies() {
    let p = synced_pair(&[("a.txt", b"a"), ("b.txt", b"b base"), ("c.txt", b"c base"), ("d.txt", b"d")], 0);
    for ext in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{ext}", p.state.display()));
    }
    remove(&p, Left, "a.txt");
    p.write_at(Right, "b.txt", b"b edited on right", T1);
    p.write_at(Left, "c.txt", b"c edited on left", T1);
    p.write_at(Right, "c.txt", b"c edited on right, later", T2);
    p.write_at(Left, "new-left.txt", b"new on left", T1);
    p.write_at(Right, "new-right.txt", b"new on right", T1);
    let (s, _) = sync_json(&p, &[], 0);
    assert_eq!(n(&s, "trashed") + n(&s, "deleted"), 0, "{s}");
    for side in [Left, Right] {
        assert_eq!(
            p.read(side, "a.txt").unwrap(),
            b"a",
            "{side}: a file deleted without a base came back? it must"
        );
        assert_eq!(p.read(side, "b.txt").unwrap(), b"b edited on right", "{side}");
        assert_eq!(p.read(side, &clash_name("b.txt", T0, 1)).as_deref(), Some(&b"b base"[..]), "{side}");
        assert_eq!(p.read(side, "c.txt").unwrap(), b"c edited on right, later");
        assert_eq!(p.read(side, &clash_name("c.txt", T1, 1)).as_deref(), Some(&b"c edited on left"[..]));
        assert_eq!(p.read(side, "new-left.txt").unwrap(), b"new on left");
        assert_eq!(p.read(side, "new-right.txt").unwrap(), b"new on right");
        assert_eq!(p.read(side, "d.txt").unwrap(), b"d");
    }
    assert!(p.trash(Left).is_empty() && p.trash(Right).is_empty());
    sync_settled(&p);
}

// ------------------------------------------------------------------ bad inputs

/// Run the binary without the power to bypass file permissions (tests may run as root).
// Unix only: root's capabilities (Windows has none to drop).
#[cfg(unix)]
fn tandem_without_dac_override(args: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tandem"));
    c.args(args).env("TANDEM_LOG", "warn");
    crate::common::without_dac_override(&mut c);
    c.output().unwrap()
}

// Unix only: Unix permission bits make the file unreadable (Windows has only the read-only attribute).
#[cfg(unix)]
#[test]
fn unreadable_file_exits_1_rest_synced_nothing_lost() {
    let p = Pair::new();
    p.write_at(Left, "ok1.txt", b"fine one", T1);
    p.write_at(Left, "dir/ok2.txt", b"fine two", T1);
    p.write_at(Left, "secret.txt", b"you cannot read me", T1);
    p.write_at(Right, "from-right.txt", b"right side file", T1);
    let secret = p.path(Left, "secret.txt");
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o000)).unwrap();
    let (l, r) = (p.left.to_str().unwrap(), p.right.to_str().unwrap());
    let o = tandem_without_dac_override(&["sync", l, r, "--state", state_arg(&p)]);
    assert_exit(&o, 1);
    assert!(stdout(&o).contains("secret.txt"), "the failure is not reported\n{}", show(&o));
    assert_eq!(p.read(Right, "ok1.txt").unwrap(), b"fine one");
    assert_eq!(p.read(Right, "dir/ok2.txt").unwrap(), b"fine two");
    assert_eq!(p.read(Left, "from-right.txt").unwrap(), b"right side file");
    assert!(!p.exists(Right, "secret.txt"));
    assert!(temp_files(&p.right).is_empty(), "{:?}", temp_files(&p.right));
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert_eq!(p.read(Left, "secret.txt").unwrap(), b"you cannot read me");
    sync_settled(&p);
    assert_eq!(p.read(Right, "secret.txt").unwrap(), b"you cannot read me");
}

/// A file system that runs `action` once, the first time `trigger` is opened for reading:
/// before the open, or after the first chunk was read (so a copy sees both versions).
struct Saboteur {
    trigger: PathBuf,
    after_first_chunk: bool,
    action: Arc<dyn Fn() + Send + Sync>,
    fired: AtomicBool,
}

struct SabotagedReader {
    inner: Box<dyn std::io::Read + Send>,
    action: Option<Arc<dyn Fn() + Send + Sync>>,
}

impl std::io::Read for SabotagedReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let k = self.inner.read(buf)?;
        if let Some(a) = self.action.take() {
            a();
        }
        Ok(k)
    }
}

use tandem::model::RelPath;
use tandem::side::local::LocalSide;
use tandem::side::{Caps, DirItem, FileWriter, Node, Replica};

/// A local side with a [`Saboteur`] on its reads.
struct Sabotaged<'a> {
    s: &'a Saboteur,
    inner: LocalSide,
}

impl Replica for Sabotaged<'_> {
    fn caps(&self) -> Caps {
        self.inner.caps()
    }
    fn describe(&self, p: &RelPath) -> String {
        self.inner.describe(p)
    }
    fn stat(&self, p: &RelPath) -> std::io::Result<Option<Node>> {
        self.inner.stat(p)
    }
    fn read_dir(&self, p: &RelPath) -> std::io::Result<Vec<DirItem>> {
        self.inner.read_dir(p)
    }
    fn open_read(&self, p: &RelPath) -> std::io::Result<Box<dyn std::io::Read + Send>> {
        let s = self.s;
        if Path::new(&self.inner.describe(p)) == s.trigger && !s.fired.swap(true, Ordering::SeqCst) {
            if !s.after_first_chunk {
                (s.action)();
                return self.inner.open_read(p);
            }
            let inner = self.inner.open_read(p)?;
            return Ok(Box::new(SabotagedReader {
                inner,
                action: Some(s.action.clone()),
            }));
        }
        self.inner.open_read(p)
    }
    fn create_new(&self, p: &RelPath) -> std::io::Result<Box<dyn FileWriter>> {
        self.inner.create_new(p)
    }
    fn rename(&self, from: &RelPath, to: &RelPath) -> std::io::Result<()> {
        self.inner.rename(from, to)
    }
    fn keep_copy(&self, from: &RelPath, to: &RelPath) -> std::io::Result<()> {
        self.inner.keep_copy(from, to)
    }
    fn remove_file(&self, p: &RelPath) -> std::io::Result<()> {
        self.inner.remove_file(p)
    }
    fn remove_dir(&self, p: &RelPath) -> std::io::Result<()> {
        self.inner.remove_dir(p)
    }
    fn create_dir_all(&self, p: &RelPath) -> std::io::Result<()> {
        self.inner.create_dir_all(p)
    }
    fn set_mtime(&self, p: &RelPath, mtime_ns: i64) -> std::io::Result<()> {
        self.inner.set_mtime(p, mtime_ns)
    }
    fn set_mode(&self, p: &RelPath, mode: u32) -> std::io::Result<()> {
        self.inner.set_mode(p, mode)
    }
    fn make_durable(&self, files: &[RelPath], dirs: &[RelPath]) -> std::io::Result<()> {
        self.inner.make_durable(files, dirs)
    }
}

/// One sync through the library with `left` sabotaging the left side's reads; returns the
/// report.
fn sync_lib(p: &Pair, left: &Saboteur) -> tandem::api::SyncReport {
    let mut store = tandem::api::open_state(&p.state).unwrap();
    let pair = tandem::api::adhoc_pair(&p.left, &p.right).unwrap();
    let l = Sabotaged {
        s: left,
        inner: LocalSide::new(&pair.left),
    };
    let r = LocalSide::new(&pair.right);
    tandem::api::sync_with(&mut store, &pair, &l, &r, &tandem::api::SyncRequest::default()).unwrap()
}

/// The outcome of the copy of `rel` in a report.
fn copy_outcome(rep: &tandem::api::SyncReport, rel: &str) -> tandem::engine::exec::Outcome {
    rep.plan
        .actions
        .iter()
        .zip(&rep.outcomes)
        .find(|(a, _)| matches!(a, tandem::engine::plan::Action::Copy { path, .. } if path.as_str() == rel))
        .and_then(|(_, o)| o.clone())
        .unwrap_or_else(|| panic!("no executed copy of {rel} in {:?}", rep.plan.actions))
}

fn pattern(tag: &[u8], len: usize) -> Vec<u8> {
    tag.iter().copied().cycle().take(len).collect()
}

#[test]
fn source_rewritten_during_copy_with_same_size_and_mtime_is_discarded_not_torn() {
    const MB: usize = 1 << 20;
    let p = synced_pair(&[("big.bin", &pattern(b"v1..", MB))], 0);
    // The user saves v2 (another size, so no hash is needed and the copy is the first read).
    p.write_at(Left, "big.bin", &pattern(b"v2..", MB + 4), T1);
    let target = canon(&p.left).join("big.bin");
    let t2 = target.clone();
    let fs = Saboteur {
        trigger: target,
        after_first_chunk: true,
        // ...and saves v3 while Tandem copies v2: same size, same mtime.
        action: Arc::new(move || {
            std::fs::write(&t2, pattern(b"v3..", MB + 4)).unwrap();
            std::fs::File::options()
                .write(true)
                .open(&t2)
                .unwrap()
                .set_modified(crate::common::at(T1))
                .unwrap();
        }),
        fired: AtomicBool::new(false),
    };
    let rep = sync_lib(&p, &fs);
    assert!(fs.fired.load(Ordering::SeqCst), "the sabotage never ran");
    let o = copy_outcome(&rep, "big.bin");
    assert!(
        matches!(o, tandem::engine::exec::Outcome::Deferred { .. }),
        "a copy whose source changed during the copy was not discarded: {o:?}"
    );
    assert_eq!(
        p.read(Right, "big.bin").unwrap(),
        pattern(b"v1..", MB),
        "the right version was replaced by a torn copy"
    );
    assert!(temp_files(&p.right).is_empty(), "{:?}", temp_files(&p.right));
    // The next run copies the version that is really there.
    sync_settled(&p);
    assert_eq!(p.read(Right, "big.bin").unwrap(), pattern(b"v3..", MB + 4));
    assert_eq!(p.trash(Right).get("big.bin"), Some(&pattern(b"v1..", MB)));
}

#[test]
fn source_deleted_during_copy_is_not_installed() {
    const MB: usize = 1 << 20;
    let p = synced_pair(&[("keep.txt", b"keep")], 0);
    p.write_at(Left, "vanish.bin", &pattern(b"here today", MB), T1);
    let target = canon(&p.left).join("vanish.bin");
    let t2 = target.clone();
    let fs = Saboteur {
        trigger: target,
        after_first_chunk: true,
        action: Arc::new(move || std::fs::remove_file(&t2).unwrap()),
        fired: AtomicBool::new(false),
    };
    let rep = sync_lib(&p, &fs);
    assert!(fs.fired.load(Ordering::SeqCst));
    let o = copy_outcome(&rep, "vanish.bin");
    assert!(
        !matches!(o, tandem::engine::exec::Outcome::Done { .. }),
        "a copy of a file deleted during the copy was installed"
    );
    assert!(!p.exists(Right, "vanish.bin"));
    assert!(temp_files(&p.right).is_empty(), "{:?}", temp_files(&p.right));
    sync_settled(&p);
    assert!(!p.exists(Left, "vanish.bin") && !p.exists(Right, "vanish.bin"));
    assert_eq!(p.read(Right, "keep.txt").unwrap(), b"keep");
}

#[test]
fn source_vanishing_before_copy_opens_it_loses_nothing_and_converges() {
    let p = synced_pair(&[("keep.txt", b"keep")], 0);
    p.write_at(Left, "vanish.txt", b"short lived", T1);
    p.write_at(Left, "stays.txt", b"stays", T1);
    let target = canon(&p.left).join("vanish.txt");
    let t2 = target.clone();
    let fs = Saboteur {
        trigger: target,
        after_first_chunk: false,
        action: Arc::new(move || std::fs::remove_file(&t2).unwrap()),
        fired: AtomicBool::new(false),
    };
    let rep = sync_lib(&p, &fs);
    assert!(fs.fired.load(Ordering::SeqCst));
    assert!(rep.exit_code() <= 1);
    assert!(!matches!(
        copy_outcome(&rep, "vanish.txt"),
        tandem::engine::exec::Outcome::Done { .. }
    ));
    assert_eq!(p.read(Right, "stays.txt").unwrap(), b"stays", "the rest was not synced");
    assert!(!p.exists(Right, "vanish.txt"));
    assert!(temp_files(&p.right).is_empty());
    sync_settled(&p);
}

/// A file the user deletes between the scan and its copy is a change, like one deleted
/// during the copy (which is deferred): skipped and re-planned, not a failed operation.
#[test]
fn source_deleted_just_before_its_copy_is_deferred_not_failed() {
    let p = synced_pair(&[("keep.txt", b"keep")], 0);
    p.write_at(Left, "vanish.txt", b"short lived", T1);
    let target = canon(&p.left).join("vanish.txt");
    let t2 = target.clone();
    let fs = Saboteur {
        trigger: target,
        after_first_chunk: false,
        action: Arc::new(move || std::fs::remove_file(&t2).unwrap()),
        fired: AtomicBool::new(false),
    };
    let rep = sync_lib(&p, &fs);
    assert!(fs.fired.load(Ordering::SeqCst));
    let o = copy_outcome(&rep, "vanish.txt");
    assert!(
        matches!(o, tandem::engine::exec::Outcome::Deferred { .. }),
        "a source deleted by the user is reported as {o:?}"
    );
    assert_eq!(rep.exit_code(), 0);
}

#[test]
fn target_edited_during_copy_is_not_overwritten() {
    const MB: usize = 1 << 20;
    let p = synced_pair(&[("shared.bin", &pattern(b"base", MB))], 0);
    p.write_at(Left, "shared.bin", &pattern(b"left edit", MB + 9), T1);
    let trigger = canon(&p.left).join("shared.bin");
    let right_file = canon(&p.right).join("shared.bin");
    let fs = Saboteur {
        trigger,
        after_first_chunk: true,
        // The user saves the right copy while Tandem copies the left one over it.
        action: Arc::new(move || {
            std::fs::write(&right_file, pattern(b"right edit", MB + 20)).unwrap();
            std::fs::File::options()
                .write(true)
                .open(&right_file)
                .unwrap()
                .set_modified(crate::common::at(T2))
                .unwrap();
        }),
        fired: AtomicBool::new(false),
    };
    let rep = sync_lib(&p, &fs);
    assert!(fs.fired.load(Ordering::SeqCst));
    assert!(
        !matches!(copy_outcome(&rep, "shared.bin"), tandem::engine::exec::Outcome::Done { .. }),
        "the right file changed after the plan but was overwritten"
    );
    assert_eq!(
        p.read(Right, "shared.bin").unwrap(),
        pattern(b"right edit", MB + 20),
        "the user's right edit was lost"
    );
    assert!(temp_files(&p.right).is_empty());
    // Next run: changed on both sides -> clash; both edits survive.
    sync_settled(&p);
    let clash = clash_name("shared.bin", T1, 1);
    assert_eq!(p.read(Left, "shared.bin").unwrap(), pattern(b"right edit", MB + 20));
    assert_eq!(p.read(Left, &clash), Some(pattern(b"left edit", MB + 9)));
}

#[test]
fn file_edited_after_the_plan_is_not_deleted() {
    let p = synced_pair(&[("a.txt", b"a"), ("y.txt", b"y base")], 4);
    remove(&p, Left, "y.txt");
    p.write_at(Left, "a.txt", b"a edited on the left", T1);
    let trigger = canon(&p.left).join("a.txt");
    let right_y = canon(&p.right).join("y.txt");
    let fs = Saboteur {
        trigger,
        after_first_chunk: false,
        // While Tandem copies a.txt, the user edits y.txt on the right, which the plan
        // deletes (R7) because the left deleted it.
        action: Arc::new(move || std::fs::write(&right_y, b"y edited on the right after the plan").unwrap()),
        fired: AtomicBool::new(false),
    };
    let rep = sync_lib(&p, &fs);
    assert!(fs.fired.load(Ordering::SeqCst));
    assert_eq!(
        p.read(Right, "y.txt").as_deref(),
        Some(&b"y edited on the right after the plan"[..]),
        "a file changed after the plan was deleted: {:?}",
        rep.outcomes
    );
    assert_eq!(p.read(Right, "a.txt").unwrap(), b"a edited on the left");
    // Next run: deleted on the left, changed on the right -> the change survives (R5).
    sync_settled(&p);
    assert_eq!(p.read(Left, "y.txt").unwrap(), b"y edited on the right after the plan");
}

#[test]
fn rewrite_keeping_size_and_mtime_is_still_seen() {
    let p = synced_pair(&[("a.txt", b"aaaa")], 0);
    p.write_at(Left, "a.txt", b"bbbb", T0);
    let (s, _) = sync_json(&p, &[], 0);
    assert_eq!(n(&s, "copied"), 1, "{s}");
    assert_eq!(p.read(Right, "a.txt").unwrap(), b"bbbb");
    assert_eq!(p.trash(Right).get("a.txt").map(Vec::as_slice), Some(&b"aaaa"[..]));
}

// Unix only: Windows lets only privileged users (or developer mode) make symbolic links.
#[cfg(unix)]
#[test]
fn symlink_loop_is_not_followed_reported_and_run_ok() {
    let p = Pair::new();
    p.write_at(Left, "a.txt", b"a", T1);
    p.write_at(Left, "sub/b.txt", b"b", T1);
    std::os::unix::fs::symlink(".", p.path(Left, "loop")).unwrap();
    std::os::unix::fs::symlink("..", p.path(Left, "sub/up")).unwrap();
    let o = p.sync(&[]);
    assert_exit(&o, 0);
    let out = stdout(&o) + &stderr(&o);
    assert!(
        out.contains("loop") && out.contains("sub/up") && out.contains("symbolic link"),
        "symbolic links not reported\n{}",
        show(&o)
    );
    assert_eq!(p.read(Right, "a.txt").unwrap(), b"a");
    assert_eq!(p.read(Right, "sub/b.txt").unwrap(), b"b");
    assert!(!p.exists(Right, "loop") && !p.exists(Right, "sub/up"), "a symbolic link was synced");
    assert_eq!(p.tree(Right).len(), 2);
    let o = p.sync(&[]);
    assert_exit(&o, 0);
    assert!(
        std::fs::symlink_metadata(p.path(Left, "loop")).unwrap().file_type().is_symlink(),
        "the link itself was touched"
    );
}

// Unix only: these names cannot be created on Windows at all (`:`, `?`, a device name, a trailing dot).
#[cfg(unix)]
const BAD_NAMES: [&str; 4] = ["a:b.txt", "CON.txt", "trailing.", "what?.doc"];

// Unix only: these names cannot be created on Windows at all (`:`, `?`, a device name, a trailing dot).
#[cfg(unix)]
fn portable_pair() -> (Pair, PathBuf) {
    let p = Pair::new();
    let cfg = config(&p, "portable_names = true");
    for b in BAD_NAMES {
        p.write_at(Left, b, b"bad name", T1);
    }
    p.write_at(Left, "fine.txt", b"fine", T1);
    (p, cfg)
}

// Unix only: these names cannot be created on Windows at all (`:`, `?`, a device name, a trailing dot).
#[cfg(unix)]
#[test]
fn portable_names_invalid_windows_names_are_skipped_and_every_run_exits_0() {
    let (p, cfg) = portable_pair();
    let o = sync_cfg(&p, &cfg, &[]);
    assert_exit(&o, 0);
    for b in BAD_NAMES {
        assert!(stdout(&o).contains(b) || stderr(&o).contains(b), "{b} not reported\n{}", show(&o));
        assert!(!p.exists(Right, b), "{b} was synced");
        assert!(p.exists(Left, b), "{b} was removed");
    }
    assert_eq!(p.read(Right, "fine.txt").unwrap(), b"fine");
    for _ in 0..2 {
        let (s, _) = sync_cfg_json(&p, &cfg, 0);
        assert_eq!(n(&s, "actions"), 0, "looping on unsyncable names: {s}");
    }
    assert_eq!(p.tree(Right).len(), 1);
}

// Unix only: these names cannot be created on Windows at all (`:`, `?`, a device name, a trailing dot).
#[cfg(unix)]
#[test]
fn portable_names_invalid_names_are_reported_only_on_the_first_run() {
    let (p, cfg) = portable_pair();
    let first = sync_cfg(&p, &cfg, &[]);
    assert_exit(&first, 0);
    let second = sync_cfg(&p, &cfg, &[]);
    assert_exit(&second, 0);
    for b in BAD_NAMES {
        assert!(
            stderr(&first).contains(b) || stdout(&first).contains(b),
            "{b} not reported\n{}",
            show(&first)
        );
        assert!(
            !stdout(&second).contains(b) && !stderr(&second).contains(b),
            "{b} reported again by the second run\n{}",
            show(&second)
        );
    }
    assert!(stdout(&second).contains("in sync"), "{}", show(&second));
}

// Unix only: two names differing only in case in one folder (Windows folders are case-insensitive).
#[cfg(unix)]
#[test]
fn portable_names_case_twins_and_long_paths_are_skipped() {
    let p = Pair::new();
    let cfg = config(&p, "portable_names = true");
    p.write_at(Left, "a.txt", b"lower", T1);
    p.write_at(Left, "A.txt", b"upper", T1);
    p.write_at(Left, "b.txt", b"left b", T1);
    p.write_at(Right, "B.txt", b"right B", T1);
    let long = format!("{}/{}.txt", "x".repeat(120), "y".repeat(130));
    p.write_at(Left, &long, b"deep", T1);
    p.write_at(Left, "ok.txt", b"ok", T1);
    let o = sync_cfg(&p, &cfg, &[]);
    assert_exit(&o, 0);
    assert_eq!(p.read(Right, "ok.txt").unwrap(), b"ok");
    for (side, f) in [
        (Right, "a.txt"),
        (Right, "A.txt"),
        (Right, "b.txt"),
        (Left, "B.txt"),
        (Right, long.as_str()),
    ] {
        assert!(!p.exists(side, f), "{f} was synced to the {side} side\n{}", show(&o));
    }
    for (side, f, content) in [
        (Left, "a.txt", &b"lower"[..]),
        (Left, "A.txt", b"upper"),
        (Left, "b.txt", b"left b"),
        (Right, "B.txt", b"right B"),
    ] {
        assert_eq!(p.read(side, f).unwrap(), content, "{side} {f} was touched");
    }
    let (s, _) = sync_cfg_json(&p, &cfg, 0);
    assert_eq!(n(&s, "actions"), 0, "{s}");
}

#[test]
fn conflicts_resolve_rejects_paths_leaving_the_root_with_exit_2() {
    let (p, cfg) = manual_r1_conflict();
    let outside = p.dir.path().join("x");
    std::fs::write(&outside, b"outside the pair").unwrap();
    let before = snapshot(&p);
    for bad in ["../x", "a/../../x", "/etc/passwd", "../left/a.txt"] {
        let o = resolve(&p, &cfg, bad, "left");
        assert_exit(&o, 2);
        let err = stderr(&o);
        assert!(
            err.starts_with("tandem: ") && err.contains(bad),
            "unclear error for {bad:?}\n{}",
            show(&o)
        );
    }
    assert_eq!(std::fs::read(&outside).unwrap(), b"outside the pair");
    assert_eq!(snapshot(&p), before, "a refused resolve changed files");
    assert_eq!(open_conflicts(&p).len(), 1);
}

/// Broken configs: (text inside the pair table, the key the message must name).
const BAD_CONFIGS: [(&str, Option<&str>); 4] = [
    ("max_delete_percent = 150", Some("pair[0].max_delete_percent")),
    ("[pair.conflicts]\nr1 = \"sometimes\"", Some("pair[0].conflicts.r1")),
    ("colour = \"blue\"", Some("pair[0].colour")),
    ("concurrency = [", None),
];

fn assert_config_error(o: &Output, cfg: &Path, key: Option<&str>) {
    assert_exit(o, 2);
    let err = stderr(o);
    assert!(
        err.contains(cfg.to_str().unwrap()),
        "the message does not name the file\n{}",
        show(o)
    );
    if let Some(key) = key {
        assert!(err.contains(key), "the message does not name {key}\n{}", show(o));
    }
}

#[test]
fn sync_with_corrupt_config_exits_2_naming_the_file_and_the_key() {
    let p = Pair::new();
    p.write_at(Left, "a.txt", b"must not be synced", T1);
    for (body, key) in BAD_CONFIGS {
        let cfg = config(&p, body);
        assert_config_error(&sync_cfg(&p, &cfg, &[]), &cfg, key);
    }
    assert!(!p.exists(Right, "a.txt"), "a sync ran with a broken config");
    let good = config(&p, "");
    assert_exit(&sync_cfg(&p, &good, &[]), 0);
    assert!(p.exists(Right, "a.txt"));
}

#[test]
fn check_config_with_corrupt_config_exits_2_naming_the_file_and_the_key() {
    let p = Pair::new();
    for (body, key) in BAD_CONFIGS {
        let cfg = config(&p, body);
        assert_config_error(&p.tandem(&["check-config", cfg.to_str().unwrap()]), &cfg, key);
    }
    let good = config(&p, "");
    assert_exit(&p.tandem(&["check-config", good.to_str().unwrap()]), 0);
}

#[test]
fn conflicts_resolve_with_corrupt_config_exits_2_and_changes_nothing() {
    let (p, _) = manual_r1_conflict();
    let before = snapshot(&p);
    let (body, key) = BAD_CONFIGS[0];
    let cfg = config(&p, body);
    assert_config_error(&resolve(&p, &cfg, "a.txt", "left"), &cfg, key);
    assert_eq!(snapshot(&p), before);
    assert_eq!(open_conflicts(&p).len(), 1);
}

#[test]
fn conflicts_resolve_without_config_does_not_apply_default_rules_to_the_rest_of_the_pair() {
    let p = Pair::new();
    p.write_at(Left, "a.txt", b"a", T0);
    p.write_at(Left, "b.txt", b"b", T0);
    let cfg = config(&p, "ignore = [\"*.bak\"]\n[pair.conflicts]\nr1 = \"manual\"");
    assert_exit(&sync_cfg(&p, &cfg, &[]), 0);
    for f in ["a.txt", "b.txt"] {
        p.write_at(Left, f, format!("{f} left").as_bytes(), T1);
        p.write_at(Right, f, format!("{f} right, newer").as_bytes(), T2);
    }
    p.write_at(Left, "private.bak", b"ignored by the config", T1);
    assert_exit(&sync_cfg(&p, &cfg, &[]), 0);
    assert_eq!(open_conflicts(&p).len(), 2);
    // The user resolves one conflict as the CLI contract shows it: no --config.
    let o = p.tandem(&["conflicts", "resolve", "a.txt", "--keep", "left", "--state", state_arg(&p)]);
    assert_exit(&o, 0);
    assert_eq!(p.read(Right, "a.txt").unwrap(), b"a.txt left");
    assert_eq!(
        p.read(Left, "b.txt").unwrap(),
        b"b.txt left",
        "the other manual conflict was decided by default rules\n{}",
        show(&o)
    );
    assert_eq!(p.read(Right, "b.txt").unwrap(), b"b.txt right, newer");
    assert!(
        clash_files(&p.tree(Left)).is_empty() && clash_files(&p.tree(Right)).is_empty(),
        "{}",
        show(&o)
    );
    assert_eq!(open_conflicts(&p), vec![("b.txt".to_string(), "R1".to_string())]);
    assert!(
        !p.exists(Right, "private.bak"),
        "a file the config ignores was synced by the resolve\n{}",
        show(&o)
    );
}

#[test]
fn corrupt_state_file_exits_2_naming_it_and_changes_nothing() {
    let p = synced_pair(&[("a.txt", b"a"), ("b.txt", b"b")], 0);
    p.write_at(Left, "a.txt", b"a edited", T1);
    p.write_at(Left, "new.txt", b"new", T1);
    remove(&p, Right, "b.txt");
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let garbage: Vec<u8> = (0..16384)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(&p.state, &garbage).unwrap();
    let before = snapshot(&p);
    let o = p.sync(&[]);
    assert_exit(&o, 2);
    assert!(
        stderr(&o).contains(p.state.to_str().unwrap()),
        "the message does not name the state file\n{}",
        show(&o)
    );
    assert!(stderr(&o).contains("damaged"), "{}", show(&o));
    assert_eq!(snapshot(&p), before, "files changed with a corrupt state file");
    assert_eq!(std::fs::read(&p.state).unwrap(), garbage, "the corrupt state file was modified");
    for cmd in [&["history", "--json"][..], &["status"][..], &["conflicts", "list"][..]] {
        let mut args = cmd.to_vec();
        args.extend(["--state", state_arg(&p)]);
        assert_exit(&p.tandem(&args), 2);
    }
}

#[test]
fn state_file_with_a_path_escaping_the_root_is_refused() {
    let p = synced_pair(&[("a.txt", b"a"), ("b.txt", b"b")], 0);
    let outside = p.dir.path().join("escape.txt");
    std::fs::write(&outside, b"outside the pair").unwrap();
    {
        let db = rusqlite::Connection::open(&p.state).unwrap();
        let n = db
            .execute("UPDATE base SET path = '../escape.txt' WHERE path = 'a.txt'", [])
            .unwrap();
        assert_eq!(n, 1);
    }
    remove(&p, Left, "b.txt");
    let before = snapshot(&p);
    let o = p.sync(&[]);
    assert_exit(&o, 2);
    assert!(stderr(&o).contains(p.state.to_str().unwrap()), "{}", show(&o));
    assert_eq!(std::fs::read(&outside).unwrap(), b"outside the pair");
    assert_eq!(snapshot(&p), before, "files changed with a tampered state file");
}

// ------------------------------------------------------------------ CLI contract

#[test]
fn dry_run_changes_no_file() {
    let p = synced_pair(&[("a.txt", b"a"), ("b.txt", b"b"), ("c.txt", b"c")], 2);
    p.write_at(Left, "a.txt", b"a edited", T1);
    p.write_at(Right, "new.txt", b"new", T1);
    remove(&p, Left, "b.txt");
    rename(&p, Right, "c.txt", "c-renamed.txt");
    let before = snapshot(&p);
    let history = stdout(&p.tandem(&["history", "--json", "--state", state_arg(&p)]));
    let o = p.sync(&["--dry-run"]);
    assert_exit(&o, 0);
    assert!(stdout(&o).contains("dry run"), "{}", show(&o));
    assert_eq!(snapshot(&p), before, "--dry-run changed files");
    assert_eq!(
        stdout(&p.tandem(&["history", "--json", "--state", state_arg(&p)])),
        history,
        "--dry-run recorded a run"
    );
    let (s, _) = sync_json(&p, &["--dry-run"], 0);
    assert_eq!(s["dry_run"], true);
    assert_eq!(n(&s, "actions"), 4, "{s}");
    assert_eq!(snapshot(&p), before);
    // The real run still has all the work to do.
    let (s, _) = sync_json(&p, &[], 0);
    assert_eq!(n(&s, "actions"), 4, "{s}");
}

#[test]
fn dry_run_creates_no_state_file() {
    let p = Pair::new();
    p.write_at(Left, "a.txt", b"a", T1);
    let o = p.sync(&["--dry-run"]);
    assert_exit(&o, 0);
    assert!(!p.exists(Right, "a.txt"));
    let leftovers: Vec<String> = std::fs::read_dir(p.dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("state.db"))
        .collect();
    assert!(leftovers.is_empty(), "--dry-run created state: {leftovers:?}");
}

#[test]
fn json_output_is_one_object_per_line_ending_with_summary() {
    let p = Pair::new();
    p.write_at(Left, "d/a.txt", b"aaa", T1);
    p.write_at(Right, "b.txt", b"bb", T1);
    let o = p.sync(&["--json"]);
    assert_exit(&o, 0);
    let lines = json_lines(&o);
    assert_eq!(lines.len(), stdout(&o).lines().count(), "blank or extra lines");
    let (last, actions) = lines.split_last().unwrap();
    let s = &last["summary"];
    for key in [
        "pair",
        "run",
        "status",
        "actions",
        "copied",
        "renamed",
        "deleted",
        "trashed",
        "conflicts",
        "failed",
        "bytes",
        "exit",
    ] {
        assert!(s.get(key).is_some(), "summary lacks {key}: {s}");
    }
    for a in actions {
        assert!(
            a.is_object() && a.get("op").is_some() && a.get("path").is_some(),
            "not an action: {a}"
        );
        assert!(a.get("summary").is_none(), "summary before the end");
    }
    let copies: Vec<&Value> = actions
        .iter()
        .filter(|a| a["op"] == "copy" && a["outcome"]["status"] == "done")
        .collect();
    assert_eq!(copies.len() as u64, n(s, "copied"));
    assert_eq!(n(s, "copied"), 2);
    assert_eq!(n(s, "bytes"), 5);
    assert_eq!(s["status"], "ok");
    assert_eq!(n(s, "exit"), 0);
}

#[test]
fn second_sync_right_after_a_successful_one_is_in_sync_and_copies_nothing() {
    let p = Pair::new();
    for i in 0..20 {
        p.write_at(
            if i % 2 == 0 { Left } else { Right },
            &format!("d{}/f{i}.txt", i % 3),
            format!("file {i}").as_bytes(),
            T0 + i,
        );
    }
    p.write_at(Left, "same.txt", b"same", T1);
    p.write_at(Right, "same.txt", b"same", T2);
    p.sync_ok();
    let o = p.sync(&[]);
    assert_exit(&o, 0);
    assert!(stdout(&o).contains("in sync"), "{}", show(&o));
    let (s, lines) = sync_json(&p, &[], 0);
    assert_eq!(n(&s, "actions"), 0, "{s}");
    assert_eq!(n(&s, "copied"), 0, "{s}");
    assert_eq!(n(&s, "bytes"), 0, "{s}");
    assert!(lines.is_empty(), "{lines:?}");
}

#[test]
fn history_csv_and_json_parse() {
    let p = Pair::new();
    p.write_at(Left, "a.txt", b"12345", T1);
    p.sync_ok();
    p.sync_ok();
    p.write_at(Right, "b.txt", b"123", T1);
    p.sync_ok();
    let o = p.tandem(&["history", "--csv", "--state", state_arg(&p)]);
    assert_exit(&o, 0);
    let text = stdout(&o);
    let mut rows = text.lines();
    let header: Vec<&str> = rows.next().unwrap().split(',').collect();
    assert_eq!(header[0], "run");
    for col in ["pair", "status", "copied", "bytes", "failed"] {
        assert!(header.contains(&col), "no {col} column: {header:?}");
    }
    let rows: Vec<Vec<&str>> = rows.map(|r| r.split(',').collect()).collect();
    assert_eq!(rows.len(), 3, "{text}");
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    for r in &rows {
        assert_eq!(r.len(), header.len(), "ragged row {r:?}");
        assert_eq!(r[col("status")], "ok");
        r[col("run")].parse::<u64>().unwrap();
    }
    let copied: u64 = rows.iter().map(|r| r[col("copied")].parse::<u64>().unwrap()).sum();
    let bytes: u64 = rows.iter().map(|r| r[col("bytes")].parse::<u64>().unwrap()).sum();
    assert_eq!((copied, bytes), (2, 8));
    let o = p.tandem(&["history", "--json", "--state", state_arg(&p)]);
    assert_exit(&o, 0);
    let runs = json_lines(&o);
    assert_eq!(runs.len(), 3);
    let ids: Vec<u64> = runs.iter().map(|r| n(r, "id")).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "not newest first: {ids:?}");
    assert_eq!(runs.iter().map(|r| n(&r["counts"], "copied")).sum::<u64>(), 2);
}

#[test]
fn leftover_temporary_files_are_removed_by_the_next_run_and_never_synced() {
    let p = Pair::new();
    p.write_at(Left, "a.txt", b"a", T1);
    p.write_at(Left, ".tandem-x.tmp", b"half a copy", T1);
    p.write_at(Left, "sub/.tandem-123-4.tmp", b"another half", T1);
    p.write_at(Right, ".tandem-y.tmp", b"right half", T1);
    let o = p.sync(&[]);
    assert_exit(&o, 0);
    assert!(
        temp_files(&p.left).is_empty() && temp_files(&p.right).is_empty(),
        "left {:?} right {:?}",
        temp_files(&p.left),
        temp_files(&p.right)
    );
    assert_eq!(p.read(Right, "a.txt").unwrap(), b"a");
    sync_settled(&p);
}

#[test]
fn default_ignores_are_not_synced() {
    let p = Pair::new();
    for name in [
        "~$Budget.xlsx",
        "x.tmp",
        "notes.txt~",
        ".DS_Store",
        "Thumbs.db",
        "desktop.ini",
        "a.swp",
    ] {
        p.write_at(Left, name, b"junk", T1);
    }
    p.write_at(Left, "real.txt", b"real", T1);
    p.sync_ok();
    assert_eq!(p.tree(Right).keys().collect::<Vec<_>>(), vec!["real.txt"]);
}

#[test]
fn a_clash_copy_is_never_clashed_again_newer_wins() {
    let name = clash_name("n.txt", T0, 1);
    let p = synced_pair(&[(&name, b"clash base")], 0);
    p.write_at(Left, &name, b"left edit", T1);
    p.write_at(Right, &name, b"right edit, newer", T2);
    p.sync_ok();
    for side in [Left, Right] {
        assert_eq!(p.read(side, &name).unwrap(), b"right edit, newer");
        assert_eq!(
            clash_files(&p.tree(side)),
            vec![name.clone()],
            "{side}: a clash copy of a clash copy"
        );
    }
    assert_eq!(
        p.trash(Left).get(&name).map(Vec::as_slice),
        Some(&b"left edit"[..]),
        "the older edit is lost"
    );
}

#[test]
fn scan_summarizes_both_sides_without_changing_anything() {
    let p = Pair::new();
    p.write_at(Left, "same.txt", b"same", T0);
    p.write_at(Right, "same.txt", b"same", T0);
    p.write_at(Left, "diff.txt", b"left", T0);
    p.write_at(Right, "diff.txt", b"right!", T1);
    p.write_at(Left, "only-left.txt", b"l", T0);
    p.write_at(Right, "only-right.txt", b"r", T0);
    let before = snapshot(&p);
    let o = p.tandem(&["scan", p.left.to_str().unwrap(), p.right.to_str().unwrap(), "--json"]);
    assert_exit(&o, 0);
    let v: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!((n(&v, "files_left"), n(&v, "files_right")), (3, 3), "{v}");
    assert_eq!(
        (n(&v, "only_left"), n(&v, "only_right"), n(&v, "on_both"), n(&v, "differing")),
        (1, 1, 2, 1),
        "{v}"
    );
    assert_eq!(snapshot(&p), before);
}

#[test]
fn usage_errors_exit_2() {
    let p = Pair::new();
    let (l, r) = (p.left.to_str().unwrap(), p.right.to_str().unwrap());
    let inner = p.left.join("inner");
    std::fs::create_dir_all(&inner).unwrap();
    let cases: Vec<Vec<&str>> = vec![
        vec!["sync", l, "--state", state_arg(&p)],
        vec!["sync", l, inner.to_str().unwrap(), "--state", state_arg(&p)],
        vec!["sync", l, r, "--bogus"],
        vec!["conflicts", "resolve", "a.txt", "--keep", "sideways", "--state", state_arg(&p)],
    ];
    for args in cases {
        let o = p.tandem(&args);
        assert_exit(&o, 2);
        assert!(!stderr(&o).trim().is_empty(), "{args:?}: no message");
    }
}

// ------------------------------------------------------------------ regressions

/// `tandem status` while another process created a new state file failed with `table pairs
/// already exists`: both read schema version 0 and both ran the first migration. Several
/// processes (and threads) opening one fresh state file at once must all succeed, and the
/// schema must be there exactly once, at the newest version.
#[test]
fn regression_concurrent_first_open_of_a_state_file_creates_the_schema_once() {
    for round in 0..3 {
        let p = Pair::new();
        let state = p.dir.path().join(format!("fresh-{round}.db"));
        let procs: Vec<std::process::Child> = (0..6)
            .map(|_| {
                Command::new(env!("CARGO_BIN_EXE_tandem"))
                    .args(["--state", state.to_str().unwrap(), "status"])
                    .env("TANDEM_LOG", "warn")
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        // Threads of this process join in through the library, released together.
        let gate = Arc::new(std::sync::Barrier::new(4));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (gate, state) = (gate.clone(), state.clone());
                std::thread::spawn(move || {
                    gate.wait();
                    tandem::state::Store::open(&state).map(|_| ()).map_err(|e| e.to_string())
                })
            })
            .collect();
        for t in threads {
            t.join()
                .unwrap()
                .unwrap_or_else(|e| panic!("round {round}: a thread's open failed: {e}"));
        }
        for c in procs {
            let o = c.wait_with_output().unwrap();
            assert_exit(&o, 0);
            assert!(
                stdout(&o).contains("no pair has been synced with this state file"),
                "round {round}: {}",
                show(&o)
            );
        }
        // One schema, at the newest version, the same as a state file created alone.
        let schema = |path: &Path| -> (i64, Vec<(String, String)>) {
            let c = rusqlite::Connection::open(path).unwrap();
            let v = c.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
            let mut st = c
                .prepare("SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name")
                .unwrap();
            let objects = st
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap()
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            (v, objects)
        };
        let alone = p.dir.path().join("alone.db");
        tandem::state::Store::open(&alone).unwrap();
        let (version, objects) = schema(&state);
        assert!(version >= 3, "round {round}: schema version {version}");
        assert_eq!(
            (version, objects),
            schema(&alone),
            "round {round}: the schema differs from one created alone"
        );
    }
}

/// `tandem token` made a token for a state file no service runs for (silently, and for the
/// default state file when --state was not given). It prints the token of the running
/// service only; otherwise it says that none runs for that state file, fails, and creates
/// neither a token file nor a state file.
#[test]
fn regression_token_without_a_running_service_creates_no_token_and_names_the_state_file() {
    let p = Pair::new();
    let token_file = PathBuf::from(format!("{}.api-token", state_arg(&p)));
    let o = p.tandem(&["--state", state_arg(&p), "token"]);
    assert_exit(&o, 2);
    assert!(stdout(&o).is_empty(), "{}", show(&o));
    assert!(
        stderr(&o).contains(&format!("no Tandem service is running for {}", state_arg(&p))) && stderr(&o).contains("tandem run"),
        "{}",
        show(&o)
    );
    assert!(!token_file.exists(), "a token file was created: {}", token_file.display());
    assert!(!p.state.exists(), "a state file was created");
    // Without --state: the default state file (in the data folder), the same answer. Unix
    // only: the data folder is moved with XDG_DATA_HOME; Windows asks the shell for
    // %LOCALAPPDATA%, which a test cannot move.
    #[cfg(unix)]
    {
        let data = p.dir.path().join("data");
        let default_state = data.join("tandem").join("state.db");
        let o = Command::new(env!("CARGO_BIN_EXE_tandem"))
            .arg("token")
            .env("XDG_DATA_HOME", &data)
            .env("TANDEM_LOG", "warn")
            .output()
            .unwrap();
        assert_exit(&o, 2);
        assert!(
            stderr(&o).contains(&format!("no Tandem service is running for {}", default_state.display())),
            "{}",
            show(&o)
        );
        assert!(
            !PathBuf::from(format!("{}.api-token", default_state.display())).exists(),
            "a token file was created for the default state file"
        );
    }
    // A discovery file left by a service that died: still none running, still no token.
    std::fs::write(crate::common::discovery(&p.state), r#"{"pid":1,"url":"http://127.0.0.1:9"}"#).unwrap();
    let o = p.tandem(&["--state", state_arg(&p), "token"]);
    assert_exit(&o, 2);
    assert!(!token_file.exists(), "a token file was created: {}", token_file.display());
    // With the service running: its token, the one it accepts.
    let mut svc = crate::common::start_service(&p, &[p.left.to_str().unwrap(), p.right.to_str().unwrap()], &[]);
    let o = p.tandem(&["--state", state_arg(&p), "token"]);
    assert_exit(&o, 0);
    let issued = std::fs::read_to_string(&token_file).unwrap();
    assert_eq!(stdout(&o).trim(), issued.trim());
    assert_eq!(svc.stop(), Some(0));
    // Stopped: the token file stays, but there is no service to give it for.
    let o = p.tandem(&["--state", state_arg(&p), "token"]);
    assert_exit(&o, 2);
    assert!(stderr(&o).contains("no Tandem service is running for"), "{}", show(&o));
}

#[test]
fn regression_conflicts_resolve_could_not_settle_an_r13_conflict_on_a_double_case_rename() {
    if crate::common::skip_under_wine(crate::common::WINE_CASE_RENAME) {
        return;
    }
    for (keep, name) in [("left", "report.txt"), ("right", "REPORT.txt")] {
        let p = synced_pair(&[("Report.txt", b"report")], 0);
        let cfg = p.dir.path().join("tandem.toml");
        std::fs::write(
            &cfg,
            format!(
                "[[pair]]\nname = \"p\"\nleft = {:?}\nright = {:?}\n[conflicts]\nr13 = \"manual\"\n",
                p.left.to_str().unwrap(),
                p.right.to_str().unwrap()
            ),
        )
        .unwrap();
        rename(&p, Left, "Report.txt", "report.txt");
        rename(&p, Right, "Report.txt", "REPORT.txt");
        let s = state_arg(&p);
        let o = p.tandem(&["--state", s, "sync", "--config", cfg.to_str().unwrap()]);
        assert_exit(&o, 0);
        let o = p.tandem(&["--state", s, "conflicts", "list", "--json"]);
        assert!(stdout(&o).contains("R13"), "{}", show(&o));
        let o = p.tandem(&[
            "--state",
            s,
            "conflicts",
            "resolve",
            "report.txt",
            "--keep",
            keep,
            "--config",
            cfg.to_str().unwrap(),
        ]);
        assert_exit(&o, 0);
        for side in [Left, Right] {
            let names: Vec<String> = p.tree(side).into_keys().collect();
            assert_eq!(names, vec![name.to_string()], "{keep}: {side}");
        }
        let o = p.tandem(&["--state", s, "conflicts", "list", "--json"]);
        assert!(!stdout(&o).contains("R13"), "the conflict is closed: {}", show(&o));
        let o = p.tandem(&["--state", s, "sync", "--config", cfg.to_str().unwrap(), "--dry-run", "--json"]);
        assert_eq!(json_lines(&o).len(), 1, "nothing left to do: {}", show(&o));
    }
}

// Unix only: two names differing only in case in one folder (Windows folders are case-insensitive).
#[cfg(unix)]
#[test]
fn regression_a_double_case_folder_rename_onto_a_name_a_new_file_holds_never_converged() {
    // Left renames d -> a, right renames d -> A and creates a file "a": the R13 winner
    // "a" is taken on the right, so the right's name wins (no rename onto the file,
    // deferred forever).
    let p = synced_pair(&[("d/e", b"e")], 0);
    rename(&p, Left, "d", "a");
    rename(&p, Right, "d", "A");
    p.write_at(Right, "a", b"new file", T1);
    sync_settled(&p);
    assert_eq!(p.read(Left, "A/e").unwrap(), b"e");
    assert_eq!(p.read(Left, "a").unwrap(), b"new file");
    assert_eq!(p.read(Right, "A/e").unwrap(), b"e");
}

// Unix only: two names differing only in case in one folder (Windows folders are case-insensitive).
#[cfg(unix)]
#[test]
fn regression_a_double_case_folder_rename_with_both_names_taken_failed_every_run() {
    // As above, and the left also has a new file "A": neither name is free, so the two
    // renames are ordinary renames meeting new files (clash copies), not a case rename
    // that renames one folder onto the other side's file.
    let p = synced_pair(&[("d/e", b"e")], 0);
    rename(&p, Left, "d", "a");
    rename(&p, Right, "d", "A");
    p.write_at(Right, "a", b"new right file", T1);
    p.write_at(Left, "A", b"new left file", T1);
    sync_settled(&p);
    for s in [Left, Right] {
        assert_eq!(p.read(s, "a/e").unwrap(), b"e");
        assert_eq!(p.read(s, "A/e").unwrap(), b"e");
    }
}
