//! The bandwidth limit: one token bucket per direction (bytes per second toward the left,
//! toward the right), whose rate may change with the time of day (`[bandwidth]` windows).
//! Copies call [`Throttle::take`] before writing each chunk. The bucket arithmetic is a
//! pure function of the time it is given; only `take` reads the clock and sleeps.
//! Must not touch: files, the state store.

use crate::config::Bandwidth;
use crate::model::Side;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One direction's bucket. Tokens are bytes; it holds at most a quarter second of the rate
/// (at least 256 KiB: one copy chunk), so the limit is smooth rather than bursty, and it
/// may go into debt by one caller's chunk (the caller then sleeps the debt off).
#[derive(Debug, Clone, Copy)]
pub struct Bucket {
    tokens: f64,
    /// Seconds (on the caller's clock) of the last refill.
    last: f64,
}

impl Bucket {
    pub fn new() -> Bucket {
        Bucket {
            tokens: 0.0,
            last: f64::NAN,
        }
    }

    /// Reserve `bytes` at time `now` (seconds) under `rate` bytes/s; returns how long the
    /// caller must wait before writing them.
    pub fn reserve(&mut self, now: f64, rate: u64, bytes: u64) -> Duration {
        let rate = rate.max(1) as f64;
        let cap = (rate * BURST_SECS).max(256.0 * 1024.0);
        if self.last.is_nan() {
            // A new bucket starts full: a small file is never made to wait.
            self.tokens = cap;
        } else {
            self.tokens = (self.tokens + (now - self.last).max(0.0) * rate).min(cap);
        }
        self.last = now;
        self.tokens -= bytes as f64;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / rate)
        }
    }
}

/// How much of its rate a bucket lets through at once after a quiet time.
const BURST_SECS: f64 = 0.25;

impl Default for Bucket {
    fn default() -> Self {
        Bucket::new()
    }
}

/// The limit of one pair, shared by all its copy workers and lanes.
pub struct Throttle {
    inner: Mutex<(Bandwidth, [Bucket; 2])>,
    epoch: Instant,
}

impl Throttle {
    pub fn new(bw: Bandwidth) -> Throttle {
        Throttle {
            inner: Mutex::new((bw, [Bucket::new(); 2])),
            epoch: Instant::now(),
        }
    }

    /// New settings apply from the next chunk on.
    pub fn set(&self, bw: Bandwidth) {
        self.inner.lock().unwrap().0 = bw;
    }

    pub fn is_unlimited(&self) -> bool {
        self.inner.lock().unwrap().0.is_unlimited()
    }

    /// Block until `bytes` may be written toward `to`.
    pub fn take(&self, to: Side, bytes: u64) {
        let wait = {
            let mut g = self.inner.lock().unwrap();
            let minute = {
                use chrono::Timelike;
                let t = chrono::Local::now().time();
                t.hour() * 60 + t.minute()
            };
            let Some(rate) = g.0.limit(to, minute) else { return };
            let i = if to == Side::Left { 0 } else { 1 };
            let now = self.epoch.elapsed().as_secs_f64();
            g.1[i].reserve(now, rate, bytes)
        };
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BandwidthWindow;

    #[test]
    fn bucket_lets_a_quarter_second_through_then_paces() {
        let mb = 1u64 << 20;
        let mut b = Bucket::new();
        // Full at start: a quarter second (1 MiB at 4 MiB/s) passes at once.
        assert_eq!(b.reserve(0.0, 4 * mb, mb), Duration::ZERO);
        // Empty now: the next 2 MiB wait half a second.
        assert_eq!(b.reserve(0.0, 4 * mb, 2 * mb), Duration::from_millis(500));
        // After the debt is slept off and another 0.125 s passes, 512 KiB pass at once.
        assert_eq!(b.reserve(0.625, 4 * mb, mb / 2), Duration::ZERO);
        // A long idle time refills at most a quarter second's worth.
        assert_eq!(b.reserve(100.0, 4 * mb, mb), Duration::ZERO);
        assert!(b.reserve(100.0, 4 * mb, 1) > Duration::ZERO);
        // A slow link still lets one copy chunk through at once.
        let mut slow = Bucket::new();
        assert_eq!(slow.reserve(0.0, 1000, 256 * 1024), Duration::ZERO);
    }

    #[test]
    fn sustained_rate_matches_the_limit() {
        let mut b = Bucket::new();
        let (mut t, chunk, rate) = (0.0f64, 256 * 1024u64, 4u64 << 20);
        let total = 64u64 << 20;
        let mut sent = 0;
        while sent < total {
            t += b.reserve(t, rate, chunk).as_secs_f64();
            sent += chunk;
        }
        // 64 MiB at 4 MiB/s, the first quarter second free: 15.75 s.
        assert!((t - 15.75).abs() < 0.1, "{t}");
    }

    #[test]
    fn windows_pick_the_rate_by_time_of_day() {
        let bw = Bandwidth {
            left_to_right: Some(100),
            right_to_left: None,
            windows: vec![
                BandwidthWindow {
                    from_min: 8 * 60,
                    to_min: 18 * 60,
                    left_to_right: Some(10),
                    right_to_left: Some(20),
                },
                BandwidthWindow {
                    from_min: 22 * 60,
                    to_min: 2 * 60,
                    left_to_right: None,
                    right_to_left: Some(5),
                },
            ],
        };
        assert_eq!(bw.limit(Side::Right, 7 * 60 + 59), Some(100));
        assert_eq!(bw.limit(Side::Left, 7 * 60 + 59), None);
        assert_eq!(bw.limit(Side::Right, 8 * 60), Some(10));
        assert_eq!(bw.limit(Side::Left, 17 * 60 + 59), Some(20));
        assert_eq!(bw.limit(Side::Right, 18 * 60), Some(100));
        // Wrapping past midnight; a window's unlimited direction is unlimited.
        assert_eq!(bw.limit(Side::Left, 23 * 60), Some(5));
        assert_eq!(bw.limit(Side::Left, 60), Some(5));
        assert_eq!(bw.limit(Side::Right, 60), None);
        assert_eq!(bw.limit(Side::Left, 2 * 60), None);
    }
}
