//! The Windows service: `tandem service install|uninstall|start|stop|status` through the
//! service control manager, and `tandem service run`, what the manager starts. That is the
//! continuous service of `tandem run`, stopped by the manager's stop or shutdown request
//! through the same graceful path as Ctrl-C (copies in flight finish or roll back, the state
//! is flushed), its state and logs under %ProgramData%\Tandem unless the config names
//! others. Start, stop, safety-guard stops and failures go to the Windows event log
//! (Application log, source "Tandem").
//! Must not touch: sync decisions; it only hosts what `commands::hosted` describes.

use crate::cli::{Cli, ServiceCmd, Target};
use crate::commands::{hosted, Hosted};
use anyhow::Context;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};
use tandem::api::ApiError;
use tandem::service::events::Event;
use tandem::side::win::wide;
use windows_service::service::{
    ServiceAccess, ServiceAction, ServiceActionType, ServiceControl, ServiceControlAccept, ServiceErrorControl, ServiceExitCode,
    ServiceFailureActions, ServiceFailureResetPeriod, ServiceInfo, ServiceStartType, ServiceState, ServiceStatus, ServiceType,
};
use windows_service::service_control_handler::{self, ServiceControlHandlerResult, ServiceStatusHandle};
use windows_service::service_manager::{ServiceManager, ServiceManagerAccess};
use windows_service::{define_windows_service, service_dispatcher};

/// The service's name in the service control manager and the event log.
const NAME: &str = "Tandem";
const DISPLAY: &str = "Tandem folder sync";

pub fn command(cli: &Cli, cmd: &ServiceCmd) -> anyhow::Result<i32> {
    match cmd {
        ServiceCmd::Install { config, listen, manual } => install(cli, config, *listen, *manual),
        ServiceCmd::Uninstall => uninstall(),
        ServiceCmd::Start => start(),
        ServiceCmd::Stop => stop(),
        ServiceCmd::Status { json } => status(*json),
        ServiceCmd::Run { config, listen } => run(cli, config, *listen),
    }
}

/// Where the service keeps its state (and, next to it, its logs) unless told otherwise.
fn program_data_state() -> PathBuf {
    let base = std::env::var_os("ProgramData").map_or_else(|| PathBuf::from(r"C:\ProgramData"), PathBuf::from);
    base.join("Tandem").join("tandem.db")
}

fn manager(access: ServiceManagerAccess) -> anyhow::Result<ServiceManager> {
    ServiceManager::local_computer(None::<&str>, access)
        .context("cannot reach the service control manager (run this from an administrator's prompt)")
}

fn open(access: ServiceAccess) -> anyhow::Result<windows_service::service::Service> {
    manager(ServiceManagerAccess::CONNECT)?
        .open_service(NAME, access)
        .with_context(|| format!("the service {NAME:?} is not installed (`tandem service install --config FILE`)"))
}

fn install(cli: &Cli, config: &Path, listen: Option<std::net::SocketAddr>, manual: bool) -> anyhow::Result<i32> {
    let config = std::path::absolute(config).with_context(|| format!("{}", config.display()))?;
    // The config is read now, so a mistake shows here rather than in the event log.
    let target = Target {
        left: None,
        right: None,
        config: Some(config.clone()),
        pair: None,
    };
    let Hosted { cfg, listen, logs } = hosted(&cli.state, &target, listen, None, Some(program_data_state()))?;
    // The service's folder holds its API token and state: SYSTEM and administrators only
    // (%ProgramData% lets every user read what is below it).
    if let Some(dir) = cfg.state.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        admins_only(dir).with_context(|| format!("cannot restrict {} to SYSTEM and administrators", dir.display()))?;
    }
    let mut args: Vec<OsString> = Vec::new();
    if let Some(s) = &cli.state {
        args.extend([OsString::from("--state"), std::path::absolute(s)?.into_os_string()]);
    }
    args.extend(["service", "run", "--config"].map(OsString::from));
    args.push(config.clone().into_os_string());
    args.extend([OsString::from("--listen"), OsString::from(listen.to_string())]);
    let info = ServiceInfo {
        name: NAME.into(),
        display_name: DISPLAY.into(),
        service_type: ServiceType::OWN_PROCESS,
        start_type: if manual {
            ServiceStartType::OnDemand
        } else {
            ServiceStartType::AutoStart
        },
        error_control: ServiceErrorControl::Normal,
        executable_path: std::env::current_exe()?,
        launch_arguments: args,
        dependencies: vec![],
        account_name: None,
        account_password: None,
    };
    let svc = manager(ServiceManagerAccess::CONNECT | ServiceManagerAccess::CREATE_SERVICE)?
        .create_service(&info, ServiceAccess::CHANGE_CONFIG | ServiceAccess::START)
        .with_context(|| format!("cannot install the service {NAME:?} (already installed? `tandem service uninstall` first)"))?;
    svc.set_description("Keeps folders in step in both directions (Tandem). Web UI on loopback: `tandem login-link`.")?;
    // Restarted when it fails: after 10 s, 1 min, then every 5 min; the count resets after a day.
    let restart = |secs| ServiceAction {
        action_type: ServiceActionType::Restart,
        delay: Duration::from_secs(secs),
    };
    let policy = svc
        .update_failure_actions(ServiceFailureActions {
            reset_period: ServiceFailureResetPeriod::After(Duration::from_secs(86_400)),
            reboot_msg: None,
            command: None,
            actions: Some(vec![restart(10), restart(60), restart(300)]),
        })
        // An exit with an error (not only a crash) counts as a failure.
        .and_then(|()| svc.set_failure_actions_on_non_crash_failures(true));
    if let Err(e) = policy {
        // Installed all the same (wine's service manager knows no failure actions).
        eprintln!("tandem: warning: the restart-on-failure policy was not set: {e}");
    }
    if let Err(e) = register_event_source() {
        eprintln!("tandem: the event log source {NAME:?} was not registered ({e}); events still go to the Application log");
    }
    println!("installed the service {NAME:?} ({DISPLAY}) for {}", config.display());
    println!(
        "  pairs: {}",
        cfg.pairs.iter().map(|p| p.name.as_str()).collect::<Vec<_>>().join(", ")
    );
    println!("  state: {}   logs: {}", cfg.state.display(), logs.display());
    println!(
        "  web UI on http://{listen}; a sign-in link: tandem login-link --state \"{}\"",
        cfg.state.display()
    );
    println!(
        "  starts {}; now: tandem service start",
        if manual { "by hand" } else { "with the machine" }
    );
    Ok(0)
}

/// Give `dir` a protected DACL: full control for SYSTEM and the administrators, inherited
/// by what is created below; nobody else.
fn admins_only(dir: &Path) -> std::io::Result<()> {
    tandem::side::win::set_dacl(dir, "D:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)")
}

fn wait_for(svc: &windows_service::service::Service, want: ServiceState, timeout: Duration) -> anyhow::Result<bool> {
    let deadline = Instant::now() + timeout;
    loop {
        if svc.query_status()?.current_state == want {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn start() -> anyhow::Result<i32> {
    let svc = open(ServiceAccess::START | ServiceAccess::QUERY_STATUS)?;
    if svc.query_status()?.current_state == ServiceState::Running {
        println!("the service {NAME:?} is already running");
        return Ok(0);
    }
    svc.start(&[] as &[&OsStr]).context("cannot start the service")?;
    if wait_for(&svc, ServiceState::Running, Duration::from_secs(60))? {
        println!("the service {NAME:?} is running");
        Ok(0)
    } else {
        eprintln!("tandem: the service {NAME:?} did not report running within 60 s: see the Application event log and its logs");
        Ok(1)
    }
}

fn stop_and_wait(svc: &windows_service::service::Service) -> anyhow::Result<bool> {
    if svc.query_status()?.current_state == ServiceState::Stopped {
        return Ok(true);
    }
    svc.stop().context("cannot stop the service")?;
    wait_for(svc, ServiceState::Stopped, Duration::from_secs(180))
}

fn stop() -> anyhow::Result<i32> {
    let svc = open(ServiceAccess::STOP | ServiceAccess::QUERY_STATUS)?;
    if stop_and_wait(&svc)? {
        println!("the service {NAME:?} is stopped");
        Ok(0)
    } else {
        eprintln!("tandem: the service {NAME:?} is still stopping after 180 s (copies in flight finish or roll back)");
        Ok(1)
    }
}

fn uninstall() -> anyhow::Result<i32> {
    let svc = open(ServiceAccess::STOP | ServiceAccess::QUERY_STATUS | ServiceAccess::DELETE)?;
    if !stop_and_wait(&svc)? {
        anyhow::bail!("the service {NAME:?} does not stop; not removed");
    }
    svc.delete().context("cannot remove the service")?;
    let _ = unregister_event_source();
    println!("removed the service {NAME:?} (its state and logs stay)");
    Ok(0)
}

fn status(json: bool) -> anyhow::Result<i32> {
    let svc = match open(ServiceAccess::QUERY_STATUS | ServiceAccess::QUERY_CONFIG) {
        Ok(s) => s,
        Err(e) => {
            if json {
                println!("{}", serde_json::json!({ "installed": false }));
            } else {
                println!("{e:#}");
            }
            return Ok(3);
        }
    };
    let st = svc.query_status()?;
    let cfg = svc.query_config()?;
    let state = format!("{:?}", st.current_state).to_lowercase();
    let start = format!("{:?}", cfg.start_type).to_lowercase();
    if json {
        println!(
            "{}",
            serde_json::json!({
                "installed": true,
                "state": state,
                "start": start,
                "pid": st.process_id,
                "command": cfg.executable_path.display().to_string(),
            })
        );
    } else {
        println!("service {NAME:?}: {state} (start: {start})");
        println!("  {}", cfg.executable_path.display());
    }
    // As `systemctl is-active`: 0 running, 3 otherwise.
    Ok(if st.current_state == ServiceState::Running { 0 } else { 3 })
}

// ------------------------------------------------------------------ under the manager

/// What `service run` was given, for the service's main (the manager passes it no
/// arguments of ours).
struct RunArgs {
    state: Option<PathBuf>,
    config: PathBuf,
    listen: Option<std::net::SocketAddr>,
    verbose: bool,
}

static RUN: OnceLock<RunArgs> = OnceLock::new();
/// The exit code `service run` ends with.
static EXIT: Mutex<i32> = Mutex::new(0);

fn run(cli: &Cli, config: &Path, listen: Option<std::net::SocketAddr>) -> anyhow::Result<i32> {
    let _ = RUN.set(RunArgs {
        state: cli.state.clone(),
        config: config.to_path_buf(),
        listen,
        verbose: cli.verbose > 0,
    });
    service_dispatcher::start(NAME, ffi_service_main).map_err(|e| {
        ApiError::Usage(format!(
            "`tandem service run` is what the service control manager starts ({e}): use `tandem service start`, or `tandem run` in a console"
        ))
    })?;
    Ok(*EXIT.lock().unwrap())
}

define_windows_service!(ffi_service_main, service_main);

fn report(h: ServiceStatusHandle, state: ServiceState, exit: ServiceExitCode, wait: Duration) {
    let accept = if state == ServiceState::Running {
        ServiceControlAccept::STOP | ServiceControlAccept::SHUTDOWN
    } else {
        ServiceControlAccept::empty()
    };
    let _ = h.set_service_status(ServiceStatus {
        service_type: ServiceType::OWN_PROCESS,
        current_state: state,
        controls_accepted: accept,
        exit_code: exit,
        checkpoint: 0,
        wait_hint: wait,
        process_id: None,
    });
}

fn service_main(_args: Vec<OsString>) {
    let Some(args) = RUN.get() else { return };
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let tx = Mutex::new(Some(tx));
    let handler = move |c: ServiceControl| match c {
        ServiceControl::Stop | ServiceControl::Shutdown => {
            if let Some(t) = tx.lock().unwrap().take() {
                let _ = t.send(());
            }
            ServiceControlHandlerResult::NoError
        }
        ServiceControl::Interrogate => ServiceControlHandlerResult::NoError,
        _ => ServiceControlHandlerResult::NotImplemented,
    };
    let h = match service_control_handler::register(NAME, handler) {
        Ok(h) => h,
        Err(e) => {
            event_log(EventKind::Error, &format!("cannot register with the service control manager: {e}"));
            *EXIT.lock().unwrap() = 1;
            return;
        }
    };
    report(h, ServiceState::StartPending, ServiceExitCode::Win32(0), Duration::from_secs(60));
    match host(args, h, rx) {
        Ok(()) => {
            event_log(EventKind::Info, "stopped");
            report(h, ServiceState::Stopped, ServiceExitCode::Win32(0), Duration::ZERO);
        }
        Err(e) => {
            event_log(EventKind::Error, &format!("stopped by an error: {e:#}"));
            *EXIT.lock().unwrap() = 1;
            // A service-specific exit code: the manager's restart policy applies.
            report(h, ServiceState::Stopped, ServiceExitCode::ServiceSpecific(1), Duration::ZERO);
        }
    }
}

/// The continuous service until the manager asks it to stop.
fn host(args: &RunArgs, h: ServiceStatusHandle, stop: tokio::sync::oneshot::Receiver<()>) -> anyhow::Result<()> {
    let target = Target {
        left: None,
        right: None,
        config: Some(args.config.clone()),
        pair: None,
    };
    let Hosted { cfg, listen, logs } = hosted(&args.state, &target, args.listen, None, Some(program_data_state()))?;
    let _guard = tandem::service::init_logs(&logs, args.verbose)?;
    let names: Vec<String> = cfg.pairs.iter().map(|p| p.name.clone()).collect();
    let state = cfg.state.clone();
    tandem::http::run_until(
        cfg,
        listen,
        |host| {
            report(h, ServiceState::Running, ServiceExitCode::Win32(0), Duration::ZERO);
            event_log(
                EventKind::Info,
                &format!(
                    "started: {} pair(s) ({}); web UI on {} (sign in: tandem login-link --state \"{}\"); logs in {}",
                    names.len(),
                    names.join(", "),
                    host.url(),
                    state.display(),
                    logs.display()
                ),
            );
            let events = host.service().subscribe();
            std::thread::Builder::new()
                .name("tandem-eventlog".into())
                .spawn(move || log_events(events))
                .map_err(|e| ApiError::Internal(format!("cannot start the event log thread: {e}")))?;
            Ok(())
        },
        async move {
            let _ = stop.await;
            event_log(EventKind::Info, "stop requested by the service control manager");
            // Copies in flight finish or roll back: say how long that may take.
            report(h, ServiceState::StopPending, ServiceExitCode::Win32(0), Duration::from_secs(120));
        },
    )?;
    Ok(())
}

/// Safety-guard stops and errors into the event log, each once until it changes.
fn log_events(mut events: tandem::service::events::Receiver) {
    use tokio::sync::broadcast::error::RecvError;
    let mut last: std::collections::HashMap<Option<String>, String> = Default::default();
    loop {
        match events.blocking_recv() {
            Ok(Event::Paused { pair, reason }) => {
                if last.insert(pair.clone(), reason.clone()).as_ref() != Some(&reason) {
                    event_log(
                        EventKind::Warning,
                        &format!("{}: paused: {reason}", pair.as_deref().unwrap_or("all pairs")),
                    );
                }
            }
            Ok(Event::Error { pair, code, message }) => {
                let text = format!("{code}: {message}");
                if last.insert(pair.clone(), text.clone()).as_ref() != Some(&text) {
                    event_log(EventKind::Error, &format!("{}: {text}", pair.as_deref().unwrap_or("service")));
                }
            }
            Ok(Event::Resumed { pair }) => {
                last.remove(&pair);
            }
            Ok(Event::RunFinished { pair, failed: 0, .. }) => {
                last.remove(&Some(pair));
            }
            Ok(Event::ServiceStopping) | Err(RecvError::Closed) => return,
            Ok(_) | Err(RecvError::Lagged(_)) => {}
        }
    }
}

// ------------------------------------------------------------------ the event log

#[derive(Clone, Copy)]
enum EventKind {
    Info,
    Warning,
    Error,
}

const EVENT_SOURCE_KEY: &str = r"SYSTEM\CurrentControlSet\Services\EventLog\Application\Tandem";

/// Register "Tandem" as an event source whose messages are the text itself: Windows' own
/// EventCreate.exe holds a message table whose ids 1-1000 are "%1" (as `eventcreate`
/// registers its sources).
fn register_event_source() -> std::io::Result<()> {
    use windows_sys::Win32::System::Registry::*;
    let mut key: HKEY = std::ptr::null_mut();
    let sub = wide(EVENT_SOURCE_KEY);
    // SAFETY: valid wide strings, out-pointers we own; the key is closed below.
    let rc = unsafe {
        RegCreateKeyExW(
            HKEY_LOCAL_MACHINE,
            sub.as_ptr(),
            0,
            std::ptr::null(),
            REG_OPTION_NON_VOLATILE,
            KEY_WRITE,
            std::ptr::null(),
            &mut key,
            std::ptr::null_mut(),
        )
    };
    if rc != 0 {
        return Err(std::io::Error::from_raw_os_error(rc as i32));
    }
    let file = wide(r"%SystemRoot%\System32\EventCreate.exe");
    let types: u32 = 7;
    // SAFETY: the key is open; the data pointers and byte lengths match their buffers.
    let rc = unsafe {
        let a = RegSetValueExW(
            key,
            wide("EventMessageFile").as_ptr(),
            0,
            REG_EXPAND_SZ,
            file.as_ptr().cast(),
            (file.len() * 2) as u32,
        );
        let b = RegSetValueExW(key, wide("TypesSupported").as_ptr(), 0, REG_DWORD, (&types as *const u32).cast(), 4);
        RegCloseKey(key);
        if a != 0 {
            a
        } else {
            b
        }
    };
    if rc != 0 {
        return Err(std::io::Error::from_raw_os_error(rc as i32));
    }
    Ok(())
}

fn unregister_event_source() -> std::io::Result<()> {
    use windows_sys::Win32::System::Registry::*;
    // SAFETY: a valid wide string naming a key below HKLM.
    let rc = unsafe { RegDeleteTreeW(HKEY_LOCAL_MACHINE, wide(EVENT_SOURCE_KEY).as_ptr()) };
    if rc != 0 {
        return Err(std::io::Error::from_raw_os_error(rc as i32));
    }
    Ok(())
}

/// One entry in the Application log (and the service's own log).
fn event_log(kind: EventKind, text: &str) {
    use windows_sys::Win32::System::EventLog::*;
    match kind {
        EventKind::Error => tracing::error!("{text}"),
        EventKind::Warning => tracing::warn!("{text}"),
        EventKind::Info => tracing::info!("{text}"),
    }
    let source = wide(NAME);
    // SAFETY: a valid wide string; the handle is checked and deregistered below.
    let h = unsafe { RegisterEventSourceW(std::ptr::null(), source.as_ptr()) };
    if h.is_null() {
        return;
    }
    let kind = match kind {
        EventKind::Info => EVENTLOG_INFORMATION_TYPE,
        EventKind::Warning => EVENTLOG_WARNING_TYPE,
        EventKind::Error => EVENTLOG_ERROR_TYPE,
    };
    let msg = wide(text);
    let strings = [msg.as_ptr()];
    // SAFETY: one valid wide string in `strings`; no user SID, no raw data.
    unsafe {
        ReportEventW(h, kind, 0, 1, std::ptr::null_mut(), 1, 0, strings.as_ptr(), std::ptr::null());
        DeregisterEventSource(h);
    }
}
