//! When a pair's worker runs, as pure decisions over its timers: the start-up run, the
//! periodic reconciliation, polling where a side sends no events, the canary deadline, the
//! back-off after an error and per failing path. Nothing here reads the clock, sleeps or
//! touches a side: `now` comes in, a decision goes out; the worker carries it out.
//! Must not touch: the state store, sides, events.

use crate::engine::pair::SyncOptions;
use crate::engine::sync::Trigger;
use std::time::{Duration, Instant};

/// After an error (a root missing, the state store...) the pair is retried this often at most.
pub const ERROR_RETRY: Duration = Duration::from_secs(30);
/// How long to wait for the canary's event before falling back to polling.
pub const CANARY_WAIT: Duration = Duration::from_secs(3);
/// The worker wakes at least this often (to notice pauses and stop requests).
const TICK: Duration = Duration::from_secs(1);

/// The timings a pair's options set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    pub reconcile_every: Duration,
    pub poll_every: Duration,
    /// `watch = "off"`: only schedules and manual runs.
    pub watch_off: bool,
}

impl Timing {
    pub fn of(o: &SyncOptions) -> Timing {
        Timing {
            reconcile_every: Duration::from_secs(o.reconcile_every_s),
            poll_every: Duration::from_secs(o.poll_interval_s),
            watch_off: o.watch_off(),
        }
    }
}

/// What the worker does now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Nothing until a message or the next wake-up (an error back-off is running).
    Wait,
    /// A full run with this trigger.
    Full(Trigger),
    /// Targeted runs of what the debouncer holds due, if anything.
    Targeted,
}

/// A pair worker's timers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timers {
    pub timing: Timing,
    /// A full run wanted at (or after) this time, and why.
    pub full_due: Option<(Instant, Trigger)>,
    pub next_reconcile: Instant,
    /// Set while a side is polled (it sends no events).
    pub next_poll: Option<Instant>,
    /// When the canary's event must have come back.
    pub canary_deadline: Option<Instant>,
    /// Set after an error: nothing runs before it.
    pub error_until: Option<Instant>,
}

impl Timers {
    /// At start: a full run at once (the start-up reconciliation), except for a
    /// schedule-only pair, which runs when its schedules say.
    pub fn start(timing: Timing, now: Instant, polling: bool, canary: bool) -> Timers {
        Timers {
            timing,
            full_due: (!timing.watch_off).then_some((now, Trigger::Startup)),
            next_reconcile: if timing.watch_off {
                now + Duration::from_secs(100 * 365 * 86400)
            } else {
                now + timing.reconcile_every
            },
            next_poll: polling.then(|| now + timing.poll_every),
            canary_deadline: canary.then(|| now + CANARY_WAIT),
            error_until: None,
        }
    }

    /// When to wake next: the earliest timer that matters, at most a tick away. While
    /// paused only the canary counts; after an error only the retry time (other timers may
    /// be overdue: they wait for it and must not wake the loop again and again).
    pub fn wake_at(&self, now: Instant, paused: bool, debounce_due: Option<Instant>) -> Instant {
        let mut wake = now + TICK;
        let mut consider = |t: Option<Instant>| {
            if let Some(t) = t {
                wake = wake.min(t);
            }
        };
        match self.error_until {
            Some(until) if !paused => consider(Some(until)),
            None if !paused => {
                consider(debounce_due);
                consider(self.full_due.map(|f| f.0));
                consider(Some(self.next_reconcile));
                consider(self.next_poll);
            }
            _ => {}
        }
        consider(self.canary_deadline);
        wake
    }

    /// What to do at `now` (not paused). A due full run is taken (and cleared).
    pub fn next(&mut self, now: Instant) -> Next {
        if let Some(until) = self.error_until {
            if now < until {
                return Next::Wait;
            }
            // The retry after an error is a full reconciliation.
            self.error_until = None;
            self.full_due.get_or_insert((now, Trigger::Reconciliation));
        }
        if now >= self.next_reconcile {
            self.full_due.get_or_insert((now, Trigger::Reconciliation));
        }
        if self.next_poll.is_some_and(|t| now >= t) {
            self.full_due.get_or_insert((now, Trigger::Poll));
        }
        match self.full_due {
            Some((t, trigger)) if now >= t => {
                self.full_due = None;
                Next::Full(trigger)
            }
            _ => Next::Targeted,
        }
    }

    /// A full run that began at `started` ended at `now`. The next poll is due an interval
    /// after the run began, so a change on a polled side arrives within the interval plus
    /// one listing (not plus a whole slow run, such as the start-up one); but never sooner
    /// than half an interval after the run ended, so a listing slower than the interval
    /// does not poll back to back. The next reconciliation (unless it was a poll) counts
    /// from the end.
    pub fn full_run_done(&mut self, trigger: Trigger, started: Instant, now: Instant) {
        if self.timing.watch_off {
            return;
        }
        if self.next_poll.is_some() {
            self.next_poll = Some((started + self.timing.poll_every).max(now + self.timing.poll_every / 2));
        }
        if trigger != Trigger::Poll {
            self.next_reconcile = now + self.timing.reconcile_every;
        }
    }

    /// A run failed: retry after `ERROR_RETRY`, sooner when the pair polls more often.
    pub fn failed(&mut self, now: Instant) {
        self.error_until = Some(now + ERROR_RETRY.min(self.timing.poll_every.max(Duration::from_secs(1))));
    }

    /// The state store failed mid-run: retry after `ERROR_RETRY`.
    pub fn store_failed(&mut self, now: Instant) {
        self.error_until = Some(now + ERROR_RETRY);
    }

    /// A side sends no events after all: poll it from now on.
    pub fn start_polling(&mut self, now: Instant) {
        self.next_poll = Some(now + self.timing.poll_every);
    }

    /// The user asked (sync now, resume with consent): a full run at once, no back-off.
    pub fn run_now(&mut self, now: Instant, trigger: Trigger) {
        self.error_until = None;
        self.full_due = Some((now, trigger));
    }

    /// A full run is wanted (a rescan, a schedule); one already due absorbs it.
    pub fn want_full(&mut self, now: Instant, trigger: Trigger) {
        self.full_due.get_or_insert((now, trigger));
    }
}

/// How long a path whose copy failed `failures` times waits before the next try: 2 s, 4 s,
/// ... doubling, at most 5 minutes.
pub fn retry_delay(failures: u32) -> Duration {
    Duration::from_secs((1u64 << failures.clamp(1, 9)).min(300))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timing() -> Timing {
        Timing {
            reconcile_every: Duration::from_secs(3600),
            poll_every: Duration::from_secs(60),
            watch_off: false,
        }
    }

    fn secs(t0: Instant, s: u64) -> Instant {
        t0 + Duration::from_secs(s)
    }

    #[test]
    fn start_runs_a_startup_reconciliation_at_once_unless_schedule_only() {
        let t0 = Instant::now();
        let mut t = Timers::start(timing(), t0, false, false);
        assert_eq!(t.next(t0), Next::Full(Trigger::Startup));
        assert_eq!(t.next(t0), Next::Targeted);
        let mut off = Timers::start(
            Timing {
                watch_off: true,
                ..timing()
            },
            t0,
            false,
            false,
        );
        assert_eq!(off.next(secs(t0, 86400)), Next::Targeted);
    }

    #[test]
    fn polls_count_from_the_run_start_and_reconciliations_from_the_run_end() {
        let t0 = Instant::now();
        let mut t = Timers::start(timing(), t0, true, false);
        assert_eq!(t.next(t0), Next::Full(Trigger::Startup));
        // A start-up run of 5 s: the first poll is a minute after it began, not after it ended.
        t.full_run_done(Trigger::Startup, t0, secs(t0, 5));
        assert_eq!(t.next(secs(t0, 59)), Next::Targeted);
        assert_eq!(t.next(secs(t0, 60)), Next::Full(Trigger::Poll));
        t.full_run_done(Trigger::Poll, secs(t0, 60), secs(t0, 66));
        // A poll does not move the reconciliation.
        assert_eq!(t.next_reconcile, secs(t0, 3605));
        assert_eq!(t.next_poll, Some(secs(t0, 120)));
        // A listing slower than the interval: half an interval of rest, not back to back.
        t.full_run_done(Trigger::Poll, secs(t0, 120), secs(t0, 200));
        assert_eq!(t.next_poll, Some(secs(t0, 230)));
        // When both are due, the reconciliation (the earlier want) is the one run.
        assert_eq!(t.next(secs(t0, 4000)), Next::Full(Trigger::Reconciliation));
    }

    #[test]
    fn after_an_error_nothing_runs_until_the_retry_which_is_a_full_run() {
        let t0 = Instant::now();
        let mut t = Timers::start(timing(), t0, false, false);
        let _ = t.next(t0);
        t.failed(t0);
        // The back-off is the shorter of 30 s and the poll interval.
        assert_eq!(t.error_until, Some(secs(t0, 30)));
        assert_eq!(t.next(secs(t0, 10)), Next::Wait);
        // Only the retry time wakes the loop, not the overdue reconciliation.
        t.next_reconcile = t0;
        assert_eq!(t.wake_at(secs(t0, 10), false, Some(t0)), secs(t0, 11));
        assert_eq!(t.wake_at(secs(t0, 29) + Duration::from_millis(500), false, None), secs(t0, 30));
        assert_eq!(t.next(secs(t0, 30)), Next::Full(Trigger::Reconciliation));
        assert_eq!(t.error_until, None);
    }

    #[test]
    fn a_manual_run_cancels_the_back_off() {
        let t0 = Instant::now();
        let mut t = Timers::start(timing(), t0, false, false);
        let _ = t.next(t0);
        t.store_failed(t0);
        t.run_now(secs(t0, 1), Trigger::Manual);
        assert_eq!(t.next(secs(t0, 1)), Next::Full(Trigger::Manual));
    }

    #[test]
    fn a_wanted_full_run_does_not_replace_one_already_due() {
        let t0 = Instant::now();
        let mut t = Timers::start(timing(), t0, false, false);
        t.want_full(t0, Trigger::Schedule);
        assert_eq!(t.next(t0), Next::Full(Trigger::Startup));
    }

    #[test]
    fn wake_at_takes_the_earliest_timer_and_ignores_all_but_the_canary_while_paused() {
        let t0 = Instant::now();
        let mut t = Timers::start(timing(), t0, false, true);
        let _ = t.next(t0);
        let soon = t0 + Duration::from_millis(300);
        assert_eq!(t.wake_at(t0, false, Some(soon)), soon);
        assert_eq!(t.wake_at(t0, true, Some(soon)), secs(t0, 1));
        t.canary_deadline = Some(t0 + Duration::from_millis(200));
        assert_eq!(t.wake_at(t0, true, Some(soon)), t0 + Duration::from_millis(200));
    }

    #[test]
    fn failing_paths_back_off_exponentially_up_to_five_minutes() {
        let d: Vec<u64> = [1, 2, 3, 8, 9, 20].iter().map(|n| retry_delay(*n).as_secs()).collect();
        assert_eq!(d, [2, 4, 8, 256, 300, 300]);
    }
}
