//! The subcommands of `tandem`: one function per subcommand, each resolving its pairs and
//! state file, calling `tandem::api` (or the running service through `tandem::http`) and
//! printing through `output`. Each returns the exit code the result calls for; errors go
//! back to `main`, which maps them to codes.
//! Must not touch: sync decisions or files of a pair; it only reads flags, calls
//! `tandem::api` / `tandem::http` and prints. It never names the local side.

use crate::cli::{Cli, Cmd, ConflictCmd, KeepArg, ScheduleCmd, SecretCmd, ServiceCmd, Target};
use crate::output::{self, print_report};
use std::io::Write;
use std::path::{Path, PathBuf};
use tandem::api::{self, ApiError, SyncRequest};
use tandem::config::{Config, EmailConfig, PairConfig};
use tandem::engine::plan::Keep;
use tandem::state::Store;

/// The default API address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7700";

/// Log to stderr at the level `-v` asks for (or `TANDEM_LOG`); `run` sets up its own logs.
pub fn init_console_log(cli: &Cli) {
    if matches!(
        &cli.cmd,
        Cmd::Run { .. }
            | Cmd::Service {
                cmd: ServiceCmd::Run { .. }
            }
    ) {
        return;
    }
    let level = match cli.verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TANDEM_LOG").unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level)),
        )
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}

/// Carry out the subcommand; the exit code it calls for.
pub fn run(cli: Cli) -> anyhow::Result<i32> {
    let cli = &cli;
    match &cli.cmd {
        Cmd::CheckConfig { file } => check_config_cmd(file),
        Cmd::Sync {
            target,
            dry_run,
            json,
            allow_mass_delete,
        } => sync_cmd(cli, target, *dry_run, *json, *allow_mass_delete),
        Cmd::Scan { target, json } => scan_cmd(target, *json),
        Cmd::Conflicts { cmd } => conflicts_cmd(cli, cmd),
        Cmd::Resync {
            path,
            target,
            dry_run,
            json,
        } => resync_cmd(cli, path, target, *dry_run, *json),
        Cmd::History {
            run: Some(id), csv, json, ..
        } => journal_cmd(cli, *id, *csv, *json),
        Cmd::History { csv, json, limit, .. } => history_cmd(cli, *csv, *json, *limit),
        Cmd::Run { target, listen, log_dir } => run_service(cli, target, *listen, log_dir.clone()),
        Cmd::Stop { timeout } => stop_cmd(cli, *timeout),
        Cmd::Service { cmd } => windows_service_cmd(cli, cmd),
        Cmd::Pause { pair } => service_call(cli, "POST", &pair_route(pair.as_deref(), "pause"), None),
        Cmd::Resume { pair, allow_mass_delete } => {
            let body = serde_json::json!({ "allow_mass_delete": allow_mass_delete }).to_string();
            service_call(cli, "POST", &pair_route(pair.as_deref(), "resume"), Some(&body))
        }
        Cmd::SyncNow { pair } => service_call(cli, "POST", &pair_route(pair.as_deref(), "sync"), None),
        Cmd::NotifyTest { config } => notify_test_cmd(config),
        Cmd::Schedules { cmd } => schedules_cmd(cli, cmd),
        Cmd::LoginLink => login_link_cmd(cli),
        Cmd::Token => token_cmd(cli),
        Cmd::Status { json } => status_cmd(cli, *json),
        Cmd::Secret { cmd } => secret_cmd(cmd),
    }
}

/// The state file: `--state`, else the config's, else the user's default.
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

/// The state at `path`; a dry run changes no state, so without a state file it plans from
/// an empty base.
fn open_or_empty(path: &Path, dry_run: bool) -> anyhow::Result<Store> {
    Ok(if dry_run && !path.exists() {
        Store::in_memory()?
    } else {
        api::open_state(path)?
    })
}

/// `tandem check-config FILE`.
fn check_config_cmd(file: &Path) -> anyhow::Result<i32> {
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

/// `tandem sync`: every pair once; the worst exit code of them. With one pair its error is
/// the command's; with several each error is reported and the next pair goes on.
fn sync_cmd(cli: &Cli, target: &Target, dry_run: bool, json: bool, allow_mass_delete: bool) -> anyhow::Result<i32> {
    let (config, pairs) = pairs(target)?;
    let path = state_path(&cli.state, config.as_ref());
    let mut store = open_or_empty(&path, dry_run)?;
    let req = SyncRequest {
        dry_run,
        allow_mass_delete,
        ..Default::default()
    };
    let mut worst = 0;
    let email = config.as_ref().and_then(|c| c.email.clone()).filter(|_| !dry_run);
    let mut fatal = None;
    for p in &pairs {
        let code = match sync_pair(&mut store, p, &req, json, email.as_ref())? {
            Ok(code) => code,
            Err(e) if pairs.len() > 1 => {
                eprintln!("tandem: {e} [{}]", e.code());
                e.exit_code()
            }
            Err(e) => {
                fatal = Some(e);
                break;
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

/// Sync one pair and print its report, queueing the mail the run calls for: its exit code,
/// or the error that stopped it (an outer error only when printing failed).
fn sync_pair(
    store: &mut Store,
    p: &PairConfig,
    req: &SyncRequest,
    json: bool,
    email: Option<&EmailConfig>,
) -> anyhow::Result<Result<i32, ApiError>> {
    match api::sync(store, p, req) {
        Ok(rep) => {
            print_report(&rep, json)?;
            if let Some(id) = rep.run_id.and_then(|_| store.find_pair(&p.left, &p.right).ok().flatten()) {
                tandem::mail::after_run(store, email, id, &rep, "manual");
            }
            Ok(Ok(rep.exit_code()))
        }
        Err(e) => {
            if e.exit_code() == 3 && email.is_some() {
                tandem::mail::enqueue(store, &[tandem::mail::guard_mail(&p.name, &e)]);
            }
            Ok(Err(e))
        }
    }
}

/// `tandem scan`: what each side holds and how they differ, changing nothing.
fn scan_cmd(target: &Target, json: bool) -> anyhow::Result<i32> {
    let (_, pairs) = pairs(target)?;
    for p in &pairs {
        let s = api::scan_summary(p)?;
        if json {
            println!("{}", serde_json::to_string(&s)?);
        } else {
            output::print_scan(&s);
        }
    }
    Ok(0)
}

/// `tandem resync PATH`: through the running service when one holds the pair, else here.
fn resync_cmd(cli: &Cli, path: &str, target: &Target, dry_run: bool, json: bool) -> anyhow::Result<i32> {
    let (config, all) = pairs(target)?;
    let resolved = api::resync_arg(&all, path);
    let path = &resolved;
    let p = resync_pair(&all, path)?;
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
        if json {
            println!("{v}");
        } else {
            println!(
                "resynced {path} through the running service (run #{}): {} copied, {} conflicts, {} failed",
                v["run"], v["counts"]["copied"], v["counts"]["conflicts"], v["counts"]["failed"]
            );
        }
        return Ok(if v["ok"] == true { 0 } else { 1 });
    }
    let mut store = open_or_empty(&state, dry_run)?;
    let rep = api::resync(&mut store, p, path, dry_run)?;
    print_report(&rep, json)?;
    Ok(rep.exit_code())
}

/// The pair a resync works on: the only one, or the one whose root holds an absolute path.
fn resync_pair<'a>(all: &'a [PairConfig], path: &str) -> Result<&'a PairConfig, ApiError> {
    let chosen: Vec<&PairConfig> = if all.len() == 1 {
        all.iter().collect()
    } else {
        all.iter()
            .filter(|p| api::resync_path(p, path).is_ok() && Path::new(path).is_absolute())
            .collect()
    };
    let [p] = chosen[..] else {
        return Err(ApiError::Usage(format!(
            "{path}: give --pair NAME (or an absolute path below one pair's root)"
        )));
    };
    Ok(p)
}

/// `tandem history --run N`: every action of one run.
fn journal_cmd(cli: &Cli, id: i64, csv: bool, json: bool) -> anyhow::Result<i32> {
    let store = api::open_state(&state_path(&cli.state, None))?;
    let rows = store.journal(id)?;
    output::print_journal(&rows, csv, json)?;
    Ok(0)
}

/// `tandem history`: the most recent runs.
fn history_cmd(cli: &Cli, csv: bool, json: bool, limit: u32) -> anyhow::Result<i32> {
    let store = api::open_state(&state_path(&cli.state, None))?;
    let runs = api::history(
        &store,
        &tandem::state::RunFilter {
            limit: Some(limit),
            ..Default::default()
        },
    )?;
    output::print_runs(&runs, csv, json)?;
    Ok(0)
}

/// What `tandem run` and the Windows service host: the service's configuration, where its
/// API listens, where its logs go.
pub struct Hosted {
    pub cfg: tandem::service::ServiceConfig,
    pub listen: std::net::SocketAddr,
    pub logs: PathBuf,
}

/// The service for `target`: the state is `--state`, else the config's, else `default_state`
/// (the Windows service's %ProgramData%), else the user's; logs go to `log_dir`, else the
/// config's, else next to the state.
pub fn hosted(
    cli_state: &Option<PathBuf>,
    target: &Target,
    listen: Option<std::net::SocketAddr>,
    log_dir: Option<PathBuf>,
    default_state: Option<PathBuf>,
) -> anyhow::Result<Hosted> {
    let (config, pairs) = pairs(target)?;
    let state = match (cli_state, config.as_ref().and_then(|c| c.state.clone()), default_state) {
        (None, None, Some(d)) => d,
        _ => state_path(cli_state, config.as_ref()),
    };
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
        .or_else(|| config.as_ref().and_then(|c| c.log_dir.clone()))
        .unwrap_or_else(|| cfg.default_log_dir());
    Ok(Hosted { cfg, listen, logs })
}

/// `tandem run`: the continuous service in the foreground, until it is stopped.
fn run_service(cli: &Cli, target: &Target, listen: Option<std::net::SocketAddr>, log_dir: Option<PathBuf>) -> anyhow::Result<i32> {
    let Hosted { cfg, listen, logs } = hosted(&cli.state, target, listen, log_dir, None)?;
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

/// `tandem stop`: ask the running service to stop, wait until it has.
fn stop_cmd(cli: &Cli, timeout: u64) -> anyhow::Result<i32> {
    let state = state_path(&cli.state, None);
    match tandem::http::call(&state, "POST", "/api/stop", None)? {
        None => {
            println!("tandem: no service is running for {}", state.display());
            Ok(0)
        }
        Some((200, body)) => {
            let pid = serde_json::from_str::<serde_json::Value>(&body)?["pid"].as_u64().unwrap_or(0) as u32;
            if tandem::http::wait_stopped(&state, pid, std::time::Duration::from_secs(timeout)) {
                println!("tandem: the service (pid {pid}) stopped");
                Ok(0)
            } else {
                eprintln!("tandem: the service (pid {pid}) is still stopping after {timeout} s (copies in flight finish or roll back)");
                Ok(1)
            }
        }
        Some((code, body)) => {
            eprintln!("tandem: the service answered {code}: {body}");
            Ok(1)
        }
    }
}

/// `tandem service ...`: the Windows service.
fn windows_service_cmd(cli: &Cli, cmd: &ServiceCmd) -> anyhow::Result<i32> {
    #[cfg(windows)]
    {
        crate::winservice::command(cli, cmd)
    }
    #[cfg(not(windows))]
    {
        let _ = (cli, cmd);
        Err(ApiError::Usage(
            "`tandem service` manages the Windows service; on Linux use the systemd units (tandem.service, tandem@.service: see the README)".into(),
        )
        .into())
    }
}

/// `tandem notify-test`: send a test mail with the config's [email] settings.
fn notify_test_cmd(config: &Path) -> anyhow::Result<i32> {
    let c = Config::load(config)?;
    let Some(email) = &c.email else {
        anyhow::bail!("{}: no [email] table configured", config.display());
    };
    match tandem::mail::send_test(email) {
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

/// `tandem login-link`: a fresh one-time sign-in link from the running service.
fn login_link_cmd(cli: &Cli) -> anyhow::Result<i32> {
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

/// `tandem token`: the running service's API token.
fn token_cmd(cli: &Cli) -> anyhow::Result<i32> {
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

/// `tandem status`: from the running service when there is one, else from the state file.
fn status_cmd(cli: &Cli, json: bool) -> anyhow::Result<i32> {
    let state = state_path(&cli.state, None);
    if let Some((code, body)) = tandem::http::call(&state, "GET", "/api/status", None)? {
        if code != 200 {
            anyhow::bail!("the service answered {code}: {body}");
        }
        if json {
            println!("{body}");
        } else {
            output::print_live_status(&serde_json::from_str(&body)?);
        }
        return Ok(0);
    }
    if !json {
        println!("service: not running (status from the state file)");
    }
    let store = api::open_state(&state)?;
    let st = api::status(&store)?;
    if json {
        println!("{}", serde_json::to_string(&st)?);
    } else if st.is_empty() {
        println!("no pair has been synced with this state file ({})", store.path().display());
    } else {
        output::print_stored_status(&st);
    }
    Ok(0)
}

/// `tandem schedules ...`: list, pause, resume or remove scheduled runs.
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
                    output::print_schedule(s);
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

/// `tandem conflicts ...`.
fn conflicts_cmd(cli: &Cli, cmd: &ConflictCmd) -> anyhow::Result<i32> {
    match cmd {
        ConflictCmd::List { pair, json } => conflicts_list(cli, pair.as_deref(), *json),
        ConflictCmd::Resolve { path, keep, pair, config } => conflicts_resolve(cli, path, *keep, pair.as_deref(), config.as_deref()),
    }
}

/// `tandem conflicts list`: the conflicts awaiting a decision.
fn conflicts_list(cli: &Cli, pair: Option<&str>, json: bool) -> anyhow::Result<i32> {
    let store = api::open_state(&state_path(&cli.state, None))?;
    let list = api::conflicts(&store, pair)?;
    for (pair, c) in &list {
        if json {
            println!("{}", serde_json::json!({"pair": pair, "conflict": c}));
        } else {
            output::print_conflict(pair, c);
        }
    }
    if list.is_empty() && !json {
        println!("no open conflicts");
    }
    Ok(0)
}

/// `tandem conflicts resolve PATH --keep ...`: through the running service when one holds
/// the pair, else here.
fn conflicts_resolve(cli: &Cli, path: &str, keep: KeepArg, pair: Option<&str>, config: Option<&Path>) -> anyhow::Result<i32> {
    let cfg = config.map(Config::load).transpose()?;
    let mut store = api::open_state(&state_path(&cli.state, cfg.as_ref()))?;
    let configured = cfg.as_ref().map(|c| c.pairs.clone()).unwrap_or_default();
    let p = api::conflict_pair(&store, path, pair, &configured)?;
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

/// The API route of `verb` for one pair, or for all.
fn pair_route(pair: Option<&str>, verb: &str) -> String {
    match pair {
        Some(p) => format!("/api/pairs/{}/{verb}", url_escape(p)),
        None => format!("/api/{verb}"),
    }
}

/// Percent-encode everything but the unreserved characters of a URL path segment.
fn url_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Ask the running service to do something: 0 when it did, 2 when none runs (or it knows no
/// such pair), 1 when it refused.
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

/// `tandem secret set|check|delete NAME`: the OS keyring's entry `tandem/NAME`. A
/// failure is printed here: exit 2 when it is the machine's or the input's (no keyring,
/// locked, a bad name, an empty secret), else 1.
fn secret_cmd(cmd: &SecretCmd) -> anyhow::Result<i32> {
    use api::keyring;
    let (SecretCmd::Set { name } | SecretCmd::Check { name } | SecretCmd::Delete { name }) = cmd;
    if let Err(why) = keyring::check_name(name) {
        eprintln!("tandem: keyring entry name {name:?}: expected {why}");
        return Ok(2);
    }
    let entry = keyring::describe(name);
    let done = match cmd {
        SecretCmd::Set { name } => read_secret(name).and_then(|secret| keyring::set(name, &secret)).map(|()| {
            println!("stored keyring entry {entry:?} in {}", keyring::STORE);
            0
        }),
        SecretCmd::Check { name } => keyring::exists(name).map(|found| {
            if found {
                println!("keyring entry {entry:?} exists in {}", keyring::STORE);
                0
            } else {
                println!("keyring entry {entry:?} not found: store it with `tandem secret set {name}`");
                1
            }
        }),
        SecretCmd::Delete { name } => keyring::delete(name).map(|found| {
            if found {
                println!("deleted keyring entry {entry:?}");
                0
            } else {
                println!("keyring entry {entry:?} not found: nothing deleted");
                1
            }
        }),
    };
    Ok(done.unwrap_or_else(|e| {
        eprintln!("tandem: {e}");
        use std::io::ErrorKind as K;
        match e.kind() {
            K::InvalidInput | K::NotFound | K::PermissionDenied | K::Unsupported => 2,
            _ => 1,
        }
    }))
}

/// The secret for `tandem secret set`: typed twice at a prompt without echo when stdin is
/// a terminal, else stdin's text without its trailing newline.
fn read_secret(name: &str) -> std::io::Result<String> {
    use std::io::{IsTerminal, Read};
    let invalid = |why: &str| std::io::Error::new(std::io::ErrorKind::InvalidInput, why.to_string());
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password(format!("Secret for keyring entry tandem/{name}: "))?;
        let again = rpassword::prompt_password("Again, to confirm: ")?;
        if first != again {
            return Err(invalid("the two entries differ: nothing stored"));
        }
        return Ok(first);
    }
    let limit = 4 * api::keyring::MAX_SECRET as u64 + 2;
    let mut bytes = Vec::new();
    std::io::stdin().lock().take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(invalid("stdin holds more than one secret's worth: nothing stored"));
    }
    let text = String::from_utf8(bytes).map_err(|_| invalid("stdin is not UTF-8 text: nothing stored"))?;
    Ok(text.trim_end_matches(['\n', '\r']).to_string())
}
