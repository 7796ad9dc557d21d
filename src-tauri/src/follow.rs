//! The engine follower: one task that keeps the tray, the toasts, the window and the
//! autostart entry in step with the service's events. Must not decide anything itself: the
//! tray's contents come from `tandem::desktop::tray_view`, the toasts from
//! `tandem::desktop::Toaster`, and it never acts on the service.

use crate::{autostart, toasts, tray, window, Shell};
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tandem::desktop::{Toaster, TrayView};
use tandem::service::events::{Event, Receiver};
use tauri::AppHandle;
use tokio::sync::broadcast::error::RecvError;

/// The follower's state between events.
struct Follower {
    app: AppHandle,
    shell: Arc<Shell>,
    events: Receiver,
    toaster: Toaster,
    /// What the tray shows now.
    shown: Option<TrayView>,
    /// The tray may be out of date.
    dirty: bool,
    /// The last toast could not be shown.
    toasts_failed: bool,
}

/// Follow the engine: the tray's icon, line and menu after every burst of events (and every
/// few seconds), toasts as the `Toaster` releases them, the window when a second launch
/// asks, the autostart entry when the settings change. Ends when the service stops.
pub async fn follow_engine(app: AppHandle, shell: Arc<Shell>, events: Receiver, cfg: tandem::config::DesktopConfig) {
    let mut f = Follower {
        app,
        shell,
        events,
        toaster: Toaster::new(cfg),
        shown: None,
        dirty: true,
        toasts_failed: false,
    };
    loop {
        if f.dirty {
            tray::refresh(&f.shell, &mut f.shown);
            f.dirty = false;
        }
        let ev = f.next_event().await;
        if f.handle(ev).is_break() {
            break;
        }
        toasts::show_due(f.toaster.due(Instant::now()), &mut f.toasts_failed).await;
        // Let a burst of events settle before the next status read.
        if f.dirty {
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }
}

impl Follower {
    /// The next event, or `Lagged(0)` (and a tray refresh) when a toast is due or a few
    /// seconds passed without one.
    async fn next_event(&mut self) -> Result<Event, RecvError> {
        let wake = self
            .toaster
            .next_at()
            .map(|t| t.saturating_duration_since(Instant::now()))
            .unwrap_or(Duration::from_secs(5))
            .min(Duration::from_secs(5));
        tokio::select! {
            ev = self.events.recv() => ev,
            _ = tokio::time::sleep(wake) => {
                self.dirty = true;
                Err(RecvError::Lagged(0))
            }
        }
    }

    /// Act on one event; `Break` when the service stops.
    fn handle(&mut self, ev: Result<Event, RecvError>) -> ControlFlow<()> {
        match ev {
            Ok(Event::ServiceStopping) | Err(RecvError::Closed) => return ControlFlow::Break(()),
            Ok(Event::ShowWindow { page }) => window::show(&self.app, page.as_deref()),
            // `tandem stop`: quit as the tray's Quit does (the service stops gracefully).
            Ok(Event::StopRequested) => self.app.exit(0),
            Ok(Event::SettingsChanged) => {
                let d = self.shell.host.lock().unwrap().as_ref().map(|h| h.service().config().desktop);
                if let Some(d) = d {
                    autostart::apply(&self.shell.config, d.autostart);
                    self.toaster.configure(d);
                }
                self.dirty = true;
            }
            Ok(ev) => {
                self.toaster.event(&ev, Instant::now());
                // Progress comes often and changes nothing the tray shows.
                self.dirty |= !matches!(ev, Event::Progress { .. });
            }
            Err(_) => self.dirty = true,
        }
        ControlFlow::Continue(())
    }
}
