//! The user's configuration: one TOML file with global options, per-pair overrides and the
//! optional `[email]` and `[desktop]` tables. Owns parsing and validation (every error names the file, the
//! key and what was expected) and the default ignore list. Must not touch: the disk beyond
//! reading the file it is given, SQLite, the planner's decisions.

pub use crate::engine::pair::*;
pub use crate::engine::plan::{ClashOption, PropsOption, Rules};
pub use crate::model::names::*;
pub use crate::model::units::*;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    None,
    Starttls,
    Tls,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MailGranularity {
    PerConflict,
    Summary,
    Digest,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EmailConfig {
    pub host: String,
    pub port: u16,
    pub security: SmtpSecurity,
    pub username: Option<String>,
    pub password_env: Option<String>,
    pub password_file: Option<PathBuf>,
    pub from: String,
    pub to: Vec<String>,
    pub subject_prefix: String,
    /// Which mails: one kind, or several (`["per-conflict", "summary"]`).
    pub granularity: Vec<MailGranularity>,
}

/// What the desktop app shows as toasts (ordered as declared).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ToastKind {
    /// A new conflict waits for a decision or was settled with clash copies.
    Conflicts,
    /// A safety guard paused a pair (mass delete, root missing or emptied).
    Guard,
    /// A pair is in error, or a run ended with failed operations.
    Errors,
    /// A sync that took longer than `summary_after` finished.
    Summary,
}

/// The `[desktop]` table: the tray app's own settings (the headless service ignores it).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DesktopConfig {
    pub toasts: Vec<ToastKind>,
    /// A `summary` toast only after a sync that took at least this long.
    pub summary_after_ms: u64,
    /// Start the tray app when the user logs in.
    pub autostart: bool,
}

impl Default for DesktopConfig {
    fn default() -> Self {
        DesktopConfig {
            toasts: vec![ToastKind::Conflicts, ToastKind::Guard, ToastKind::Errors],
            summary_after_ms: 5 * 60_000,
            autostart: false,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// The file this came from (for messages).
    pub file: PathBuf,
    pub state: Option<PathBuf>,
    pub defaults: SyncOptions,
    pub pairs: Vec<PairConfig>,
    pub email: Option<EmailConfig>,
    /// Where the continuous service's API listens (loopback only).
    pub listen: Option<std::net::SocketAddr>,
    /// Where the continuous service writes its rotating log files.
    pub log_dir: Option<PathBuf>,
    pub desktop: DesktopConfig,
}

impl Config {
    pub fn load(file: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(file).map_err(|source| ConfigError::Read {
            file: file.to_path_buf(),
            source,
        })?;
        Config::parse(file, &text)
    }

    pub fn parse(file: &Path, text: &str) -> Result<Config, ConfigError> {
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| ConfigError::Syntax {
            file: file.to_path_buf(),
            message: e.to_string().trim().replace('\n', " "),
        })?;
        // Relative folders are relative to the config file's folder, made absolute here: a
        // relative root would reach the watcher and the executor as a relative path and
        // depend on the working directory.
        let parent = file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let base_dir = std::path::absolute(parent).unwrap_or_else(|_| parent.to_path_buf());
        let base_dir = base_dir.as_path();
        let w = Walker { file };
        let known_top = [
            "state",
            "listen",
            "log_dir",
            "pair",
            "email",
            "desktop",
            "conflicts",
            "watch",
            "debounce",
            "max_wait",
            "poll_interval",
            "reconcile_every",
            "large_file",
            "large_workers",
            "bandwidth",
            "schedule",
            "history_retention_days",
            "ignore",
            "use_default_ignores",
            "soft_delete_max_bytes",
            "trash_retention_days",
            "max_delete_percent",
            "concurrency",
            "portable_names",
            "max_path_len",
        ];
        w.known(&table, "", &known_top)?;
        let defaults = w.options(&table, "", &SyncOptions::default())?;
        let state = w.opt_str(&table, "", "state")?.map(|s| resolve(base_dir, &s));
        let log_dir = w.opt_str(&table, "", "log_dir")?.map(|s| resolve(base_dir, &s));
        let listen = match table.get("listen") {
            None => None,
            Some(v) => {
                let expected = "a loopback address with a port, like \"127.0.0.1:7700\"";
                let a: std::net::SocketAddr = v
                    .as_str()
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| w.invalid("listen", expected, v))?;
                if !a.ip().is_loopback() {
                    return Err(w.invalid("listen", expected, v));
                }
                Some(a)
            }
        };
        let mut pairs = Vec::new();
        if let Some(v) = table.get("pair") {
            let arr = v.as_array().ok_or_else(|| w.invalid("pair", "an array of tables ([[pair]])", v))?;
            let mut known_pair = vec!["name", "left", "right"];
            known_pair.extend(&known_top[6..]);
            for (i, item) in arr.iter().enumerate() {
                let key = format!("pair[{i}]");
                let t = item.as_table().ok_or_else(|| w.invalid(&key, "a table", item))?;
                w.known(t, &key, &known_pair)?;
                let name = w.req_str(t, &key, "name")?;
                if name.is_empty() || name.chars().any(|c| c.is_control() || c == '/') {
                    return Err(w.invalid(&format!("{key}.name"), "a non-empty name without '/'", &toml::Value::String(name)));
                }
                if pairs.iter().any(|p: &PairConfig| p.name == name) {
                    return Err(w.invalid(
                        &format!("{key}.name"),
                        "a name not used by another pair",
                        &toml::Value::String(name),
                    ));
                }
                let left = resolve(base_dir, &w.req_str(t, &key, "left")?);
                let right = resolve(base_dir, &w.req_str(t, &key, "right")?);
                if left.starts_with(&right) || right.starts_with(&left) {
                    return Err(w.invalid(
                        &format!("{key}.right"),
                        "a folder that neither contains nor lies inside `left`",
                        &toml::Value::String(right.display().to_string()),
                    ));
                }
                let options = w.options(t, &key, &defaults)?;
                pairs.push(PairConfig {
                    name,
                    left,
                    right,
                    options,
                });
            }
        }
        let email = match table.get("email") {
            None => None,
            Some(v) => Some(w.email(v)?),
        };
        let desktop = match table.get("desktop") {
            None => DesktopConfig::default(),
            Some(v) => w.desktop(v)?,
        };
        Ok(Config {
            file: file.to_path_buf(),
            state,
            defaults,
            pairs,
            email,
            listen,
            log_dir,
            desktop,
        })
    }

    pub fn pair(&self, name: &str) -> Option<&PairConfig> {
        self.pairs.iter().find(|p| p.name == name)
    }
}

fn resolve(base: &Path, s: &str) -> PathBuf {
    let expanded = match s.strip_prefix("~/") {
        Some(rest) => dirs::home_dir().map(|h| h.join(rest)).unwrap_or_else(|| PathBuf::from(s)),
        None => PathBuf::from(s),
    };
    if expanded.is_absolute() || s.contains(":\\") {
        expanded
    } else {
        base.join(expanded)
    }
}

fn describe(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => format!("the string {s:?}"),
        toml::Value::Integer(i) => format!("the integer {i}"),
        toml::Value::Float(f) => format!("the number {f}"),
        toml::Value::Boolean(b) => format!("{b}"),
        toml::Value::Datetime(d) => format!("the date {d}"),
        toml::Value::Array(_) => "an array".into(),
        toml::Value::Table(_) => "a table".into(),
    }
}

struct Walker<'a> {
    file: &'a Path,
}

fn join_key(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

impl Walker<'_> {
    fn invalid(&self, key: &str, expected: &str, found: &toml::Value) -> ConfigError {
        ConfigError::Invalid {
            file: self.file.to_path_buf(),
            key: key.to_string(),
            expected: expected.to_string(),
            found: describe(found),
        }
    }

    fn known(&self, t: &toml::Table, prefix: &str, known: &[&str]) -> Result<(), ConfigError> {
        for k in t.keys() {
            if !known.contains(&k.as_str()) {
                return Err(ConfigError::Unknown {
                    file: self.file.to_path_buf(),
                    key: join_key(prefix, k),
                    known: known.join(", "),
                });
            }
        }
        Ok(())
    }

    fn opt_str(&self, t: &toml::Table, prefix: &str, key: &str) -> Result<Option<String>, ConfigError> {
        match t.get(key) {
            None => Ok(None),
            Some(toml::Value::String(s)) => Ok(Some(s.clone())),
            Some(v) => Err(self.invalid(&join_key(prefix, key), "a string", v)),
        }
    }

    fn req_str(&self, t: &toml::Table, prefix: &str, key: &str) -> Result<String, ConfigError> {
        self.opt_str(t, prefix, key)?.ok_or_else(|| ConfigError::Invalid {
            file: self.file.to_path_buf(),
            key: join_key(prefix, key),
            expected: "a string".into(),
            found: "nothing (the key is required)".into(),
        })
    }

    fn opt_int(&self, t: &toml::Table, prefix: &str, key: &str, min: i64, max: i64) -> Result<Option<i64>, ConfigError> {
        match t.get(key) {
            None => Ok(None),
            Some(toml::Value::Integer(i)) if (min..=max).contains(i) => Ok(Some(*i)),
            Some(v) => Err(self.invalid(&join_key(prefix, key), &format!("an integer from {min} to {max}"), v)),
        }
    }

    fn opt_bool(&self, t: &toml::Table, prefix: &str, key: &str) -> Result<Option<bool>, ConfigError> {
        match t.get(key) {
            None => Ok(None),
            Some(toml::Value::Boolean(b)) => Ok(Some(*b)),
            Some(v) => Err(self.invalid(&join_key(prefix, key), "true or false", v)),
        }
    }

    /// Sizes: an integer number of bytes or a string like "20 MB" / "1.5GiB".
    fn opt_size(&self, t: &toml::Table, prefix: &str, key: &str) -> Result<Option<u64>, ConfigError> {
        let expected = "a size: bytes as an integer, or a string like \"20 MB\"";
        match t.get(key) {
            None => Ok(None),
            Some(toml::Value::Integer(i)) if *i >= 0 => Ok(Some(*i as u64)),
            Some(v @ toml::Value::String(s)) => parse_size(s)
                .map(Some)
                .ok_or_else(|| self.invalid(&join_key(prefix, key), expected, v)),
            Some(v) => Err(self.invalid(&join_key(prefix, key), expected, v)),
        }
    }

    fn options(&self, t: &toml::Table, prefix: &str, inherit: &SyncOptions) -> Result<SyncOptions, ConfigError> {
        let mut o = inherit.clone();
        if let Some(v) = t.get("ignore") {
            let key = join_key(prefix, "ignore");
            let arr = v.as_array().ok_or_else(|| self.invalid(&key, "an array of glob patterns", v))?;
            let mut pats = inherit.ignore.clone();
            for (i, p) in arr.iter().enumerate() {
                let s = p
                    .as_str()
                    .ok_or_else(|| self.invalid(&format!("{key}[{i}]"), "a glob pattern string", p))?;
                if let Err(e) = glob(s) {
                    return Err(self.invalid(&format!("{key}[{i}]"), &format!("a valid glob pattern ({e})"), p));
                }
                pats.push(s.to_string());
            }
            o.ignore = pats;
        }
        if let Some(b) = self.opt_bool(t, prefix, "use_default_ignores")? {
            o.use_default_ignores = b;
        }
        if let Some(n) = self.opt_size(t, prefix, "soft_delete_max_bytes")? {
            o.soft_delete_max_bytes = n;
        }
        if let Some(n) = self.opt_int(t, prefix, "trash_retention_days", 0, 36500)? {
            o.trash_retention_days = n as u32;
        }
        if let Some(n) = self.opt_int(t, prefix, "max_delete_percent", 0, 100)? {
            o.max_delete_percent = n as u8;
        }
        if let Some(n) = self.opt_int(t, prefix, "concurrency", 1, 64)? {
            o.concurrency = n as usize;
        }
        if let Some(b) = self.opt_bool(t, prefix, "portable_names")? {
            o.portable_names = b;
        }
        if let Some(n) = self.opt_int(t, prefix, "max_path_len", 10, 32000)? {
            o.max_path_len = n as usize;
        }
        if let Some(v) = t.get("watch") {
            o.watch = match v.as_str() {
                Some("auto") => WatchMode::Auto,
                Some("poll") => WatchMode::Poll,
                Some("off") => WatchMode::Off,
                _ => return Err(self.invalid(&join_key(prefix, "watch"), "one of \"auto\", \"poll\", \"off\"", v)),
            };
        }
        if let Some(ms) = self.opt_duration(t, prefix, "debounce", 0, 60_000)? {
            o.debounce_ms = ms;
        }
        if let Some(ms) = self.opt_duration(t, prefix, "max_wait", 10, 3_600_000)? {
            o.max_wait_ms = ms;
        }
        if let Some(ms) = self.opt_duration(t, prefix, "poll_interval", 1_000, 86_400_000)? {
            o.poll_interval_s = ms / 1000;
        }
        if let Some(ms) = self.opt_duration(t, prefix, "reconcile_every", 60_000, 30 * 86_400_000)? {
            o.reconcile_every_s = ms / 1000;
        }
        if let Some(n) = self.opt_size(t, prefix, "large_file")? {
            o.large_file_bytes = n;
        }
        if let Some(n) = self.opt_int(t, prefix, "large_workers", 1, 16)? {
            o.large_workers = n as usize;
        }
        if let Some(v) = t.get("bandwidth") {
            o.bandwidth = self.bandwidth(v, &join_key(prefix, "bandwidth"))?;
        }
        if let Some(v) = t.get("schedule") {
            o.schedules = self.schedules(v, &join_key(prefix, "schedule"))?;
        }
        if let Some(n) = self.opt_int(t, prefix, "history_retention_days", 1, 36500)? {
            o.history_retention_days = n as u32;
        }
        if let Some(v) = t.get("conflicts") {
            let key = join_key(prefix, "conflicts");
            let ct = v.as_table().ok_or_else(|| self.invalid(&key, "a table", v))?;
            self.known(ct, &key, &["r1", "r2", "r13"])?;
            let clash = |k: &str| -> Result<Option<ClashOption>, ConfigError> {
                match ct.get(k) {
                    None => Ok(None),
                    Some(v) => match v.as_str() {
                        Some("clash") => Ok(Some(ClashOption::Clash)),
                        Some("newer-wins") => Ok(Some(ClashOption::NewerWins)),
                        Some("manual") => Ok(Some(ClashOption::Manual)),
                        _ => Err(self.invalid(&format!("{key}.{k}"), "one of \"clash\", \"newer-wins\", \"manual\"", v)),
                    },
                }
            };
            if let Some(x) = clash("r1")? {
                o.rules.r1 = x;
            }
            if let Some(x) = clash("r2")? {
                o.rules.r2 = x;
            }
            if let Some(v) = ct.get("r13") {
                o.rules.r13 = match v.as_str() {
                    Some("newer") => PropsOption::Newer,
                    Some("left-wins") => PropsOption::LeftWins,
                    Some("manual") => PropsOption::Manual,
                    _ => return Err(self.invalid(&format!("{key}.r13"), "one of \"newer\", \"left-wins\", \"manual\"", v)),
                };
            }
        }
        Ok(o)
    }

    /// Durations: an integer number of milliseconds or a string like "300ms", "30s", "6h".
    fn opt_duration(&self, t: &toml::Table, prefix: &str, key: &str, min_ms: u64, max_ms: u64) -> Result<Option<u64>, ConfigError> {
        let expected = format!(
            "a duration from {} to {}: milliseconds as an integer, or a string like \"300ms\", \"30s\", \"5m\", \"6h\"",
            show_ms(min_ms),
            show_ms(max_ms)
        );
        let ms = match t.get(key) {
            None => return Ok(None),
            Some(toml::Value::Integer(i)) if *i >= 0 => Some(*i as u64),
            Some(toml::Value::String(s)) => parse_duration_ms(s),
            Some(_) => None,
        };
        match ms {
            Some(ms) if (min_ms..=max_ms).contains(&ms) => Ok(Some(ms)),
            _ => Err(self.invalid(&join_key(prefix, key), &expected, &t[key])),
        }
    }

    fn schedules(&self, v: &toml::Value, key: &str) -> Result<Vec<crate::model::schedule::ScheduleSpec>, ConfigError> {
        use crate::model::schedule::{Job, ScheduleSpec};
        let arr = v
            .as_array()
            .ok_or_else(|| self.invalid(key, "an array of tables ([[schedule]])", v))?;
        let kinds = ["every", "cron", "daily", "weekly", "monthly"];
        let mut out: Vec<ScheduleSpec> = Vec::new();
        for (i, item) in arr.iter().enumerate() {
            let k = format!("{key}[{i}]");
            let t = item.as_table().ok_or_else(|| self.invalid(&k, "a table", item))?;
            self.known(t, &k, &["name", "every", "cron", "daily", "weekly", "monthly", "tz", "run"])?;
            let given: Vec<&str> = kinds.iter().copied().filter(|n| t.contains_key(*n)).collect();
            if given.len() != 1 {
                return Err(ConfigError::Invalid {
                    file: self.file.to_path_buf(),
                    key: k,
                    expected: "exactly one of every, cron, daily, weekly, monthly".into(),
                    found: if given.is_empty() { "none".into() } else { given.join(", ") },
                });
            }
            let kind = given[0];
            let value = self.req_str(t, &k, kind)?;
            let job = match t.get("run") {
                None => Job::Sync,
                Some(v) => match v.as_str() {
                    Some("sync") => Job::Sync,
                    Some("reconcile") => Job::Reconcile,
                    _ => return Err(self.invalid(&format!("{k}.run"), "\"sync\" or \"reconcile\"", v)),
                },
            };
            let spec = ScheduleSpec {
                name: self.opt_str(t, &k, "name")?.unwrap_or_else(|| format!("{kind} {value}")),
                when: format!("{kind} {value}"),
                tz: self.opt_str(t, &k, "tz")?,
                job,
            };
            if let Err(e) = spec.compile() {
                let bad_key = if e.contains("time zone") { "tz" } else { kind };
                let found = t.get(bad_key).cloned().unwrap_or(toml::Value::String(value.clone()));
                return Err(self.invalid(&format!("{k}.{bad_key}"), &e, &found));
            }
            if out.iter().any(|o| o.name == spec.name) {
                return Err(self.invalid(
                    &format!("{k}.name"),
                    "a name no other schedule of the pair has",
                    &toml::Value::String(spec.name),
                ));
            }
            out.push(spec);
        }
        Ok(out)
    }

    fn bandwidth(&self, v: &toml::Value, key: &str) -> Result<Bandwidth, ConfigError> {
        let t = v.as_table().ok_or_else(|| self.invalid(key, "a table", v))?;
        self.known(t, key, &["left_to_right", "right_to_left", "window"])?;
        let mut b = Bandwidth {
            left_to_right: self.opt_rate(t, key, "left_to_right")?,
            right_to_left: self.opt_rate(t, key, "right_to_left")?,
            windows: Vec::new(),
        };
        if let Some(v) = t.get("window") {
            let wkey = format!("{key}.window");
            let arr = v
                .as_array()
                .ok_or_else(|| self.invalid(&wkey, "an array of tables ([[bandwidth.window]])", v))?;
            for (i, item) in arr.iter().enumerate() {
                let k = format!("{wkey}[{i}]");
                let wt = item.as_table().ok_or_else(|| self.invalid(&k, "a table", item))?;
                self.known(wt, &k, &["from", "to", "left_to_right", "right_to_left"])?;
                let time = |name: &str| -> Result<u32, ConfigError> {
                    let s = self.req_str(wt, &k, name)?;
                    parse_hhmm(&s)
                        .ok_or_else(|| self.invalid(&format!("{k}.{name}"), "a time of day like \"08:00\"", &toml::Value::String(s)))
                };
                b.windows.push(BandwidthWindow {
                    from_min: time("from")?,
                    to_min: time("to")?,
                    left_to_right: self.opt_rate(wt, &k, "left_to_right")?,
                    right_to_left: self.opt_rate(wt, &k, "right_to_left")?,
                });
            }
        }
        Ok(b)
    }

    /// A rate: bytes per second (integer or "10 MB", "10 MB/s"); 0 or "unlimited" is no limit.
    fn opt_rate(&self, t: &toml::Table, prefix: &str, key: &str) -> Result<Option<u64>, ConfigError> {
        let expected = "bytes per second: an integer, or a string like \"10 MB\" or \"unlimited\"";
        match t.get(key) {
            None => Ok(None),
            Some(toml::Value::Integer(0)) => Ok(None),
            Some(toml::Value::Integer(i)) if *i > 0 => Ok(Some(*i as u64)),
            Some(v @ toml::Value::String(s)) => {
                let s = s.trim();
                if s == "unlimited" {
                    return Ok(None);
                }
                match parse_size(s.strip_suffix("/s").unwrap_or(s)) {
                    Some(0) => Ok(None),
                    Some(n) => Ok(Some(n)),
                    None => Err(self.invalid(&join_key(prefix, key), expected, v)),
                }
            }
            Some(v) => Err(self.invalid(&join_key(prefix, key), expected, v)),
        }
    }

    fn email(&self, v: &toml::Value) -> Result<EmailConfig, ConfigError> {
        let t = v.as_table().ok_or_else(|| self.invalid("email", "a table", v))?;
        let p = "email";
        self.known(
            t,
            p,
            &[
                "host",
                "port",
                "security",
                "username",
                "password_env",
                "password_file",
                "password",
                "from",
                "to",
                "subject_prefix",
                "granularity",
            ],
        )?;
        if let Some(v) = t.get("password") {
            return Err(self.invalid(
                "email.password",
                "no clear password in the file: use password_env or password_file",
                v,
            ));
        }
        let security = match t.get("security") {
            None => SmtpSecurity::Starttls,
            Some(v) => match v.as_str() {
                Some("none") => SmtpSecurity::None,
                Some("starttls") => SmtpSecurity::Starttls,
                Some("tls") => SmtpSecurity::Tls,
                _ => return Err(self.invalid("email.security", "one of \"none\", \"starttls\", \"tls\"", v)),
            },
        };
        let one = |key: &str, v: &toml::Value| match v.as_str() {
            Some("per-conflict") => Ok(MailGranularity::PerConflict),
            Some("summary") => Ok(MailGranularity::Summary),
            Some("digest") => Ok(MailGranularity::Digest),
            _ => Err(self.invalid(key, "one of \"per-conflict\", \"summary\", \"digest\" (or an array of them)", v)),
        };
        let granularity = match t.get("granularity") {
            None => vec![MailGranularity::PerConflict],
            Some(toml::Value::Array(a)) if !a.is_empty() => a
                .iter()
                .enumerate()
                .map(|(i, v)| one(&format!("email.granularity[{i}]"), v))
                .collect::<Result<Vec<_>, _>>()?,
            Some(v) => vec![one("email.granularity", v)?],
        };
        let to = match t.get("to") {
            None => Vec::new(),
            Some(v) => {
                let arr = v.as_array().ok_or_else(|| self.invalid("email.to", "an array of addresses", v))?;
                let mut out = Vec::new();
                for (i, a) in arr.iter().enumerate() {
                    out.push(self.mailbox(&format!("email.to[{i}]"), a)?);
                }
                out
            }
        };
        let from = match t.get("from") {
            Some(v) => self.mailbox("email.from", v)?,
            None => self.req_str(t, p, "from")?,
        };
        Ok(EmailConfig {
            host: self.req_str(t, p, "host")?,
            port: self.opt_int(t, p, "port", 1, 65535)?.unwrap_or(587) as u16,
            security,
            username: self.opt_str(t, p, "username")?,
            password_env: self.opt_str(t, p, "password_env")?,
            password_file: self.opt_str(t, p, "password_file")?.map(PathBuf::from),
            from,
            to,
            subject_prefix: self.opt_str(t, p, "subject_prefix")?.unwrap_or_else(|| "[Tandem]".into()),
            granularity,
        })
    }
}

impl Walker<'_> {
    fn desktop(&self, v: &toml::Value) -> Result<DesktopConfig, ConfigError> {
        let t = v.as_table().ok_or_else(|| self.invalid("desktop", "a table", v))?;
        let p = "desktop";
        self.known(t, p, &["toasts", "summary_after", "autostart"])?;
        let mut d = DesktopConfig::default();
        if let Some(v) = t.get("toasts") {
            let expected = "an array of \"conflicts\", \"guard\", \"errors\", \"summary\" (empty: no toasts)";
            let arr = v.as_array().ok_or_else(|| self.invalid("desktop.toasts", expected, v))?;
            d.toasts = Vec::new();
            for (i, k) in arr.iter().enumerate() {
                let kind = match k.as_str() {
                    Some("conflicts") => ToastKind::Conflicts,
                    Some("guard") => ToastKind::Guard,
                    Some("errors") => ToastKind::Errors,
                    Some("summary") => ToastKind::Summary,
                    _ => return Err(self.invalid(&format!("desktop.toasts[{i}]"), expected, k)),
                };
                if !d.toasts.contains(&kind) {
                    d.toasts.push(kind);
                }
            }
        }
        if let Some(ms) = self.opt_duration(t, p, "summary_after", 0, 86_400_000)? {
            d.summary_after_ms = ms;
        }
        if let Some(b) = self.opt_bool(t, p, "autostart")? {
            d.autostart = b;
        }
        Ok(d)
    }
}

impl Walker<'_> {
    /// An address the mailer can use, as lettre parses it when sending (`notify::send`):
    /// `name@example.com` or `Name <name@example.com>` (any domain: `admin@localhost` too).
    fn mailbox(&self, key: &str, v: &toml::Value) -> Result<String, ConfigError> {
        const EXPECTED: &str = "an e-mail address, like \"name@example.com\" or \"Name <name@example.com>\"";
        let Some(s) = v.as_str() else {
            return Err(self.invalid(key, EXPECTED, v));
        };
        if s.chars().any(char::is_control) {
            return Err(self.invalid(key, &format!("{EXPECTED} (without control characters)"), v));
        }
        match s.parse::<lettre::message::Mailbox>() {
            Ok(_) => Ok(s.to_string()),
            Err(e) => Err(self.invalid(key, &format!("{EXPECTED} ({e})"), v)),
        }
    }
}

/// Remove a schedule from the config file, keeping everything else (comments included).
/// A pair's own `[[pair.schedule]]` is looked at first, then the global `[[schedule]]`
/// list (which every pair without its own inherits). The result is validated before it
/// replaces the file (written to a temporary file, flushed, renamed). Returns where it was.
pub fn remove_schedule(file: &Path, pair: &str, name: &str) -> Result<String, ConfigError> {
    let text = std::fs::read_to_string(file).map_err(|source| ConfigError::Read {
        file: file.to_path_buf(),
        source,
    })?;
    let cfg = Config::parse(file, &text)?;
    if cfg.pair(pair).is_none() {
        return Err(ConfigError::Invalid {
            file: file.into(),
            key: "pair".into(),
            expected: format!("a pair named {pair:?}"),
            found: "no such pair".into(),
        });
    }
    let mut doc: toml_edit::DocumentMut = text.parse().map_err(|e: toml_edit::TomlError| ConfigError::Syntax {
        file: file.into(),
        message: e.to_string(),
    })?;
    let entry_name = |t: &toml_edit::Table| -> Option<String> {
        if let Some(n) = t.get("name").and_then(|v| v.as_str()) {
            return Some(n.to_string());
        }
        ["every", "cron", "daily", "weekly", "monthly"]
            .iter()
            .find_map(|k| t.get(k).and_then(|v| v.as_str()).map(|v| format!("{k} {v}")))
    };
    let remove_from = |arr: &mut toml_edit::ArrayOfTables| -> bool {
        match (0..arr.len()).find(|&i| arr.get(i).and_then(entry_name).as_deref() == Some(name)) {
            Some(i) => {
                arr.remove(i);
                true
            }
            None => false,
        }
    };
    let mut where_ = None;
    if let Some(pairs) = doc.get_mut("pair").and_then(|v| v.as_array_of_tables_mut()) {
        for t in pairs.iter_mut() {
            if t.get("name").and_then(|v| v.as_str()) == Some(pair) {
                if let Some(arr) = t.get_mut("schedule").and_then(|v| v.as_array_of_tables_mut()) {
                    if remove_from(arr) {
                        where_ = Some(format!("removed from pair {pair}'s schedules"));
                    } else {
                        // The pair has its own list: the global one does not apply to it.
                        where_ = Some(String::new());
                    }
                }
            }
        }
    }
    if where_.is_none() {
        if let Some(arr) = doc.get_mut("schedule").and_then(|v| v.as_array_of_tables_mut()) {
            if remove_from(arr) {
                where_ = Some("removed from the global [[schedule]] list (every pair without schedules of its own had it)".into());
            }
        }
    }
    let Some(where_) = where_.filter(|w| !w.is_empty()) else {
        return Err(ConfigError::Invalid {
            file: file.into(),
            key: format!("schedule {name:?}"),
            expected: format!("a schedule of pair {pair}"),
            found: "no such schedule".into(),
        });
    };
    let new_text = doc.to_string();
    write_atomic(file, &new_text)?;
    Ok(where_)
}

/// Replace the config file with `text` (validated first): a temporary file next to it,
/// flushed, renamed over it.
pub fn write_atomic(file: &Path, text: &str) -> Result<Config, ConfigError> {
    let cfg = Config::parse(file, text)?;
    let tmp = file.with_extension(format!("tmp{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, file)
    };
    write().map_err(|source| {
        let _ = std::fs::remove_file(&tmp);
        ConfigError::Read { file: file.into(), source }
    })?;
    Ok(cfg)
}

/// Apply edits to a config text, keeping its comments and layout: each edit names a key as
/// a dotted path (`max_delete_percent`, `conflicts.r1`, `email.host`, `pair.NAME.concurrency`,
/// `pair.NAME.bandwidth.left_to_right`) and gives a JSON value (string, number, boolean,
/// array of those; null removes the key). The result is validated.
pub fn edit_text(file: &Path, text: &str, edits: &[(String, serde_json::Value)]) -> Result<String, ConfigError> {
    let mut doc: toml_edit::DocumentMut = text.parse().map_err(|e: toml_edit::TomlError| ConfigError::Syntax {
        file: file.into(),
        message: e.to_string(),
    })?;
    let bad = |key: &str, expected: &str| ConfigError::Invalid {
        file: file.into(),
        key: key.into(),
        expected: expected.into(),
        found: "something else".into(),
    };
    for (key, value) in edits {
        let parts: Vec<&str> = key.split('.').collect();
        if parts.iter().any(|p| p.is_empty()) {
            return Err(bad(key, "a dotted key like \"pair.NAME.concurrency\""));
        }
        // `pair.NAME`: a whole pair. An object adds the pair (or sets its keys; null
        // removes one), null removes the pair.
        if parts[0] == "pair" && parts.len() == 2 {
            upsert_pair(&mut doc, parts[1], value).map_err(|expected| bad(key, expected))?;
            continue;
        }
        let (mut table, rest): (&mut toml_edit::Table, &[&str]) = if parts[0] == "pair" {
            if parts.len() < 3 {
                return Err(bad(key, "pair.NAME.KEY"));
            }
            let pairs = doc
                .get_mut("pair")
                .and_then(|v| v.as_array_of_tables_mut())
                .ok_or_else(|| bad(key, "a configured pair"))?;
            let t = pairs
                .iter_mut()
                .find(|t| t.get("name").and_then(|v| v.as_str()) == Some(parts[1]))
                .ok_or_else(|| bad(key, &format!("a pair named {:?}", parts[1])))?;
            (t, &parts[2..])
        } else {
            (doc.as_table_mut(), &parts[..])
        };
        for (i, part) in rest.iter().enumerate() {
            if i + 1 == rest.len() {
                if value.is_null() {
                    table.remove(part);
                } else if let Some(aot) = json_to_tables(value) {
                    // `schedule`, `bandwidth.window`: an array of tables, replaced whole.
                    replace_tables(table, part, aot);
                } else {
                    let mut v = json_to_toml(value).ok_or_else(|| bad(key, "a string, number, boolean or array"))?;
                    // Keep the key and its value's comments where the key was there already.
                    match table.get_mut(part).and_then(|i| i.as_value_mut()) {
                        Some(old) => {
                            *v.decor_mut() = old.decor().clone();
                            *old = v;
                        }
                        None => {
                            table.insert(part, toml_edit::Item::Value(v));
                        }
                    }
                }
                break;
            }
            let item = table.entry(part).or_insert_with(|| {
                let mut t = toml_edit::Table::new();
                t.set_implicit(true);
                toml_edit::Item::Table(t)
            });
            table = item.as_table_mut().ok_or_else(|| bad(key, &format!("{part} to be a table")))?;
        }
    }
    let out = doc.to_string();
    Config::parse(file, &out)?;
    Ok(out)
}

/// An array of JSON objects as an array of TOML tables (`[[schedule]]`); `None` for anything
/// else. An empty array is not taken for one: it stays a value.
fn json_to_tables(v: &serde_json::Value) -> Option<toml_edit::ArrayOfTables> {
    let arr = v.as_array().filter(|a| !a.is_empty() && a.iter().all(|x| x.is_object()))?;
    let mut aot = toml_edit::ArrayOfTables::new();
    for obj in arr {
        let mut t = toml_edit::Table::new();
        for (k, x) in obj.as_object()? {
            if !x.is_null() {
                t.insert(k, toml_edit::Item::Value(json_to_toml(x)?));
            }
        }
        aot.push(t);
    }
    Some(aot)
}

/// Put an array of tables in place of `key`, keeping the comment above the first old one.
fn replace_tables(table: &mut toml_edit::Table, key: &str, mut aot: toml_edit::ArrayOfTables) {
    let decor = table
        .get(key)
        .and_then(|i| i.as_array_of_tables())
        .and_then(|old| old.get(0))
        .map(|t| t.decor().clone());
    if let (Some(d), Some(first)) = (decor, aot.get_mut(0)) {
        *first.decor_mut() = d;
    }
    table.insert(key, toml_edit::Item::ArrayOfTables(aot));
}

fn upsert_pair(doc: &mut toml_edit::DocumentMut, name: &str, value: &serde_json::Value) -> Result<(), &'static str> {
    let expected = "a pair as an object of its keys (name, left, right, options), or null to remove it";
    if !doc.contains_key("pair") {
        doc.insert("pair", toml_edit::Item::ArrayOfTables(toml_edit::ArrayOfTables::new()));
    }
    let pairs = doc
        .get_mut("pair")
        .and_then(|v| v.as_array_of_tables_mut())
        .ok_or("pairs as [[pair]] tables")?;
    let at = pairs.iter().position(|t| t.get("name").and_then(|v| v.as_str()) == Some(name));
    let obj = match value {
        serde_json::Value::Null => {
            match at {
                Some(i) => pairs.remove(i),
                None => return Err("a configured pair"),
            }
            return Ok(());
        }
        serde_json::Value::Object(o) => o,
        _ => return Err(expected),
    };
    let i = match at {
        Some(i) => i,
        None => {
            let mut t = toml_edit::Table::new();
            t.insert("name", toml_edit::value(name));
            pairs.push(t);
            pairs.len() - 1
        }
    };
    let t = pairs.get_mut(i).ok_or(expected)?;
    for (k, x) in obj {
        if k == "name" {
            continue;
        }
        if x.is_null() {
            t.remove(k);
        } else if let Some(aot) = json_to_tables(x) {
            replace_tables(t, k, aot);
        } else {
            let mut v = json_to_toml(x).ok_or(expected)?;
            if let Some(old) = t.get(k).and_then(|i| i.as_value()) {
                *v.decor_mut() = old.decor().clone();
            }
            t.insert(k, toml_edit::Item::Value(v));
        }
    }
    Ok(())
}

fn json_to_toml(v: &serde_json::Value) -> Option<toml_edit::Value> {
    Some(match v {
        serde_json::Value::String(s) => s.as_str().into(),
        serde_json::Value::Bool(b) => (*b).into(),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => i.into(),
            None => n.as_f64()?.into(),
        },
        serde_json::Value::Array(a) => {
            let mut arr = toml_edit::Array::new();
            for x in a {
                arr.push(json_to_toml(x)?);
            }
            toml_edit::Value::Array(arr)
        }
        _ => return None,
    })
}

fn show_ms(ms: u64) -> String {
    if ms >= 3_600_000 && ms.is_multiple_of(3_600_000) {
        format!("{}h", ms / 3_600_000)
    } else if ms >= 1000 && ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// "08:00" -> minutes after midnight.
fn parse_hhmm(s: &str) -> Option<u32> {
    let (h, m) = s.trim().split_once(':')?;
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60 || h == 24 && m == 0).then_some(h * 60 + m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("/etc/tandem.toml"), s)
    }

    #[test]
    fn full_config_parses() {
        let c = parse(
            r#"
max_delete_percent = 30
soft_delete_max_bytes = "10 MB"
ignore = ["*.bak", "build/out/*"]
[conflicts]
r1 = "newer-wins"
[[pair]]
name = "pdrive"
left = "/srv/l"
right = "/mnt/r"
concurrency = 8
[pair.conflicts]
r13 = "manual"
[email]
host = "smtp.example.com"
from = "sync@example.com"
to = ["a@example.com"]
password_env = "X"
"#,
        )
        .unwrap();
        let p = &c.pairs[0];
        assert_eq!(p.options.max_delete_percent, 30);
        assert_eq!(p.options.soft_delete_max_bytes, 10 << 20);
        assert_eq!(p.options.concurrency, 8);
        assert_eq!(p.options.rules.r1, ClashOption::NewerWins);
        assert_eq!(p.options.rules.r13, PropsOption::Manual);
        assert_eq!(c.email.unwrap().port, 587);
    }

    #[test]
    fn edits_keep_comments_and_are_validated() {
        let f = Path::new("/etc/tandem.toml");
        let text =
            "# top comment\nmax_delete_percent = 50 # guard\n\n[[pair]]\nname = \"docs\" # the share\nleft = \"/a\"\nright = \"/b\"\n";
        let edits = vec![
            ("max_delete_percent".to_string(), serde_json::json!(30)),
            ("conflicts.r1".to_string(), serde_json::json!("manual")),
            ("pair.docs.concurrency".to_string(), serde_json::json!(8)),
            ("pair.docs.bandwidth.left_to_right".to_string(), serde_json::json!("5 MB")),
            ("ignore".to_string(), serde_json::json!(["*.bak", "tmp/*"])),
        ];
        let out = edit_text(f, text, &edits).unwrap();
        assert!(
            out.contains("# top comment") && out.contains("# guard") && out.contains("# the share"),
            "{out}"
        );
        let c = Config::parse(f, &out).unwrap();
        assert_eq!(c.defaults.max_delete_percent, 30);
        assert_eq!(c.defaults.rules.r1, ClashOption::Manual);
        let p = &c.pairs[0].options;
        assert_eq!((p.concurrency, p.bandwidth.left_to_right), (8, Some(5 << 20)));
        assert!(p.ignore.contains(&"tmp/*".to_string()));
        // null removes; a bad value is refused naming the key, and nothing is half applied.
        let out2 = edit_text(f, &out, &[("pair.docs.concurrency".into(), serde_json::Value::Null)]).unwrap();
        assert_eq!(Config::parse(f, &out2).unwrap().pairs[0].options.concurrency, 4);
        let e = edit_text(f, &out, &[("max_delete_percent".into(), serde_json::json!(500))]).unwrap_err();
        assert_eq!(e.key(), Some("max_delete_percent"));
        let e = edit_text(f, &out, &[("pair.nope.concurrency".into(), serde_json::json!(2))]).unwrap_err();
        assert!(e.to_string().contains("a pair named \"nope\""), "{e}");
    }

    #[test]
    fn edits_add_and_remove_pairs_and_replace_arrays_of_tables() {
        let f = Path::new("/etc/tandem.toml");
        let text = "# mine\n[[schedule]]\nevery = \"1h\"\n\n[[pair]]\nname = \"docs\" # keep\nleft = \"/a\"\nright = \"/b\"\n";
        let edits = vec![
            (
                "pair.photos".to_string(),
                serde_json::json!({"left": "/p", "right": "/q", "watch": "poll", "schedule": [{"daily": "02:00", "tz": "UTC"}]}),
            ),
            (
                "schedule".to_string(),
                serde_json::json!([{"name": "n", "cron": "0 3 * * *"}, {"every": "15m"}]),
            ),
            (
                "bandwidth.window".to_string(),
                serde_json::json!([{"from": "08:00", "to": "18:00", "left_to_right": "1 MB"}]),
            ),
            ("pair.docs.left".to_string(), serde_json::json!("/c")),
        ];
        let out = edit_text(f, text, &edits).unwrap();
        assert!(out.contains("# mine") && out.contains("# keep"), "{out}");
        let c = Config::parse(f, &out).unwrap();
        assert_eq!(c.pairs.len(), 2);
        assert_eq!(c.pairs[0].left, Path::new("/c"));
        assert_eq!(c.pairs[1].name, "photos");
        assert_eq!(c.pairs[1].options.watch, WatchMode::Poll);
        assert_eq!(c.pairs[1].options.schedules.len(), 1);
        assert_eq!(c.defaults.schedules.len(), 2);
        assert_eq!(c.defaults.bandwidth.windows[0].left_to_right, Some(1 << 20));
        let out = edit_text(
            f,
            &out,
            &[
                ("pair.docs".into(), serde_json::Value::Null),
                ("schedule".into(), serde_json::Value::Null),
            ],
        )
        .unwrap();
        let c = Config::parse(f, &out).unwrap();
        assert_eq!(
            (c.pairs.len(), c.pairs[0].name.as_str(), c.defaults.schedules.len()),
            (1, "photos", 0)
        );
        let e = edit_text(f, &out, &[("pair.ghost".into(), serde_json::Value::Null)]).unwrap_err();
        assert_eq!(e.key(), Some("pair.ghost"));
        // A new pair without folders is refused, naming what is missing.
        let e = edit_text(f, &out, &[("pair.half".into(), serde_json::json!({"left": "/x"}))]).unwrap_err();
        assert!(e.to_string().contains("right"), "{e}");
    }

    #[test]
    fn regression_a_config_file_named_without_a_folder_gave_relative_roots_the_watcher_could_not_match() {
        let text = "[[pair]]\nname = \"a\"\nleft = \"l\"\nright = \"sub/r\"\n";
        let c = Config::parse(Path::new("tandem.toml"), text).unwrap();
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(c.pairs[0].left, cwd.join("l"));
        assert_eq!(c.pairs[0].right, cwd.join("sub/r"));
    }

    #[test]
    fn remove_schedule_keeps_comments_and_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("t.toml");
        let text = "# my sync\n[[schedule]]\nname = \"hourly\"\nevery = \"1h\" # all pairs\n\n[[pair]]\nname = \"a\"\nleft = \"/a\"\nright = \"/b\"\n\n[[pair.schedule]]\ndaily = \"02:00\" # nightly\n\n[[pair.schedule]]\nname = \"weekly\"\nweekly = \"SUN 03:00\"\n\n[[pair]]\nname = \"b\"\nleft = \"/c\"\nright = \"/d\"\n";
        std::fs::write(&f, text).unwrap();
        // A pair's own schedule, by its default name.
        assert!(remove_schedule(&f, "a", "daily 02:00").unwrap().contains("pair a"));
        let c = Config::load(&f).unwrap();
        let names = |p: &str| {
            c.pair(p)
                .unwrap()
                .options
                .schedules
                .iter()
                .map(|s| s.name.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(names("a"), ["weekly"]);
        assert_eq!(names("b"), ["hourly"]);
        let now = std::fs::read_to_string(&f).unwrap();
        assert!(
            now.contains("# my sync") && now.contains("# all pairs") && !now.contains("# nightly"),
            "{now}"
        );
        // Pair a has its own list: the global one is not its to remove.
        assert!(remove_schedule(&f, "a", "hourly")
            .unwrap_err()
            .to_string()
            .contains("no such schedule"));
        assert!(remove_schedule(&f, "b", "hourly").unwrap().contains("global"));
        assert!(Config::load(&f).unwrap().pair("b").unwrap().options.schedules.is_empty());
        assert!(remove_schedule(&f, "zz", "x").unwrap_err().to_string().contains("no such pair"));
    }

    #[test]
    fn service_keys_parse_globally_and_per_pair() {
        let c = parse(
            r#"
listen = "127.0.0.1:7701"
debounce = "200ms"
max_wait = "5s"
poll_interval = "1m"
reconcile_every = "2h"
large_file = "100 MB"
large_workers = 2
watch = "poll"
[bandwidth]
left_to_right = "10 MB/s"
[[bandwidth.window]]
from = "08:00"
to = "18:00"
left_to_right = "1 MB"
right_to_left = 500000

[[pair]]
name = "nightly"
left = "/a"
right = "/b"
watch = "off"
[pair.bandwidth]
right_to_left = "unlimited"
"#,
        )
        .unwrap();
        assert_eq!(c.listen, Some("127.0.0.1:7701".parse().unwrap()));
        let d = &c.defaults;
        assert_eq!(
            (d.debounce_ms, d.max_wait_ms, d.poll_interval_s, d.reconcile_every_s),
            (200, 5000, 60, 7200)
        );
        assert_eq!((d.large_file_bytes, d.large_workers, d.watch), (100 << 20, 2, WatchMode::Poll));
        assert_eq!(d.bandwidth.left_to_right, Some(10 << 20));
        assert_eq!(d.bandwidth.windows[0].from_min, 480);
        assert_eq!(d.bandwidth.windows[0].right_to_left, Some(500_000));
        let p = &c.pairs[0].options;
        assert_eq!(p.watch, WatchMode::Off);
        assert_eq!(p.debounce_ms, 200, "inherited");
        // A pair's [pair.bandwidth] table replaces the global one.
        assert_eq!(p.bandwidth.left_to_right, None);
        assert!(p.bandwidth.is_unlimited());
    }

    #[test]
    fn errors_name_file_key_and_expectation() {
        let cases = [
            ("max_delete_percent = \"x\"", "max_delete_percent", "an integer from 0 to 100"),
            ("[[pair]]\nname='a'\nleft='/a'", "pair[0].right", "a string"),
            (
                "[[pair]]\nname='a'\nleft='/a'\nright='/b'\n[pair.conflicts]\nr1='maybe'",
                "pair[0].conflicts.r1",
                "one of",
            ),
            ("colour = 1", "colour", "known keys"),
            (
                "[email]\nhost='h'\nfrom='a@b.c'\npassword='secret'",
                "email.password",
                "password_env",
            ),
            ("[[pair]]\nname='a'\nleft='/a'\nright='/a/b'", "pair[0].right", "neither contains"),
            ("ignore = ['a[']", "ignore[0]", "glob"),
            ("debounce = '5 weeks'", "debounce", "a duration from 0ms to 60s"),
            ("poll_interval = 10", "poll_interval", "a duration from 1s"),
            ("watch = 'sometimes'", "watch", "\"auto\", \"poll\", \"off\""),
            ("listen = '0.0.0.0:7700'", "listen", "loopback"),
            ("[bandwidth]\nleft_to_right = 'fast'", "bandwidth.left_to_right", "bytes per second"),
            (
                "[[bandwidth.window]]\nfrom = '8h'\nto = '18:00'",
                "bandwidth.window[0].from",
                "a time of day",
            ),
            (
                "[[pair]]\nname='a'\nleft='/a'\nright='/b'\n[pair.bandwidth]\nup = 1",
                "pair[0].bandwidth.up",
                "known keys",
            ),
            ("[[schedule]]\ndaily = '25:00'", "schedule[0].daily", "time of day"),
            ("[[schedule]]\ndaily = '02:00'\ncron = '0 2 * * *'", "schedule[0]", "exactly one of"),
            ("[[schedule]]\ncron = '0 2 * *'", "schedule[0].cron", "5 fields"),
            (
                "[[schedule]]\nweekly = 'MON 02:00'\ntz = 'Nowhere/City'",
                "schedule[0].tz",
                "time zone",
            ),
            ("[[schedule]]\nevery = '1h'\nrun = 'backup'", "schedule[0].run", "\"reconcile\""),
        ];
        for (text, key, expected) in cases {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.starts_with("/etc/tandem.toml: "), "{e}");
            assert!(e.contains(&format!("`{key}`")), "{text}: {e}");
            assert!(e.contains(expected), "{text}: {e}");
        }
        let e = parse("a = [").unwrap_err().to_string();
        assert!(e.contains("/etc/tandem.toml: not valid TOML"), "{e}");
    }

    #[test]
    fn default_ignores_match() {
        let ig = Ignore::new(&[], true).unwrap();
        for n in [
            "~$Budget.xlsx",
            "x.tmp",
            "notes.txt~",
            ".DS_Store",
            "thumbs.db",
            "Desktop.ini",
            "a.swp",
            ".tandem-1.tmp",
        ] {
            assert!(ig.is_ignored(&format!("d/{n}"), n), "{n}");
        }
        assert!(ig.is_ignored(".sync_trash", ".sync_trash"));
        assert!(!ig.is_ignored("d/.sync_trash", ".sync_trash"));
        assert!(!ig.is_ignored("Budget.xlsx", "Budget.xlsx"));
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("20 MB"), Some(20 << 20));
        assert_eq!(parse_size("1.5GiB"), Some(3 << 29));
        assert_eq!(parse_size("12"), Some(12));
        assert_eq!(parse_size("12 parsecs"), None);
    }
}
