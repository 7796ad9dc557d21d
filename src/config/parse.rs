//! Reading the configuration's TOML into the types of `config`, one named step per part of
//! the file (globals, defaults, pairs, `[email]`, `[desktop]`). Every error names the file,
//! the key, what was expected and what was found. Must not touch: the disk (it is given the
//! text), the file's layout (that is `edit`).

use super::{
    glob, parse_duration_ms, parse_size, Bandwidth, BandwidthWindow, ClashOption, Config, ConfigError, DesktopConfig, EmailConfig,
    MailGranularity, PairConfig, PropsOption, Rules, SmtpSecurity, SyncOptions, ToastKind, WatchMode,
};
use crate::model::schedule::{Job, ScheduleField, ScheduleSpec};
use crate::side::remote::RemoteOptions;
use std::path::{Path, PathBuf};

/// The keys of the top level. Those from `PAIR_OPTIONS_FROM` on are sync options, which a
/// `[[pair]]` may set too.
const KNOWN_TOP: [&str; 28] = [
    "state",
    "listen",
    "log_dir",
    "pair",
    "email",
    "desktop",
    "conflicts",
    "watch",
    "watch_left",
    "watch_right",
    "debounce",
    "max_wait",
    "poll_interval",
    "reconcile_every",
    "large_file",
    "large_workers",
    "bandwidth",
    "remote",
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
const PAIR_OPTIONS_FROM: usize = 6;

const EMAIL_KEYS: [&str; 12] = [
    "host",
    "port",
    "security",
    "username",
    "password_env",
    "password_file",
    "keyring",
    "password",
    "from",
    "to",
    "subject_prefix",
    "granularity",
];

/// The whole file: `Config::parse`.
pub(super) fn config(file: &Path, text: &str) -> Result<Config, ConfigError> {
    let table = syntax(file, text)?;
    let base_dir = base_dir(file);
    let base_dir = base_dir.as_path();
    let w = Walker { file };
    w.known(&table, "", &KNOWN_TOP)?;
    let defaults = w.options(&table, "", &SyncOptions::default())?;
    let state = w.opt_str(&table, "", "state")?.map(|s| resolve(base_dir, &s));
    let log_dir = w.opt_str(&table, "", "log_dir")?.map(|s| resolve(base_dir, &s));
    let listen = w.listen(&table)?;
    let pairs = w.pairs(&table, base_dir, &defaults)?;
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

fn syntax(file: &Path, text: &str) -> Result<toml::Table, ConfigError> {
    text.parse().map_err(|e: toml::de::Error| ConfigError::Syntax {
        file: file.to_path_buf(),
        message: e.to_string().trim().replace('\n', " "),
    })
}

/// Relative folders are relative to the config file's folder, made absolute here: a
/// relative root would reach the watcher and the executor as a relative path and depend on
/// the working directory.
fn base_dir(file: &Path) -> PathBuf {
    let parent = file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::path::absolute(parent).unwrap_or_else(|_| parent.to_path_buf())
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

fn join_key(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
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

/// Walks the parsed TOML of one file, turning what it finds into values or into errors
/// that name the file.
struct Walker<'a> {
    file: &'a Path,
}

/// Plain values: strings, integers, booleans, sizes, durations, rates.
impl Walker<'_> {
    fn invalid(&self, key: &str, expected: &str, found: &toml::Value) -> ConfigError {
        ConfigError::Invalid {
            file: self.file.to_path_buf(),
            key: key.to_string(),
            expected: expected.to_string(),
            found: describe(found),
        }
    }

    /// A secret written into the file: refused, and never repeated in the message.
    fn secret_in_file(&self, key: &str, expected: &str) -> ConfigError {
        ConfigError::Invalid {
            file: self.file.to_path_buf(),
            key: key.to_string(),
            expected: expected.to_string(),
            found: "a secret (not shown)".into(),
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
}

/// The top level's own keys and the `[[pair]]` tables.
impl Walker<'_> {
    fn listen(&self, table: &toml::Table) -> Result<Option<std::net::SocketAddr>, ConfigError> {
        let Some(v) = table.get("listen") else {
            return Ok(None);
        };
        let expected = "a loopback address with a port, like \"127.0.0.1:7700\"";
        let a: std::net::SocketAddr = v
            .as_str()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| self.invalid("listen", expected, v))?;
        if !a.ip().is_loopback() {
            return Err(self.invalid("listen", expected, v));
        }
        Ok(Some(a))
    }

    fn pairs(&self, table: &toml::Table, base_dir: &Path, defaults: &SyncOptions) -> Result<Vec<PairConfig>, ConfigError> {
        let mut pairs = Vec::new();
        let Some(v) = table.get("pair") else {
            return Ok(pairs);
        };
        let arr = v
            .as_array()
            .ok_or_else(|| self.invalid("pair", "an array of tables ([[pair]])", v))?;
        let mut known_pair = vec!["name", "left", "right"];
        known_pair.extend(&KNOWN_TOP[PAIR_OPTIONS_FROM..]);
        for (i, item) in arr.iter().enumerate() {
            let key = format!("pair[{i}]");
            let t = item.as_table().ok_or_else(|| self.invalid(&key, "a table", item))?;
            self.known(t, &key, &known_pair)?;
            let name = self.pair_name(t, &key, &pairs)?;
            let (left, right) = self.pair_roots(t, &key, base_dir)?;
            let options = self.options(t, &key, defaults)?;
            pairs.push(PairConfig {
                name,
                left,
                right,
                options,
            });
        }
        Ok(pairs)
    }

    /// A pair's name: not empty, without '/', not used by an earlier pair.
    fn pair_name(&self, t: &toml::Table, key: &str, earlier: &[PairConfig]) -> Result<String, ConfigError> {
        let name = self.req_str(t, key, "name")?;
        if name.is_empty() || name.chars().any(|c| c.is_control() || c == '/') {
            return Err(self.invalid(&format!("{key}.name"), "a non-empty name without '/'", &toml::Value::String(name)));
        }
        if earlier.iter().any(|p| p.name == name) {
            return Err(self.invalid(
                &format!("{key}.name"),
                "a name not used by another pair",
                &toml::Value::String(name),
            ));
        }
        Ok(name)
    }

    /// A pair's `left` or `right`: a folder (made absolute) or a server's URL (as written,
    /// checked: `s3://BUCKET/PREFIX`, `webdav://[USER@]HOST/PATH`).
    fn location(&self, t: &toml::Table, key: &str, side: &str, base_dir: &Path) -> Result<PathBuf, ConfigError> {
        let s = self.req_str(t, key, side)?;
        if !crate::side::remote::is_remote(Path::new(&s)) {
            return Ok(resolve(base_dir, &s));
        }
        match crate::side::remote::parse_location(Path::new(&s)) {
            Ok(_) => Ok(PathBuf::from(s)),
            Err(e) => Err(self.invalid(
                &format!("{key}.{side}"),
                &format!("a folder or a URL s3://BUCKET/PREFIX or webdav://[USER@]HOST/PATH ({e})"),
                &toml::Value::String(s.replace(|c: char| c.is_control(), "")),
            )),
        }
    }

    /// A `[remote]` table: how a pair's `s3://` or `webdav://` side is reached. Never the
    /// secret itself: at most one of `keyring` (an entry in the OS credential store),
    /// `secret_file` (owner-only) or `secret_env` names where it is.
    fn remote(&self, v: &toml::Value, key: &str) -> Result<RemoteOptions, ConfigError> {
        let t = v.as_table().ok_or_else(|| self.invalid(key, "a table", v))?;
        for secret in ["secret", "password", "secret_key", "secret_access_key"] {
            if t.contains_key(secret) {
                return Err(self.secret_in_file(
                    &join_key(key, secret),
                    "no secret in the file: use keyring (an entry in the OS keyring: `tandem secret set NAME`), secret_file (a file only its owner can read) or secret_env",
                ));
            }
        }
        self.known(
            t,
            key,
            &[
                "endpoint",
                "region",
                "user",
                "secret_file",
                "secret_env",
                "password_file",
                "password_env",
                "keyring",
            ],
        )?;
        self.one_secret_source(
            t,
            key,
            &["secret_file", "password_file", "secret_env", "password_env", "keyring"],
            "keyring, secret_file (or password_file) and secret_env (or password_env)",
        )?;
        // `password_file` / `password_env` (a WebDAV account's words) are the same thing
        // (never both: `one_secret_source`).
        let one_of =
            |a: &str, b: &str| -> Result<Option<String>, ConfigError> { Ok(self.opt_str(t, key, a)?.or(self.opt_str(t, key, b)?)) };
        Ok(RemoteOptions {
            endpoint: self.opt_str(t, key, "endpoint")?,
            region: self.opt_str(t, key, "region")?,
            user: self.opt_str(t, key, "user")?,
            secret_file: one_of("secret_file", "password_file")?.map(|f| resolve(self.file.parent().unwrap_or(Path::new("/")), &f)),
            secret_env: one_of("secret_env", "password_env")?,
            keyring: self.opt_keyring(t, key, "keyring")?,
        })
    }

    /// At most one place for a secret: of the `keys` (in the order they are named), the
    /// second one set is the error, naming the first.
    fn one_secret_source(&self, t: &toml::Table, prefix: &str, keys: &[&str], all: &str) -> Result<(), ConfigError> {
        let set: Vec<&str> = keys.iter().copied().filter(|k| t.contains_key(*k)).collect();
        if let [first, second, ..] = set[..] {
            return Err(self.invalid(
                &join_key(prefix, second),
                &format!("only one of {all}: where the secret is ({first} is set too)"),
                &t[second],
            ));
        }
        Ok(())
    }

    /// `keyring = "NAME"`: an entry of the OS credential store (service `tandem`). A value
    /// that is no entry name is not repeated: it may be the secret itself.
    fn opt_keyring(&self, t: &toml::Table, prefix: &str, key: &str) -> Result<Option<String>, ConfigError> {
        let name = self.opt_str(t, prefix, key)?;
        if let Some(n) = &name {
            crate::side::keyring::check_name(n).map_err(|why| ConfigError::Invalid {
                file: self.file.to_path_buf(),
                key: join_key(prefix, key),
                expected: format!("{why}, naming the entry tandem/NAME stored with `tandem secret set NAME`"),
                found: "another string (not shown: it may be a secret)".into(),
            })?;
        }
        Ok(name)
    }

    /// A pair's `left` and `right` folders, absolute, neither inside the other.
    fn pair_roots(&self, t: &toml::Table, key: &str, base_dir: &Path) -> Result<(PathBuf, PathBuf), ConfigError> {
        let left = self.location(t, key, "left", base_dir)?;
        let right = self.location(t, key, "right", base_dir)?;
        if left.starts_with(&right) || right.starts_with(&left) {
            return Err(self.invalid(
                &format!("{key}.right"),
                "a folder that neither contains nor lies inside `left`",
                &toml::Value::String(right.display().to_string()),
            ));
        }
        Ok((left, right))
    }
}

/// Sync options, at the top level (the defaults) or in a pair (over the defaults).
impl Walker<'_> {
    fn options(&self, t: &toml::Table, prefix: &str, inherit: &SyncOptions) -> Result<SyncOptions, ConfigError> {
        let mut o = inherit.clone();
        if let Some(v) = t.get("ignore") {
            o.ignore = self.ignore(v, &join_key(prefix, "ignore"), &inherit.ignore)?;
        }
        self.guard_options(t, prefix, &mut o)?;
        self.service_options(t, prefix, &mut o)?;
        if let Some(v) = t.get("bandwidth") {
            o.bandwidth = self.bandwidth(v, &join_key(prefix, "bandwidth"))?;
        }
        if let Some(v) = t.get("remote") {
            o.remote = self.remote(v, &join_key(prefix, "remote"))?;
        }
        if let Some(v) = t.get("schedule") {
            o.schedules = self.schedules(v, &join_key(prefix, "schedule"))?;
        }
        if let Some(n) = self.opt_int(t, prefix, "history_retention_days", 1, 36500)? {
            o.history_retention_days = n as u32;
        }
        if let Some(v) = t.get("conflicts") {
            self.conflicts(v, &join_key(prefix, "conflicts"), &mut o.rules)?;
        }
        Ok(o)
    }

    /// `ignore`: glob patterns, added to the inherited ones.
    fn ignore(&self, v: &toml::Value, key: &str, inherit: &[String]) -> Result<Vec<String>, ConfigError> {
        let arr = v.as_array().ok_or_else(|| self.invalid(key, "an array of glob patterns", v))?;
        let mut pats = inherit.to_vec();
        for (i, p) in arr.iter().enumerate() {
            let s = p
                .as_str()
                .ok_or_else(|| self.invalid(&format!("{key}[{i}]"), "a glob pattern string", p))?;
            if let Err(e) = glob(s) {
                return Err(self.invalid(&format!("{key}[{i}]"), &format!("a valid glob pattern ({e})"), p));
            }
            pats.push(s.to_string());
        }
        Ok(pats)
    }

    /// What a run may do and how: default ignores, soft delete, the delete guard, workers, names.
    fn guard_options(&self, t: &toml::Table, prefix: &str, o: &mut SyncOptions) -> Result<(), ConfigError> {
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
        Ok(())
    }

    /// When the continuous service syncs: watching, debounce, polling, reconciling, large files.
    fn service_options(&self, t: &toml::Table, prefix: &str, o: &mut SyncOptions) -> Result<(), ConfigError> {
        let watch = |key: &str| -> Result<Option<WatchMode>, ConfigError> {
            let Some(v) = t.get(key) else { return Ok(None) };
            match v.as_str().and_then(WatchMode::parse) {
                Some(m) => Ok(Some(m)),
                None => Err(self.invalid(
                    &join_key(prefix, key),
                    "one of \"auto\", \"events\", \"both\", \"poll\", \"off\"",
                    v,
                )),
            }
        };
        if let Some(m) = watch("watch")? {
            o.watch = m;
        }
        for (i, key) in ["watch_left", "watch_right"].into_iter().enumerate() {
            if let Some(m) = watch(key)? {
                o.watch_sides[i] = Some(m);
            }
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
        Ok(())
    }

    /// The `[conflicts]` table: how each conflict rule is settled.
    fn conflicts(&self, v: &toml::Value, key: &str, rules: &mut Rules) -> Result<(), ConfigError> {
        let ct = v.as_table().ok_or_else(|| self.invalid(key, "a table", v))?;
        self.known(ct, key, &["r1", "r2", "r13"])?;
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
            rules.r1 = x;
        }
        if let Some(x) = clash("r2")? {
            rules.r2 = x;
        }
        if let Some(v) = ct.get("r13") {
            rules.r13 = match v.as_str() {
                Some("newer") => PropsOption::Newer,
                Some("left-wins") => PropsOption::LeftWins,
                Some("manual") => PropsOption::Manual,
                _ => return Err(self.invalid(&format!("{key}.r13"), "one of \"newer\", \"left-wins\", \"manual\"", v)),
            };
        }
        Ok(())
    }
}

/// Schedules and bandwidth limits.
impl Walker<'_> {
    fn schedules(&self, v: &toml::Value, key: &str) -> Result<Vec<ScheduleSpec>, ConfigError> {
        let arr = v
            .as_array()
            .ok_or_else(|| self.invalid(key, "an array of tables ([[schedule]])", v))?;
        let mut out: Vec<ScheduleSpec> = Vec::new();
        for (i, item) in arr.iter().enumerate() {
            let k = format!("{key}[{i}]");
            let spec = self.schedule(item, &k)?;
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

    /// One `[[schedule]]` table, `k` its key: exactly one kind of timing, checked by compiling it.
    fn schedule(&self, item: &toml::Value, k: &str) -> Result<ScheduleSpec, ConfigError> {
        let kinds = ["every", "cron", "daily", "weekly", "monthly"];
        let t = item.as_table().ok_or_else(|| self.invalid(k, "a table", item))?;
        self.known(t, k, &["name", "every", "cron", "daily", "weekly", "monthly", "tz", "run"])?;
        let given: Vec<&str> = kinds.iter().copied().filter(|n| t.contains_key(*n)).collect();
        if given.len() != 1 {
            return Err(ConfigError::Invalid {
                file: self.file.to_path_buf(),
                key: k.to_string(),
                expected: "exactly one of every, cron, daily, weekly, monthly".into(),
                found: if given.is_empty() { "none".into() } else { given.join(", ") },
            });
        }
        let kind = given[0];
        let value = self.req_str(t, k, kind)?;
        let job = match t.get("run") {
            None => Job::Sync,
            Some(v) => match v.as_str() {
                Some("sync") => Job::Sync,
                Some("reconcile") => Job::Reconcile,
                _ => return Err(self.invalid(&format!("{k}.run"), "\"sync\" or \"reconcile\"", v)),
            },
        };
        let spec = ScheduleSpec {
            name: self.opt_str(t, k, "name")?.unwrap_or_else(|| format!("{kind} {value}")),
            when: format!("{kind} {value}"),
            tz: self.opt_str(t, k, "tz")?,
            job,
        };
        if let Err(e) = spec.compile() {
            let bad_key = match e.field {
                ScheduleField::Tz => "tz",
                ScheduleField::When => kind,
            };
            let found = t.get(bad_key).cloned().unwrap_or(toml::Value::String(value.clone()));
            return Err(self.invalid(&format!("{k}.{bad_key}"), &e.expected, &found));
        }
        Ok(spec)
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
                b.windows.push(self.bandwidth_window(item, &format!("{wkey}[{i}]"))?);
            }
        }
        Ok(b)
    }

    /// One `[[bandwidth.window]]` table, `k` its key.
    fn bandwidth_window(&self, item: &toml::Value, k: &str) -> Result<BandwidthWindow, ConfigError> {
        let wt = item.as_table().ok_or_else(|| self.invalid(k, "a table", item))?;
        self.known(wt, k, &["from", "to", "left_to_right", "right_to_left"])?;
        let time = |name: &str| -> Result<u32, ConfigError> {
            let s = self.req_str(wt, k, name)?;
            parse_hhmm(&s).ok_or_else(|| self.invalid(&format!("{k}.{name}"), "a time of day like \"08:00\"", &toml::Value::String(s)))
        };
        Ok(BandwidthWindow {
            from_min: time("from")?,
            to_min: time("to")?,
            left_to_right: self.opt_rate(wt, k, "left_to_right")?,
            right_to_left: self.opt_rate(wt, k, "right_to_left")?,
        })
    }
}

/// The `[email]` table.
impl Walker<'_> {
    fn email(&self, v: &toml::Value) -> Result<EmailConfig, ConfigError> {
        let t = v.as_table().ok_or_else(|| self.invalid("email", "a table", v))?;
        let p = "email";
        self.known(t, p, &EMAIL_KEYS)?;
        if t.contains_key("password") {
            return Err(self.secret_in_file(
                "email.password",
                "no clear password in the file: use keyring (an entry in the OS keyring: `tandem secret set NAME`), password_env or password_file",
            ));
        }
        self.one_secret_source(
            t,
            p,
            &["password_env", "password_file", "keyring"],
            "keyring, password_env and password_file",
        )?;
        let security = self.smtp_security(t)?;
        let granularity = self.mail_granularity(t)?;
        let to = self.recipients(t)?;
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
            keyring: self.opt_keyring(t, p, "keyring")?,
            from,
            to,
            subject_prefix: self.opt_str(t, p, "subject_prefix")?.unwrap_or_else(|| "[Tandem]".into()),
            granularity,
        })
    }

    fn smtp_security(&self, t: &toml::Table) -> Result<SmtpSecurity, ConfigError> {
        Ok(match t.get("security") {
            None => SmtpSecurity::Starttls,
            Some(v) => match v.as_str() {
                Some("none") => SmtpSecurity::None,
                Some("starttls") => SmtpSecurity::Starttls,
                Some("tls") => SmtpSecurity::Tls,
                _ => return Err(self.invalid("email.security", "one of \"none\", \"starttls\", \"tls\"", v)),
            },
        })
    }

    /// `granularity`: one kind of mail, or a non-empty array of them.
    fn mail_granularity(&self, t: &toml::Table) -> Result<Vec<MailGranularity>, ConfigError> {
        let one = |key: &str, v: &toml::Value| match v.as_str() {
            Some("per-conflict") => Ok(MailGranularity::PerConflict),
            Some("summary") => Ok(MailGranularity::Summary),
            Some("digest") => Ok(MailGranularity::Digest),
            _ => Err(self.invalid(key, "one of \"per-conflict\", \"summary\", \"digest\" (or an array of them)", v)),
        };
        Ok(match t.get("granularity") {
            None => vec![MailGranularity::PerConflict],
            Some(toml::Value::Array(a)) if !a.is_empty() => a
                .iter()
                .enumerate()
                .map(|(i, v)| one(&format!("email.granularity[{i}]"), v))
                .collect::<Result<Vec<_>, _>>()?,
            Some(v) => vec![one("email.granularity", v)?],
        })
    }

    /// `to`: an array of addresses (none if missing).
    fn recipients(&self, t: &toml::Table) -> Result<Vec<String>, ConfigError> {
        let Some(v) = t.get("to") else {
            return Ok(Vec::new());
        };
        let arr = v.as_array().ok_or_else(|| self.invalid("email.to", "an array of addresses", v))?;
        let mut out = Vec::new();
        for (i, a) in arr.iter().enumerate() {
            out.push(self.mailbox(&format!("email.to[{i}]"), a)?);
        }
        Ok(out)
    }

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

/// The `[desktop]` table.
impl Walker<'_> {
    fn desktop(&self, v: &toml::Value) -> Result<DesktopConfig, ConfigError> {
        let t = v.as_table().ok_or_else(|| self.invalid("desktop", "a table", v))?;
        let p = "desktop";
        self.known(t, p, &["toasts", "summary_after", "autostart"])?;
        let mut d = DesktopConfig::default();
        if let Some(v) = t.get("toasts") {
            d.toasts = self.toasts(v)?;
        }
        if let Some(ms) = self.opt_duration(t, p, "summary_after", 0, 86_400_000)? {
            d.summary_after_ms = ms;
        }
        if let Some(b) = self.opt_bool(t, p, "autostart")? {
            d.autostart = b;
        }
        Ok(d)
    }

    /// `toasts`: the kinds shown, each once, in the order first given.
    fn toasts(&self, v: &toml::Value) -> Result<Vec<ToastKind>, ConfigError> {
        let expected = "an array of \"conflicts\", \"guard\", \"errors\", \"summary\" (empty: no toasts)";
        let arr = v.as_array().ok_or_else(|| self.invalid("desktop.toasts", expected, v))?;
        let mut toasts = Vec::new();
        for (i, k) in arr.iter().enumerate() {
            let kind = match k.as_str() {
                Some("conflicts") => ToastKind::Conflicts,
                Some("guard") => ToastKind::Guard,
                Some("errors") => ToastKind::Errors,
                Some("summary") => ToastKind::Summary,
                _ => return Err(self.invalid(&format!("desktop.toasts[{i}]"), expected, k)),
            };
            if !toasts.contains(&kind) {
                toasts.push(kind);
            }
        }
        Ok(toasts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Ignore;
    use crate::model::Side;

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
    fn regression_a_config_file_named_without_a_folder_gave_relative_roots_the_watcher_could_not_match() {
        let text = "[[pair]]\nname = \"a\"\nleft = \"l\"\nright = \"sub/r\"\n";
        let c = Config::parse(Path::new("tandem.toml"), text).unwrap();
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(c.pairs[0].left, cwd.join("l"));
        assert_eq!(c.pairs[0].right, cwd.join("sub/r"));
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
watch_right = "both"
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
        assert_eq!(
            (p.watch_for(Side::Left), p.watch_for(Side::Right)),
            (WatchMode::Off, WatchMode::Both)
        );
        assert!(!p.watch_off(), "the right side is still watched and polled");
        assert_eq!(p.debounce_ms, 200, "inherited");
        // A pair's [pair.bandwidth] table replaces the global one.
        assert_eq!(p.bandwidth.left_to_right, None);
        assert!(p.bandwidth.is_unlimited());
    }

    #[test]
    fn remote_sides_take_a_url_and_a_remote_table_without_the_secret() {
        let c = parse(
            r#"
[remote]
region = "eu-central-1"
[[pair]]
name = "photos"
left = "/home/me/Photos"
right = "s3://photos/laptop"
[pair.remote]
endpoint = "https://s3.example.org"
user = "AKIAEXAMPLE"
secret_file = "secrets/s3"
[[pair]]
name = "docs"
left = "/home/me/Docs"
right = "webdav://me@webdav.example.org/Docs"
[pair.remote]
password_env = "DOCS_PASSWORD"
"#,
        )
        .unwrap();
        let (p, d) = (&c.pairs[0], &c.pairs[1]);
        assert_eq!(
            p.right,
            Path::new("s3://photos/laptop"),
            "a URL is taken as written, not made a path"
        );
        assert_eq!(p.options.remote.endpoint.as_deref(), Some("https://s3.example.org"));
        assert_eq!(
            p.options.remote.secret_file.as_deref(),
            Some(Path::new("/etc/secrets/s3")),
            "relative to the config file"
        );
        assert_eq!(p.options.remote.region, None, "a pair's [pair.remote] replaces the global one");
        let c2 = parse("[remote]\nregion = \"eu-central-1\"\n[[pair]]\nname = \"a\"\nleft = \"/a\"\nright = \"s3://b\"\n").unwrap();
        assert_eq!(c2.pairs[0].options.remote.region.as_deref(), Some("eu-central-1"), "inherited");
        assert_eq!(
            d.options.remote.secret_env.as_deref(),
            Some("DOCS_PASSWORD"),
            "password_env is secret_env"
        );
        assert_eq!(d.right, Path::new("webdav://me@webdav.example.org/Docs"));
    }

    #[test]
    fn a_secret_comes_from_one_place_a_keyring_entry_a_file_or_a_variable() {
        let c = parse(
            "[remote]\nkeyring = \"s3-main\"\n[email]\nhost='h'\nfrom='a@b.c'\nusername='u'\nkeyring='smtp'\n[[pair]]\nname='a'\nleft='/a'\nright='s3://b'\n[[pair]]\nname='b'\nleft='/b'\nright='s3://c'\n[pair.remote]\nkeyring='me@pcloud'\n",
        )
        .unwrap();
        assert_eq!(
            c.pairs[0].options.remote.keyring.as_deref(),
            Some("s3-main"),
            "inherited from [remote]"
        );
        assert_eq!(c.pairs[1].options.remote.keyring.as_deref(), Some("me@pcloud"));
        assert_eq!(c.email.unwrap().keyring.as_deref(), Some("smtp"));
        for (text, key, other) in [
            ("[remote]\nsecret_file='f'\nkeyring='k'", "remote.keyring", "secret_file"),
            ("[remote]\npassword_env='V'\nkeyring='k'", "remote.keyring", "password_env"),
            ("[remote]\nsecret_file='f'\nsecret_env='V'", "remote.secret_env", "secret_file"),
            ("[remote]\nsecret_env='V'\npassword_env='W'", "remote.password_env", "secret_env"),
            (
                "[[pair]]\nname='a'\nleft='/a'\nright='s3://b'\n[pair.remote]\nsecret_env='V'\nkeyring='k'",
                "pair[0].remote.keyring",
                "secret_env",
            ),
            (
                "[email]\nhost='h'\nfrom='a@b.c'\npassword_file='f'\nkeyring='k'",
                "email.keyring",
                "password_file",
            ),
            (
                "[email]\nhost='h'\nfrom='a@b.c'\npassword_env='V'\npassword_file='f'",
                "email.password_file",
                "password_env",
            ),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(
                e.contains(key) && e.contains("only one of") && e.contains(&format!("({other} is set too)")),
                "{text}: {e}"
            );
        }
        // Not an entry name: refused without repeating it (it may be the secret itself).
        for text in ["[remote]\nkeyring='planted secret!'", "[email]\nhost='h'\nfrom='a@b.c'\nkeyring=''"] {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains("keyring") && e.contains("entry name") && e.contains("not shown"), "{e}");
            assert!(!e.contains("planted"), "{e}");
        }
    }

    #[test]
    fn config_clear_password_error_does_not_echo_the_password() {
        for (text, key) in [
            ("[email]\nhost='h'\nfrom='a@b.c'\npassword='planted-secret-1'", "email.password"),
            ("[remote]\npassword='planted-secret-1'", "remote.password"),
            (
                "[[pair]]\nname='a'\nleft='/a'\nright='s3://b'\n[pair.remote]\nsecret_key='planted-secret-1'",
                "pair[0].remote.secret_key",
            ),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains(key) && e.contains("not shown"), "{e}");
            assert!(!e.contains("planted-secret-1"), "the secret is repeated: {e}");
        }
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
            (
                "[[pair]]\nname='a'\nleft='/a'\nright='s3://key:x@b/p'",
                "pair[0].right",
                "s3://BUCKET/PREFIX",
            ),
            ("[remote]\ntoken = 'x'", "remote.token", "known keys"),
            ("debounce = '5 weeks'", "debounce", "a duration from 0ms to 60s"),
            ("poll_interval = 10", "poll_interval", "a duration from 1s"),
            ("watch = 'sometimes'", "watch", "\"auto\", \"events\", \"both\", \"poll\", \"off\""),
            (
                "watch_right = 'cloud'",
                "watch_right",
                "\"auto\", \"events\", \"both\", \"poll\", \"off\"",
            ),
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
