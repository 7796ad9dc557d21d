//! Plain data shared by every layer: relative paths, sides, entry metadata, snapshots and
//! the base (last-synced state). Owns validation of relative paths (no `..`, no absolute
//! paths, no empty components), so nothing built from a `RelPath` can leave a root.
//! Must not touch: the disk, the clock, SQLite.

pub mod names;
pub mod schedule;
pub mod units;

use serde::{Deserialize, Serialize};
use std::fmt;

/// A blake3 content hash.
pub type Hash = [u8; 32];

/// Hex form of a hash, for display and JSON.
pub fn hash_hex(h: &Hash) -> String {
    h.iter().map(|b| format!("{b:02x}")).collect()
}

/// Serde form of an optional hash: a hex string.
pub mod serde_hash {
    use super::{hash_from_hex, hash_hex, Hash};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(h: &Option<Hash>, s: S) -> Result<S::Ok, S::Error> {
        match h {
            Some(h) => s.serialize_str(&hash_hex(h)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Hash>, D::Error> {
        let s: Option<String> = Option::deserialize(d)?;
        match s {
            None => Ok(None),
            Some(s) => hash_from_hex(&s)
                .map(Some)
                .ok_or_else(|| serde::de::Error::custom("expected 64 hex digits")),
        }
    }
}

/// Parse the hex form back.
pub fn hash_from_hex(s: &str) -> Option<Hash> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(s.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(out)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Left,
    Right,
}

impl Side {
    pub fn other(self) -> Side {
        match self {
            Side::Left => Side::Right,
            Side::Right => Side::Left,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Side::Left => "left",
            Side::Right => "right",
        }
    }
    pub const BOTH: [Side; 2] = [Side::Left, Side::Right];
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    File,
    Dir,
}

/// Why a relative path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid relative path {path:?}: {reason}")]
pub struct BadPath {
    pub path: String,
    pub reason: &'static str,
}

/// A path relative to a pair root, `/`-separated, never with `.`/`..` components, never
/// absolute, and never empty except for [`RelPath::root`] (the root folder itself, which
/// only sides are asked about: no tree, plan or base holds it). Ordering is byte order with `/` sorting before every other
/// character that can appear in a name, so a folder always sorts right before its children.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RelPath(Box<str>);

impl RelPath {
    pub fn new(s: &str) -> Result<RelPath, BadPath> {
        let bad = |reason| BadPath {
            path: s.to_string(),
            reason,
        };
        if s.is_empty() {
            return Err(bad("empty path"));
        }
        if s.starts_with('/') {
            return Err(bad("absolute paths are not allowed"));
        }
        // On Windows a backslash separates and a colon names a drive or a stream: either
        // could lead out of the root. Elsewhere both are ordinary name characters (names
        // Windows cannot hold are caught by the planner's name checks).
        if cfg!(windows) && (s.contains('\\') || s.contains(':')) {
            return Err(bad("absolute paths, drive letters and backslashes are not allowed"));
        }
        if s.contains('\0') {
            return Err(bad("NUL character"));
        }
        for c in s.split('/') {
            match c {
                "" => return Err(bad("empty path component")),
                "." | ".." => return Err(bad("'.' and '..' components are not allowed")),
                _ => {}
            }
        }
        Ok(RelPath(s.into()))
    }

    /// The side's root folder itself (for stat, listing and creating the root).
    pub fn root() -> RelPath {
        RelPath("".into())
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Join a child name (a single component).
    pub fn join(&self, name: &str) -> Result<RelPath, BadPath> {
        if self.is_root() {
            return RelPath::new(name);
        }
        RelPath::new(&format!("{}/{}", self.0, name))
    }

    pub fn name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }

    pub fn parent(&self) -> Option<RelPath> {
        self.0.rfind('/').map(|i| RelPath(self.0[..i].into()))
    }

    /// The folder holding this path: its parent, or the root for a top-level name.
    pub fn dir(&self) -> RelPath {
        self.parent().unwrap_or_else(RelPath::root)
    }

    /// Every proper ancestor, nearest first.
    pub fn ancestors(&self) -> impl Iterator<Item = RelPath> + '_ {
        let s = &self.0;
        s.char_indices()
            .filter(|(_, c)| *c == '/')
            .map(|(i, _)| RelPath(s[..i].into()))
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
    }

    pub fn depth(&self) -> usize {
        self.0.matches('/').count()
    }

    /// True when `self` is `other` or lies below it.
    pub fn starts_with(&self, other: &RelPath) -> bool {
        other.is_root()
            || self.0.len() >= other.0.len()
                && self.0.starts_with(&*other.0)
                && (self.0.len() == other.0.len() || self.0.as_bytes()[other.0.len()] == b'/')
    }

    /// Replace the prefix `from` with `to` (`self` must start with `from`).
    pub fn rebase(&self, from: &RelPath, to: &RelPath) -> RelPath {
        debug_assert!(self.starts_with(from));
        let rest = self.0[from.0.len()..].trim_start_matches('/');
        match (to.is_root(), rest.is_empty()) {
            (_, true) => to.clone(),
            (true, false) => RelPath(rest.into()),
            (false, false) => RelPath(format!("{}/{rest}", to.0).into()),
        }
    }

    /// Sibling with another final name.
    pub fn with_name(&self, name: &str) -> RelPath {
        match self.parent() {
            Some(p) => RelPath(format!("{}/{}", p.0, name).into()),
            None => RelPath(name.into()),
        }
    }

    pub fn to_lowercase_key(&self) -> String {
        self.0.to_lowercase()
    }
}

impl TryFrom<String> for RelPath {
    type Error = BadPath;
    fn try_from(s: String) -> Result<Self, BadPath> {
        RelPath::new(&s)
    }
}
impl From<RelPath> for String {
    fn from(p: RelPath) -> String {
        p.0.into()
    }
}
impl fmt::Display for RelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl fmt::Debug for RelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", &*self.0)
    }
}
/// Folder-first order: the order of the component lists, so `a/b` < `a b` (children of
/// `a` come right after `a`, before its siblings). Computed as a byte comparison in which
/// `/` ranks below every other byte: at the first differing byte, a `/` means that side's
/// component ended first. (This is the planner's and scanner's hot path: no splitting.)
impl Ord for RelPath {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        let (a, b) = (self.0.as_bytes(), other.0.as_bytes());
        let rank = |c: u8| if c == b'/' { 0u16 } else { c as u16 + 1 };
        match a.iter().zip(b).position(|(x, y)| x != y) {
            Some(i) => rank(a[i]).cmp(&rank(b[i])),
            None => a.len().cmp(&b.len()),
        }
    }
}
impl PartialOrd for RelPath {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// What the scanner saw of one path on one side. Times are nanoseconds since the Unix
/// epoch. `file_id` (a stable id that survives renames) and `version` (a token that changes
/// whenever the content may have changed: the local change time, a server's ETag) are 0
/// where the side has none (then change detection falls back to size+mtime+hash).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub kind: Kind,
    pub size: u64,
    pub mtime: i64,
    /// Permission bits (Unix) or attribute bits (Windows); 0 when unknown.
    pub mode: u32,
    pub file_id: u64,
    /// The side's version token (see `side::VersionToken`); 0: none.
    pub version: i64,
    #[serde(skip_serializing_if = "Option::is_none", default, with = "serde_hash")]
    pub hash: Option<Hash>,
}

impl Entry {
    pub fn is_dir(&self) -> bool {
        self.kind == Kind::Dir
    }
    pub fn is_file(&self) -> bool {
        self.kind == Kind::File
    }
    /// Same object as observed before, as far as metadata can tell (used by the executor's
    /// re-check). Hashes are not compared: they are computed lazily.
    pub fn same_meta(&self, other: &Entry) -> bool {
        self.kind == other.kind
            && (self.kind == Kind::Dir
                || (self.size == other.size
                    && self.mtime == other.mtime
                    && (self.file_id == 0 || other.file_id == 0 || self.file_id == other.file_id)
                    && (self.version == 0 || other.version == 0 || self.version == other.version)))
    }
}

/// One side's last-synced observation of a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct SideMeta {
    pub mtime: i64,
    pub file_id: u64,
    pub version: i64,
    pub mode: u32,
}

impl SideMeta {
    pub fn of(e: &Entry) -> SideMeta {
        SideMeta {
            mtime: e.mtime,
            file_id: e.file_id,
            version: e.version,
            mode: e.mode,
        }
    }
}

/// The base: what both sides held after the last successful sync of a path. Content
/// (kind, size, hash) is shared; times and ids are per side, so a side with coarse
/// timestamps (FAT, some cloud drives) is compared with its own last observation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaseEntry {
    pub kind: Kind,
    pub size: u64,
    #[serde(default, with = "serde_hash")]
    pub hash: Option<Hash>,
    pub left: SideMeta,
    pub right: SideMeta,
}

impl BaseEntry {
    pub fn side(&self, s: Side) -> &SideMeta {
        match s {
            Side::Left => &self.left,
            Side::Right => &self.right,
        }
    }
    pub fn side_mut(&mut self, s: Side) -> &mut SideMeta {
        match s {
            Side::Left => &mut self.left,
            Side::Right => &mut self.right,
        }
    }
    /// A base in which both sides hold `left` and `right` (same content).
    pub fn from_pair(left: &Entry, right: &Entry, hash: Option<Hash>) -> BaseEntry {
        BaseEntry {
            kind: left.kind,
            size: if left.is_dir() { 0 } else { left.size },
            hash: hash.or(left.hash).or(right.hash),
            left: SideMeta::of(left),
            right: SideMeta::of(right),
        }
    }
    /// The entry a side would show if it still held the base unchanged.
    pub fn as_entry(&self, s: Side) -> Entry {
        let m = self.side(s);
        Entry {
            kind: self.kind,
            size: self.size,
            mtime: m.mtime,
            mode: m.mode,
            file_id: m.file_id,
            version: m.version,
            hash: self.hash,
        }
    }
}

/// A map from relative paths to values, kept as one sorted `Vec` (folder-first order):
/// binary-search lookups, subtree ranges, and no per-node overhead. Built once from sorted
/// input (scanner, state store) and rarely modified.
#[derive(Clone, Debug, PartialEq)]
pub struct PathMap<V> {
    items: Vec<(RelPath, V)>,
}

impl<V> Default for PathMap<V> {
    fn default() -> Self {
        PathMap { items: Vec::new() }
    }
}

impl<V> PathMap<V> {
    pub fn new() -> Self {
        Self::default()
    }

    /// From items already sorted by path, without duplicates.
    pub fn from_sorted(items: Vec<(RelPath, V)>) -> Self {
        debug_assert!(
            items.windows(2).all(|w| w[0].0 < w[1].0),
            "PathMap::from_sorted needs sorted, unique paths"
        );
        PathMap { items }
    }

    fn find(&self, k: &RelPath) -> Result<usize, usize> {
        self.items.binary_search_by(|(p, _)| p.cmp(k))
    }

    pub fn get(&self, k: &RelPath) -> Option<&V> {
        self.find(k).ok().map(|i| &self.items[i].1)
    }

    pub fn get_mut(&mut self, k: &RelPath) -> Option<&mut V> {
        self.find(k).ok().map(|i| &mut self.items[i].1)
    }

    pub fn contains_key(&self, k: &RelPath) -> bool {
        self.find(k).is_ok()
    }

    /// Lookup for callers that visit paths in increasing order: `cursor` only moves forward,
    /// so a whole ordered walk costs about one comparison per item.
    pub fn seek(&self, cursor: &mut usize, k: &RelPath) -> Option<&V> {
        while *cursor < self.items.len() && self.items[*cursor].0 < *k {
            *cursor += 1;
        }
        self.items.get(*cursor).filter(|(p, _)| p == k).map(|(_, v)| v)
    }

    pub fn insert(&mut self, k: RelPath, v: V) -> Option<V> {
        match self.find(&k) {
            Ok(i) => Some(std::mem::replace(&mut self.items[i].1, v)),
            Err(i) => {
                self.items.insert(i, (k, v));
                None
            }
        }
    }

    pub fn remove(&mut self, k: &RelPath) -> Option<V> {
        self.find(k).ok().map(|i| self.items.remove(i).1)
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&RelPath, &V)> {
        self.items.iter().map(|(k, v)| (k, v))
    }

    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &RelPath> {
        self.items.iter().map(|(k, _)| k)
    }

    pub fn values(&self) -> impl DoubleEndedIterator<Item = &V> {
        self.items.iter().map(|(_, v)| v)
    }

    pub fn values_mut(&mut self) -> impl DoubleEndedIterator<Item = &mut V> {
        self.items.iter_mut().map(|(_, v)| v)
    }

    /// `p` and everything below it, in order.
    pub fn subtree<'s>(&'s self, p: &'s RelPath) -> impl Iterator<Item = (&'s RelPath, &'s V)> + 's {
        let start = self.find(p).unwrap_or_else(|i| i);
        self.items[start..]
            .iter()
            .take_while(move |(k, _)| k.starts_with(p))
            .map(|(k, v)| (k, v))
    }
}

impl<V> FromIterator<(RelPath, V)> for PathMap<V> {
    /// Any order; for a repeated path the last value wins (as with a map insert).
    fn from_iter<I: IntoIterator<Item = (RelPath, V)>>(iter: I) -> Self {
        let mut items: Vec<(RelPath, V)> = iter.into_iter().collect();
        items.sort_by(|a, b| a.0.cmp(&b.0));
        let mut out: Vec<(RelPath, V)> = Vec::with_capacity(items.len());
        for it in items {
            match out.last_mut() {
                Some(last) if last.0 == it.0 => *last = it,
                _ => out.push(it),
            }
        }
        PathMap { items: out }
    }
}

impl<V> IntoIterator for PathMap<V> {
    type Item = (RelPath, V);
    type IntoIter = std::vec::IntoIter<(RelPath, V)>;
    fn into_iter(self) -> Self::IntoIter {
        self.items.into_iter()
    }
}

/// One side's tree as scanned.
pub type Snapshot = PathMap<Entry>;
/// The base tree.
pub type Base = PathMap<BaseEntry>;

/// Format nanoseconds since the epoch as RFC 3339 (UTC), for humans and JSON.
pub fn fmt_time(ns: i64) -> String {
    chrono::DateTime::from_timestamp(ns.div_euclid(1_000_000_000), ns.rem_euclid(1_000_000_000) as u32)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| ns.to_string())
}

/// A byte count as people read it: "512 B", "3.4 GiB".
pub fn human_bytes(b: u64) -> String {
    const U: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1024.0 && i < U.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", U[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relpath_rejects_escapes() {
        for bad in ["", "/etc", "../x", "a/../b", "a//b", "a/./b", "a/", ".."] {
            assert!(RelPath::new(bad).is_err(), "{bad:?} accepted");
        }
        assert!(RelPath::new("a/b c/d.txt").is_ok());
        // Legal names on Linux; the planner keeps them away from Windows sides.
        assert_eq!(RelPath::new("a:b.txt").is_ok(), !cfg!(windows));
    }

    #[test]
    fn relpath_orders_children_after_parent() {
        let mut v: Vec<RelPath> = ["a b", "a/b", "a", "a/b/c", "a.txt"]
            .iter()
            .map(|s| RelPath::new(s).unwrap())
            .collect();
        v.sort();
        let s: Vec<&str> = v.iter().map(|p| p.as_str()).collect();
        assert_eq!(s, ["a", "a/b", "a/b/c", "a b", "a.txt"]);
    }

    #[test]
    fn relpath_order_is_component_order() {
        let names = [
            "a", "a b", "a.b", "a/b", "a/b c", "a/b/c", "a-b", "ab", "a/b.c", "b", "é", "a/é", "A",
        ];
        for x in names {
            for y in names {
                let (p, q) = (RelPath::new(x).unwrap(), RelPath::new(y).unwrap());
                assert_eq!(p.cmp(&q), x.split('/').cmp(y.split('/')), "{x} vs {y}");
            }
        }
    }

    #[test]
    fn relpath_prefix_ops() {
        let p = RelPath::new("a/b/c").unwrap();
        let a = RelPath::new("a").unwrap();
        let ab = RelPath::new("a/b").unwrap();
        assert!(p.starts_with(&a) && p.starts_with(&ab) && !ab.starts_with(&p));
        assert!(!RelPath::new("ab").unwrap().starts_with(&a));
        assert_eq!(p.rebase(&ab, &RelPath::new("x").unwrap()).as_str(), "x/c");
        assert_eq!(p.ancestors().map(|a| a.to_string()).collect::<Vec<_>>(), ["a/b", "a"]);
    }

    #[test]
    fn hash_hex_roundtrip() {
        let h = *blake3::hash(b"x").as_bytes();
        assert_eq!(hash_from_hex(&hash_hex(&h)), Some(h));
    }
}

/// A change to the base, produced by the executor once an action is durable.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum BaseUpdate {
    Set(RelPath, BaseEntry),
    Remove(RelPath),
    /// Move a path and everything below it.
    Move {
        from: RelPath,
        to: RelPath,
    },
    /// Refresh one side's observation of a path.
    SetSide {
        path: RelPath,
        side: Side,
        meta: SideMeta,
    },
}
