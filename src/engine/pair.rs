//! A pair as the engine and the service take it: its name, its two sides and its options.
//! The configuration file (`crate::config`) parses into these types; the engine never reads
//! the file. [`ConfigError`] is what a bad setting is reported as (file, key, expectation).

use crate::engine::plan::Rules;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: not valid TOML: {message}")]
    Syntax { file: PathBuf, message: String },
    #[error("{file}: key `{key}`: expected {expected}, found {found}")]
    Invalid {
        file: PathBuf,
        key: String,
        expected: String,
        found: String,
    },
    #[error("{file}: unknown key `{key}` (known keys here: {known})")]
    Unknown { file: PathBuf, key: String, known: String },
}

impl ConfigError {
    /// The key an error is about, for the API and UI.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Invalid { key, .. } | ConfigError::Unknown { key, .. } => Some(key),
            _ => None,
        }
    }
}

/// Options that apply to a pair (globals, overridable per pair).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SyncOptions {
    pub rules: Rules,
    /// Extra ignore patterns (glob; matched against the name, or against the relative path
    /// when the pattern contains `/`; case-insensitive).
    pub ignore: Vec<String>,
    pub use_default_ignores: bool,
    pub soft_delete_max_bytes: u64,
    pub trash_retention_days: u32,
    pub max_delete_percent: u8,
    pub concurrency: usize,
    /// Refuse names Windows cannot hold on both sides, whatever the file systems are.
    pub portable_names: bool,
    /// Longest relative path (in UTF-16 units) accepted when a side is Windows-like.
    pub max_path_len: usize,
    /// How the continuous service notices changes (both sides, unless overridden below).
    pub watch: WatchMode,
    /// `watch_left` / `watch_right`: one side's own way (e.g. `"both"` for a cloud drive
    /// the detection does not recognise).
    pub watch_sides: [Option<WatchMode>; 2],
    /// A change whose writer has not closed the file is taken after this much quiet (ms).
    pub debounce_ms: u64,
    /// A path that keeps changing is taken after at most this long (ms).
    pub max_wait_ms: u64,
    /// Full scan interval when a side sends no events (or `watch = "poll"`), in seconds.
    pub poll_interval_s: u64,
    /// Full reconciliation interval of the continuous service, in seconds.
    pub reconcile_every_s: u64,
    /// Copies above this size go to the large-file lane.
    pub large_file_bytes: u64,
    /// Workers of the large-file lane.
    pub large_workers: usize,
    pub bandwidth: Bandwidth,
    /// How a side that is a server (`s3://`, `webdav://`) is reached: endpoint, region,
    /// user and where the secret is (never the secret).
    pub remote: crate::side::remote::RemoteOptions,
    /// Scheduled runs (`[[schedule]]`, or `[[pair.schedule]]` replacing them for a pair).
    pub schedules: Vec<crate::model::schedule::ScheduleSpec>,
    /// Runs and their journal older than this are pruned by the daily housekeeping.
    pub history_retention_days: u32,
}

/// How the continuous service notices changes on a pair's roots.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WatchMode {
    /// What the side supports: OS events on a local disk (polling if none arrive), events
    /// and polling on a cloud drive or network share, polling on a server.
    Auto,
    /// OS events only (polling if none arrive at all).
    Events,
    /// OS events for what this machine writes plus a scan every `poll_interval` for what
    /// changes elsewhere (cloud drives mounted as folders, network shares).
    Both,
    /// Scans every `poll_interval`, no OS events.
    Poll,
    /// No watching: only schedules, reconciliations and manual syncs.
    Off,
}

impl WatchMode {
    pub const NAMES: [&str; 5] = ["auto", "events", "both", "poll", "off"];

    pub fn parse(s: &str) -> Option<WatchMode> {
        Some(match s {
            "auto" => WatchMode::Auto,
            "events" => WatchMode::Events,
            "both" => WatchMode::Both,
            "poll" => WatchMode::Poll,
            "off" => WatchMode::Off,
            _ => return None,
        })
    }
}

impl SyncOptions {
    /// How `side` is watched: its own `watch_left`/`watch_right`, else the pair's `watch`.
    pub fn watch_for(&self, side: crate::model::Side) -> WatchMode {
        self.watch_sides[side as usize].unwrap_or(self.watch)
    }

    /// Neither side is watched or polled: only schedules and manual runs.
    pub fn watch_off(&self) -> bool {
        crate::model::Side::BOTH.iter().all(|s| self.watch_for(*s) == WatchMode::Off)
    }
}

/// Bytes per second per direction (None: unlimited), optionally by time of day.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Bandwidth {
    pub left_to_right: Option<u64>,
    pub right_to_left: Option<u64>,
    /// Windows of the day with other limits; the first that contains the time applies.
    pub windows: Vec<BandwidthWindow>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BandwidthWindow {
    /// Minutes after midnight, local time; `from > to` wraps past midnight.
    pub from_min: u32,
    pub to_min: u32,
    pub left_to_right: Option<u64>,
    pub right_to_left: Option<u64>,
}

impl Bandwidth {
    pub fn is_unlimited(&self) -> bool {
        self.left_to_right.is_none()
            && self.right_to_left.is_none()
            && self.windows.iter().all(|w| w.left_to_right.is_none() && w.right_to_left.is_none())
    }

    /// The limit (bytes/s) toward `to` at `minute` of the local day.
    pub fn limit(&self, to: crate::model::Side, minute: u32) -> Option<u64> {
        let pick = |l2r: Option<u64>, r2l: Option<u64>| match to {
            crate::model::Side::Right => l2r,
            crate::model::Side::Left => r2l,
        };
        for w in &self.windows {
            let inside = if w.from_min <= w.to_min {
                (w.from_min..w.to_min).contains(&minute)
            } else {
                minute >= w.from_min || minute < w.to_min
            };
            if inside {
                return pick(w.left_to_right, w.right_to_left);
            }
        }
        pick(self.left_to_right, self.right_to_left)
    }
}

impl Default for SyncOptions {
    fn default() -> Self {
        SyncOptions {
            rules: Rules::default(),
            ignore: Vec::new(),
            use_default_ignores: true,
            soft_delete_max_bytes: 20 * 1024 * 1024,
            trash_retention_days: 30,
            max_delete_percent: 50,
            concurrency: 4,
            portable_names: false,
            max_path_len: 240,
            watch: WatchMode::Auto,
            watch_sides: [None, None],
            debounce_ms: 300,
            max_wait_ms: 10_000,
            poll_interval_s: 60,
            reconcile_every_s: 6 * 3600,
            large_file_bytes: 64 << 20,
            large_workers: 1,
            bandwidth: Bandwidth::default(),
            remote: Default::default(),
            schedules: Vec::new(),
            history_retention_days: 365,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PairConfig {
    pub name: String,
    pub left: PathBuf,
    pub right: PathBuf,
    pub options: SyncOptions,
}
