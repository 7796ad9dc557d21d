//! The engine's events: one closed enum, published by the continuous service on a broadcast
//! channel that the HTTP API (event stream), the tray and the logs subscribe to. Events are
//! notifications, not state: a subscriber that falls behind misses some and asks for the
//! status again. Must not touch: anything; this is data.

use crate::engine::exec::Outcome;
use crate::model::Side;
use serde::Serialize;

/// A pair's state, as the status and the tray show it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PairState {
    Idle,
    Scanning,
    Syncing,
    Paused,
    Error,
    /// Idle, but at least one side is watched by periodic scans (it sends no events).
    Polling,
    /// Idle, but some paths failed at their last try and wait for a retry (the status
    /// counts them in `failing`; the Backlog page lists them with their errors).
    Failing,
}

/// What a full or targeted scan covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ScanKind {
    Full,
    Targeted,
}

#[derive(Clone, Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    ServiceStarted {
        pairs: Vec<String>,
    },
    ServiceStopping,
    StateChanged {
        pair: String,
        state: PairState,
        reason: Option<String>,
    },
    /// The watcher reported changes (coalesced: one event per batch, not per file).
    Changes {
        pair: String,
        side: Side,
        paths: usize,
    },
    ScanStarted {
        pair: String,
        kind: ScanKind,
        paths: usize,
    },
    PlanReady {
        pair: String,
        actions: usize,
        copies: usize,
        bytes: u64,
    },
    ActionStarted {
        pair: String,
        op: String,
        side: Option<Side>,
        path: String,
        bytes: u64,
    },
    /// A copy moved on (at most a few per second per copy).
    Progress {
        pair: String,
        side: Side,
        path: String,
        done: u64,
        total: u64,
        bytes_per_s: u64,
    },
    ActionFinished {
        pair: String,
        op: String,
        side: Option<Side>,
        path: String,
        outcome: Outcome,
    },
    RunFinished {
        pair: String,
        run: Option<i64>,
        trigger: String,
        status: String,
        copied: u64,
        failed: u64,
        bytes: u64,
        ms: u64,
    },
    ConflictRaised {
        pair: String,
        path: String,
        rule: String,
    },
    Paused {
        /// None: every pair.
        pair: Option<String>,
        reason: String,
    },
    Resumed {
        pair: Option<String>,
    },
    /// A side sends no file events: it is scanned periodically instead.
    WatchFallback {
        pair: String,
        side: Side,
        reason: String,
    },
    Error {
        pair: Option<String>,
        code: String,
        message: String,
    },
    /// New settings were saved and applied.
    SettingsChanged,
    /// Someone (a second launch of the desktop app) asked for the window, at this page.
    /// A shell asked the process hosting the service to stop (`tandem stop`, `POST
    /// /api/stop`): the headless host and the desktop app then stop gracefully.
    StopRequested,
    ShowWindow {
        page: Option<String>,
    },
}

pub type Sender = tokio::sync::broadcast::Sender<Event>;
pub type Receiver = tokio::sync::broadcast::Receiver<Event>;
