//! Tandem's desktop shell: the continuous service (`tandem::http::Host`) in the background,
//! its web UI in a window, a tray icon and menu, and toasts. It owns only the wiring to
//! Tauri and the notification service: what the tray shows, which toasts to show, the
//! first-run config and the autostart entry are decided in `tandem::desktop`. Must not
//! touch: files, SQLite or the engine other than through `tandem::http::Host` and
//! `tandem::service::Service`.
#![cfg_attr(all(not(debug_assertions), target_os = "windows"), windows_subsystem = "windows")]

use clap::Parser;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tandem::desktop::{self, Toast, TrayIcon, TrayView};
use tandem::http::{Host, HostOptions};
use tandem::service::events::Event;
use tauri::image::Image;
use tauri::menu::{Menu, MenuItem, PredefinedMenuItem};
use tauri::tray::TrayIconBuilder;
use tauri::{AppHandle, Manager, RunEvent, WebviewUrl, WebviewWindowBuilder, WindowEvent};

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

/// The menu items whose text or state follows the engine.
struct TrayMenu {
    status: MenuItem<tauri::Wry>,
    pause: MenuItem<tauri::Wry>,
    resume: MenuItem<tauri::Wry>,
}

/// What the app keeps: the running service, and the tray if there is one.
struct Shell {
    host: Mutex<Option<Host>>,
    tray: Mutex<Option<(tauri::tray::TrayIcon, TrayMenu)>>,
    config: PathBuf,
}

fn main() {
    let args = Args::parse();
    std::process::exit(match run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("tandem-desktop: {e:#}");
            tracing::error!("{e:#}");
            toast(&Toast {
                kind: tandem::config::ToastKind::Errors,
                title: "Tandem could not start".into(),
                body: format!("{e:#}"),
                page: "dashboard",
            });
            2
        }
    });
}

fn run(args: Args) -> anyhow::Result<i32> {
    let config_file = args.config.clone().unwrap_or_else(desktop::default_config_file);
    let config_file = std::path::absolute(&config_file).unwrap_or(config_file);
    let created = desktop::first_run(&config_file)?;
    let config = tandem::config::Config::load(&config_file)?;
    let cfg = tandem::service::ServiceConfig::from_config(&config, None);
    let logs = config.log_dir.clone().unwrap_or_else(|| cfg.default_log_dir());
    let _log_guard = tandem::service::init_logs(&logs, false)?;
    if created {
        tracing::info!(file = %config_file.display(), "first run: created a settings file");
    }

    // Single instance: a Tandem already running on this state file shows its window.
    match tandem::http::call(&cfg.state, "POST", "/api/window", Some(r#"{"page":null}"#))? {
        Some((204, _)) => {
            println!("tandem-desktop: Tandem is already running; its window is shown");
            return Ok(0);
        }
        Some((409, body)) => {
            anyhow::bail!(
                "a headless Tandem service (`tandem run`) already syncs with {}: stop it first, or open its web UI ({})",
                cfg.state.display(),
                serde_json::from_str::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|v| v["message"].as_str().map(String::from))
                    .unwrap_or(body)
            );
        }
        Some((code, body)) => tracing::warn!("a Tandem found on this state file answered {code}: {body}; starting anew"),
        None => {}
    }

    let listen = args
        .listen
        .or(config.listen)
        .unwrap_or_else(|| "127.0.0.1:0".parse().expect("valid address"));
    let desktop_cfg = cfg.desktop.clone();
    let host = Host::start(cfg, &HostOptions { listen, window: true })?;
    tracing::info!(url = host.url(), "web UI and API listening");
    let first_page = if created || config.pairs.is_empty() {
        Some("settings")
    } else {
        None
    };
    let login = match first_page {
        Some(p) => host.login_link_to(p)?,
        None => host.login_link()?,
    };
    let events = host.service().subscribe();
    let shell = Arc::new(Shell {
        host: Mutex::new(Some(host)),
        tray: Mutex::new(None),
        config: config_file.clone(),
    });
    apply_autostart(&config_file, desktop_cfg.autostart);

    let show = !args.hidden;
    let setup_shell = shell.clone();
    let app = tauri::Builder::default()
        .manage(shell.clone())
        .setup(move |app| {
            let url: tauri::Url = login.parse()?;
            WebviewWindowBuilder::new(app, "main", WebviewUrl::External(url))
                .title("Tandem")
                .inner_size(1100.0, 760.0)
                .min_inner_size(400.0, 500.0)
                .visible(show)
                .build()?;
            let handle = app.handle().clone();
            // A missing appindicator library makes the tray builder panic: carry on
            // with the window alone.
            let tray = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| build_tray(&handle)));
            match tray {
                Ok(Ok(t)) => {
                    *setup_shell.tray.lock().unwrap() = Some(t);
                    if !tray_host_present() {
                        tracing::warn!("no system tray found (no StatusNotifier host, no XEmbed tray): Tandem runs with its window; closing it keeps Tandem syncing, launch Tandem again to show it");
                        if let Some(w) = app.get_webview_window("main") {
                            let _ = w.show();
                        }
                    }
                }
                Ok(Err(e)) => tracing::warn!("no tray icon ({e}): Tandem runs with its window; launch it again to show the window"),
                Err(_) => tracing::warn!(
                    "no tray icon (the tray library failed): Tandem runs with its window; launch it again to show the window"
                ),
            }
            let shell = setup_shell.clone();
            tauri::async_runtime::spawn(follow_engine(handle.clone(), shell, events, desktop_cfg.clone()));
            // SIGTERM/SIGINT quit like the menu's Quit (the service stops gracefully).
            let quit = handle.clone();
            tauri::async_runtime::spawn(async move {
                tandem::http::stop_signal().await;
                tracing::info!("stop requested");
                quit.exit(0);
            });
            Ok(())
        })
        .on_window_event(|window, event| {
            if let WindowEvent::CloseRequested { api, .. } = event {
                // Closing hides: Tandem keeps syncing in the tray.
                api.prevent_close();
                let _ = window.hide();
            }
        })
        .build(tauri::generate_context!())?;
    let stop_shell = shell.clone();
    app.run(move |_app, event| match event {
        RunEvent::ExitRequested { api, code, .. } if code.is_none() => api.prevent_exit(),
        RunEvent::Exit => {
            if let Some(host) = stop_shell.host.lock().unwrap().take() {
                tracing::info!("stopping the service");
                if let Err(e) = host.stop() {
                    tracing::error!("{e}");
                }
            }
        }
        _ => {}
    });
    Ok(0)
}

/// Whether the desktop has somewhere to show a tray icon: a StatusNotifier host on the
/// session bus (KDE, GNOME with the AppIndicator extension, ...) or an XEmbed tray on the X
/// screen. Tray libraries accept an icon either way and show it nowhere.
#[cfg(target_os = "linux")]
fn tray_host_present() -> bool {
    fn status_notifier() -> bool {
        use gio::prelude::*;
        let Ok(bus) = gio::bus_get_sync(gio::BusType::Session, None::<&gio::Cancellable>) else {
            return false;
        };
        let args = ("org.kde.StatusNotifierWatcher",).to_variant();
        bus.call_sync(
            Some("org.freedesktop.DBus"),
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus",
            "NameHasOwner",
            Some(&args),
            Some(gio::glib::VariantTy::new("(b)").expect("a valid type")),
            gio::DBusCallFlags::NONE,
            1000,
            None::<&gio::Cancellable>,
        )
        .ok()
        .and_then(|v| v.get::<(bool,)>())
        .is_some_and(|(b,)| b)
    }
    fn xembed() -> bool {
        let Ok(x) = x11_dl::xlib::Xlib::open() else { return false };
        // SAFETY: a private connection, used and closed here; names are NUL-terminated.
        unsafe {
            let d = (x.XOpenDisplay)(std::ptr::null());
            if d.is_null() {
                return false;
            }
            let name = std::ffi::CString::new(format!("_NET_SYSTEM_TRAY_S{}", (x.XDefaultScreen)(d))).expect("no NUL");
            let atom = (x.XInternAtom)(d, name.as_ptr(), 0);
            let owner = (x.XGetSelectionOwner)(d, atom);
            (x.XCloseDisplay)(d);
            owner != 0
        }
    }
    status_notifier() || xembed()
}

#[cfg(not(target_os = "linux"))]
fn tray_host_present() -> bool {
    true
}

fn icon(i: TrayIcon) -> Image<'static> {
    let bytes: &'static [u8] = match i {
        TrayIcon::Idle => include_bytes!("../../assets/tray/idle.png"),
        TrayIcon::Syncing => include_bytes!("../../assets/tray/syncing.png"),
        TrayIcon::Paused => include_bytes!("../../assets/tray/paused.png"),
        TrayIcon::Conflicts => include_bytes!("../../assets/tray/conflicts.png"),
        TrayIcon::Error => include_bytes!("../../assets/tray/error.png"),
    };
    Image::from_bytes(bytes).expect("the tray icons are valid PNGs")
}

fn build_tray(app: &AppHandle) -> tauri::Result<(tauri::tray::TrayIcon, TrayMenu)> {
    let status = MenuItem::with_id(app, "status", "Tandem: starting", false, None::<&str>)?;
    let pause = MenuItem::with_id(app, "pause", "Pause all", true, None::<&str>)?;
    let resume = MenuItem::with_id(app, "resume", "Resume all", false, None::<&str>)?;
    let sync = MenuItem::with_id(app, "sync", "Sync now", true, None::<&str>)?;
    let open = MenuItem::with_id(app, "open", "Open Tandem", true, None::<&str>)?;
    let conflicts = MenuItem::with_id(app, "conflicts", "Open conflicts", true, None::<&str>)?;
    let quit = MenuItem::with_id(app, "quit", "Quit", true, None::<&str>)?;
    let menu = Menu::with_items(
        app,
        &[
            &status,
            &PredefinedMenuItem::separator(app)?,
            &pause,
            &resume,
            &sync,
            &PredefinedMenuItem::separator(app)?,
            &open,
            &conflicts,
            &PredefinedMenuItem::separator(app)?,
            &quit,
        ],
    )?;
    let tray = TrayIconBuilder::with_id("tandem")
        .icon(icon(TrayIcon::Idle))
        .tooltip("Tandem")
        .menu(&menu)
        .show_menu_on_left_click(true)
        .on_menu_event(|app, ev| menu_action(app, ev.id().as_ref()))
        .build(app)?;
    Ok((tray, TrayMenu { status, pause, resume }))
}

fn menu_action(app: &AppHandle, id: &str) {
    let Some(shell) = app.try_state::<Arc<Shell>>() else { return };
    let with_service = |f: &dyn Fn(&tandem::service::Service) -> Result<(), tandem::api::ApiError>| {
        if let Some(h) = shell.host.lock().unwrap().as_ref() {
            if let Err(e) = f(h.service()) {
                tracing::error!(action = id, "{e}");
                toast(&Toast {
                    kind: tandem::config::ToastKind::Errors,
                    title: "Tandem".into(),
                    body: e.to_string(),
                    page: "dashboard",
                });
            }
        }
    };
    match id {
        "pause" => with_service(&|s| s.pause(None)),
        "resume" => with_service(&|s| s.resume(None, false)),
        "sync" => with_service(&|s| s.sync_now(None)),
        "open" => show_window(app, None),
        "conflicts" => show_window(app, Some("conflicts")),
        "quit" => app.exit(0),
        _ => {}
    }
}

/// Show the window (created at start), at a page of the UI.
fn show_window(app: &AppHandle, page: Option<&str>) {
    let Some(w) = app.get_webview_window("main") else { return };
    if let Some(p) = page.filter(|p| p.bytes().all(|b| b.is_ascii_lowercase() || b == b'-')) {
        let _ = w.eval(format!("location.hash = '#/{p}'"));
    }
    let _ = w.show();
    let _ = w.unminimize();
    let _ = w.set_focus();
}

/// Follow the engine: the tray's icon, line and menu after every burst of events (and every
/// few seconds), toasts as the `Toaster` releases them, the window when a second launch
/// asks, the autostart entry when the settings change.
async fn follow_engine(
    app: AppHandle,
    shell: Arc<Shell>,
    mut events: tandem::service::events::Receiver,
    cfg: tandem::config::DesktopConfig,
) {
    let mut toaster = desktop::Toaster::new(cfg);
    let mut shown: Option<TrayView> = None;
    let mut dirty = true;
    let mut toasts_failed = false;
    loop {
        if dirty {
            refresh_tray(&shell, &mut shown);
            dirty = false;
        }
        let wake = toaster
            .next_at()
            .map(|t| t.saturating_duration_since(Instant::now()))
            .unwrap_or(Duration::from_secs(5))
            .min(Duration::from_secs(5));
        let ev = tokio::select! {
            ev = events.recv() => ev,
            _ = tokio::time::sleep(wake) => {
                dirty = true;
                Err(tokio::sync::broadcast::error::RecvError::Lagged(0))
            }
        };
        match ev {
            Ok(Event::ServiceStopping) | Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            Ok(Event::ShowWindow { page }) => show_window(&app, page.as_deref()),
            Ok(Event::SettingsChanged) => {
                let d = shell.host.lock().unwrap().as_ref().map(|h| h.service().config().desktop);
                if let Some(d) = d {
                    apply_autostart(&shell.config, d.autostart);
                    toaster.configure(d);
                }
                dirty = true;
            }
            Ok(ev) => {
                toaster.event(&ev, Instant::now());
                // Progress comes often and changes nothing the tray shows.
                dirty |= !matches!(ev, Event::Progress { .. });
            }
            Err(_) => dirty = true,
        }
        for t in toaster.due(Instant::now()) {
            let failed = tokio::task::spawn_blocking(move || toast(&t)).await.unwrap_or(true);
            if failed && !toasts_failed {
                tracing::warn!("toasts are not shown (no notification service); the window and the tray still tell the state");
            }
            toasts_failed = failed;
        }
        // Let a burst of events settle before the next status read.
        if dirty {
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }
}

fn refresh_tray(shell: &Shell, shown: &mut Option<TrayView>) {
    let status = match shell.host.lock().unwrap().as_ref().map(|h| h.service().status()) {
        Some(Ok(s)) => s,
        Some(Err(e)) => {
            tracing::warn!("status: {e}");
            return;
        }
        None => return,
    };
    let view = desktop::tray_view(&status);
    if shown.as_ref() == Some(&view) {
        return;
    }
    if let Some((tray, menu)) = shell.tray.lock().unwrap().as_ref() {
        if shown.as_ref().map(|v| v.icon) != Some(view.icon) {
            let _ = tray.set_icon(Some(icon(view.icon)));
        }
        let _ = tray.set_tooltip(Some(format!("Tandem: {}", view.line)));
        let _ = menu.status.set_text(format!("Tandem: {}", view.line));
        let _ = menu.pause.set_enabled(!view.all_paused);
        let _ = menu.resume.set_enabled(view.any_paused);
    }
    tracing::debug!(icon = view.icon.name(), line = %view.line, "tray");
    *shown = Some(view);
}

/// Show one toast. Returns true when it could not be shown (logged).
fn toast(t: &Toast) -> bool {
    match notify_rust::Notification::new()
        .appname("Tandem")
        .summary(&t.title)
        .body(&t.body)
        .icon("tandem-desktop")
        .timeout(notify_rust::Timeout::Milliseconds(8000))
        .show()
    {
        Ok(_) => {
            tracing::info!(title = %t.title, "toast shown");
            false
        }
        Err(e) => {
            tracing::warn!(title = %t.title, "toast not shown: {e}");
            true
        }
    }
}

/// Make the start-at-login entry match the setting.
fn apply_autostart(config: &std::path::Path, enabled: bool) {
    #[cfg(target_os = "linux")]
    {
        let exe = match std::env::current_exe() {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!("autostart: cannot tell this program's path: {e}");
                return;
            }
        };
        match desktop::set_autostart(&desktop::autostart_file(), enabled, &exe, config) {
            Ok(true) => tracing::info!(enabled, file = %desktop::autostart_file().display(), "autostart entry updated"),
            Ok(false) => {}
            Err(e) => tracing::warn!("autostart: {e}"),
        }
    }
    #[cfg(not(target_os = "linux"))]
    if enabled {
        let _ = config;
        tracing::warn!("autostart: start at login is set up by the installer on this platform");
    }
}
