//! What `tandem` prints: sync reports (text or JSON lines), scan summaries, run history and
//! journals, conflicts, schedules, and the status of the state file or the running service.
//! Each function writes to stdout what it is given, in the exact text the commands promise.
//! Must not touch: state, config files, the service or sync decisions; it only formats.

use std::io::Write;
use tandem::api::{PairStatus, ScanSummary, ScheduleInfo, SyncReport};
use tandem::engine::exec::Outcome;
use tandem::engine::plan::Action;
use tandem::model::{fmt_time, human_bytes};
use tandem::state::{ConflictRow, JournalRow, RunRow};

/// One line per action a person would care about (or one JSON object per action), then the
/// summary of the run.
pub fn print_report(rep: &SyncReport, json: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    for (a, o) in rep.plan.actions.iter().zip(&rep.outcomes) {
        if json {
            if matches!(a, Action::Skip { .. }) && !is_new_skip(rep, a) {
                continue;
            }
            let mut v = serde_json::to_value(a)?;
            if let (Some(obj), Some(o)) = (v.as_object_mut(), o) {
                obj.insert("outcome".into(), serde_json::to_value(o)?);
            }
            writeln!(out, "{v}")?;
        } else if a.is_disk_action() || matches!(a, Action::Conflict { .. }) || is_new_skip(rep, a) {
            let tail = match o {
                Some(Outcome::Failed { error }) => format!("  FAILED: {error}"),
                Some(Outcome::Deferred { reason }) => format!("  deferred: {reason}"),
                _ => String::new(),
            };
            writeln!(out, "{}{}", describe(a), tail)?;
        }
    }
    if json {
        write_json_summary(&mut out, rep)
    } else {
        write_text_summary(&mut out, rep)
    }
}

/// The last line of `sync --json`: counts, status and exit code of the run.
fn write_json_summary(out: &mut impl Write, rep: &SyncReport) -> anyhow::Result<()> {
    let c = &rep.counts;
    let summary = serde_json::json!({"summary": {
        "pair": rep.pair, "run": rep.run_id, "status": rep.status, "dry_run": rep.run_id.is_none(),
        "actions": rep.plan.disk_actions().count(),
        "copied": c.copied, "renamed": c.renamed, "deleted": c.deleted, "trashed": c.trashed,
        "props": c.props, "conflicts": c.conflicts, "failed": c.failed, "skipped": c.skipped,
        "deferred": rep.deferred, "bytes": c.bytes, "by_rule": c.by_rule, "error": rep.fatal,
        "exit": rep.exit_code(),
    }});
    writeln!(out, "{summary}")?;
    Ok(())
}

/// The closing line(s) of a sync in text: dry run, in sync, or the counts; then why it
/// stopped early, if it did.
fn write_text_summary(out: &mut impl Write, rep: &SyncReport) -> anyhow::Result<()> {
    let c = &rep.counts;
    let planned = rep.plan.disk_actions().count();
    if rep.run_id.is_none() {
        writeln!(
            out,
            "{}: dry run, {planned} action{} planned, nothing changed",
            rep.pair,
            if planned == 1 { "" } else { "s" }
        )?;
    } else if planned == 0 && c.conflicts == 0 {
        writeln!(out, "{}: in sync", rep.pair)?;
    } else {
        writeln!(
            out,
            "{}: copied {} ({}), renamed {}, trashed {}, deleted {}, properties {}, conflicts {}, failed {}{}",
            rep.pair,
            c.copied,
            human_bytes(c.bytes),
            c.renamed,
            c.trashed,
            c.deleted,
            c.props,
            c.conflicts,
            c.failed,
            if rep.deferred > 0 {
                format!(", deferred {} (changed during the sync; next run)", rep.deferred)
            } else {
                String::new()
            }
        )?;
    }
    if let Some(f) = &rep.fatal {
        writeln!(out, "stopped early: {f}")?;
    }
    Ok(())
}

/// One action as a line of text.
fn describe(a: &Action) -> String {
    match a {
        Action::Rename { side, from, to, .. } => format!("rename  {side:<5} {from} -> {to}"),
        Action::ClashRename { side, from, to, .. } => {
            format!("clash   {side:<5} {from} -> {to} (older version kept)")
        }
        Action::MkDir { side, path, .. } => format!("mkdir   {side:<5} {path}"),
        Action::Copy { side, path, src, .. } => format!("copy    {:<5} {path} -> {side} ({})", side.other(), human_bytes(src.size)),
        Action::SetProps { side, path, .. } => format!("props   {side:<5} {path}"),
        Action::Delete {
            side, path, soft: true, ..
        } => format!("trash   {side:<5} {path}"),
        Action::Delete { side, path, .. } => format!("delete  {side:<5} {path}"),
        Action::Conflict { path, .. } => {
            format!("CONFLICT      {path} (waiting for your decision: tandem conflicts resolve)")
        }
        Action::Record { path, base: Some(_), .. } => format!("record        {path}"),
        Action::Record { path, .. } => format!("forget        {path}"),
        Action::Skip { side, path, reason } => format!("skip    {side:<5} {path}: {reason}"),
    }
}

/// Unsyncable names are reported on the first run that meets them, not on every run (dry
/// runs, which record nothing, show them all).
fn is_new_skip(rep: &SyncReport, a: &Action) -> bool {
    match a {
        Action::Skip { side, path, .. } => rep.run_id.is_none() || rep.new_skips.iter().any(|(s, p, _)| s == side && p == path),
        _ => false,
    }
}

/// `tandem scan` of one pair, as text.
pub fn print_scan(s: &ScanSummary) {
    println!("pair {}", s.pair);
    println!("  files on left:  {:>9}  ({})", s.files_left, human_bytes(s.bytes_left));
    println!("  files on right: {:>9}  ({})", s.files_right, human_bytes(s.bytes_right));
    println!("  only left:      {:>9}", s.only_left);
    println!("  only right:     {:>9}", s.only_right);
    println!("  on both:        {:>9}", s.on_both);
    println!("  differing:      {:>9}  (size or time)", s.differing);
    if s.unknown > 0 {
        println!("  unreadable or not syncable: {}", s.unknown);
    }
}

/// Every action of one run (`history --run N`): JSON lines, CSV with a header, or columns.
pub fn print_journal(rows: &[JournalRow], csv: bool, json: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        for r in rows {
            writeln!(out, "{}", serde_json::to_string(r)?)?;
        }
        return Ok(());
    }
    if csv {
        writeln!(out, "seq,at,op,side,path,rule,status,bytes,detail")?;
    }
    for r in rows {
        let v = serde_json::to_value(r)?;
        let f = |k: &str| match &v[k] {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Null => String::new(),
            other => other.to_string(),
        };
        if csv {
            writeln!(
                out,
                "{},{},{},{},{},{},{},{},{}",
                f("seq"),
                fmt_time(v["at"].as_i64().unwrap_or(0)),
                f("op"),
                f("side"),
                tandem::api::csv_field(&f("path")),
                f("rule"),
                f("status"),
                f("bytes"),
                tandem::api::csv_field(&f("detail"))
            )?;
        } else {
            writeln!(
                out,
                "{:>5} {:<8} {:<6} {:<9} {} {}",
                f("seq"),
                f("op"),
                f("side"),
                f("status"),
                f("path"),
                f("detail")
            )?;
        }
    }
    Ok(())
}

/// The run history: JSON lines, CSV, or one line per run.
pub fn print_runs(runs: &[RunRow], csv: bool, json: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        for r in runs {
            writeln!(out, "{}", serde_json::to_string(r)?)?;
        }
    } else if csv {
        write!(out, "{}", tandem::api::runs_csv(runs))?;
    } else {
        for r in runs {
            let c = &r.counts;
            writeln!(
                out,
                "#{:<5} {} {:<24} {:<14} {:<11} copied {} renamed {} trashed {} deleted {} conflicts {} failed {} ({}){}",
                r.id,
                fmt_time(r.started_at),
                r.pair,
                r.trigger,
                r.status,
                c.copied,
                c.renamed,
                c.trashed,
                c.deleted,
                c.conflicts,
                c.failed,
                human_bytes(c.bytes),
                r.error.as_ref().map(|e| format!(" - {e}")).unwrap_or_default()
            )?;
        }
    }
    Ok(())
}

/// One open conflict as a line of text.
pub fn print_conflict(pair: &str, c: &ConflictRow) {
    let side = |e: &Option<tandem::model::Entry>| match e {
        Some(e) => format!("{} bytes, {}", e.size, fmt_time(e.mtime)),
        None => "absent".into(),
    };
    println!(
        "{pair}: {} [{}] left: {}; right: {}; newer: {}",
        c.path,
        c.rule,
        side(&c.left),
        side(&c.right),
        c.newer.map(|s| s.name()).unwrap_or("-")
    );
}

/// One schedule as a line of text: when, next and last run, last outcome.
pub fn print_schedule(s: &ScheduleInfo) {
    let t = |x: Option<i64>| x.map(fmt_time).unwrap_or_else(|| "-".into());
    println!(
        "{} / {}: {} ({}, {:?}){}  next {}  last {}  {}",
        s.pair,
        s.name,
        s.when,
        s.tz,
        s.job,
        if s.paused { " PAUSED" } else { "" },
        t(s.next_run),
        t(s.last_run),
        s.last_outcome.as_deref().unwrap_or("")
    );
}

/// The status of every pair as the state file knows it (no service running).
pub fn print_stored_status(st: &[PairStatus]) {
    for s in st {
        println!("pair {}  ({} <-> {})", s.pair, s.left, s.right);
        match &s.last_run {
            Some(r) => println!("  last run: #{} {} {} ({})", r.id, fmt_time(r.started_at), r.status, r.trigger),
            None => println!("  last run: never"),
        }
        println!("  open conflicts: {}", s.open_conflicts);
        println!("  operations in the last 24 h: {}", s.ops_last_24h);
    }
}

/// The running service's status (its `/api/status` answer) as text.
pub fn print_live_status(st: &serde_json::Value) {
    let paused_all = st["paused_all"].as_bool().unwrap_or(false);
    println!(
        "service: running (pid {}){}",
        st["pid"],
        if paused_all { ", everything paused" } else { "" }
    );
    for p in st["pairs"].as_array().into_iter().flatten() {
        print_live_pair(p);
    }
}

/// One pair of the running service's status: state, watchers, last event and run, backlog
/// and transfers under way.
fn print_live_pair(p: &serde_json::Value) {
    let s = |k: &str| p[k].as_str().unwrap_or("").to_string();
    println!("pair {}  ({} <-> {})", s("pair"), s("left"), s("right"));
    let reason = p["reason"].as_str().map(|r| format!(" - {r}")).unwrap_or_default();
    println!("  state: {}{reason}", s("state"));
    for w in p["watch"].as_array().into_iter().flatten() {
        let why = w["reason"].as_str().map(|r| format!(" ({r})")).unwrap_or_default();
        let mode = match w["mode"].as_str().unwrap_or("") {
            "events" => "file events",
            "both" => "file events + polling",
            m => m,
        };
        println!("  {} side: {mode}{why}", w["side"].as_str().unwrap_or(""));
    }
    match p["last_event"].as_object() {
        Some(e) => println!(
            "  last event: {} {} {}",
            fmt_time(e["at"].as_i64().unwrap_or(0)),
            e["side"].as_str().unwrap_or(""),
            e["path"].as_str().unwrap_or("")
        ),
        None => println!("  last event: none"),
    }
    match p["last_run"].as_object() {
        Some(r) => println!(
            "  last run: #{} {} {} ({})",
            r["id"],
            fmt_time(r["started_at"].as_i64().unwrap_or(0)),
            r["status"].as_str().unwrap_or(""),
            r["trigger"].as_str().unwrap_or("")
        ),
        None => println!("  last run: never"),
    }
    let b = &p["backlog"];
    println!(
        "  backlog: {} copies ({}), {} in the large-file lane, {} paths waiting",
        b["items"],
        human_bytes(b["bytes"].as_u64().unwrap_or(0)),
        b["large_items"],
        b["waiting_paths"]
    );
    for t in p["transfers"].as_array().into_iter().flatten() {
        let eta = t["eta_s"].as_u64().map(|e| format!(", {e} s left")).unwrap_or_default();
        println!(
            "    {} -> {}: {} of {} at {}/s{eta}",
            t["path"].as_str().unwrap_or(""),
            t["side"].as_str().unwrap_or(""),
            human_bytes(t["done"].as_u64().unwrap_or(0)),
            human_bytes(t["size"].as_u64().unwrap_or(0)),
            human_bytes(t["bytes_per_s"].as_u64().unwrap_or(0))
        );
    }
    println!("  open conflicts: {}", p["open_conflicts"]);
    println!("  operations in the last 24 h: {}", p["ops_last_24h"]);
}
