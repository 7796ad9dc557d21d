//! Which work goes where, as pure decisions: the scope of a targeted run (the reported
//! paths, the deletions held back, minus what the large lane holds), which held deletions
//! are ripe, and how a plan splits between the small lane and the large lane.
//! Must not touch: the clock (times come in), sides, the state store, events.

use crate::engine::plan::Action;
use crate::model::RelPath;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Held deletions whose hold has ended at `now` (they may go ahead).
pub fn ripe_holds(held: &HashMap<RelPath, Instant>, now: Instant, hold: Duration) -> Vec<RelPath> {
    let mut ripe: Vec<RelPath> = held.iter().filter(|(_, t)| now >= **t + hold).map(|(p, _)| p.clone()).collect();
    ripe.sort();
    ripe
}

/// A targeted run's scope: the reported paths plus every held one (a held deletion is
/// planned again with each run, so the rename it may belong to is seen whole), sorted and
/// without duplicates; paths the large lane is busy with are returned apart (they wait).
pub fn targeted_scope<'a>(
    reported: Vec<RelPath>,
    held: impl Iterator<Item = &'a RelPath>,
    busy: impl Fn(&RelPath) -> bool,
) -> (Vec<RelPath>, Vec<RelPath>) {
    let mut paths = reported;
    paths.extend(held.cloned());
    paths.sort();
    paths.dedup();
    paths.into_iter().partition(|p| !busy(p))
}

/// A plan split between the lanes.
#[derive(Debug, Default, PartialEq)]
pub struct Split {
    /// Everything but large copies, in plan order (the small lane runs it at once).
    pub small: Vec<Action>,
    /// Copies above the large-file size (the large lane takes them smallest first).
    pub large: Vec<Action>,
    /// Paths of actions that touch what the large lane holds: planned again later.
    pub waiting: Vec<RelPath>,
}

/// Split `actions`: copies larger than `large_bytes` to the large lane; actions `busy` says
/// overlap the large lane's work wait.
pub fn split_plan(actions: Vec<Action>, large_bytes: u64, busy: impl Fn(&Action) -> bool) -> Split {
    let mut out = Split::default();
    for a in actions {
        if busy(&a) {
            out.waiting.push(a.path().clone());
            continue;
        }
        match &a {
            Action::Copy { src, .. } if src.size > large_bytes => out.large.push(a),
            _ => out.small.push(a),
        }
    }
    out
}

/// The bytes a copy moves (0 for other actions).
pub fn copy_size(a: &Action) -> u64 {
    match a {
        Action::Copy { src, .. } => src.size,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::plan::Rule;
    use crate::model::{Entry, Kind, Side};

    fn p(s: &str) -> RelPath {
        RelPath::new(s).unwrap()
    }

    fn copy(path: &str, size: u64) -> Action {
        Action::Copy {
            side: Side::Right,
            path: p(path),
            src: Entry {
                kind: Kind::File,
                size,
                mtime: 0,
                mode: 0,
                file_id: 0,
                version: 0,
                hash: None,
            },
            dst: None,
            rule: Rule::R9,
            src_mode: None,
        }
    }

    #[test]
    fn holds_ripen_after_the_hold() {
        let t0 = Instant::now();
        let held: HashMap<RelPath, Instant> = [(p("old"), t0), (p("new"), t0 + Duration::from_secs(1))].into_iter().collect();
        let hold = Duration::from_millis(1500);
        assert!(ripe_holds(&held, t0, hold).is_empty());
        assert_eq!(ripe_holds(&held, t0 + Duration::from_millis(1500), hold), [p("old")]);
        assert_eq!(ripe_holds(&held, t0 + Duration::from_secs(3), hold), [p("new"), p("old")]);
    }

    #[test]
    fn a_targeted_scope_adds_held_paths_and_sets_aside_busy_ones() {
        let held = [p("gone"), p("a")];
        let (free, busy) = targeted_scope(vec![p("b"), p("a"), p("big.iso")], held.iter(), |x| x.as_str() == "big.iso");
        assert_eq!(free, [p("a"), p("b"), p("gone")]);
        assert_eq!(busy, [p("big.iso")]);
    }

    #[test]
    fn large_copies_go_to_their_lane_and_busy_paths_wait() {
        let actions = vec![copy("small", 10), copy("big", 1000), copy("held", 5), copy("edge", 100)];
        let s = split_plan(actions, 100, |a| a.path().as_str() == "held");
        let names = |v: &[Action]| v.iter().map(|a| a.path().to_string()).collect::<Vec<_>>();
        assert_eq!(names(&s.small), ["small", "edge"]);
        assert_eq!(names(&s.large), ["big"]);
        assert_eq!(s.waiting, [p("held")]);
        assert_eq!(s.large.iter().map(copy_size).sum::<u64>(), 1000);
    }
}
