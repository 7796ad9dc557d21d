//! Randomized property test (Dropbox Nucleus style): random creates, edits, deletes and
//! renames and mode changes on both sides of an in-memory pair (`MemSide`s over `MemFs`,
//! with case-insensitive, coarse-mtime, no-file-id, fixed-mode, no-hard-link and
//! no-atomic-replace knobs, each wrapped in a `FaultSide` that injects failures), synced
//! through the real `api::sync_with` and a real (in-memory) SQLite state. A run with
//! injected faults may fail operations; the runs after it (faults cleared) must converge. Asserts: converged within 2 runs, the run after that plans nothing, and
//! every version present on either side before a sync is afterwards still on a side (under
//! its name or a clash name) or in a trash. With the `targeted` knob both runs are targeted
//! runs of exactly the paths the steps touched (what the watcher reports), and the full
//! plan afterwards must still have nothing to do. Seeded; `TANDEM_PROPTEST_CASES` sets the count
//! (default 10,000).

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use tandem::api::{self, SyncRequest};
use tandem::config::{ClashOption, PairConfig, SyncOptions};
use tandem::engine::plan::Action;
use tandem::model::Side;
use tandem::side::fault::{FaultOp, FaultSide};
use tandem::side::mem::{MemFs, MemOptions, MemSide};
use tandem::state::Store;

const PATHS: &[&str] = &["a", "b", "A", "a.txt", "d", "d/a", "d/b", "D", "d/e", "d/e/c", "f/a", "f/g/h", "x"];
const LEFT: &str = "/left";
const RIGHT: &str = "/right";

#[derive(Clone, Debug)]
enum Op {
    Write(Side, usize),
    Delete(Side, usize),
    Rename(Side, usize, usize),
    /// Make a file executable (0755) or not (0644).
    Chmod(Side, usize, bool),
    /// The next sync's first run fails this kind of call on this path's name on a side.
    Fault(Side, usize, u8),
    Sync,
}

const FAULTS: [FaultOp; 6] = [
    FaultOp::Read,
    FaultOp::Create,
    FaultOp::Rename,
    FaultOp::Remove,
    FaultOp::SetMeta,
    FaultOp::Stat,
];

#[derive(Clone, Debug)]
struct Knobs {
    right_case_insensitive: bool,
    coarse_mtime: bool,
    no_ids: bool,
    newer_wins: bool,
    targeted: bool,
    /// The right side shows every file as 0644 and ignores mode changes (a FUSE cloud mount).
    right_fixed_mode: bool,
    /// The right side has no hard links (0), or neither hard links nor atomic replace (1):
    /// the executor keeps overwritten versions by copy or by moving them aside.
    right_plain: Option<u8>,
}

fn side() -> impl Strategy<Value = Side> {
    prop_oneof![Just(Side::Left), Just(Side::Right)]
}

fn op() -> impl Strategy<Value = Op> {
    let n = PATHS.len();
    prop_oneof![
        5 => (side(), 0..n).prop_map(|(s, p)| Op::Write(s, p)),
        2 => (side(), 0..n).prop_map(|(s, p)| Op::Delete(s, p)),
        2 => (side(), 0..n, 0..n).prop_map(|(s, a, b)| Op::Rename(s, a, b)),
        1 => (side(), 0..n, any::<bool>()).prop_map(|(s, p, x)| Op::Chmod(s, p, x)),
        1 => (side(), 0..n, 0..FAULTS.len() as u8).prop_map(|(s, p, f)| Op::Fault(s, p, f)),
        1 => Just(Op::Sync),
    ]
}

fn knobs() -> impl Strategy<Value = Knobs> {
    (
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        0..4u8,
        0..4u8,
    )
        .prop_map(|(a, b, c, d, e, f, g)| Knobs {
            right_case_insensitive: a,
            coarse_mtime: b,
            no_ids: c,
            newer_wins: d,
            targeted: e,
            right_fixed_mode: f == 0,
            right_plain: (g < 2).then_some(g),
        })
}

struct World {
    left: Arc<MemFs>,
    right: Arc<MemFs>,
    /// The sides the engine syncs (the `MemFs` above, rooted, with fault injection).
    sides: [FaultSide; 2],
    store: Store,
    pair: PairConfig,
    clock: i64,
    version: u64,
}

impl World {
    fn new(k: &Knobs) -> World {
        let g = if k.coarse_mtime { 2_000_000_000 } else { 0 };
        let left = Arc::new(MemFs::new(MemOptions {
            case_insensitive: false,
            mtime_granularity_ns: g,
            no_ids: k.no_ids,
            fixed_mode: None,
            ..Default::default()
        }));
        let right = Arc::new(MemFs::new(MemOptions {
            case_insensitive: k.right_case_insensitive,
            mtime_granularity_ns: g,
            no_ids: k.no_ids,
            fixed_mode: k.right_fixed_mode.then_some(0o644),
            no_hard_links: k.right_plain.is_some(),
            no_atomic_replace: k.right_plain == Some(1),
        }));
        let sides = [
            FaultSide::new(Arc::new(MemSide::new(&left, LEFT))),
            FaultSide::new(Arc::new(MemSide::new(&right, RIGHT))),
        ];
        left.create_dir_all(Path::new(LEFT)).unwrap();
        right.create_dir_all(Path::new(RIGHT)).unwrap();
        let mut options = SyncOptions::default();
        if k.newer_wins {
            options.rules.r1 = ClashOption::NewerWins;
            options.rules.r2 = ClashOption::NewerWins;
        }
        options.concurrency = 2;
        World {
            left,
            right,
            sides,
            store: Store::in_memory().unwrap(),
            pair: PairConfig {
                name: "p".into(),
                left: LEFT.into(),
                right: RIGHT.into(),
                options,
            },
            clock: 1_700_000_000_000_000_000,
            version: 0,
        }
    }

    fn fs(&self, s: Side) -> &Arc<MemFs> {
        match s {
            Side::Left => &self.left,
            Side::Right => &self.right,
        }
    }

    fn root(s: Side) -> &'static str {
        match s {
            Side::Left => LEFT,
            Side::Right => RIGHT,
        }
    }

    /// Kind of what is at `rel` on a side: Some(true) folder, Some(false) file.
    fn kind(&self, s: Side, rel: &str) -> Option<bool> {
        use tandem::side::Node;
        match self.fs(s).stat(&Path::new(Self::root(s)).join(rel)).unwrap() {
            Some(Node::Entry(e)) => Some(e.is_dir()),
            _ => None,
        }
    }

    fn parent_ok(&self, s: Side, rel: &str) -> bool {
        // No ancestor may be a file.
        let mut cur = String::new();
        for c in rel.split('/').collect::<Vec<_>>().split_last().unwrap().1 {
            if !cur.is_empty() {
                cur.push('/');
            }
            cur.push_str(c);
            if self.kind(s, &cur) == Some(false) {
                return false;
            }
        }
        true
    }

    /// Apply a step; returns the paths it touched (what a watcher would report).
    fn apply(&mut self, op: &Op) -> Vec<&'static str> {
        // 1.5 s per step: with 2 s mtime granularity some edits share a timestamp.
        self.clock += 1_500_000_000;
        match *op {
            Op::Write(s, p) => {
                let rel = PATHS[p];
                if self.kind(s, rel) == Some(true) || !self.parent_ok(s, rel) {
                    return vec![];
                }
                self.version += 1;
                let content = format!("v{}-{}", self.version, "x".repeat((self.version % 7) as usize));
                self.fs(s).write(Path::new(Self::root(s)).join(rel), content.as_bytes(), self.clock);
                vec![rel]
            }
            Op::Delete(s, p) => {
                self.fs(s).remove_all(Path::new(Self::root(s)).join(PATHS[p]));
                vec![PATHS[p]]
            }
            Op::Rename(s, a, b) => {
                let (from, to) = (PATHS[a], PATHS[b]);
                if self.kind(s, from).is_none()
                    || self.kind(s, to).is_some()
                    || to.starts_with(&format!("{from}/"))
                    || from == to
                    || !self.parent_ok(s, to)
                {
                    return vec![];
                }
                let root = Path::new(Self::root(s));
                if let Some(parent) = Path::new(to).parent() {
                    if !parent.as_os_str().is_empty() {
                        self.fs(s).create_dir_all(&root.join(parent)).unwrap();
                    }
                }
                let _ = self.fs(s).rename(&root.join(from), &root.join(to));
                vec![from, to]
            }
            Op::Chmod(s, p, x) => {
                let rel = PATHS[p];
                if self.kind(s, rel) != Some(false) {
                    return vec![];
                }
                let abs = Path::new(Self::root(s)).join(rel);
                self.fs(s).set_mode(&abs, if x { 0o755 } else { 0o644 }).unwrap();
                vec![rel]
            }
            Op::Fault(s, p, f) => {
                let name = PATHS[p].rsplit('/').next().unwrap();
                self.sides[s as usize].inject(FAULTS[f as usize], name);
                vec![]
            }
            Op::Sync => vec![],
        }
    }

    /// Modes of the files on a side (trash excluded).
    fn modes(&self, s: Side) -> BTreeMap<String, u32> {
        use tandem::side::Node;
        self.files(s)
            .into_keys()
            .map(|k| {
                let m = match self.fs(s).stat(&Path::new(Self::root(s)).join(&k)).unwrap() {
                    Some(Node::Entry(e)) => e.mode,
                    _ => 0,
                };
                (k, m)
            })
            .collect()
    }

    fn sync(&mut self, dry_run: bool) -> api::SyncReport {
        self.sync_in(dry_run, None)
    }

    fn sync_in(&mut self, dry_run: bool, scope: Option<Vec<tandem::model::RelPath>>) -> api::SyncReport {
        let req = SyncRequest {
            dry_run,
            allow_mass_delete: true,
            scope,
            ..Default::default()
        };
        api::sync_with(&mut self.store, &self.pair, &self.sides[0], &self.sides[1], &req).expect("sync runs")
    }

    /// Files on a side (trash excluded), path -> content.
    fn files(&self, s: Side) -> BTreeMap<String, Vec<u8>> {
        self.fs(s)
            .files_under(Self::root(s))
            .into_iter()
            .filter(|(k, _)| !k.starts_with(".sync_trash/"))
            .collect()
    }

    /// Every content on both sides, trash included.
    fn all_contents(&self) -> BTreeSet<Vec<u8>> {
        Side::BOTH
            .iter()
            .flat_map(|s| self.fs(*s).files_under(Self::root(*s)).into_values())
            .collect()
    }
}

/// Files that may legitimately differ: paths the plan skipped (names one side cannot hold),
/// on the side that holds them.
fn skipped(rep: &api::SyncReport, side: Side) -> Vec<String> {
    rep.plan
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::Skip { side: s, path, .. } if *s == side => Some(path.to_string()),
            _ => None,
        })
        .collect()
}

fn comparable(files: BTreeMap<String, Vec<u8>>, skipped: &[String], case_insensitive: bool) -> BTreeMap<String, Vec<u8>> {
    files
        .into_iter()
        .filter(|(k, _)| !skipped.iter().any(|s| k == s || k.starts_with(&format!("{s}/"))))
        .map(|(k, v)| (if case_insensitive { k.to_lowercase() } else { k }, v))
        .collect()
}

fn check_case(k: &Knobs, ops: &[Op]) -> Result<(), TestCaseError> {
    let mut w = World::new(k);
    let mut chunks: Vec<Vec<Op>> = vec![Vec::new()];
    for o in ops {
        if matches!(o, Op::Sync) {
            chunks.push(Vec::new());
        } else {
            chunks.last_mut().unwrap().push(o.clone());
        }
    }
    for chunk in &chunks {
        let mut touched = BTreeSet::new();
        for o in chunk {
            touched.extend(w.apply(o));
        }
        let scope: Option<Vec<tandem::model::RelPath>> = k
            .targeted
            .then(|| touched.iter().map(|p| tandem::model::RelPath::new(p).unwrap()).collect());
        let before = w.all_contents();
        let mut converged = false;
        let mut last = None;
        let faulty = chunk.iter().any(|o| matches!(o, Op::Fault(..)));
        if faulty {
            // One run with the faults: operations may fail, nothing may be lost; the runs
            // below (faults cleared) must converge as if it had not happened.
            w.sync_in(false, scope.clone());
            for s in &w.sides {
                s.clear();
            }
        }
        for _run in 0..2 {
            let rep = if scope.as_ref().is_some_and(|s| s.is_empty()) && !faulty {
                w.sync(true)
            } else if faulty {
                // What the faulty run left undone lies outside the touched paths too.
                w.sync_in(false, None)
            } else {
                w.sync_in(false, scope.clone())
            };
            prop_assert_eq!(rep.counts.failed, 0, "failures: {:?}", rep.outcomes);
            // Converged: a fresh plan has nothing left to do but report unsyncable names,
            // and the sides agree on everything else.
            let again = w.sync(true);
            let busy: Vec<Action> = again
                .plan
                .actions
                .iter()
                .filter(|a| !matches!(a, Action::Skip { .. }))
                .cloned()
                .collect();
            let ci = k.right_case_insensitive;
            let l = comparable(w.files(Side::Left), &skipped(&again, Side::Left), ci);
            let r = comparable(w.files(Side::Right), &skipped(&again, Side::Right), ci);
            // Modes converge too, where the right side keeps them.
            let modes = |s: Side| -> BTreeMap<String, Vec<u8>> {
                let m = w.modes(s).into_iter().map(|(k, m)| (k, format!("{m:o}").into_bytes())).collect();
                comparable(m, &skipped(&again, s), ci)
            };
            let (lm, rm) = if k.right_fixed_mode {
                Default::default()
            } else {
                (modes(Side::Left), modes(Side::Right))
            };
            if l == r && lm == rm && busy.is_empty() {
                converged = true;
                break;
            }
            last = Some((l, r, busy, lm, rm));
        }
        prop_assert!(
            converged,
            "not converged after 2 runs: (left, right, still planned, left modes, right modes) = {:#?}",
            last
        );
        let after = w.all_contents();
        let lost: Vec<String> = before.difference(&after).map(|v| String::from_utf8_lossy(v).into_owned()).collect();
        prop_assert!(lost.is_empty(), "versions lost: {:?}", lost);
    }
    Ok(())
}

#[test]
fn property_sync_converges_and_loses_nothing() {
    let cases: u32 = std::env::var("TANDEM_PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000);
    let config = Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    };
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &[7u8; 32]);
    let mut runner = TestRunner::new_with_rng(config, rng);
    let strategy = (knobs(), proptest::collection::vec(op(), 1..40));
    if let Err(e) = runner.run(&strategy, |(k, ops)| check_case(&k, &ops)) {
        panic!("{e}");
    }
}
