//! File events: a recursive OS watcher per root (notify: inotify, FSEvents, ReadDirectoryChangesW)
//! turned into relative paths with a readiness hint, and the [`Debouncer`] that coalesces
//! them per path until they are worth planning. Also the canary file that tells whether a
//! root delivers events at all (network shares and cloud mounts often do not).
//! Must not touch: the planner, the state store; it reports paths, it decides nothing.

use crate::config::{is_temp_name, Ignore, TRASH_DIR};
use crate::fs::Fs;
use crate::model::{RelPath, Side};
use notify::event::{AccessKind, AccessMode, CreateKind, EventKind, ModifyKind};
use notify::Watcher;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Name of the canary file, in the root's trash folder (never synced).
pub const CANARY: &str = ".tandem-canary";

/// How soon a reported path may be planned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Readiness {
    /// The change is complete: a writer closed the file, a rename, a deletion, a new folder.
    Settled,
    /// Data is being written: wait for the close or for quiet.
    Writing,
}

#[derive(Debug)]
pub enum WatchMsg {
    Changes {
        side: Side,
        paths: Vec<(RelPath, Readiness)>,
    },
    /// The canary written to test this side's events came back.
    Canary {
        side: Side,
    },
    /// Events were lost (queue overflow) or the root itself moved: scan everything.
    Rescan {
        side: Side,
        reason: String,
    },
}

/// A running watcher of one root; dropping it stops watching.
pub struct RootWatcher {
    _w: notify::RecommendedWatcher,
}

impl RootWatcher {
    /// Watch `root` recursively (folders created later included); `sink` gets the changes.
    pub fn start(root: &Path, side: Side, ignore: Ignore, sink: impl Fn(WatchMsg) + Send + 'static) -> Result<RootWatcher, String> {
        let root_buf = root.to_path_buf();
        let canary = root.join(TRASH_DIR).join(CANARY);
        let handler = move |res: notify::Result<notify::Event>| match res {
            Ok(ev) => {
                if ev.need_rescan() {
                    sink(WatchMsg::Rescan {
                        side,
                        reason: "the OS dropped file events (queue overflow)".into(),
                    });
                    return;
                }
                let ready = match ev.kind {
                    EventKind::Access(AccessKind::Close(AccessMode::Write)) => Readiness::Settled,
                    EventKind::Access(_) => return,
                    EventKind::Create(CreateKind::Folder) => Readiness::Settled,
                    EventKind::Create(_) => Readiness::Writing,
                    EventKind::Modify(ModifyKind::Data(_)) | EventKind::Modify(ModifyKind::Any) => Readiness::Writing,
                    EventKind::Modify(_) | EventKind::Remove(_) => Readiness::Settled,
                    EventKind::Any | EventKind::Other => Readiness::Writing,
                };
                let mut paths = Vec::new();
                for p in &ev.paths {
                    if *p == canary {
                        sink(WatchMsg::Canary { side });
                        continue;
                    }
                    match relative(&root_buf, p) {
                        Some(Rel::Root) => sink(WatchMsg::Rescan {
                            side,
                            reason: "the root folder itself changed".into(),
                        }),
                        Some(Rel::Path(rel)) if !is_excluded(&ignore, &rel) => paths.push((rel, ready)),
                        _ => {}
                    }
                }
                if !paths.is_empty() {
                    sink(WatchMsg::Changes { side, paths });
                }
            }
            Err(e) => sink(WatchMsg::Rescan {
                side,
                reason: format!("watcher error: {e}"),
            }),
        };
        let mut w = notify::recommended_watcher(handler).map_err(|e| format!("cannot start a file watcher: {e}"))?;
        w.watch(root, notify::RecursiveMode::Recursive).map_err(|e| match e.kind {
            notify::ErrorKind::MaxFilesWatch => format!(
                "{}: the OS limit of watched folders is reached (raise fs.inotify.max_user_watches)",
                root.display()
            ),
            _ => format!("{}: cannot watch: {e}", root.display()),
        })?;
        Ok(RootWatcher { _w: w })
    }
}

enum Rel {
    Root,
    Path(RelPath),
}

fn relative(root: &Path, p: &Path) -> Option<Rel> {
    let rest = p.strip_prefix(root).ok()?;
    if rest.as_os_str().is_empty() {
        return Some(Rel::Root);
    }
    let s = rest.to_str()?;
    let s = if cfg!(windows) { s.replace('\\', "/") } else { s.to_string() };
    RelPath::new(&s).ok().map(Rel::Path)
}

/// The trash, Tandem's temporary files and ignored names (at any level) are not changes.
pub fn is_excluded(ignore: &Ignore, rel: &RelPath) -> bool {
    let mut chain: Vec<RelPath> = rel.ancestors().collect();
    chain.reverse();
    chain.push(rel.clone());
    chain.iter().any(|a| {
        let name = a.name();
        a.as_str() == TRASH_DIR || is_temp_name(name) || ignore.is_ignored(a.as_str(), name)
    })
}

/// Write (or rewrite) the canary in the root's trash folder.
pub fn touch_canary(fs: &dyn Fs, root: &Path) -> std::io::Result<PathBuf> {
    let dir = root.join(TRASH_DIR);
    fs.create_dir_all(&dir)?;
    let p = dir.join(CANARY);
    let _ = fs.remove_file(&p);
    let mut w = fs.create_new(&p)?;
    use std::io::Write;
    w.write_all(b"Tandem checks with this file that the folder reports changes. Safe to delete.\n")?;
    w.finish(crate::state::now_ns(), 0)?;
    Ok(p)
}

/// Coalesces reported paths: a path is due when its change looks complete (a settled event
/// and `settle` without another), after `quiet` without events while it is being written,
/// and at the latest `max_wait` after its first report (a file that never stops changing
/// still syncs; the executor discards a copy torn by a write and it comes back).
#[derive(Debug)]
pub struct Debouncer {
    pub settle: Duration,
    pub quiet: Duration,
    pub max_wait: Duration,
    pending: HashMap<RelPath, Pending>,
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    first: Instant,
    last: Instant,
    settled: bool,
    not_before: Option<Instant>,
    /// Only a retry, no event since: due exactly at `not_before`.
    retry_only: bool,
}

impl Debouncer {
    pub fn new(settle: Duration, quiet: Duration, max_wait: Duration) -> Debouncer {
        Debouncer {
            settle: settle.min(quiet),
            quiet,
            max_wait,
            pending: HashMap::new(),
        }
    }

    pub fn note(&mut self, p: RelPath, r: Readiness, now: Instant) {
        let e = self.pending.entry(p).or_insert(Pending {
            first: now,
            last: now,
            settled: false,
            not_before: None,
            retry_only: false,
        });
        e.last = now;
        e.settled = r == Readiness::Settled;
        e.retry_only = false;
    }

    /// Plan `p` again, not before `at` (a deferred or failed action).
    pub fn retry_at(&mut self, p: RelPath, at: Instant) {
        let e = self.pending.entry(p).or_insert(Pending {
            first: at,
            last: at,
            settled: true,
            not_before: None,
            retry_only: true,
        });
        e.not_before = Some(e.not_before.map_or(at, |nb| nb.max(at)));
    }

    fn due(&self, p: &Pending) -> Instant {
        if let (true, Some(nb)) = (p.retry_only, p.not_before) {
            return nb;
        }
        let ready = if p.settled { p.last + self.settle } else { p.last + self.quiet };
        let t = ready.min(p.first + self.max_wait);
        match p.not_before {
            Some(nb) => t.max(nb),
            None => t,
        }
    }

    pub fn next_due(&self) -> Option<Instant> {
        self.pending.values().map(|p| self.due(p)).min()
    }

    /// Paths due at `now`, removed from the pending set.
    pub fn take_due(&mut self, now: Instant) -> Vec<RelPath> {
        let due: Vec<RelPath> = self
            .pending
            .iter()
            .filter(|(_, p)| self.due(p) <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for k in &due {
            self.pending.remove(k);
        }
        due
    }

    /// Forget paths last reported before `t` (a full scan that started after them covered them).
    pub fn forget_before(&mut self, t: Instant) {
        self.pending.retain(|_, p| p.last >= t || p.not_before.is_some_and(|nb| nb > t));
    }

    pub fn len(&self) -> usize {
        self.pending.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    pub fn paths(&self) -> impl Iterator<Item = &RelPath> {
        self.pending.keys()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> RelPath {
        RelPath::new(s).unwrap()
    }

    #[test]
    fn debouncer_table() {
        let ms = Duration::from_millis;
        let t0 = Instant::now();
        let mut d = Debouncer::new(ms(50), ms(300), ms(2000));
        // A closed file is due after the settle window, not the quiet time.
        d.note(p("closed"), Readiness::Writing, t0);
        d.note(p("closed"), Readiness::Settled, t0 + ms(10));
        // A file still being written waits for quiet.
        d.note(p("writing"), Readiness::Writing, t0);
        assert_eq!(d.next_due(), Some(t0 + ms(60)));
        assert!(d.take_due(t0 + ms(59)).is_empty());
        assert_eq!(d.take_due(t0 + ms(60)), vec![p("closed")]);
        // Each new write pushes the quiet time out...
        for i in 1..=10 {
            d.note(p("writing"), Readiness::Writing, t0 + ms(i * 200));
        }
        assert!(d.take_due(t0 + ms(2000) - ms(1)).is_empty());
        // ... but never past max_wait after the first report.
        assert_eq!(d.take_due(t0 + ms(2000)), vec![p("writing")]);
        assert!(d.is_empty());
        // A retry waits for its time even when settled.
        d.retry_at(p("failed"), t0 + ms(5000));
        assert!(d.take_due(t0 + ms(4999)).is_empty());
        assert_eq!(d.take_due(t0 + ms(5000)), vec![p("failed")]);
        // A full scan forgets what it covered, not what came after it started.
        d.note(p("old"), Readiness::Settled, t0 + ms(6000));
        d.note(p("new"), Readiness::Settled, t0 + ms(6100));
        d.forget_before(t0 + ms(6050));
        assert_eq!(d.paths().cloned().collect::<Vec<_>>(), vec![p("new")]);
    }

    #[test]
    fn trash_temp_and_ignored_paths_are_not_changes() {
        let ig = Ignore::new(&crate::config::SyncOptions::default()).unwrap();
        assert!(is_excluded(&ig, &p(".sync_trash/2026-01-01_000000/a.txt")));
        assert!(is_excluded(&ig, &p("docs/.tandem-123-4.tmp")));
        assert!(is_excluded(&ig, &p("a/.DS_Store")));
        assert!(is_excluded(&ig, &p("x.swp/inner.txt")));
        assert!(!is_excluded(&ig, &p("docs/.sync_trash/a.txt")));
        assert!(!is_excluded(&ig, &p("docs/report.txt")));
    }
}
