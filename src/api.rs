//! The façade the shells call (the CLI, the web UI's API, the desktop app): a one-shot sync
//! of a configured or ad-hoc pair, a scan summary, resolving a conflict, re-syncing a path,
//! and the engine's records and types the shells need (and the OS keyring's entries, for
//! `tandem secret`). Here and in the shells' start-up are the only places that open a
//! pair's sides from its configured locations.
//! Errors carry a stable code (for the UI) and an exit code (for the CLI).
//! Must not touch: terminal output (it returns data), tauri, flag parsing.

use crate::engine::pair::PairConfig;
use crate::engine::pair::SyncOptions;
use crate::engine::plan::Keep;
pub use crate::engine::records::*;
pub use crate::engine::sync::*;
/// The OS keyring's entries that `keyring = "NAME"` options name (`tandem secret ...`).
pub use crate::side::keyring;
use crate::side::Replica;
use crate::state::Store;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// An ad-hoc pair (no config file) with the SPEC defaults. Roots are made absolute.
pub fn adhoc_pair(left: &Path, right: &Path) -> Result<PairConfig, ApiError> {
    let abs = |p: &Path| -> Result<PathBuf, ApiError> {
        let a = std::path::absolute(p).map_err(|source| ApiError::Io { path: p.into(), source })?;
        Ok(std::fs::canonicalize(&a).unwrap_or(a))
    };
    // A server's URL is taken as written; a folder is made absolute.
    let abs = |p: &Path| -> Result<PathBuf, ApiError> {
        if crate::side::remote::is_remote(p) {
            crate::side::remote::parse_location(p).map_err(|e| ApiError::Usage(e.to_string()))?;
            return Ok(p.to_path_buf());
        }
        abs(p)
    };
    let (l, r) = (abs(left)?, abs(right)?);
    if l.starts_with(&r) || r.starts_with(&l) {
        return Err(ApiError::Usage(format!(
            "{} and {} overlap: one folder lies inside the other",
            l.display(),
            r.display()
        )));
    }
    let name = format!(
        "{}<->{}",
        l.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| l.display().to_string()),
        r.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| r.display().to_string())
    );
    Ok(PairConfig {
        name,
        left: l,
        right: r,
        options: SyncOptions::default(),
    })
}

/// A path a user typed for `resync`, as the pipeline takes it: as typed when it lies below
/// one of `pairs`' roots (relative paths always do); else, for an absolute path, resolved
/// through symbolic links (a path given through a symlinked folder is then found below a
/// root that was resolved, as an ad-hoc pair's are).
pub fn resync_arg(pairs: &[PairConfig], path: &str) -> String {
    let given = Path::new(path);
    if !given.is_absolute() || pairs.iter().any(|p| resync_path(p, path).is_ok()) {
        return path.to_string();
    }
    std::fs::canonicalize(given).map_or_else(|_| path.to_string(), |p| p.display().to_string())
}

/// A pair's two sides, opened from its configured locations (a server is connected to
/// now: a wrong address or credential is an error here).
pub fn open_sides(pair: &PairConfig) -> Result<[Arc<dyn Replica>; 2], ApiError> {
    let open = |location: &Path| {
        crate::side::open(location, &pair.options.remote).map_err(|source| ApiError::Remote {
            pair: pair.name.clone(),
            source,
        })
    };
    Ok([open(&pair.left)?, open(&pair.right)?])
}

/// What connecting to a location found: the side's probed capabilities and what it says
/// about itself (Settings' "Test connection", `tandem check-side`).
#[derive(Debug, Serialize)]
pub struct SideReport {
    pub location: String,
    /// What the side is called in messages (a path, `s3://...`, `https://...`).
    pub describe: String,
    pub caps: crate::side::Caps,
    pub note: Option<String>,
}

/// Open a location as a pair would (connecting to a server and probing it) and say what
/// was found; nothing is written but the probes' own temporary files.
pub fn test_location(location: &Path, remote: &crate::side::remote::RemoteOptions) -> Result<SideReport, ApiError> {
    let side = crate::side::open(location, remote).map_err(|source| ApiError::Remote {
        pair: "(test)".into(),
        source,
    })?;
    Ok(SideReport {
        location: location.to_string_lossy().into_owned(),
        describe: side.describe(&crate::model::RelPath::root()),
        caps: side.caps(),
        note: side.note(),
    })
}

/// One-shot sync of a pair through its sides.
pub fn sync(store: &mut Store, pair: &PairConfig, req: &SyncRequest) -> Result<SyncReport, ApiError> {
    let [l, r] = open_sides(pair)?;
    sync_with(store, pair, &*l, &*r, req)
}

/// `tandem scan`: counts without changing anything.
#[derive(Debug, Default, Serialize, PartialEq)]
pub struct ScanSummary {
    pub pair: String,
    pub files_left: u64,
    pub files_right: u64,
    pub only_left: u64,
    pub only_right: u64,
    pub on_both: u64,
    /// On both, but with another size, time or kind.
    pub differing: u64,
    pub bytes_left: u64,
    pub bytes_right: u64,
    pub unknown: u64,
}

pub fn scan_summary(pair: &PairConfig) -> Result<ScanSummary, ApiError> {
    let [lfs, rfs] = open_sides(pair)?;
    let (l, r) = scan_both(pair, &*lfs, &*rfs)?;
    let mut s = ScanSummary {
        pair: pair.name.clone(),
        unknown: (l.unknown.len() + r.unknown.len()) as u64,
        ..Default::default()
    };
    for (p, e) in l.tree.iter().filter(|(_, e)| e.is_file()) {
        s.files_left += 1;
        s.bytes_left += e.size;
        match r.tree.get(p) {
            Some(o) => {
                s.on_both += 1;
                if o.kind != e.kind || o.size != e.size || o.mtime.div_euclid(1_000_000_000) != e.mtime.div_euclid(1_000_000_000) {
                    s.differing += 1;
                }
            }
            None => s.only_left += 1,
        }
    }
    for (p, e) in r.tree.iter().filter(|(_, e)| e.is_file()) {
        s.files_right += 1;
        s.bytes_right += e.size;
        if !l.tree.get(p).is_some_and(|o| o.is_file()) {
            s.only_right += 1;
        }
    }
    Ok(s)
}

/// Apply a user's decision on one conflict: a sync of its pair with that path overridden.
pub fn resolve(store: &mut Store, pair: &PairConfig, path: &str, keep: Keep) -> Result<SyncReport, ApiError> {
    sync(store, pair, &resolve_request(path, keep)?)
}

pub fn resync(store: &mut Store, pair: &PairConfig, path: &str, dry_run: bool) -> Result<SyncReport, ApiError> {
    let (pair, req) = resync_request(pair, path, dry_run)?;
    sync(store, &pair, &req)
}

/// Something in the settings that is allowed but probably not meant: shown next to its
/// field (`key` as the file spells it, e.g. `pair[0].left`), never blocking a save.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ConfigWarning {
    pub key: String,
    pub message: String,
}

/// The warnings for a config (`text` is its TOML, to tell a relative folder as written):
/// a local folder that does not exist (the pair stops until it does: an unmounted drive is
/// not "everything deleted"), a folder written relative to the config file's folder, and
/// folders of two pairs where one lies inside the other (both pairs would sync the inner
/// files, each its own way).
pub fn config_warnings(cfg: &crate::config::Config, text: &str) -> Vec<ConfigWarning> {
    let raw: toml::Table = text.parse().unwrap_or_default();
    let raw_pairs = raw.get("pair").and_then(|p| p.as_array()).cloned().unwrap_or_default();
    let mut out = Vec::new();
    let local = |p: &Path| !crate::side::remote::is_remote(p);
    for (i, pair) in cfg.pairs.iter().enumerate() {
        for (side, root) in [("left", &pair.left), ("right", &pair.right)] {
            let key = format!("pair[{i}].{side}");
            if !local(root) {
                continue;
            }
            let written = raw_pairs.get(i).and_then(|t| t.get(side)).and_then(|v| v.as_str()).unwrap_or("");
            let as_written = Path::new(written);
            if !written.is_empty() && !as_written.is_absolute() && !written.starts_with("~/") && !written.contains(":\\") {
                out.push(ConfigWarning {
                    key: key.clone(),
                    message: format!("{written:?} is relative to the settings file's folder: it means {}", root.display()),
                });
            }
            match std::fs::metadata(root) {
                Ok(md) if md.is_dir() => {}
                Ok(_) => out.push(ConfigWarning {
                    key: key.clone(),
                    message: format!(
                        "{} is a file, not a folder: the pair will stop until it is a folder",
                        root.display()
                    ),
                }),
                Err(_) => out.push(ConfigWarning {
                    key: key.clone(),
                    message: format!(
                        "{} does not exist (yet): the pair will stop until it does (is the drive mounted?)",
                        root.display()
                    ),
                }),
            }
            for other in cfg.pairs.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, o)| o) {
                for (other_side, other_root) in [("left", &other.left), ("right", &other.right)] {
                    if local(other_root) && (root.starts_with(other_root) || other_root.starts_with(root)) {
                        out.push(ConfigWarning {
                            key: key.clone(),
                            message: format!(
                                "{} overlaps the {other_side} folder of pair {:?} ({}): one lies inside the other, so both pairs would sync the same files",
                                root.display(),
                                other.name,
                                other_root.display()
                            ),
                        });
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(files: &[&str], text: &str, expect: &[(&str, &str)]) {
        let dir = tempfile::tempdir().unwrap();
        for f in files {
            std::fs::create_dir_all(dir.path().join(f)).unwrap();
        }
        let file = dir.path().join("tandem.toml");
        // Literal TOML strings ('...'): a Windows path's `\` is no escape there.
        let text = text.replace("$D", dir.path().to_str().unwrap());
        let cfg = crate::config::Config::parse(&file, &text).unwrap();
        let got: Vec<(String, String)> = config_warnings(&cfg, &text)
            .into_iter()
            // One spelling on every platform: Windows joins with `\`.
            .map(|w| (w.key, w.message.replace(dir.path().to_str().unwrap(), "$D").replace('\\', "/")))
            .collect();
        let want: Vec<(String, String)> = expect.iter().map(|(k, m)| (k.to_string(), m.to_string())).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn config_warnings_tell_missing_relative_and_overlapping_folders() {
        check(&["a", "b"], "[[pair]]\nname = \"p\"\nleft = '$D/a'\nright = '$D/b'\n", &[]);
        check(
            &["a"],
            "[[pair]]\nname = \"p\"\nleft = '$D/a'\nright = '$D/gone'\n",
            &[(
                "pair[0].right",
                "$D/gone does not exist (yet): the pair will stop until it does (is the drive mounted?)",
            )],
        );
        check(
            &["a", "b"],
            "[[pair]]\nname = \"p\"\nleft = \"a\"\nright = '$D/b'\n",
            &[("pair[0].left", "\"a\" is relative to the settings file's folder: it means $D/a")],
        );
        check(
            &["a", "b", "a/inner", "c"],
            "[[pair]]\nname = \"p\"\nleft = '$D/a'\nright = '$D/b'\n[[pair]]\nname = \"q\"\nleft = '$D/a/inner'\nright = '$D/c'\n",
            &[
                ("pair[0].left", "$D/a overlaps the left folder of pair \"q\" ($D/a/inner): one lies inside the other, so both pairs would sync the same files"),
                ("pair[1].left", "$D/a/inner overlaps the left folder of pair \"p\" ($D/a): one lies inside the other, so both pairs would sync the same files"),
            ],
        );
    }
}
