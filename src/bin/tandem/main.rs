//! The `tandem` command: parses flags, calls `tandem::api`, prints, exits with the code the
//! result calls for (0 in sync, 1 some operations failed, 2 usage or config error, 3 stopped
//! by a safety guard). No sync logic lives here.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::io::Write;
use std::path::{Path, PathBuf};
use tandem::api::{self, ApiError, SyncReport, SyncRequest};
use tandem::config::{Config, PairConfig};
use tandem::engine::plan::{Action, Keep};
use tandem::model::fmt_time;

#[derive(Parser)]
#[command(name = "tandem", version, about = "Two-way folder sync that never loses a version")]
struct Cli {
    /// State file (default: the user's data directory). A folder means FOLDER/tandem.db.
    #[arg(long, global = true, value_name = "FILE")]
    state: Option<PathBuf>,
    /// More log output (-v info, -vv debug).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Args, Clone)]
struct Target {
    /// Left folder (ad-hoc pair, SPEC defaults).
    left: Option<PathBuf>,
    /// Right folder.
    right: Option<PathBuf>,
    /// Config file with [[pair]] tables.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Only this pair of the config.
    #[arg(long, value_name = "NAME")]
    pair: Option<String>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Sync once: LEFT RIGHT, or --config FILE [--pair NAME].
    Sync {
        #[command(flatten)]
        target: Target,
        /// Show the plan; change no file and no state.
        #[arg(long)]
        dry_run: bool,
        /// One JSON object per line: actions, then a summary.
        #[arg(long)]
        json: bool,
        /// Go ahead even when a side is empty or more than max_delete_percent of the files
        /// would be deleted (a missing root still stops).
        #[arg(long)]
        allow_mass_delete: bool,
    },
    /// Forget what the state knows at and below PATH and decide again from both sides:
    /// equal contents become synced, different ones get clash copies, one-sided ones are
    /// copied; nothing is deleted. PATH is relative to the pair, or absolute below a root.
    Resync {
        path: String,
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        json: bool,
    },
    /// Dry-run summary: files on each side, only left, only right, on both, differing.
    Scan {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        json: bool,
    },
    /// Validate a config file.
    CheckConfig { file: PathBuf },
    /// Conflicts awaiting a decision.
    Conflicts {
        #[command(subcommand)]
        cmd: ConflictCmd,
    },
    /// Run history (or, with --run N, every action of one run).
    History {
        /// The actions of this run: path, side, operation, rule, outcome.
        #[arg(long, value_name = "N")]
        run: Option<i64>,
        #[arg(long, conflicts_with = "json")]
        csv: bool,
        #[arg(long)]
        json: bool,
        /// Most recent runs to show.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Status: from the running service when there is one, else from the state file.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Run the continuous service in the foreground: LEFT RIGHT, or --config FILE.
    Run {
        #[command(flatten)]
        target: Target,
        /// Where the local API listens (loopback only; port 0 picks a free one).
        #[arg(long, value_name = "ADDR")]
        listen: Option<std::net::SocketAddr>,
        /// Rotating log files go here (default: the config's log_dir, else next to the state).
        #[arg(long, value_name = "DIR")]
        log_dir: Option<PathBuf>,
    },
    /// Pause the running service (one pair, or all).
    Pause {
        #[arg(long)]
        pair: Option<String>,
    },
    /// Resume the running service (one pair, or all).
    Resume {
        #[arg(long)]
        pair: Option<String>,
        /// Let the next run delete beyond max_delete_percent (after the guard paused it).
        #[arg(long)]
        allow_mass_delete: bool,
    },
    /// A full sync now, by the running service (one pair, or all).
    SyncNow {
        #[arg(long)]
        pair: Option<String>,
    },
    /// Print the API token of the running service (for scripts); fails when none runs.
    Token,
    /// Print a fresh one-time link that signs a browser in to the running service's API
    /// (it sets the token as an HttpOnly cookie).
    LoginLink,
    /// Send a test mail with the config's [email] settings, and say what failed.
    NotifyTest {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Scheduled runs: list, pause, resume.
    Schedules {
        #[command(subcommand)]
        cmd: ScheduleCmd,
    },
}

#[derive(Subcommand)]
enum ScheduleCmd {
    /// Every schedule with its next and last run and last outcome.
    List {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        #[arg(long)]
        json: bool,
    },
    Pause {
        name: String,
        #[arg(long)]
        pair: String,
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    Resume {
        name: String,
        #[arg(long)]
        pair: String,
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Remove a schedule from the config file (comments and the rest are kept).
    Remove {
        name: String,
        #[arg(long)]
        pair: String,
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
}

/// The default API address.
const DEFAULT_LISTEN: &str = "127.0.0.1:7700";

#[derive(Subcommand)]
enum ConflictCmd {
    List {
        #[arg(long)]
        pair: Option<String>,
        #[arg(long)]
        json: bool,
    },
    Resolve {
        /// Path relative to the pair's roots.
        path: String,
        #[arg(long, value_enum)]
        keep: KeepArg,
        #[arg(long)]
        pair: Option<String>,
        /// Config file (to use the pair's configured options).
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum KeepArg {
    Left,
    Right,
    Both,
}

fn main() {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if matches!(
                e.kind(),
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion
            ) {
                0
            } else {
                2
            };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    let level = match cli.verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let _log_guard = if let Cmd::Run { .. } = &cli.cmd {
        None
    } else {
        tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_env("TANDEM_LOG").unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level)),
            )
            .with_writer(std::io::stderr)
            .with_target(false)
            .init();
        None::<()>
    };
    let code = match run(cli) {
        Ok(code) => code,
        Err(e) => {
            let (code, msg) = match (e.downcast_ref::<ApiError>(), e.downcast_ref::<tandem::config::ConfigError>()) {
                (Some(api), _) => (api.exit_code(), format!("{api} [{}]", api.code())),
                (None, Some(c)) => (2, format!("{c} [config_invalid]")),
                (None, None) => (1, format!("{e:#}")),
            };
            eprintln!("tandem: {msg}");
            code
        }
    };
    std::process::exit(code);
}

fn state_path(cli_state: &Option<PathBuf>, config: Option<&Config>) -> PathBuf {
    match (cli_state, config.and_then(|c| c.state.clone())) {
        (Some(p), _) => api::state_path_arg(p),
        (None, Some(p)) => p,
        (None, None) => api::default_state_path(),
    }
}

/// The pairs a command works on.
fn pairs(t: &Target) -> Result<(Option<Config>, Vec<PairConfig>), ApiError> {
    match (&t.config, &t.left, &t.right) {
        (Some(file), None, None) => {
            let c = Config::load(file)?;
            let ps: Vec<PairConfig> = match &t.pair {
                Some(n) => vec![c
                    .pair(n)
                    .cloned()
                    .ok_or_else(|| ApiError::Usage(format!("{}: no pair named {n:?}", file.display())))?],
                None => c.pairs.clone(),
            };
            if ps.is_empty() {
                return Err(ApiError::Usage(format!("{}: no [[pair]] configured", file.display())));
            }
            Ok((Some(c), ps))
        }
        (None, Some(l), Some(r)) => Ok((None, vec![api::adhoc_pair(l, r)?])),
        _ => Err(ApiError::Usage("give LEFT RIGHT, or --config FILE [--pair NAME]".into())),
    }
}

fn run(cli: Cli) -> anyhow::Result<i32> {
    match &cli.cmd {
        Cmd::CheckConfig { file } => {
            let c = Config::load(file)?;
            println!(
                "{}: ok ({} pair{}{})",
                file.display(),
                c.pairs.len(),
                if c.pairs.len() == 1 { "" } else { "s" },
                if c.email.is_some() { ", email configured" } else { "" }
            );
            Ok(0)
        }
        Cmd::Sync {
            target,
            dry_run,
            json,
            allow_mass_delete,
        } => {
            let (config, pairs) = pairs(target)?;
            let path = state_path(&cli.state, config.as_ref());
            // A dry run changes no state: without a state file it plans from an empty base.
            let mut store = if *dry_run && !path.exists() {
                tandem::state::Store::in_memory()?
            } else {
                api::open_state(&path)?
            };
            let req = SyncRequest {
                dry_run: *dry_run,
                allow_mass_delete: *allow_mass_delete,
                ..Default::default()
            };
            let mut worst = 0;
            let email = config.as_ref().and_then(|c| c.email.clone()).filter(|_| !*dry_run);
            let mut fatal = None;
            for p in &pairs {
                let code = match api::sync(&mut store, p, &req) {
                    Ok(rep) => {
                        print_report(&rep, *json)?;
                        if let Some(id) = rep.run_id.and_then(|_| store.find_pair(&p.left, &p.right).ok().flatten()) {
                            tandem::mail::after_run(&store, email.as_ref(), id, &rep, "manual");
                        }
                        rep.exit_code()
                    }
                    Err(e) => {
                        if e.exit_code() == 3 && email.is_some() {
                            tandem::mail::enqueue(&store, &[tandem::mail::guard_mail(&p.name, &e)]);
                        }
                        if pairs.len() > 1 {
                            eprintln!("tandem: {e} [{}]", e.code());
                            e.exit_code()
                        } else {
                            fatal = Some(e);
                            break;
                        }
                    }
                };
                worst = worst.max(code);
            }
            // Mail goes out now if the server answers; otherwise it stays queued for the
            // next run or the service (never lost, never blocking the sync's result).
            if let Some(cfg) = &email {
                let (_, failed) = tandem::mail::flush(&store, cfg);
                if failed > 0 {
                    eprintln!(
                        "tandem: mail server unreachable; {} mail(s) queued for later",
                        store.mail_pending()?
                    );
                }
            }
            if let Some(e) = fatal {
                return Err(e.into());
            }
            Ok(worst)
        }
        Cmd::Scan { target, json } => {
            let (_, pairs) = pairs(target)?;
            for p in &pairs {
                let s = api::scan_summary(p, &tandem::side::RealFs, &tandem::side::RealFs)?;
                if *json {
                    println!("{}", serde_json::to_string(&s)?);
                } else {
                    println!("pair {}", s.pair);
                    println!(
                        "  files on left:  {:>9}  ({})",
                        s.files_left,
                        tandem::model::human_bytes(s.bytes_left)
                    );
                    println!(
                        "  files on right: {:>9}  ({})",
                        s.files_right,
                        tandem::model::human_bytes(s.bytes_right)
                    );
                    println!("  only left:      {:>9}", s.only_left);
                    println!("  only right:     {:>9}", s.only_right);
                    println!("  on both:        {:>9}", s.on_both);
                    println!("  differing:      {:>9}  (size or time)", s.differing);
                    if s.unknown > 0 {
                        println!("  unreadable or not syncable: {}", s.unknown);
                    }
                }
            }
            Ok(0)
        }
        Cmd::Conflicts { cmd } => conflicts(&cli, cmd),
        Cmd::Resync {
            path,
            target,
            dry_run,
            json,
        } => {
            let (config, all) = pairs(target)?;
            // An absolute path picks the pair whose root holds it; else there must be one.
            let chosen: Vec<&PairConfig> = if all.len() == 1 {
                all.iter().collect()
            } else {
                all.iter()
                    .filter(|p| api::resync_path(p, path).is_ok() && Path::new(path).is_absolute())
                    .collect()
            };
            let [p] = chosen[..] else {
                return Err(ApiError::Usage(format!("{path}: give --pair NAME (or an absolute path below one pair's root)")).into());
            };
            api::resync_path(p, path)?;
            let state = state_path(&cli.state, config.as_ref());
            // A running service holds the pair: its worker does it, between its own runs.
            let body = serde_json::json!({"path": path, "dry_run": dry_run}).to_string();
            let route = format!("/api/pairs/{}/resync", url_escape(&p.name));
            if let Some(answer) = through_service(&state, &route, &body)? {
                let v = match answer {
                    Ok(v) => v,
                    Err(exit) => return Ok(exit),
                };
                if *json {
                    println!("{v}");
                } else {
                    println!(
                        "resynced {path} through the running service (run #{}): {} copied, {} conflicts, {} failed",
                        v["run"], v["counts"]["copied"], v["counts"]["conflicts"], v["counts"]["failed"]
                    );
                }
                return Ok(if v["ok"] == true { 0 } else { 1 });
            }
            let mut store = if *dry_run && !state.exists() {
                tandem::state::Store::in_memory()?
            } else {
                api::open_state(&state)?
            };
            let rep = api::resync(&mut store, p, path, *dry_run)?;
            print_report(&rep, *json)?;
            Ok(rep.exit_code())
        }
        Cmd::History {
            run: Some(id), csv, json, ..
        } => {
            let store = api::open_state(&state_path(&cli.state, None))?;
            let rows = store.journal(*id)?;
            let mut out = std::io::stdout().lock();
            if *json {
                for r in &rows {
                    writeln!(out, "{}", serde_json::to_string(r)?)?;
                }
            } else {
                if *csv {
                    writeln!(out, "seq,at,op,side,path,rule,status,bytes,detail")?;
                }
                for r in &rows {
                    let v = serde_json::to_value(r)?;
                    let f = |k: &str| match &v[k] {
                        serde_json::Value::String(s) => s.clone(),
                        serde_json::Value::Null => String::new(),
                        other => other.to_string(),
                    };
                    if *csv {
                        writeln!(
                            out,
                            "{},{},{},{},{},{},{},{},{}",
                            f("seq"),
                            fmt_time(v["at"].as_i64().unwrap_or(0)),
                            f("op"),
                            f("side"),
                            api::csv_field(&f("path")),
                            f("rule"),
                            f("status"),
                            f("bytes"),
                            api::csv_field(&f("detail"))
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
            }
            Ok(0)
        }
        Cmd::History { csv, json, limit, .. } => {
            let store = api::open_state(&state_path(&cli.state, None))?;
            let runs = api::history(
                &store,
                &tandem::state::RunFilter {
                    limit: Some(*limit),
                    ..Default::default()
                },
            )?;
            let mut out = std::io::stdout().lock();
            if *json {
                for r in &runs {
                    writeln!(out, "{}", serde_json::to_string(r)?)?;
                }
            } else if *csv {
                write!(out, "{}", api::runs_csv(&runs))?;
            } else {
                for r in &runs {
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
                        tandem::model::human_bytes(c.bytes),
                        r.error.as_ref().map(|e| format!(" - {e}")).unwrap_or_default()
                    )?;
                }
            }
            Ok(0)
        }
        Cmd::Run { target, listen, log_dir } => {
            let (config, pairs) = pairs(target)?;
            let state = state_path(&cli.state, config.as_ref());
            let state = std::path::absolute(&state).unwrap_or(state);
            let listen = listen
                .or_else(|| config.as_ref().and_then(|c| c.listen))
                .unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("valid default"));
            let cfg = tandem::service::ServiceConfig {
                pairs,
                state: state.clone(),
                email: config.as_ref().and_then(|c| c.email.clone()),
                config_file: target.config.clone().filter(|_| target.pair.is_none()),
                desktop: config.as_ref().map(|c| c.desktop.clone()).unwrap_or_default(),
            };
            let logs = log_dir
                .clone()
                .or_else(|| config.as_ref().and_then(|c| c.log_dir.clone()))
                .unwrap_or_else(|| cfg.default_log_dir());
            let _guard = tandem::service::init_logs(&logs, cli.verbose > 0)?;
            let names: Vec<String> = cfg.pairs.iter().map(|p| p.name.clone()).collect();
            tandem::http::run_foreground(cfg, listen, |url, login| {
                println!(
                    "tandem: watching {} pair{} ({})",
                    names.len(),
                    if names.len() == 1 { "" } else { "s" },
                    names.join(", ")
                );
                println!("tandem: web UI {login}  (one-time link; later ones: `tandem login-link`)");
                println!("tandem: API {url}  (token: `tandem token`; status: `tandem status`)");
                println!("tandem: logs in {}", logs.display());
                let _ = std::io::stdout().flush();
            })?;
            Ok(0)
        }
        Cmd::Pause { pair } => service_call(&cli, "POST", &pair_route(pair.as_deref(), "pause"), None),
        Cmd::Resume { pair, allow_mass_delete } => {
            let body = serde_json::json!({ "allow_mass_delete": allow_mass_delete }).to_string();
            service_call(&cli, "POST", &pair_route(pair.as_deref(), "resume"), Some(&body))
        }
        Cmd::SyncNow { pair } => service_call(&cli, "POST", &pair_route(pair.as_deref(), "sync"), None),
        Cmd::NotifyTest { config } => {
            let c = Config::load(config)?;
            let Some(email) = &c.email else {
                anyhow::bail!("{}: no [email] table configured", config.display());
            };
            match tandem::mail::send(
                email,
                "test mail",
                "This is a test mail from Tandem. If you can read it, mail notifications work.\n",
            ) {
                Ok(()) => {
                    println!("sent a test mail to {} through {}:{}", email.to.join(", "), email.host, email.port);
                    Ok(0)
                }
                Err(e) => {
                    eprintln!("tandem: test mail not sent: {e}");
                    Ok(1)
                }
            }
        }
        Cmd::Schedules { cmd } => schedules_cmd(&cli, cmd),
        Cmd::LoginLink => {
            let state = state_path(&cli.state, None);
            match tandem::http::call(&state, "POST", "/api/login-link", None)? {
                Some((200, body)) => {
                    let v: serde_json::Value = serde_json::from_str(&body)?;
                    println!("{}", v["url"].as_str().unwrap_or_default());
                    Ok(0)
                }
                Some((code, body)) => {
                    eprintln!("tandem: the service answered {code}: {body}");
                    Ok(1)
                }
                None => {
                    eprintln!("tandem: no service is running for {}", state.display());
                    Ok(2)
                }
            }
        }
        Cmd::Token => {
            // Only a running service's token: a token made here would open no service.
            let state = state_path(&cli.state, None);
            match tandem::http::service_token(&state)? {
                Some(token) => {
                    println!("{token}");
                    Ok(0)
                }
                None => {
                    eprintln!(
                        "tandem: no Tandem service is running for {}; start one with `tandem run` (or give --state FILE: the state file of the running service)",
                        state.display()
                    );
                    Ok(2)
                }
            }
        }
        Cmd::Status { json } => {
            let state = state_path(&cli.state, None);
            if let Some((code, body)) = tandem::http::call(&state, "GET", "/api/status", None)? {
                if code != 200 {
                    anyhow::bail!("the service answered {code}: {body}");
                }
                if *json {
                    println!("{body}");
                } else {
                    print_live_status(&serde_json::from_str(&body)?);
                }
                return Ok(0);
            }
            if !*json {
                println!("service: not running (status from the state file)");
            }
            let store = api::open_state(&state)?;
            let st = api::status(&store)?;
            if *json {
                println!("{}", serde_json::to_string(&st)?);
            } else if st.is_empty() {
                println!("no pair has been synced with this state file ({})", store.path().display());
            } else {
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
            Ok(0)
        }
    }
}

fn schedules_cmd(cli: &Cli, cmd: &ScheduleCmd) -> anyhow::Result<i32> {
    if let ScheduleCmd::Remove { name, pair, config } = cmd {
        let where_ = tandem::config::remove_schedule(config, pair, name)?;
        println!(
            "schedule {name:?}: {where_} in {}; a running service applies it at its next start",
            config.display()
        );
        return Ok(0);
    }
    let (config, paused) = match cmd {
        ScheduleCmd::Remove { .. } => unreachable!("handled above"),
        ScheduleCmd::List { config, .. } => (config, None),
        ScheduleCmd::Pause { config, .. } => (config, Some(true)),
        ScheduleCmd::Resume { config, .. } => (config, Some(false)),
    };
    let c = Config::load(config)?;
    let mut store = api::open_state(&state_path(&cli.state, Some(&c)))?;
    match (cmd, paused) {
        (ScheduleCmd::Pause { name, pair, .. } | ScheduleCmd::Resume { name, pair, .. }, Some(p)) => {
            let pc = c
                .pair(pair)
                .ok_or_else(|| ApiError::Usage(format!("{}: no pair named {pair:?}", config.display())))?;
            api::set_schedule_paused(&mut store, pc, name, p)?;
            println!("schedule {name:?} of pair {pair} {}", if p { "paused" } else { "resumed" });
            Ok(0)
        }
        (ScheduleCmd::List { json, .. }, _) => {
            let list = api::schedules(&store, &c.pairs)?;
            for s in &list {
                if *json {
                    println!("{}", serde_json::to_string(s)?);
                } else {
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
            }
            if list.is_empty() && !*json {
                println!("no schedules configured in {}", config.display());
            }
            Ok(0)
        }
        _ => unreachable!("every subcommand is matched above"),
    }
}

fn pair_route(pair: Option<&str>, verb: &str) -> String {
    match pair {
        Some(p) => format!("/api/pairs/{}/{verb}", url_escape(p)),
        None => format!("/api/{verb}"),
    }
}

fn url_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn service_call(cli: &Cli, method: &str, route: &str, body: Option<&str>) -> anyhow::Result<i32> {
    let state = state_path(&cli.state, None);
    match tandem::http::call(&state, method, route, body)? {
        None => {
            eprintln!(
                "tandem: no service is running for {} (start one with `tandem run`)",
                state.display()
            );
            Ok(2)
        }
        Some((code, _)) if (200..300).contains(&code) => Ok(0),
        Some((code, body)) => {
            eprintln!("tandem: the service answered {code}: {body}");
            Ok(if code == 404 { 2 } else { 1 })
        }
    }
}

/// Console and a daily rotating file (7 kept) for the service.
fn print_live_status(st: &serde_json::Value) {
    let paused_all = st["paused_all"].as_bool().unwrap_or(false);
    println!(
        "service: running (pid {}){}",
        st["pid"],
        if paused_all { ", everything paused" } else { "" }
    );
    for p in st["pairs"].as_array().into_iter().flatten() {
        let s = |k: &str| p[k].as_str().unwrap_or("").to_string();
        println!("pair {}  ({} <-> {})", s("pair"), s("left"), s("right"));
        let reason = p["reason"].as_str().map(|r| format!(" - {r}")).unwrap_or_default();
        println!("  state: {}{reason}", s("state"));
        for w in p["watch"].as_array().into_iter().flatten() {
            let why = w["reason"].as_str().map(|r| format!(" ({r})")).unwrap_or_default();
            println!(
                "  {} side: {}{why}",
                w["side"].as_str().unwrap_or(""),
                w["mode"].as_str().unwrap_or("")
            );
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
            tandem::model::human_bytes(b["bytes"].as_u64().unwrap_or(0)),
            b["large_items"],
            b["waiting_paths"]
        );
        for t in p["transfers"].as_array().into_iter().flatten() {
            let eta = t["eta_s"].as_u64().map(|e| format!(", {e} s left")).unwrap_or_default();
            println!(
                "    {} -> {}: {} of {} at {}/s{eta}",
                t["path"].as_str().unwrap_or(""),
                t["side"].as_str().unwrap_or(""),
                tandem::model::human_bytes(t["done"].as_u64().unwrap_or(0)),
                tandem::model::human_bytes(t["size"].as_u64().unwrap_or(0)),
                tandem::model::human_bytes(t["bytes_per_s"].as_u64().unwrap_or(0))
            );
        }
        println!("  open conflicts: {}", p["open_conflicts"]);
        println!("  operations in the last 24 h: {}", p["ops_last_24h"]);
    }
}

fn conflicts(cli: &Cli, cmd: &ConflictCmd) -> anyhow::Result<i32> {
    match cmd {
        ConflictCmd::List { pair, json } => {
            let store = api::open_state(&state_path(&cli.state, None))?;
            let list = api::conflicts(&store, pair.as_deref())?;
            for (pair, c) in &list {
                if *json {
                    println!("{}", serde_json::json!({"pair": pair, "conflict": c}));
                } else {
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
            }
            if list.is_empty() && !*json {
                println!("no open conflicts");
            }
            Ok(0)
        }
        ConflictCmd::Resolve { path, keep, pair, config } => {
            let cfg = config.as_deref().map(Config::load).transpose()?;
            let mut store = api::open_state(&state_path(&cli.state, cfg.as_ref()))?;
            let configured = cfg.as_ref().map(|c| c.pairs.clone()).unwrap_or_default();
            let p = api::conflict_pair(&store, path, pair.as_deref(), &configured)?;
            let keep = match keep {
                KeepArg::Left => Keep::Left,
                KeepArg::Right => Keep::Right,
                KeepArg::Both => Keep::Both,
            };
            // A running service holds the pair: it applies the decision itself.
            let state = state_path(&cli.state, cfg.as_ref());
            let body = serde_json::json!({"path": path, "keep": keep}).to_string();
            let route = format!("/api/pairs/{}/conflicts/resolve", url_escape(&p.name));
            if let Some(answer) = through_service(&state, &route, &body)? {
                let v = match answer {
                    Ok(v) => v,
                    Err(exit) => return Ok(exit),
                };
                println!(
                    "resolved {path} through the running service (run #{}): {} copied, {} failed",
                    v["run"], v["counts"]["copied"], v["counts"]["failed"]
                );
                return Ok(if v["ok"] == true { 0 } else { 1 });
            }
            let rep = api::resolve(&mut store, &p, path, keep)?;
            print_report(&rep, false)?;
            Ok(rep.exit_code())
        }
    }
}

/// POST to the running service of `state`, if one runs: its JSON answer, or (having said
/// what it answered) the exit code for a refusal: 2 for a bad request or an unknown pair.
fn through_service(state: &Path, route: &str, body: &str) -> anyhow::Result<Option<Result<serde_json::Value, i32>>> {
    let Some((code, answer)) = tandem::http::call(state, "POST", route, Some(body))? else {
        return Ok(None);
    };
    let v: serde_json::Value = serde_json::from_str(&answer).unwrap_or_default();
    if code != 200 {
        eprintln!("tandem: the service answered {code}: {answer}");
        return Ok(Some(Err(if code == 400 || code == 404 || v["error"]["code"] == "bad_path" {
            2
        } else {
            1
        })));
    }
    Ok(Some(Ok(v)))
}

fn describe(a: &Action) -> String {
    match a {
        Action::Rename { side, from, to, .. } => format!("rename  {side:<5} {from} -> {to}"),
        Action::ClashRename { side, from, to, .. } => {
            format!("clash   {side:<5} {from} -> {to} (older version kept)")
        }
        Action::MkDir { side, path, .. } => format!("mkdir   {side:<5} {path}"),
        Action::Copy { side, path, src, .. } => format!(
            "copy    {:<5} {path} -> {side} ({})",
            side.other(),
            tandem::model::human_bytes(src.size)
        ),
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

fn print_report(rep: &SyncReport, json: bool) -> anyhow::Result<()> {
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
                Some(tandem::engine::exec::Outcome::Failed { error }) => format!("  FAILED: {error}"),
                Some(tandem::engine::exec::Outcome::Deferred { reason }) => format!("  deferred: {reason}"),
                _ => String::new(),
            };
            writeln!(out, "{}{}", describe(a), tail)?;
        }
    }
    let c = &rep.counts;
    if json {
        let summary = serde_json::json!({"summary": {
            "pair": rep.pair, "run": rep.run_id, "status": rep.status, "dry_run": rep.run_id.is_none(),
            "actions": rep.plan.disk_actions().count(),
            "copied": c.copied, "renamed": c.renamed, "deleted": c.deleted, "trashed": c.trashed,
            "props": c.props, "conflicts": c.conflicts, "failed": c.failed, "skipped": c.skipped,
            "deferred": rep.deferred, "bytes": c.bytes, "by_rule": c.by_rule, "error": rep.fatal,
            "exit": rep.exit_code(),
        }});
        writeln!(out, "{summary}")?;
    } else {
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
                tandem::model::human_bytes(c.bytes),
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
    }
    Ok(())
}
