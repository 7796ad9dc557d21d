//! Chaos: a seeded random user edits both roots of a running `tandem run` (the real binary)
//! while it syncs: creates, in-place overwrites (also same-size rewrites that put the old
//! mtime back), editor saves (a temporary file renamed over the file), appends, slow
//! writers, mtime-only changes, deletes (unlink, `rm -rf`, moves out of the root), renames
//! and case-only renames of files and folders, chmod, file <-> folder swaps, conflicting
//! edits of one file on both sides, and bursts without a pause; the service is killed (-9)
//! and restarted once or twice. The tree is small (6 names in 6 folders, with case variants)
//! so that edits collide.
//!
//! Then the user stops, the service must settle (both trees equal, nothing waiting) and stop
//! cleanly, and the oracle holds:
//! - both roots hold the same files, contents, modes and folders (trash excluded);
//! - every version the user wrote and did not destroy itself on the side where it wrote it
//!   still exists: on either side, as a clash copy, or in a `.sync_trash` folder;
//! - no `.tandem-*.tmp` file is left anywhere;
//! - a one-shot `tandem sync --dry-run --json` afterwards plans nothing;
//! - renames of tracked items (synced before the chaos starts, never touched by the random
//!   user, renamed once on a random side at a random moment: folder and file renames, a
//!   case-only one, moves into an existing folder and into a folder created for the move)
//!   stay renames: the other side's files keep their inodes.
//!
//! Every version is a unique content (`chaos SEED vNNNNNN SIDE` + filler). What the user
//! destroyed is read just before it is destroyed (through the same descriptor for in-place
//! writes; deletions move the item out of the root first, or read each file right before
//! unlinking it), so "superseded" is exactly what the user's own operation removed.
//!
//! Seeds: a fixed list, 3 by default, `TANDEM_CHAOS_SECS` seconds of edits each (20);
//! `TANDEM_CHAOS_SEEDS=n` runs n seeds (beyond the list: fresh ones from the clock, printed);
//! `TANDEM_CHAOS_SEED=0x1234,0x5678` runs exactly those (to reproduce a failure). A failure
//! prints the seed, the last 200 operations, both trees, both trashes and the service's
//! warnings, and keeps the temp folder (`TANDEM_CHAOS_VERBOSE=1`: the same for a pass).
//!
//! On Windows the same user runs without chmod (the only mode Tandem carries there is the
//! read-only attribute, which would make the user's own edits fail); modes compare that
//! attribute, inodes are file indexes, and kill -9 is TerminateProcess.
// Linux and Windows: other Unixes lack renameat2 (a rename that never replaces).
#![cfg(any(target_os = "linux", windows))]

use crate::common::{file_id, files_below, start_service, Pair, Svc, TRASH};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
#[cfg(unix)]
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tandem::model::Side::{self, Left, Right};
#[cfg(windows)]
use windows_file_ext::FileExt;

/// The seeds CI runs (the first `TANDEM_CHAOS_SEEDS` of them, 3 by default).
const SEEDS: [u64; 6] = [
    0x5eed_0001,
    0xc4a0_5d1f_7e11,
    0x7a2d_e111_0b5e,
    0x00dd_ba11_cafe,
    0xfee1_600d_d00d,
    0x0b1a_57ed_5eed,
];

/// Folders and file names of the random user (each component also in another case).
const DIRS: [&str; 5] = ["a", "b", "c", "a/x", "b/y"];
const NAMES: [&str; 6] = ["f0.txt", "f1.txt", "f2.txt", "f3.txt", "notes.md", "Makefile"];
// The modes chmod gives (Unix only: no chmod on Windows, see `Chaos::chmod`).
#[cfg(unix)]
const MODES: [u32; 3] = [0o644, 0o755, 0o700];

// ------------------------------------------------------------------ the test

#[test]
fn chaos_random_user_edits_both_sides_of_a_running_service() {
    let secs: u64 = std::env::var("TANDEM_CHAOS_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(20);
    let mut failed = Vec::new();
    for seed in seeds() {
        let started = Instant::now();
        let mut c = Chaos::new(seed);
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| c.run(secs)));
        let problems = match outcome {
            Ok(p) => p,
            Err(e) => {
                let msg = e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                vec![format!("panicked: {msg}")]
            }
        };
        if problems.is_empty() {
            eprintln!(
                "chaos seed {seed:#x}: ok in {:.1} s ({})",
                started.elapsed().as_secs_f64(),
                c.stats()
            );
            if std::env::var_os("TANDEM_CHAOS_VERBOSE").is_some() {
                eprintln!("{}", c.report(&problems, secs));
            }
        } else {
            eprintln!("{}", c.report(&problems, secs));
            c.keep();
            failed.push(format!("{seed:#x}"));
        }
    }
    assert!(
        failed.is_empty(),
        "chaos failed for seeds {failed:?} (details above; reproduce with TANDEM_CHAOS_SEED=<seed> cargo nextest run chaos)"
    );
}

/// The seeds to run: `TANDEM_CHAOS_SEED` (a list), else the first `TANDEM_CHAOS_SEEDS` of the
/// fixed list, then fresh ones.
fn seeds() -> Vec<u64> {
    if let Ok(list) = std::env::var("TANDEM_CHAOS_SEED") {
        return list
            .split(',')
            .map(|s| {
                let s = s.trim();
                match s.strip_prefix("0x") {
                    Some(h) => u64::from_str_radix(h, 16),
                    None => s.parse(),
                }
                .unwrap_or_else(|_| panic!("TANDEM_CHAOS_SEED: not a number: {s:?}"))
            })
            .collect();
    }
    let n: usize = std::env::var("TANDEM_CHAOS_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(3);
    let mut out: Vec<u64> = SEEDS.iter().copied().take(n).collect();
    let mut fresh = Rng(std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64);
    while out.len() < n {
        let s = fresh.next() >> 16;
        eprintln!("chaos: fresh seed {s:#x}");
        out.push(s);
    }
    out
}

// ------------------------------------------------------------------ randomness

/// splitmix64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    fn side(&mut self) -> Side {
        if self.chance(50) {
            Left
        } else {
            Right
        }
    }
    fn pick<T: Clone>(&mut self, v: &[T]) -> Option<T> {
        if v.is_empty() {
            None
        } else {
            Some(v[self.below(v.len())].clone())
        }
    }
    fn millis(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(lo + self.next() % (hi - lo + 1))
    }
}

// ------------------------------------------------------------------ bookkeeping

fn sname(s: Side) -> &'static str {
    match s {
        Left => "L",
        Right => "R",
    }
}

/// A version the user wrote.
struct Version {
    side: Side,
    op: usize,
    what: String,
    /// The operation of the user's that destroyed it on its own side.
    superseded: Option<usize>,
}

/// An item renamed once during the chaos, synced before and otherwise never touched.
struct Tracked {
    from: &'static str,
    to: &'static str,
    /// Files below the item, relative to it ("" when the item is a file).
    files: Vec<&'static str>,
    /// When (into the chaos) and on which side it is renamed.
    at: Duration,
    side: Side,
    done: bool,
    /// Inodes of `from/file` on each side once synced, before the chaos.
    ino: [Vec<u64>; 2],
}

fn side_ix(s: Side) -> usize {
    match s {
        Left => 0,
        Right => 1,
    }
}

fn join(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b.to_string(),
        (_, true) => a.to_string(),
        _ => format!("{a}/{b}"),
    }
}

fn parent_of(rel: &str) -> &str {
    rel.rsplit_once('/').map(|(p, _)| p).unwrap_or("")
}

fn name_of(rel: &str) -> &str {
    rel.rsplit('/').next().unwrap()
}

/// The name with its first letter in the other case.
fn flip_case(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) if f.is_uppercase() => f.to_lowercase().chain(c).collect(),
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

fn is_tandem_tmp(rel: &str) -> bool {
    let n = name_of(rel);
    n.starts_with(".tandem-") && n.ends_with(".tmp")
}

fn in_trash(rel: &str) -> bool {
    rel == TRASH || rel.starts_with(&format!("{TRASH}/"))
}

/// Paths the random user may touch: not the trash, not a tracked item.
fn chaos_owned(rel: &str) -> bool {
    let top = rel.split('/').next().unwrap();
    !in_trash(rel) && !top.to_ascii_lowercase().starts_with("trk-")
}

/// Every entry below `dir` (relative to `root`), parents before children; entries that
/// vanish meanwhile are left out.
fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, fs::Metadata)>) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    let mut entries: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        let Ok(md) = fs::symlink_metadata(&p) else { continue };
        let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
        #[cfg(windows)]
        let rel = rel.replace('\\', "/");
        let is_dir = md.is_dir();
        out.push((rel, md));
        if is_dir {
            walk(root, &p, out);
        }
    }
}

fn walk_all(root: &Path) -> Vec<(String, fs::Metadata)> {
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out
}

/// A side as the oracle compares it: files (mode, content) and folders, trash and Tandem's
/// temporary files left out.
#[derive(PartialEq)]
struct Tree {
    files: BTreeMap<String, (u32, Vec<u8>)>,
    dirs: BTreeSet<String>,
}

fn tree(root: &Path) -> Tree {
    let mut files = BTreeMap::new();
    let mut dirs = BTreeSet::new();
    for (rel, md) in walk_all(root) {
        if in_trash(&rel) {
            continue;
        }
        if md.is_dir() {
            dirs.insert(rel);
        } else if md.is_file() && !is_tandem_tmp(&rel) {
            if let Ok(data) = fs::read(root.join(&rel)) {
                files.insert(rel, (mode_bits(&md), data));
            }
        }
    }
    Tree { files, dirs }
}

/// The first line of a content, for the logs.
fn head(data: &[u8]) -> String {
    let line = data.split(|&b| b == b'\n').next().unwrap_or_default();
    String::from_utf8_lossy(&line[..line.len().min(48)]).into_owned()
}

/// The version numbers in a content (an appended file holds several).
fn vnames(data: &[u8]) -> String {
    let s = String::from_utf8_lossy(data);
    s.split("chaos ")
        .skip(1)
        .filter_map(|t| t.split([' ', '\n']).nth(1))
        .collect::<Vec<_>>()
        .join("+")
}

/// The mode Tandem carries: the permission bits on Unix, the read-only attribute (1) on
/// Windows.
fn mode_bits(md: &fs::Metadata) -> u32 {
    #[cfg(unix)]
    {
        md.mode() & 0o7777
    }
    #[cfg(windows)]
    {
        u32::from(md.permissions().readonly())
    }
}

#[cfg(unix)]
fn rename_noreplace(from: &Path, to: &Path) -> std::io::Result<()> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let f = CString::new(from.as_os_str().as_bytes())?;
    let t = CString::new(to.as_os_str().as_bytes())?;
    // SAFETY: two valid NUL-terminated paths; plain syscall.
    let r = unsafe { libc::renameat2(libc::AT_FDCWD, f.as_ptr(), libc::AT_FDCWD, t.as_ptr(), libc::RENAME_NOREPLACE) };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(windows)]
fn rename_noreplace(from: &Path, to: &Path) -> std::io::Result<()> {
    use std::os::windows::ffi::OsStrExt;
    let wide = |p: &Path| -> Vec<u16> { p.as_os_str().encode_wide().chain(std::iter::once(0)).collect() };
    let (f, t) = (wide(from), wide(to));
    // SAFETY: two valid NUL-terminated paths; without MOVEFILE_REPLACE_EXISTING an existing
    // target is never replaced.
    if unsafe { windows_sys::Win32::Storage::FileSystem::MoveFileExW(f.as_ptr(), t.as_ptr(), 0) } != 0 {
        return Ok(());
    }
    let err = std::io::Error::last_os_error();
    // A case-only rename: the "existing target" is the item itself (a case-insensitive
    // folder), which a plain rename renames.
    match (file_id(from), file_id(to)) {
        (Ok(a), Ok(b)) if a == b => fs::rename(from, to),
        _ => Err(err),
    }
}

/// `std::os::unix::fs::FileExt::write_all_at` on Windows, over `seek_write` (which also
/// moves the file's position; nothing here reads from it afterwards).
#[cfg(windows)]
mod windows_file_ext {
    pub trait FileExt {
        fn write_all_at(&self, buf: &[u8], offset: u64) -> std::io::Result<()>;
    }

    impl FileExt for std::fs::File {
        fn write_all_at(&self, mut buf: &[u8], mut offset: u64) -> std::io::Result<()> {
            use std::os::windows::fs::FileExt as _;
            while !buf.is_empty() {
                match self.seek_write(buf, offset) {
                    Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
                    Ok(n) => {
                        buf = &buf[n..];
                        offset += n as u64;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        }
    }
}

// ------------------------------------------------------------------ the user

struct Chaos {
    seed: u64,
    p: Pair,
    cfg: PathBuf,
    /// Where deletions by "move out of the folder" go (same file system, outside the roots).
    scratch: PathBuf,
    rng: Rng,
    svc: Option<Svc>,
    t0: Instant,
    op: usize,
    performed: usize,
    nver: usize,
    nscratch: usize,
    kills: usize,
    log: Vec<String>,
    versions: HashMap<Vec<u8>, Version>,
    tracked: Vec<Tracked>,
    last_status: String,
    chaos_start: Instant,
    kills_due: Vec<Duration>,
    restart_at: Option<Instant>,
}

impl Chaos {
    fn new(seed: u64) -> Chaos {
        let p = Pair::new();
        let scratch = p.dir.path().join("scratch");
        fs::create_dir_all(&scratch).unwrap();
        let cfg = p.dir.path().join("tandem.toml");
        let canon = |d: &Path| fs::canonicalize(d).unwrap().to_str().unwrap().to_string();
        fs::write(
            &cfg,
            format!(
                "[[pair]]\nname = \"chaos\"\nleft = {:?}\nright = {:?}\n\
                 # a random user deletes whole folders of a small tree: not a mass deletion\n\
                 max_delete_percent = 100\npoll_interval = \"5s\"\n",
                canon(&p.left),
                canon(&p.right)
            ),
        )
        .unwrap();
        Chaos {
            seed,
            p,
            cfg,
            scratch,
            rng: Rng(seed),
            svc: None,
            t0: Instant::now(),
            op: 0,
            performed: 0,
            nver: 0,
            nscratch: 0,
            kills: 0,
            log: Vec::new(),
            versions: HashMap::new(),
            tracked: Vec::new(),
            last_status: String::new(),
            chaos_start: Instant::now(),
            kills_due: Vec::new(),
            restart_at: None,
        }
    }

    fn root(&self, s: Side) -> &Path {
        self.p.root(s)
    }

    fn abs(&self, s: Side, rel: &str) -> PathBuf {
        self.p.path(s, rel)
    }

    fn note(&mut self, who: &str, text: String) {
        let line = format!("{:7.3}s #{:<5} {who} {text}", self.t0.elapsed().as_secs_f64(), self.op);
        self.log.push(line);
    }

    fn stats(&self) -> String {
        let sup = self.versions.values().filter(|v| v.superseded.is_some()).count();
        format!(
            "{} operations, {} versions ({} superseded), {} kill -9",
            self.performed,
            self.versions.len(),
            sup,
            self.kills
        )
    }

    // -------------------------------------------------------------- versions

    const TAG_LEN: usize = "chaos 0000000000000000 v000000 L\n".len();

    /// A new unique content of `len` bytes (random when None; at least a tag line).
    fn content(&mut self, s: Side, len: Option<usize>) -> Vec<u8> {
        self.nver += 1;
        let mut v = format!("chaos {:016x} v{:06} {}\n", self.seed, self.nver, sname(s)).into_bytes();
        debug_assert_eq!(v.len(), Self::TAG_LEN);
        let len = len.unwrap_or_else(|| Self::TAG_LEN + self.rng.below(400));
        let fill = b"the quick brown fox jumps over the lazy dog\n";
        while v.len() < len {
            v.push(fill[v.len() % fill.len()]);
        }
        v
    }

    fn register(&mut self, s: Side, data: &[u8], what: String) {
        let op = self.op;
        self.versions.entry(data.to_vec()).or_insert(Version {
            side: s,
            op,
            what,
            superseded: None,
        });
    }

    /// The user's operation on side `s` destroyed `data` there.
    fn destroyed(&mut self, s: Side, data: &[u8]) {
        let op = self.op;
        if let Some(v) = self.versions.get_mut(data) {
            if v.side == s && v.superseded.is_none() {
                v.superseded = Some(op);
            }
        }
    }

    // -------------------------------------------------------------- picking names

    fn rand_dir(&mut self) -> String {
        let d = self.rng.pick(&DIRS).unwrap();
        d.split('/')
            .map(|c| if self.rng.chance(12) { flip_case(c) } else { c.to_string() })
            .collect::<Vec<_>>()
            .join("/")
    }

    fn rand_name(&mut self) -> String {
        let n = self.rng.pick(&NAMES).unwrap();
        if self.rng.chance(12) {
            flip_case(n)
        } else {
            n.to_string()
        }
    }

    fn rand_file(&mut self) -> String {
        let dir = if self.rng.chance(25) { String::new() } else { self.rand_dir() };
        let name = self.rand_name();
        join(&dir, &name)
    }

    /// (files, folders) the random user may touch on a side.
    fn listing(&self, s: Side) -> (Vec<String>, Vec<String>) {
        let (mut files, mut dirs) = (Vec::new(), Vec::new());
        for (rel, md) in walk_all(self.root(s)) {
            if !chaos_owned(&rel) || is_tandem_tmp(&rel) {
                continue;
            }
            if md.is_dir() {
                dirs.push(rel);
            } else if md.is_file() {
                files.push(rel);
            }
        }
        (files, dirs)
    }

    fn pick_file(&mut self, s: Side) -> Option<String> {
        let files = self.listing(s).0;
        self.rng.pick(&files)
    }

    fn pick_dir(&mut self, s: Side) -> Option<String> {
        let dirs = self.listing(s).1;
        self.rng.pick(&dirs)
    }

    fn free(&self, s: Side, rel: &str) -> bool {
        fs::symlink_metadata(self.abs(s, rel)).is_err()
    }

    // -------------------------------------------------------------- operations

    /// A new file with a new version (its folders created as needed).
    fn write_new(&mut self, s: Side, rel: &str, what: &str) -> Option<String> {
        let path = self.abs(s, rel);
        fs::create_dir_all(path.parent()?).ok()?;
        let data = self.content(s, None);
        let mut f = OpenOptions::new().write(true).create_new(true).open(&path).ok()?;
        f.write_all(&data).ok()?;
        self.register(s, &data, format!("{what} {rel}"));
        Some(format!("{what} {rel} [{}, {} B]", vnames(&data), data.len()))
    }

    fn create(&mut self, s: Side) -> Option<String> {
        let rel = self.rand_file();
        if !self.free(s, &rel) {
            return None;
        }
        self.write_new(s, &rel, "create")
    }

    /// Rewrite a file in place (same inode), reading what it held through the same
    /// descriptor. `same_size`: a content of the same length, the old mtime put back.
    fn overwrite_at(&mut self, s: Side, rel: &str, same_size: bool) -> Option<String> {
        let path = self.abs(s, rel);
        let mut f = OpenOptions::new().read(true).write(true).open(&path).ok()?;
        let md = f.metadata().ok()?;
        if !md.is_file() {
            return None;
        }
        let mut old = Vec::new();
        f.read_to_end(&mut old).ok()?;
        if same_size && old.len() < Self::TAG_LEN {
            return None;
        }
        let data = self.content(s, if same_size { Some(old.len()) } else { None });
        self.destroyed(s, &old);
        if same_size {
            f.write_all_at(&data, 0).ok()?;
            f.set_modified(md.modified().ok()?).ok()?;
        } else {
            f.set_len(0).ok()?;
            f.write_all_at(&data, 0).ok()?;
        }
        let what = if same_size { "same-size rewrite (old mtime)" } else { "overwrite" };
        self.register(s, &data, format!("{what} {rel}"));
        Some(format!("{what} {rel} [{} -> {}, {} B]", vnames(&old), vnames(&data), data.len()))
    }

    fn overwrite(&mut self, s: Side, same_size: bool) -> Option<String> {
        let rel = self.pick_file(s)?;
        self.overwrite_at(s, &rel, same_size)
    }

    fn append(&mut self, s: Side) -> Option<String> {
        let rel = self.pick_file(s)?;
        let path = self.abs(s, &rel);
        let mut f = OpenOptions::new().read(true).write(true).open(&path).ok()?;
        if !f.metadata().ok()?.is_file() {
            return None;
        }
        let mut old = Vec::new();
        f.read_to_end(&mut old).ok()?;
        let line = self.content(s, Some(Self::TAG_LEN));
        self.destroyed(s, &old);
        f.write_all_at(&line, old.len() as u64).ok()?;
        let mut data = old.clone();
        data.extend_from_slice(&line);
        self.register(s, &data, format!("append {rel}"));
        Some(format!("append {rel} [{} -> {}]", vnames(&old), vnames(&data)))
    }

    /// An editor's save: the new content into a temporary file beside it (vim's ignored
    /// `.name.swp` or gedit's `.goutputstream-XXXXXX`, which Tandem may see), its mode
    /// taken from the file, then renamed over the file.
    fn editor_save(&mut self, s: Side) -> Option<String> {
        let rel = self.pick_file(s)?;
        let path = self.abs(s, &rel);
        let tmp_name = if self.rng.chance(50) {
            format!(".{}.swp", name_of(&rel))
        } else {
            format!(".goutputstream-{:06X}", self.rng.below(1 << 24))
        };
        let tmp = path.parent()?.join(&tmp_name);
        let md = fs::symlink_metadata(&path).ok()?;
        if !md.is_file() {
            return None;
        }
        let data = self.content(s, None);
        {
            let mut f = OpenOptions::new().write(true).create_new(true).open(&tmp).ok()?;
            f.write_all(&data).ok()?;
            #[cfg(unix)]
            f.set_permissions(fs::Permissions::from_mode(md.mode() & 0o7777)).ok()?;
            // Windows: the file's attributes (its read-only flag) as they are.
            #[cfg(windows)]
            f.set_permissions(md.permissions()).ok()?;
        }
        self.register(s, &data, format!("editor save {rel} (via {tmp_name})"));
        let old = fs::read(&path);
        if fs::rename(&tmp, &path).is_err() {
            self.destroyed(s, &data);
            let _ = fs::remove_file(&tmp);
            return None;
        }
        if let Ok(old) = &old {
            self.destroyed(s, old);
        }
        let old = old.as_deref().map(vnames).unwrap_or_default();
        Some(format!("editor save {rel} via {tmp_name} [{old} -> {}]", vnames(&data)))
    }

    /// Move a file or folder out of the root (a delete, as seen from the root), then
    /// account for what it held and remove it.
    fn move_out(&mut self, s: Side, rel: &str) -> Option<usize> {
        self.nscratch += 1;
        let dst = self.scratch.join(self.nscratch.to_string());
        fs::rename(self.abs(s, rel), &dst).ok()?;
        let contents: Vec<Vec<u8>> = if dst.is_dir() {
            let c = files_below(&dst, false).into_values().collect();
            fs::remove_dir_all(&dst).unwrap();
            c
        } else {
            let c = fs::read(&dst).into_iter().collect();
            fs::remove_file(&dst).unwrap();
            c
        };
        for c in &contents {
            self.destroyed(s, c);
        }
        Some(contents.len())
    }

    /// Read a file and unlink it.
    fn unlink(&mut self, s: Side, rel: &str) -> Option<Vec<u8>> {
        let path = self.abs(s, rel);
        let mut f = fs::File::open(&path).ok()?;
        let mut old = Vec::new();
        f.read_to_end(&mut old).ok()?;
        fs::remove_file(&path).ok()?;
        self.destroyed(s, &old);
        Some(old)
    }

    fn delete_file(&mut self, s: Side) -> Option<String> {
        let rel = self.pick_file(s)?;
        if self.rng.chance(50) {
            let old = self.unlink(s, &rel)?;
            Some(format!("delete {rel} [{}]", vnames(&old)))
        } else {
            self.move_out(s, &rel)?;
            Some(format!("delete {rel} (moved out of the root)"))
        }
    }

    /// `rm -rf`: each file read and unlinked, then the folders, deepest first; what Tandem
    /// puts there meanwhile may keep a folder.
    fn rm_rf(&mut self, s: Side, rel: &str) -> usize {
        let base = self.abs(s, rel);
        let mut entries = Vec::new();
        walk(self.root(s), &base, &mut entries);
        let mut n = 0;
        let mut dirs = vec![rel.to_string()];
        for (r, md) in entries {
            if md.is_dir() {
                dirs.push(r);
            } else if self.unlink(s, &r).is_some() {
                n += 1;
            } else {
                let _ = fs::remove_file(self.abs(s, &r));
            }
        }
        dirs.sort_by_key(|d| std::cmp::Reverse(d.matches('/').count()));
        for d in dirs {
            let _ = fs::remove_dir(self.abs(s, &d));
        }
        n
    }

    fn delete_dir(&mut self, s: Side) -> Option<String> {
        let rel = self.pick_dir(s)?;
        if self.rng.chance(50) {
            let n = self.move_out(s, &rel)?;
            Some(format!("delete folder {rel}/ ({n} files, moved out of the root)"))
        } else {
            let n = self.rm_rf(s, &rel);
            let left = if self.free(s, &rel) { "" } else { ", not empty afterwards" };
            Some(format!("rm -rf {rel}/ ({n} files{left})"))
        }
    }

    /// Rename without replacing anything (the target's folders created as needed).
    fn rename(&mut self, s: Side, from: &str, to: &str) -> Option<()> {
        // Windows: a case-only rename finds its own item under the new name (the name is
        // not free, and `rename_noreplace` renames it all the same).
        let case_only = cfg!(windows) && from.eq_ignore_ascii_case(to);
        if from == to || to.starts_with(&format!("{from}/")) || !(case_only || self.free(s, to)) {
            return None;
        }
        let dst = self.abs(s, to);
        fs::create_dir_all(dst.parent()?).ok()?;
        rename_noreplace(&self.abs(s, from), &dst).ok()
    }

    fn rename_file(&mut self, s: Side, case_only: bool) -> Option<String> {
        let rel = self.pick_file(s)?;
        let to = if case_only {
            join(parent_of(&rel), &flip_case(name_of(&rel)))
        } else if self.rng.chance(50) {
            let n = self.rand_name();
            join(parent_of(&rel), &n)
        } else {
            self.rand_file()
        };
        self.rename(s, &rel, &to)?;
        let what = if case_only { "case-only rename" } else { "rename" };
        Some(format!("{what} {rel} -> {to}"))
    }

    fn rename_dir(&mut self, s: Side, case_only: bool) -> Option<String> {
        let rel = self.pick_dir(s)?;
        let to = if case_only {
            join(parent_of(&rel), &flip_case(name_of(&rel)))
        } else {
            self.rand_dir()
        };
        self.rename(s, &rel, &to)?;
        let what = if case_only { "case-only rename folder" } else { "rename folder" };
        Some(format!("{what} {rel}/ -> {to}/"))
    }

    /// A writer that takes its time: half the content, a pause (Tandem may take the half
    /// written file meanwhile), the rest; into an existing file (in place) or a new one.
    fn slow_write(&mut self, s: Side) -> Option<String> {
        let (rel, mut f) = if self.rng.chance(30) {
            let rel = self.rand_file();
            let path = self.abs(s, &rel);
            fs::create_dir_all(path.parent()?).ok()?;
            let f = OpenOptions::new().read(true).write(true).create_new(true).open(&path).ok()?;
            (rel, f)
        } else {
            let rel = self.pick_file(s)?;
            let f = OpenOptions::new().read(true).write(true).open(self.abs(s, &rel)).ok()?;
            (rel, f)
        };
        if !f.metadata().ok()?.is_file() {
            return None;
        }
        let mut old = Vec::new();
        f.read_to_end(&mut old).ok()?;
        let len = Self::TAG_LEN + 200 + self.rng.below(2000);
        let data = self.content(s, Some(len));
        self.destroyed(s, &old);
        f.set_len(0).ok()?;
        let half = data.len() / 2;
        f.write_all_at(&data[..half], 0).ok()?;
        let pause = self.rng.millis(20, 400);
        std::thread::sleep(pause);
        f.write_all_at(&data[half..], half as u64).ok()?;
        drop(f);
        self.register(s, &data, format!("slow write {rel}"));
        Some(format!(
            "slow write {rel} [{} -> {}, {} B, {} ms between halves]",
            vnames(&old),
            vnames(&data),
            data.len(),
            pause.as_millis()
        ))
    }

    /// Only the mtime changes (to some time in the last ~2 weeks).
    fn touch(&mut self, s: Side) -> Option<String> {
        let rel = self.pick_file(s)?;
        let f = fs::File::open(self.abs(s, &rel)).ok()?;
        let back = Duration::from_secs(self.rng.below(1_200_000) as u64);
        f.set_modified(std::time::SystemTime::now() - back).ok()?;
        Some(format!("touch {rel} (mtime {} s ago)", back.as_secs()))
    }

    #[cfg(unix)]
    fn chmod(&mut self, s: Side) -> Option<String> {
        let rel = self.pick_file(s)?;
        let mode = self.rng.pick(&MODES).unwrap();
        fs::set_permissions(self.abs(s, &rel), fs::Permissions::from_mode(mode)).ok()?;
        Some(format!("chmod {mode:o} {rel}"))
    }

    // Windows: no chmod. The only mode Tandem carries there is the read-only attribute, which
    // would make the user's own later edits, renames over and deletions of the file fail.
    #[cfg(windows)]
    fn chmod(&mut self, _s: Side) -> Option<String> {
        None
    }

    fn file_to_dir(&mut self, s: Side) -> Option<String> {
        let rel = self.pick_file(s)?;
        let old = self.unlink(s, &rel)?;
        let inner = join(&rel, &self.rand_name());
        let made = self.write_new(s, &inner, "create").unwrap_or_else(|| "nothing".into());
        Some(format!("file -> folder {rel} [{} deleted], then {made}", vnames(&old)))
    }

    fn dir_to_file(&mut self, s: Side) -> Option<String> {
        let rel = self.pick_dir(s)?;
        let n = self.move_out(s, &rel)?;
        let made = self.write_new(s, &rel, "create").unwrap_or_else(|| "nothing".into());
        Some(format!("folder -> file {rel} ({n} files moved out), then {made}"))
    }

    fn mkdir(&mut self, s: Side) -> Option<String> {
        let rel = self.rand_dir();
        if !self.free(s, &rel) {
            return None;
        }
        fs::create_dir_all(self.abs(s, &rel)).ok()?;
        Some(format!("mkdir {rel}"))
    }

    /// The same file edited on both sides, one right after the other.
    fn conflict(&mut self) -> Option<String> {
        let l: HashSet<String> = self.listing(Left).0.into_iter().collect();
        let mut both: Vec<String> = self.listing(Right).0.into_iter().filter(|f| l.contains(f)).collect();
        both.sort();
        let rel = self.rng.pick(&both)?;
        let first = self.rng.side();
        let a = self.overwrite_at(first, &rel, false)?;
        let same_size = self.rng.chance(20);
        let b = self
            .overwrite_at(first.other(), &rel, same_size)
            .unwrap_or_else(|| "nothing".into());
        Some(format!("conflicting edits: {} {a}; {} {b}", sname(first), sname(first.other())))
    }

    /// One random operation (retried with another when it does not apply).
    fn single(&mut self) {
        for _ in 0..8 {
            self.op += 1;
            let s = self.rng.side();
            let k = self.rng.below(100);
            let done = match k {
                0..=13 => self.create(s),
                14..=22 => self.overwrite(s, false),
                23..=28 => self.overwrite(s, true),
                29..=35 => self.editor_save(s),
                36..=40 => self.append(s),
                41..=44 => self.slow_write(s),
                45..=52 => self.delete_file(s),
                53..=59 => self.rename_file(s, false),
                // Under wine a case-only rename does nothing (`common::WINE_CASE_RENAME`): a plain one.
                60..=62 => self.rename_file(s, !crate::common::under_wine()),
                63..=65 => self.delete_dir(s),
                66..=70 => self.rename_dir(s, false),
                71..=72 => self.rename_dir(s, !crate::common::under_wine()),
                73..=78 => self.chmod(s),
                79..=80 => self.touch(s),
                81..=82 => self.file_to_dir(s),
                83..=84 => self.dir_to_file(s),
                85..=87 => self.mkdir(s),
                _ => {
                    if let Some(t) = self.conflict() {
                        self.performed += 1;
                        self.note("L+R", t);
                        return;
                    }
                    None
                }
            };
            if let Some(t) = done {
                self.performed += 1;
                self.note(sname(s), t);
                return;
            }
        }
    }

    // -------------------------------------------------------------- tracked renames

    /// Items the random user never touches, synced before the chaos and renamed once.
    fn setup_tracked(&mut self) {
        #[allow(clippy::type_complexity)]
        let items: [(&'static str, &'static str, Vec<&'static str>, Side); 7] = [
            ("trk-dir-a", "trk-dir-a-renamed", vec!["f0.dat", "f1.dat", "inner/g0.dat"], Left),
            ("trk-dir-b", "trk-into/trk-dir-b", vec!["f0.dat", "f1.dat"], Right),
            ("trk-dir-c", "trk-new/deeper/trk-dir-c", vec!["f0.dat", "sub/f1.dat"], Left),
            ("Trk-Case", "trk-case", vec!["x.dat", "y.dat"], Left),
            ("trk-file1.dat", "trk-file1-renamed.dat", vec![""], Right),
            ("trk-file2.dat", "trk-into/trk-file2.dat", vec![""], Left),
            ("trk-File3.dat", "trk-file3.dat", vec![""], Right),
        ];
        self.op = 0;
        self.write_new(Left, "trk-into/stay.dat", "tracked").unwrap();
        for (from, to, files, made_on) in items {
            for f in &files {
                let rel = join(from, f);
                self.write_new(made_on, &rel, "tracked").unwrap();
            }
            let at = Duration::from_millis(0);
            let side = self.rng.side();
            self.tracked.push(Tracked {
                from,
                to,
                files,
                at,
                side,
                done: false,
                ino: [Vec::new(), Vec::new()],
            });
        }
    }

    fn record_tracked_inodes(&mut self) {
        for t in &mut self.tracked {
            for s in Side::BOTH {
                t.ino[side_ix(s)] = t
                    .files
                    .iter()
                    .map(|f| file_id(&self.p.path(s, &join(t.from, f))).unwrap())
                    .collect();
            }
        }
    }

    fn do_tracked(&mut self, i: usize) {
        let (from, to, side) = (self.tracked[i].from, self.tracked[i].to, self.tracked[i].side);
        self.op += 1;
        let dst = self.abs(side, to);
        fs::create_dir_all(dst.parent().unwrap()).unwrap();
        rename_noreplace(&self.abs(side, from), &dst).unwrap_or_else(|e| panic!("tracked rename {from} -> {to}: {e}"));
        self.tracked[i].done = true;
        self.note(sname(side), format!("tracked rename {from} -> {to}"));
    }

    // -------------------------------------------------------------- the service

    fn start(&mut self) {
        let svc = start_service(&self.p, &["--config", self.cfg.to_str().unwrap()], &[]);
        self.svc = Some(svc);
        self.note("--", "service started".into());
    }

    fn kill(&mut self) {
        if let Some(mut svc) = self.svc.take() {
            svc.kill();
            self.kills += 1;
            self.note("--", "service killed (-9)".into());
        }
    }

    fn status(&self) -> Option<serde_json::Value> {
        let o = self.p.tandem(&["--state", self.p.state.to_str().unwrap(), "status", "--json"]);
        if !o.status.success() {
            return None;
        }
        serde_json::from_slice(&o.stdout).ok()
    }

    /// The service has nothing left to do.
    fn quiet(&mut self) -> bool {
        let Some(st) = self.status() else { return false };
        self.last_status = st.to_string();
        let x = &st["pairs"][0];
        x["backlog"]["items"] == 0 && x["backlog"]["waiting_paths"] == 0 && (x["state"] == "idle" || x["state"] == "polling")
    }

    /// Both trees equal (contents, modes, folders) and the service quiet, three times in a
    /// row; false after `limit`.
    fn settle(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        let mut streak = 0;
        loop {
            let quiet = self.quiet();
            let ok = quiet && tree(&self.p.left) == tree(&self.p.right);
            streak = if ok { streak + 1 } else { 0 };
            if streak >= 3 {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    // -------------------------------------------------------------- a whole run

    fn run(&mut self, secs: u64) -> Vec<String> {
        self.setup_tracked();
        self.t0 = Instant::now();
        self.start();
        if !self.settle(Duration::from_secs(30)) {
            return vec!["the initial copy did not settle within 30 s".into()];
        }
        self.record_tracked_inodes();
        self.chaos(Duration::from_secs(secs));
        let mut problems = Vec::new();
        std::thread::sleep(Duration::from_millis(500));
        let settle_from = Instant::now();
        if !self.settle(Duration::from_secs(60)) {
            problems.push(format!("did not settle within 60 s; last status: {}", self.last_status));
        }
        self.note("--", format!("settled after {:.1} s", settle_from.elapsed().as_secs_f64()));
        if let Some(mut svc) = self.svc.take() {
            let code = svc.stop();
            if code != Some(0) {
                problems.push(format!("the service stopped with exit code {code:?}, not 0"));
            }
        }
        self.check(&mut problems);
        problems
    }

    /// Before each operation (bursts included): kill -9 or restart the service, or rename a
    /// tracked item, when due.
    fn tick(&mut self) {
        let t = self.chaos_start.elapsed();
        if self.kills_due.first().is_some_and(|k| t >= *k) {
            self.kills_due.remove(0);
            self.kill();
            // The user carries on while the service is down.
            self.restart_at = Some(Instant::now() + self.rng.millis(200, 1500));
        }
        if self.restart_at.is_some_and(|r| Instant::now() >= r) {
            self.restart_at = None;
            self.start();
        }
        for i in 0..self.tracked.len() {
            if !self.tracked[i].done && t >= self.tracked[i].at {
                self.do_tracked(i);
            }
        }
    }

    fn chaos(&mut self, dur: Duration) {
        self.chaos_start = Instant::now();
        self.kills_due = (0..1 + self.rng.below(2))
            .map(|_| dur.mul_f64(0.15 + 0.7 * self.rng.below(1000) as f64 / 1000.0))
            .collect();
        self.kills_due.sort();
        for i in 0..self.tracked.len() {
            self.tracked[i].at = dur.mul_f64(0.05 + 0.8 * self.rng.below(1000) as f64 / 1000.0);
        }
        while self.chaos_start.elapsed() < dur {
            if self.rng.chance(3) {
                let n = 5 + self.rng.below(20);
                self.note("--", format!("burst of {n} operations"));
                for _ in 0..n {
                    self.tick();
                    self.single();
                }
            } else {
                self.tick();
                self.single();
            }
            let pause = self.rng.millis(0, 200);
            std::thread::sleep(pause);
        }
        for i in 0..self.tracked.len() {
            if !self.tracked[i].done {
                self.do_tracked(i);
            }
        }
        self.note("--", "the user stops".into());
        if self.svc.is_none() {
            self.start();
        }
    }

    // -------------------------------------------------------------- the oracle

    fn check(&mut self, problems: &mut Vec<String>) {
        // Convergence: files, contents, modes, folders.
        let (l, r) = (tree(&self.p.left), tree(&self.p.right));
        for (k, (mode, data)) in &l.files {
            match r.files.get(k) {
                None => problems.push(format!("{k}: only on the left [{}]", vnames(data))),
                Some((_, d2)) if d2 != data => {
                    problems.push(format!("{k}: contents differ: left [{}], right [{}]", vnames(data), vnames(d2)))
                }
                Some((m2, _)) if m2 != mode => problems.push(format!("{k}: modes differ: left {mode:o}, right {m2:o}")),
                _ => {}
            }
        }
        for (k, (_, data)) in &r.files {
            if !l.files.contains_key(k) {
                problems.push(format!("{k}: only on the right [{}]", vnames(data)));
            }
        }
        for d in l.dirs.symmetric_difference(&r.dirs) {
            let side = if l.dirs.contains(d) { "left" } else { "right" };
            problems.push(format!("{d}/: folder only on the {side}"));
        }
        // No temporary file anywhere (trash included).
        for s in Side::BOTH {
            for k in files_below(self.root(s), false).into_keys().filter(|k| is_tandem_tmp(k)) {
                problems.push(format!("temporary file left on the {}: {k}", sname(s)));
            }
        }
        // Every version the user did not destroy on its own side survives somewhere.
        let mut everywhere: HashSet<Vec<u8>> = HashSet::new();
        for s in Side::BOTH {
            everywhere.extend(files_below(self.root(s), false).into_values());
        }
        let mut lost: Vec<(&Vec<u8>, &Version)> = self
            .versions
            .iter()
            .filter(|(data, v)| v.superseded.is_none() && !everywhere.contains(*data))
            .collect();
        lost.sort_by_key(|(_, v)| v.op);
        for (data, v) in lost {
            let vn = vnames(data);
            let last = vn.rsplit('+').next().unwrap_or_default().to_string();
            let mentions: Vec<&String> = self.log.iter().filter(|l| l.contains(&last)).collect();
            problems.push(format!(
                "version [{vn}] written on the {} by op #{} ({}) is lost; the ops that name {last}:\n      {}",
                sname(v.side),
                v.op,
                v.what,
                mentions.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("\n      ")
            ));
        }
        // A one-shot dry run finds nothing to do.
        let o = self.p.sync(&["--dry-run", "--json"]);
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        let summary = out
            .lines()
            .last()
            .and_then(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .map(|v| v["summary"].clone());
        let actions = summary.as_ref().and_then(|s| s["actions"].as_u64());
        if o.status.code() != Some(0) || actions != Some(0) {
            problems.push(format!(
                "a dry run after the service stopped: exit {:?}, actions {actions:?}:\n{out}{}",
                o.status.code(),
                String::from_utf8_lossy(&o.stderr)
            ));
        }
        // Tracked renames stayed renames on the other side.
        for t in &self.tracked {
            let other = t.side.other();
            for (f, before) in t.files.iter().zip(&t.ino[side_ix(other)]) {
                let rel = join(t.to, f);
                match file_id(&self.p.path(other, &rel)) {
                    Err(e) => problems.push(format!(
                        "tracked rename {} -> {} on the {}: {rel} missing on the {}: {e}",
                        t.from,
                        t.to,
                        sname(t.side),
                        sname(other)
                    )),
                    Ok(id) if id != *before => problems.push(format!(
                        "tracked rename {} -> {} on the {}: {rel} on the {} is a new file (inode {} -> {}): \
                         the rename became a delete + copy",
                        t.from,
                        t.to,
                        sname(t.side),
                        sname(other),
                        before,
                        id
                    )),
                    Ok(_) => {}
                }
            }
        }
    }

    // -------------------------------------------------------------- reporting

    fn report(&mut self, problems: &[String], secs: u64) -> String {
        use std::fmt::Write as _;
        let mut o = String::new();
        let _ = writeln!(
            o,
            "\n=== chaos seed {:#x} {} ({}); reproduce: TANDEM_CHAOS_SEED={:#x} TANDEM_CHAOS_SECS={secs} cargo nextest run chaos",
            self.seed,
            if problems.is_empty() { "passed" } else { "FAILED" },
            self.stats(),
            self.seed
        );
        let _ = writeln!(o, "--- problems ({}):", problems.len());
        for p in problems {
            let _ = writeln!(o, "  - {p}");
        }
        let from = self.log.len().saturating_sub(200);
        let _ = writeln!(o, "--- operations {}..{} of {}:", from + 1, self.log.len(), self.log.len());
        for l in &self.log[from..] {
            let _ = writeln!(o, "  {l}");
        }
        for s in Side::BOTH {
            let _ = writeln!(o, "--- {} tree ({}):", sname(s), self.root(s).display());
            for (rel, md) in walk_all(self.root(s)) {
                if md.is_dir() {
                    let _ = writeln!(o, "  {:>4}          {rel}/", "");
                } else {
                    let data = fs::read(self.root(s).join(&rel)).unwrap_or_default();
                    let _ = writeln!(o, "  {:>4o} {:>6} B  {rel}  [{}]", mode_bits(&md), md.len(), head(&data));
                }
            }
        }
        let _ = writeln!(o, "--- last status: {}", self.last_status);
        let logs = self.p.dir.path().join("logs");
        let mut lines = Vec::new();
        if let Ok(rd) = fs::read_dir(&logs) {
            let mut files: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
            files.sort();
            for f in files {
                lines.extend(fs::read_to_string(f).unwrap_or_default().lines().map(str::to_string));
            }
        }
        let warn: Vec<&String> = lines.iter().filter(|l| l.contains("WARN") || l.contains("ERROR")).collect();
        let _ = writeln!(
            o,
            "--- service log ({}): {} warnings/errors, the last 60:",
            logs.display(),
            warn.len()
        );
        for l in &warn[warn.len().saturating_sub(60)..] {
            let _ = writeln!(o, "  {l}");
        }
        if !problems.is_empty() {
            let _ = writeln!(o, "--- kept for inspection: {}", self.p.dir.path().display());
        }
        o
    }

    /// Keep the temp folder (a failure's evidence): the service is gone, the folder stays.
    fn keep(mut self) {
        self.kill();
        std::mem::forget(self);
    }
}
