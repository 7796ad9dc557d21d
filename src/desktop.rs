//! The desktop app's logic, kept in the library so that `src-tauri/` only wires it to the
//! tray, the window and the notification service: what the tray shows for a status
//! ([`tray_view`]), which toasts a stream of events makes, batched and rate-limited
//! ([`Toaster`]), the first-run config ([`first_run`]) and the start-at-login entry
//! ([`set_autostart`]). Must not touch: tauri or any window system, the clock (`now` is a
//! parameter), the disk beyond the first-run config and the autostart file.

use crate::config::{DesktopConfig, ToastKind};
use crate::service::events::{Event, PairState};
use crate::service::ServiceStatus;
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The tray icon's five looks (`assets/tray/NAME.png`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TrayIcon {
    Idle,
    Syncing,
    Paused,
    Conflicts,
    Error,
}

impl TrayIcon {
    pub fn name(self) -> &'static str {
        match self {
            TrayIcon::Idle => "idle",
            TrayIcon::Syncing => "syncing",
            TrayIcon::Paused => "paused",
            TrayIcon::Conflicts => "conflicts",
            TrayIcon::Error => "error",
        }
    }
}

/// What the tray shows: the icon, a one-line status (tooltip, and the menu's first line
/// where trays have no tooltip), and which of Pause all / Resume all applies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrayView {
    pub icon: TrayIcon,
    pub line: String,
    /// Every pair is paused (Pause all is greyed out).
    pub all_paused: bool,
    /// Some pair is paused (Resume all applies).
    pub any_paused: bool,
    pub conflicts: u64,
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The tray's look for a status. An error outranks waiting conflicts, which outrank a
/// pause, which outranks syncing: the icon shows what needs the user first.
pub fn tray_view(st: &ServiceStatus) -> TrayView {
    let conflicts: u64 = st.pairs.iter().map(|p| p.open_conflicts).sum();
    let paused: Vec<_> = st.pairs.iter().filter(|p| p.paused || st.paused_all).collect();
    let all_paused = !st.pairs.is_empty() && paused.len() == st.pairs.len();
    // A pair whose paths keep failing needs the user as much as one in error.
    let errors: Vec<_> = st
        .pairs
        .iter()
        .filter(|p| matches!(p.state, PairState::Error | PairState::Failing))
        .collect();
    let busy: Vec<_> = st
        .pairs
        .iter()
        .filter(|p| matches!(p.state, PairState::Syncing | PairState::Scanning))
        .collect();
    let files: u64 = st.pairs.iter().map(|p| p.backlog.items).sum();
    let conflicts_part = (conflicts > 0).then(|| plural(conflicts, "conflict", "conflicts"));
    let (icon, head) = if st.pairs.is_empty() {
        (TrayIcon::Idle, "No folders paired yet: open Tandem to add a pair".to_string())
    } else if let Some(p) = errors.first() {
        let why = match p.state {
            PairState::Failing => format!("{} failed, retried later", plural(p.failing, "item", "items")),
            _ => p.reason.clone().unwrap_or_else(|| "error".into()),
        };
        (TrayIcon::Error, format!("Error in {}: {why}", p.pair))
    } else if conflicts > 0 && !all_paused {
        let head = if busy.is_empty() {
            "Waiting for you".to_string()
        } else if files > 0 {
            format!("Syncing {}", plural(files, "file", "files"))
        } else {
            "Syncing".to_string()
        };
        (TrayIcon::Conflicts, head)
    } else if all_paused {
        let why = if st.paused_all {
            "Paused".to_string()
        } else if let Some(p) = paused.iter().find(|p| p.needs_consent) {
            format!("Paused: {} waits for your consent to delete", p.pair)
        } else {
            "Paused".to_string()
        };
        (TrayIcon::Paused, why)
    } else if !busy.is_empty() {
        if files > 0 {
            (TrayIcon::Syncing, format!("Syncing {}", plural(files, "file", "files")))
        } else if busy.iter().all(|p| p.state == PairState::Scanning) {
            (TrayIcon::Syncing, "Scanning".to_string())
        } else {
            (TrayIcon::Syncing, "Syncing".to_string())
        }
    } else if !paused.is_empty() {
        let names: Vec<&str> = paused.iter().map(|p| p.pair.as_str()).collect();
        (TrayIcon::Paused, format!("Paused: {}", names.join(", ")))
    } else {
        (TrayIcon::Idle, "Up to date".to_string())
    };
    let mut parts = vec![head];
    parts.extend(conflicts_part);
    if icon == TrayIcon::Error && errors.len() > 1 {
        parts.push(format!("{} more in error", errors.len() - 1));
    }
    TrayView {
        icon,
        line: parts.join(", "),
        all_paused,
        any_paused: !paused.is_empty(),
        conflicts,
    }
}

/// One toast to show.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Toast {
    pub kind: ToastKind,
    pub title: String,
    pub body: String,
    /// The UI page a click on it opens ("conflicts", "history"...).
    pub page: &'static str,
}

/// How long a first event waits for others of its kind, so a burst makes one toast.
pub const GATHER: Duration = Duration::from_secs(2);
/// At most one toast of a kind this often; what comes meanwhile is told in the next one.
pub const HOLD: Duration = Duration::from_secs(30);

#[derive(Default)]
struct Bucket {
    first: Option<Instant>,
    /// (pair, what): one line each, in arrival order.
    items: Vec<(String, String)>,
}

/// Turns the engine's events into toasts: only the kinds the settings ask for, one toast
/// per burst (held [`GATHER`] after the first event), at most one per kind per [`HOLD`],
/// and an error that repeats (a root still missing at every retry) only once until its
/// pair recovers.
pub struct Toaster {
    cfg: DesktopConfig,
    buckets: BTreeMap<ToastKind, Bucket>,
    last_shown: BTreeMap<ToastKind, Instant>,
    errors_told: HashSet<(String, String)>,
}

/// The error codes of the safety guards: they pause or stop a pair and say why.
fn is_guard(code: &str) -> bool {
    matches!(
        code,
        "mass_delete" | "mass_overwrite" | "root_missing" | "root_empty" | "root_changed" | "root_unreadable"
    )
}

impl Toaster {
    pub fn new(cfg: DesktopConfig) -> Toaster {
        Toaster {
            cfg,
            buckets: BTreeMap::new(),
            last_shown: BTreeMap::new(),
            errors_told: HashSet::new(),
        }
    }

    /// New settings: kinds switched off drop what they gathered.
    pub fn configure(&mut self, cfg: DesktopConfig) {
        self.buckets.retain(|k, _| cfg.toasts.contains(k));
        self.cfg = cfg;
    }

    fn add(&mut self, k: ToastKind, pair: &str, what: String, now: Instant) {
        if !self.cfg.toasts.contains(&k) {
            return;
        }
        let b = self.buckets.entry(k).or_default();
        b.first.get_or_insert(now);
        b.items.push((pair.to_string(), what));
    }

    /// Take one event in.
    pub fn event(&mut self, ev: &Event, now: Instant) {
        match ev {
            Event::ConflictRaised { pair, path, rule } => {
                self.add(ToastKind::Conflicts, pair, format!("{path} ({rule}): waits for your decision"), now);
            }
            Event::ActionFinished {
                pair,
                op,
                path,
                outcome: crate::engine::exec::Outcome::Done { .. },
                ..
            } if op == "clash" => {
                self.add(
                    ToastKind::Conflicts,
                    pair,
                    format!("both versions kept: the older one as {path}"),
                    now,
                );
            }
            Event::Error { pair, code, message } => {
                let p = pair.clone().unwrap_or_default();
                if !self.errors_told.insert((p.clone(), code.clone())) {
                    return;
                }
                let k = if is_guard(code) { ToastKind::Guard } else { ToastKind::Errors };
                self.add(k, &p, message.clone(), now);
            }
            Event::StateChanged {
                pair,
                state: PairState::Idle | PairState::Syncing | PairState::Polling,
                ..
            } => {
                // Recovered (or working again): its errors may be told again.
                self.errors_told.retain(|(p, _)| p != pair);
            }
            Event::RunFinished {
                pair,
                status,
                copied,
                failed,
                bytes,
                ms,
                ..
            } => {
                if *failed > 0 {
                    let what = format!("{} failed in the last sync ({status})", plural(*failed, "operation", "operations"));
                    self.add(ToastKind::Errors, pair, what, now);
                } else if *ms >= self.cfg.summary_after_ms && *copied > 0 {
                    let what = format!(
                        "{} ({}) in {}",
                        plural(*copied, "file copied", "files copied"),
                        crate::model::human_bytes(*bytes),
                        human_duration(*ms)
                    );
                    self.add(ToastKind::Summary, pair, what, now);
                }
            }
            _ => {}
        }
    }

    /// When [`Toaster::due`] has something next (None: nothing gathered).
    pub fn next_at(&self) -> Option<Instant> {
        self.buckets
            .iter()
            .filter_map(|(k, b)| b.first.map(|f| self.release_at(*k, f)))
            .min()
    }

    fn release_at(&self, k: ToastKind, first: Instant) -> Instant {
        let gathered = first + GATHER;
        match self.last_shown.get(&k) {
            Some(last) => gathered.max(*last + HOLD),
            None => gathered,
        }
    }

    /// The toasts to show now.
    pub fn due(&mut self, now: Instant) -> Vec<Toast> {
        let ready: Vec<ToastKind> = self
            .buckets
            .iter()
            .filter(|(k, b)| b.first.is_some_and(|f| self.release_at(**k, f) <= now))
            .map(|(k, _)| *k)
            .collect();
        let mut out = Vec::new();
        for k in ready {
            let b = self.buckets.remove(&k).unwrap_or_default();
            if b.items.is_empty() {
                continue;
            }
            self.last_shown.insert(k, now);
            out.push(render(k, &b.items));
        }
        out
    }
}

fn render(k: ToastKind, items: &[(String, String)]) -> Toast {
    let n = items.len() as u64;
    let pairs: Vec<&str> = {
        let mut v: Vec<&str> = items.iter().map(|(p, _)| p.as_str()).collect();
        v.dedup();
        v
    };
    let within = if pairs.len() == 1 && !pairs[0].is_empty() {
        format!(" in {}", pairs[0])
    } else {
        String::new()
    };
    let mut lines: Vec<String> = items.iter().take(3).map(|(_, w)| w.clone()).collect();
    if n > 3 {
        lines.push(format!("and {} more", n - 3));
    }
    let body = lines.join("\n");
    let (title, page) = match k {
        ToastKind::Conflicts if n == 1 => (format!("A conflict{within}"), "conflicts"),
        ToastKind::Conflicts => (format!("{n} new conflicts{within}"), "conflicts"),
        ToastKind::Guard => (format!("Sync stopped by a safety guard{within}"), "dashboard"),
        ToastKind::Errors if n == 1 => (format!("Sync error{within}"), "history"),
        ToastKind::Errors => (format!("{n} sync errors{within}"), "history"),
        ToastKind::Summary => (format!("Sync finished{within}"), "history"),
    };
    Toast {
        kind: k,
        title,
        body,
        page,
    }
}

/// "45 s", "12 min", "2 h 5 min".
pub fn human_duration(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..=59 => format!("{s} s"),
        60..=3599 => format!("{} min", s / 60),
        _ => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    }
}

// ------------------------------------------------------------------ first run

/// The config file the desktop app uses unless told otherwise:
/// `~/.config/tandem/tandem.toml` (the platform's config folder elsewhere).
pub fn default_config_file() -> PathBuf {
    dirs::config_dir()
        .unwrap_or_else(|| PathBuf::from("."))
        .join("tandem")
        .join("tandem.toml")
}

const FIRST_RUN: &str = r#"# Tandem's settings. The app's Settings page edits this file and keeps these comments;
# every key is described in Tandem's README ("Configuration"; installed from the .deb as
# /usr/share/doc/tandem-desktop/README.md).

# Folder pairs to keep identical, both ways. Add one in Settings ("Add pair"), or here:
# [[pair]]
# name = "documents"
# left = "/home/me/Documents"
# right = "/mnt/cloud/Documents"

[desktop]
# Which events show a desktop notification: "conflicts", "guard", "errors", "summary".
toasts = ["conflicts", "guard", "errors"]
# A "summary" toast only after a sync that took at least this long.
summary_after = "5m"
# Start Tandem when you log in.
autostart = false
"#;

/// Create `file` with a commented starting config if it does not exist. Returns whether it
/// was created (the app then opens its Settings page). An existing file is never touched.
pub fn first_run(file: &Path) -> Result<bool, crate::api::ApiError> {
    let io = |source| crate::api::ApiError::Io {
        path: file.to_path_buf(),
        source,
    };
    if file.exists() {
        return Ok(false);
    }
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    // create_new: two first launches at once must not clobber each other's file.
    match std::fs::OpenOptions::new().write(true).create_new(true).open(file) {
        Ok(mut f) => {
            use std::io::Write;
            f.write_all(FIRST_RUN.as_bytes()).map_err(io)?;
            f.sync_all().map_err(io)?;
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(io(e)),
    }
}

// ------------------------------------------------------------------ autostart

/// The XDG autostart entry: `~/.config/autostart/tandem.desktop` (`$XDG_CONFIG_HOME` is
/// honoured, as desktop sessions do).
pub fn autostart_file() -> PathBuf {
    dirs::config_dir()
        .unwrap_or_else(|| PathBuf::from("."))
        .join("autostart")
        .join("tandem.desktop")
}

/// Quote one argument for a desktop entry's `Exec` line (the spec's rules: double quotes,
/// with `"`, `` ` ``, `$` and `\` escaped, and `%` doubled).
pub fn desktop_exec_arg(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' | '`' | '$' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '%' => out.push_str("%%"),
            _ => out.push(c),
        }
    }
    out.push('"');
    // A desktop file's string values escape the backslash once more.
    out.replace('\\', "\\\\")
}

/// The autostart entry's text: the app started hidden in the tray with this config.
pub fn autostart_entry(exe: &Path, config: &Path) -> String {
    format!(
        "[Desktop Entry]\nType=Application\nName=Tandem\nComment=Two-way folder sync\nExec={} --hidden --config {}\nIcon=tandem-desktop\nTerminal=false\nX-GNOME-Autostart-enabled=true\n",
        desktop_exec_arg(&exe.to_string_lossy()),
        desktop_exec_arg(&config.to_string_lossy())
    )
}

/// The command Windows runs at login for the tray app (the "Run" registry value):
/// `"EXE" --hidden --config "CONFIG"` (Windows paths hold no `"`).
pub fn windows_run_command(exe: &Path, config: &Path) -> String {
    format!("\"{}\" --hidden --config \"{}\"", exe.display(), config.display())
}

/// Windows: write or remove the value "Tandem" under the user's
/// `HKCU\Software\Microsoft\Windows\CurrentVersion\Run` so that it matches `enabled`.
/// Returns whether anything changed.
#[cfg(windows)]
pub fn set_autostart_windows(enabled: bool, exe: &Path, config: &Path) -> Result<bool, crate::api::ApiError> {
    use crate::side::win::wide;
    use windows_sys::Win32::System::Registry::*;
    let fail = |rc: u32| crate::api::ApiError::Io {
        path: PathBuf::from(r"HKCU\Software\Microsoft\Windows\CurrentVersion\Run"),
        source: std::io::Error::from_raw_os_error(rc as i32),
    };
    let (sub, name) = (wide(r"Software\Microsoft\Windows\CurrentVersion\Run"), wide("Tandem"));
    let mut key: HKEY = std::ptr::null_mut();
    // SAFETY: valid wide strings and an out-pointer we own; the key is closed below.
    let rc = unsafe { RegOpenKeyExW(HKEY_CURRENT_USER, sub.as_ptr(), 0, KEY_QUERY_VALUE | KEY_SET_VALUE, &mut key) };
    if rc != 0 {
        return Err(fail(rc));
    }
    let want = wide(&windows_run_command(exe, config));
    let mut have = vec![0u16; 2048];
    let mut len = (have.len() * 2) as u32;
    // SAFETY: the buffer and its byte length match.
    let rc = unsafe {
        RegQueryValueExW(
            key,
            name.as_ptr(),
            std::ptr::null(),
            std::ptr::null_mut(),
            have.as_mut_ptr().cast(),
            &mut len,
        )
    };
    let present = rc == 0;
    let same = present && have[..(len as usize / 2).min(have.len())] == want[..];
    let rc = match (enabled, present) {
        (true, _) if same => return Ok(false) as Result<bool, _>,
        // SAFETY: the data pointer and byte length match `want` (NUL included).
        (true, _) => unsafe { RegSetValueExW(key, name.as_ptr(), 0, REG_SZ, want.as_ptr().cast(), (want.len() * 2) as u32) },
        // SAFETY: an open key and a valid name.
        (false, true) => unsafe { RegDeleteValueW(key, name.as_ptr()) },
        (false, false) => return Ok(false),
    };
    // SAFETY: the key we opened.
    unsafe { RegCloseKey(key) };
    if rc != 0 {
        return Err(fail(rc));
    }
    Ok(true)
}

/// Write or remove the autostart entry at `file` so that it matches `enabled`. Returns
/// whether anything changed.
pub fn set_autostart(file: &Path, enabled: bool, exe: &Path, config: &Path) -> Result<bool, crate::api::ApiError> {
    let io = |source| crate::api::ApiError::Io {
        path: file.to_path_buf(),
        source,
    };
    let want = autostart_entry(exe, config);
    let have = std::fs::read_to_string(file).ok();
    match (enabled, have) {
        (true, Some(h)) if h == want => Ok(false),
        (true, _) => {
            if let Some(dir) = file.parent() {
                std::fs::create_dir_all(dir).map_err(io)?;
            }
            let tmp = file.with_extension("desktop.tmp");
            std::fs::write(&tmp, want).map_err(io)?;
            std::fs::rename(&tmp, file).map_err(io)?;
            Ok(true)
        }
        (false, Some(_)) => {
            std::fs::remove_file(file).map_err(io)?;
            Ok(true)
        }
        (false, None) => Ok(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::{Backlog, LiveStatus, Totals};

    fn pair(name: &str, state: PairState) -> LiveStatus {
        LiveStatus {
            pair: name.into(),
            left: "/l".into(),
            right: "/r".into(),
            state,
            reason: None,
            paused: state == PairState::Paused,
            needs_consent: false,
            watch: vec![],
            last_event: None,
            last_run: None,
            backlog: Backlog::default(),
            transfers: vec![],
            open_conflicts: 0,
            failing: 0,
            ops_last_24h: 0,
            totals: Totals::default(),
        }
    }

    fn status(pairs: Vec<LiveStatus>, paused_all: bool) -> ServiceStatus {
        ServiceStatus {
            version: "0".into(),
            pid: 1,
            started_at: 0,
            paused_all,
            pairs,
        }
    }

    /// One case per look: (what, status, icon, line).
    #[test]
    fn tray_view_cases() {
        let mut syncing = pair("docs", PairState::Syncing);
        syncing.backlog.items = 12;
        let mut with_conflicts = syncing.clone();
        with_conflicts.open_conflicts = 3;
        let mut idle_conflict = pair("docs", PairState::Idle);
        idle_conflict.open_conflicts = 1;
        let mut error = pair("photos", PairState::Error);
        error.reason = Some("root missing: /mnt/cloud".into());
        let mut guard = pair("docs", PairState::Paused);
        guard.needs_consent = true;
        let mut failing = pair("docs", PairState::Failing);
        failing.failing = 2;
        let cases: Vec<(&str, ServiceStatus, TrayIcon, &str)> = vec![
            (
                "no pairs",
                status(vec![], false),
                TrayIcon::Idle,
                "No folders paired yet: open Tandem to add a pair",
            ),
            (
                "idle",
                status(vec![pair("docs", PairState::Idle)], false),
                TrayIcon::Idle,
                "Up to date",
            ),
            (
                "polling is idle",
                status(vec![pair("docs", PairState::Polling)], false),
                TrayIcon::Idle,
                "Up to date",
            ),
            (
                "syncing",
                status(vec![syncing.clone()], false),
                TrayIcon::Syncing,
                "Syncing 12 files",
            ),
            (
                "scanning",
                status(vec![pair("docs", PairState::Scanning)], false),
                TrayIcon::Syncing,
                "Scanning",
            ),
            (
                "conflicts while syncing",
                status(vec![with_conflicts.clone()], false),
                TrayIcon::Conflicts,
                "Syncing 12 files, 3 conflicts",
            ),
            (
                "one conflict",
                status(vec![idle_conflict.clone()], false),
                TrayIcon::Conflicts,
                "Waiting for you, 1 conflict",
            ),
            ("paused all", status(vec![syncing.clone()], true), TrayIcon::Paused, "Paused"),
            (
                "paused all with conflicts",
                status(vec![idle_conflict.clone()], true),
                TrayIcon::Paused,
                "Paused, 1 conflict",
            ),
            (
                "guard",
                status(vec![guard], false),
                TrayIcon::Paused,
                "Paused: docs waits for your consent to delete",
            ),
            (
                "one of two paused",
                status(vec![pair("docs", PairState::Paused), pair("music", PairState::Idle)], false),
                TrayIcon::Paused,
                "Paused: docs",
            ),
            (
                "syncing beats a paused pair",
                status(vec![pair("docs", PairState::Paused), syncing.clone()], false),
                TrayIcon::Syncing,
                "Syncing 12 files",
            ),
            (
                "failing copies are not up to date",
                status(vec![failing], false),
                TrayIcon::Error,
                "Error in docs: 2 items failed, retried later",
            ),
            (
                "error beats all",
                status(vec![with_conflicts, error.clone(), error], false),
                TrayIcon::Error,
                "Error in photos: root missing: /mnt/cloud, 3 conflicts, 1 more in error",
            ),
        ];
        for (what, st, icon, line) in cases {
            let v = tray_view(&st);
            assert_eq!((v.icon, v.line.as_str()), (icon, line), "{what}");
        }
    }

    #[test]
    fn tray_view_tells_which_of_pause_and_resume_applies() {
        let v = tray_view(&status(vec![pair("a", PairState::Paused), pair("b", PairState::Idle)], false));
        assert!(v.any_paused && !v.all_paused);
        let v = tray_view(&status(vec![pair("a", PairState::Idle)], true));
        assert!(v.any_paused && v.all_paused);
        let v = tray_view(&status(vec![pair("a", PairState::Idle)], false));
        assert!(!v.any_paused && !v.all_paused);
    }

    fn conflict(i: usize) -> Event {
        Event::ConflictRaised {
            pair: "docs".into(),
            path: format!("f{i}.txt"),
            rule: "R1".into(),
        }
    }

    #[test]
    fn a_burst_of_conflicts_makes_one_toast() {
        let t0 = Instant::now();
        let mut t = Toaster::new(DesktopConfig::default());
        for i in 0..300 {
            t.event(&conflict(i), t0 + Duration::from_millis(i as u64));
        }
        assert_eq!(t.due(t0 + Duration::from_millis(1999)), vec![]);
        assert_eq!(t.next_at(), Some(t0 + GATHER));
        let toasts = t.due(t0 + GATHER);
        assert_eq!(toasts.len(), 1);
        assert_eq!(toasts[0].title, "300 new conflicts in docs");
        assert_eq!(
            toasts[0].body,
            "f0.txt (R1): waits for your decision\nf1.txt (R1): waits for your decision\nf2.txt (R1): waits for your decision\nand 297 more"
        );
        assert_eq!(toasts[0].page, "conflicts");
        assert_eq!(t.next_at(), None);
    }

    #[test]
    fn toasts_of_a_kind_come_at_most_once_per_hold() {
        let t0 = Instant::now();
        let mut t = Toaster::new(DesktopConfig::default());
        t.event(&conflict(0), t0);
        assert_eq!(t.due(t0 + GATHER).len(), 1);
        // Another right after: held until HOLD after the first toast, then told alone.
        t.event(&conflict(1), t0 + GATHER + Duration::from_secs(1));
        assert_eq!(t.due(t0 + GATHER + Duration::from_secs(10)), vec![]);
        assert_eq!(t.next_at(), Some(t0 + GATHER + HOLD));
        let later = t.due(t0 + GATHER + HOLD);
        assert_eq!(later.len(), 1);
        assert_eq!(later[0].title, "A conflict in docs");
        // A conflict settled with a clash copy is told too.
        t.event(
            &Event::ActionFinished {
                pair: "docs".into(),
                op: "clash".into(),
                side: Some(crate::model::Side::Left),
                path: "report.docx".into(),
                outcome: crate::engine::exec::Outcome::Done { bytes: 0 },
            },
            t0 + GATHER + HOLD * 2,
        );
        let clash = t.due(t0 + GATHER * 2 + HOLD * 2);
        assert_eq!(clash[0].body, "both versions kept: the older one as report.docx");
        // Another kind is not held back by the conflicts' hold.
        t.event(
            &Event::Error {
                pair: Some("docs".into()),
                code: "io_error".into(),
                message: "disk full".into(),
            },
            t0 + GATHER + HOLD,
        );
        let e = t.due(t0 + GATHER + HOLD + GATHER);
        assert_eq!(
            (e.len(), e[0].title.as_str(), e[0].body.as_str()),
            (1, "Sync error in docs", "disk full")
        );
    }

    #[test]
    fn a_repeated_error_is_told_once_until_the_pair_recovers() {
        let t0 = Instant::now();
        let mut t = Toaster::new(DesktopConfig::default());
        let missing = Event::Error {
            pair: Some("docs".into()),
            code: "root_missing".into(),
            message: "the folder /mnt/cloud is missing".into(),
        };
        t.event(&missing, t0);
        let first = t.due(t0 + GATHER);
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].kind, ToastKind::Guard);
        assert_eq!(first[0].title, "Sync stopped by a safety guard in docs");
        for i in 1..10 {
            t.event(&missing, t0 + Duration::from_secs(30 * i));
        }
        assert_eq!(t.next_at(), None, "the retries are not told again");
        t.event(
            &Event::StateChanged {
                pair: "docs".into(),
                state: PairState::Idle,
                reason: None,
            },
            t0 + Duration::from_secs(400),
        );
        t.event(&missing, t0 + Duration::from_secs(500));
        assert_eq!(t.due(t0 + Duration::from_secs(503)).len(), 1, "missing again after a recovery");
    }

    #[test]
    fn only_the_kinds_asked_for_are_toasted() {
        let t0 = Instant::now();
        let cfg = DesktopConfig {
            toasts: vec![ToastKind::Summary],
            summary_after_ms: 60_000,
            autostart: false,
        };
        let mut t = Toaster::new(cfg);
        t.event(&conflict(0), t0);
        let run = |ms: u64, failed: u64| Event::RunFinished {
            pair: "docs".into(),
            run: Some(1),
            trigger: "watch".into(),
            status: "ok".into(),
            copied: 120,
            failed,
            bytes: 3 << 30,
            ms,
        };
        t.event(&run(59_000, 0), t0);
        assert_eq!(t.next_at(), None, "a conflict and a short sync make no toast");
        t.event(&run(12 * 60_000, 0), t0);
        let s = t.due(t0 + GATHER);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].title, "Sync finished in docs");
        assert_eq!(s[0].body, "120 files copied (3.0 GiB) in 12 min");
        // No toasts at all.
        t.configure(DesktopConfig {
            toasts: vec![],
            ..DesktopConfig::default()
        });
        t.event(&run(12 * 60_000, 2), t0);
        assert_eq!(t.next_at(), None);
    }

    #[test]
    fn first_run_writes_a_config_that_loads_and_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sub/tandem.toml");
        assert!(first_run(&file).unwrap());
        let c = crate::config::Config::load(&file).unwrap();
        assert!(c.pairs.is_empty());
        assert_eq!(c.desktop, DesktopConfig::default());
        std::fs::write(&file, "# mine\n").unwrap();
        assert!(!first_run(&file).unwrap());
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "# mine\n");
    }

    #[test]
    fn windows_run_command_quotes_both_paths() {
        assert_eq!(
            windows_run_command(
                Path::new(r"C:\Program Files\Tandem\tandem-desktop.exe"),
                Path::new(r"C:\Users\Me\AppData\Roaming\tandem\tandem.toml")
            ),
            r#""C:\Program Files\Tandem\tandem-desktop.exe" --hidden --config "C:\Users\Me\AppData\Roaming\tandem\tandem.toml""#
        );
    }

    #[test]
    fn autostart_entry_quotes_paths_and_follows_the_setting() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("autostart/tandem.desktop");
        let exe = Path::new("/opt/My Apps/tandem-desktop");
        let cfg = Path::new("/home/me/100% $sync/tandem.toml");
        assert!(!set_autostart(&file, false, exe, cfg).unwrap());
        assert!(set_autostart(&file, true, exe, cfg).unwrap());
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(
            text.contains(r#"Exec="/opt/My Apps/tandem-desktop" --hidden --config "/home/me/100%% \\$sync/tandem.toml""#),
            "{text}"
        );
        assert!(!set_autostart(&file, true, exe, cfg).unwrap(), "unchanged");
        assert!(set_autostart(&file, false, exe, cfg).unwrap());
        assert!(!file.exists());
    }

    #[test]
    fn desktop_table_parses_and_names_bad_keys() {
        let f = Path::new("/x/t.toml");
        let c = crate::config::Config::parse(
            f,
            "[desktop]\ntoasts = ['summary', 'errors']\nsummary_after = '90s'\nautostart = true\n",
        )
        .unwrap();
        assert_eq!(
            c.desktop,
            DesktopConfig {
                toasts: vec![ToastKind::Summary, ToastKind::Errors],
                summary_after_ms: 90_000,
                autostart: true
            }
        );
        let e = crate::config::Config::parse(f, "[desktop]\ntoasts = ['conflicts', 'everything']\n").unwrap_err();
        assert_eq!(e.key(), Some("desktop.toasts[1]"), "{e}");
        let e = crate::config::Config::parse(f, "[desktop]\nautostrat = true\n").unwrap_err();
        assert!(e.to_string().contains("autostrat"), "{e}");
    }
}
