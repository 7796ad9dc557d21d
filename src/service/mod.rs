//! The continuous service: keeps every configured pair in sync, day and night. Per pair it
//! runs two OS watchers (or periodic scans where a side sends no events), a debouncer, a
//! small-file lane (targeted plans of just the reported paths, executed at once) and a
//! large-file lane (copies above `large_file`, smallest first, on their own workers, so a
//! huge copy never delays small ones). It reconciles each pair with a full scan at start
//! and every `reconcile_every`; it pauses and resumes per pair and globally (events are
//! kept while paused); it publishes [`Event`]s and a live [`ServiceStatus`].
//! The work itself goes through [`crate::engine::sync`] (`prepare` / `apply`): this module decides
//! *when* and *what scope*, never *what to do* with a file.
//! Must not touch: terminal output, HTTP, the planner's decisions.

pub mod events;
pub mod lanes;
pub mod throttle;
pub mod timers;
pub mod watch;

use self::events::{Event, PairState, ScanKind};
use self::throttle::Throttle;
use self::timers::{Next, Timers, Timing, CANARY_WAIT};
use self::watch::{watch_plan, Debouncer, Readiness, RootWatcher, WatchMsg};
use crate::config::PairConfig;
use crate::engine::exec::{Hooks, Observer, Outcome};
use crate::engine::plan::{Action, Plan};
use crate::engine::records;
use crate::engine::sync::{self as api, ApiError, PairLock, SyncRequest, Trigger};
use crate::model::{RelPath, Side};
use crate::side::Replica;
use crate::state::{now_ns, RunRow, Store};
use serde::Serialize;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Log to stderr and to daily files in `dir` (7 kept), at info level (`debug` with
/// `verbose`), or as `TANDEM_LOG` says. The guard flushes the file writer when dropped.
pub fn init_logs(dir: &Path, verbose: bool) -> Result<tracing_appender::non_blocking::WorkerGuard, ApiError> {
    use tracing_subscriber::layer::{Layer, SubscriberExt};
    use tracing_subscriber::util::SubscriberInitExt;
    let io = |source| ApiError::Io {
        path: dir.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    let appender = tracing_appender::rolling::Builder::new()
        .rotation(tracing_appender::rolling::Rotation::DAILY)
        .filename_prefix("tandem")
        .filename_suffix("log")
        .max_log_files(7)
        .build(dir)
        .map_err(|e| ApiError::Internal(format!("cannot open a log file in {}: {e}", dir.display())))?;
    let (file, guard) = tracing_appender::non_blocking(appender);
    let level = if verbose { "debug" } else { "info" };
    let filter = || tracing_subscriber::EnvFilter::try_from_env("TANDEM_LOG").unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_target(false)
                .with_filter(filter()),
        )
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(file)
                .with_ansi(false)
                .with_target(false)
                .with_filter(filter()),
        )
        .try_init();
    Ok(guard)
}

/// A file whose writer closed it is taken after this window (it coalesces bursts).
const SETTLE: Duration = Duration::from_millis(40);
/// A deferred action (something changed under it) is planned again after this.
const DEFER_RETRY: Duration = Duration::from_millis(500);
/// A deletion a targeted run finds waits this long for the rest of the picture (the new
/// name of a renamed folder, reported a moment later) before it is carried out; every
/// targeted run meanwhile plans the held paths too, so a rename stays a rename (R14).
const DELETE_HOLD: Duration = Duration::from_millis(1500);

/// What the service runs.
#[derive(Clone, Debug)]
pub struct ServiceConfig {
    pub pairs: Vec<PairConfig>,
    pub state: PathBuf,
    /// Mail notifications (None: none).
    pub email: Option<crate::config::EmailConfig>,
    /// The config file the pairs came from (None: an ad-hoc pair); settings are read from
    /// and written to it.
    pub config_file: Option<PathBuf>,
    /// The desktop app's settings (toasts, autostart), carried for it.
    pub desktop: crate::config::DesktopConfig,
}

impl ServiceConfig {
    /// Every pair of a config file, with the state file in effect (`state` from the
    /// command line, else the file's, else the user's default).
    pub fn from_config(c: &crate::config::Config, state: Option<PathBuf>) -> ServiceConfig {
        let state = state.or_else(|| c.state.clone()).unwrap_or_else(records::default_state_path);
        ServiceConfig {
            pairs: c.pairs.clone(),
            state: std::path::absolute(&state).unwrap_or(state),
            email: c.email.clone(),
            config_file: Some(c.file.clone()),
            desktop: c.desktop.clone(),
        }
    }

    /// Where the rotating log files go: `log_dir` if set, else `logs/` beside the state.
    pub fn default_log_dir(&self) -> PathBuf {
        self.state.parent().unwrap_or(Path::new(".")).join("logs")
    }
}

/// The whole service's status, as `tandem status`, the API and the tray show it.
#[derive(Clone, Debug, Serialize)]
pub struct ServiceStatus {
    pub version: String,
    pub pid: u32,
    pub started_at: i64,
    pub paused_all: bool,
    pub pairs: Vec<LiveStatus>,
}

#[derive(Clone, Debug, Serialize)]
pub struct LiveStatus {
    pub pair: String,
    pub left: String,
    pub right: String,
    pub state: PairState,
    /// Why the pair is paused or in error.
    pub reason: Option<String>,
    pub paused: bool,
    /// Paused by the mass-delete guard: resuming with `allow_mass_delete` lets the
    /// deletions go ahead, a plain resume asks again.
    pub needs_consent: bool,
    pub watch: Vec<WatchInfo>,
    pub last_event: Option<LastEvent>,
    pub last_run: Option<RunRow>,
    pub backlog: Backlog,
    pub transfers: Vec<Transfer>,
    pub open_conflicts: u64,
    pub ops_last_24h: u64,
    /// Paths whose last try failed and that wait for their retry.
    pub failing: u64,
    /// Over the recorded history.
    pub totals: Totals,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Totals {
    pub runs: u64,
    pub copied: u64,
    pub renamed: u64,
    pub deleted: u64,
    pub conflicts: u64,
    pub failed: u64,
    pub bytes: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct WatchInfo {
    pub side: Side,
    /// "events", "polling", "off" or "starting" (canary not back yet).
    pub mode: String,
    pub reason: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct LastEvent {
    pub at: i64,
    pub side: Side,
    pub path: String,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Backlog {
    /// Copies planned and not done yet (both lanes).
    pub items: u64,
    pub bytes: u64,
    /// Of which in the large-file lane.
    pub large_items: u64,
    /// Reported paths waiting to be planned (debouncing, retries, or paused).
    pub waiting_paths: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Transfer {
    pub path: String,
    /// The side written to.
    pub side: Side,
    pub lane: &'static str,
    pub size: u64,
    pub done: u64,
    pub bytes_per_s: u64,
    pub eta_s: Option<u64>,
    /// "transferring", or "verifying" once every byte is written (the source re-checked,
    /// the upload looked up, the copy put in place).
    pub state: &'static str,
}

/// Where a worker sends the report of a run asked for by the user.
type ReportTx = mpsc::Sender<Result<api::SyncReport, ApiError>>;

enum Ctl {
    Watch(WatchMsg),
    /// Something changed in the flags (pause, resume): look again.
    Wake,
    SyncNow,
    AllowMassDeleteOnce,
    /// A schedule is due: a full run with this trigger, outcome recorded on the schedule.
    Scheduled {
        name: String,
        trigger: Trigger,
    },
    /// Apply a user's decision on a conflict (between runs, even while paused).
    Resolve {
        path: String,
        keep: crate::engine::plan::Keep,
        reply: ReportTx,
    },
    /// `resync PATH` (between runs, even while paused).
    Resync {
        path: String,
        dry_run: bool,
        reply: ReportTx,
    },
    /// The large lane finished (or gave back) a copy.
    LargeDone {
        path: RelPath,
        outcome: Option<Outcome>,
    },
    Stop,
}

#[derive(Default)]
struct Live {
    state: Option<PairState>,
    reason: Option<String>,
    watch: [WatchInfoState; 2],
    last_event: Option<LastEvent>,
    small_items: u64,
    small_bytes: u64,
    /// The small lane's planned copies not done yet, in execution order: (plan index, path,
    /// side written, size).
    small_queue: Vec<(usize, RelPath, Side, u64)>,
    waiting: u64,
    /// Paths whose last try failed (the worker's retry list).
    failing: u64,
    transfers: HashMap<(u8, usize), TransferState>,
    /// The last [`RECENT_MAX`] actions finished, newest at the front.
    recent: VecDeque<Finished>,
}

#[derive(Clone, Default)]
struct WatchInfoState {
    /// "off", "polling", "starting" (OS events, the canary not back yet), "events", "both"
    /// (OS events and polling).
    mode: &'static str,
    reason: Option<String>,
    /// Also polled, whatever the events do (a cloud drive, `watch = "both"`).
    poll: bool,
}

struct TransferState {
    path: RelPath,
    side: Side,
    size: u64,
    done: u64,
    started: Instant,
    last_event: Instant,
    verifying: bool,
}

fn transfer_state(verifying: bool) -> &'static str {
    if verifying {
        "verifying"
    } else {
        "transferring"
    }
}

struct LargeJob {
    action: Action,
    trigger: Trigger,
}

fn job_size(a: &Action) -> u64 {
    match a {
        Action::Copy { src, .. } => src.size,
        _ => 0,
    }
}

/// One copy waiting or under way.
#[derive(Clone, Debug, Serialize)]
pub struct BacklogItem {
    pub path: String,
    /// The side written to.
    pub side: Side,
    pub size: u64,
    pub lane: &'static str,
    pub copying: bool,
    pub done: u64,
    /// "queued", "transferring" or "verifying" (see [`Transfer::state`]).
    pub state: &'static str,
}

/// An action a pair finished lately (newest first in [`Service::recent`]): what happened
/// to it, and why when it did not happen.
#[derive(Clone, Debug, Serialize)]
pub struct Finished {
    pub path: String,
    /// "copy", "delete", "rename", ... (as in history).
    pub op: &'static str,
    /// The side written to, where there is one.
    pub side: Option<Side>,
    /// "done", "deferred" (something changed since the scan: planned again) or "failed".
    pub state: &'static str,
    /// The error or the reason, when not done.
    pub detail: Option<String>,
    pub bytes: u64,
    /// When it finished (Unix seconds).
    pub at: i64,
}

/// How many finished actions a pair keeps for [`Service::recent`].
const RECENT_MAX: usize = 200;

#[derive(Default)]
struct LargeQueue {
    heap: BinaryHeap<Reverse<(u64, u64)>>,
    jobs: HashMap<u64, LargeJob>,
    seq: u64,
    /// Paths queued or being copied: other plans keep their hands off them.
    busy: Vec<RelPath>,
    queued_bytes: u64,
    /// The size of the copy under way (taken off the heap, not finished yet).
    current: Option<u64>,
}

struct PairRt {
    cfg: PairConfig,
    /// The pair's two sides (opened once at start-up).
    sides: [Arc<dyn Replica>; 2],
    id: i64,
    tx: Mutex<mpsc::Sender<Ctl>>,
    paused: AtomicBool,
    live: Mutex<Live>,
    throttle: Throttle,
    large: Mutex<LargeQueue>,
    large_cv: Condvar,
    _lock: PairLock,
}

impl PairRt {
    fn side(&self, s: Side) -> &Arc<dyn Replica> {
        &self.sides[s as usize]
    }

    fn send(&self, c: Ctl) {
        let _ = self.tx.lock().unwrap().send(c);
    }

    fn busy_overlaps(&self, paths: &[&RelPath]) -> bool {
        let q = self.large.lock().unwrap();
        q.busy.iter().any(|b| paths.iter().any(|p| p.starts_with(b) || b.starts_with(p)))
    }
}

struct Inner {
    events: events::Sender,
    pairs: Vec<Arc<PairRt>>,
    paused_all: AtomicBool,
    stopping: AtomicBool,
    state_path: PathBuf,
    started_at: i64,
    status_store: Mutex<Store>,
    /// Test knob: drop every file event (as a network mount would), to exercise polling.
    drop_events: bool,
    email: Option<crate::config::EmailConfig>,
}

impl Inner {
    fn emit(&self, e: Event) {
        let _ = self.events.send(e);
    }

    fn pair_paused(&self, rt: &PairRt) -> bool {
        self.paused_all.load(Ordering::SeqCst) || rt.paused.load(Ordering::SeqCst)
    }

    fn set_state(&self, rt: &PairRt, state: PairState, reason: Option<String>) {
        let mut l = rt.live.lock().unwrap();
        if l.state == Some(state) && l.reason == reason {
            return;
        }
        l.state = Some(state);
        l.reason = reason.clone();
        drop(l);
        self.emit(Event::StateChanged {
            pair: rt.cfg.name.clone(),
            state,
            reason,
        });
    }
}

/// The running service. Dropping it does not stop it: call [`Service::shutdown`]. New
/// settings are applied live by [`Service::reconfigure`]: the pairs' workers stop between
/// operations and start again with the new configuration; subscribers keep their stream.
pub struct Service {
    engine: std::sync::RwLock<Arc<Engine>>,
    events: events::Sender,
    cfg: Mutex<ServiceConfig>,
}

impl Service {
    pub fn start(cfg: ServiceConfig) -> Result<Service, ApiError> {
        let (events, _) = tokio::sync::broadcast::channel(4096);
        let engine = Engine::start(cfg.clone(), events.clone())?;
        Ok(Service {
            engine: std::sync::RwLock::new(Arc::new(engine)),
            events,
            cfg: Mutex::new(cfg),
        })
    }

    fn engine(&self) -> Arc<Engine> {
        self.engine.read().unwrap().clone()
    }

    pub fn subscribe(&self) -> events::Receiver {
        self.events.subscribe()
    }

    /// Publish an event that does not come from the engine (a shell's request).
    pub fn announce(&self, e: Event) {
        let _ = self.events.send(e);
    }

    pub fn config(&self) -> ServiceConfig {
        self.cfg.lock().unwrap().clone()
    }

    /// Apply new pairs and settings without a restart of the process. If they cannot start
    /// (a pair locked by another process, say), the previous configuration runs again and
    /// the error is returned.
    pub fn reconfigure(&self, new: ServiceConfig) -> Result<(), ApiError> {
        let mut slot = self.engine.write().unwrap();
        tracing::info!(pairs = new.pairs.len(), "applying new settings");
        let old = std::mem::replace(&mut *slot, Arc::new(Engine::placeholder(self.events.clone())));
        old.stop(false);
        // The old engine's pair locks go with it: wait for callers still holding it (a
        // request in flight) to let go, so the new engine can take the locks.
        let deadline = Instant::now() + Duration::from_secs(10);
        while Arc::strong_count(&old) > 1 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        drop(old);
        match Engine::start(new.clone(), self.events.clone()) {
            Ok(e) => {
                *slot = Arc::new(e);
                *self.cfg.lock().unwrap() = new;
                self.announce(Event::SettingsChanged);
                Ok(())
            }
            Err(err) => {
                let old = self.cfg.lock().unwrap().clone();
                tracing::error!("new settings not applied: {err}; going on with the previous ones");
                *slot = Arc::new(Engine::start(old, self.events.clone())?);
                Err(err)
            }
        }
    }

    pub fn pair_names(&self) -> Vec<String> {
        self.engine().pair_names()
    }
    pub fn pause(&self, pair: Option<&str>) -> Result<(), ApiError> {
        self.engine().pause(pair)
    }
    pub fn resume(&self, pair: Option<&str>, allow_mass_delete: bool) -> Result<(), ApiError> {
        self.engine().resume(pair, allow_mass_delete)
    }
    pub fn sync_now(&self, pair: Option<&str>) -> Result<(), ApiError> {
        self.engine().sync_now(pair)
    }
    pub fn backlog(&self, pair: &str) -> Result<Vec<BacklogItem>, ApiError> {
        self.engine().backlog(pair)
    }
    pub fn recent(&self, pair: &str, limit: usize) -> Result<Vec<Finished>, ApiError> {
        self.engine().recent(pair, limit)
    }
    pub fn conflicts(&self, pair: Option<&str>) -> Result<Vec<(String, crate::state::ConflictRow)>, ApiError> {
        self.engine().conflicts(pair)
    }
    pub fn resync(&self, pair: &str, path: &str, dry_run: bool) -> Result<api::SyncReport, ApiError> {
        self.engine().resync(pair, path, dry_run)
    }
    pub fn resolve(&self, pair: &str, path: &str, keep: crate::engine::plan::Keep) -> Result<api::SyncReport, ApiError> {
        self.engine().resolve(pair, path, keep)
    }
    pub fn pair_config(&self, pair: &str) -> Result<PairConfig, ApiError> {
        self.engine().pair_config(pair)
    }
    /// One side of a pair (for the web UI's previews: every read goes through it).
    pub fn side(&self, pair: &str, side: Side) -> Result<Arc<dyn Replica>, ApiError> {
        Ok(self.engine().find(pair)?.side(side).clone())
    }
    pub fn schedules(&self) -> Result<Vec<records::ScheduleInfo>, ApiError> {
        self.engine().schedules()
    }
    pub fn set_schedule_paused(&self, pair: &str, name: &str, paused: bool) -> Result<(), ApiError> {
        self.engine().set_schedule_paused(pair, name, paused)
    }
    pub fn history(&self, filter: &crate::state::RunFilter) -> Result<Vec<RunRow>, ApiError> {
        self.engine().history(filter)
    }
    pub fn run_journal(&self, run: i64) -> Result<Vec<crate::state::JournalRow>, ApiError> {
        self.engine().run_journal(run)
    }
    pub fn status(&self) -> Result<ServiceStatus, ApiError> {
        self.engine().status()
    }

    /// Stop: no new work; copies in progress are rolled back (their targets untouched),
    /// what was done is committed; the watchers stop; the locks are released.
    pub fn shutdown(&self) {
        self.engine().stop(true);
    }
}

/// The service with one configuration.
struct Engine {
    inner: Arc<Inner>,
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
    watchers: Mutex<Vec<RootWatcher>>,
}

/// The pause record of a pair the mass-delete guard stopped (a user's pause says "user").
const GUARD_PAUSE: &str = "mass delete guard";

fn kv_pause_key(pair: &str) -> String {
    format!("paused:{pair}")
}

impl Engine {
    /// Holds the place while one engine replaces another (no pairs, no threads).
    fn placeholder(events: events::Sender) -> Engine {
        let store = Store::in_memory().expect("an in-memory store opens");
        Engine {
            inner: Arc::new(Inner {
                events,
                pairs: Vec::new(),
                paused_all: AtomicBool::new(false),
                stopping: AtomicBool::new(true),
                state_path: PathBuf::from(":memory:"),
                started_at: now_ns(),
                status_store: Mutex::new(store),
                drop_events: false,
                email: None,
            }),
            threads: Mutex::new(Vec::new()),
            watchers: Mutex::new(Vec::new()),
        }
    }

    /// Take every pair's lock, start the watchers and the lanes. Fails (changing nothing)
    /// when the state store cannot be opened or a pair is locked by another process.
    fn start(cfg: ServiceConfig, events: events::Sender) -> Result<Engine, ApiError> {
        let store = records::open_state(&cfg.state)?;
        let paused_all = store.kv_get(&kv_pause_key("*"))?.is_some();
        let mut pairs = Vec::new();
        let mut receivers = Vec::new();
        for p in &cfg.pairs {
            let id = store.pair_id(&p.name, &p.left, &p.right)?;
            let lock = api::lock_pair(&store, p, id)?;
            store.abandon_runs(id)?;
            let paused = store.kv_get(&kv_pause_key(&p.name))?.is_some();
            let (tx, rx) = mpsc::channel();
            // A server is connected on first use and again after a failure: a cloud account
            // that does not answer at start fails runs (naming why), not the service.
            let open = |location: &Path| {
                crate::side::open_lasting(location, &p.options.remote).map_err(|source| ApiError::Remote {
                    pair: p.name.clone(),
                    source,
                })
            };
            let sides = [open(&p.left)?, open(&p.right)?];
            pairs.push(Arc::new(PairRt {
                cfg: p.clone(),
                sides,
                id,
                tx: Mutex::new(tx),
                paused: AtomicBool::new(paused),
                live: Mutex::new(Live::default()),
                throttle: Throttle::new(p.options.bandwidth.clone()),
                large: Mutex::new(LargeQueue::default()),
                large_cv: Condvar::new(),
                _lock: lock,
            }));
            receivers.push(rx);
        }
        let inner = Arc::new(Inner {
            events,
            pairs,
            paused_all: AtomicBool::new(paused_all),
            stopping: AtomicBool::new(false),
            state_path: cfg.state.clone(),
            started_at: now_ns(),
            status_store: Mutex::new(store),
            drop_events: std::env::var_os("TANDEM_TEST_DROP_EVENTS").is_some_and(|v| v == "1"),
            email: cfg.email.clone(),
        });
        let svc = Engine {
            inner: inner.clone(),
            threads: Mutex::new(Vec::new()),
            watchers: Mutex::new(Vec::new()),
        };
        for (rt, rx) in inner.pairs.iter().zip(receivers) {
            svc.start_watchers(rt);
            let (i, r) = (inner.clone(), rt.clone());
            let t = std::thread::Builder::new()
                .name(format!("pair {}", rt.cfg.name))
                .spawn(move || pair_worker(i, r, rx))
                .map_err(|e| ApiError::Internal(format!("cannot start a thread: {e}")))?;
            svc.threads.lock().unwrap().push(t);
            for n in 0..rt.cfg.options.large_workers.max(1) {
                let (i, r) = (inner.clone(), rt.clone());
                let t = std::thread::Builder::new()
                    .name(format!("large {} {n}", rt.cfg.name))
                    .spawn(move || large_worker(i, r))
                    .map_err(|e| ApiError::Internal(format!("cannot start a thread: {e}")))?;
                svc.threads.lock().unwrap().push(t);
            }
        }
        for (name, f) in [("scheduler", scheduler as fn(Arc<Inner>)), ("mailer", mailer as fn(Arc<Inner>))] {
            let i = inner.clone();
            let t = std::thread::Builder::new()
                .name(name.into())
                .spawn(move || f(i))
                .map_err(|e| ApiError::Internal(format!("cannot start a thread: {e}")))?;
            svc.threads.lock().unwrap().push(t);
        }
        inner.emit(Event::ServiceStarted {
            pairs: inner.pairs.iter().map(|p| p.cfg.name.clone()).collect(),
        });
        tracing::info!(pairs = inner.pairs.len(), "service started");
        Ok(svc)
    }

    fn start_watchers(&self, rt: &Arc<PairRt>) {
        let o = &rt.cfg.options;
        for side in Side::BOTH {
            let fs = rt.side(side);
            let every = o.poll_interval_s;
            let (events, poll, why) = watch_plan(o.watch_for(side), fs.caps().changes, fs.local_root().is_some(), fs.note());
            let mut info = match (events, poll) {
                (false, false) => WatchInfoState {
                    mode: "off",
                    reason: Some("watch = \"off\": schedules and manual syncs only".into()),
                    poll: false,
                },
                (false, true) => WatchInfoState {
                    mode: "polling",
                    reason: Some(format!("polling every {every} s ({why})")),
                    poll: true,
                },
                (true, _) => self.watch_side(rt, side, &**fs),
            };
            if events && poll {
                info.poll = true;
                let also = format!("polling every {every} s ({why})");
                info.reason = Some(match info.reason.take() {
                    Some(r) if info.mode == "polling" => format!("{r}; {also}"),
                    _ => also,
                });
                tracing::info!(pair = %rt.cfg.name, side = %side, "watching file events and {}", info.reason.as_deref().unwrap_or(""));
            } else if info.mode == "polling" && !poll {
                let reason = info.reason.clone().unwrap_or_default();
                tracing::warn!(pair = %rt.cfg.name, side = %side, "no file events, polling every {every} s instead: {reason}");
                self.inner.emit(Event::WatchFallback {
                    pair: rt.cfg.name.clone(),
                    side,
                    reason,
                });
            } else if info.mode == "polling" {
                tracing::info!(pair = %rt.cfg.name, side = %side, "{}", info.reason.as_deref().unwrap_or(""));
            }
            rt.live.lock().unwrap().watch[side as usize] = info;
        }
    }

    /// Start the OS watcher on a side's folder and write the canary that tests it:
    /// "starting", or "polling" with the reason it could not start.
    fn watch_side(&self, rt: &Arc<PairRt>, side: Side, fs: &dyn Replica) -> WatchInfoState {
        let o = &rt.cfg.options;
        let polling = |reason: String| WatchInfoState {
            mode: "polling",
            reason: Some(reason),
            poll: false,
        };
        let Some(root) = fs.local_root() else {
            return polling("no folder on this machine to watch".into());
        };
        let ignore = match crate::config::Ignore::new(&o.ignore, o.use_default_ignores) {
            Ok(i) => i,
            Err(e) => return polling(format!("ignore patterns: {e}")),
        };
        // The trash folder exists before the watch starts, so the canary written
        // into it is seen (a folder created later is watched a moment late).
        if let Err(e) = fs.create_dir_all(&watch::canary_path().dir()) {
            tracing::warn!(pair = %rt.cfg.name, side = %side, "cannot create the trash folder: {e}");
        }
        let weak = Arc::downgrade(rt);
        let drop_events = self.inner.drop_events;
        let started = RootWatcher::start(root, side, ignore, move |m| {
            if drop_events {
                return;
            }
            if let Some(rt) = weak.upgrade() {
                rt.send(Ctl::Watch(m));
            }
        });
        match started {
            Ok(w) => {
                self.watchers.lock().unwrap().push(w);
                match watch::touch_canary(fs) {
                    Ok(_) => WatchInfoState {
                        mode: "starting",
                        reason: None,
                        poll: false,
                    },
                    Err(e) => polling(format!("cannot write the canary file to test events: {e}")),
                }
            }
            Err(reason) => polling(reason),
        }
    }

    pub fn pair_names(&self) -> Vec<String> {
        self.inner.pairs.iter().map(|p| p.cfg.name.clone()).collect()
    }

    fn find(&self, pair: &str) -> Result<&Arc<PairRt>, ApiError> {
        self.inner
            .pairs
            .iter()
            .find(|p| p.cfg.name == pair)
            .ok_or_else(|| ApiError::NotFound(format!("no pair named {pair:?}")))
    }

    /// Pause one pair (or every pair): no new work starts; a copy in progress is rolled
    /// back; changes reported meanwhile are kept and done on resume. Survives a restart.
    pub fn pause(&self, pair: Option<&str>) -> Result<(), ApiError> {
        let store = self.inner.status_store.lock().unwrap();
        match pair {
            None => {
                store.kv_put(&kv_pause_key("*"), Some("user"))?;
                self.inner.paused_all.store(true, Ordering::SeqCst);
            }
            Some(name) => {
                let rt = self.find(name)?;
                store.kv_put(&kv_pause_key(name), Some("user"))?;
                rt.paused.store(true, Ordering::SeqCst);
            }
        }
        drop(store);
        tracing::info!(pair = pair.unwrap_or("*"), "paused");
        self.inner.emit(Event::Paused {
            pair: pair.map(String::from),
            reason: "paused by the user".into(),
        });
        self.wake_all();
        Ok(())
    }

    /// Resume one pair (or all). `allow_mass_delete` lets the next run of the pair delete
    /// beyond `max_delete_percent` (after the guard paused it).
    pub fn resume(&self, pair: Option<&str>, allow_mass_delete: bool) -> Result<(), ApiError> {
        let store = self.inner.status_store.lock().unwrap();
        let targets: Vec<&Arc<PairRt>> = match pair {
            None => {
                store.kv_put(&kv_pause_key("*"), None)?;
                self.inner.paused_all.store(false, Ordering::SeqCst);
                // "Resume all" also resumes pairs paused one by one.
                for rt in &self.inner.pairs {
                    store.kv_put(&kv_pause_key(&rt.cfg.name), None)?;
                    rt.paused.store(false, Ordering::SeqCst);
                }
                self.inner.pairs.iter().collect()
            }
            Some(name) => {
                let rt = self.find(name)?;
                store.kv_put(&kv_pause_key(name), None)?;
                rt.paused.store(false, Ordering::SeqCst);
                vec![rt]
            }
        };
        drop(store);
        if allow_mass_delete {
            for rt in &targets {
                rt.send(Ctl::AllowMassDeleteOnce);
            }
        }
        tracing::info!(pair = pair.unwrap_or("*"), "resumed");
        self.inner.emit(Event::Resumed {
            pair: pair.map(String::from),
        });
        self.wake_all();
        Ok(())
    }

    /// A full sync of one pair (or all) now.
    pub fn sync_now(&self, pair: Option<&str>) -> Result<(), ApiError> {
        match pair {
            Some(name) => self.find(name)?.send(Ctl::SyncNow),
            None => self.inner.pairs.iter().for_each(|p| p.send(Ctl::SyncNow)),
        }
        Ok(())
    }

    /// A pair's backlog, item by item in the order it will be done: the small lane's copies
    /// (smallest first), then the large lane's (smallest first), each with its progress.
    pub fn backlog(&self, pair: &str) -> Result<Vec<BacklogItem>, ApiError> {
        let rt = self.find(pair)?;
        let l = rt.live.lock().unwrap();
        let q = rt.large.lock().unwrap();
        let progress = |lane: u8, path: &RelPath| {
            l.transfers
                .iter()
                .find(|((ln, _), t)| *ln == lane && t.path == *path)
                .map(|(_, t)| (t.done, transfer_state(t.verifying)))
        };
        let mut out: Vec<BacklogItem> = l
            .small_queue
            .iter()
            .map(|(_, path, side, size)| {
                let done = progress(0, path);
                BacklogItem {
                    path: path.as_str().into(),
                    side: *side,
                    size: *size,
                    lane: "small",
                    copying: done.is_some(),
                    done: done.map_or(0, |d| d.0),
                    state: done.map_or("queued", |d| d.1),
                }
            })
            .collect();
        // The large lane: copies in progress (no longer queued), then the queue.
        for (_, t) in l.transfers.iter().filter(|((lane, _), _)| *lane == 1) {
            out.push(BacklogItem {
                path: t.path.as_str().into(),
                side: t.side,
                size: t.size,
                lane: "large",
                copying: true,
                done: t.done,
                state: transfer_state(t.verifying),
            });
        }
        let mut queued: Vec<(&u64, &LargeJob)> = q.jobs.iter().collect();
        queued.sort_by_key(|(seq, j)| (job_size(&j.action), **seq));
        for (_, j) in queued {
            if let Action::Copy { side, path, src, .. } = &j.action {
                out.push(BacklogItem {
                    path: path.as_str().into(),
                    side: *side,
                    size: src.size,
                    lane: "large",
                    copying: false,
                    done: 0,
                    state: "queued",
                });
            }
        }
        Ok(out)
    }

    /// The actions a pair finished lately, newest first, at most `limit`.
    pub fn recent(&self, pair: &str, limit: usize) -> Result<Vec<Finished>, ApiError> {
        let rt = self.find(pair)?;
        let l = rt.live.lock().unwrap();
        Ok(l.recent.iter().take(limit).cloned().collect())
    }

    /// Open conflicts of one pair (or all): (pair name, conflict).
    pub fn conflicts(&self, pair: Option<&str>) -> Result<Vec<(String, crate::state::ConflictRow)>, ApiError> {
        if let Some(p) = pair {
            self.find(p)?;
        }
        records::conflicts(&self.inner.status_store.lock().unwrap(), pair)
    }

    /// Ask a pair's worker to run `ctl` (built around the reply channel) and wait for the
    /// report: it finishes the run in progress first.
    fn ask(&self, pair: &str, ctl: impl FnOnce(ReportTx) -> Ctl) -> Result<api::SyncReport, ApiError> {
        let rt = self.find(pair)?;
        let (tx, rx) = mpsc::channel();
        rt.send(ctl(tx));
        rx.recv().map_err(|_| ApiError::Internal("the service is stopping".into()))?
    }

    /// `resync PATH` on a pair, through its worker.
    pub fn resync(&self, pair: &str, path: &str, dry_run: bool) -> Result<api::SyncReport, ApiError> {
        let path = path.to_string();
        self.ask(pair, |reply| Ctl::Resync { path, dry_run, reply })
    }

    /// Apply a decision on a conflict of a pair, through its worker.
    pub fn resolve(&self, pair: &str, path: &str, keep: crate::engine::plan::Keep) -> Result<api::SyncReport, ApiError> {
        let path = path.to_string();
        self.ask(pair, |reply| Ctl::Resolve { path, keep, reply })
    }

    /// A pair's configuration (for the API: roots, options).
    pub fn pair_config(&self, pair: &str) -> Result<PairConfig, ApiError> {
        Ok(self.find(pair)?.cfg.clone())
    }

    /// The pairs' schedules with next/last run and last outcome.
    pub fn schedules(&self) -> Result<Vec<records::ScheduleInfo>, ApiError> {
        let pairs: Vec<PairConfig> = self.inner.pairs.iter().map(|p| p.cfg.clone()).collect();
        records::schedules(&self.inner.status_store.lock().unwrap(), &pairs)
    }

    /// Pause or resume one schedule of a pair.
    pub fn set_schedule_paused(&self, pair: &str, name: &str, paused: bool) -> Result<(), ApiError> {
        let rt = self.find(pair)?;
        records::set_schedule_paused(&mut self.inner.status_store.lock().unwrap(), &rt.cfg, name, paused)
    }

    /// Recorded runs, newest first, as the filter says.
    pub fn history(&self, filter: &crate::state::RunFilter) -> Result<Vec<RunRow>, ApiError> {
        records::history(&self.inner.status_store.lock().unwrap(), filter)
    }

    /// What one run did, action by action.
    pub fn run_journal(&self, run: i64) -> Result<Vec<crate::state::JournalRow>, ApiError> {
        Ok(self.inner.status_store.lock().unwrap().journal(run)?)
    }

    fn wake_all(&self) {
        for p in &self.inner.pairs {
            p.send(Ctl::Wake);
            p.large_cv.notify_all();
        }
    }

    pub fn status(&self) -> Result<ServiceStatus, ApiError> {
        let store = self.inner.status_store.lock().unwrap();
        let day_ago = now_ns() - 24 * 3600 * 1_000_000_000;
        let mut pairs = Vec::new();
        for rt in &self.inner.pairs {
            let paused = self.inner.pair_paused(rt);
            let needs_consent =
                rt.paused.load(Ordering::SeqCst) && store.kv_get(&kv_pause_key(&rt.cfg.name))?.as_deref() == Some(GUARD_PAUSE);
            let l = rt.live.lock().unwrap();
            let q = rt.large.lock().unwrap();
            let now = Instant::now();
            let mut transfers: Vec<Transfer> = l
                .transfers
                .iter()
                .map(|((lane, _), t)| {
                    let secs = now.duration_since(t.started).as_secs_f64();
                    let speed = if secs > 0.05 { (t.done as f64 / secs) as u64 } else { 0 };
                    Transfer {
                        path: t.path.as_str().to_string(),
                        side: t.side,
                        lane: if *lane == 0 { "small" } else { "large" },
                        size: t.size,
                        done: t.done,
                        bytes_per_s: speed,
                        eta_s: (speed > 0).then(|| (t.size.saturating_sub(t.done)) / speed),
                        state: transfer_state(t.verifying),
                    }
                })
                .collect();
            transfers.sort_by(|a, b| a.path.cmp(&b.path));
            let polling = l.watch.iter().any(|w| w.mode == "polling");
            // The large lane's copies (queued, and the one under way) count as work too.
            let large_items = q.jobs.len() as u64 + u64::from(q.current.is_some());
            let state = match l.state {
                Some(PairState::Error) => PairState::Error,
                _ if paused => PairState::Paused,
                Some(s @ (PairState::Scanning | PairState::Syncing)) => s,
                _ if large_items > 0 => PairState::Syncing,
                _ if l.failing > 0 => PairState::Failing,
                _ if polling => PairState::Polling,
                _ => PairState::Idle,
            };
            pairs.push(LiveStatus {
                pair: rt.cfg.name.clone(),
                left: rt.side(Side::Left).describe(&RelPath::root()),
                right: rt.side(Side::Right).describe(&RelPath::root()),
                state,
                reason: l.reason.clone(),
                paused,
                needs_consent,
                watch: Side::BOTH
                    .iter()
                    .map(|s| WatchInfo {
                        side: *s,
                        mode: l.watch[*s as usize].mode.to_string(),
                        reason: l.watch[*s as usize].reason.clone(),
                    })
                    .collect(),
                last_event: l.last_event.clone(),
                last_run: store.last_run(rt.id)?,
                backlog: Backlog {
                    items: l.small_items + large_items,
                    bytes: l.small_bytes + q.queued_bytes + q.current.unwrap_or(0),
                    large_items,
                    waiting_paths: l.waiting,
                },
                transfers,
                open_conflicts: store.open_conflicts(rt.id)?.len() as u64,
                ops_last_24h: store.ops_since(rt.id, day_ago)?,
                failing: l.failing,
                totals: {
                    let t = store.pair_totals(rt.id)?;
                    Totals {
                        runs: t[0],
                        copied: t[1],
                        renamed: t[2],
                        deleted: t[3],
                        conflicts: t[4],
                        failed: t[5],
                        bytes: t[6],
                    }
                },
            });
        }
        Ok(ServiceStatus {
            version: env!("CARGO_PKG_VERSION").into(),
            pid: std::process::id(),
            started_at: self.inner.started_at,
            paused_all: self.inner.paused_all.load(Ordering::SeqCst),
            pairs,
        })
    }

    /// Stop every pair (`last`: the whole service stops, not a reconfiguration).
    fn stop(&self, last: bool) {
        tracing::info!("service stopping");
        if last {
            self.inner.emit(Event::ServiceStopping);
        }
        self.inner.stopping.store(true, Ordering::SeqCst);
        self.watchers.lock().unwrap().clear();
        for p in &self.inner.pairs {
            p.send(Ctl::Stop);
            p.large_cv.notify_all();
        }
        for t in self.threads.lock().unwrap().drain(..) {
            let _ = t.join();
        }
        tracing::info!("service stopped");
    }
}

// ------------------------------------------------------------------ executor hooks

struct RunHooks {
    inner: Arc<Inner>,
    rt: Arc<PairRt>,
    lane: u8,
}

impl Observer for RunHooks {
    fn should_stop(&self) -> bool {
        self.inner.stopping.load(Ordering::SeqCst) || self.inner.pair_paused(&self.rt)
    }

    fn throttle(&self, to: Side, bytes: u64) {
        self.rt.throttle.take(to, bytes);
    }

    fn copy_progress(&self, k: usize, a: &Action, done: u64) {
        let Action::Copy { side, path, src, .. } = a else { return };
        let now = Instant::now();
        let mut l = self.rt.live.lock().unwrap();
        let t = l.transfers.entry((self.lane, k)).or_insert_with(|| TransferState {
            path: path.clone(),
            side: *side,
            size: src.size,
            done: 0,
            started: now,
            last_event: now,
            verifying: false,
        });
        t.done = done;
        let first = done == 0;
        let report = first || now.duration_since(t.last_event) >= Duration::from_millis(250);
        if !report {
            return;
        }
        t.last_event = now;
        let secs = now.duration_since(t.started).as_secs_f64();
        let speed = if secs > 0.05 { (done as f64 / secs) as u64 } else { 0 };
        drop(l);
        if first {
            self.inner.emit(Event::ActionStarted {
                pair: self.rt.cfg.name.clone(),
                op: "copy".into(),
                side: Some(*side),
                path: path.as_str().into(),
                bytes: src.size,
            });
        } else {
            self.inner.emit(Event::Progress {
                pair: self.rt.cfg.name.clone(),
                side: *side,
                path: path.as_str().into(),
                done,
                total: src.size,
                bytes_per_s: speed,
            });
        }
    }

    fn verifying(&self, k: usize, _a: &Action) {
        if let Some(t) = self.rt.live.lock().unwrap().transfers.get_mut(&(self.lane, k)) {
            t.verifying = true;
        }
    }

    fn finished(&self, k: usize, a: &Action, o: &Outcome) {
        // One lock for both: the finished list and the live transfer state.
        let mut l = self.rt.live.lock().unwrap();
        if !matches!(a, Action::Record { .. } | Action::Skip { .. }) {
            let (state, detail, bytes) = match o {
                Outcome::Done { bytes } => ("done", None, *bytes),
                Outcome::Deferred { reason } => ("deferred", Some(reason.clone()), 0),
                Outcome::Failed { error } => ("failed", Some(error.clone()), 0),
            };
            l.recent.push_front(Finished {
                path: a.path().as_str().into(),
                op: op_name(a),
                side: a.side(),
                state,
                detail,
                bytes,
                at: chrono::Utc::now().timestamp(),
            });
            l.recent.truncate(RECENT_MAX);
        }
        if let Action::Copy { src, .. } = a {
            l.transfers.remove(&(self.lane, k));
            if self.lane == 0 {
                l.small_items = l.small_items.saturating_sub(1);
                l.small_bytes = l.small_bytes.saturating_sub(src.size);
                if let Some(i) = l.small_queue.iter().position(|x| x.0 == k) {
                    l.small_queue.remove(i);
                }
            }
        }
        drop(l);
        self.inner.emit(Event::ActionFinished {
            pair: self.rt.cfg.name.clone(),
            op: op_name(a).into(),
            side: a.side(),
            path: a.path().as_str().into(),
            outcome: o.clone(),
        });
    }
}

fn op_name(a: &Action) -> &'static str {
    match a {
        Action::Rename { .. } => "rename",
        Action::ClashRename { .. } => "clash",
        Action::MkDir { .. } => "mkdir",
        Action::Copy { .. } => "copy",
        Action::SetProps { .. } => "props",
        Action::Delete { .. } => "delete",
        Action::Conflict { .. } => "conflict",
        Action::Record { .. } => "record",
        Action::Skip { .. } => "skip",
    }
}

/// Every path an action reads or writes.
fn action_paths(a: &Action) -> Vec<&RelPath> {
    match a {
        Action::Rename { from, to, .. } | Action::ClashRename { from, to, .. } => vec![from, to],
        other => vec![other.path()],
    }
}

// ------------------------------------------------------------------ the small lane

struct Worker {
    inner: Arc<Inner>,
    rt: Arc<PairRt>,
    store: Store,
    deb: Debouncer,
    /// Reported paths not yet written to the persistent backlog.
    unsaved: Vec<RelPath>,
    failures: HashMap<RelPath, u32>,
    /// Paths whose deletion a targeted run held back, with when it was first held.
    held: HashMap<RelPath, Instant>,
    /// A copy failed for want of space (told once; cleared by a run without that failure).
    disk_full: Option<String>,
    /// When to run (pure decisions: `timers`).
    timers: Timers,
    canary_retried: bool,
    allow_mass_delete: bool,
    /// The schedule whose run is pending or running (its outcome is recorded on it).
    schedule: Option<String>,
}

fn pair_worker(inner: Arc<Inner>, rt: Arc<PairRt>, rx: mpsc::Receiver<Ctl>) {
    let span = tracing::info_span!("pair", pair = %rt.cfg.name);
    let _g = span.enter();
    let Some(mut w) = Worker::new(&inner, &rt) else { return };
    inner.set_state(&rt, PairState::Idle, None);
    loop {
        // Before waiting, whatever ran last (a full run forgets what it covered): a count
        // published only after targeted runs stayed stale until the next event.
        rt.live.lock().unwrap().waiting = w.deb.len() as u64;
        let now = Instant::now();
        let wake = w.timers.wake_at(now, inner.pair_paused(&rt), w.deb.next_due());
        let first = rx.recv_timeout(wake.saturating_duration_since(now));
        let mut stop = false;
        let mut msgs = Vec::new();
        match first {
            Ok(m) => msgs.push(m),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => stop = true,
        }
        msgs.extend(rx.try_iter());
        for m in msgs {
            if matches!(m, Ctl::Stop) {
                stop = true;
            } else {
                w.handle(m);
            }
        }
        w.save_backlog();
        if stop || inner.stopping.load(Ordering::SeqCst) {
            break;
        }
        w.check_canary();
        rt.live.lock().unwrap().waiting = w.deb.len() as u64;
        if inner.pair_paused(&rt) {
            // The reason a guard gave when it paused the pair stays (events that came in
            // since do not wipe it).
            if rt.live.lock().unwrap().state != Some(PairState::Paused) {
                inner.set_state(&rt, PairState::Paused, None);
            }
            continue;
        }
        let now = Instant::now();
        match w.timers.next(now) {
            Next::Wait => continue,
            Next::Full(trigger) => {
                let outcome = w.run(None, trigger);
                if let Some(name) = w.schedule.take() {
                    if let Err(e) = w.store.schedule_set_outcome(rt.id, &name, &outcome) {
                        tracing::warn!("cannot record the schedule's outcome: {e}");
                    }
                }
                w.timers.full_run_done(trigger, now, Instant::now());
                continue;
            }
            Next::Targeted => {
                let due = w.deb.take_due(now);
                if !due.is_empty() {
                    w.run(Some(due), Trigger::Watch);
                }
            }
        }
    }
    w.save_backlog();
}

impl Worker {
    /// A pair's worker with its own store connection and the persistent backlog of the
    /// previous run (the start-up reconciliation covers it too, but while paused it is what
    /// resume will do). None (the pair in error) when the store cannot be opened.
    fn new(inner: &Arc<Inner>, rt: &Arc<PairRt>) -> Option<Worker> {
        let store = match Store::open(&inner.state_path) {
            Ok(s) => s,
            Err(e) => {
                inner.set_state(rt, PairState::Error, Some(e.to_string()));
                tracing::error!("{e}");
                return None;
            }
        };
        let o = &rt.cfg.options;
        let now = Instant::now();
        let (polling, canary) = {
            let l = rt.live.lock().unwrap();
            (
                l.watch.iter().any(|x| x.mode == "polling" || x.poll),
                l.watch.iter().any(|x| x.mode == "starting"),
            )
        };
        let mut w = Worker {
            deb: Debouncer::new(SETTLE, Duration::from_millis(o.debounce_ms), Duration::from_millis(o.max_wait_ms)),
            store,
            unsaved: Vec::new(),
            failures: HashMap::new(),
            held: HashMap::new(),
            disk_full: None,
            timers: Timers::start(Timing::of(o), now, polling, canary),
            canary_retried: false,
            allow_mass_delete: false,
            schedule: None,
            inner: inner.clone(),
            rt: rt.clone(),
        };
        match w.store.dirty_list(rt.id) {
            Ok(rows) => {
                for (p, ..) in rows {
                    w.deb.note(p, Readiness::Settled, now);
                }
            }
            Err(e) => tracing::warn!("cannot read the saved backlog: {e}"),
        }
        Some(w)
    }

    fn handle(&mut self, m: Ctl) {
        let now = Instant::now();
        match m {
            Ctl::Watch(WatchMsg::Changes { side, paths }) => {
                if let Some((p, _)) = paths.last() {
                    self.rt.live.lock().unwrap().last_event = Some(LastEvent {
                        at: now_ns(),
                        side,
                        path: p.as_str().into(),
                    });
                }
                self.inner.emit(Event::Changes {
                    pair: self.rt.cfg.name.clone(),
                    side,
                    paths: paths.len(),
                });
                for (p, r) in paths {
                    self.unsaved.push(p.clone());
                    self.deb.note(p, r, now);
                }
            }
            Ctl::Watch(WatchMsg::Canary { side }) => {
                let mut l = self.rt.live.lock().unwrap();
                let w = &mut l.watch[side as usize];
                if w.mode == "starting" {
                    w.mode = if w.poll { "both" } else { "events" };
                    tracing::debug!(side = %side, "file events arrive");
                }
            }
            Ctl::Watch(WatchMsg::Rescan { side, reason }) => {
                tracing::warn!(side = %side, "full scan: {reason}");
                self.timers.want_full(now, Trigger::Reconciliation);
            }
            Ctl::Wake => {}
            Ctl::SyncNow => self.timers.full_due = Some((now, Trigger::Manual)),
            Ctl::Resolve { path, keep, reply } => {
                let r = self.resolve(&path, keep);
                let _ = reply.send(r);
            }
            Ctl::Resync { path, dry_run, reply } => {
                let r = self.resync(&path, dry_run);
                let _ = reply.send(r);
            }
            Ctl::Scheduled { name, trigger } => {
                // Never two runs of a pair at once: a run already due absorbs this one.
                if let Some(prev) = self.schedule.replace(name) {
                    let _ = self
                        .store
                        .schedule_set_outcome(self.rt.id, &prev, "merged with a later scheduled run");
                }
                self.timers.want_full(now, trigger);
            }
            Ctl::AllowMassDeleteOnce => {
                self.allow_mass_delete = true;
                self.timers.run_now(now, Trigger::Manual);
            }
            Ctl::LargeDone { path, outcome } => match outcome {
                Some(Outcome::Done { .. }) => {
                    self.failures.remove(&path);
                    self.publish_failing();
                    if let Err(e) = self.store.dirty_done(self.rt.id, std::slice::from_ref(&path), now_ns()) {
                        tracing::warn!("cannot update the saved backlog: {e}");
                    }
                }
                Some(Outcome::Failed { .. }) => self.retry_failed(path),
                _ => self.deb.retry_at(path, now + DEFER_RETRY),
            },
            Ctl::Stop => {}
        }
    }

    fn resolve(&mut self, path: &str, keep: crate::engine::plan::Keep) -> Result<api::SyncReport, ApiError> {
        let rel = RelPath::new(path).map_err(|e| ApiError::Usage(e.to_string()))?;
        let req = api::resolve_request(path, keep)?;
        let cfg = self.rt.cfg.clone();
        self.run_request(&rel, &cfg, req)
    }

    /// `resync PATH` through this worker: never beside another run of the pair.
    fn resync(&mut self, path: &str, dry_run: bool) -> Result<api::SyncReport, ApiError> {
        let (cfg, req) = api::resync_request(&self.rt.cfg, path, dry_run)?;
        let rel = req.forget_base.clone().expect("a resync names its path");
        self.run_request(&rel, &cfg, req)
    }

    /// A run the user asked for on one path (a decision, a resync), between other runs.
    fn run_request(&mut self, rel: &RelPath, cfg: &PairConfig, mut req: SyncRequest) -> Result<api::SyncReport, ApiError> {
        let rt = self.rt.clone();
        if rt.busy_overlaps(&[rel]) {
            return Err(ApiError::Usage(format!(
                "{rel}: a large copy of it is in progress; try again when it ends"
            )));
        }
        req.caller_holds_lock = true;
        let trigger = req.trigger.name();
        let rep = api::sync_with(&mut self.store, cfg, &*rt.sides[0], &*rt.sides[1], &req)?;
        if req.dry_run {
            return Ok(rep);
        }
        crate::mail::after_run(&self.store, self.inner.email.as_ref(), rt.id, &rep, trigger);
        self.inner.emit(Event::RunFinished {
            pair: rt.cfg.name.clone(),
            run: rep.run_id,
            trigger: trigger.into(),
            status: format!("{:?}", rep.status).to_lowercase(),
            copied: rep.counts.copied,
            failed: rep.counts.failed,
            bytes: rep.counts.bytes,
            ms: rep.duration_ms,
        });
        Ok(rep)
    }

    fn save_backlog(&mut self) {
        if self.unsaved.is_empty() {
            return;
        }
        let paths = std::mem::take(&mut self.unsaved);
        if let Err(e) = self.store.dirty_put(self.rt.id, &paths, now_ns()) {
            tracing::warn!("cannot save the backlog: {e}");
        }
    }

    fn check_canary(&mut self) {
        let Some(deadline) = self.timers.canary_deadline else { return };
        if Instant::now() < deadline {
            return;
        }
        self.timers.canary_deadline = None;
        let o = &self.rt.cfg.options;
        // One more try before giving up on events (a busy machine can be slow to report).
        if !self.canary_retried {
            self.canary_retried = true;
            let mut again = false;
            for side in Side::BOTH {
                if self.rt.live.lock().unwrap().watch[side as usize].mode == "starting" {
                    again |= watch::touch_canary(&**self.rt.side(side)).is_ok();
                }
            }
            if again {
                self.timers.canary_deadline = Some(Instant::now() + CANARY_WAIT);
                return;
            }
        }
        let mut fell_back = false;
        for side in Side::BOTH {
            let mut l = self.rt.live.lock().unwrap();
            if l.watch[side as usize].mode != "starting" {
                continue;
            }
            let reason = format!(
                "no file event came back for a test file within {} s (network share or cloud mount?)",
                CANARY_WAIT.as_secs()
            );
            let poll = l.watch[side as usize].poll;
            l.watch[side as usize] = WatchInfoState {
                mode: "polling",
                reason: Some(reason.clone()),
                poll,
            };
            drop(l);
            tracing::warn!(side = %side, "{reason}; scanning every {} s instead", o.poll_interval_s);
            self.inner.emit(Event::WatchFallback {
                pair: self.rt.cfg.name.clone(),
                side,
                reason,
            });
            fell_back = true;
        }
        for side in Side::BOTH {
            let _ = self.rt.side(side).remove_file(&watch::canary_path());
        }
        if fell_back {
            self.timers.start_polling(Instant::now());
        }
    }

    /// The live status counts the paths waiting for a retry after a failure.
    fn publish_failing(&self) {
        self.rt.live.lock().unwrap().failing = self.failures.len() as u64;
    }

    /// A failed path that a run covered and did not plan again is no longer failing
    /// (deleted, or already equal on both sides): it leaves the retry list.
    fn forget_resolved_failures(&mut self, scope: Option<&[RelPath]>, report: &api::SyncReport) {
        let planned: HashSet<&RelPath> = report.plan.actions.iter().map(|a| a.path()).collect();
        let rt = self.rt.clone();
        self.failures.retain(|p, _| {
            let covered = scope.is_none_or(|s| s.iter().any(|q| p.starts_with(q)));
            !covered || planned.contains(p) || rt.busy_overlaps(&[p])
        });
        self.publish_failing();
    }

    fn retry_failed(&mut self, p: RelPath) {
        let n = self.failures.entry(p.clone()).or_insert(0);
        *n += 1;
        let wait = timers::retry_delay(*n);
        self.publish_failing();
        let _ = self.store.dirty_put(self.rt.id, std::slice::from_ref(&p), now_ns());
        let _ = self.store.dirty_retry(self.rt.id, &p, now_ns() + wait.as_nanos() as i64);
        self.deb.retry_at(p, Instant::now() + wait);
    }

    /// One run: full (scope None) or targeted. Large copies go to the large lane; actions
    /// touching a path the large lane holds wait for it.
    /// Returns the outcome in a word or two ("ok", "partial", "error: ...", "paused: ...").
    fn run(&mut self, scope: Option<Vec<RelPath>>, trigger: Trigger) -> String {
        let (inner, rt) = (self.inner.clone(), self.rt.clone());
        let started = Instant::now();
        let started_ns = now_ns();
        let kind = if scope.is_some() { ScanKind::Targeted } else { ScanKind::Full };
        let (scope, ripe) = self.run_scope(scope, started);
        if scope.as_ref().is_some_and(|s| s.is_empty()) {
            return "nothing to do".into();
        }
        inner.emit(Event::ScanStarted {
            pair: rt.cfg.name.clone(),
            kind,
            paths: scope.as_ref().map_or(0, |s| s.len()),
        });
        if kind == ScanKind::Full {
            inner.set_state(&rt, PairState::Scanning, None);
        }
        let hooks = Hooks(Arc::new(RunHooks {
            inner: inner.clone(),
            rt: rt.clone(),
            lane: 0,
        }));
        let req = SyncRequest {
            trigger,
            scope: scope.clone(),
            hooks: Some(hooks),
            caller_holds_lock: true,
            allow_mass_delete: std::mem::take(&mut self.allow_mass_delete),
            hold_deletes: scope.is_some().then_some(ripe),
            hold_creations: true,
            ..Default::default()
        };
        let plan = match api::prepare_holding(&mut self.store, &rt.cfg, rt.id, &*rt.sides[0], &*rt.sides[1], &req) {
            Ok((p, held)) => {
                self.hold(held, started);
                p
            }
            Err(e) => return self.run_failed(e, scope),
        };
        let small_plan = self.route(plan, trigger, started, started_ns);
        let report = match api::apply(&mut self.store, &rt.cfg, rt.id, &*rt.sides[0], &*rt.sides[1], &req, small_plan) {
            Ok(r) => r,
            Err(e) => return self.run_failed(e, scope),
        };
        {
            let mut l = rt.live.lock().unwrap();
            l.small_items = 0;
            l.small_bytes = 0;
            l.small_queue.clear();
            l.transfers.retain(|(lane, _), _| *lane != 0);
        }
        if report.run_id.is_some() {
            crate::mail::after_run(&self.store, inner.email.as_ref(), rt.id, &report, trigger.name());
        }
        self.plan_again(&report);
        self.forget_resolved_failures(scope.as_deref(), &report);
        self.note_disk_full(&report);
        self.settle_backlog(scope.as_deref(), started, started_ns);
        let outcome = self.finish(report, trigger, started);
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        if kind == ScanKind::Full {
            // A full run builds big trees: give the memory back to the OS while idle.
            unsafe {
                libc::malloc_trim(0);
            }
        }
        outcome
    }

    /// The scope a run plans (None: everything) and the held deletions ripe to go ahead: a
    /// targeted run plans the held paths too; paths the large lane holds wait for it.
    fn run_scope(&mut self, scope: Option<Vec<RelPath>>, now: Instant) -> (Option<Vec<RelPath>>, Vec<RelPath>) {
        let ripe = lanes::ripe_holds(&self.held, now, DELETE_HOLD);
        let Some(paths) = scope else { return (None, ripe) };
        let rt = self.rt.clone();
        let (free, busy) = lanes::targeted_scope(paths, self.held.keys(), |p| rt.busy_overlaps(&[p]));
        for p in busy {
            self.deb.retry_at(p, now + DEFER_RETRY);
        }
        (Some(free), ripe)
    }

    /// Held deletions come back when their hold ends (a full run holds none).
    fn hold(&mut self, held: Vec<RelPath>, now: Instant) {
        let before = std::mem::take(&mut self.held);
        for path in held {
            let first = before.get(&path).copied().unwrap_or(now);
            self.deb.retry_at(path.clone(), first + DELETE_HOLD);
            self.held.insert(path, first);
        }
    }

    /// Split a plan: large copies to their lane (queued here), actions on paths the large
    /// lane holds wait; returns the plan of the small lane, published in the live status.
    fn route(&mut self, plan: Plan, trigger: Trigger, started: Instant, started_ns: i64) -> Plan {
        let rt = self.rt.clone();
        let split = lanes::split_plan(plan.actions, rt.cfg.options.large_file_bytes, |a| {
            rt.busy_overlaps(&action_paths(a))
        });
        for p in split.waiting {
            self.deb.retry_at(p, started + DEFER_RETRY);
        }
        let (small, to_large) = (split.small, split.large);
        let copies: Vec<u64> = small
            .iter()
            .filter_map(|a| match a {
                Action::Copy { src, .. } => Some(src.size),
                _ => None,
            })
            .collect();
        let disk = small.iter().any(|a| a.is_disk_action());
        self.inner.emit(Event::PlanReady {
            pair: rt.cfg.name.clone(),
            actions: small.len() + to_large.len(),
            copies: copies.len() + to_large.len(),
            bytes: copies.iter().sum::<u64>() + to_large.iter().map(lanes::copy_size).sum::<u64>(),
        });
        if !to_large.is_empty() {
            let paths: Vec<RelPath> = to_large.iter().map(|a| a.path().clone()).collect();
            let _ = self.store.dirty_put(rt.id, &paths, started_ns);
            let mut q = rt.large.lock().unwrap();
            for a in to_large {
                let Action::Copy { src, path, .. } = &a else { continue };
                q.seq += 1;
                let seq = q.seq;
                q.heap.push(Reverse((src.size, seq)));
                q.busy.push(path.clone());
                q.queued_bytes += src.size;
                q.jobs.insert(seq, LargeJob { action: a, trigger });
            }
            drop(q);
            rt.large_cv.notify_all();
        }
        {
            let mut l = rt.live.lock().unwrap();
            l.small_items = copies.len() as u64;
            l.small_bytes = copies.iter().sum();
            // The executor runs copies smallest first: show them in that order.
            let mut q: Vec<(usize, RelPath, Side, u64)> = small
                .iter()
                .enumerate()
                .filter_map(|(i, a)| match a {
                    Action::Copy { side, path, src, .. } => Some((i, path.clone(), *side, src.size)),
                    _ => None,
                })
                .collect();
            q.sort_by_key(|x| x.0);
            l.small_queue = q;
        }
        if disk {
            self.inner.set_state(&rt, PairState::Syncing, None);
        }
        Plan {
            actions: small,
            hash_requests: Vec::new(),
        }
    }

    /// What was not done is planned again: deferred soon, failed with a growing wait.
    fn plan_again(&mut self, report: &api::SyncReport) {
        let mut again = Vec::new();
        for (a, o) in report.plan.actions.iter().zip(&report.outcomes) {
            match (a, o) {
                (Action::Conflict { path, rule, .. }, _) => self.inner.emit(Event::ConflictRaised {
                    pair: self.rt.cfg.name.clone(),
                    path: path.as_str().into(),
                    rule: rule.name().into(),
                }),
                (_, Some(Outcome::Done { .. })) => {
                    self.failures.remove(a.path());
                }
                (a, Some(Outcome::Failed { .. })) => self.retry_failed(a.path().clone()),
                (a, _) if a.is_disk_action() || matches!(a, Action::Record { .. }) => again.push(a.path().clone()),
                _ => {}
            }
        }
        for p in again {
            self.deb.retry_at(p, Instant::now() + DEFER_RETRY);
        }
    }

    /// A full disk is told once (event, log), not at every retry; the pair shows it until a
    /// run copies without running out of space.
    fn note_disk_full(&mut self, report: &api::SyncReport) {
        let full = report.disk_full.clone();
        let copies_went_through = report.counts.copied > 0 || report.counts.failed == 0;
        match (&full, &self.disk_full) {
            (Some(msg), None) => {
                tracing::warn!(code = "disk_full", "{msg}; copies are retried and resume once there is space");
                self.inner.emit(Event::Error {
                    pair: Some(self.rt.cfg.name.clone()),
                    code: "disk_full".into(),
                    message: msg.clone(),
                });
            }
            (None, Some(_)) if copies_went_through => tracing::info!("space again: copies resume"),
            _ => {}
        }
        if full.is_some() || copies_went_through {
            self.disk_full = full;
        }
    }

    /// The persistent backlog: what this run covered is settled (everything, for a full run).
    fn settle_backlog(&mut self, scope: Option<&[RelPath]>, started: Instant, started_ns: i64) {
        let saved = match scope {
            Some(s) => self.store.dirty_done(self.rt.id, s, started_ns),
            None => self.store.dirty_clear(self.rt.id, started_ns),
        };
        if let Err(e) = saved {
            tracing::warn!("cannot update the saved backlog: {e}");
        }
        if scope.is_none() {
            self.deb.forget_before(started);
        }
    }

    /// Tell how the run went (event, log, the pair's state); returns the outcome in a word
    /// or two.
    fn finish(&mut self, report: api::SyncReport, trigger: Trigger, started: Instant) -> String {
        let (inner, rt) = (self.inner.clone(), self.rt.clone());
        let ms = started.elapsed().as_millis() as u64;
        if report.run_id.is_some() || report.fatal.is_some() {
            inner.emit(Event::RunFinished {
                pair: rt.cfg.name.clone(),
                run: report.run_id,
                trigger: trigger.name().into(),
                status: format!("{:?}", report.status).to_lowercase(),
                copied: report.counts.copied,
                failed: report.counts.failed,
                bytes: report.counts.bytes,
                ms,
            });
            tracing::info!(
                run = report.run_id,
                trigger = trigger.name(),
                actions = report.plan.actions.len(),
                copied = report.counts.copied,
                failed = report.counts.failed,
                ms,
                "run done"
            );
        }
        let outcome = match &report.fatal {
            Some(f) => format!("error: {f}"),
            None if report.counts.failed > 0 => format!("partial: {} failed", report.counts.failed),
            None => format!("ok: {} copied", report.counts.copied),
        };
        if let Some(f) = report.fatal {
            inner.set_state(&rt, PairState::Error, Some(f.clone()));
            inner.emit(Event::Error {
                pair: Some(rt.cfg.name.clone()),
                code: "state_error".into(),
                message: f,
            });
            self.timers.store_failed(Instant::now());
        } else if let Some(msg) = &self.disk_full {
            inner.set_state(&rt, PairState::Error, Some(msg.clone()));
        } else {
            inner.set_state(&rt, PairState::Idle, None);
        }
        outcome
    }

    /// A run stopped by a guard or an error: the pair waits (paused by a guard, retried
    /// after an error); the reported paths are kept.
    fn run_failed(&mut self, e: ApiError, scope: Option<Vec<RelPath>>) -> String {
        let (inner, rt) = (&self.inner, &self.rt);
        for p in scope.into_iter().flatten() {
            self.unsaved.push(p.clone());
            self.deb.retry_at(p, Instant::now());
        }
        let msg = e.to_string();
        tracing::error!(code = e.code(), "{msg}");
        if e.exit_code() == 3 {
            if let Some(cfg) = &inner.email {
                crate::mail::enqueue(&self.store, &[crate::mail::guard_mail(&rt.cfg.name, &e)]);
                let _ = cfg;
            }
        }
        let outcome = format!("{}: {msg}", e.code());
        inner.emit(Event::Error {
            pair: Some(rt.cfg.name.clone()),
            code: e.code().into(),
            message: msg.clone(),
        });
        match e {
            ApiError::MassDelete { .. } | ApiError::MassOverwrite { .. } => {
                // Stops and asks: paused until the user resumes (with or without deletions).
                rt.paused.store(true, Ordering::SeqCst);
                let _ = self.store.kv_put(&kv_pause_key(&rt.cfg.name), Some(GUARD_PAUSE));
                inner.emit(Event::Paused {
                    pair: Some(rt.cfg.name.clone()),
                    reason: msg.clone(),
                });
                inner.set_state(rt, PairState::Paused, Some(msg));
            }
            _ => {
                inner.set_state(rt, PairState::Error, Some(msg));
                self.timers.failed(Instant::now());
            }
        }
        outcome
    }
}

// ------------------------------------------------------------------ the large lane

fn large_worker(inner: Arc<Inner>, rt: Arc<PairRt>) {
    let span = tracing::info_span!("large", pair = %rt.cfg.name);
    let _g = span.enter();
    let mut store = match Store::open(&inner.state_path) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("{e}");
            return;
        }
    };
    loop {
        let job = {
            let mut q = rt.large.lock().unwrap();
            loop {
                if inner.stopping.load(Ordering::SeqCst) {
                    return;
                }
                if !inner.pair_paused(&rt) {
                    if let Some(Reverse((size, seq))) = q.heap.pop() {
                        q.queued_bytes = q.queued_bytes.saturating_sub(size);
                        q.current = Some(size);
                        let job = q.jobs.remove(&seq).expect("queued job");
                        break job;
                    }
                }
                q = rt.large_cv.wait_timeout(q, Duration::from_secs(1)).unwrap().0;
            }
        };
        let path = job.action.path().clone();
        let req = SyncRequest {
            trigger: job.trigger,
            scope: Some(vec![path.clone()]),
            hooks: Some(Hooks(Arc::new(RunHooks {
                inner: inner.clone(),
                rt: rt.clone(),
                lane: 1,
            }))),
            caller_holds_lock: true,
            ..Default::default()
        };
        let plan = Plan {
            actions: vec![job.action],
            hash_requests: Vec::new(),
        };
        let outcome = match api::apply(&mut store, &rt.cfg, rt.id, &*rt.sides[0], &*rt.sides[1], &req, plan) {
            Ok(rep) => {
                crate::mail::after_run(&store, inner.email.as_ref(), rt.id, &rep, job.trigger.name());
                inner.emit(Event::RunFinished {
                    pair: rt.cfg.name.clone(),
                    run: rep.run_id,
                    trigger: job.trigger.name().into(),
                    status: format!("{:?}", rep.status).to_lowercase(),
                    copied: rep.counts.copied,
                    failed: rep.counts.failed,
                    bytes: rep.counts.bytes,
                    ms: 0,
                });
                rep.outcomes.into_iter().next().flatten()
            }
            Err(e) => {
                tracing::error!("{e}");
                None
            }
        };
        {
            let mut q = rt.large.lock().unwrap();
            q.current = None;
            if let Some(i) = q.busy.iter().position(|b| *b == path) {
                q.busy.swap_remove(i);
            }
            rt.live
                .lock()
                .unwrap()
                .transfers
                .retain(|(lane, _), t| *lane != 1 || t.path != path);
        }
        rt.send(Ctl::LargeDone { path, outcome });
    }
}

// ------------------------------------------------------------------ schedules, housekeeping, mail

fn ns_to_utc(ns: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_nanos(ns)
}

/// Sleep up to `d`, waking early when the service stops. Returns false when stopping.
fn nap(inner: &Inner, d: Duration) -> bool {
    let end = Instant::now() + d;
    while Instant::now() < end {
        if inner.stopping.load(Ordering::SeqCst) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(200).min(end.saturating_duration_since(Instant::now())));
    }
    !inner.stopping.load(Ordering::SeqCst)
}

/// Fires due schedules (once after downtime, never two runs of a pair at once: the pair's
/// worker serializes them), the daily housekeeping and the daily mail digest. Wall-clock
/// based, checked at least every 30 s, so a machine waking from sleep catches up.
fn scheduler(inner: Arc<Inner>) {
    use crate::model::schedule::{self, Job};
    let store = match Store::open(&inner.state_path) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("scheduler: {e}");
            return;
        }
    };
    let mut compiled = Vec::new();
    for rt in &inner.pairs {
        for spec in &rt.cfg.options.schedules {
            match spec.compile() {
                Ok(s) => compiled.push((rt.clone(), spec.clone(), s)),
                Err(e) => tracing::error!(pair = %rt.cfg.name, schedule = %spec.name, "{e}"),
            }
        }
    }
    let mut next_housekeeping = Instant::now() + Duration::from_secs(60);
    loop {
        let now = chrono::Utc::now();
        let mut soonest = now + chrono::Duration::seconds(30);
        for (rt, spec, s) in &compiled {
            let key = spec.key();
            let row = match store.schedule_get(rt.id, &spec.name) {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!("scheduler: {e}");
                    continue;
                }
            };
            let (next, mut last, mut outcome, paused) = match row {
                Some((k, n, l, o, p)) if k == key => (n.map(ns_to_utc), l, o, p),
                Some((_, _, l, o, p)) => (None, l, o, p),
                None => (None, None, None, false),
            };
            let (run, next) = if paused { (false, next) } else { schedule::tick(s, next, now) };
            if run {
                last = Some(crate::state::now_ns());
                if inner.pair_paused(rt) {
                    outcome = Some("skipped: the pair is paused".into());
                } else {
                    let trigger = if s.job == Job::Sync {
                        Trigger::Schedule
                    } else {
                        Trigger::Reconciliation
                    };
                    tracing::info!(pair = %rt.cfg.name, schedule = %spec.name, "scheduled run");
                    outcome = Some("running".into());
                    rt.send(Ctl::Scheduled {
                        name: spec.name.clone(),
                        trigger,
                    });
                }
            }
            if let Some(n) = next {
                soonest = soonest.min(n);
            }
            let next_ns = next.and_then(|n| n.timestamp_nanos_opt());
            if let Err(e) = store.schedule_put(rt.id, &spec.name, &key, next_ns, last, outcome.as_deref(), paused) {
                tracing::warn!("scheduler: {e}");
            }
        }
        if Instant::now() >= next_housekeeping {
            next_housekeeping = Instant::now() + Duration::from_secs(86_400);
            housekeeping(&inner, &store);
        }
        if let Some(cfg) = &inner.email {
            if cfg.granularity.contains(&crate::config::MailGranularity::Digest) {
                digest(&store, now);
            }
        }
        let wait = (soonest - chrono::Utc::now()).to_std().unwrap_or(Duration::ZERO);
        if !nap(&inner, wait.clamp(Duration::from_millis(200), Duration::from_secs(30))) {
            return;
        }
    }
}

/// Daily: trash folders past the retention, history past `history_retention_days`.
fn housekeeping(inner: &Inner, store: &Store) {
    for rt in &inner.pairs {
        let o = &rt.cfg.options;
        for fs in &rt.sides {
            let purged = api::purge_trash(&**fs, o.trash_retention_days, chrono::Local::now().naive_local());
            if !purged.is_empty() {
                tracing::info!(pair = %rt.cfg.name, "housekeeping: purged {} trash folders", purged.len());
            }
        }
        let before = crate::state::now_ns() - o.history_retention_days as i64 * 86_400 * 1_000_000_000;
        if let Err(e) = store.prune_history(before) {
            tracing::warn!("housekeeping: cannot prune the history: {e}");
        }
    }
}

/// The daily digest: the runs since the last digest, once a day.
fn digest(store: &Store, now: chrono::DateTime<chrono::Utc>) {
    let now_ns = now.timestamp_nanos_opt().unwrap_or(0);
    let last = store.kv_get("digest:last").ok().flatten().and_then(|v| v.parse::<i64>().ok());
    let Some(last) = last else {
        let _ = store.kv_put("digest:last", Some(&now_ns.to_string()));
        return;
    };
    if now_ns - last < 86_400 * 1_000_000_000 {
        return;
    }
    let since = crate::state::RunFilter {
        since: Some(last),
        ..Default::default()
    };
    if let Ok(mut runs) = store.runs(&since) {
        runs.reverse(); // oldest first
        if let Some(m) = crate::mail::digest_mail(&runs) {
            crate::mail::enqueue(store, &[m]);
        }
    }
    let _ = store.kv_put("digest:last", Some(&now_ns.to_string()));
}

/// Sends queued mail every second; a down server is retried with backoff by the queue.
fn mailer(inner: Arc<Inner>) {
    let Some(cfg) = inner.email.clone() else { return };
    let store = match Store::open(&inner.state_path) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("mailer: {e}");
            return;
        }
    };
    loop {
        crate::mail::flush(&store, &cfg);
        if !nap(&inner, Duration::from_secs(1)) {
            return;
        }
    }
}
