//! The main window: the web UI (logged in through the host's login link), shown at a page
//! on request and hidden, not closed, when the user closes it. Must not decide which page
//! to show nor act on the service: it only shows what `tandem::http::Host` serves.

use tauri::{AppHandle, Manager, WebviewUrl, WebviewWindowBuilder, WindowEvent};

/// The label of the one window.
pub const MAIN: &str = "main";

/// Create the window (hidden unless `show`), logged in to the web UI.
pub fn build(app: &tauri::App, login: &str, show: bool) -> Result<(), Box<dyn std::error::Error>> {
    let url: tauri::Url = login.parse()?;
    WebviewWindowBuilder::new(app, MAIN, WebviewUrl::External(url))
        .title("Tandem")
        .inner_size(1100.0, 760.0)
        .min_inner_size(400.0, 500.0)
        .visible(show)
        .build()?;
    Ok(())
}

/// Show the window (created at start), at a page of the UI.
pub fn show(app: &AppHandle, page: Option<&str>) {
    let Some(w) = app.get_webview_window(MAIN) else { return };
    if let Some(p) = page.filter(|p| p.bytes().all(|b| b.is_ascii_lowercase() || b == b'-')) {
        let _ = w.eval(format!("location.hash = '#/{p}'"));
    }
    let _ = w.show();
    let _ = w.unminimize();
    let _ = w.set_focus();
}

/// Closing hides: Tandem keeps syncing in the tray.
pub fn hide_on_close(window: &tauri::Window, event: &WindowEvent) {
    if let WindowEvent::CloseRequested { api, .. } = event {
        api.prevent_close();
        let _ = window.hide();
    }
}
