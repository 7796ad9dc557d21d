//! Tandem's desktop shell: the continuous service (`tandem::http::Host`) in the background,
//! its web UI in a window, a tray icon and menu, and toasts. This file is the composition
//! root: it reads the settings, starts the host (or hands over to a Tandem already running)
//! and wires the window, the tray, the engine follower and the stop signals into Tauri.
//! It owns only the wiring to Tauri and the notification service: what the tray shows, which
//! toasts to show, the first-run config and the autostart entry are decided in
//! `tandem::desktop`, every action is `tandem::service`'s. Must not touch: files, SQLite or
//! the engine other than through `tandem::http::Host` and `tandem::service::Service`.
#![cfg_attr(all(not(debug_assertions), target_os = "windows"), windows_subsystem = "windows")]

mod autostart;
mod follow;
mod toasts;
mod tray;
mod window;

use clap::Parser;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tandem::config::{Config, DesktopConfig};
use tandem::http::{Host, HostOptions};
use tandem::service::ServiceConfig;
use tauri::{AppHandle, RunEvent};

#[derive(Parser, Debug)]
#[command(
    name = "tandem-desktop",
    version,
    about = "Tandem in the tray: keeps folder pairs in sync, with its web UI in a window"
)]
struct Args {
    /// The settings file (created on first run).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Start in the tray without showing the window (as the autostart entry does).
    #[arg(long)]
    hidden: bool,
    /// Where the API and web UI listen (default: the config's `listen`, else a free port).
    #[arg(long, value_name = "ADDR")]
    listen: Option<std::net::SocketAddr>,
}

/// What the app keeps: the running service, and the tray if there is one.
struct Shell {
    host: Mutex<Option<Host>>,
    tray: Mutex<Option<(tauri::tray::TrayIcon, tray::TrayMenu)>>,
    config: PathBuf,
}

/// The settings read at start: their file (created on first run), its contents and the
/// service configuration drawn from them.
struct Settings {
    file: PathBuf,
    created: bool,
    config: Config,
    service: ServiceConfig,
}

/// A started host, with what the app needs to show it: where the window logs in, the
/// engine's events and the desktop settings.
struct Started {
    shell: Arc<Shell>,
    login: String,
    events: tandem::service::events::Receiver,
    desktop: DesktopConfig,
}

fn main() {
    let args = Args::parse();
    std::process::exit(match run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("tandem-desktop: {e:#}");
            tracing::error!("{e:#}");
            toasts::error("Tandem could not start", format!("{e:#}"));
            2
        }
    });
}

fn run(args: Args) -> anyhow::Result<i32> {
    let settings = load_settings(args.config.clone())?;
    let logs = settings
        .config
        .log_dir
        .clone()
        .unwrap_or_else(|| settings.service.default_log_dir());
    let _log_guard = tandem::service::init_logs(&logs, false)?;
    if settings.created {
        tracing::info!(file = %settings.file.display(), "first run: created a settings file");
    }
    if already_running(&settings.service.state)? {
        return Ok(0);
    }
    let started = start_host(settings, args.listen)?;
    run_app(started, !args.hidden)
}

/// Read the settings file (the given one or the default), creating it on first run.
fn load_settings(file: Option<PathBuf>) -> anyhow::Result<Settings> {
    let file = file.unwrap_or_else(tandem::desktop::default_config_file);
    let file = std::path::absolute(&file).unwrap_or(file);
    let created = tandem::desktop::first_run(&file)?;
    let config = Config::load(&file)?;
    let service = ServiceConfig::from_config(&config, None);
    Ok(Settings {
        file,
        created,
        config,
        service,
    })
}

/// Single instance: a Tandem already running on this state file shows its window (true);
/// a headless service on it is an error.
fn already_running(state: &Path) -> anyhow::Result<bool> {
    match tandem::http::call(state, "POST", "/api/window", Some(r#"{"page":null}"#))? {
        Some((204, _)) => {
            println!("tandem-desktop: Tandem is already running; its window is shown");
            return Ok(true);
        }
        Some((409, body)) => {
            anyhow::bail!(
                "a headless Tandem service (`tandem run`) already syncs with {}: stop it first, or open its web UI ({})",
                state.display(),
                serde_json::from_str::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|v| v["message"].as_str().map(String::from))
                    .unwrap_or(body)
            );
        }
        Some((code, body)) => tracing::warn!("a Tandem found on this state file answered {code}: {body}; starting anew"),
        None => {}
    }
    Ok(false)
}

/// Start the service and its API server, and make the autostart entry match the settings.
fn start_host(settings: Settings, listen: Option<std::net::SocketAddr>) -> anyhow::Result<Started> {
    let listen = listen
        .or(settings.config.listen)
        .unwrap_or_else(|| "127.0.0.1:0".parse().expect("valid address"));
    let desktop = settings.service.desktop.clone();
    let to_settings = settings.created || settings.config.pairs.is_empty();
    let host = Host::start(settings.service, &HostOptions { listen, window: true })?;
    tracing::info!(url = host.url(), "web UI and API listening");
    let login = if to_settings {
        host.login_link_to("settings")?
    } else {
        host.login_link()?
    };
    let events = host.service().subscribe();
    let shell = Arc::new(Shell {
        host: Mutex::new(Some(host)),
        tray: Mutex::new(None),
        config: settings.file,
    });
    autostart::apply(&shell.config, desktop.autostart);
    Ok(Started {
        shell,
        login,
        events,
        desktop,
    })
}

/// Run the Tauri app until it exits (Quit, or a stop signal); closing the window only hides it.
fn run_app(started: Started, show: bool) -> anyhow::Result<i32> {
    let shell = started.shell.clone();
    let app = tauri::Builder::default()
        .manage(shell.clone())
        .setup(move |app| setup(app, started, show))
        .on_window_event(window::hide_on_close)
        .build(tauri::generate_context!())?;
    app.run(move |_app, event| on_run_event(&shell, event));
    Ok(0)
}

/// Once Tauri runs: the window, the tray, the engine follower and the stop signals.
fn setup(app: &mut tauri::App, started: Started, show: bool) -> Result<(), Box<dyn std::error::Error>> {
    window::build(app, &started.login, show)?;
    let handle = app.handle().clone();
    tray::install(&handle, &started.shell);
    tauri::async_runtime::spawn(follow::follow_engine(
        handle.clone(),
        started.shell,
        started.events,
        started.desktop,
    ));
    quit_on_stop_signal(handle);
    Ok(())
}

/// SIGTERM/SIGINT quit like the menu's Quit (the service stops gracefully).
fn quit_on_stop_signal(app: AppHandle) {
    tauri::async_runtime::spawn(async move {
        tandem::http::stop_signal().await;
        tracing::info!("stop requested");
        app.exit(0);
    });
}

/// The app stays up without windows, and stops the service as it exits.
fn on_run_event(shell: &Shell, event: RunEvent) {
    match event {
        RunEvent::ExitRequested { api, code, .. } if code.is_none() => api.prevent_exit(),
        RunEvent::Exit => {
            if let Some(host) = shell.host.lock().unwrap().take() {
                tracing::info!("stopping the service");
                if let Err(e) = host.stop() {
                    tracing::error!("{e}");
                }
            }
        }
        _ => {}
    }
}
