//! The sync pipeline: one run of a pair, whole or targeted at some paths. Scan both sides
//! -> check the roots (present, not emptied, the same folders as last time) -> hash what
//! the planner asks for -> plan -> guards (mass deletions, older overwrites) -> execute ->
//! record (base rows only once durable, the journal, conflicts). The continuous service
//! splits it in `prepare` (up to the plan) and `apply`; the one-shot form is `sync_with`.
//! Errors ([`ApiError`]) carry a stable code (for the UI) and an exit code (for the CLI).
//! Must not touch: the configuration file, terminal output, the service's timing.

use crate::engine::exec::{self, ExecOptions, ExecReport, Outcome, Sink};
use crate::engine::pair::{ConfigError, PairConfig, SyncOptions};
use crate::engine::plan::{self, Action, Keep, NameRules, Plan, PlanInput, PlanOptions, Rule};
use crate::engine::scan::{self, ScanError, ScanResult};
use crate::model::names::Ignore;
use crate::model::{BaseUpdate, Hash, RelPath, Side};
use crate::side::{hash_file, Replica, VersionToken};
use crate::state::{now_ns, ConflictRecord, JournalRow, RunCounts, StateError, Store};
use chrono::{Local, Offset, TimeZone};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Usage(String),
    #[error("pair {pair}: {source}; the pair stopped before changing anything")]
    Root {
        pair: String,
        #[source]
        source: ScanError,
    },
    #[error("pair {pair}: the {side} folder {root} is empty but held {files} synced files: not treated as \"everything was deleted\"; the pair stopped before changing anything (is the drive mounted? if the files were really deleted, run again with --allow-mass-delete)")]
    RootEmpty {
        pair: String,
        side: Side,
        root: String,
        files: u64,
    },
    #[error("pair {pair}: the {side} folder {root} is not the folder this pair synced: {why}. Not treated as \"everything changed\": the pair is stopped, nothing was changed (is the right drive mounted? if this really is the pair's folder now, run again with --allow-mass-delete to adopt it)")]
    RootChanged {
        pair: String,
        side: Side,
        root: String,
        why: String,
    },
    #[error("pair {pair}: the plan deletes {deletions} of {total} files ({percent}%), more than max_delete_percent = {max}%. Nothing was changed. Check the folders; run again with --allow-mass-delete if this is intended.")]
    MassDelete {
        pair: String,
        deletions: u64,
        total: u64,
        percent: u64,
        max: u8,
    },
    #[error("pair {pair}: the plan overwrites {overwrites} of {total} files ({percent}%) with older versions, more than max_delete_percent = {max}% (a side restored from an old backup?). Nothing was changed. Check the folders; run again with --allow-mass-delete if this is intended.")]
    MassOverwrite {
        pair: String,
        overwrites: u64,
        total: u64,
        percent: u64,
        max: u8,
    },
    #[error(transparent)]
    State(#[from] StateError),
    #[error("pair {pair} is being synced by another Tandem process (lock {lock})")]
    Locked { pair: String, lock: PathBuf },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A side on a server could not be opened: a wrong address, bucket or credential
    /// (`remote_config`), or a server that does not answer (`remote_unreachable`).
    #[error("pair {pair}: {source}")]
    Remote {
        pair: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Internal(String),
}

/// Whether opening a remote side failed on what the user configured (not on the network).
fn remote_config_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind as K;
    matches!(e.kind(), K::InvalidInput | K::NotFound | K::PermissionDenied | K::Unsupported)
}

impl ApiError {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Config(_) => "config_invalid",
            ApiError::Usage(_) => "usage",
            ApiError::Root {
                source: ScanError::RootMissing { .. },
                ..
            } => "root_missing",
            ApiError::Root { .. } => "root_unreadable",
            ApiError::RootEmpty { .. } => "root_empty",
            ApiError::RootChanged { .. } => "root_changed",
            ApiError::MassDelete { .. } => "mass_delete",
            ApiError::MassOverwrite { .. } => "mass_overwrite",
            ApiError::State(StateError::Corrupt { .. }) => "state_corrupt",
            ApiError::State(_) => "state_error",
            ApiError::Locked { .. } => "pair_locked",
            ApiError::Io { .. } => "io_error",
            ApiError::Remote { source, .. } if remote_config_error(source) => "remote_config",
            ApiError::Remote { .. } => "remote_unreachable",
            ApiError::NotFound(_) => "not_found",
            ApiError::Internal(_) => "internal",
        }
    }

    /// CLI exit code: 2 usage/config, 3 stopped by a safety guard.
    pub fn exit_code(&self) -> i32 {
        match self {
            ApiError::Root { .. }
            | ApiError::RootEmpty { .. }
            | ApiError::RootChanged { .. }
            | ApiError::MassDelete { .. }
            | ApiError::MassOverwrite { .. }
            | ApiError::Locked { .. } => 3,
            ApiError::Remote { source, .. } if remote_config_error(source) => 2,
            ApiError::Io { .. } | ApiError::Remote { .. } | ApiError::Internal(_) => 1,
            _ => 2,
        }
    }
}

/// What started a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    Manual,
    Watch,
    Schedule,
    Reconciliation,
    Startup,
    Resolve,
    /// A periodic full scan of a side that sends no file events.
    Poll,
    /// `tandem resync PATH`: the base under a path forgotten and decided again.
    Resync,
}

impl Trigger {
    pub fn name(self) -> &'static str {
        match self {
            Trigger::Manual => "manual",
            Trigger::Watch => "watch",
            Trigger::Schedule => "schedule",
            Trigger::Reconciliation => "reconciliation",
            Trigger::Startup => "startup",
            Trigger::Resolve => "resolve",
            Trigger::Poll => "poll",
            Trigger::Resync => "resync",
        }
    }

    /// Whether a run that found nothing to do is worth a history row. Runs started by file
    /// events and polls are not: they happen all day, and Tandem's own writes echo back.
    /// Nor is a start-up reconciliation: every settings save restarts the pairs, and an
    /// empty "startup" row per pair and save only buried the runs that did something.
    pub fn records_idle_runs(self) -> bool {
        !matches!(self, Trigger::Watch | Trigger::Poll | Trigger::Startup)
    }
}

#[derive(Clone, Debug)]
pub struct SyncRequest {
    pub dry_run: bool,
    pub allow_mass_delete: bool,
    pub trigger: Trigger,
    pub overrides: BTreeMap<RelPath, Keep>,
    /// Act on this path (and what lies below it, and its clash copies) only; the rest of the
    /// pair is left as it is (used to apply one conflict decision).
    pub only: Option<RelPath>,
    /// A targeted run: scan and plan only these paths (each with what lies below it), as
    /// the watcher reported them. None: the whole pair.
    pub scope: Option<Vec<RelPath>>,
    /// The host's executor hooks (progress, pause, bandwidth).
    pub hooks: Option<exec::Hooks>,
    /// The caller already holds the pair's lock (the continuous service holds it for as
    /// long as it runs).
    pub caller_holds_lock: bool,
    /// Hold deletions back (the service's targeted runs): a deletion the user made (R7/R8)
    /// is planned only when it lies at or below one of these paths, those already held
    /// long enough; the others are left out of the plan and returned by
    /// [`prepare_holding`], for the caller to plan again together with whatever the
    /// watcher reports meanwhile. A folder renamed a moment after an edit inside it is
    /// first seen as deleted (the edit's run scans its old name); held, its deletion meets
    /// the new name's report and the planner sees a rename (R14), not a deletion and copies.
    pub hold_deletes: Option<Vec<RelPath>>,
    /// With `hold_deletes`: new folders and the copies into them are held back the same
    /// way (the other half of a move into a folder just created).
    pub hold_creations: bool,
    /// Plan as if the base knew nothing at or below this path (`resync`): both sides'
    /// contents decide, and with no base no deletion can be planned (invariant 7).
    pub forget_base: Option<RelPath>,
}

impl Default for SyncRequest {
    fn default() -> Self {
        SyncRequest {
            dry_run: false,
            allow_mass_delete: false,
            trigger: Trigger::Manual,
            overrides: BTreeMap::new(),
            only: None,
            scope: None,
            hooks: None,
            caller_holds_lock: false,
            hold_deletes: None,
            hold_creations: false,
            forget_base: None,
        }
    }
}

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// Everything planned was done (clash copies count as success).
    Ok,
    /// Some operations failed; the rest were done.
    Partial,
    /// Nothing was executed (dry run).
    DryRun,
}

#[derive(Debug, Serialize)]
pub struct SyncReport {
    pub pair: String,
    pub run_id: Option<i64>,
    pub status: RunStatus,
    pub plan: Plan,
    /// Outcome per plan action (None: not executed).
    pub outcomes: Vec<Option<Outcome>>,
    pub counts: RunCounts,
    pub deferred: u64,
    /// Unsyncable paths reported for the first time in this run.
    pub new_skips: Vec<(Side, RelPath, String)>,
    pub fatal: Option<String>,
    /// A copy failed for want of space (its message); the service tells it once.
    pub disk_full: Option<String>,
    /// Wall time of the execution (0 for a dry run).
    pub duration_ms: u64,
}

impl SyncReport {
    pub fn exit_code(&self) -> i32 {
        if self.fatal.is_some() || self.counts.failed > 0 {
            1
        } else {
            0
        }
    }
}

pub use crate::state::PairLock;

/// Take a pair's lock (the continuous service holds it while it runs; `tandem sync` of the
/// same pair then stops with "locked").
pub fn lock_pair(store: &Store, pair: &PairConfig, id: i64) -> Result<PairLock, ApiError> {
    store.lock_pair(id).map_err(|e| match e {
        crate::state::LockError::Held { lock } => ApiError::Locked {
            pair: pair.name.clone(),
            lock,
        },
        crate::state::LockError::Io { lock, source } => ApiError::Io { path: lock, source },
    })
}

fn utc_offset(ns: i64) -> i32 {
    Local.timestamp_nanos(ns).offset().fix().local_minus_utc()
}

/// The file systems' naming limits for a pair.
pub fn name_rules(opts: &SyncOptions, side: &dyn Replica) -> NameRules {
    NameRules {
        case_insensitive: opts.portable_names || side.caps().case_insensitive,
        windows: opts.portable_names || cfg!(windows),
    }
}

/// Scan both roots in parallel (or only `scope` in them).
pub fn scan_both(pair: &PairConfig, lfs: &dyn Replica, rfs: &dyn Replica) -> Result<(ScanResult, ScanResult), ApiError> {
    scan_both_in(pair, lfs, rfs, None)
}

fn scan_both_in(
    pair: &PairConfig,
    lfs: &dyn Replica,
    rfs: &dyn Replica,
    scope: Option<&[RelPath]>,
) -> Result<(ScanResult, ScanResult), ApiError> {
    let ignore = Ignore::new(&pair.options.ignore, pair.options.use_default_ignores)
        .map_err(|e| ApiError::Usage(format!("pair {}: ignore patterns: {e}", pair.name)))?;
    let threads = pair.options.concurrency.clamp(1, 8);
    let one = |side: &dyn Replica| match scope {
        None => scan::scan(side, &ignore, threads),
        // A handful of paths: a small walk each, no thread pool needed.
        Some(paths) => scan::scan_paths(side, &ignore, paths, if paths.len() > 8 { threads } else { 1 }),
    };
    let (l, r) = std::thread::scope(|s| {
        let l = s.spawn(|| one(lfs));
        let r = one(rfs);
        (l.join().expect("scanner thread"), r)
    });
    let l = l.map_err(|source| ApiError::Root {
        pair: pair.name.clone(),
        source,
    })?;
    let r = r.map_err(|source| ApiError::Root {
        pair: pair.name.clone(),
        source,
    })?;
    Ok((l, r))
}

struct StoreSink<'a> {
    store: &'a mut Store,
    pair: i64,
    run: Option<i64>,
}

impl Sink for StoreSink<'_> {
    fn commit(&mut self, updates: &[BaseUpdate], journal: &[JournalRow]) -> Result<(), String> {
        self.store.commit(self.pair, self.run, updates, journal).map_err(|e| e.to_string())
    }
}

/// What one sync of one pair works with.
struct Ctx<'a> {
    store: &'a mut Store,
    pair_id: i64,
    pair: &'a PairConfig,
    lfs: &'a dyn Replica,
    rfs: &'a dyn Replica,
}

/// Fill the hashes the planner asked for: from the cache, else by reading the file (in
/// parallel). Unreadable files become unknown paths.
fn fill_hashes(cx: &mut Ctx, input: &mut PlanInput, wanted: &[(Side, RelPath)], cache_writes: bool) -> Result<(), ApiError> {
    let mut todo = Vec::new();
    for (side, p) in wanted {
        let Some(e) = input.tree(*side).get(p).copied() else {
            continue;
        };
        match cx.store.cached_hash(cx.pair_id, *side, p, &e)? {
            Some(h) => input.tree_mut(*side).get_mut(p).unwrap().hash = Some(h),
            None => todo.push((*side, p.clone(), e)),
        }
    }
    if todo.is_empty() {
        return Ok(());
    }
    let threads = cx.pair.options.concurrency.clamp(1, 8).min(todo.len());
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: std::sync::Mutex<Vec<(usize, Result<Hash, String>)>> = Default::default();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some((side, p, e)) = todo.get(i) else {
                    break;
                };
                let fs = if *side == Side::Left { cx.lfs } else { cx.rfs };
                crate::engine::exec::settle_before_read(&fs.caps(), e.mtime);
                let r = match hash_file(fs, p) {
                    Ok((h, n)) if n == e.size => Ok(h),
                    Ok(_) => Err("changed while being read".to_string()),
                    Err(err) => Err(format!("cannot read: {err}")),
                };
                results.lock().unwrap().push((i, r));
            });
        }
    });
    let mut cache = Vec::new();
    for (i, r) in results.into_inner().unwrap() {
        let (side, p, e) = &todo[i];
        match r {
            Ok(h) => {
                input.tree_mut(*side).get_mut(p).unwrap().hash = Some(h);
                cache.push((*side, p.clone(), *e, h));
            }
            Err(reason) => input.unknown.push((*side, p.clone(), format!("error: {reason}"))),
        }
    }
    if cache_writes {
        cx.store.put_hashes(cx.pair_id, &cache)?;
    }
    Ok(())
}

/// Remove dated trash folders (`YYYY-MM-DD_HHMMSS[-N]`) older than the retention. Other
/// names in the trash are the user's business and are left alone.
pub fn purge_trash(fs: &dyn Replica, retention_days: u32, now: chrono::NaiveDateTime) -> Vec<String> {
    let trash = RelPath::new(crate::model::names::TRASH_DIR).expect("the trash folder name is a valid path");
    let Ok(items) = fs.read_dir(&trash) else { return Vec::new() };
    let limit = now - chrono::Duration::days(retention_days as i64);
    let mut purged = Vec::new();
    for item in items {
        let Ok(name) = item.name else { continue };
        let stamp = name.split('-').take(3).collect::<Vec<_>>().join("-");
        let Ok(when) = chrono::NaiveDateTime::parse_from_str(&stamp, "%Y-%m-%d_%H%M%S") else {
            continue;
        };
        if when < limit {
            let Ok(p) = trash.join(&name) else { continue };
            let shown = fs.describe(&p);
            match crate::side::remove_tree(fs, &p) {
                Ok(()) => {
                    tracing::info!(path = %shown, "purged trash older than {retention_days} days");
                    purged.push(shown);
                }
                Err(e) => tracing::warn!(path = %shown, "cannot purge old trash: {e}"),
            }
        }
    }
    purged
}

/// Where a root's identity is kept: a file with a random id in its trash folder (never
/// synced, never purged), recorded in the state per pair and side.
pub const ROOT_MARKER: &str = ".tandem-root";

/// A root must still be the folder this pair synced: a different disk mounted at the same
/// path, or the mount gone and an empty or stale folder left behind, has no marker or
/// another one. Then the pair stops (exit 3) instead of reading everything as changed or
/// deleted, unless the base holds no files or the user consents (`--allow-mass-delete`),
/// which adopts the folder. A dry run only reads.
fn check_root_markers(cx: &mut Ctx, req: &SyncRequest, base_files: Option<u64>) -> Result<(), ApiError> {
    if cx.pair_id < 0 {
        return Ok(());
    }
    for (side, fs) in [(Side::Left, cx.lfs), (Side::Right, cx.rfs)] {
        let key = format!("root-marker:{}:{}", cx.pair_id, side.name());
        let recorded = cx.store.kv_get(&key)?;
        let file = RelPath::new(&format!("{}/{ROOT_MARKER}", crate::model::names::TRASH_DIR)).expect("the root marker's path is valid");
        let found = fs.open_read(&file).ok().and_then(|mut r| {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut r, &mut s).ok().map(|_| s.trim().to_string())
        });
        let adopt = match (&recorded, &found) {
            (Some(r), Some(f)) if r == f => continue,
            (None, _) => true,
            (Some(_), _) if req.allow_mass_delete => true,
            (Some(_), _) if base_files.map_or_else(|| cx.store.count_base_files(cx.pair_id), Ok)? == 0 => true,
            (Some(_), f) => {
                return Err(ApiError::RootChanged {
                    pair: cx.pair.name.clone(),
                    side,
                    root: fs.describe(&RelPath::root()),
                    why: match f {
                        None => format!("its marker {} is missing", fs.describe(&file)),
                        Some(_) => format!("its marker {} names another folder", fs.describe(&file)),
                    },
                })
            }
        };
        if !adopt || req.dry_run {
            continue;
        }
        let id = match found {
            Some(f) if !f.is_empty() => f,
            _ => {
                let mut b = [0u8; 16];
                getrandom::fill(&mut b).map_err(|e| ApiError::Internal(format!("no random id for the root marker: {e}")))?;
                let id: String = b.iter().map(|x| format!("{x:02x}")).collect();
                let written = (|| -> std::io::Result<()> {
                    fs.create_dir_all(&file.dir())?;
                    let tmp = file.with_name(&format!("{ROOT_MARKER}.new"));
                    let _ = fs.remove_file(&tmp);
                    let mut w = fs.create_new(&tmp)?;
                    std::io::Write::write_all(&mut w, format!("{id}\n").as_bytes())?;
                    w.finish(now_ns(), 0)?;
                    fs.make_durable(std::slice::from_ref(&tmp), &[])?;
                    fs.rename(&tmp, &file)
                })();
                if let Err(e) = written {
                    // A read-only side cannot carry a marker: it is checked as before
                    // (missing root, emptied root), without one.
                    tracing::warn!(path = %fs.describe(&file), "cannot write the root marker: {e}");
                    continue;
                }
                id
            }
        };
        cx.store.kv_put(&key, Some(&id))?;
    }
    Ok(())
}

/// Scan, then plan until the planner needs no more hashes.
/// Returns the plan and the number of files the base holds (for the mass-delete guard).
fn build_plan(cx: &mut Ctx, req: &SyncRequest, cleanup: bool) -> Result<(Plan, u64), ApiError> {
    let (pair, lfs, rfs) = (cx.pair, cx.lfs, cx.rfs);
    let t = std::time::Instant::now();
    if let Some(paths) = &req.scope {
        return build_scoped_plan(cx, req, paths, t);
    }
    let (ls, rs) = scan_both(pair, lfs, rfs)?;
    tracing::debug!(
        ms = t.elapsed().as_millis() as u64,
        left = ls.tree.len(),
        right = rs.tree.len(),
        "scanned"
    );
    let base = cx.store.load_base(cx.pair_id)?;
    tracing::debug!(ms = t.elapsed().as_millis() as u64, entries = base.len(), "base loaded");
    // A root that suddenly holds nothing while the base says it held files is not read as
    // "everything was deleted".
    let base_files = base.values().filter(|b| b.kind == crate::model::Kind::File).count() as u64;
    for (side, s, fs) in [(Side::Left, &ls, lfs), (Side::Right, &rs, rfs)] {
        if base_files > 0 && s.tree.is_empty() && s.unknown.is_empty() && !req.allow_mass_delete {
            return Err(ApiError::RootEmpty {
                pair: pair.name.clone(),
                side,
                root: fs.describe(&RelPath::root()),
                files: base_files,
            });
        }
    }
    check_root_markers(cx, req, Some(base_files))?;
    if cleanup {
        for fs in [lfs, rfs] {
            purge_trash(fs, pair.options.trash_retention_days, Local::now().naive_local());
        }
        remove_leftover_temps(lfs, rfs, &ls, &rs);
    }
    plan_until_done(cx, req, ls, rs, base, t).map(|p| (p, base_files))
}

/// Remove the temporary files a scan found that belong to no copy in progress in this
/// process (the service's large lane may be writing one): left by a process that died, or
/// carried away with a folder the user moved while a copy into it was being written.
fn remove_leftover_temps(lfs: &dyn Replica, rfs: &dyn Replica, ls: &ScanResult, rs: &ScanResult) {
    for (fs, s) in [(lfs, ls), (rfs, rs)] {
        for t in s.temp_files.iter().filter(|t| !exec::temp_in_flight(t.name())) {
            match fs.remove_file(t) {
                Ok(()) => tracing::info!(path = %fs.describe(t), "removed leftover temporary file"),
                Err(e) => tracing::warn!(path = %fs.describe(t), "cannot remove leftover temporary file: {e}"),
            }
        }
    }
}

/// The paths a targeted run looks at: each reported path, widened to the nearest ancestor
/// that is not a folder on both sides (a folder deleted, replaced or created on one side is
/// planned as a whole), plus case variants of its name where a side ignores case; none
/// lying below another.
fn widen_scope(pair: &PairConfig, lfs: &dyn Replica, rfs: &dyn Replica, paths: &[RelPath]) -> Vec<RelPath> {
    let mut is_dir_cache: std::collections::HashMap<(Side, RelPath), bool> = Default::default();
    let mut is_dir = |side: Side, p: &RelPath| -> bool {
        *is_dir_cache.entry((side, p.clone())).or_insert_with(|| {
            let fs = if side == Side::Left { lfs } else { rfs };
            matches!(fs.stat(p), Ok(Some(crate::side::Node::Entry(e))) if e.kind == crate::model::Kind::Dir)
        })
    };
    let folds = pair.options.portable_names || lfs.caps().case_insensitive || rfs.caps().case_insensitive;
    // Siblings the planner must see to decide about a path: its case variants (where a side
    // ignores case) and its clash copies (a new clash copy needs a free name).
    let mut listings: std::collections::HashMap<(Side, Option<RelPath>), Vec<String>> = Default::default();
    let mut set = std::collections::BTreeSet::new();
    for p in paths {
        let mut top: Vec<RelPath> = p.ancestors().collect();
        top.reverse();
        let mut chosen = top
            .iter()
            .find(|a| !(is_dir(Side::Left, a) && is_dir(Side::Right, a)))
            .cloned()
            .unwrap_or_else(|| p.clone());
        // Where a side ignores case, a folder with a case twin is planned as a whole: what
        // happens below it depends on which twin may exist on that side.
        if folds {
            if let Some(a) = top.iter().filter(|a| chosen.starts_with(a) && **a != chosen).find(|a| {
                Side::BOTH.iter().any(|side| {
                    let fs = if *side == Side::Left { lfs } else { rfs };
                    let names = listings.entry((*side, a.parent())).or_insert_with(|| {
                        fs.read_dir(&a.dir())
                            .map(|items| items.into_iter().filter_map(|i| i.name.ok()).collect())
                            .unwrap_or_default()
                    });
                    let key = a.name().to_lowercase();
                    names.iter().any(|n| n.to_lowercase() == key && n != a.name())
                })
            }) {
                chosen = a.clone();
            }
        }
        let name = chosen.name().to_lowercase();
        let stem = match name.rfind('.') {
            Some(i) if i > 0 => &name[..i],
            _ => &name[..],
        };
        let clash_prefix = format!("{stem}_clash_");
        for side in Side::BOTH {
            let fs = if side == Side::Left { lfs } else { rfs };
            let names = listings.entry((side, chosen.parent())).or_insert_with(|| {
                fs.read_dir(&chosen.dir())
                    .map(|items| items.into_iter().filter_map(|i| i.name.ok()).collect())
                    .unwrap_or_default()
            });
            for n in names.iter() {
                let l = n.to_lowercase();
                if (folds && l == name && n != chosen.name()) || l.starts_with(&clash_prefix) {
                    set.insert(chosen.with_name(n));
                }
            }
        }
        set.insert(chosen);
    }
    let all: Vec<RelPath> = set.iter().cloned().collect();
    all.into_iter().filter(|p| !p.ancestors().any(|a| set.contains(&a))).collect()
}

/// A targeted plan: only the scope is scanned and only its base loaded. The same planner
/// decides; a path outside the scope is neither read nor touched.
fn build_scoped_plan(cx: &mut Ctx, req: &SyncRequest, paths: &[RelPath], t: std::time::Instant) -> Result<(Plan, u64), ApiError> {
    let (pair, lfs, rfs) = (cx.pair, cx.lfs, cx.rfs);
    let scope = widen_scope(pair, lfs, rfs, paths);
    let (ls, rs) = scan_both_in(pair, lfs, rfs, Some(&scope))?;
    if !req.dry_run {
        remove_leftover_temps(lfs, rfs, &ls, &rs);
    }
    let base = cx.store.load_base_scope(cx.pair_id, &scope)?;
    let base = match &req.forget_base {
        Some(f) => base
            .iter()
            .filter(|(k, _)| !k.starts_with(f))
            .map(|(k, v)| (k.clone(), *v))
            .collect(),
        None => base,
    };
    tracing::debug!(
        ms = t.elapsed().as_millis() as u64,
        paths = scope.len(),
        left = ls.tree.len(),
        right = rs.tree.len(),
        base = base.len(),
        "targeted scan"
    );
    // The emptied-root guard, as in a full run: a root that holds nothing while the base
    // says it held files is an unmounted drive, not a mass deletion.
    let mut base_files = None;
    if !req.allow_mass_delete {
        for (side, s, fs) in [(Side::Left, &ls, lfs), (Side::Right, &rs, rfs)] {
            if !s.root_has_entries {
                let files = *base_files.get_or_insert(cx.store.count_base_files(cx.pair_id)?);
                if files > 0 {
                    return Err(ApiError::RootEmpty {
                        pair: pair.name.clone(),
                        side,
                        root: fs.describe(&RelPath::root()),
                        files,
                    });
                }
            }
        }
    }
    check_root_markers(cx, req, base_files)?;
    let plan = plan_until_done(cx, req, ls, rs, base, t)?;
    let total = match base_files {
        Some(n) => n,
        None if plan.file_deletions() > 0 => cx.store.count_base_files(cx.pair_id)?,
        None => 0,
    };
    Ok((plan, total))
}

/// Plan, fill the hashes the planner asks for, and plan again until it asks for none.
fn plan_until_done(
    cx: &mut Ctx,
    req: &SyncRequest,
    ls: ScanResult,
    rs: ScanResult,
    base: crate::model::Base,
    t: std::time::Instant,
) -> Result<Plan, ApiError> {
    let (pair, lfs, rfs) = (cx.pair, cx.lfs, cx.rfs);
    let mut input = PlanInput {
        unknown: ls
            .unknown
            .into_iter()
            .map(|(p, r)| (Side::Left, p, r))
            .chain(rs.unknown.into_iter().map(|(p, r)| (Side::Right, p, r)))
            .collect(),
        left: ls.tree,
        right: rs.tree,
        base,
    };
    let opts = PlanOptions {
        rules: pair.options.rules,
        soft_delete_max_bytes: pair.options.soft_delete_max_bytes,
        left_names: name_rules(&pair.options, lfs),
        right_names: name_rules(&pair.options, rfs),
        max_path_len: pair.options.max_path_len,
        overrides: &req.overrides,
        utc_offset: &utc_offset,
        comparable_versions: [lfs, rfs].iter().all(|s| s.caps().version == VersionToken::ChangeTime),
        mtime_window_ns: lfs.caps().mtime_resolution_ns.max(rfs.caps().mtime_resolution_ns),
        content_by_meta: !(lfs.caps().cheap_listing && rfs.caps().cheap_listing),
        server_mtimes: [lfs.caps(), rfs.caps()].map(|c| c.server_mtimes()),
    };
    for _ in 0..8 {
        let p = plan::plan(&input, &opts);
        tracing::debug!(
            ms = t.elapsed().as_millis() as u64,
            actions = p.actions.len(),
            hashes = p.hash_requests.len(),
            "planned"
        );
        if p.hash_requests.is_empty() {
            return Ok(p);
        }
        fill_hashes(cx, &mut input, &p.hash_requests, !req.dry_run)?;
    }
    Err(ApiError::Internal(format!(
        "pair {}: the planner kept asking for hashes",
        pair.name
    )))
}

/// One-shot sync of a pair through the given file systems.
pub fn sync_with(
    store: &mut Store,
    pair: &PairConfig,
    lfs: &dyn Replica,
    rfs: &dyn Replica,
    req: &SyncRequest,
) -> Result<SyncReport, ApiError> {
    // A dry run records nothing: an unknown pair is planned from an empty base, unlocked.
    let pair_id = if req.dry_run {
        store.find_pair(&pair.left, &pair.right)?.unwrap_or(-1)
    } else {
        store.pair_id(&pair.name, &pair.left, &pair.right)?
    };
    let _lock = if req.dry_run || req.caller_holds_lock {
        None
    } else {
        let l = lock_pair(store, pair, pair_id)?;
        store.abandon_runs(pair_id)?;
        Some(l)
    };
    let span = tracing::info_span!("sync", pair = %pair.name);
    let _g = span.enter();
    let plan = prepare(store, pair, pair_id, lfs, rfs, req)?;
    apply(store, pair, pair_id, lfs, rfs, req, plan)
}

/// Scan, plan (hashing what the planner asks for) and check the guards; changes nothing
/// but the hash cache. A stop by a guard is recorded as a run (unless dry).
pub fn prepare(
    store: &mut Store,
    pair: &PairConfig,
    pair_id: i64,
    lfs: &dyn Replica,
    rfs: &dyn Replica,
    req: &SyncRequest,
) -> Result<Plan, ApiError> {
    prepare_holding(store, pair, pair_id, lfs, rfs, req).map(|(plan, _)| plan)
}

/// [`prepare`], also returning the paths whose deletions `req.hold_deletes` held back.
pub fn prepare_holding(
    store: &mut Store,
    pair: &PairConfig,
    pair_id: i64,
    lfs: &dyn Replica,
    rfs: &dyn Replica,
    req: &SyncRequest,
) -> Result<(Plan, Vec<RelPath>), ApiError> {
    let mut cx = Ctx {
        store,
        pair_id,
        pair,
        lfs,
        rfs,
    };
    let (plan, total) = match build_plan(&mut cx, req, !req.dry_run && req.scope.is_none()) {
        Ok((p, total)) => match &req.only {
            Some(only) => (scope(p, only), total),
            None => (p, total),
        },
        Err(e) => {
            if !req.dry_run && e.exit_code() == 3 {
                record_stopped(store, pair_id, req.trigger, &e)?;
            }
            return Err(e);
        }
    };
    let (plan, held) = match &req.hold_deletes {
        Some(ripe) => hold_back(plan, ripe, req.hold_creations),
        None => (plan, Vec::new()),
    };
    // Mass guards: deleting, or overwriting with older versions (a side restored from an
    // old backup shows every file as changed, with older times), more than
    // max_delete_percent of the files stops and asks.
    let max = pair.options.max_delete_percent;
    let over = |n: usize| !req.allow_mass_delete && total > 0 && n as u64 * 100 > max as u64 * total;
    let (deletions, overwrites) = (plan.file_deletions(), plan.older_overwrites());
    let stop = if over(deletions) {
        Some(ApiError::MassDelete {
            pair: pair.name.clone(),
            deletions: deletions as u64,
            total,
            percent: deletions as u64 * 100 / total,
            max,
        })
    } else if over(overwrites) {
        Some(ApiError::MassOverwrite {
            pair: pair.name.clone(),
            overwrites: overwrites as u64,
            total,
            percent: overwrites as u64 * 100 / total,
            max,
        })
    } else {
        None
    };
    if let Some(e) = stop {
        if !req.dry_run {
            record_stopped(store, pair_id, req.trigger, &e)?;
        }
        return Err(e);
    }
    Ok((plan, held))
}

/// Leave out the deletions a user made (R7/R8), and with `creations` the new folders and
/// the copies into them, that do not lie at or below a `ripe` path; returns the plan
/// without them and their paths.
fn hold_back(mut plan: Plan, ripe: &[RelPath], creations: bool) -> (Plan, Vec<RelPath>) {
    let ripe: std::collections::BTreeSet<&RelPath> = ripe.iter().collect();
    let is_ripe = |p: &RelPath| ripe.contains(p) || p.ancestors().any(|a| ripe.contains(&a));
    // New folders (and what is copied into them) wait like deletions: a folder moved into
    // a folder just created may be reported as that new folder's content before its old
    // name's removal arrives.
    let new_dirs: std::collections::BTreeSet<RelPath> = plan
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::MkDir {
                path,
                rule: Rule::R9 | Rule::R10,
                ..
            } if creations && !is_ripe(path) => Some(path.clone()),
            _ => None,
        })
        .collect();
    let mut held = Vec::new();
    plan.actions.retain(|a| {
        let hold = match a {
            Action::Delete {
                path,
                rule: Rule::R7 | Rule::R8,
                ..
            } => !is_ripe(path),
            Action::MkDir { path, .. } => new_dirs.contains(path),
            Action::Copy {
                path,
                rule: Rule::R9 | Rule::R10,
                ..
            } => path.ancestors().any(|a| new_dirs.contains(&a)),
            _ => false,
        };
        if hold {
            held.push(a.path().clone());
        }
        !hold
    });
    (plan, held)
}

/// Execute a plan (from [`prepare`], possibly filtered, or stored earlier: the executor
/// re-checks every target) and record the run. A watcher-triggered plan with nothing to do
/// records no run (Tandem's own writes echo back as events that plan to nothing).
pub fn apply(
    store: &mut Store,
    pair: &PairConfig,
    pair_id: i64,
    lfs: &dyn Replica,
    rfs: &dyn Replica,
    req: &SyncRequest,
    plan: Plan,
) -> Result<SyncReport, ApiError> {
    if req.dry_run || (plan.actions.is_empty() && !req.trigger.records_idle_runs()) {
        let n = plan.actions.len();
        let mut counts = RunCounts::default();
        for a in &plan.actions {
            match a {
                Action::Conflict { .. } => counts.conflicts += 1,
                Action::Skip { .. } => counts.skipped += 1,
                _ => {}
            }
        }
        return Ok(SyncReport {
            pair: pair.name.clone(),
            run_id: None,
            status: if req.dry_run { RunStatus::DryRun } else { RunStatus::Ok },
            plan,
            outcomes: vec![None; n],
            counts,
            deferred: 0,
            new_skips: Vec::new(),
            fatal: None,
            disk_full: None,
            duration_ms: 0,
        });
    }
    let started = now_ns();
    let run = store.start_run(pair_id, req.trigger.name(), false)?;
    tracing::info!(run, actions = plan.actions.len(), "executing plan");
    let now = Local::now();
    let opts = ExecOptions {
        concurrency: pair.options.concurrency,
        soft_delete_max_bytes: pair.options.soft_delete_max_bytes,
        trash_stamp: now.format("%Y-%m-%d_%H%M%S").to_string(),
        now: started,
        hooks: req.hooks.clone(),
        ..Default::default()
    };
    let t = std::time::Instant::now();
    let rep: ExecReport = exec::execute(
        &plan,
        lfs,
        rfs,
        &opts,
        &mut StoreSink {
            store,
            pair: pair_id,
            run: Some(run),
        },
    );
    tracing::debug!(ms = t.elapsed().as_millis() as u64, "executed");
    let new_skips = record_outcomes(store, pair_id, &plan, &rep, req, started)?;
    let status = if rep.fatal.is_some() || rep.counts.failed > 0 {
        RunStatus::Partial
    } else {
        RunStatus::Ok
    };
    store.finish_run(
        run,
        if rep.fatal.is_some() {
            "error"
        } else if rep.counts.failed > 0 {
            "partial"
        } else {
            "ok"
        },
        &rep.counts,
        rep.fatal.as_deref(),
    )?;
    if req.only.is_none() && req.scope.is_none() {
        let keep_ns = pair.options.trash_retention_days as i64 * 86_400 * 1_000_000_000;
        store.prune(pair_id, started - keep_ns)?;
    }
    tracing::info!(run, copied = rep.counts.copied, failed = rep.counts.failed, "run finished");
    Ok(SyncReport {
        pair: pair.name.clone(),
        run_id: Some(run),
        status,
        plan,
        outcomes: rep.outcomes,
        counts: rep.counts,
        deferred: rep.deferred,
        new_skips,
        fatal: rep.fatal,
        disk_full: rep.disk_full,
        duration_ms: t.elapsed().as_millis() as u64,
    })
}

/// Keep the actions about `only`: the path, what lies below it, and its clash copies.
fn scope(mut plan: Plan, only: &RelPath) -> Plan {
    let clashes: Vec<RelPath> = plan
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::ClashRename { from, to, .. } if from == only => Some(to.clone()),
            _ => None,
        })
        .collect();
    // A decision on a name (R13 on a double case rename) acts on the case variants too:
    // the losing name is renamed, the old name's base row goes.
    let key = only.to_lowercase_key();
    let under = |p: &RelPath| {
        let k = p.to_lowercase_key();
        k == key || k.starts_with(&format!("{key}/"))
    };
    plan.actions
        .retain(|a| under(a.path()) || clashes.contains(a.path()) || matches!(a, Action::Rename { from, .. } if under(from)));
    plan
}

fn record_stopped(store: &Store, pair_id: i64, trigger: Trigger, e: &ApiError) -> Result<(), ApiError> {
    let run = store.start_run(pair_id, trigger.name(), false)?;
    store.finish_run(run, "stopped", &RunCounts::default(), Some(&e.to_string()))?;
    Ok(())
}

/// Conflicts, clash copies and skipped names go to the state store.
fn record_outcomes(
    store: &Store,
    pair_id: i64,
    plan: &Plan,
    rep: &ExecReport,
    req: &SyncRequest,
    started: i64,
) -> Result<Vec<(Side, RelPath, String)>, ApiError> {
    let mut raised = std::collections::HashSet::new();
    let mut new_skips = Vec::new();
    for (a, o) in plan.actions.iter().zip(&rep.outcomes) {
        match a {
            Action::Conflict {
                path,
                rule,
                left,
                right,
                newer,
            } => {
                let c = ConflictRecord {
                    path,
                    rule: rule.name(),
                    left: left.as_ref(),
                    right: right.as_ref(),
                    newer: *newer,
                    action: "left untouched: waiting for a decision",
                };
                store.upsert_conflict(pair_id, &c)?;
                raised.insert(path.as_str().to_string());
            }
            Action::ClashRename {
                side,
                from,
                to,
                expect,
                rule,
            } if matches!(o, Some(Outcome::Done { .. })) => {
                // A clash handled by the rules is recorded as a conflict already resolved.
                let (l, r) = if *side == Side::Left {
                    (Some(expect), None)
                } else {
                    (None, Some(expect))
                };
                let action = format!("older version kept as {to}");
                let c = ConflictRecord {
                    path: from,
                    rule: rule.name(),
                    left: l,
                    right: r,
                    newer: Some(side.other()),
                    action: &action,
                };
                store.upsert_conflict(pair_id, &c)?;
                store.resolve_conflict(pair_id, from.as_str(), "clash copy")?;
            }
            Action::Skip { side, path, reason } if store.note_skipped(pair_id, *side, path, reason, started)? => {
                tracing::warn!(path = %path, side = %side, "not synced: {reason}");
                new_skips.push((*side, path.clone(), reason.clone()));
            }
            _ => {}
        }
    }
    if req.only.is_none() && req.scope.is_none() {
        store.clear_stale_skipped(pair_id, started)?;
    }
    // Open conflicts the plan no longer raises were settled (on disk, or by a decision).
    // A scoped run speaks only for its own path.
    for c in store.open_conflicts(pair_id)? {
        let p = RelPath::new(&c.path).ok();
        let in_scope = req.only.as_ref().is_none_or(|o| p.as_ref().is_some_and(|p| p.starts_with(o)))
            && req
                .scope
                .as_ref()
                .is_none_or(|sc| p.as_ref().is_some_and(|p| sc.iter().any(|s| p.starts_with(s))));
        if in_scope && !raised.contains(&c.path) {
            let how = match RelPath::new(&c.path).ok().and_then(|p| req.overrides.get(&p).copied()) {
                Some(Keep::Left) => "kept left",
                Some(Keep::Right) => "kept right",
                Some(Keep::Both) => "kept both",
                None => "settled on disk",
            };
            store.resolve_conflict(pair_id, &c.path, how)?;
        }
    }
    Ok(new_skips)
}

/// The path `tandem resync` names: relative to the pair's roots, or absolute below one of
/// them. Anything else (outside both roots, `..`, a root itself) is refused, naming it.
pub fn resync_path(pair: &PairConfig, path: &str) -> Result<RelPath, ApiError> {
    let given = Path::new(path);
    let rel = if given.is_absolute() {
        // The roots are stored absolute (the shells resolve a path given through a
        // symlinked folder before it comes here: `api::resync_arg`).
        let found = [&pair.left, &pair.right]
            .into_iter()
            .find_map(|root| given.strip_prefix(root).ok().map(Path::to_path_buf));
        let Some(rest) = found else {
            return Err(ApiError::Usage(format!(
                "{path} is not below the pair's roots ({} and {})",
                pair.left.display(),
                pair.right.display()
            )));
        };
        let parts: Vec<String> = rest.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
        parts.join("/")
    } else {
        path.trim_end_matches('/').to_string()
    };
    if rel.is_empty() {
        return Err(ApiError::Usage(format!(
            "{path}: name a file or folder below the pair's roots (a whole pair is resynced by `tandem sync`)"
        )));
    }
    RelPath::new(&rel).map_err(|e| ApiError::Usage(format!("{path}: {e}")))
}

/// `tandem resync PATH`: forget what the base knows at and below `path` and decide again
/// from both sides' contents: equal contents become synced, different ones get clash
/// copies (R2, option 1, whatever the pair's R2 option), one-sided ones are copied; nothing
/// is deleted.
pub fn resync_request(pair: &PairConfig, path: &str, dry_run: bool) -> Result<(PairConfig, SyncRequest), ApiError> {
    let rel = resync_path(pair, path)?;
    let mut pair = pair.clone();
    pair.options.rules.r2 = crate::engine::plan::ClashOption::Clash;
    let req = SyncRequest {
        dry_run,
        trigger: Trigger::Resync,
        scope: Some(vec![rel.clone()]),
        forget_base: Some(rel),
        // Never a deletion: the scope may widen to a folder whose other entries the base
        // still knows; their deletions are left to a normal run.
        hold_deletes: Some(Vec::new()),
        ..Default::default()
    };
    Ok((pair, req))
}

/// The request that applies a decision on the conflict at `path` (relative to the pair's
/// roots; `..` and absolute paths are refused).
pub fn resolve_request(path: &str, keep: Keep) -> Result<SyncRequest, ApiError> {
    let rel = RelPath::new(path).map_err(|e| ApiError::Usage(e.to_string()))?;
    Ok(SyncRequest {
        trigger: Trigger::Resolve,
        overrides: [(rel.clone(), keep)].into_iter().collect(),
        only: Some(rel),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::side::mem::{MemFs, MemOptions, MemSide};
    use std::sync::Arc;

    #[test]
    fn purge_trash_removes_only_dated_folders_past_retention() {
        let fs = Arc::new(MemFs::new(MemOptions::default()));
        fs.write("/r/.sync_trash/2026-01-01_120000/a/b.txt", b"old", 1);
        fs.write("/r/.sync_trash/2026-01-01_120000-2/c.txt", b"old too", 1);
        fs.write("/r/.sync_trash/2026-11-20_080000/d.txt", b"recent", 1);
        fs.write("/r/.sync_trash/keep me/e.txt", b"user's", 1);
        let now = chrono::NaiveDateTime::parse_from_str("2026-11-22_120000", "%Y-%m-%d_%H%M%S").unwrap();
        let purged = purge_trash(&MemSide::new(&fs, "/r"), 30, now);
        assert_eq!(purged.len(), 2);
        let left: Vec<String> = fs.files_under("/r").into_keys().collect();
        assert_eq!(left, [".sync_trash/2026-11-20_080000/d.txt", ".sync_trash/keep me/e.txt"]);
    }
}
#[cfg(test)]
mod double_case_tests {
    use super::*;
    use crate::side::mem::{MemFs, MemOptions, MemSide};
    use std::path::Path;
    use std::sync::Arc;

    /// Found by the property test: without file ids the file below a folder renamed on
    /// both sides (d -> a, d -> A) was settled first; its rename created "a" and the
    /// folder's own rename then failed with "target exists", run after run.
    #[test]
    fn regression_a_double_case_folder_rename_without_file_ids_renamed_a_file_first_and_failed() {
        let opts = MemOptions {
            no_ids: true,
            ..Default::default()
        };
        let (lfs, rfs) = (Arc::new(MemFs::new(opts.clone())), Arc::new(MemFs::new(opts)));
        lfs.write("/l/d/e", b"v1", 1_000_000_000);
        rfs.create_dir_all(Path::new("/r")).unwrap();
        let (l, r) = (MemSide::new(&lfs, "/l"), MemSide::new(&rfs, "/r"));
        let pair = PairConfig {
            name: "p".into(),
            left: "/l".into(),
            right: "/r".into(),
            options: Default::default(),
        };
        let mut store = Store::in_memory().unwrap();
        let req = SyncRequest::default();
        sync_with(&mut store, &pair, &l, &r, &req).unwrap();
        rfs.rename(Path::new("/r/d"), Path::new("/r/A")).unwrap();
        lfs.rename(Path::new("/l/d"), Path::new("/l/a")).unwrap();
        let rep = sync_with(&mut store, &pair, &l, &r, &req).unwrap();
        assert_eq!(rep.counts.failed, 0, "{:?}", rep.outcomes);
        let synced = |fs: &MemFs, root: &str| {
            fs.files_under(root)
                .into_keys()
                .filter(|k| !k.starts_with(".sync_trash/"))
                .collect::<Vec<_>>()
        };
        assert_eq!(synced(&lfs, "/l"), ["a/e"]);
        assert_eq!(synced(&rfs, "/r"), ["a/e"]);
        let again = sync_with(
            &mut store,
            &pair,
            &l,
            &r,
            &SyncRequest {
                dry_run: true,
                ..Default::default()
            },
        )
        .unwrap();
        assert!(again.plan.actions.is_empty(), "{:?}", again.plan.actions);
    }
}
