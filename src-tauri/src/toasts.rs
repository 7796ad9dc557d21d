//! Toasts: shows through the desktop's notification service the toasts that
//! `tandem::desktop::Toaster` releases, and the shell's own error reports. Must not decide
//! which toasts appear, when, or what they say (that is `tandem::desktop`'s), nor act on
//! the service.

use tandem::config::ToastKind;
use tandem::desktop::Toast;

/// Show one toast. Returns true when it could not be shown (logged).
pub fn show(t: &Toast) -> bool {
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

/// Report an error of the shell itself (Tandem could not start, a menu action failed).
pub fn error(title: &str, body: String) {
    show(&Toast {
        kind: ToastKind::Errors,
        title: title.into(),
        body,
        page: "dashboard",
    });
}

/// Show the toasts that are due, off the async runtime. `failed` tells whether the last
/// toast could not be shown: the first failure after a success is logged once more.
pub async fn show_due(due: Vec<Toast>, failed: &mut bool) {
    for t in due {
        let this_failed = tokio::task::spawn_blocking(move || show(&t)).await.unwrap_or(true);
        if this_failed && !*failed {
            tracing::warn!("toasts are not shown (no notification service); the window and the tray still tell the state");
        }
        *failed = this_failed;
    }
}
