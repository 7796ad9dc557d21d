//! The executor: applies a [`Plan`] to two replicas safely (SPEC §5). Phases in order:
//! renames, folders, copies (smallest first, on N workers, in batches that share one
//! flush), properties, deletes (files, then folders deepest first), bookkeeping.
//! Before every write the target and source are re-checked against what the plan saw;
//! copies go to a temporary name in the target folder, get their mtime, are flushed, then
//! renamed over the target; an overwritten or deleted version goes to the trash. Base
//! updates reach the [`Sink`] only once the batch that produced them is durable.
//! Must not touch: SQLite (it talks to a `Sink`), the planner's decisions, paths outside
//! the two roots.

use crate::engine::plan::{Action, Plan};
use crate::model::names::{TEMP_PREFIX, TEMP_SUFFIX, TRASH_DIR};
use crate::model::{BaseEntry, BaseUpdate, Entry, Hash, RelPath, Side, SideMeta};
use crate::side::{stat_entry, Caps, KeepVersion, Node, Replica};
use crate::state::{JournalRow, RunCounts};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

#[derive(Clone, Debug)]
pub struct ExecOptions {
    pub concurrency: usize,
    pub soft_delete_max_bytes: u64,
    /// `YYYY-MM-DD_HHMMSS` of this run: the trash folder name.
    pub trash_stamp: String,
    /// A copy batch closes after this many files, bytes or this much time.
    pub batch_files: usize,
    pub batch_bytes: u64,
    pub batch_time: std::time::Duration,
    /// Wall clock for journal rows (ns).
    pub now: i64,
    /// The host's hooks (progress, pause, bandwidth); none for a one-shot CLI run.
    pub hooks: Option<Hooks>,
}

/// What a running executor tells its host and asks of it (the continuous service uses it
/// for live progress, pause/stop and the bandwidth limit).
pub trait Observer: Send + Sync {
    /// Stop taking new work (pause, shutdown): a copy in progress is rolled back (its
    /// temporary file removed, the target untouched), the remaining actions are left undone.
    /// An operation on a user's file is never stopped half-way.
    fn should_stop(&self) -> bool {
        false
    }
    /// Called before `bytes` are written toward `to`; may block (bandwidth limit).
    fn throttle(&self, _to: Side, _bytes: u64) {}
    /// A copy moved on: `done` bytes of it are staged (0 when it starts).
    fn copy_progress(&self, _index: usize, _action: &Action, _done: u64) {}
    /// A copy's bytes are all written: it is being checked (the source unchanged, the
    /// upload visible) and put in place.
    fn verifying(&self, _index: usize, _action: &Action) {}
    /// An action's outcome is known (a copy's once it is in place).
    fn finished(&self, _index: usize, _action: &Action, _outcome: &Outcome) {}
}

#[derive(Clone)]
pub struct Hooks(pub std::sync::Arc<dyn Observer>);

impl std::fmt::Debug for Hooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hooks")
    }
}

impl Default for ExecOptions {
    fn default() -> Self {
        ExecOptions {
            concurrency: 4,
            soft_delete_max_bytes: 20 << 20,
            trash_stamp: "1970-01-01_000000".into(),
            batch_files: 1000,
            batch_bytes: 128 << 20,
            batch_time: std::time::Duration::from_millis(250),
            now: 0,
            hooks: None,
        }
    }
}

/// Where durable results go (the state store, or an in-memory base in tests).
pub trait Sink {
    fn commit(&mut self, updates: &[BaseUpdate], journal: &[JournalRow]) -> Result<(), String>;
}

/// What became of one action.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum Outcome {
    Done {
        bytes: u64,
    },
    /// Not done because something changed since the scan; the next run re-plans it.
    Deferred {
        reason: String,
    },
    Failed {
        error: String,
    },
}

#[derive(Debug, Default)]
pub struct ExecReport {
    /// Outcome of each action, by index in the plan.
    pub outcomes: Vec<Option<Outcome>>,
    pub counts: RunCounts,
    pub deferred: u64,
    /// Set when the sink failed: the run stopped there.
    pub fatal: Option<String>,
    /// Set when a copy failed for want of space on its target (the first such message).
    pub disk_full: Option<String>,
}

struct Exec<'a> {
    l: &'a dyn Replica,
    r: &'a dyn Replica,
    opts: &'a ExecOptions,
    /// Entries as they are after our own renames (their change time moved).
    fixes: Mutex<HashMap<(Side, RelPath), Entry>>,
    seq: AtomicUsize,
    /// This run's trash folder name (unique on both sides).
    trash_stamp: String,
    /// Folders known to exist (saves a failing mkdir and a stat per copied file).
    known_dirs: Mutex<std::collections::HashSet<(Side, RelPath)>>,
    pid: u32,
    /// Names of the temporary files this run created (in [`IN_FLIGHT`] until it ends).
    temps: Mutex<Vec<String>>,
    /// The first copy that failed for want of space.
    disk_full: Mutex<Option<String>>,
}

/// Temporary file names of the executors running in this process. Any other temporary file
/// is a leftover (of a process that died, or of a copy whose folder the user moved while
/// it was being written, taking the file along) and is removed by the next scan that sees it.
static IN_FLIGHT: Mutex<std::collections::BTreeSet<String>> = Mutex::new(std::collections::BTreeSet::new());

/// Whether a temporary file of this name belongs to a copy in progress in this process.
pub fn temp_in_flight(name: &str) -> bool {
    IN_FLIGHT.lock().unwrap().contains(name)
}

impl Drop for Exec<'_> {
    fn drop(&mut self) {
        let mut f = IN_FLIGHT.lock().unwrap();
        for t in self.temps.get_mut().unwrap().iter() {
            f.remove(t);
        }
    }
}

/// How a failure for want of space starts (the service reports it once, not per retry).
pub const DISK_FULL: &str = "disk full";

/// Which end of a copy an error came from.
#[derive(Clone, Copy)]
enum End {
    Read,
    Write,
}

fn is_disk_full(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::StorageFull || e.kind() == std::io::ErrorKind::QuotaExceeded
}

/// A write failed because the folder it wrote into is gone: the user moved or deleted it
/// during the run. Nothing is wrong with the file: the next run plans it again.
fn folder_gone(to: &dyn Replica, dir: &RelPath, e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::NotFound && !matches!(to.stat(dir), Ok(Some(Node::Entry(d))) if d.is_dir())
}

fn err_text(e: &std::io::Error) -> String {
    e.to_string()
}

impl<'a> Exec<'a> {
    fn rep(&self, s: Side) -> &'a dyn Replica {
        match s {
            Side::Left => self.l,
            Side::Right => self.r,
        }
    }

    /// Does what is on disk still match what the plan saw?
    fn matches(&self, side: Side, p: &RelPath, expect: Option<&Entry>, actual: Option<&Entry>) -> bool {
        match (expect, actual) {
            (None, None) => true,
            (Some(e), Some(a)) => {
                if e.same_meta(a) {
                    return true;
                }
                // A server's stamp is no change: the same size and version is the same entry.
                if self.rep(side).caps().server_mtimes() && e.kind == a.kind && e.size == a.size && e.version != 0 && e.version == a.version
                {
                    return true;
                }
                let fixes = self.fixes.lock().unwrap();
                fixes
                    .get(&(side, p.clone()))
                    .is_some_and(|f| f.same_meta(a) && f.size == e.size && f.mtime == e.mtime)
            }
            _ => false,
        }
    }

    /// A base the plan computed, with the side metadata of entries our own renames moved
    /// (a rename changes the change time the plan saw).
    fn refreshed(&self, p: &RelPath, mut b: BaseEntry) -> BaseEntry {
        let fixes = self.fixes.lock().unwrap();
        for s in Side::BOTH {
            if let Some(f) = fixes.get(&(s, p.clone())) {
                *b.side_mut(s) = SideMeta::of(f);
            }
        }
        b
    }

    fn journal(&self, a: &Action, o: &Outcome) -> JournalRow {
        let (status, bytes, detail) = match o {
            Outcome::Done { bytes } => ("done", *bytes, None),
            Outcome::Deferred { reason } => ("deferred", 0, Some(reason.clone())),
            Outcome::Failed { error } => ("failed", 0, Some(error.clone())),
        };
        let detail = match (a, detail) {
            (Action::Rename { from, .. } | Action::ClashRename { from, .. }, None) => Some(format!("from {from}")),
            (_, d) => d,
        };
        JournalRow {
            seq: self.seq.fetch_add(1, Ordering::SeqCst) as u32,
            at: self.opts.now,
            op: a.verb().to_string(),
            side: a.side(),
            path: a.path().to_string(),
            rule: a.rule().map(|r| r.name().to_string()),
            status: status.to_string(),
            bytes,
            detail,
        }
    }

    fn temp_path(&self, dir: &RelPath) -> RelPath {
        // One counter per process: executors running side by side (the service's lanes)
        // never pick the same name.
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let name = format!("{TEMP_PREFIX}{}-{n}{TEMP_SUFFIX}", self.pid);
        IN_FLIGHT.lock().unwrap().insert(name.clone());
        self.temps.lock().unwrap().push(name.clone());
        dir.join(&name).expect("a temporary file name is a valid name")
    }

    fn trash_path(&self, side: Side, p: &RelPath) -> RelPath {
        let rep = self.rep(side);
        let at = |s: String| RelPath::new(&s).expect("a trash path is a valid path");
        let base = at(format!("{TRASH_DIR}/{}/{p}", self.trash_stamp));
        if rep.stat(&base).ok().flatten().is_none() {
            return base;
        }
        (2..)
            .map(|n| at(format!("{base}.{n}")))
            .find(|c| rep.stat(c).ok().flatten().is_none())
            .unwrap()
    }

    /// Keep the version at `abs` in the trash (a second name, so the original stays in
    /// place until it is atomically replaced), as the side's capabilities allow: a link or
    /// a server-side copy, else a copy through Tandem.
    fn keep_in_trash(&self, side: Side, p: &RelPath, abs: &RelPath) -> std::io::Result<()> {
        let fs = self.rep(side);
        let dest = self.trash_path(side, p);
        fs.create_dir_all(&dest.dir())?;
        if matches!(fs.caps().keep_version, KeepVersion::HardLink | KeepVersion::ServerCopy) && fs.keep_copy(abs, &dest).is_ok() {
            return Ok(());
        }
        // No links here after all (FAT, some network drives): keep a copy instead.
        let mut r = fs.open_read(abs)?;
        let mut w = fs.create_new(&dest)?;
        std::io::copy(&mut r, &mut w)?;
        let (mtime, mode) = stat_entry(fs, abs)?.map(|e| (e.mtime, e.mode)).unwrap_or((0, 0));
        w.finish(mtime, mode)
    }

    /// Move the version at `abs` into this run's trash; returns where it went.
    fn move_to_trash(&self, side: Side, p: &RelPath, abs: &RelPath) -> std::io::Result<RelPath> {
        let fs = self.rep(side);
        let dest = self.trash_path(side, p);
        fs.create_dir_all(&dest.dir())?;
        fs.rename(abs, &dest)?;
        Ok(dest)
    }

    // ------------------------------------------------------------------ renames

    /// `mirror`: Some(refresh) when the rename mirrors the other side's (its base row moves;
    /// with `refresh`, it also takes this side's new observation); None for a clash rename.
    fn rename(&self, side: Side, from: &RelPath, to: &RelPath, expect: &Entry, mirror: Option<bool>, ups: &mut Vec<BaseUpdate>) -> Outcome {
        let rep = self.rep(side);
        let (fa, ta) = (from.clone(), to.clone());
        let cur = match stat_entry(rep, &fa) {
            Ok(c) => c,
            Err(e) => {
                return Outcome::Failed {
                    error: format!("{}: {}", rep.describe(&fa), err_text(&e)),
                }
            }
        };
        if !self.matches(side, from, Some(expect), cur.as_ref()) {
            return Outcome::Deferred {
                reason: format!("{} changed since the scan", rep.describe(&fa)),
            };
        }
        let case_only = from.to_lowercase_key() == to.to_lowercase_key();
        match stat_entry(rep, &ta) {
            Ok(None) => {}
            Ok(Some(t)) if case_only && t.file_id == expect.file_id => {}
            Ok(Some(_)) if case_only && rep.caps().case_insensitive => {}
            Ok(Some(_)) => {
                return Outcome::Deferred {
                    reason: format!("{} appeared since the scan", rep.describe(&ta)),
                }
            }
            Err(e) => {
                return Outcome::Failed {
                    error: format!("{}: {}", rep.describe(&ta), err_text(&e)),
                }
            }
        }
        let result = (|| -> std::io::Result<()> {
            if let Some(parent) = ta.parent() {
                rep.create_dir_all(&parent)?;
            }
            if case_only {
                // Through a temporary name: some file systems ignore a case-only rename.
                let tmp = self.temp_path(&ta.dir());
                rep.rename(&fa, &tmp)?;
                rep.rename(&tmp, &ta)
            } else {
                rep.rename(&fa, &ta)
            }
        })();
        if let Err(e) = result {
            return Outcome::Failed {
                error: format!("rename {} -> {}: {}", rep.describe(&fa), rep.describe(&ta), err_text(&e)),
            };
        }
        if let Ok(Some(now)) = stat_entry(rep, &ta) {
            self.fixes.lock().unwrap().insert((side, to.clone()), now);
            if let Some(refresh) = mirror {
                ups.push(BaseUpdate::Move {
                    from: from.clone(),
                    to: to.clone(),
                });
                if refresh {
                    ups.push(BaseUpdate::SetSide {
                        path: to.clone(),
                        side,
                        meta: SideMeta::of(&now),
                    });
                }
            }
        }
        Outcome::Done { bytes: 0 }
    }

    fn mkdir(&self, side: Side, p: &RelPath, ups: &mut Vec<BaseUpdate>) -> Outcome {
        let rep = self.rep(side);
        let abs = p.clone();
        if let Err(e) = rep.create_dir_all(&abs) {
            return Outcome::Failed {
                error: format!("create folder {}: {}", rep.describe(&abs), err_text(&e)),
            };
        }
        let other = self.rep(side.other());
        if let (Ok(Some(a)), Ok(Some(b))) = (stat_entry(rep, &abs), stat_entry(other, p)) {
            if a.is_dir() && b.is_dir() {
                let (l, r) = if side == Side::Left { (a, b) } else { (b, a) };
                ups.push(BaseUpdate::Set(p.clone(), BaseEntry::from_pair(&l, &r, None)));
            }
        }
        Outcome::Done { bytes: 0 }
    }

    // ------------------------------------------------------------------ copies

    /// Copy into a temporary file next to the target. Returns the staged copy.
    fn stopping(&self) -> bool {
        self.opts.hooks.as_ref().is_some_and(|h| h.0.should_stop())
    }

    fn stage(&self, k: usize, a: &Action) -> Result<Staged, Outcome> {
        let Action::Copy {
            side,
            path: p,
            src,
            dst,
            src_mode,
            ..
        } = a
        else {
            return Err(Outcome::Failed {
                error: format!("internal: {} is not a copy", a.path()),
            });
        };
        let (side, dst, src_mode) = (*side, dst.as_ref(), *src_mode);
        let (from, to) = (self.rep(side.other()), self.rep(side));
        let (sa, da) = (p.clone(), p.clone());
        let failed = |what: &str, on: &dyn Replica, path: &RelPath, e: std::io::Error| match e.kind() {
            // A file another program holds open without sharing it (Windows): not a
            // failure, the next run tries again.
            std::io::ErrorKind::ResourceBusy => Outcome::Deferred { reason: err_text(&e) },
            _ => Outcome::Failed {
                error: format!("{what} {}: {}", on.describe(path), err_text(&e)),
            },
        };
        let s0 = stat_entry(from, &sa).map_err(|e| failed("read", from, &sa, e))?;
        if !self.matches(side.other(), p, Some(src), s0.as_ref()) {
            return Err(Outcome::Deferred {
                reason: format!("{} changed since the scan", from.describe(&sa)),
            });
        }
        let mut s0 = s0.unwrap();
        // The target side's mode change, merged: the source takes it first (a property
        // change only; its content stays as planned).
        if let Some(m) = src_mode.filter(|m| *m != 0 && *m != s0.mode && s0.mode != 0) {
            from.set_mode(&sa, m).map_err(|e| failed("set mode of", from, &sa, e))?;
            match stat_entry(from, &sa) {
                Ok(Some(now)) if now.size == s0.size && now.mtime == s0.mtime => s0 = now,
                _ => {
                    return Err(Outcome::Deferred {
                        reason: format!("{} changed since the scan", from.describe(&sa)),
                    })
                }
            }
        }
        // A new file on a side whose uploads appear whole (S3) goes straight to its name:
        // `create_new` is "only if absent" there, so it is also the check that nothing
        // appeared since the scan (one request less per file than a stat first).
        let direct = dst.is_none() && to.caps().whole_uploads;
        if !direct {
            let d0 = stat_entry(to, &da).map_err(|e| failed("read", to, &da, e))?;
            if !self.matches(side, p, dst, d0.as_ref()) {
                return Err(Outcome::Deferred {
                    reason: format!("{} changed since the scan", to.describe(&da)),
                });
            }
        }
        let dir = da.dir();
        if !self.known_dirs.lock().unwrap().contains(&(side, dir.clone())) {
            to.create_dir_all(&dir).map_err(|e| failed("create folder", to, &dir, e))?;
            self.known_dirs.lock().unwrap().insert((side, dir.clone()));
        }
        let tmp = if direct { da.clone() } else { self.temp_path(&dir) };
        // Undo a failed or torn copy: a temporary file is ours; a direct upload that did
        // not finish left nothing, and one that finished is removed only while it is still
        // the size we wrote (not another client's file that replaced it).
        let undo = |written: Option<u64>| {
            if !direct {
                let _ = to.remove_file(&tmp);
            } else if let Some(n) = written {
                if stat_entry(to, &tmp).ok().flatten().is_some_and(|e| e.is_file() && e.size == n) {
                    let _ = to.remove_file(&tmp);
                }
            }
        };
        let hooks = self.opts.hooks.as_ref().map(|h| &h.0);
        if let Some(h) = hooks {
            h.copy_progress(k, a, 0);
        }
        settle_before_read(&from.caps(), s0.mtime);
        let stopped = std::sync::atomic::AtomicBool::new(false);
        let appeared = std::sync::atomic::AtomicBool::new(false);
        // An error says which end failed: reading the source or writing the destination.
        let copied = (|| -> Result<(Hash, u64), (End, std::io::Error)> {
            let mut r = from.open_read(&sa).map_err(|e| (End::Read, e))?;
            let mut w = match to.create_new(&tmp) {
                Err(e) if direct && e.kind() == std::io::ErrorKind::AlreadyExists => {
                    appeared.store(true, Ordering::SeqCst);
                    return Err((End::Write, e));
                }
                w => w.map_err(|e| (End::Write, e))?,
            };
            let mut h = blake3::Hasher::new();
            let mut buf = vec![0u8; 256 * 1024];
            let mut n = 0u64;
            loop {
                if let Some(hk) = hooks {
                    if hk.should_stop() {
                        stopped.store(true, Ordering::SeqCst);
                        return Err((End::Read, std::io::Error::other("stopped")));
                    }
                }
                let m = r.read(&mut buf).map_err(|e| (End::Read, e))?;
                if m == 0 {
                    break;
                }
                if let Some(hk) = hooks {
                    hk.throttle(side, m as u64);
                }
                h.update(&buf[..m]);
                w.write_all(&buf[..m]).map_err(|e| (End::Write, e))?;
                n += m as u64;
                if let Some(hk) = hooks {
                    hk.copy_progress(k, a, n);
                }
            }
            w.finish(s0.mtime, s0.mode).map_err(|e| (End::Write, e))?;
            Ok((*h.finalize().as_bytes(), n))
        })();
        let (hash, bytes) = match copied {
            Ok(x) => x,
            Err(_) if stopped.load(Ordering::SeqCst) => {
                undo(None);
                return Err(Outcome::Deferred {
                    reason: "stopped before the copy finished (pause or shutdown); rolled back".into(),
                });
            }
            Err(_) if appeared.load(Ordering::SeqCst) => {
                return Err(Outcome::Deferred {
                    reason: format!("{} changed since the scan", to.describe(&da)),
                });
            }
            Err((end, e)) => {
                undo(None);
                // Gone or changed since the scan (deleted by the user a moment ago): the next
                // run re-plans it. Otherwise it is a real read failure.
                if !stat_entry(from, &sa).ok().flatten().is_some_and(|now| now.same_meta(&s0)) {
                    return Err(Outcome::Deferred {
                        reason: format!("{} changed during the copy", from.describe(&sa)),
                    });
                }
                if folder_gone(to, &dir, &e) {
                    self.known_dirs.lock().unwrap().remove(&(side, dir.clone()));
                    return Err(Outcome::Deferred {
                        reason: format!("folder {} was moved or deleted during the copy", to.describe(&dir)),
                    });
                }
                if is_disk_full(&e) {
                    let error = format!(
                        "{DISK_FULL} on the {side} side: cannot write {}: {}",
                        to.describe(&da),
                        err_text(&e)
                    );
                    self.disk_full.lock().unwrap().get_or_insert_with(|| error.clone());
                    return Err(Outcome::Failed { error });
                }
                return Err(match end {
                    End::Read => failed("read", from, &sa, e),
                    End::Write => failed("write", to, &da, e),
                });
            }
        };
        if let Some(h) = hooks {
            h.verifying(k, a);
        }
        // A source that changed while we read it gave a torn copy: discard it.
        let s1 = stat_entry(from, &sa).ok().flatten();
        if bytes != s0.size || !s1.is_some_and(|s1| s1.same_meta(&s0)) {
            undo(Some(bytes));
            return Err(Outcome::Deferred {
                reason: format!("{} changed during the copy", from.describe(&sa)),
            });
        }
        // A direct upload is in place already: its entry is taken here, by the worker that
        // uploaded it, not one by one while the batch installs.
        let landed = if direct { stat_entry(to, &da).ok().flatten() } else { None };
        Ok(Staged {
            side,
            tmp,
            direct,
            landed,
            src: s0,
            hash,
            bytes,
        })
    }

    /// Put a durable staged copy in place.
    fn install(&self, side: Side, p: &RelPath, dst: Option<&Entry>, st: &Staged, ups: &mut Vec<BaseUpdate>) -> Outcome {
        let to = self.rep(side);
        let da = p.clone();
        if st.direct {
            return self.record(side, p, st, st.landed, ups);
        }
        let discard = |o: Outcome| {
            let _ = to.remove_file(&st.tmp);
            o
        };
        let d1 = match stat_entry(to, &da) {
            Ok(d) => d,
            Err(e) => {
                return discard(Outcome::Failed {
                    error: format!("{}: {}", to.describe(&da), err_text(&e)),
                })
            }
        };
        if !self.matches(side, p, dst, d1.as_ref()) {
            return discard(Outcome::Deferred {
                reason: format!("{} changed since the scan", to.describe(&da)),
            });
        }
        // Where the old version went when the side has no atomic replace (to put it back
        // if the copy cannot move in).
        let mut aside = None;
        if let Some(old) = d1 {
            let keep = old.is_file() && old.size <= self.opts.soft_delete_max_bytes;
            // A side without atomic replace: the old version moves out of the way first (to
            // the trash; one too large to keep is moved aside and removed once the copy is
            // in), then the copy moves in.
            let res = match (to.caps().atomic_replace, keep) {
                (true, true) => self.keep_in_trash(side, p, &da),
                (true, false) => Ok(()),
                (false, _) => self.move_to_trash(side, p, &da).map(|dest| aside = Some((dest, keep))),
            };
            if let Err(e) = res {
                return discard(Outcome::Failed {
                    error: format!("keep old version of {} in the trash: {}", to.describe(&da), err_text(&e)),
                });
            }
        }
        if let Err(e) = to.rename(&st.tmp, &da) {
            if let Some((dest, _)) = &aside {
                // The old version goes back where it was: nothing changed.
                if let Err(back) = to.rename(dest, &da) {
                    tracing::error!(path = %to.describe(&da), kept = %to.describe(dest), "cannot put the old version back: {back}");
                }
            }
            let dir = da.dir();
            if folder_gone(to, &dir, &e) {
                // The temporary file went wherever its folder went; the scan that sees it
                // there removes it (it is no longer in flight).
                return discard(Outcome::Deferred {
                    reason: format!("folder {} was moved or deleted during the copy", to.describe(&dir)),
                });
            }
            return discard(Outcome::Failed {
                error: format!("rename into place {}: {}", to.describe(&da), err_text(&e)),
            });
        }
        if let Some((dest, false)) = &aside {
            // Too large for the trash (`soft_delete_max_bytes`): as on a side with atomic
            // replace, the overwritten version is not kept.
            if let Err(e) = to.remove_file(dest) {
                tracing::warn!(path = %to.describe(dest), "cannot remove the overwritten version: {e}");
            }
        }
        self.record_copy(side, p, st, ups)
    }

    /// A copy is in place: the base takes both sides as they are now.
    fn record_copy(&self, side: Side, p: &RelPath, st: &Staged, ups: &mut Vec<BaseUpdate>) -> Outcome {
        let now = stat_entry(self.rep(side), p).ok().flatten();
        self.record(side, p, st, now, ups)
    }

    /// Record a copy whose target side now shows `now`.
    fn record(&self, side: Side, p: &RelPath, st: &Staged, now: Option<Entry>, ups: &mut Vec<BaseUpdate>) -> Outcome {
        match now {
            Some(now) => {
                let now = kept_mode(now, st.src.mode);
                let (l, r) = if side == Side::Left { (now, st.src) } else { (st.src, now) };
                let mut b = BaseEntry::from_pair(&l, &r, Some(st.hash));
                b.size = st.bytes;
                ups.push(BaseUpdate::Set(p.clone(), b));
            }
            _ => {
                // Written but not visible: leave the base alone; the next run re-checks.
            }
        }
        Outcome::Done { bytes: st.bytes }
    }

    // ------------------------------------------------------------------ properties

    fn set_props(&self, side: Side, p: &RelPath, src: &Entry, expect: &Entry, mode_only: bool, ups: &mut Vec<BaseUpdate>) -> Outcome {
        let rep = self.rep(side);
        let abs = p.clone();
        let cur = stat_entry(rep, &abs).ok().flatten();
        if !self.matches(side, p, Some(expect), cur.as_ref()) {
            return Outcome::Deferred {
                reason: format!("{} changed since the scan", rep.describe(&abs)),
            };
        }
        let cur = cur.unwrap();
        let res = (|| -> std::io::Result<()> {
            if src.mode != 0 && cur.mode != 0 && src.mode != cur.mode {
                rep.set_mode(&abs, src.mode)?;
            }
            // A side that keeps its own times (a cloud mount, an S3 bucket) is recorded as
            // it is: the base keeps each side's own mtime, so it does not look changed.
            if src.mtime != cur.mtime && !mode_only && rep.caps().set_mtime {
                match rep.set_mtime(&abs, src.mtime) {
                    Err(e) if e.kind() == std::io::ErrorKind::Unsupported => {}
                    r => r?,
                }
            }
            Ok(())
        })();
        if let Err(e) = res {
            return Outcome::Failed {
                error: format!("set properties of {}: {}", rep.describe(&abs), err_text(&e)),
            };
        }
        if let Ok(Some(now)) = stat_entry(rep, &abs) {
            let now = if cur.mode != 0 { kept_mode(now, src.mode) } else { now };
            let (l, r) = if side == Side::Left { (now, *src) } else { (*src, now) };
            ups.push(BaseUpdate::Set(p.clone(), BaseEntry::from_pair(&l, &r, src.hash.or(expect.hash))));
        }
        Outcome::Done { bytes: 0 }
    }

    // ------------------------------------------------------------------ deletes

    fn delete(&self, side: Side, p: &RelPath, expect: &Entry, soft: bool, ups: &mut Vec<BaseUpdate>) -> Outcome {
        let rep = self.rep(side);
        let abs = p.clone();
        let cur = match stat_entry(rep, &abs) {
            Ok(c) => c,
            Err(e) => {
                return Outcome::Failed {
                    error: format!("{}: {}", rep.describe(&abs), err_text(&e)),
                }
            }
        };
        if cur.is_none() {
            ups.push(BaseUpdate::Remove(p.clone()));
            return Outcome::Done { bytes: 0 };
        }
        if !self.matches(side, p, Some(expect), cur.as_ref()) {
            return Outcome::Deferred {
                reason: format!("{} changed since the scan", rep.describe(&abs)),
            };
        }
        let res = if expect.is_dir() {
            self.remove_dir(side, p, &abs)
        } else if soft {
            self.move_to_trash(side, p, &abs).map(|_| ())
        } else {
            rep.remove_file(&abs)
        };
        match res {
            Ok(()) => {
                ups.push(BaseUpdate::Remove(p.clone()));
                Outcome::Done { bytes: 0 }
            }
            Err(e) if expect.is_dir() => Outcome::Deferred {
                reason: format!("folder {} kept: {}", rep.describe(&abs), err_text(&e)),
            },
            Err(e) => Outcome::Failed {
                error: format!("delete {}: {}", rep.describe(&abs), err_text(&e)),
            },
        }
    }

    /// Remove an empty folder; system clutter that the ignore list hides (Thumbs.db,
    /// .DS_Store, desktop.ini) goes to the trash first. Anything else keeps the folder.
    fn remove_dir(&self, side: Side, p: &RelPath, abs: &RelPath) -> std::io::Result<()> {
        let fs = self.rep(side);
        if fs.remove_dir(abs).is_ok() {
            return Ok(());
        }
        let items = fs.read_dir(abs)?;
        let junk = |n: &str| matches!(n.to_ascii_lowercase().as_str(), "thumbs.db" | ".ds_store" | "desktop.ini");
        let names: Vec<String> = items.into_iter().filter_map(|i| i.name.ok()).collect();
        if let Some(other) = names.iter().find(|n| !junk(n)) {
            return Err(std::io::Error::other(format!("it still holds {other:?}")));
        }
        for n in names {
            let child = p.join(&n).map_err(std::io::Error::other)?;
            self.move_to_trash(side, &child, &child)?;
        }
        fs.remove_dir(abs)
    }
}

/// `now` as the base should record it after a write that gave it mode `wanted`: a side
/// that did not keep the mode (a FAT, SMB or FUSE cloud mount with fixed permissions) is
/// recorded with mode 0, "does not keep modes", so its fixed mode is never taken for a
/// change nor aligned again and again.
fn kept_mode(now: Entry, wanted: u32) -> Entry {
    if wanted != 0 && now.mode != wanted {
        Entry { mode: 0, ..now }
    } else {
        now
    }
}

struct Staged {
    side: Side,
    /// Where the copy was written: a temporary name, or the path itself (`direct`).
    tmp: RelPath,
    /// Written at its own name (a new file on a side with whole uploads): nothing to
    /// rename, nothing that was there to keep.
    direct: bool,
    /// A direct upload's entry as the side showed it just after the upload (`None`: not
    /// visible yet, or not a direct upload).
    landed: Option<Entry>,
    src: Entry,
    hash: Hash,
    bytes: u64,
}

/// On a racy side (`Caps::racy`), wait until the file's mtime step is over before its
/// content is read: what is read then is what that mtime (and the same size) stands for,
/// as any later rewrite gets a later mtime. Without it, a rewrite of the same size in the
/// same second as the read would never be seen. At most one step (and a small margin for
/// the server's clock); an mtime further ahead is not waited for.
pub(crate) fn settle_before_read(caps: &Caps, mtime_ns: i64) {
    const MARGIN_NS: i64 = 20_000_000;
    if !caps.racy() {
        return;
    }
    let step = caps.mtime_resolution_ns;
    let end = mtime_ns.div_euclid(step).saturating_add(1).saturating_mul(step);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64);
    let wait = end - now;
    if wait > 0 && wait <= step {
        std::thread::sleep(std::time::Duration::from_nanos((wait + MARGIN_NS) as u64));
    }
}

/// Apply `plan` (which must have no hash requests) to the two replicas.
pub fn execute(plan: &Plan, l: &dyn Replica, r: &dyn Replica, opts: &ExecOptions, sink: &mut dyn Sink) -> ExecReport {
    assert!(plan.hash_requests.is_empty(), "a plan with open hash requests is provisional");
    // Each run gets a trash folder of its own, even when two runs start in the same second.
    let taken = |stamp: &str| {
        let dir = RelPath::new(&format!("{TRASH_DIR}/{stamp}")).expect("a trash folder name is a valid path");
        [l, r].iter().any(|x| x.stat(&dir).ok().flatten().is_some())
    };
    let trash_stamp = std::iter::once(opts.trash_stamp.clone())
        .chain((2..).map(|n| format!("{}-{n}", opts.trash_stamp)))
        .find(|s| !taken(s))
        .expect("an unused trash folder name");
    let ex = Exec {
        l,
        r,
        opts,
        fixes: Mutex::new(HashMap::new()),
        seq: AtomicUsize::new(0),
        trash_stamp,
        known_dirs: Mutex::new(std::collections::HashSet::new()),
        pid: std::process::id(),
        temps: Mutex::new(Vec::new()),
        disk_full: Mutex::new(None),
    };
    let mut rep = ExecReport {
        outcomes: vec![None; plan.actions.len()],
        ..Default::default()
    };
    let acts = &plan.actions;
    let mut i = 0;
    // Renames, folders, properties and deletes need no flush of their own: they become
    // durable with the next flush (a copy batch's, or the final one), and their base
    // updates are committed only after it.
    let mut pending = Installed::default();
    while i < acts.len() && rep.fatal.is_none() {
        let phase = acts[i].phase();
        let end = (i..acts.len()).find(|&j| acts[j].phase() != phase).unwrap_or(acts.len());
        if phase == 2 {
            copy_phase(&ex, acts, i, end, &mut pending, &mut rep, sink);
        } else {
            let Installed { ups, rows, dirs } = &mut pending;
            for (k, a) in acts.iter().enumerate().take(end).skip(i) {
                if ex.stopping() {
                    break;
                }
                let o = match a {
                    Action::Rename {
                        side,
                        from,
                        to,
                        expect,
                        edited,
                        ..
                    } => ex.rename(*side, from, to, expect, Some(!*edited), ups),
                    Action::ClashRename {
                        side, from, to, expect, ..
                    } => ex.rename(*side, from, to, expect, None, ups),
                    Action::MkDir { side, path, .. } => ex.mkdir(*side, path, ups),
                    Action::SetProps {
                        side,
                        path,
                        src,
                        expect,
                        mode_only,
                        ..
                    } => ex.set_props(*side, path, src, expect, *mode_only, ups),
                    Action::Delete {
                        side, path, expect, soft, ..
                    } => ex.delete(*side, path, expect, *soft, ups),
                    Action::Record { path, base, .. } => {
                        ups.push(match base {
                            Some(b) => BaseUpdate::Set(path.clone(), ex.refreshed(path, *b)),
                            None => BaseUpdate::Remove(path.clone()),
                        });
                        Outcome::Done { bytes: 0 }
                    }
                    Action::Conflict { .. } | Action::Skip { .. } | Action::Copy { .. } => continue,
                };
                if let Some(s) = a.side() {
                    dirs.push((s, a.path().dir()));
                }
                if !matches!(a, Action::Record { .. }) {
                    rows.push(ex.journal(a, &o));
                }
                if let Some(h) = &opts.hooks {
                    h.0.finished(k, a, &o);
                }
                rep.outcomes[k] = Some(o);
            }
        }
        i = end;
    }
    if rep.fatal.is_none() {
        flush_and_commit(&ex, &[], &pending.dirs, &pending.ups, &pending.rows, &mut rep, sink);
    }
    count(acts, &mut rep);
    rep.disk_full = ex.disk_full.lock().unwrap().take();
    rep
}

fn flush_and_commit(
    ex: &Exec,
    files: &[(Side, RelPath)],
    dirs: &[(Side, RelPath)],
    ups: &[BaseUpdate],
    rows: &[JournalRow],
    rep: &mut ExecReport,
    sink: &mut dyn Sink,
) {
    // Per side, and only where the side needs a flush (a server that commits an upload
    // when it answers needs none). Two local sides on one file system: the first side's
    // syncfs flushes the other's data too, so the second finds little to do.
    for s in Side::BOTH {
        if !ex.rep(s).caps().needs_flush {
            continue;
        }
        let f: Vec<RelPath> = files.iter().filter(|x| x.0 == s).map(|x| x.1.clone()).collect();
        let mut d: Vec<RelPath> = dirs.iter().filter(|x| x.0 == s).map(|x| x.1.clone()).collect();
        d.sort();
        d.dedup();
        if f.is_empty() && d.is_empty() {
            continue;
        }
        if let Err(e) = ex.rep(s).make_durable(&f, &d) {
            rep.fatal = Some(format!("flush to disk on the {s} side failed: {e}"));
            return;
        }
    }
    if ups.is_empty() && rows.is_empty() {
        return;
    }
    if let Err(e) = sink.commit(ups, rows) {
        rep.fatal = Some(format!("cannot record progress in the state store: {e}"));
    }
}

/// A batch of staged copies: (action index, staged temp file or the outcome already known).
type Batch = Vec<(usize, Result<Staged, Outcome>)>;

/// Copies, as a two-stage pipeline: workers stage batch N+1 into temporary files while this
/// thread makes batch N durable, renames it into place and commits it. At most one staged
/// batch waits, so memory and what a crash can throw away stay small.
fn copy_phase(ex: &Exec, acts: &[Action], start: usize, end: usize, pending: &mut Installed, rep: &mut ExecReport, sink: &mut dyn Sink) {
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (tx, rx) = std::sync::mpsc::sync_channel::<Batch>(0);
    std::thread::scope(|sc| {
        let stop = &stop;
        sc.spawn(move || {
            let mut i = start;
            while i < end && !stop.load(Ordering::SeqCst) {
                let (batch, j) = stage_batch(ex, acts, i, end);
                if j == i {
                    break; // stopped by the host before anything was claimed
                }
                if tx.send(batch).is_err() {
                    break;
                }
                i = j;
            }
        });
        for batch in rx.iter() {
            if rep.fatal.is_some() {
                discard(ex, &batch);
                continue;
            }
            *pending = install_batch(ex, acts, batch, std::mem::take(pending), rep, sink);
            if rep.fatal.is_some() {
                stop.store(true, Ordering::SeqCst);
            }
        }
        // The last batch's renames are made durable and committed by the caller's next flush.
    });
}

/// Renames done but not yet known durable, with the state they will commit.
#[derive(Default)]
struct Installed {
    dirs: Vec<(Side, RelPath)>,
    ups: Vec<BaseUpdate>,
    rows: Vec<JournalRow>,
}

/// Stage one batch from `i`: at least one file, then more while it stays under batch_files
/// files, batch_bytes bytes and batch_time of work. Returns the batch and where the next
/// one starts.
fn stage_batch(ex: &Exec, acts: &[Action], i: usize, end: usize) -> (Batch, usize) {
    let deadline = std::time::Instant::now() + ex.opts.batch_time;
    let next = AtomicUsize::new(i);
    let bytes = AtomicU64::new(0);
    let staged: Mutex<Batch> = Mutex::new(Vec::new());
    let workers = ex.opts.concurrency.clamp(1, end - i);
    let claim = || loop {
        let k = next.load(Ordering::SeqCst);
        let full =
            k - i >= ex.opts.batch_files || bytes.load(Ordering::SeqCst) >= ex.opts.batch_bytes || std::time::Instant::now() >= deadline;
        if k >= end || (k > i && full) || ex.stopping() {
            return None;
        }
        if next.compare_exchange(k, k + 1, Ordering::SeqCst, Ordering::SeqCst).is_ok() {
            return Some(k);
        }
    };
    std::thread::scope(|sc| {
        for _ in 0..workers {
            sc.spawn(|| {
                while let Some(k) = claim() {
                    if let Action::Copy { src, .. } = &acts[k] {
                        bytes.fetch_add(src.size, Ordering::SeqCst);
                        let res = ex.stage(k, &acts[k]);
                        staged.lock().unwrap().push((k, res));
                    }
                }
            });
        }
    });
    let mut staged = staged.into_inner().unwrap();
    staged.sort_by_key(|s| s.0);
    (staged, next.into_inner())
}

fn discard(ex: &Exec, batch: &Batch) {
    for (_, s) in batch {
        // A direct upload is a complete file at its own name: left for the next run to
        // find on both sides (removing it could remove a version someone else wrote).
        match s {
            Ok(st) if !st.direct => {
                let _ = ex.rep(st.side).remove_file(&st.tmp);
            }
            _ => {}
        }
    }
}

/// One flush makes this batch's temporary files and the previous batch's renames durable;
/// then the previous batch's state is committed and this batch is renamed into place. Its
/// renames are made durable (and committed) by the next batch's flush, or the final one.
fn install_batch(ex: &Exec, acts: &[Action], batch: Batch, prev: Installed, rep: &mut ExecReport, sink: &mut dyn Sink) -> Installed {
    let files: Vec<(Side, RelPath)> = batch
        .iter()
        .filter_map(|(k, s)| match (s, &acts[*k]) {
            (Ok(st), Action::Copy { side, .. }) => Some((*side, st.tmp.clone())),
            _ => None,
        })
        .collect();
    flush_and_commit(ex, &files, &prev.dirs, &prev.ups, &prev.rows, rep, sink);
    if rep.fatal.is_some() {
        discard(ex, &batch);
        return Installed::default();
    }
    let mut now = Installed::default();
    for (k, s) in batch {
        let Action::Copy { side, path, dst, .. } = &acts[k] else {
            continue;
        };
        let o = match s {
            Ok(st) => {
                now.dirs.push((*side, st.tmp.dir()));
                ex.install(*side, path, dst.as_ref(), &st, &mut now.ups)
            }
            Err(o) => o,
        };
        now.rows.push(ex.journal(&acts[k], &o));
        if let Some(h) = &ex.opts.hooks {
            h.0.finished(k, &acts[k], &o);
        }
        rep.outcomes[k] = Some(o);
    }
    now
}

fn count(acts: &[Action], rep: &mut ExecReport) {
    let c = &mut rep.counts;
    for (a, o) in acts.iter().zip(&rep.outcomes) {
        match a {
            Action::Conflict { rule, .. } => {
                c.conflicts += 1;
                *c.by_rule.entry(rule.name().into()).or_default() += 1;
                continue;
            }
            Action::Skip { .. } => {
                c.skipped += 1;
                continue;
            }
            _ => {}
        }
        match o {
            Some(Outcome::Done { bytes }) => {
                c.bytes += bytes;
                match a {
                    Action::Copy { .. } => c.copied += 1,
                    Action::Rename { .. } => c.renamed += 1,
                    Action::ClashRename { .. } => c.conflicts += 1,
                    Action::Delete { soft: true, expect, .. } if expect.is_file() => c.trashed += 1,
                    Action::Delete { .. } => c.deleted += 1,
                    Action::SetProps { .. } => c.props += 1,
                    _ => {}
                }
                if a.is_disk_action() {
                    if let Some(r) = a.rule() {
                        *c.by_rule.entry(r.name().into()).or_default() += 1;
                    }
                }
            }
            Some(Outcome::Failed { .. }) => c.failed += 1,
            Some(Outcome::Deferred { .. }) => rep.deferred += 1,
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::plan::Rule;
    use crate::side::mem::{MemFs, MemOptions, MemSide};
    use std::path::Path;
    use std::sync::Arc;

    struct NullSink;
    impl Sink for NullSink {
        fn commit(&mut self, _: &[BaseUpdate], _: &[JournalRow]) -> Result<(), String> {
            Ok(())
        }
    }

    /// Holds the first copy's first chunk until told to go on.
    struct Gate {
        entered: Mutex<Option<std::sync::mpsc::Sender<()>>>,
        go: Mutex<std::sync::mpsc::Receiver<()>>,
    }
    impl Observer for Gate {
        fn throttle(&self, _: Side, _: u64) {
            if let Some(tx) = self.entered.lock().unwrap().take() {
                tx.send(()).unwrap();
                self.go.lock().unwrap().recv().unwrap();
            }
        }
    }

    fn copy_plan(fs: &Arc<MemFs>, name: &str) -> Plan {
        let p = RelPath::new(name).unwrap();
        let src = match fs.stat(Path::new(&format!("/l/{name}"))).unwrap() {
            Some(Node::Entry(e)) => e,
            _ => panic!("no source"),
        };
        Plan {
            actions: vec![Action::Copy {
                side: Side::Right,
                path: p,
                src,
                dst: None,
                rule: Rule::R9,
                src_mode: None,
            }],
            hash_requests: Vec::new(),
        }
    }

    #[test]
    fn regression_a_copy_whose_target_folder_was_moved_mid_copy_failed_and_left_its_temporary_file() {
        let fs = Arc::new(MemFs::new(MemOptions::default()));
        fs.write("/l/d/f.txt", &[1u8; 1000], 1_000_000_000);
        fs.create_dir_all(Path::new("/r/d")).unwrap();
        let (l, r) = (MemSide::new(&fs, "/l"), MemSide::new(&fs, "/r"));
        let (entered_tx, entered_rx) = std::sync::mpsc::channel();
        let (go_tx, go_rx) = std::sync::mpsc::channel();
        let gate = Gate {
            entered: Mutex::new(Some(entered_tx)),
            go: Mutex::new(go_rx),
        };
        let opts = ExecOptions {
            hooks: Some(Hooks(Arc::new(gate))),
            ..Default::default()
        };
        let plan = copy_plan(&fs, "d/f.txt");
        let report = std::thread::scope(|s| {
            let run = s.spawn(|| execute(&plan, &l, &r, &opts, &mut NullSink));
            // The user renames the target folder while the copy is being written.
            entered_rx.recv().unwrap();
            fs.rename(Path::new("/r/d"), Path::new("/r/e")).unwrap();
            go_tx.send(()).unwrap();
            run.join().unwrap()
        });
        assert!(
            matches!(&report.outcomes[0], Some(Outcome::Deferred { reason }) if reason.contains("moved or deleted")),
            "{:?}",
            report.outcomes
        );
        assert_eq!(report.counts.failed, 0);
        // The temporary file went along with the folder; it is no copy in flight any more,
        // so the next scan that sees it removes it.
        let moved: Vec<String> = fs.files_under("/r/e").into_keys().collect();
        assert_eq!(moved.len(), 1, "{moved:?}");
        assert!(moved[0].starts_with(TEMP_PREFIX), "{moved:?}");
        assert!(!temp_in_flight(&moved[0]));
        let pair = crate::engine::pair::PairConfig {
            name: "p".into(),
            left: "/l".into(),
            right: "/r".into(),
            options: Default::default(),
        };
        let mut store = crate::state::Store::in_memory().unwrap();
        let req = crate::engine::sync::SyncRequest {
            scope: Some(vec![RelPath::new("d").unwrap(), RelPath::new("e").unwrap()]),
            ..Default::default()
        };
        crate::engine::sync::sync_with(&mut store, &pair, &l, &r, &req).unwrap();
        assert!(fs.files_under("/r/e").keys().all(|k| !k.starts_with(TEMP_PREFIX)));
        assert_eq!(fs.read("/r/d/f.txt").unwrap(), vec![1u8; 1000]);
    }

    #[test]
    fn regression_two_executors_at_once_never_share_a_temporary_name() {
        let fs = Arc::new(MemFs::new(MemOptions::default()));
        fs.write("/l/big.bin", &[1u8; 1000], 1_000_000_000);
        fs.write("/l/small.txt", b"small", 2_000_000_000);
        fs.create_dir_all(Path::new("/r")).unwrap();
        let (l, r) = (MemSide::new(&fs, "/l"), MemSide::new(&fs, "/r"));
        let (entered_tx, entered_rx) = std::sync::mpsc::channel();
        let (go_tx, go_rx) = std::sync::mpsc::channel();
        let gate = Gate {
            entered: Mutex::new(Some(entered_tx)),
            go: Mutex::new(go_rx),
        };
        let slow = ExecOptions {
            hooks: Some(Hooks(Arc::new(gate))),
            ..Default::default()
        };
        let (big, small) = (copy_plan(&fs, "big.bin"), copy_plan(&fs, "small.txt"));
        std::thread::scope(|s| {
            let a = s.spawn(|| execute(&big, &l, &r, &slow, &mut NullSink));
            // The large copy holds its temporary file open; a second executor copies into
            // the same folder meanwhile (the service's two lanes).
            entered_rx.recv().unwrap();
            let b = execute(&small, &l, &r, &ExecOptions::default(), &mut NullSink);
            go_tx.send(()).unwrap();
            assert_eq!(b.outcomes, vec![Some(Outcome::Done { bytes: 5 })]);
            let a = a.join().unwrap();
            assert_eq!(a.outcomes, vec![Some(Outcome::Done { bytes: 1000 })]);
        });
        assert_eq!(fs.read("/r/small.txt").unwrap(), b"small");
        assert_eq!(fs.read("/r/big.bin").unwrap().len(), 1000);
    }

    /// Found in review: on a side without atomic replace the old version was moved to the
    /// trash before the copy moved in; when that last rename failed, the file was gone
    /// from its place (only in the trash).
    #[test]
    fn regression_a_failed_install_on_a_side_without_atomic_replace_left_no_file_in_place() {
        use crate::side::fault::{FaultOp, FaultSide};
        let lfs = Arc::new(MemFs::new(MemOptions::default()));
        let rfs = Arc::new(MemFs::new(MemOptions {
            no_atomic_replace: true,
            no_hard_links: true,
            ..Default::default()
        }));
        lfs.write("/l/f.txt", b"new version", 2_000_000_000);
        rfs.write("/r/f.txt", b"old", 1_000_000_000);
        let stat = |fs: &Arc<MemFs>, p: &str| match fs.stat(Path::new(p)).unwrap() {
            Some(Node::Entry(e)) => e,
            _ => panic!("no {p}"),
        };
        let plan = || Plan {
            actions: vec![Action::Copy {
                side: Side::Right,
                path: RelPath::new("f.txt").unwrap(),
                src: stat(&lfs, "/l/f.txt"),
                dst: Some(stat(&rfs, "/r/f.txt")),
                rule: Rule::R3,
                src_mode: None,
            }],
            hash_requests: Vec::new(),
        };
        let l = MemSide::new(&lfs, "/l");
        let r = FaultSide::new(Arc::new(MemSide::new(&rfs, "/r")));
        // Renames naming f.txt: the move aside (from, to), then the copy's move in (to).
        r.inject_after(FaultOp::Rename, "f.txt", 2, 1);
        let rep = execute(&plan(), &l, &r, &ExecOptions::default(), &mut NullSink);
        assert!(matches!(&rep.outcomes[0], Some(Outcome::Failed { .. })), "{:?}", rep.outcomes);
        assert_eq!(rfs.read("/r/f.txt").unwrap(), b"old", "the old version is back in place");
        r.clear();
        // The next run plans again (putting it back changed the file's change time).
        let rep = execute(&plan(), &l, &r, &ExecOptions::default(), &mut NullSink);
        assert_eq!(rep.outcomes, vec![Some(Outcome::Done { bytes: 11 })]);
        assert_eq!(rfs.read("/r/f.txt").unwrap(), b"new version");
        let kept: Vec<Vec<u8>> = rfs.files_under("/r/.sync_trash").into_values().collect();
        assert_eq!(kept, [b"old".to_vec()], "the overwritten version is in the trash");
    }
}
