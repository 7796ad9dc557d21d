//! The planner: a pure function from (left snapshot, right snapshot, base, options) to a
//! [`Plan`]. Every rule of SPEC §3 is one branch here. Owns rename/move detection, name
//! portability checks, clash naming and the order of actions.
//! Must not touch: the disk, SQLite, threads, async, the clock (`now` and the time-zone
//! offset come in through [`PlanOptions`]).
//!
//! Hashes are lazy: where size and times cannot decide, the planner needs a content hash it
//! may not have. It then still returns a plan, but with `hash_requests` listing what it
//! needs; the caller fills those hashes into the snapshots and plans again. Only a plan
//! with no requests may be executed.

use crate::model::{Base, BaseEntry, Entry, Hash, Kind, PathMap, RelPath, Side, SideMeta, Snapshot};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

/// R1 / R2: what to do when both sides changed a file differently.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClashOption {
    /// Option 1: the newer keeps the name, the older is kept as a clash copy on both sides.
    Clash,
    /// Option 2: the newer overwrites; the older goes to the trash.
    NewerWins,
    /// Option 3: touch nothing, raise a conflict for the user.
    Manual,
}

/// R13: properties (or case) changed on both sides.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PropsOption {
    Newer,
    LeftWins,
    Manual,
}

/// The configurable rules' options (option 1 is the default everywhere).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rules {
    pub r1: ClashOption,
    pub r2: ClashOption,
    pub r13: PropsOption,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            r1: ClashOption::Clash,
            r2: ClashOption::Clash,
            r13: PropsOption::Newer,
        }
    }
}

/// The rule (SPEC §3) or reason behind an action.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Rule {
    R1,
    #[serde(rename = "R1'")]
    R1Equal,
    R2,
    R3,
    R4,
    R5,
    R6,
    R7,
    R8,
    R9,
    R10,
    R11,
    R12,
    R13,
    R14,
    R15,
    R16,
    R17,
    /// A user's decision on a conflict (`conflicts resolve`).
    Resolve,
    /// Bookkeeping: refresh the base after a metadata-only difference (change time,
    /// file id) with identical content.
    Refresh,
}

impl Rule {
    pub fn name(self) -> &'static str {
        match self {
            Rule::R1 => "R1",
            Rule::R1Equal => "R1'",
            Rule::R2 => "R2",
            Rule::R3 => "R3",
            Rule::R4 => "R4",
            Rule::R5 => "R5",
            Rule::R6 => "R6",
            Rule::R7 => "R7",
            Rule::R8 => "R8",
            Rule::R9 => "R9",
            Rule::R10 => "R10",
            Rule::R11 => "R11",
            Rule::R12 => "R12",
            Rule::R13 => "R13",
            Rule::R14 => "R14",
            Rule::R15 => "R15",
            Rule::R16 => "R16",
            Rule::R17 => "R17",
            Rule::Resolve => "resolve",
            Rule::Refresh => "refresh",
        }
    }
}

/// A user's choice for a conflicting path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Keep {
    Left,
    Right,
    Both,
}

/// One step of a plan. Paths are relative; `side` is where the action writes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Action {
    /// Mirror a rename/move made on the other side (R14, case changes of R11/R12).
    Rename {
        side: Side,
        from: RelPath,
        to: RelPath,
        kind: Kind,
        expect: Entry,
        rule: Rule,
        /// The file changed on `side` since the base: its base row moves without taking
        /// the new observation, so the next plan still sees the change.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        edited: bool,
    },
    /// Move a losing version aside under its clash name, on its own side (R1, R2, R16).
    ClashRename {
        side: Side,
        from: RelPath,
        to: RelPath,
        expect: Entry,
        rule: Rule,
    },
    MkDir {
        side: Side,
        path: RelPath,
        rule: Rule,
    },
    /// Copy `path` from the other side to `side`. `src` is the source as planned, `dst` what
    /// the target held (None: nothing). The old target goes to the trash.
    /// The copy carries the source's mode. `src_mode`: the target side changed the file's
    /// mode while the source changed its content; the source first takes that mode, so both
    /// changes are kept (new content with the new mode), as Unison merges properties apart
    /// from contents.
    Copy {
        side: Side,
        path: RelPath,
        src: Entry,
        dst: Option<Entry>,
        rule: Rule,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        src_mode: Option<u32>,
    },
    /// Apply the other side's mtime and mode (same content); only its mode when
    /// `mode_only` (two sides whose contents agree but whose modes drifted apart).
    SetProps {
        side: Side,
        path: RelPath,
        src: Entry,
        expect: Entry,
        rule: Rule,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        mode_only: bool,
    },
    /// Remove a file (to the trash when `soft`) or an empty folder.
    Delete {
        side: Side,
        path: RelPath,
        expect: Entry,
        soft: bool,
        rule: Rule,
    },
    /// A conflict left for the user (manual options): nothing is touched.
    Conflict {
        path: RelPath,
        rule: Rule,
        left: Option<Entry>,
        right: Option<Entry>,
        newer: Option<Side>,
    },
    /// State only: set (Some) or forget (None) the base of a path.
    Record {
        path: RelPath,
        base: Option<BaseEntry>,
        rule: Rule,
    },
    /// A path that cannot be synced (name the other side cannot hold, symbolic link...):
    /// reported, never acted on.
    Skip {
        side: Side,
        path: RelPath,
        reason: String,
    },
}

impl Action {
    /// Whether applying it changes anything on disk.
    pub fn is_disk_action(&self) -> bool {
        !matches!(self, Action::Conflict { .. } | Action::Record { .. } | Action::Skip { .. })
    }
    pub fn path(&self) -> &RelPath {
        match self {
            Action::Rename { to, .. } | Action::ClashRename { to, .. } => to,
            Action::MkDir { path, .. }
            | Action::Copy { path, .. }
            | Action::SetProps { path, .. }
            | Action::Delete { path, .. }
            | Action::Conflict { path, .. }
            | Action::Record { path, .. }
            | Action::Skip { path, .. } => path,
        }
    }
    pub fn rule(&self) -> Option<Rule> {
        match self {
            Action::Rename { rule, .. }
            | Action::ClashRename { rule, .. }
            | Action::MkDir { rule, .. }
            | Action::Copy { rule, .. }
            | Action::SetProps { rule, .. }
            | Action::Delete { rule, .. }
            | Action::Conflict { rule, .. }
            | Action::Record { rule, .. } => Some(*rule),
            Action::Skip { .. } => None,
        }
    }
    /// Execution phase: renames, folders, copies, properties, deletes, bookkeeping.
    pub fn phase(&self) -> u8 {
        match self {
            Action::Rename { .. } | Action::ClashRename { .. } => 0,
            Action::MkDir { .. } => 1,
            Action::Copy { .. } => 2,
            Action::SetProps { .. } => 3,
            Action::Delete { .. } => 4,
            Action::Record { .. } | Action::Conflict { .. } | Action::Skip { .. } => 5,
        }
    }
    /// Short verb for humans.
    pub fn verb(&self) -> &'static str {
        match self {
            Action::Rename { .. } => "rename",
            Action::ClashRename { .. } => "clash",
            Action::MkDir { .. } => "mkdir",
            Action::Copy { .. } => "copy",
            Action::SetProps { .. } => "props",
            Action::Delete { soft: true, .. } => "trash",
            Action::Delete { .. } => "delete",
            Action::Conflict { .. } => "conflict",
            Action::Record { base: Some(_), .. } => "record",
            Action::Record { .. } => "forget",
            Action::Skip { .. } => "skip",
        }
    }
    pub fn side(&self) -> Option<Side> {
        match self {
            Action::Rename { side, .. }
            | Action::ClashRename { side, .. }
            | Action::MkDir { side, .. }
            | Action::Copy { side, .. }
            | Action::SetProps { side, .. }
            | Action::Delete { side, .. }
            | Action::Skip { side, .. } => Some(*side),
            _ => None,
        }
    }
}

/// What a side's file system can hold.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NameRules {
    /// Names differing only in case are one file there.
    pub case_insensitive: bool,
    /// Windows naming rules apply there (reserved characters and names, trailing dots
    /// and spaces, path length).
    pub windows: bool,
}

/// Everything the planner needs besides the trees.
pub struct PlanOptions<'a> {
    pub rules: Rules,
    pub soft_delete_max_bytes: u64,
    pub left_names: NameRules,
    pub right_names: NameRules,
    /// Longest relative path (UTF-16 units) on a Windows-like side.
    pub max_path_len: usize,
    /// User decisions on conflicts, applied instead of the rules.
    pub overrides: &'a BTreeMap<RelPath, Keep>,
    /// Offset from UTC, in seconds, of the user's time zone at a given instant (ns): used
    /// for clash names. Pure: tests pass a constant.
    pub utc_offset: &'a dyn Fn(i64) -> i32,
    /// Both sides' version tokens are change times on one clock (two local sides), so
    /// they order changes across sides; else (an ETag, no token) they only tell "changed".
    pub comparable_versions: bool,
    /// The coarser of the two sides' mtime steps (ns; 1: exact). Two mtimes closer than
    /// this are the same time (a whole-second cloud drive keeps 10.9 s as 10 s).
    pub mtime_window_ns: i64,
    /// Reading a side's content is a download (a cloud drive, a server): two files of the
    /// same size and the same time (within `mtime_window_ns`) are taken as the same content
    /// without reading them (as rclone's and FreeFileSync's default comparison does),
    /// unless a side's mtimes are server stamps (`server_mtimes`).
    pub content_by_meta: bool,
    /// Per side (left, right): its mtimes are the server's upload stamps, not properties a
    /// user sets (it has version tokens and cannot set mtimes: S3, some WebDAV servers).
    /// There an entry with the base's size and version token is unchanged whatever its
    /// mtime says (a server may stamp a copy anew, or list another time than it answers).
    pub server_mtimes: [bool; 2],
}

impl PlanOptions<'_> {
    /// `a` and `b` are the same time, given the sides' mtime steps.
    pub fn same_time(&self, a: i64, b: i64) -> bool {
        a.abs_diff(b) < self.mtime_window_ns.max(1) as u64
    }

    fn names(&self, s: Side) -> NameRules {
        match s {
            Side::Left => self.left_names,
            Side::Right => self.right_names,
        }
    }
}

/// The planner's input: both snapshots (hashes filled where known), the base, and paths
/// whose state could not be read on a side (they and everything below are left alone).
#[derive(Clone, Debug, Default)]
pub struct PlanInput {
    pub left: Snapshot,
    pub right: Snapshot,
    pub base: Base,
    /// Paths whose state is unknown on a side (unreadable, symbolic link...), with the
    /// reason to report.
    pub unknown: Vec<(Side, RelPath, String)>,
}

impl PlanInput {
    pub fn tree(&self, s: Side) -> &Snapshot {
        match s {
            Side::Left => &self.left,
            Side::Right => &self.right,
        }
    }
    pub fn tree_mut(&mut self, s: Side) -> &mut Snapshot {
        match s {
            Side::Left => &mut self.left,
            Side::Right => &mut self.right,
        }
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Plan {
    pub actions: Vec<Action>,
    /// Hashes the planner needs before this plan may be executed.
    pub hash_requests: Vec<(Side, RelPath)>,
}

impl Plan {
    /// Actions that change the disk.
    pub fn disk_actions(&self) -> impl Iterator<Item = &Action> {
        self.actions.iter().filter(|a| a.is_disk_action())
    }
    /// Number of files the plan deletes (the mass-delete guard's numerator).
    /// Copies that replace a file with an older one (older mtime): what a side restored
    /// from an old backup plans everywhere.
    pub fn older_overwrites(&self) -> usize {
        self.actions
            .iter()
            .filter(
                |a| matches!(a, Action::Copy { src, dst: Some(d), rule: Rule::R3 | Rule::R4, .. } if d.is_file() && src.mtime < d.mtime),
            )
            .count()
    }

    pub fn file_deletions(&self) -> usize {
        self.actions
            .iter()
            .filter(|a| matches!(a, Action::Delete { expect, .. } if expect.is_file()))
            .count()
    }
}

// ------------------------------------------------------------------ names

/// Device names Windows reserves in every folder, with any extension (`CON.txt` too).
const WINDOWS_RESERVED: &[&str] = &["CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"];

/// Why `name` cannot exist on a Windows-like side, if it cannot.
pub fn windows_name_problem(name: &str) -> Option<String> {
    if let Some(c) = name
        .chars()
        .find(|c| matches!(c, '<' | '>' | ':' | '"' | '\\' | '|' | '?' | '*') || (*c as u32) < 32)
    {
        return Some(format!("name contains {c:?}, which Windows does not allow"));
    }
    if name.ends_with('.') || name.ends_with(' ') {
        return Some("name ends with a dot or a space, which Windows does not allow".into());
    }
    let stem = name.split('.').next().unwrap_or("").trim_end().to_ascii_uppercase();
    // COM1-9 and LPT1-9, also with a superscript digit (COM¹, LPT³: Windows maps them to
    // COM1, LPT3). COM0 and LPT0, on Microsoft's list, open as plain files.
    let port = |p: &str| {
        stem.strip_prefix(p).is_some_and(|d| {
            let mut c = d.chars();
            matches!((c.next(), c.next()), (Some('1'..='9' | '¹' | '²' | '³'), None))
        })
    };
    let reserved = WINDOWS_RESERVED.contains(&stem.as_str()) || port("COM") || port("LPT");
    if reserved {
        return Some(format!("{stem} is a reserved device name on Windows"));
    }
    None
}

// ------------------------------------------------------------------ clash names

/// Whether a name is already a clash copy (`x_clash_YYYYMMDDHHMM[-N][.ext]`).
pub fn is_clash_name(name: &str) -> bool {
    let Some(i) = name.rfind("_clash_") else {
        return false;
    };
    let rest = &name[i + 7..];
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    if digits != 12 {
        return false;
    }
    let rest = &rest[12..];
    let rest = match rest.strip_prefix('-') {
        Some(r) => {
            let n = r.bytes().take_while(u8::is_ascii_digit).count();
            if n == 0 {
                return false;
            }
            &r[n..]
        }
        None => rest,
    };
    rest.is_empty() || (rest.starts_with('.') && !rest[1..].contains('.'))
}

/// `dir/name_clash_YYYYMMDDHHMM[-N].ext` for a version whose mtime is `mtime_ns`.
pub fn clash_name(path: &RelPath, mtime_ns: i64, offset_s: i32, n: u32) -> RelPath {
    let secs = mtime_ns.div_euclid(1_000_000_000) + offset_s as i64;
    let stamp = chrono::DateTime::from_timestamp(secs, 0)
        .map(|t| t.format("%Y%m%d%H%M").to_string())
        .unwrap_or_else(|| "000000000000".into());
    let name = path.name();
    // The extension is the last dot-part, unless the dot starts the name (".bashrc").
    let (stem, ext) = match name.rfind('.') {
        Some(i) if i > 0 => (&name[..i], &name[i..]),
        _ => (name, ""),
    };
    let suffix = if n > 1 { format!("-{n}") } else { String::new() };
    path.with_name(&format!("{stem}_clash_{stamp}{suffix}{ext}"))
}

// ------------------------------------------------------------------ working trees

/// A tree seen through the renames planned so far: the original map with whole subtrees
/// moved, without copying what did not move.
struct View<'a, V> {
    orig: &'a PathMap<V>,
    removed: HashSet<RelPath>,
    added: BTreeMap<RelPath, V>,
}

impl<'a, V: Clone> View<'a, V> {
    fn new(orig: &'a PathMap<V>) -> Self {
        View {
            orig,
            removed: HashSet::new(),
            added: BTreeMap::new(),
        }
    }
    fn get(&self, p: &RelPath) -> Option<&V> {
        self.added
            .get(p)
            .or_else(|| if self.removed.contains(p) { None } else { self.orig.get(p) })
    }
    /// `get` for a walk in increasing path order (see `PathMap::seek`).
    fn seek(&self, cursor: &mut usize, p: &RelPath) -> Option<&V> {
        if let Some(v) = self.added.get(p) {
            return Some(v);
        }
        let v = self.orig.seek(cursor, p)?;
        if !self.removed.is_empty() && self.removed.contains(p) {
            None
        } else {
            Some(v)
        }
    }

    /// Every key in order (moved ones included), borrowed from this view.
    fn all_sorted_keys(&self) -> Vec<&RelPath> {
        let orig: Vec<&RelPath> = if self.removed.is_empty() && self.added.is_empty() {
            self.orig.keys().collect()
        } else {
            self.orig
                .keys()
                .filter(|k| !self.removed.contains(*k) && !self.added.contains_key(*k))
                .collect()
        };
        let added: Vec<&RelPath> = self.added.keys().collect();
        merge_sorted(&orig, &added)
    }
    fn contains(&self, p: &RelPath) -> bool {
        self.get(p).is_some()
    }
    /// `p` and everything below it.
    fn subtree(&self, p: &RelPath) -> Vec<(RelPath, V)> {
        let mut out: Vec<(RelPath, V)> = self
            .orig
            .subtree(p)
            .filter(|(k, _)| !self.removed.contains(*k) && !self.added.contains_key(*k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        out.extend(
            self.added
                .range(p.clone()..)
                .take_while(|(k, _)| k.starts_with(p))
                .map(|(k, v)| (k.clone(), v.clone())),
        );
        out
    }
    fn remove(&mut self, p: &RelPath) {
        self.added.remove(p);
        if self.orig.contains_key(p) {
            self.removed.insert(p.clone());
        }
    }
    fn insert(&mut self, p: RelPath, v: V) {
        self.removed.remove(&p);
        self.added.insert(p, v);
    }
    fn move_subtree(&mut self, from: &RelPath, to: &RelPath) {
        for (k, v) in self.subtree(from) {
            self.remove(&k);
            self.insert(k.rebase(from, to), v);
        }
    }
    /// Keys in order, without cloning those of the original map (they live as long as
    /// the input, not as long as this view); keys of moved entries go to `moved`.
    fn sorted_keys(&self, moved: &mut Vec<RelPath>) -> Vec<&'a RelPath> {
        let orig: &'a PathMap<V> = self.orig;
        moved.extend(self.added.keys().cloned());
        if self.removed.is_empty() && self.added.is_empty() {
            return orig.keys().collect();
        }
        orig.keys()
            .filter(|k| !self.removed.contains(*k) && !self.added.contains_key(*k))
            .collect()
    }

    fn keys(&self) -> impl Iterator<Item = &RelPath> {
        self.orig
            .keys()
            .filter(|k| !self.removed.contains(*k) && !self.added.contains_key(*k))
            .chain(self.added.keys())
    }
}

// ------------------------------------------------------------------ classification

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Change {
    Absent,
    New,
    Deleted,
    Unchanged,
    /// Same content, other mtime or mode.
    Props,
    /// Other content (or other kind).
    Content,
}

struct Planner<'a, 'o> {
    opts: &'a PlanOptions<'o>,
    l: View<'a, Entry>,
    r: View<'a, Entry>,
    b: View<'a, BaseEntry>,
    actions: Vec<Action>,
    requests: BTreeSet<(Side, RelPath)>,
    /// Paths (and their subtrees) the plan must leave alone.
    excluded: BTreeSet<RelPath>,
    /// Subtrees whose base no longer applies (R16: a file replaced a folder).
    void_base: Vec<RelPath>,
    /// Lower-cased names taken by planned clash copies.
    reserved: HashSet<String>,
    /// Folders present on one side and deleted on the other: decided after their children.
    dir_deletes: Vec<(Side, RelPath, Entry)>,
    /// Subtree moves applied to a side's view (for mapping hash requests back to the
    /// snapshot's own paths).
    moved: Vec<(Side, RelPath, RelPath)>,
    /// For a case-insensitive side: lower-cased path -> the path as it is there.
    ci_index: [Option<HashMap<String, RelPath>>; 2],
    /// Base rows an R13 double case rename moved to the winning name.
    rebased: Vec<(RelPath, BaseEntry)>,
}

/// Plan one pass. See the module doc for `hash_requests`.
pub fn plan(input: &PlanInput, opts: &PlanOptions) -> Plan {
    let mut p = Planner {
        opts,
        l: View::new(&input.left),
        r: View::new(&input.right),
        b: View::new(&input.base),
        actions: Vec::new(),
        requests: BTreeSet::new(),
        excluded: BTreeSet::new(),
        void_base: Vec::new(),
        reserved: HashSet::new(),
        dir_deletes: Vec::new(),
        moved: Vec::new(),
        ci_index: [None, None],
        rebased: Vec::new(),
    };
    for (side, path, reason) in &input.unknown {
        p.excluded.insert(path.clone());
        p.actions.push(Action::Skip {
            side: *side,
            path: path.clone(),
            reason: reason.clone(),
        });
    }
    // Renames first: names are judged on the trees as they will be once renamed.
    p.settle_double_case_renames();
    for s in Side::BOTH {
        p.detect_renames(s);
    }
    p.check_names();
    p.merge();
    p.finish_dir_deletes();
    p.record_rebased();
    let mut actions = p.actions;
    // Stable: within a phase the emission order (parents first, renames in dependency
    // order) is kept; copies go smallest first.
    actions.sort_by_key(|a| {
        let size = match a {
            Action::Copy { src, .. } => src.size,
            _ => 0,
        };
        let depth = match a {
            Action::Delete { path, .. } => usize::MAX - path.depth(),
            Action::MkDir { path, .. } => path.depth(),
            _ => 0,
        };
        (a.phase(), size, depth)
    });
    Plan {
        actions,
        hash_requests: p.requests.into_iter().collect(),
    }
}

impl<'a> Planner<'a, '_> {
    fn view(&self, s: Side) -> &View<'a, Entry> {
        match s {
            Side::Left => &self.l,
            Side::Right => &self.r,
        }
    }
    fn view_mut(&mut self, s: Side) -> &mut View<'a, Entry> {
        match s {
            Side::Left => &mut self.l,
            Side::Right => &mut self.r,
        }
    }

    fn is_excluded(&self, p: &RelPath) -> bool {
        if self.excluded.is_empty() {
            return false;
        }
        self.excluded.contains(p) || p.ancestors().any(|a| self.excluded.contains(&a))
    }

    /// False below a folder whose base no longer holds (R16).
    fn base_applies(&self, p: &RelPath) -> bool {
        self.void_base.is_empty() || !self.void_base.iter().any(|v| p.starts_with(v) && p != v)
    }

    /// The hash of a side's entry, or record that it is needed.
    fn hash(&mut self, s: Side, p: &RelPath, e: &Entry) -> Option<Hash> {
        if e.hash.is_none() && e.is_file() {
            // Name the path as the snapshot has it, before planned renames moved it.
            let mut orig = p.clone();
            for (side, from, to) in self.moved.iter().rev() {
                if *side == s && orig.starts_with(to) {
                    orig = orig.rebase(to, from);
                }
            }
            self.requests.insert((s, orig));
        }
        e.hash
    }

    // -------------------------------------------------------------- names

    /// Why `p` cannot exist on a Windows-like side, if it cannot.
    fn name_problem(&self, side: Side, p: &RelPath) -> Option<String> {
        if !self.opts.names(side).windows {
            return None;
        }
        p.as_str().split('/').find_map(windows_name_problem).or_else(|| {
            (p.as_str().encode_utf16().count() > self.opts.max_path_len)
                .then(|| format!("path is longer than {} characters", self.opts.max_path_len))
        })
    }

    /// Names the other side cannot hold: reported once per plan and left alone.
    fn check_names(&mut self) {
        for s in Side::BOTH {
            let target = self.opts.names(s.other());
            if !(target.windows || target.case_insensitive) {
                continue;
            }
            let tree = self.view(s);
            let other = self.view(s.other());
            let mut skips: Vec<(RelPath, String)> = Vec::new();
            let mut by_lower: HashMap<String, Vec<RelPath>> = HashMap::new();
            for p in tree.keys() {
                if other.contains(p) {
                    continue;
                }
                if let Some(reason) = self.name_problem(s.other(), p) {
                    skips.push((p.clone(), reason));
                    continue;
                }
                if target.case_insensitive {
                    by_lower.entry(p.to_lowercase_key()).or_default().push(p.clone());
                }
            }
            if target.case_insensitive {
                // A new name with a case variant on either side: a twin on this side (the
                // other side cannot hold both), or an unrelated file on the other side. A
                // variant that is gone from this side but synced before is a case rename:
                // left to rename detection.
                let own_lower: HashMap<String, Vec<RelPath>> = tree.keys().fold(HashMap::new(), |mut m, k| {
                    m.entry(k.to_lowercase_key()).or_default().push(k.clone());
                    m
                });
                let other_lower: HashMap<String, RelPath> = other.keys().map(|k| (k.to_lowercase_key(), k.clone())).collect();
                for (lower, names) in by_lower {
                    let on_other = other_lower.get(&lower);
                    for n in &names {
                        let twins: Vec<&RelPath> = own_lower[&lower].iter().filter(|x| *x != n).collect();
                        let reason = match on_other {
                            // This side holds both names; the other side already has one.
                            Some(t) if twins.contains(&t) => Some(format!(
                                "differs only in case from {:?}; the {} side cannot hold both",
                                t.as_str(),
                                s.other()
                            )),
                            // A synced name that now differs only in case: a case rename.
                            Some(t) if self.b.get(t).is_some() && self.b.get(n).is_none() => None,
                            Some(t) => Some(format!("the {} side has {:?}, which differs only in case", s.other(), t.as_str())),
                            None if !twins.is_empty() && self.b.get(n).is_none() => {
                                let names: Vec<&str> = twins.iter().map(|x| x.as_str()).collect();
                                Some(format!(
                                    "differs only in case from {names:?}; the {} side cannot hold both",
                                    s.other()
                                ))
                            }
                            None => None,
                        };
                        if let Some(r) = reason {
                            skips.push((n.clone(), r));
                        }
                    }
                }
            }
            skips.sort();
            for (p, reason) in skips {
                if self.is_excluded(&p) {
                    continue;
                }
                self.excluded.insert(p.clone());
                self.actions.push(Action::Skip { side: s, path: p, reason });
            }
        }
    }

    // -------------------------------------------------------------- renames (R14)

    fn build_ci_index(&mut self, side: Side) {
        self.ci_index[side as usize] = self
            .opts
            .names(side)
            .case_insensitive
            .then(|| self.view(side).keys().map(|k| (k.to_lowercase_key(), k.clone())).collect());
    }

    /// Find the renames made on `s` and mirror them on the other side.
    fn detect_renames(&mut self, s: Side) {
        self.build_ci_index(s.other());
        let found = self.find_renames(s);
        self.apply_renames(s, found);
    }

    /// R13 for names: a synced path renamed on both sides to names that differ only in
    /// case. One name wins by the R13 option; the other side is renamed to it (no copy).
    fn settle_double_case_renames(&mut self) {
        let mut fl = self.find_renames(Side::Left);
        if fl.is_empty() {
            return;
        }
        // A folder before what lies below it: once a folder is settled its contents moved
        // with it (renaming a file first would create the winning folder name and make the
        // folder's own rename fail).
        fl.sort_by(|a, b| a.0.cmp(&b.0));
        let fr = self.find_renames(Side::Right);
        for (from, tl, kind) in fl {
            let lower = tl.to_lowercase_key();
            let Some((_, tr, _)) = fr
                .iter()
                .find(|(f, t, k)| *f == from && *k == kind && *t != tl && t.to_lowercase_key() == lower)
            else {
                continue;
            };
            // Below a double rename already settled as a conflict: the user decides there.
            if [&from, &tl, tr].iter().any(|x| self.is_excluded(x)) {
                continue;
            }
            let (Some(le), Some(re)) = (self.l.get(&tl).copied(), self.r.get(tr).copied()) else {
                continue;
            };
            // A user's decision on this conflict (`conflicts resolve`) names the winner;
            // else the R13 option.
            let decided = self.opts.overrides.get(&tl).or_else(|| self.opts.overrides.get(tr)).copied();
            let winner = match (decided, self.opts.rules.r13) {
                (Some(Keep::Left), _) | (None, PropsOption::LeftWins) => Side::Left,
                (Some(Keep::Right), _) => Side::Right,
                (None, PropsOption::Manual) => {
                    self.conflict(&tl, Rule::R13, Some(&le), Some(&re));
                    for x in [&from, &tl, tr] {
                        self.excluded.insert(x.clone());
                    }
                    continue;
                }
                // The later rename (its change time) is the newer change.
                // Where the tokens are not comparable times, the left name wins.
                (Some(Keep::Both), _) | (None, PropsOption::Newer) => {
                    if self.opts.comparable_versions && re.version > le.version {
                        Side::Right
                    } else {
                        Side::Left
                    }
                }
            };
            // The winning name must be free on the losing side (a new file there may hold
            // it, where names keep case); else the other name wins, and where neither is
            // free the user decides.
            let name_of = |s: Side| if s == Side::Left { &tl } else { tr };
            let taken = |this: &Self, s: Side| {
                let there = this.view(s.other());
                let name = name_of(s);
                there.get(name).is_some() || name.ancestors().any(|a| there.get(&a).is_some_and(|e| !e.is_dir()))
            };
            let winner = match (taken(self, winner), taken(self, winner.other())) {
                (false, _) => winner,
                (true, false) => winner.other(),
                // Neither name is free: not a case rename to settle here; the ordinary
                // rules see two renames and the names they collide with.
                (true, true) => continue,
            };
            let (t_win, t_lose, e_lose) = if winner == Side::Left {
                (tl.clone(), tr.clone(), re)
            } else {
                (tr.clone(), tl.clone(), le)
            };
            let lose = winner.other();
            self.actions.push(Action::Rename {
                side: lose,
                from: t_lose.clone(),
                to: t_win.clone(),
                kind,
                expect: e_lose,
                rule: Rule::R13,
                edited: false,
            });
            self.view_mut(lose).move_subtree(&t_lose, &t_win);
            self.moved.push((lose, t_lose, t_win.clone()));
            // The base rows move to the winning name: the old ones go; the new ones are
            // recorded unless the merge plans something there (which records them itself).
            for (k, v) in self.b.subtree(&from) {
                self.b.remove(&k);
                let to = k.rebase(&from, &t_win);
                self.b.insert(to.clone(), v);
                self.rebased.push((to, v));
                self.actions.push(Action::Record {
                    path: k,
                    base: None,
                    rule: Rule::R13,
                });
            }
        }
    }

    /// Renames made on `s`: (base path, new path, kind).
    fn find_renames(&mut self, s: Side) -> Vec<(RelPath, RelPath, Kind)> {
        let o = s.other();
        // Deleted on s: in base, absent on s. New on s: present, not in base. One linear
        // pass over both sorted key lists.
        let (only_base, only_side) = sorted_difference(&self.b.all_sorted_keys(), &self.view(s).all_sorted_keys());
        let deleted: Vec<(RelPath, BaseEntry)> = only_base
            .into_iter()
            .filter(|p| !self.is_excluded(p))
            .map(|p| (p.clone(), *self.b.get(p).unwrap()))
            .collect();
        if deleted.is_empty() {
            return Vec::new();
        }
        let new: Vec<(RelPath, Entry)> = only_side
            .into_iter()
            .filter(|p| !self.is_excluded(p))
            .map(|p| (p.clone(), *self.view(s).get(p).unwrap()))
            .collect();
        if new.is_empty() {
            return Vec::new();
        }
        let mut taken: HashSet<RelPath> = HashSet::new();
        let mut found: Vec<(RelPath, RelPath, Kind)> = Vec::new();

        // 1. Same file id (and, for files, same size and mtime: a reused inode must not
        //    pass for a rename).
        let by_id: HashMap<u64, usize> = new
            .iter()
            .enumerate()
            .filter(|(_, (_, e))| e.file_id != 0)
            .map(|(i, (_, e))| (e.file_id, i))
            .collect();
        for (bp, be) in &deleted {
            let m = be.side(s);
            if m.file_id == 0 {
                continue;
            }
            if let Some(&i) = by_id.get(&m.file_id) {
                let (np, ne) = &new[i];
                let same = ne.kind == be.kind && (be.kind == Kind::Dir || (ne.size == be.size && ne.mtime == m.mtime));
                if same && !taken.contains(np) {
                    taken.insert(np.clone());
                    found.push((bp.clone(), np.clone(), be.kind));
                }
            }
        }
        // 2. Files without a usable id: same size, mtime and content.
        let mut by_meta: HashMap<(u64, i64), Vec<usize>> = HashMap::new();
        for (i, (np, ne)) in new.iter().enumerate() {
            if ne.is_file() && !taken.contains(np) {
                by_meta.entry((ne.size, ne.mtime)).or_default().push(i);
            }
        }
        let matched_from: HashSet<RelPath> = found.iter().map(|f| f.0.clone()).collect();
        for (bp, be) in &deleted {
            if be.kind != Kind::File || matched_from.contains(bp) {
                continue;
            }
            let Some(cands) = by_meta.get(&(be.size, be.side(s).mtime)) else {
                continue;
            };
            for &i in cands {
                let (np, ne) = &new[i];
                if taken.contains(np) {
                    continue;
                }
                let Some(h) = self.hash(s, np, ne) else {
                    continue;
                };
                if Some(h) == be.hash {
                    taken.insert(np.clone());
                    found.push((bp.clone(), np.clone(), Kind::File));
                    break;
                }
            }
        }
        // 3. Where the other side ignores case: a path that now differs only in case.
        if self.opts.names(o).case_insensitive || self.opts.names(s).case_insensitive {
            let lower: HashMap<String, &RelPath> = new
                .iter()
                .filter(|(p, _)| !taken.contains(p))
                .map(|(p, _)| (p.to_lowercase_key(), p))
                .collect();
            let matched_from: HashSet<RelPath> = found.iter().map(|f| f.0.clone()).collect();
            for (bp, be) in &deleted {
                if matched_from.contains(bp) {
                    continue;
                }
                if let Some(np) = lower.get(&bp.to_lowercase_key()) {
                    if self.view(s).get(np).map(|e| e.kind) == Some(be.kind) && !taken.contains(*np) {
                        taken.insert((*np).clone());
                        found.push((bp.clone(), (*np).clone(), be.kind));
                    }
                }
            }
        }
        // 4. Folders without ids: a deleted folder whose files all reappear, by the rules
        //    above, under one new folder with the same names.
        self.infer_dir_renames(s, &deleted, &mut found);
        found
    }

    /// Mirror found renames, outermost first; renames inside an applied folder move with it.
    fn apply_renames(&mut self, s: Side, mut found: Vec<(RelPath, RelPath, Kind)>) {
        found.sort_by(|a, b| a.0.depth().cmp(&b.0.depth()).then(a.0.cmp(&b.0)));
        let mut applied: Vec<(RelPath, RelPath)> = Vec::new();
        for (from, to, kind) in found {
            if applied
                .iter()
                .any(|(af, at)| from.starts_with(af) && to.starts_with(at) && from.rebase(af, at) == to)
            {
                continue; // moved along with its folder
            }
            let from_now = applied
                .iter()
                .rev()
                .find(|(af, _)| from.starts_with(af))
                .map(|(af, at)| from.rebase(af, at))
                .unwrap_or_else(|| from.clone());
            if self.mirror_rename(s, &from_now, &to, kind) {
                applied.push((from_now, to));
            }
        }
    }

    fn infer_dir_renames(&self, s: Side, deleted: &[(RelPath, BaseEntry)], found: &mut Vec<(RelPath, RelPath, Kind)>) {
        let already: HashSet<&RelPath> = found.iter().filter(|f| f.2 == Kind::Dir).map(|f| &f.0).collect();
        let mut votes: BTreeMap<(RelPath, RelPath), usize> = BTreeMap::new();
        for (from, to, kind) in found.iter() {
            if *kind != Kind::File || from.name() != to.name() {
                continue;
            }
            let (mut f, mut t) = (from.parent(), to.parent());
            while let (Some(fp), Some(tp)) = (f.clone(), t.clone()) {
                let fdel = deleted.iter().any(|(p, b)| p == &fp && b.kind == Kind::Dir);
                let tnew = self.view(s).get(&tp).is_some_and(|e| e.is_dir()) && !self.b.contains(&tp);
                if !(fdel && tnew) || already.contains(&fp) {
                    break;
                }
                *votes.entry((fp.clone(), tp.clone())).or_default() += 1;
                if fp.name() != tp.name() {
                    break;
                }
                f = fp.parent();
                t = tp.parent();
            }
        }
        for ((from, to), n) in votes {
            // Every file the base had below `from` must be accounted for by that move.
            let files_below = self.b.subtree(&from).iter().filter(|(_, b)| b.kind == Kind::File).count();
            if n == files_below && n > 0 && !found.iter().any(|f| f.0 == from) {
                found.push((from, to, Kind::Dir));
            }
        }
    }

    /// Plan `from -> to` on the side opposite `s`, if that side still holds `from` and has
    /// nothing at `to`. Returns whether it was planned.
    fn mirror_rename(&mut self, s: Side, from: &RelPath, to: &RelPath, kind: Kind) -> bool {
        let o = s.other();
        let Some(oe) = self.view(o).get(from).copied() else {
            return false;
        };
        if oe.kind != kind || self.b.contains(to) || self.is_excluded(to) || self.name_problem(o, to).is_some() {
            return false;
        }
        // A file the other side changed meanwhile moves along with its change; its base row
        // must then keep that side's old observation, or the change would go unseen.
        let edited = kind == Kind::File
            && self
                .b
                .get(from)
                .copied()
                .is_some_and(|be| self.classify(o, from, Some(&be), Some(&oe)) == Change::Content);
        let case_only = from.to_lowercase_key() == to.to_lowercase_key();
        // Where `o` ignores case, `to` "exists" there as `from` itself for a case-only rename.
        if self.view(o).contains(to) && !(case_only && self.opts.names(o).case_insensitive) {
            return false;
        }
        // On a case-insensitive side, neither the destination nor a folder above it may
        // exist under another case (except the source itself, for a case-only rename).
        if !case_only && self.blocked_by_case(o, to) {
            return false;
        }
        if case_only && to.ancestors().any(|q| self.blocked_by_case(o, &q)) {
            return false;
        }
        // Every folder above the destination must be (or become) a folder on o, not a file.
        if to.ancestors().any(|a| self.view(o).get(&a).is_some_and(|e| e.is_file())) {
            return false;
        }
        let rule = if case_only && kind == Kind::File {
            if s == Side::Left {
                Rule::R11
            } else {
                Rule::R12
            }
        } else {
            Rule::R14
        };
        self.actions.push(Action::Rename {
            side: o,
            from: from.clone(),
            to: to.clone(),
            kind,
            expect: oe,
            rule,
            edited,
        });
        let moved = self.view(o).subtree(from);
        self.view_mut(o).move_subtree(from, to);
        self.moved.push((o, from.clone(), to.clone()));
        if let Some(index) = &mut self.ci_index[o as usize] {
            for (k, _) in &moved {
                index.remove(&k.to_lowercase_key());
            }
            for (k, _) in &moved {
                let n = k.rebase(from, to);
                index.insert(n.to_lowercase_key(), n);
            }
        }
        for (k, v) in self.b.subtree(from) {
            self.b.remove(&k);
            self.b.insert(k.rebase(from, to), v);
        }
        // Parents of the destination that are new on s get created on o by the executor
        // before the rename; they are planned as MkDir by the merge as usual.
        true
    }

    // -------------------------------------------------------------- merge

    fn classify(&mut self, s: Side, p: &RelPath, b: Option<&BaseEntry>, x: Option<&Entry>) -> Change {
        let (b, x) = match (b, x) {
            (None, None) => return Change::Absent,
            (None, Some(_)) => return Change::New,
            (Some(_), None) => return Change::Deleted,
            (Some(b), Some(x)) => (b, x),
        };
        if b.kind != x.kind {
            return Change::Content;
        }
        if x.is_dir() {
            return Change::Unchanged;
        }
        if x.size != b.size {
            return Change::Content;
        }
        let m = b.side(s);
        let ids_same =
            (x.file_id == 0 || m.file_id == 0 || x.file_id == m.file_id) && (x.version == 0 || m.version == 0 || x.version == m.version);
        let stamped = self.opts.server_mtimes[s as usize] && x.version != 0 && x.version == m.version;
        if (x.mtime == m.mtime || stamped) && ids_same {
            return if x.mode == m.mode || x.mode == 0 || m.mode == 0 {
                Change::Unchanged
            } else {
                Change::Props
            };
        }
        match (self.hash(s, p, x), b.hash) {
            (Some(h), Some(bh)) if h == bh => {
                if x.mtime != m.mtime || (x.mode != m.mode && x.mode != 0 && m.mode != 0) {
                    Change::Props
                } else {
                    Change::Unchanged
                }
            }
            _ => Change::Content,
        }
    }

    /// Same content on both sides (requesting hashes when sizes agree).
    fn same_content(&mut self, p: &RelPath, l: &Entry, r: &Entry) -> bool {
        if l.kind != r.kind {
            return false;
        }
        if l.is_dir() {
            return true;
        }
        if l.size != r.size {
            return false;
        }
        // Not where a side's mtimes are server stamps: there a time says when a file was
        // uploaded, not what it holds (a local write and another client's upload in the
        // same second are not the same content).
        if self.opts.content_by_meta && !self.opts.server_mtimes.contains(&true) && self.opts.same_time(l.mtime, r.mtime) {
            return true;
        }
        let hl = self.hash(Side::Left, p, l);
        let hr = self.hash(Side::Right, p, r);
        matches!((hl, hr), (Some(a), Some(b)) if a == b)
    }

    fn record(&mut self, p: &RelPath, l: &Entry, r: &Entry, rule: Rule) {
        let hash = l.hash.or(r.hash);
        self.actions.push(Action::Record {
            path: p.clone(),
            base: Some(BaseEntry::from_pair(l, r, hash)),
            rule,
        });
    }

    /// On a case-insensitive side, a creation at `p` waits while another case variant of
    /// `p` (or of a folder above it) is still there: this run removes or renames that
    /// variant (deletes run last), the next run creates `p`.
    fn blocked_by_case(&self, side: Side, p: &RelPath) -> bool {
        let Some(index) = &self.ci_index[side as usize] else {
            return false;
        };
        std::iter::once(p.clone())
            .chain(p.ancestors())
            .any(|q| index.get(&q.to_lowercase_key()).is_some_and(|t| *t != q))
    }

    fn copy(&mut self, to: Side, p: &RelPath, src: &Entry, dst: Option<&Entry>, rule: Rule) {
        self.copy_with_src_mode(to, p, src, dst, rule, None)
    }

    /// A copy whose source first takes `src_mode` (see [`Action::Copy`]).
    fn copy_with_src_mode(&mut self, to: Side, p: &RelPath, src: &Entry, dst: Option<&Entry>, rule: Rule, src_mode: Option<u32>) {
        if dst.is_none() && self.blocked_by_case(to, p) {
            return;
        }
        if src.is_dir() {
            self.actions.push(Action::MkDir {
                side: to,
                path: p.clone(),
                rule,
            });
        } else {
            self.actions.push(Action::Copy {
                side: to,
                path: p.clone(),
                src: *src,
                dst: dst.copied(),
                rule,
                src_mode,
            });
        }
    }

    fn delete(&mut self, side: Side, p: &RelPath, e: &Entry, rule: Rule) {
        if e.is_dir() {
            self.dir_deletes.push((side, p.clone(), *e));
        } else {
            self.actions.push(Action::Delete {
                side,
                path: p.clone(),
                expect: *e,
                soft: e.size <= self.opts.soft_delete_max_bytes,
                rule,
            });
        }
    }

    fn merge(&mut self) {
        for s in Side::BOTH {
            self.build_ci_index(s);
        }
        // Every path of the three trees, in order: a linear merge of sorted lists.
        let mut moved = Vec::new();
        let mut keys = merge_sorted(&self.l.sorted_keys(&mut moved), &self.r.sorted_keys(&mut moved));
        keys = merge_sorted(&keys, &self.b.sorted_keys(&mut moved));
        moved.sort_unstable();
        moved.dedup();
        let moved_refs: Vec<&RelPath> = moved.iter().collect();
        let keys = merge_sorted(&keys, &moved_refs);
        let mut skip_below: Option<RelPath> = None;
        let mut cursors = [0usize; 3];
        for p in keys {
            let p = p.clone();
            if let Some(s) = &skip_below {
                if p.starts_with(s) {
                    continue;
                }
                skip_below = None;
            }
            if self.is_excluded(&p) {
                skip_below = Some(p.clone());
                continue;
            }
            let b = self.b.seek(&mut cursors[2], &p).copied().filter(|_| self.base_applies(&p));
            let l = self.l.seek(&mut cursors[0], &p).copied();
            let r = self.r.seek(&mut cursors[1], &p).copied();
            if let Some(k) = self.opts.overrides.get(&p).copied() {
                self.resolve(&p, k, b.as_ref(), l.as_ref(), r.as_ref());
                continue;
            }
            self.decide(&p, b.as_ref(), l.as_ref(), r.as_ref());
        }
    }

    fn decide(&mut self, p: &RelPath, b: Option<&BaseEntry>, l: Option<&Entry>, r: Option<&Entry>) {
        use Change::*;
        let lc = self.classify(Side::Left, p, b, l);
        let rc = self.classify(Side::Right, p, b, r);
        match (l, r) {
            (Some(le), Some(re)) if le.kind != re.kind => {
                let file_side = if le.is_file() { Side::Left } else { Side::Right };
                self.file_vs_folder(p, file_side, if le.is_file() { le } else { re });
                return;
            }
            _ => {}
        }
        match (lc, rc) {
            (Absent, Absent) => {}
            (Deleted, Deleted) => self.actions.push(Action::Record {
                path: p.clone(),
                base: None,
                rule: Rule::R15,
            }),
            (New, Absent) => self.copy(Side::Right, p, l.unwrap(), None, Rule::R9),
            (Absent, New) => self.copy(Side::Left, p, r.unwrap(), None, Rule::R10),
            (Deleted, Unchanged) => self.delete(Side::Right, p, r.unwrap(), Rule::R7),
            (Unchanged, Deleted) => self.delete(Side::Left, p, l.unwrap(), Rule::R8),
            (Deleted, Props | Content) => self.copy(Side::Left, p, r.unwrap(), None, Rule::R5),
            (Props | Content, Deleted) => self.copy(Side::Right, p, l.unwrap(), None, Rule::R6),
            (Unchanged, Unchanged) => {
                let (le, re, be) = (l.unwrap(), r.unwrap(), b.unwrap());
                // Same content, two modes, both sides keeping theirs: a copy by an older
                // Tandem gave the target the default mode. Align them (see `mode_winner`).
                let keeps_modes = be.left.mode != 0 && be.right.mode != 0;
                if le.is_file() && keeps_modes && le.mode != 0 && re.mode != 0 && le.mode != re.mode {
                    let rule = if mode_winner(le, re) == Side::Left { Rule::R11 } else { Rule::R12 };
                    self.record_aligned(p, le, re, rule);
                    return;
                }
                // Refresh a base whose side metadata moved without a content change
                // (change time, file id), so it is not hashed again next time.
                // A side recorded with mode 0 does not keep modes: it stays 0.
                let meta = |e: &Entry, m: &SideMeta| SideMeta {
                    mode: if m.mode == 0 { 0 } else { e.mode },
                    ..SideMeta::of(e)
                };
                let (ml, mr) = (meta(le, &be.left), meta(re, &be.right));
                if le.is_file() && (ml != be.left || mr != be.right) {
                    let mut nb = *be;
                    nb.left = ml;
                    nb.right = mr;
                    self.actions.push(Action::Record {
                        path: p.clone(),
                        base: Some(nb),
                        rule: Rule::Refresh,
                    });
                }
            }
            (Props, Unchanged) => self.set_props(Side::Right, p, l.unwrap(), r.unwrap(), Rule::R11),
            (Unchanged, Props) => self.set_props(Side::Left, p, r.unwrap(), l.unwrap(), Rule::R12),
            (Props, Props) => {
                let (le, re) = (l.unwrap(), r.unwrap());
                if self.opts.same_time(le.mtime, re.mtime) && le.mode == re.mode {
                    self.record(p, le, re, Rule::R13);
                } else {
                    match self.opts.rules.r13 {
                        PropsOption::Manual => self.conflict(p, Rule::R13, l, r),
                        PropsOption::LeftWins => self.set_props(Side::Right, p, le, re, Rule::R13),
                        PropsOption::Newer => {
                            if newer(le, re) == Side::Left {
                                self.set_props(Side::Right, p, le, re, Rule::R13)
                            } else {
                                self.set_props(Side::Left, p, re, le, Rule::R13)
                            }
                        }
                    }
                }
            }
            (Content, Unchanged) => self.copy(Side::Right, p, l.unwrap(), r, Rule::R3),
            (Unchanged, Content) => self.copy(Side::Left, p, r.unwrap(), l, Rule::R4),
            (Content, Props) => self.copy_merging_mode(p, Side::Left, b.unwrap(), l.unwrap(), r.unwrap(), Rule::R3),
            (Props, Content) => self.copy_merging_mode(p, Side::Right, b.unwrap(), r.unwrap(), l.unwrap(), Rule::R4),
            (Content, Content) | (New, New) => {
                let (le, re) = (l.unwrap(), r.unwrap());
                let both_new = lc == New;
                if self.same_content(p, le, re) {
                    self.record_aligned(p, le, re, if both_new { Rule::R2 } else { Rule::R1Equal });
                } else {
                    let (rule, opt) = if both_new {
                        (Rule::R2, self.opts.rules.r2)
                    } else {
                        (Rule::R1, self.opts.rules.r1)
                    };
                    self.clash(p, le, re, rule, opt);
                }
            }
            // Impossible combinations (New needs no base, Deleted/Unchanged need one).
            (New, _) | (_, New) | (Absent, _) | (_, Absent) => {}
        }
    }

    fn set_props(&mut self, side: Side, p: &RelPath, src: &Entry, expect: &Entry, rule: Rule) {
        self.actions.push(Action::SetProps {
            side,
            path: p.clone(),
            src: *src,
            expect: *expect,
            rule,
            mode_only: false,
        });
    }

    /// A content change on `from` meets a property change on the other side: copy the new
    /// content and keep the other side's new mode (when its mode is what changed).
    fn copy_merging_mode(&mut self, p: &RelPath, from: Side, b: &BaseEntry, src: &Entry, dst: &Entry, rule: Rule) {
        let to = from.other();
        let mode_changed = dst.mode != 0 && b.side(to).mode != 0 && dst.mode != b.side(to).mode;
        let src_mode = (mode_changed && src.mode != 0 && src.mode != dst.mode).then_some(dst.mode);
        self.copy_with_src_mode(to, p, src, Some(dst), rule, src_mode);
    }

    /// Both sides hold the same content as files: record it, first aligning their modes
    /// when both sides keep modes and they differ (the executor's property change then
    /// records the base). Which mode wins: [`mode_winner`].
    fn record_aligned(&mut self, p: &RelPath, l: &Entry, r: &Entry, rule: Rule) {
        if l.is_file() && l.mode != 0 && r.mode != 0 && l.mode != r.mode {
            let win = mode_winner(l, r);
            let (src, expect) = if win == Side::Left { (l, r) } else { (r, l) };
            self.actions.push(Action::SetProps {
                side: win.other(),
                path: p.clone(),
                src: *src,
                expect: *expect,
                rule,
                mode_only: true,
            });
        } else {
            self.record(p, l, r, rule);
        }
    }

    fn conflict(&mut self, p: &RelPath, rule: Rule, l: Option<&Entry>, r: Option<&Entry>) {
        let newer = match (l, r) {
            (Some(a), Some(b)) => Some(newer(a, b)),
            (Some(_), None) => Some(Side::Left),
            (None, Some(_)) => Some(Side::Right),
            _ => None,
        };
        self.actions.push(Action::Conflict {
            path: p.clone(),
            rule,
            left: l.copied(),
            right: r.copied(),
            newer,
        });
    }

    /// Both sides hold different contents at `p` (R1, R2).
    fn clash(&mut self, p: &RelPath, le: &Entry, re: &Entry, rule: Rule, opt: ClashOption) {
        let win = newer(le, re);
        let (we, oe) = if win == Side::Left { (le, re) } else { (re, le) };
        match opt {
            ClashOption::Manual => self.conflict(p, rule, Some(le), Some(re)),
            // A clash copy of a clash copy would multiply names: the newer wins instead.
            _ if opt == ClashOption::NewerWins || is_clash_name(p.name()) => {
                self.copy(win.other(), p, we, Some(oe), rule);
            }
            _ => self.keep_both(p, win, we, oe, rule),
        }
    }

    /// The newer keeps the name on both sides; the older is kept on both sides under its
    /// clash name.
    fn keep_both(&mut self, p: &RelPath, win: Side, we: &Entry, oe: &Entry, rule: Rule) {
        let lose = win.other();
        let cp = self.free_clash_name(p, oe.mtime);
        self.actions.push(Action::ClashRename {
            side: lose,
            from: p.clone(),
            to: cp.clone(),
            expect: *oe,
            rule,
        });
        self.copy(lose, p, we, None, rule);
        self.copy(win, &cp, oe, None, rule);
    }

    fn free_clash_name(&mut self, p: &RelPath, mtime: i64) -> RelPath {
        let off = (self.opts.utc_offset)(mtime);
        let mut n = 1;
        loop {
            let cand = clash_name(p, mtime, off, n);
            let lower = cand.to_lowercase_key();
            let taken = self.reserved.contains(&lower)
                || [&self.l, &self.r].iter().any(|v| v.contains(&cand))
                || self.b.contains(&cand)
                || ((self.opts.left_names.case_insensitive || self.opts.right_names.case_insensitive)
                    && [&self.l, &self.r].iter().any(|v| v.keys().any(|k| k.to_lowercase_key() == lower)));
            if !taken {
                self.reserved.insert(lower);
                return cand;
            }
            n += 1;
        }
    }

    /// R16: a file on one side, a folder on the other. The folder keeps the name; the file
    /// is kept as a clash copy (on both sides).
    fn file_vs_folder(&mut self, p: &RelPath, file_side: Side, fe: &Entry) {
        let cp = self.free_clash_name(p, fe.mtime);
        self.actions.push(Action::ClashRename {
            side: file_side,
            from: p.clone(),
            to: cp.clone(),
            expect: *fe,
            rule: Rule::R16,
        });
        self.copy(file_side.other(), &cp, fe, None, Rule::R16);
        self.actions.push(Action::MkDir {
            side: file_side,
            path: p.clone(),
            rule: Rule::R16,
        });
        // Whatever the base said about the folder's content no longer holds on the file
        // side: its children are copied over, never deleted from the folder side.
        self.void_base.push(p.clone());
    }

    /// A user's decision (`conflicts resolve`).
    fn resolve(&mut self, p: &RelPath, keep: Keep, b: Option<&BaseEntry>, l: Option<&Entry>, r: Option<&Entry>) {
        let rule = Rule::Resolve;
        let one_side = |this: &mut Self, from: Side, e_from: Option<&Entry>, e_to: Option<&Entry>| match (e_from, e_to) {
            // Same content: the kept side's properties (mtime, mode) still win.
            (Some(f), Some(t)) if this.same_content(p, f, t) && f.is_file() && (f.mtime != t.mtime || f.mode != t.mode) => {
                this.set_props(from.other(), p, f, t, rule)
            }
            (Some(f), Some(t)) if this.same_content(p, f, t) => this.record(p, l.unwrap(), r.unwrap(), rule),
            (Some(f), t) => this.copy(from.other(), p, f, t, rule),
            (None, Some(t)) => this.delete(from.other(), p, t, rule),
            (None, None) => {
                if b.is_some() {
                    this.actions.push(Action::Record {
                        path: p.clone(),
                        base: None,
                        rule,
                    });
                }
            }
        };
        match keep {
            Keep::Left => one_side(self, Side::Left, l, r),
            Keep::Right => one_side(self, Side::Right, r, l),
            Keep::Both => match (l, r) {
                (Some(le), Some(re)) if le.is_file() && re.is_file() => {
                    if self.same_content(p, le, re) {
                        self.record_aligned(p, le, re, rule);
                    } else {
                        let win = newer(le, re);
                        let (we, oe) = if win == Side::Left { (le, re) } else { (re, le) };
                        self.keep_both(p, win, we, oe, rule);
                    }
                }
                (Some(le), None) => self.copy(Side::Right, p, le, None, rule),
                (None, Some(re)) => self.copy(Side::Left, p, re, None, rule),
                _ => self.decide(p, b, l, r),
            },
        }
    }

    // -------------------------------------------------------------- folders (R17)

    /// A folder deleted on one side and present on the other is removed only when nothing
    /// below it survives on the present side; otherwise it is re-created (R17).
    /// Record the base rows an R13 rename moved, where nothing else was planned (an
    /// action there records the path's new base itself).
    fn record_rebased(&mut self) {
        if self.rebased.is_empty() {
            return;
        }
        // The R13 renames themselves move no base row (their base lies under the old name).
        let planned: HashSet<RelPath> = self
            .actions
            .iter()
            .filter(|a| !matches!(a, Action::Record { rule: Rule::R13, .. } | Action::Rename { rule: Rule::R13, .. }))
            .map(|a| a.path().clone())
            .collect();
        for (path, base) in std::mem::take(&mut self.rebased) {
            if !planned.contains(&path) && !self.is_excluded(&path) {
                self.actions.push(Action::Record {
                    path,
                    base: Some(base),
                    rule: Rule::R13,
                });
            }
        }
    }

    fn finish_dir_deletes(&mut self) {
        let mut deletes = std::mem::take(&mut self.dir_deletes);
        // Deepest first, so a parent sees its children's outcome.
        deletes.sort_by(|a, b| b.1.depth().cmp(&a.1.depth()).then(a.1.cmp(&b.1)));
        let mut removed: HashSet<(Side, RelPath)> = self
            .actions
            .iter()
            .filter_map(|a| match a {
                Action::Delete { side, path, .. } => Some((*side, path.clone())),
                _ => None,
            })
            .collect();
        for (side, p, e) in deletes {
            let below = self.view(side).subtree(&p);
            let survives = below.iter().any(|(k, _)| k != &p && !removed.contains(&(side, k.clone())))
                || self.excluded.iter().any(|x| x.starts_with(&p) && x != &p);
            if survives && self.blocked_by_case(side.other(), &p) {
                // Recreated next run, once the case variant is gone.
            } else if survives {
                self.actions.push(Action::MkDir {
                    side: side.other(),
                    path: p.clone(),
                    rule: Rule::R17,
                });
            } else {
                let rule = if side == Side::Right { Rule::R7 } else { Rule::R8 };
                self.actions.push(Action::Delete {
                    side,
                    path: p.clone(),
                    expect: e,
                    soft: true,
                    rule,
                });
                removed.insert((side, p));
            }
        }
    }
}

/// Walk two sorted lists together: `f(Some(x), None)` for an item only in `a`,
/// `f(None, Some(y))` only in `b`, `f(Some(x), Some(x))` in both.
fn walk_sorted<'k>(a: &[&'k RelPath], b: &[&'k RelPath], mut f: impl FnMut(Option<&'k RelPath>, Option<&'k RelPath>)) {
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        let order = match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) => x.cmp(y),
            (Some(_), None) => std::cmp::Ordering::Less,
            _ => std::cmp::Ordering::Greater,
        };
        match order {
            std::cmp::Ordering::Less => {
                f(Some(a[i]), None);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                f(None, Some(b[j]));
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                f(Some(a[i]), Some(b[j]));
                i += 1;
                j += 1;
            }
        }
    }
}

/// Of two sorted lists: what only the first holds, what only the second holds.
fn sorted_difference<'k>(a: &[&'k RelPath], b: &[&'k RelPath]) -> (Vec<&'k RelPath>, Vec<&'k RelPath>) {
    let (mut only_a, mut only_b) = (Vec::new(), Vec::new());
    walk_sorted(a, b, |x, y| match (x, y) {
        (Some(x), None) => only_a.push(x),
        (None, Some(y)) => only_b.push(y),
        _ => {}
    });
    (only_a, only_b)
}

/// Merge two sorted lists into one, each path once.
fn merge_sorted<'k>(a: &[&'k RelPath], b: &[&'k RelPath]) -> Vec<&'k RelPath> {
    let mut out = Vec::with_capacity(a.len().max(b.len()));
    walk_sorted(a, b, |x, y| out.extend(x.or(y)));
    out
}

/// Which side holds the newer version (later mtime; left on a tie).
/// Which side's mode wins when two sides hold the same content with different modes and
/// neither side's change says which is newer: a mode other than a creation default (0644,
/// 0664, 0666: what a file written without care gets) wins over a default one, since it was
/// set on purpose (an executable script, a private 0600 file); otherwise the newer file
/// (left on a tie).
pub fn mode_winner(l: &Entry, r: &Entry) -> Side {
    let default = |m: u32| matches!(m & 0o7777, 0o644 | 0o664 | 0o666);
    match (default(l.mode), default(r.mode)) {
        (true, false) => Side::Right,
        (false, true) => Side::Left,
        _ => newer(l, r),
    }
}

pub fn newer(l: &Entry, r: &Entry) -> Side {
    if r.mtime > l.mtime {
        Side::Right
    } else {
        Side::Left
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clash_names() {
        let p = RelPath::new("d/Report.final.docx").unwrap();
        // 2026-11-22 14:30:00 UTC
        let t = 1_795_357_800_000_000_000;
        assert_eq!(clash_name(&p, t, 0, 1).as_str(), "d/Report.final_clash_202611221430.docx");
        assert_eq!(clash_name(&p, t, 3600, 2).as_str(), "d/Report.final_clash_202611221530-2.docx");
        assert_eq!(
            clash_name(&RelPath::new(".bashrc").unwrap(), t, 0, 1).as_str(),
            ".bashrc_clash_202611221430"
        );
        assert!(is_clash_name("Report.final_clash_202611221430.docx"));
        assert!(is_clash_name("Makefile_clash_202611221430-3"));
        assert!(!is_clash_name("my_clash_notes.txt"));
    }

    #[test]
    fn windows_names() {
        for bad in [
            "a:b",
            "CON",
            "con.txt",
            "LPT1.doc",
            "trail.",
            "trail ",
            "q?",
            "x\u{1}",
            "CONIN$",
            "conout$.log",
            "COM\u{b9}",
            "lpt\u{b3}.txt",
        ] {
            assert!(windows_name_problem(bad).is_some(), "{bad}");
        }
        for ok in ["CONSOLE.txt", "COM0", "a.b.c", "Verträge_305"] {
            assert!(windows_name_problem(ok).is_none(), "{ok}");
        }
    }
}
