//! The tray icon and its menu: built once at start, refreshed from the service's status, and
//! its menu items turned into `tandem::service::Service` calls. Must not decide what the tray
//! shows (`tandem::desktop::tray_view` does) nor do anything itself: every action is the
//! service's, and a tray that cannot be shown leaves Tandem running with its window.

use crate::{toasts, window, Shell};
use std::sync::Arc;
use tandem::desktop::{self, TrayIcon, TrayView};
use tauri::image::Image;
use tauri::menu::{Menu, MenuItem, PredefinedMenuItem};
use tauri::tray::TrayIconBuilder;
use tauri::{AppHandle, Manager};

/// The menu items whose text or state follows the engine.
pub struct TrayMenu {
    status: MenuItem<tauri::Wry>,
    pause: MenuItem<tauri::Wry>,
    resume: MenuItem<tauri::Wry>,
}

/// Build the tray into `shell`; without one (no tray library, no tray host on the desktop)
/// Tandem runs with its window, which is shown.
pub fn install(app: &AppHandle, shell: &Shell) {
    // A missing appindicator library makes the tray builder panic: carry on
    // with the window alone.
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| build(app))) {
        Ok(Ok(t)) => {
            *shell.tray.lock().unwrap() = Some(t);
            if !host_present() {
                tracing::warn!("no system tray found (no StatusNotifier host, no XEmbed tray): Tandem runs with its window; closing it keeps Tandem syncing, launch Tandem again to show it");
                if let Some(w) = app.get_webview_window(window::MAIN) {
                    let _ = w.show();
                }
            }
        }
        Ok(Err(e)) => tracing::warn!("no tray icon ({e}): Tandem runs with its window; launch it again to show the window"),
        Err(_) => tracing::warn!("no tray icon (the tray library failed): Tandem runs with its window; launch it again to show the window"),
    }
}

fn build(app: &AppHandle) -> tauri::Result<(tauri::tray::TrayIcon, TrayMenu)> {
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

/// A menu item was chosen: the service acts, or the window shows, or the app quits.
fn menu_action(app: &AppHandle, id: &str) {
    let Some(shell) = app.try_state::<Arc<Shell>>() else { return };
    let with_service = |f: &dyn Fn(&tandem::service::Service) -> Result<(), tandem::api::ApiError>| {
        if let Some(h) = shell.host.lock().unwrap().as_ref() {
            if let Err(e) = f(h.service()) {
                tracing::error!(action = id, "{e}");
                toasts::error("Tandem", e.to_string());
            }
        }
    };
    match id {
        "pause" => with_service(&|s| s.pause(None)),
        "resume" => with_service(&|s| s.resume(None, false)),
        "sync" => with_service(&|s| s.sync_now(None)),
        "open" => window::show(app, None),
        "conflicts" => window::show(app, Some("conflicts")),
        "quit" => app.exit(0),
        _ => {}
    }
}

/// Show the service's status in the tray, if it changed since `shown`.
pub fn refresh(shell: &Shell, shown: &mut Option<TrayView>) {
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

/// Whether the desktop has somewhere to show a tray icon: a StatusNotifier host on the
/// session bus (KDE, GNOME with the AppIndicator extension, ...) or an XEmbed tray on the X
/// screen. Tray libraries accept an icon either way and show it nowhere.
#[cfg(target_os = "linux")]
fn host_present() -> bool {
    status_notifier_host() || xembed_tray()
}

#[cfg(not(target_os = "linux"))]
fn host_present() -> bool {
    true
}

/// Whether a StatusNotifier watcher owns its name on the session bus.
#[cfg(target_os = "linux")]
fn status_notifier_host() -> bool {
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

/// Whether the X screen has an XEmbed system tray.
#[cfg(target_os = "linux")]
fn xembed_tray() -> bool {
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
