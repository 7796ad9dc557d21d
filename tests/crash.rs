//! Crash tests: `tandem sync` of a few thousand files is killed with SIGKILL (on Windows:
//! TerminateProcess) at random moments (seeded, reproducible), at least 20 times, with user
//! edits on both sides between the kills. Afterwards one sync must converge, leave no
//! temporary file, lose no version, and not copy again what was already copied; and restarts
//! during a long initial copy must not throw away the copying already done.

use crate::common::{files_below, Pair, TRASH};
use std::collections::{BTreeMap, HashMap, HashSet};
#[cfg(unix)]
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tandem::model::Side::{self, Left, Right};

/// Seed of the run; change it to explore other kill moments.
const SEED: u64 = 0x5EED_CAFE_F00D_0001;
const SMALL_FILES: usize = 3000;
/// Kills per test run; `TANDEM_CRASH_KILLS` overrides (fewer for a quick run by hand, e.g.
/// under wine, where a run of the 3,000-file tree takes seconds).
const KILLS: usize = 20;

fn kills_wanted() -> usize {
    std::env::var("TANDEM_CRASH_KILLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(KILLS)
}
const T0: i64 = 1_600_000_000;

/// xorshift64*: tiny, seeded, good enough to pick delays and paths.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(n + 8);
        while v.len() < n {
            v.extend_from_slice(&self.next().to_le_bytes());
        }
        v.truncate(n);
        v
    }
}

struct World {
    p: Pair,
    rng: Rng,
    clock: i64,
    /// Hashes of versions that must survive somewhere (a side, a clash copy, the trash).
    must_survive: HashMap<blake3::Hash, String>,
    /// Paths the test changed after creating them (they may legitimately be copied again).
    touched: HashSet<String>,
    /// Paths not yet edited (each is edited once at most, so the test never overwrites a
    /// version of its own that Tandem did not see).
    pool: [Vec<String>; 3],
    bytes_written: u64,
    serial: u64,
}

impl World {
    /// Write a new version of `rel` on `side` and remember it.
    fn put(&mut self, side: Side, rel: &str, size: usize, survives: bool) {
        self.serial += 1;
        let mut content = format!("{side} {rel} version {}\n", self.serial).into_bytes();
        let extra = size.saturating_sub(content.len());
        content.extend(self.rng.bytes(extra));
        self.clock += 7;
        self.p.write_at(side, rel, &content, self.clock);
        self.bytes_written += content.len() as u64;
        if survives {
            self.must_survive
                .insert(blake3::hash(&content), format!("{side} {rel} #{}", self.serial));
        }
    }

    fn pick(&mut self, pool: usize) -> Option<String> {
        let n = self.pool[pool].len() as u64;
        if n == 0 {
            return None;
        }
        let k = self.rng.below(n) as usize;
        Some(self.pool[pool].swap_remove(k))
    }

    /// The user edits `rel` on the left. The version it replaces must survive only if the
    /// right side already holds it (then Tandem's overwrite keeps it in the right trash);
    /// otherwise it is the user's own overwrite of a version Tandem never copied.
    fn edit_left(&mut self, rel: &str, size: usize) {
        let old = self.p.read(Left, rel).unwrap();
        if self.p.read(Right, rel).as_deref() != Some(&old[..]) {
            self.must_survive.remove(&blake3::hash(&old));
        }
        self.touched.insert(rel.to_string());
        self.put(Left, rel, size, true);
    }

    /// The user edits `rel` on the right. Only left-created files exist, and the left never
    /// edits these paths, so the version replaced here is still on the left.
    fn edit_right(&mut self, rel: &str, size: usize) {
        self.touched.insert(rel.to_string());
        self.put(Right, rel, size, true);
    }

    /// A few user edits on both sides while Tandem is not running.
    fn mutate(&mut self, round: usize) {
        for _ in 0..2 {
            if let Some(rel) = self.pick(LEFT_EDITS) {
                let size = 50 + self.rng.below(3000) as usize;
                self.edit_left(&rel, size);
            }
            if let Some(rel) = self.pick(RIGHT_EDITS) {
                let size = 50 + self.rng.below(3000) as usize;
                self.edit_right(&rel, size);
            }
        }
        // Both sides edit the same file before Tandem sees either edit: a clash. The
        // original is overwritten by the user on both sides; both edits must survive.
        if let Some(rel) = self.pick(BOTH_EDITS) {
            let old = self.p.read(Left, &rel).unwrap();
            self.must_survive.remove(&blake3::hash(&old));
            let (a, b) = (50 + self.rng.below(3000) as usize, 50 + self.rng.below(3000) as usize);
            self.touched.insert(rel.clone());
            self.put(Left, &rel, a, true);
            self.put(Right, &rel, b, true);
        }
        // New files on a random side; sometimes many, to keep Tandem busy.
        let side = if self.rng.below(2) == 0 { Left } else { Right };
        let count = if round.is_multiple_of(3) { 150 } else { 5 };
        for i in 0..count {
            let rel = format!("new/r{round}/{side}-{i}.dat");
            let size = 50 + self.rng.below(2000) as usize;
            self.put(side, &rel, size, true);
        }
        // A rename on the left now and then (R14 under crashes).
        if round % 4 == 1 {
            if let Some(rel) = self.pick(LEFT_EDITS) {
                let to = format!("{rel}.renamed{round}");
                std::fs::rename(self.p.path(Left, &rel), self.p.path(Left, &to)).unwrap();
                self.touched.insert(rel.clone());
                self.touched.insert(to);
            }
        }
        // A big file changes on one side.
        let big = format!("big/big{}.bin", round % 4);
        if (round == 5 || round == 11) && !self.touched.contains(&big) {
            let rel = big;
            for pool in &mut self.pool {
                pool.retain(|x| x != &rel);
            }
            if round == 5 {
                self.edit_left(&rel, 2 << 20);
            } else {
                self.edit_right(&rel, 2 << 20);
            }
        }
    }
}

/// Pools of paths (disjoint): edited on the left only, on the right only, on both.
const LEFT_EDITS: usize = 0;
const RIGHT_EDITS: usize = 1;
const BOTH_EDITS: usize = 2;

fn tandem_sync(p: &Pair, out: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tandem"));
    c.args([
        "sync",
        p.left.to_str().unwrap(),
        p.right.to_str().unwrap(),
        "--state",
        p.state.to_str().unwrap(),
        "--json",
    ])
    .env("TANDEM_LOG", "error")
    .stdin(Stdio::null())
    .stdout(std::fs::File::create(out).unwrap())
    .stderr(Stdio::null());
    c
}

impl World {
    /// A pair whose left side holds 3000 small files and 4 of 1-4 MB.
    fn new(seed: u64) -> World {
        let mut w = World {
            p: Pair::new(),
            rng: Rng(seed),
            clock: T0 + 100_000,
            must_survive: HashMap::new(),
            touched: HashSet::new(),
            pool: [Vec::new(), Vec::new(), Vec::new()],
            bytes_written: 0,
            serial: 0,
        };
        let mut names = Vec::new();
        for i in 0..SMALL_FILES {
            let rel = format!("d{:02}/s{}/f{i}.txt", i % 60, i % 7);
            let size = 50 + w.rng.below(3000) as usize;
            w.put(Left, &rel, size, true);
            names.push(rel);
        }
        for i in 0..4 {
            let rel = format!("big/big{i}.bin");
            let size = (1 << 20) + w.rng.below(3 << 20) as usize;
            w.put(Left, &rel, size, true);
            names.push(rel);
        }
        for (i, rel) in names.into_iter().enumerate() {
            w.pool[i % 3].push(rel);
        }
        w
    }

    /// A kill trigger during the initial copy, at a random amount of progress (so the moment
    /// does not depend on the machine's speed): once k new temporary files exist, or once m
    /// more files were installed on the right.
    fn progress_trigger(&mut self) -> Trigger {
        let installed = files_and_temps(&self.p.right).0;
        // Somewhere inside the work that is left, so that (nearly) every run is killed.
        let remaining = files_and_temps(&self.p.left).0.saturating_sub(installed).max(2);
        Trigger::Progress {
            temps: 20 + self.rng.below(300) as usize,
            installed: installed + 1 + self.rng.below(remaining as u64 - 1) as usize,
        }
    }

    /// Run `tandem sync` until it ends or `trigger` fires (then SIGKILL). Returns whether it
    /// was killed, the time it ran, and the output file. Temporary files left behind are added
    /// to `wasted` (path -> size): the next start removes them, so their data is copied again.
    fn run(&mut self, round: usize, trigger: Trigger, wasted: &mut HashMap<PathBuf, u64>) -> (bool, Duration, PathBuf) {
        // Temporary files an earlier kill left (this run removes them first).
        let old_temps: HashSet<PathBuf> = [&self.p.left, &self.p.right].iter().flat_map(|r| files_and_temps(r).1).collect();
        let out = self.p.dir.path().join(format!("run-{round}.jsonl"));
        let mut child = tandem_sync(&self.p, &out).spawn().unwrap();
        let t = Instant::now();
        let mut fired = false;
        let status = loop {
            if let Some(st) = child.try_wait().unwrap() {
                break st;
            }
            let fire = match trigger {
                Trigger::After(ms) => t.elapsed() >= Duration::from_millis(ms),
                Trigger::Progress { temps, installed } => {
                    let (_, lt) = files_and_temps(&self.p.left);
                    let (rf, rt) = files_and_temps(&self.p.right);
                    let new_temps = lt.union(&rt).filter(|t| !old_temps.contains(*t)).count();
                    new_temps >= temps || rf >= installed || t.elapsed() > Duration::from_secs(30)
                }
            };
            if fire {
                fired = true;
                child.kill().unwrap();
                break child.wait().unwrap();
            }
            std::thread::sleep(Duration::from_millis(match trigger {
                Trigger::After(_) => 2,
                Trigger::Progress { .. } => 10,
            }));
        };
        let elapsed = t.elapsed();
        let mut left_behind = 0;
        for root in [&self.p.left, &self.p.right] {
            for (rel, len) in temp_files(root) {
                wasted.insert(root.join(rel), len);
                left_behind += 1;
            }
        }
        eprintln!("round {round}: {trigger:?}, {status} after {elapsed:.2?}, {left_behind} temporary files left");
        // Killed: SIGKILL on Unix. On Windows, Child::kill is TerminateProcess with exit code
        // 1, which a finished run can give too: there, also whether the trigger fired.
        #[cfg(unix)]
        let killed = {
            let _ = fired;
            status.signal() == Some(9)
        };
        #[cfg(windows)]
        let killed = fired && status.code() == Some(1);
        if !killed {
            assert_eq!(status.code(), Some(0), "round {round}: a run that finished failed");
            let (s, _) = read_run(&out);
            assert_eq!(s["exit"], 0, "round {round}: {s}");
        }
        (killed, elapsed, out)
    }

    /// Every run in the history, newest first.
    fn history(&self) -> Vec<serde_json::Value> {
        let h = self
            .p
            .tandem(&["history", "--json", "--limit", "1000", "--state", self.p.state.to_str().unwrap()]);
        assert_eq!(h.status.code(), Some(0));
        String::from_utf8_lossy(&h.stdout)
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .collect()
    }

    /// Files installed by copies across all runs, killed ones included (the journal keeps
    /// what each committed): path -> times, and bytes.
    fn installed(&self) -> (BTreeMap<String, u32>, u64) {
        let store = tandem::api::open_state(&self.p.state).unwrap();
        let mut copies: BTreeMap<String, u32> = BTreeMap::new();
        let mut bytes = 0u64;
        for run in self.history() {
            for row in store.journal(run["id"].as_i64().unwrap()).unwrap() {
                if row.op == "copy" && row.status == "done" {
                    *copies.entry(row.path.clone()).or_default() += 1;
                    bytes += row.bytes;
                }
            }
        }
        (copies, bytes)
    }
}

/// The JSON lines a finished run printed: (summary, action lines).
fn read_run(out: &Path) -> (serde_json::Value, Vec<serde_json::Value>) {
    let text = std::fs::read_to_string(out).unwrap();
    let mut lines: Vec<serde_json::Value> = text
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .collect();
    let last = lines.pop().expect("no output");
    (last["summary"].clone(), lines)
}

/// When to kill a run.
#[derive(Clone, Copy, Debug)]
enum Trigger {
    /// After this many milliseconds.
    After(u64),
    /// Once this many temporary files exist, or the right side holds this many files.
    Progress { temps: usize, installed: usize },
}

/// Kills that strike during the initial copy, at a random amount of progress.
const PROGRESS_KILLS: usize = 8;

/// Regular files (trash excluded) and names of temporary copy files below a root.
fn files_and_temps(root: &Path) -> (usize, HashSet<PathBuf>) {
    let (mut files, mut temps) = (0, HashSet::new());
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let Ok(ft) = e.file_type() else { continue };
            let name = e.file_name();
            let name = name.to_string_lossy();
            if ft.is_dir() {
                if !(d == root && name == TRASH) {
                    stack.push(e.path());
                }
            } else if name.starts_with(".tandem-") && name.ends_with(".tmp") {
                temps.insert(e.path());
            } else {
                files += 1;
            }
        }
    }
    (files, temps)
}

/// Tandem's temporary copy files below a root, trash included: (relative path, size).
fn temp_files(root: &Path) -> Vec<(String, u64)> {
    files_below(root, false)
        .into_iter()
        .filter(|(k, _)| {
            k.rsplit('/')
                .next()
                .is_some_and(|n| n.starts_with(".tandem-") && n.ends_with(".tmp"))
        })
        .map(|(k, v)| (k, v.len() as u64))
        .collect()
}

#[test]
fn killed_sync_restarts_converge_lose_nothing_and_install_nothing_twice() {
    let started = Instant::now();
    let mut w = World::new(SEED);
    let (mut kills, mut finished, mut round) = (0, 0, 0);
    // Length of a whole run: a guess until a run finishes, then the last one's.
    let mut max_delay = 1500u64;
    let mut wasted: HashMap<PathBuf, u64> = HashMap::new();
    let wanted = kills_wanted();
    while kills < wanted {
        round += 1;
        assert!(round <= 80, "only {kills} kills in {round} rounds: runs end too fast to be killed");
        // The first kills strike during the initial copy; later ones at a random time: mostly
        // within one run's length, sometimes later, so that some runs commit a part of their
        // work before they die.
        let trigger = if kills < PROGRESS_KILLS {
            w.progress_trigger()
        } else if w.rng.below(10) < 3 {
            Trigger::After(max_delay + w.rng.below(2 * max_delay))
        } else {
            Trigger::After(5 + w.rng.below(max_delay))
        };
        let (killed, elapsed, _) = w.run(round, trigger, &mut wasted);
        if killed {
            kills += 1;
        } else {
            finished += 1;
            max_delay = (elapsed.as_millis() as u64).max(50);
        }
        w.mutate(round);
    }
    eprintln!(
        "crash test: {kills} kills, {finished} runs finished, {round} rounds, {:.1?}",
        started.elapsed()
    );

    // Before the final run: what is already present and identical on both sides.
    let (l, r) = (w.p.tree(Left), w.p.tree(Right));
    let identical: HashSet<&String> = l.iter().filter(|(k, v)| r.get(*k) == Some(*v)).map(|(k, _)| k).collect();
    let differing = l
        .keys()
        .chain(r.keys())
        .filter(|k| !identical.contains(k))
        .collect::<HashSet<_>>()
        .len();

    // The final run completes.
    let out = w.p.dir.path().join("final.jsonl");
    let status = tandem_sync(&w.p, &out).status().unwrap();
    assert_eq!(
        status.code(),
        Some(0),
        "the final sync failed: {}",
        std::fs::read_to_string(&out).unwrap_or_default()
    );
    let (s, actions) = read_run(&out);
    assert_eq!(s["failed"], 0, "{s}");
    assert_eq!(s["deferred"], 0, "{s}");

    // Converged, no temporary file left.
    w.p.assert_converged();
    for root in [&w.p.left, &w.p.right] {
        let t = temp_files(root);
        assert!(t.is_empty(), "temporary files left in {}: {t:?}", root.display());
    }

    // Nothing lost: every version the test wrote is on a side, in a clash copy or in a trash.
    let mut present: HashSet<blake3::Hash> = HashSet::new();
    for root in [&w.p.left, &w.p.right] {
        for v in files_below(root, false).values() {
            present.insert(blake3::hash(v));
        }
    }
    let lost: Vec<&String> = w
        .must_survive
        .iter()
        .filter(|(h, _)| !present.contains(*h))
        .map(|(_, d)| d)
        .collect();
    assert!(
        lost.is_empty(),
        "{} versions lost, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );

    // A further sync has nothing to do.
    let again = w.p.dir.path().join("again.jsonl");
    assert_eq!(tandem_sync(&w.p, &again).status().unwrap().code(), Some(0));
    let (s2, _) = read_run(&again);
    assert_eq!(s2["copied"], 0, "{s2}");
    assert_eq!(s2["actions"], 0, "{s2}");

    // The final run did not copy again what was already identical on both sides.
    let recopied: Vec<&str> = actions
        .iter()
        .filter(|a| a["op"] == "copy")
        .filter_map(|a| a["path"].as_str())
        .filter(|p| identical.contains(&p.to_string()))
        .collect();
    assert!(
        recopied.is_empty(),
        "the final run re-copied {} files already identical on both sides, e.g. {:?}",
        recopied.len(),
        &recopied[..recopied.len().min(5)]
    );
    let copied = s["copied"].as_u64().unwrap();
    assert!(
        copied as usize <= 2 * differing,
        "the final run copied {copied} files, but only {differing} paths differed"
    );

    // History: every run finished, was interrupted, or died running.
    let runs = w.history();
    for run in &runs {
        let st = run["status"].as_str().unwrap();
        assert!(["ok", "interrupted", "running"].contains(&st), "unexpected run status {run}");
    }
    let ok_runs = runs.iter().filter(|r| r["status"] == "ok").count();
    assert!(
        ok_runs >= finished + 2,
        "history lost finished runs: {ok_runs} ok < {}",
        finished + 2
    );

    // Across every run, killed ones included: no file the test created and never touched
    // again was installed twice, and the bytes installed stay below twice the tree.
    let (copies, journal_bytes) = w.installed();
    let twice: Vec<(&String, &u32)> = copies
        .iter()
        .filter(|(p, n)| **n > 1 && !w.touched.contains(*p) && !p.contains("_clash_"))
        .collect();
    assert!(
        twice.is_empty(),
        "{} untouched files were copied more than once, e.g. {:?}",
        twice.len(),
        &twice[..twice.len().min(5)]
    );
    let final_tree = w.p.tree(Left);
    let (tree_files, tree_bytes) = (final_tree.len() as u64, final_tree.values().map(|v| v.len() as u64).sum::<u64>());
    let journal_files: u64 = copies.values().map(|n| *n as u64).sum();
    eprintln!(
        "crash test: installed {journal_files} files / {journal_bytes} bytes, thrown away {} files / {} bytes, for a tree of {tree_files} files / {tree_bytes} bytes ({} bytes written); final run copied {copied} for {differing} differing paths; {:.1?}",
        wasted.len(),
        wasted.values().sum::<u64>(),
        w.bytes_written,
        started.elapsed()
    );
    assert!(
        journal_bytes <= 2 * tree_bytes,
        "installed {journal_bytes} bytes in all for a tree of {tree_bytes} bytes"
    );
}

/// Regression: a run used to stage a batch of up to 2000 files (256 MB) before installing and
/// recording any of it, and one kill threw the whole batch away. Now batches are small and
/// pipelined (1000 files / 128 MB / 250 ms, one staged while one installs). Killed at random
/// moments of progress during the initial copy: each kill throws away at most two batches,
/// and no file is ever installed twice.
#[test]
fn killed_initial_copy_restarts_do_not_throw_away_the_copied_batch() {
    let mut w = World::new(SEED ^ 0xA5A5);
    let mut wasted: HashMap<PathBuf, u64> = HashMap::new();
    let mut kills = 0;
    for round in 1..=PROGRESS_KILLS {
        let trigger = w.progress_trigger();
        if w.run(round, trigger, &mut wasted).0 {
            kills += 1;
        }
    }
    let out = w.p.dir.path().join("final.jsonl");
    assert_eq!(tandem_sync(&w.p, &out).status().unwrap().code(), Some(0));
    w.p.assert_converged();
    let (copies, journal_bytes) = w.installed();
    let final_tree = w.p.tree(Left);
    let (tree_files, tree_bytes) = (final_tree.len() as u64, final_tree.values().map(|v| v.len() as u64).sum::<u64>());
    let journal_files: u64 = copies.values().map(|n| *n as u64).sum();
    let (wasted_files, wasted_bytes) = (wasted.len() as u64, wasted.values().sum::<u64>());
    eprintln!("{kills} kills: installed {journal_files} files / {journal_bytes} bytes, thrown away {wasted_files} files / {wasted_bytes} bytes, tree {tree_files} files / {tree_bytes} bytes");
    assert!(kills >= PROGRESS_KILLS / 2, "only {kills} runs were killed during the initial copy");
    // A kill throws away the copies in flight: at most two batches (the one being installed
    // and the one staged behind it, ExecOptions::default().batch_files each), never anything
    // already installed. Bytes: copies run smallest first, so a kill in the last stretch may
    // also lose every big file in flight (a copy is not resumed half-way).
    let batch = tandem::engine::exec::ExecOptions::default().batch_files as u64;
    let big_bytes: u64 = final_tree.values().map(|v| v.len() as u64).filter(|n| *n > 1 << 20).sum();
    assert!(
        wasted_files <= kills as u64 * 2 * batch,
        "a kill threw away more than two batches: {wasted_files} files thrown away by {kills} kills (batches of {batch})"
    );
    assert!(
        wasted_bytes <= tree_bytes + kills as u64 * big_bytes,
        "restarts copy the same data over and over: {wasted_bytes} bytes thrown away by {kills} kills (tree {tree_bytes} bytes, {big_bytes} in files above 1 MiB)"
    );
    assert!(
        journal_files <= tree_files && journal_bytes <= tree_bytes,
        "data installed twice: {journal_files} files / {journal_bytes} bytes installed for a tree of {tree_files} files / {tree_bytes} bytes"
    );
}
