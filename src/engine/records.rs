//! What the state store says about the pairs, for the service and the shells: history,
//! conflicts, status, schedules (their next times and pauses), CSV export. Reads and small
//! writes of records only: no side is touched here.

use crate::engine::pair::{PairConfig, SyncOptions};
use crate::engine::sync::ApiError;
use crate::state::{now_ns, ConflictRow, RunRow, Store};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Where the state lives when nothing says otherwise.
pub fn default_state_path() -> PathBuf {
    // The local (not roaming) data folder: on Windows %LOCALAPPDATA%, never synced to other
    // machines by a roaming profile (elsewhere the same as the data folder).
    dirs::data_local_dir()
        .unwrap_or_else(std::env::temp_dir)
        .join("tandem")
        .join("state.db")
}

/// `--state` may name a file or an existing folder (then `tandem.db` inside it).
pub fn state_path_arg(p: &Path) -> PathBuf {
    if p.is_dir() {
        p.join("tandem.db")
    } else {
        p.to_path_buf()
    }
}

pub fn open_state(path: &Path) -> Result<Store, ApiError> {
    Ok(Store::open(path)?)
}

/// Open conflicts of every pair the store knows (or of one pair).
pub fn conflicts(store: &Store, pair: Option<&str>) -> Result<Vec<(String, ConflictRow)>, ApiError> {
    let mut out = Vec::new();
    for (id, name, _, _) in store.pairs()? {
        if pair.is_some_and(|p| p != name) {
            continue;
        }
        for c in store.open_conflicts(id)? {
            out.push((name.clone(), c));
        }
    }
    Ok(out)
}

/// The pair (as stored) that has an open conflict at `path`.
pub fn conflict_pair(store: &Store, path: &str, pair: Option<&str>, configured: &[PairConfig]) -> Result<PairConfig, ApiError> {
    let hits: Vec<(String, ConflictRow)> = conflicts(store, pair)?.into_iter().filter(|(_, c)| c.path == path).collect();
    match hits.len() {
        0 => Err(ApiError::NotFound(format!(
            "no open conflict at {path:?}{}",
            pair.map(|p| format!(" in pair {p}")).unwrap_or_default()
        ))),
        1 => {
            let id = hits[0].1.pair_id;
            let (_, name, l, r) = store
                .pairs()?
                .into_iter()
                .find(|p| p.0 == id)
                .ok_or_else(|| ApiError::Internal("conflict without pair".into()))?;
            if let Some(p) = configured
                .iter()
                .find(|p| p.name == name || (p.left == Path::new(&l) && p.right == Path::new(&r)))
            {
                return Ok(p.clone());
            }
            Ok(PairConfig {
                name,
                left: l.into(),
                right: r.into(),
                options: SyncOptions::default(),
            })
        }
        _ => Err(ApiError::Usage(format!(
            "{path:?} has open conflicts in several pairs ({}); say which with --pair",
            hits.iter().map(|h| h.0.as_str()).collect::<Vec<_>>().join(", ")
        ))),
    }
}

/// A CSV field (RFC 4180): quoted when it holds a comma, a quote or a line break.
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Runs as CSV, with a header line (the CLI's `history --csv` and the API's export).
pub fn runs_csv(runs: &[RunRow]) -> String {
    let mut out = String::from(
        "run,pair,trigger,started,finished,status,copied,renamed,deleted,trashed,props,conflicts,failed,skipped,bytes,error\n",
    );
    for r in runs {
        let c = &r.counts;
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
            r.id,
            csv_field(&r.pair),
            r.trigger,
            crate::model::fmt_time(r.started_at),
            r.finished_at.map(crate::model::fmt_time).unwrap_or_default(),
            r.status,
            c.copied,
            c.renamed,
            c.deleted,
            c.trashed,
            c.props,
            c.conflicts,
            c.failed,
            c.skipped,
            c.bytes,
            csv_field(r.error.as_deref().unwrap_or(""))
        ));
    }
    out
}

/// Recorded runs, newest first, as the filter says.
pub fn history(store: &Store, filter: &crate::state::RunFilter) -> Result<Vec<RunRow>, ApiError> {
    Ok(store.runs(filter)?)
}

/// Per-pair status from the state store.
#[derive(Debug, Serialize)]
pub struct PairStatus {
    pub pair: String,
    pub left: String,
    pub right: String,
    pub last_run: Option<RunRow>,
    pub open_conflicts: u64,
    pub ops_last_24h: u64,
}

pub fn status(store: &Store) -> Result<Vec<PairStatus>, ApiError> {
    let mut out = Vec::new();
    for (id, name, l, r) in store.pairs()? {
        out.push(PairStatus {
            last_run: store.last_run(id)?,
            open_conflicts: store.open_conflicts(id)?.len() as u64,
            ops_last_24h: store.ops_since(id, now_ns() - 24 * 3600 * 1_000_000_000)?,
            pair: name,
            left: l,
            right: r,
        });
    }
    Ok(out)
}

/// A configured schedule with what the state store knows of it.
#[derive(Debug, Serialize)]
pub struct ScheduleInfo {
    pub pair: String,
    pub name: String,
    pub when: String,
    pub tz: String,
    pub job: crate::model::schedule::Job,
    pub paused: bool,
    pub next_run: Option<i64>,
    pub last_run: Option<i64>,
    pub last_outcome: Option<String>,
}

/// Every configured schedule of these pairs (next/last run as the service recorded them;
/// a schedule the service has not planned yet gets its next time computed now).
pub fn schedules(store: &Store, pairs: &[PairConfig]) -> Result<Vec<ScheduleInfo>, ApiError> {
    let mut out = Vec::new();
    for p in pairs {
        let id = store.find_pair(&p.left, &p.right)?;
        for spec in &p.options.schedules {
            let row = match id {
                Some(id) => store.schedule_get(id, &spec.name)?,
                None => None,
            };
            let key = spec.key();
            let (mut next, last, outcome, paused) = match row {
                Some((k, n, l, o, pa)) => (if k == key { n } else { None }, l, o, pa),
                None => (None, None, None, false),
            };
            if next.is_none() {
                next = spec
                    .compile()
                    .ok()
                    .and_then(|s| s.next_after(chrono::Utc::now()))
                    .and_then(|t| t.timestamp_nanos_opt());
            }
            out.push(ScheduleInfo {
                pair: p.name.clone(),
                name: spec.name.clone(),
                when: spec.when.clone(),
                tz: spec.tz.clone().unwrap_or_else(|| "local".into()),
                job: spec.job,
                paused,
                next_run: next,
                last_run: last,
                last_outcome: outcome,
            });
        }
    }
    Ok(out)
}

/// Pause or resume one schedule (the running service sees it at its next check, within 30 s).
pub fn set_schedule_paused(store: &mut Store, pair: &PairConfig, name: &str, paused: bool) -> Result<(), ApiError> {
    let spec = pair
        .options
        .schedules
        .iter()
        .find(|s| s.name == name)
        .ok_or_else(|| ApiError::NotFound(format!("pair {} has no schedule named {name:?}", pair.name)))?;
    let id = store.pair_id(&pair.name, &pair.left, &pair.right)?;
    if !store.schedule_set_paused(id, name, paused)? {
        let key = spec.key();
        store.schedule_put(id, name, &key, None, None, None, paused)?;
    }
    Ok(())
}
